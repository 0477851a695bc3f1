"""What a server's main process sets up before it starts its worker processes, which inherit it: the same for the
web server (gunicorn.conf.py) and the inference server (mds_project/inference_server.py)."""

import ctypes
import os
import shutil
import tempfile
from pathlib import Path

_made_metrics_dir: Path | None = None


def configure_metrics() -> Path:
    """``PROMETHEUS_MULTIPROC_DIR``, where every worker process writes its metrics and which a scrape sums
    (core/metrics.py): the one the environment names, emptied of a previous run's files (they would be summed into
    this one's), or a fresh temporary one, since each server needs its own. Once per process: gunicorn reads its
    configuration again on reload."""
    global _made_metrics_dir
    if _made_metrics_dir is None and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _made_metrics_dir = Path(tempfile.mkdtemp(prefix="mds-prometheus-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_made_metrics_dir)
    elif _made_metrics_dir is None:
        for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink()
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def remove_metrics_dir() -> None:
    """When the server stops: the directory ``configure_metrics`` made, if it made one (one the environment named
    is left as it is)."""
    global _made_metrics_dir
    if _made_metrics_dir is not None:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        _made_metrics_dir = None


def limit_malloc_arenas() -> None:
    """glibc gives threads their own malloc arenas, each keeping freed memory. One (``MALLOC_ARENA_MAX``, default 1):
    a worker running 8 threads kept ~90 MB more after 10k-row batches with two (~610 MB against ~525 MB), for no
    measurable loss of requests/s, since the GIL serialises most allocations anyway."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, int(os.environ.get("MALLOC_ARENA_MAX", "1")))  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
