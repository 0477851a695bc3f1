"""What the prediction log costs a one-row /predict, measured in-process without HTTP or a load generator.

Trains one forest (100 full-depth trees, 8 features) in a temporary embedded store, then calls the inference
server's WSGI application directly with a one-row CSV, alternating blocks with ``MDS_PREDICTION_LOG`` on and off,
and reports the median per-call time of each mode and the median of the per-round differences. The writer thread
runs as in production (SQLite here), so its work competes for the same cores.

    .venv/bin/python bench/log_overhead.py [--days 4000] [--rounds 20] [--calls 300]

Complements ``predict.py --log-overhead``: on a shared machine wrk's p50 moves by more than the 0.2 ms asked of the
log from one round to the next, while in-process blocks of a few hundred calls resolve a few microseconds.
"""

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4000, help="rows of training data (one per day)")
    parser.add_argument("--rounds", type=int, default=20, help="alternating blocks per mode")
    parser.add_argument("--calls", type=int, default=300, help="calls per block")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="mds-log-overhead-"))
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
    from django.conf import settings
    from django.core.management import call_command
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

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
        model_name="rf_log_overhead",
        target="target",
        timestamp="timestamp",
        params=ml.TrainingParams(n_estimators=100),
    )
    job = services.training_job_wait(job_id=job.pk, timeout=900)
    assert job.registered_version, job.error_message
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    # Superusers hold every role's permissions.
    user = get_user_model().objects.create(username="bench", is_superuser=True)
    token = Token.objects.create(user=user).key
    body = frame.iloc[:1, 1:-1].to_csv(index=False).encode()
    # As a server does, but without closing the connection around every call (not what is measured here).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def call() -> None:
        environ = {
            "PATH_INFO": "/predict",
            "QUERY_STRING": f"model_name=rf_log_overhead&version={job.registered_version}",
            "REQUEST_METHOD": "POST",
            "HTTP_HOST": "127.0.0.1",
            "CONTENT_TYPE": "text/csv",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Token {token}",
            "wsgi.input": io.BytesIO(body),
        }
        setup_testing_defaults(environ)
        status = {}
        b"".join(inference_wsgi.application(environ, lambda s, h, e=None: status.setdefault("s", s)))
        assert status["s"].startswith("200"), status

    for _ in range(300):
        call()
    blocks = {True: [], False: []}
    for _ in range(args.rounds):
        for logging_on in (True, False):
            settings.MDS_PREDICTION_LOG = logging_on
            times = []
            for _ in range(args.calls):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            blocks[logging_on].append(statistics.median(times) * 1000)
    on, off = statistics.median(blocks[True]), statistics.median(blocks[False])
    paired = statistics.median(a - b for a, b in zip(blocks[True], blocks[False], strict=True))
    print(f"1-row /predict in-process, median of {args.rounds} blocks of {args.calls} calls")
    print(f"  log on  {on:.3f} ms   per block: " + " ".join(f"{v:.3f}" for v in blocks[True]))
    print(f"  log off {off:.3f} ms   per block: " + " ".join(f"{v:.3f}" for v in blocks[False]))
    print(f"  overhead {on - off:+.3f} ms (difference of medians), {paired:+.3f} ms (median of paired differences)")
    # Before the data directory goes: what is still queued is written now, as at a server's exit.
    from inference.models import PredictionLog
    from inference.prediction_log import prediction_log_writer

    prediction_log_writer().stop()
    logged_on = 300 + args.rounds * args.calls
    print(f"  logged {PredictionLog.objects.count()} of the {logged_on} answers given with the log on")
    ok = max(on - off, paired) <= TARGET_MS
    print(f"  target <= {TARGET_MS} ms: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
