"""How many cores this process may really use, and how to share them among concurrent predictions. Pure.

``os.cpu_count()`` counts the machine's cores, not the ones a container or ``taskset`` grants: sizing threads by it
on a 64-core host with a 2-CPU quota runs 64 threads on 2 CPUs' worth of time. The budget is the smallest of the
process's CPU affinity and its cgroup quota (v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``),
rounded up, at least 1.

``ThreadShare`` splits that budget among the predictions in flight: one request alone gets every core, two get
half each, eight get one thread each, so concurrent batches never run more busy threads than there are cores.
Measured with bench/engines.py on 2 vCPU (shared, noisy; bench/README.md): two concurrent 10k-row batches on 100
full-depth trees gave 14-22k rows/s with one thread each against 16k splitting each batch across both cores (and
31.8k against 29.2k for ``max_depth=12``): no loss, and no oversubscription when more requests pile up.
"""

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_budget(*, cgroup_root: Path = CGROUP_ROOT, affinity: int | None = None) -> int:
    """Cores available to this process: its CPU affinity, bounded by its cgroup's CPU quota, at least 1."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root)
    budget = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, budget)


def cgroup_cpu_quota(cgroup_root: Path) -> float | None:
    """The cgroup's CPU quota in cores (``1.5`` for 150 ms per 100 ms), or ``None`` when there is none."""
    v2 = _read(cgroup_root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for v1_dir in (cgroup_root / "cpu", cgroup_root / "cpu,cpuacct", cgroup_root):
        quota, period = _read(v1_dir / "cpu.cfs_quota_us"), _read(v1_dir / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return None if quota.strip() == "-1" else _ratio(quota, period)
    return None


class ThreadShare:
    """The budget's share for one prediction: ``budget // in_flight`` threads, at least 1.

    Counting in-flight predictions rather than holding a semaphore: a request never waits for a token (a large
    batch would make every 1-row request behind it wait), it just gets fewer threads when others are running.
    """

    def __init__(self, budget: int):
        self.budget = max(1, budget)
        self._in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def threads(self) -> Iterator[int]:
        with self._lock:
            self._in_flight += 1
            share = max(1, self.budget // self._in_flight)
        try:
            yield share
        finally:
            with self._lock:
                self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None
