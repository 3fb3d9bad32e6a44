"""End to end: `dagster dev` on a free 127.0.0.1 port, a partition run launched over GraphQL, success."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from monitoring_pipelines_tests.conftest import DEMO_CONFIG, synthetic_day, write_parquet

PROJECT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 6, 10)
pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def test_partition_run_launched_over_graphql_succeeds(tmp_path):
    from dagster import DagsterInstance, MultiPartitionKey
    from dagster_graphql import DagsterGraphQLClient

    data_dir = tmp_path / "data"
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw.update(data_dir=str(data_dir), warehouse=str(data_dir / "warehouse.duckdb"))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    write_parquet(data_dir, "credit_default", DAY, synthetic_day(DAY, 800))

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MONITORING_CONFIG": str(config_path),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("models", ["credit_default", "churn_propensity"])
    finally:
        os.environ.pop("DAGSTER_HOME", None)

    port = _free_port()
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(PROJECT / "workspace.yaml")],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", 180, proc)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)

        def launch(job: str, tags: dict[str, str]) -> str:
            run_id = client.submit_job_execution(
                job,
                repository_location_name="monitoring_pipelines",
                repository_name="__repository__",
                tags=tags,
            )
            deadline = time.monotonic() + 300
            status = None
            while time.monotonic() < deadline:
                status = client.get_run_status(run_id).value
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(2)
            return f"{job} run {run_id} ended {status}" if status != "SUCCESS" else "SUCCESS"

        # The day's drift needs the model's reference profile: build it first (the register_models
        # sensor would too, but not necessarily before our run).
        assert launch("reference_job", {"dagster/partition": "credit_default"}) == "SUCCESS"
        key = MultiPartitionKey({"date": DAY.isoformat(), "model": "credit_default"})
        outcome = launch(
            "monitoring_job",
            {
                "dagster/partition": str(key),
                "dagster/partition/date": DAY.isoformat(),
                "dagster/partition/model": "credit_default",
            },
        )
        assert outcome == "SUCCESS", outcome
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
