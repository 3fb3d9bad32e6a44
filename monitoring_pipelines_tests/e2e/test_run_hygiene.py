"""A `run` killed with SIGKILL leaves its in-process Dagster runs STARTED (run monitoring does not watch
them); the `dead_cli_runs` sensor and the next CLI start mark them failed, and only them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context

from monitoring_pipelines.defs import run_hygiene
from monitoring_pipelines.simulate import simulate

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh instance with the project's dagster.yaml, as DAGSTER_HOME for this test and its children."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _started(instance: DagsterInstance) -> list:
    return list(instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])))


def test_killed_cli_run_is_marked_failed_by_the_sensor(tmp_path: Path, dagster_home: Path) -> None:
    data = tmp_path / "data"
    simulate(data, days=30, requests=400)
    config = data / "demo_config.yaml"  # written by simulate for its dates (2026-06-01 ..)
    env = {**os.environ, "MONITORING_CONFIG": str(config)}
    args = [sys.executable, "-m", "monitoring_pipelines", "run", "--quiet"]
    proc = subprocess.Popen(
        [*args, "--start", "2026-06-25", "--end", "2026-06-30"],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + 180
            while not _started(instance) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert _started(instance), "no run started before the deadline"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            time.sleep(1)  # the workers die with the CLI (PR_SET_PDEATHSIG)
            stuck = _started(instance)
            assert stuck and all(r.tags[run_hygiene.HOST_TAG] == socket.gethostname() for r in stuck)

            # A live process's run and another host's run are left alone.
            live = instance.create_run_for_job(
                job_def=_any_job(),
                status=DagsterRunStatus.STARTED,
                tags={"monitoring/source": "cli", **run_hygiene.process_tags()},
            )
            other = instance.create_run_for_job(
                job_def=_any_job(),
                status=DagsterRunStatus.STARTED,
                tags={
                    "monitoring/source": "cli",
                    run_hygiene.HOST_TAG: "another-host",
                    run_hygiene.PID_TAG: "1",
                    run_hygiene.PID_START_TAG: "",
                },
            )

            result = run_hygiene.dead_cli_runs(build_sensor_context(instance=instance))
            assert f"marked {len(stuck)} run(s)" in result.skip_message
            for run in stuck:
                record = instance.get_run_by_id(run.run_id)
                assert record.status == DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
            assert instance.get_run_by_id(other.run_id).status == DagsterRunStatus.STARTED
            failure_logs = instance.all_logs(stuck[0].run_id)
            assert any("is gone (killed or crashed)" in (e.message or "") for e in failure_logs)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_the_next_cli_start_marks_them_too(tmp_path: Path, dagster_home: Path) -> None:
    with DagsterInstance.get() as instance:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        tags = {
            "monitoring/source": "cli",
            run_hygiene.HOST_TAG: socket.gethostname(),
            run_hygiene.PID_TAG: str(dead.pid),
            run_hygiene.PID_START_TAG: "1",
        }
        run = instance.create_run_for_job(job_def=_any_job(), status=DagsterRunStatus.STARTED, tags=tags)
    data = tmp_path / "data"
    simulate(data, days=2, requests=100)
    env = {**os.environ, "MONITORING_CONFIG": str(data / "demo_config.yaml")}
    done = subprocess.run(
        [sys.executable, "-m", "monitoring_pipelines", "reference"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"marked 1 run(s) of killed CLI processes failed: {run.run_id}" in done.stderr, done.stderr
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


def _any_job():
    from dagster import job, op

    @op
    def noop() -> None:
        return None

    @job(name="noop_job")
    def noop_job() -> None:
        noop()

    return noop_job


def test_the_warehouse_pool_limit_is_stored_before_the_first_run_is_queued(dagster_home: Path) -> None:
    """The queue reads the stored pools once per tick, before it stores a new pool's default: on a fresh
    instance two reference runs queued in one tick were both launched. The pool is stored up front."""
    from monitoring_pipelines.defs.common import WAREHOUSE_POOL

    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert WAREHOUSE_POOL not in storage.get_concurrency_keys()
        run_hygiene.ensure_pools(instance, (WAREHOUSE_POOL,))
        assert WAREHOUSE_POOL in storage.get_concurrency_keys()
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
        storage.set_concurrency_slots(WAREHOUSE_POOL, 3)  # an operator's limit is kept
        run_hygiene.ensure_pools(instance, (WAREHOUSE_POOL,))
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 3
