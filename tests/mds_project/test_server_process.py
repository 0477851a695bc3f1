"""The metrics directory a server sets up for its worker processes (mds_project/server_process.py)."""

import os

import pytest

from mds_project.server_process import configure_metrics, remove_metrics_dir


@pytest.fixture
def no_metrics_dir(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    yield
    remove_metrics_dir()


def test_a_server_gets_a_fresh_directory_once_and_removes_it_when_it_stops(no_metrics_dir):
    # given
    made = configure_metrics()
    (made / "counter_1.db").write_bytes(b"a worker's values")

    # when: gunicorn reads its configuration again on reload
    again = configure_metrics()
    remove_metrics_dir()

    # then
    assert made.name.startswith("mds-prometheus-")
    assert again == made
    assert not made.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_named_directory_is_emptied_of_a_previous_run_and_kept(no_metrics_dir, monkeypatch, tmp_path):
    # given
    named = tmp_path / "metrics"
    named.mkdir()
    (named / "counter_1.db").write_bytes(b"a previous run's values")
    (named / "notes.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(named))

    # when
    configured = configure_metrics()
    remove_metrics_dir()

    # then
    assert configured == named
    assert sorted(path.name for path in named.iterdir()) == ["notes.txt"]
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(named)
