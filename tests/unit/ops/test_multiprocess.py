"""The Dramatiq services' metrics directory: one per service and port, emptied at each start."""

from __future__ import annotations

from backend.ops.multiprocess import CLIENT_ENV, DRAMATIQ_ENV, metrics_dir, prepare_metrics_dir


def test_one_directory_per_service_and_port():
    dirs = {metrics_dir("worker", 9191), metrics_dir("alerts", 9192), metrics_dir("worker", 9999)}
    assert len(dirs) == 3


def test_prepare_wipes_an_earlier_runs_files_and_names_the_directory_for_both_readers():
    port = 1  # never a real service's port
    stale = metrics_dir("worker", port)
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "counter_123.db").write_bytes(b"old")
    env = prepare_metrics_dir("worker", port)
    try:
        assert env == {CLIENT_ENV: str(stale), DRAMATIQ_ENV: str(stale)}
        assert stale.is_dir() and list(stale.iterdir()) == []
    finally:
        stale.rmdir()
