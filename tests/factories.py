"""factory_boy factories and small CSV builders for tests."""

import io

import factory
import pandas as pd
from django.contrib.auth import get_user_model

from sample_data.make_weather import make_weather


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = False


class StaffUserFactory(UserFactory):
    is_staff = True
    is_superuser = True


def weather_frame(days: int = 120, seed: int = 7) -> pd.DataFrame:
    return make_weather(days=days, seed=seed)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def weather_csv(days: int = 120, seed: int = 7) -> bytes:
    return csv_bytes(weather_frame(days, seed))
