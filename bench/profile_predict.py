"""Where a /predict request spends its time, in-process: cProfile over the inference server's WSGI application.

Trains one forest (100 trees, 8 features) in a temporary embedded store, then calls the inference WSGI
application directly, with server defaults (no ``format``), and prints the functions with the most own time:

    .venv/bin/python bench/profile_predict.py [--days 4000] [--calls 3000] [--batch-calls 30] [--top 25]

``--rows 1`` profiles one-row CSV bodies, ``--rows 10000`` batches; both by default. The prediction log's
writer thread runs as in production, but cProfile sees only the calling thread.
"""

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12000, help="rows of training data (one per day)")
    parser.add_argument("--max-depth", type=int, default=None, help="tree depth (default: full depth)")
    parser.add_argument("--calls", type=int, default=3000, help="one-row calls profiled")
    parser.add_argument("--batch-calls", type=int, default=30, help="10k-row calls profiled")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime (own time) or cumulative")
    parser.add_argument("--rows", default="1,10000", help="batch sizes profiled")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mds-profile-"))
    os.environ.update(
        MDS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="mds_project.settings.local", DJANGO_DEBUG="false"
    )
    sys.path.insert(0, str(ROOT))
    try:
        return run(args)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from rest_framework.authtoken.models import Token

    from mds_project import inference_wsgi
    from sample_data.make_weather import make_weather
    from training import ml, services

    call_command("migrate", verbosity=0)
    frame = make_weather(days=args.days, seed=11)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    job = services.training_job_start(
        file=io.BytesIO(buffer.getvalue().encode()),
        file_name="weather.csv",
        user=None,
        model_name="rf_profile",
        target="target",
        timestamp="timestamp",
        params=ml.TrainingParams(n_estimators=100, max_depth=args.max_depth),
    )
    job = services.training_job_wait(job_id=job.pk, timeout=900)
    assert job.registered_version, job.error_message
    user = get_user_model().objects.create(username="bench", is_superuser=True)
    token = Token.objects.create(user=user).key
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    features = frame.iloc[:, 1:-1]
    for rows in [int(rows) for rows in args.rows.split(",")]:
        calls = args.calls if rows < 1000 else args.batch_calls
        body = features.iloc[:rows].to_csv(index=False).encode()

        def call(body=body) -> str:
            environ = {
                "PATH_INFO": "/predict",
                "QUERY_STRING": f"model_name=rf_profile&version={job.registered_version}",
                "REQUEST_METHOD": "POST",
                "HTTP_HOST": "127.0.0.1",
                "CONTENT_TYPE": "text/csv",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_AUTHORIZATION": f"Token {token}",
                "wsgi.input": io.BytesIO(body),
            }
            setup_testing_defaults(environ)
            seen = {}
            b"".join(inference_wsgi.application(environ, lambda s, h, e=None: seen.update(s=s, h=dict(h))))
            assert seen["s"].startswith("200"), seen
            return seen["h"]["X-Model-Format"]

        deadline = time.monotonic() + 60
        while call() != ("sklearn" if rows >= 2000 else "onnx") and time.monotonic() < deadline:
            time.sleep(0.2)  # the default engine answers ONNX until sklearn has loaded
        for _ in range(min(calls, 200)):
            call()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(calls):
            engine = call()
        profiler.disable()
        per_call = (time.perf_counter() - started) / calls * 1000
        print(f"\n=== {rows} row(s), {calls} calls, engine {engine}: {per_call:.3f} ms per call under cProfile ===")
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    from inference.prediction_log import prediction_log_writer

    prediction_log_writer().stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
