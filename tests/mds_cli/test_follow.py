"""The job bar: the server's ``progress`` where it sends one, the job's stage otherwise."""

import pytest

from mds.follow import STAGE_PROGRESS, job_progress


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"status": "running", "stage": "training", "progress": 0.42}, 0.42),
        ({"status": "running", "stage": "training", "progress": 1.7}, 1.0),
        ({"status": "running", "stage": "training"}, STAGE_PROGRESS["training"]),
        ({"status": "running", "stage": "registering", "progress": None}, STAGE_PROGRESS["registering"]),
        ({"status": "queued", "stage": "queued"}, 0.0),
        ({"status": "success", "stage": "done", "progress": 0.99}, 1.0),
        ({"status": "failed", "stage": "training", "progress": 0.3}, 0.3),
    ],
)
def test_job_progress(job, expected):
    assert job_progress(job) == pytest.approx(expected)


def test_stages_move_forward():
    order = ["queued", "loading", "training", "registering", "done"]
    assert [STAGE_PROGRESS[stage] for stage in order] == sorted(STAGE_PROGRESS.values())
