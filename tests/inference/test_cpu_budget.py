"""The CPU budget: affinity bounded by the cgroup quota (v2 and v1 files), and its share among predictions."""

import threading

import pytest

from inference.cpu_budget import ThreadShare, cgroup_cpu_quota, cpu_budget


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "budget"),
    [
        ("max 100000", 8, 8),  # no quota: the affinity decides
        ("200000 100000", 8, 2),  # two CPUs' worth of time on an 8-core host
        ("150000 100000", 8, 2),  # 1.5 CPUs: rounded up, the second core is partly usable
        ("50000 100000", 8, 1),  # half a CPU: still one thread
        ("400000 100000", 2, 2),  # taskset to two cores under a larger quota
    ],
)
def test_cgroup_v2_quota_bounds_the_affinity(tmp_path, cpu_max, affinity, budget):
    # given
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")

    # when / then
    assert cpu_budget(cgroup_root=tmp_path, affinity=affinity) == budget


def test_cgroup_v1_quota_is_read_when_there_is_no_v2_file(tmp_path):
    # given
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")

    # when / then
    assert cgroup_cpu_quota(tmp_path) == 3.0
    assert cpu_budget(cgroup_root=tmp_path, affinity=16) == 3


@pytest.mark.parametrize("files", [{}, {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}])
def test_no_quota_or_no_cgroup_files_leave_the_affinity(tmp_path, files):
    # given
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)

    # when / then
    assert cgroup_cpu_quota(tmp_path) is None
    assert cpu_budget(cgroup_root=tmp_path, affinity=4) == 4


def test_garbage_in_the_quota_file_is_ignored(tmp_path):
    # given
    (tmp_path / "cpu.max").write_text("lots 0\n")

    # when / then
    assert cpu_budget(cgroup_root=tmp_path, affinity=4) == 4


def test_this_process_budget_is_at_most_its_affinity():
    # when / then: the real files of this machine
    import os

    assert 1 <= cpu_budget() <= len(os.sched_getaffinity(0))


def test_the_share_splits_the_budget_among_predictions_in_flight():
    # given
    share = ThreadShare(4)
    seen = []

    # when: three predictions overlap, then one runs alone
    with share.threads() as first:
        with share.threads() as second:
            with share.threads() as third:
                seen.append(share.in_flight)
    with share.threads() as alone:
        pass

    # then
    assert (first, second, third, alone) == (4, 2, 1, 4)
    assert seen == [3] and share.in_flight == 0


def test_the_share_is_returned_when_a_prediction_fails_and_under_threads():
    # given
    share = ThreadShare(2)
    barrier = threading.Barrier(8)
    got = []

    def predict():
        with share.threads() as threads:
            got.append(threads)
            barrier.wait(timeout=10)

    # when
    with pytest.raises(RuntimeError), share.threads():
        raise RuntimeError("engine failed")
    workers = [threading.Thread(target=predict) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # then: all eight overlapped, so every one after the second got a single thread, and all were returned
    assert sorted(got)[:6] == [1] * 6 and share.in_flight == 0
