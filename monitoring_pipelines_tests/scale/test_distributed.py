"""End to end on real engines: the Dagster instance and the DuckLake catalog in PostgreSQL, steps on two
Celery worker processes behind Redis, lake files on local disk. Three simulated days of two models run
through `monitoring-pipelines run` (two runs at a time, writing the lake concurrently) must leave every
`monitoring` table equal to the single-machine run of the same range (DuckDB file, SQLite instance,
in-process steps); an analyst reading the lake meanwhile sees whole partitions and no lock error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitoring_pipelines.storage.warehouse import LakeWarehouse, Warehouse
from monitoring_pipelines_tests.scale.compare import table_differences
from monitoring_pipelines_tests.scale.servers import postgres_server, redis_server

PROJECT = Path(__file__).resolve().parents[2]
START, END = "2026-06-01", "2026-06-03"
pytestmark = [pytest.mark.e2e, pytest.mark.distributed]  # runs in .venv-distributed (Makefile)


def _cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monitoring_pipelines", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MONITORING_DATA_DIR", "MONITORING_WAREHOUSE", "MONITORING_WEBHOOK_URL", "DAGSTER_PG_URL"):
        env.pop(name, None)
    return env


def start_celery_workers(n: int, env: dict[str, str], root: Path, broker: str) -> list[subprocess.Popen]:
    """`n` Celery worker processes (solo pool: one process each, one step at a time) on the executor's
    queue; their broker comes from a `dagster_celery_config` module on PYTHONPATH, as dagster-celery reads it."""
    conf = root / "celery_conf"
    conf.mkdir(exist_ok=True)
    (conf / "dagster_celery_config.py").write_text(
        f"broker_url = {broker!r}\nresult_backend = {broker!r}\nworker_prefetch_multiplier = 1\n"
    )
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(conf), env.get("PYTHONPATH")]))}
    workers = []
    for k in range(n):
        log = open(root / f"worker{k}.log", "w")  # noqa: SIM115 - closed with the process
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "dagster_celery.app",
                    "worker",
                    "--pool=solo",
                    "--concurrency=1",
                    "--prefetch-multiplier=1",
                    "-Q",
                    "dagster",
                    "-n",
                    f"w{k}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel=INFO",
                ],  # fmt: skip
                env=env,
                cwd=PROJECT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # ready when each has said so in its log
        if all("ready." in (root / f"worker{k}.log").read_text() for k in range(n)):
            return workers
        time.sleep(0.3)
    raise TimeoutError("the Celery workers did not start: " + (root / "worker0.log").read_text()[-2000:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("scale")
    data = root / "data"
    env = _base_env()
    simulated = _cli(
        ["simulate", "--start", START, "--days", "3", "--requests", "300", "--out", str(data)]
        + ["--model", "credit_default", "--model", "churn_propensity"],
        env,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    single_config = data / "demo_config.yaml"

    # the single-machine run: DuckDB file, SQLite instance, in-process steps
    home = root / "home_sqlite"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    single_env = {**env, "DAGSTER_HOME": str(home), "MONITORING_CONFIG": str(single_config)}
    began = time.monotonic()
    single = _cli(["run", "--start", START, "--end", END, "--quiet"], single_env)
    single_seconds = time.monotonic() - began
    assert single.returncode == 0, single.stdout + single.stderr

    with postgres_server() as pg, redis_server() as broker:
        pg.create_database("dagster")
        pg.create_database("lake")
        raw = yaml.safe_load(single_config.read_text())
        raw["warehouse"] = f"ducklake:postgres:{pg.libpq('lake')}"
        raw["warehouse_data_path"] = str(root / "lake_files")
        raw["execution"] = {"executor": "celery", "broker": broker}
        lake_config = data / "lake_config.yaml"
        lake_config.write_text(yaml.safe_dump(raw, sort_keys=False))
        pg_home = root / "home_postgres"  # empty: the CLI writes the PostgreSQL variant there
        pg_env = {
            **env,
            "DAGSTER_HOME": str(pg_home),
            "DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@{pg.host}:{pg.port}/dagster",
            "MONITORING_CONFIG": str(lake_config),
        }
        pg_home.mkdir()
        workers = start_celery_workers(2, pg_env, root, broker)
        lake = LakeWarehouse(raw["warehouse"], data_path=raw["warehouse_data_path"])
        analyst = _Analyst(lake)
        try:
            began = time.monotonic()
            distributed = _cli(["run", "--start", START, "--end", END, "--quiet"], pg_env)
            distributed_seconds = time.monotonic() - began
            analyst.stop()
            assert distributed.returncode == 0, distributed.stdout + distributed.stderr
            yield {
                "file": Warehouse(data / "warehouse.duckdb"),
                "lake": lake,
                "pg_env": pg_env,
                "workers": [w.pid for w in workers],
                "analyst": analyst,
                "seconds": (single_seconds, distributed_seconds),
                "stdout": distributed.stdout,
            }
        finally:
            analyst.stop()
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()


class _Analyst:
    """Queries the lake read-only in a loop while the distributed run writes: the row count of every
    model-day of prediction_snapshots it sees, and any error."""

    def __init__(self, lake: LakeWarehouse) -> None:
        self.lake = lake
        self.seen: dict[tuple[str, str], set[int]] = {}
        self.queries = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        con = None
        while not self._stop.is_set():
            try:
                if con is None:
                    con = self.lake.analyst_connection()
                rows = con.execute(
                    "SELECT model_name, CAST(partition_date AS VARCHAR), count(*) "
                    "FROM monitoring.prediction_snapshots GROUP BY ALL"
                ).fetchall()
                for model, day, n in rows:
                    self.seen.setdefault((model, day), set()).add(n)
                self.queries += 1
            except Exception as exc:  # noqa: BLE001 - what the test asserts there was none of
                if (
                    self.queries
                ):  # before the run has created the lake and its tables there is nothing to read
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                elif con is not None:
                    con.close()
                    con = None
            time.sleep(0.1)
        if con is not None:
            con.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_every_table_equals_the_single_machine_run(runs):
    assert table_differences(runs["file"], runs["lake"]) == {}
    counts = runs["lake"].query("SELECT count(*) AS n FROM monitoring.prediction_snapshots")
    assert int(counts["n"][0]) > 0
    print("single machine {:.1f} s, distributed {:.1f} s".format(*runs["seconds"]))


def test_runs_are_recorded_in_postgres_and_steps_ran_on_the_workers(runs):
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    os.environ["DAGSTER_PG_URL"] = runs["pg_env"]["DAGSTER_PG_URL"]
    try:
        instance = DagsterInstance.from_config(runs["pg_env"]["DAGSTER_HOME"])
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        records = instance.get_run_records()
        metrics = [r for r in records if r.dagster_run.job_name == "metrics_job"]
        assert len(metrics) == 6 and all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in records)
        # two runs wrote at the same time: some metrics runs overlap in time
        spans = sorted((r.start_time, r.end_time) for r in metrics)
        assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))
        pids = {
            entry.dagster_event.pid
            for record in records
            for entry in instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.STEP_START)
        }
        assert pids and pids <= set(runs["workers"]), (pids, runs["workers"])
        assert len(pids) == 2  # both workers took steps
    finally:
        os.environ.pop("DAGSTER_PG_URL", None)


def test_an_analyst_reading_the_lake_during_the_run_saw_whole_partitions(runs):
    analyst = runs["analyst"]
    assert analyst.errors == []
    assert analyst.queries > 0 and analyst.seen
    final = {
        (r.model_name, str(r.partition_date)[:10]): int(r.n)
        for r in runs["lake"]
        .query(
            "SELECT model_name, partition_date, count(*) AS n FROM monitoring.prediction_snapshots GROUP BY ALL"
        )
        .itertuples()
    }
    for key, counts in analyst.seen.items():
        assert counts == {final[key]}, f"{key}: saw {sorted(counts)} rows, the day has {final[key]}"
