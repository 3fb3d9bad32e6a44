"""`monitoring-pipelines run --submit` queues the range as an asset backfill in the instance (for the daemon
and the run launcher to run) instead of running it in the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DagsterInstance
from dagster._core.execution.backfill import BulkActionStatus

PROJECT = Path(__file__).resolve().parents[2]


def test_submit_queues_a_backfill_of_every_model_day_of_the_range(
    tmp_path, write_config, config_dict, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    config = write_config(config_dict)
    env = {**os.environ, "DAGSTER_HOME": str(home), "MONITORING_CONFIG": str(config)}
    env.pop("DAGSTER_PG_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring_pipelines",
            "run",
            "--submit",
            "--start",
            "2026-06-10",
            "--end",
            "2026-06-12",
            "--model",
            "credit_default",
        ],  # fmt: skip
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "queued backfill" in done.stdout and "3 model-days" in done.stdout

    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance's yaml reads its folder from there
    instance = DagsterInstance.from_config(str(home))
    try:
        backfills = instance.get_backfills()
        assert len(backfills) == 1
        backfill = backfills[0]
        assert backfill.status == BulkActionStatus.REQUESTED  # nothing ran: the daemon will
        assert backfill.backfill_id in done.stdout
        assert instance.get_runs() == []
        target = backfill.asset_backfill_data.target_subset
        keys = target.asset_keys
        assert {AssetKey("prediction_snapshots"), AssetKey("drift_scores"), AssetKey("alerts")} <= keys
        assert AssetKey("dashboard") not in keys  # the nightly job's assets, not the reporting ones
        partitions = {
            str(k)
            for k in target.get_partitions_subset(AssetKey("prediction_snapshots")).get_partition_keys()
        }
        assert partitions == {f"2026-06-{d}|credit_default" for d in (10, 11, 12)}
        assert "credit_default" in instance.get_dynamic_partitions("models")
    finally:
        instance.dispose()
