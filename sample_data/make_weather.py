"""Write ``time_series_weather.csv``: two years of daily weather and the electricity demand it drives.

The demand (``target``, MWh) follows heating and cooling degree days, weekday activity, daylight and noise, so
a forest has real structure to learn. Deterministic: the same seed writes the same file.

    python sample_data/make_weather.py [--days 730] [--seed 7] [--out sample_data/time_series_weather.csv]
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def make_weather(days: int = 730, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    timestamps = pd.date_range("2024-01-01", periods=days, freq="D")
    season = 2 * np.pi * (timestamps.day_of_year.to_numpy() - 15) / 365.25
    temperature = 11 - 9 * np.cos(season) + rng.normal(0, 3, days)
    humidity = np.clip(70 + 12 * np.cos(season) + rng.normal(0, 8, days), 15, 100)
    wind_speed = np.abs(rng.gamma(2.2, 2.0, days) + 1.5 * np.cos(season))
    pressure = 1013 + rng.normal(0, 7, days)
    cloud_cover = np.clip(55 + 20 * np.cos(season) + rng.normal(0, 22, days), 0, 100)
    precipitation = np.where(rng.random(days) < 0.25 + cloud_cover / 400, rng.exponential(4, days), 0.0)
    daylight_hours = 12 - 4 * np.cos(season)
    solar_radiation = np.clip(daylight_hours * (1 - cloud_cover / 130) * 1.6 + rng.normal(0, 1, days), 0, None)
    weekday = timestamps.day_of_week.to_numpy()
    demand = (
        1800
        + 38 * np.clip(16 - temperature, 0, None)
        + 55 * np.clip(temperature - 22, 0, None)
        + 6 * wind_speed * (temperature < 10)
        - 14 * daylight_hours
        - np.where(weekday >= 5, 210, 0)
        + rng.normal(0, 35, days)
    )
    return pd.DataFrame(
        {
            "timestamp": timestamps.strftime("%Y-%m-%d"),
            "temperature_c": temperature.round(2),
            "humidity_pct": humidity.round(1),
            "wind_speed_ms": wind_speed.round(2),
            "pressure_hpa": pressure.round(1),
            "cloud_cover_pct": cloud_cover.round(1),
            "precipitation_mm": precipitation.round(2),
            "solar_radiation_kwh_m2": solar_radiation.round(3),
            "day_of_week": weekday,
            "target": demand.round(1),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("time_series_weather.csv"))
    args = parser.parse_args()
    make_weather(args.days, args.seed).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
