"""Backfill throughput on the distributed setup with 1 and then 2 Celery step workers, as whole processes.

    .venv-distributed/bin/python bench/bench_distributed.py [--days 4] [--out FILE]   # prints the case's JSON

It runs in the venv of the `distributed` extra (DuckDB 1.5.5 + DuckLake, dagster-postgres, dagster-celery),
which `make bench` creates; bench/run_bench.py starts it there.

The setup is the end-to-end test's (monitoring_pipelines_tests/scale/test_distributed.py): the Dagster
instance and the DuckLake catalog in a PostgreSQL server started here, lake files on local disk, steps on
`celery -A dagster_celery.app worker --pool=solo` processes behind a Redis server started here. The
workload is the demo's two models for `days` simulated days. For each worker count the lake and the
instance start empty and `monitoring-pipelines run --start .. --end .. --quiet --no-dashboard` is timed
from start to exit (references, every model-day with two runs at a time, the alerting runs). The
single-machine run of the same range (DuckDB file, SQLite instance, in-process steps) is timed beside
it for scale. Both Celery workers share this machine's cores with the CLI and its two run processes, so
on 2 cores the second worker adds throughput only where a worker would otherwise wait.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
START = dt.date(2026, 6, 1)
sys.path.insert(0, str(ROOT))

from monitoring_pipelines_tests.scale.servers import postgres_server, redis_server  # noqa: E402
from monitoring_pipelines_tests.scale.test_distributed import start_celery_workers  # noqa: E402


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "DAGSTER_"))}
    env.update(DAGSTER_DISABLE_TELEMETRY="1", GX_ANALYTICS_ENABLED="False", **extra)
    return env


def _timed_run(env: dict[str, str], days: int) -> dict[str, Any]:
    end = START + dt.timedelta(days=days - 1)
    began = time.monotonic()
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            "monitoring_pipelines",
            "run",
            "--start",
            str(START),
            "--end",
            str(end),
            "--quiet",
            "--no-dashboard",
        ],  # fmt: skip
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - began
    result: dict[str, Any] = {"wall_s": round(wall, 1), "model_days_per_min": round(2 * days / wall * 60, 2)}
    if done.returncode != 0:
        result["error"] = (done.stdout + done.stderr)[-2000:]
    return result


def distributed_case(root: Path, days: int = 4, requests: int = 2000) -> dict[str, Any]:
    """{'in_process': ..., 'celery_1_worker': ..., 'celery_2_workers': ..., 'speedup_2_vs_1': x}."""
    root = Path(root) / "distributed"
    shutil.rmtree(root, ignore_errors=True)
    data = root / "data"
    simulate = subprocess.run(
        [
            PYTHON,
            "-m",
            "monitoring_pipelines",
            "simulate",
            "--start",
            str(START),
            "--days",
            str(days),
            "--requests",
            str(requests),
            "--out",
            str(data),
            "--model",
            "credit_default",
            "--model",
            "churn_propensity",
        ],  # fmt: skip
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if simulate.returncode != 0:
        return {"error": simulate.stderr[-2000:]}
    result: dict[str, Any] = {"days": days, "models": 2, "requests_per_day": requests}

    home = root / "home_sqlite"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    single = _env(DAGSTER_HOME=str(home), MONITORING_CONFIG=str(data / "demo_config.yaml"))
    result["in_process"] = _timed_run(single, days)
    print(f"[distributed] in-process, DuckDB file: {result['in_process']}", flush=True)

    with postgres_server() as pg, redis_server() as broker:
        for workers in (1, 2):
            name = f"celery_{workers}_worker{'s' if workers > 1 else ''}"
            instance_db, lake_db = (
                pg.create_database(f"dagster{workers}"),
                pg.create_database(f"lake{workers}"),
            )
            raw = yaml.safe_load((data / "demo_config.yaml").read_text())
            raw.update(
                warehouse=f"ducklake:postgres:{pg.libpq(lake_db)}",
                warehouse_data_path=str(root / f"lake{workers}"),
                execution={"executor": "celery", "broker": broker},
            )
            config = data / f"lake{workers}.yaml"
            config.write_text(yaml.safe_dump(raw, sort_keys=False))
            pg_home = root / f"home_pg{workers}"
            pg_home.mkdir()
            env = _env(
                DAGSTER_HOME=str(pg_home),
                DAGSTER_PG_URL=f"postgresql+psycopg2://postgres@{pg.host}:{pg.port}/{instance_db}",
                MONITORING_CONFIG=str(config),
            )
            (root / name).mkdir()
            procs = start_celery_workers(workers, env, root / name, broker)
            try:
                result[name] = _timed_run(env, days)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=60)
            print(f"[distributed] {name}: {result[name]}", flush=True)
    one, two = result["celery_1_worker"]["wall_s"], result["celery_2_workers"]["wall_s"]
    result["speedup_2_vs_1"] = round(one / two, 2) if two else None
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--root", default=str(ROOT / "bench" / ".work"))
    parser.add_argument("--out", help="also write the case's JSON to this file (bench/run_bench.py reads it)")
    args = parser.parse_args()
    case = distributed_case(Path(args.root), args.days, args.requests)
    if args.out:
        Path(args.out).write_text(json.dumps(case, indent=2))
    print(json.dumps(case, indent=2))
