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
import statistics
import sys
import time

from in_process import embedded_store, predict_caller, prediction_log_flush, version_train

TARGET_MS = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4000, help="rows of training data (one per day)")
    parser.add_argument("--rounds", type=int, default=20, help="alternating blocks per mode")
    parser.add_argument("--calls", type=int, default=300, help="calls per block")
    args = parser.parse_args()
    with embedded_store("mds-log-overhead-"):
        return run(args)


def run(args) -> int:
    from django.conf import settings

    trained = version_train(model_name="rf_log_overhead", days=args.days)
    call = predict_caller(trained, trained.frame.iloc[:1, 1:-1].to_csv(index=False).encode())
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
    from inference.models import PredictionLog

    prediction_log_flush()
    logged_on = 300 + args.rounds * args.calls
    print(f"  logged {PredictionLog.objects.count()} of the {logged_on} answers given with the log on")
    ok = max(on - off, paired) <= TARGET_MS
    print(f"  target <= {TARGET_MS} ms: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
