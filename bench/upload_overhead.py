"""What a 1-row multipart upload costs beside the same rows as ``text/csv``, in-process, in CPU time or instructions.

Trains one forest in an embedded store, then calls the inference server's WSGI application directly with the two
bodies in turn, in blocks of ``--block`` requests (which body goes first alternates), and prints each body's median
CPU time per request and the median of the pairs' differences. The CPU time of this process
(``time.process_time``) leaves out the time other work on the machine takes from it; the pairs leave out slow
drifts. The upload is the body ``curl -F file=@one.csv`` sends (as ``bench/predict.py``).

    .venv/bin/python bench/upload_overhead.py [--pairs 40] [--block 500] [--days 2000] [--store DIR]

Instruction counts, which a busy machine does not change: ``--count upload`` (or ``csv``) runs one block of that
body inside a call through ctypes, so that callgrind counts only the block; ``--store DIR`` keeps the trained
store for the next run (training under valgrind would take very long). Per request: the count over ``--block``.

    .venv/bin/python bench/upload_overhead.py --store /tmp/upload-store --pairs 1   # trains once
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=_CallPythonObject --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/upload_overhead.py --store /tmp/upload-store --count upload --block 400
"""

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

from in_process import TrainedVersion, embedded_store, predict_caller, prediction_log_flush, version_train

MODEL_NAME = "rf_upload"
# What curl -F file=@one.csv sends.
BOUNDARY = "------------------------d74496d66958873e"
UPLOAD_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def upload_body(csv: bytes) -> bytes:
    return (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="one.csv"\r\nContent-Type: text/csv\r\n\r\n'
        + csv
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2000, help="rows of training data (one per day)")
    parser.add_argument("--pairs", type=int, default=40, help="pairs of blocks")
    parser.add_argument("--block", type=int, default=500, help="requests per block")
    parser.add_argument("--store", type=Path, help="keep the store here, and use the version trained there before")
    parser.add_argument("--count", choices=("upload", "csv"), help="one block of one body, for callgrind")
    args = parser.parse_args()
    with embedded_store("mds-upload-", args.store):
        return run(args)


def run(args) -> int:
    trained = version(args.days, args.store)
    csv = trained.frame.iloc[:1, 1:-1].to_csv(index=False).encode()
    calls = {
        "upload": predict_caller(trained, upload_body(csv), content_type=UPLOAD_CONTENT_TYPE),
        "csv": predict_caller(trained, csv),
    }
    deadline = time.monotonic() + 600
    while calls["csv"]()["X-Model-Format"] == "onnx" and time.monotonic() < deadline:
        time.sleep(0.2)  # the default engine answers ONNX until the forest has loaded
    print(f"engine: {calls['csv']()['X-Model-Format']}")
    for call in calls.values():
        for _ in range(200):
            call()
    if args.count:
        through_ctypes(lambda: block_run(calls[args.count], args.block))
    else:
        pairs_report(calls, args.pairs, args.block)
    prediction_log_flush()
    return 0


def version(days: int, store: Path | None) -> TrainedVersion:
    """The version trained in ``store`` by an earlier run, else a new one."""
    import pandas as pd

    frame_file = store / "upload_overhead.csv" if store else None
    if frame_file is not None and frame_file.exists():
        return TrainedVersion(model_name=MODEL_NAME, version=1, frame=pd.read_csv(frame_file))
    trained = version_train(model_name=MODEL_NAME, days=days)
    if frame_file is not None:
        trained.frame.to_csv(frame_file, index=False)
    return trained


def block_run(call, count: int) -> float:
    """CPU seconds per request over ``count`` calls."""
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count


def pairs_report(calls: dict, pairs: int, block: int) -> None:
    times: dict[str, list[float]] = {"upload": [], "csv": []}
    for pair in range(pairs):
        for name in ("upload", "csv") if pair % 2 == 0 else ("csv", "upload"):
            times[name].append(block_run(calls[name], block))
    differences = [upload - csv for upload, csv in zip(times["upload"], times["csv"], strict=True)]
    upload_ms, csv_ms, difference_ms = (
        statistics.median(values) * 1000 for values in (times["upload"], times["csv"], differences)
    )
    print(f"{pairs} pairs of {block}-request blocks, CPU ms per request (medians):")
    print(f"  multipart {upload_ms:.3f}   text/csv {csv_ms:.3f}   multipart - text/csv {difference_ms:.3f}")


def through_ctypes(work) -> None:
    """``work()`` called from C (libc's qsort of two ints), so callgrind's ``--toggle-collect=_CallPythonObject``
    counts it and nothing else."""
    compare_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    done = []

    def compare(first, second) -> int:
        if not done:
            done.append(work())
        return 0

    pair = (ctypes.c_int * 2)(1, 2)
    ctypes.CDLL(None).qsort(pair, 2, ctypes.sizeof(ctypes.c_int), compare_type(compare))


if __name__ == "__main__":
    sys.exit(main())
