"""The thread pools engines split a large batch across: one per thread count, shared by every version."""

import threading
from concurrent.futures import ThreadPoolExecutor

# Below this many rows one call is cheaper than splitting the batch across threads.
SPLIT_MIN_ROWS = 512

_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def executor(threads: int) -> ThreadPoolExecutor:
    with _executors_lock:
        if threads not in _executors:
            _executors[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="predict")
        return _executors[threads]
