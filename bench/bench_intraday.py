"""The cost of one intraday look at 100k rows so far, timed as a whole process (imports included).

    .venv/bin/python bench/bench_intraday.py             # prints the case's JSON
    from bench_intraday import intraday_case             # what bench/run_bench.py calls: intraday_case(root)

The work folder gets the demo's credit_default (champion + shadow on every request) for a 7-day reference
and one day whose rows up to the look's clock number `rows`; the reference is built once with
`monitoring-pipelines reference` (not timed). Then a child process runs one look exactly as the
`intraday_today` asset does (`intraday_service.run_look`: read the day so far once with DuckDB and the
row rules, judge it, write `intraday_results`, refresh the model's alerts) and exits: its wall time from
start to exit is the figure (median of three), with the look's own seconds inside the process beside it.
Target (issue #13): one look at 100k rows so far in at most 2 s on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MODEL = "credit_default"
START = dt.date(2026, 6, 1)
REFERENCE_DAYS = 7
REFERENCE_REQUESTS = 10_000
SAMPLES = 3
TARGET_S = 2.0

CHILD = r"""
import json, sys, time
start = time.monotonic()
import pandas as pd
from monitoring_pipelines.config import load_config
from monitoring_pipelines.intraday_service import run_look
from monitoring_pipelines.storage.warehouse import Warehouse
config = load_config(sys.argv[1])
model = config.model(sys.argv[2])
imported = time.monotonic()
look, refresh = run_look(config, Warehouse(config.warehouse), model, pd.Timestamp(sys.argv[3]))
done = time.monotonic()
print(json.dumps({"imports_s": round(imported - start, 3), "look_s": round(done - imported, 3),
                  "rows_so_far": look.rows_so_far, "failing": len(look.failing)}))
"""


def _env(case: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(case / "dagster_home"),
        "MONITORING_CONFIG": str(case / "config.yaml"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }


def generate(case: Path, rows: int) -> str:
    """The workload: config, reference days and the looked-at day; returns the look's clock (the time
    by which `rows` rows of the day were logged)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import yaml

    from monitoring_pipelines.simulate import DEMO_CONFIG_TEMPLATE, partition_path, simulate_day

    case.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(DEMO_CONFIG_TEMPLATE.read_text())
    model = next(m for m in raw["models"] if m["name"] == MODEL)
    end = START + dt.timedelta(days=REFERENCE_DAYS - 1)
    model["reference"] = {"start": START.isoformat(), "end": end.isoformat()}
    model["intraday"] = {"every_minutes": 15}
    raw.update(data_dir=str(case), warehouse=str(case / "warehouse.duckdb"), models=[model])
    for k in range(REFERENCE_DAYS):
        table = simulate_day(MODEL, k, REFERENCE_REQUESTS, 7, START, inject=()).predictions
        path = partition_path(case, MODEL, "predictions", START + dt.timedelta(days=k))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    day_index = REFERENCE_DAYS + 1  # a Wednesday
    # credit_default logs a champion and a shadow row per request; leave room for the rest of the day
    table = simulate_day(MODEL, day_index, int(rows * 0.6), 7, START, inject=()).predictions
    table = table.sort_by("ts")
    if table.num_rows < rows:
        raise RuntimeError(f"the simulated day has {table.num_rows} rows, fewer than {rows}")
    look_at = table.column("ts")[rows - 1].as_py()
    day = START + dt.timedelta(days=day_index)
    path = partition_path(case, MODEL, "predictions", day)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(pc.less_equal(table.column("ts"), look_at)), path)
    (case / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return look_at.isoformat()


def intraday_case(root: Path, rows: int = 100_000) -> dict[str, Any]:
    """Generate (not timed), build the reference (not timed), then time SAMPLES whole-process looks."""
    case = Path(root) / "intraday_100k"
    shutil.rmtree(case, ignore_errors=True)
    look_at = generate(case, rows)
    (case / "dagster_home").mkdir(parents=True, exist_ok=True)
    build = subprocess.run(
        [PYTHON, "-m", "monitoring_pipelines", "reference", "--model", MODEL],
        env=_env(case),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        return {"error": (build.stdout + build.stderr)[-1500:]}
    samples = []
    for _ in range(SAMPLES):
        start = time.monotonic()
        done = subprocess.run(
            [PYTHON, "-c", CHILD, str(case / "config.yaml"), MODEL, look_at],
            env=_env(case),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - start
        if done.returncode != 0:
            return {"error": done.stderr[-1500:]}
        samples.append({"wall_s": round(wall, 3), **json.loads(done.stdout.strip().splitlines()[-1])})
    median = statistics.median(s["wall_s"] for s in samples)
    result = {
        "rows_so_far": samples[0]["rows_so_far"],
        "look_at": look_at,
        "whole_process_s": round(median, 3),
        "samples": samples,
        "look_in_process_s": statistics.median(s["look_s"] for s in samples),
        "imports_s": statistics.median(s["imports_s"] for s in samples),
        "target_s": TARGET_S,
        "met": median <= TARGET_S,
    }
    print(
        f"[intraday_100k] one look at {result['rows_so_far']:,} rows: {median:.2f} s whole process "
        f"({result['imports_s']:.2f} s imports + {result['look_in_process_s']:.2f} s look)",
        flush=True,
    )
    return result


def main() -> int:
    import tempfile

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bench-intraday-"))
    result = intraday_case(root)
    print(json.dumps(result, indent=2))
    return 0 if result.get("met") else 1


if __name__ == "__main__":
    raise SystemExit(main())
