"""Process-wide memory settings of the servers (gunicorn.conf.py, mds_project/inference_server.py)."""

import ctypes


def limit_malloc_arenas(count: int) -> None:
    """glibc gives threads their own malloc arenas, each keeping freed memory: two save ~40 MB per worker. Forked
    worker processes inherit the limit."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, count)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
