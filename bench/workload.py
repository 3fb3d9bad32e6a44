"""Bench workloads: a wide model's traffic in the contract layout, at any size.

    .venv/bin/python bench/workload.py --out /tmp/w --rows 1000000 --reference-rows 1000000

One model, ``wide_model``: 20 numeric and 5 categorical features, 2 segments, a 7-day reference
window, then ``--days`` live days of ``--rows`` champion rows each (plus as many shadow rows with
``--shadow``). Labels for 60 % of requests arrive 1-7 days after the request, in the label folder of
the day they arrive; one business outcome follows the label. A config YAML next to the data points
at it. Rows are generated and written in chunks, so a 10M-row day needs ~1 GB, not the whole day.

The live days carry a little drift (a 0.1-sigma shift on one feature, 2 % of a new category on
another) so the drift, check and alert paths all do real work.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MODEL = "wide_model"
N_NUMERIC = 20
N_CATEGORICAL = 5
SEGMENTS = ("age_band", "region")
SEGMENT_VALUES = {
    "age_band": ["18-25", "26-40", "41-64", "65+"],
    "region": ["north", "south", "east", "west"],
}
REFERENCE_DAYS = 7
START = dt.date(2026, 3, 1)
CHUNK = 500_000
US_PER_DAY = 86_400_000_000
EPOCH = dt.date(1970, 1, 1)
LABEL_SHARE = 0.6
TS = pa.timestamp("us", tz="UTC")


def numeric_names() -> list[str]:
    return [f"num_{i:02d}" for i in range(N_NUMERIC)]


def categorical_names() -> list[str]:
    return [f"cat_{i}" for i in range(N_CATEGORICAL)]


def categories(j: int) -> list[str]:
    return [f"c{j}_{k}" for k in range(4 + 3 * j)]


def config_yaml(out: Path, start: dt.date = START) -> str:
    end = start + dt.timedelta(days=REFERENCE_DAYS - 1)
    return f"""# bench workload (bench/workload.py)
data_dir: .
warehouse: warehouse.duckdb
models:
  - name: {MODEL}
    features:
      numeric: [{", ".join(numeric_names())}]
      categorical: [{", ".join(categorical_names())}]
    segments: [{", ".join(SEGMENTS)}]
    label_delay_days: 7
    reference: {{start: {start.isoformat()}, end: {end.isoformat()}}}
    outcomes: [converted]
    owner: bench
alerting:
  routes: {{critical: [webhook], warning: [webhook], info: []}}
"""


def _chunk(rng: np.random.Generator, n: int, date: dt.date, first: int, drifted: bool, shadow: bool):
    """One chunk of requests on `date`: prediction rows (champion, then shadow), labels, outcomes."""
    day0 = (date - EPOCH).days * US_PER_DAY
    ts = day0 + np.sort(rng.integers(0, US_PER_DAY, n))
    ids = np.strings.mod(f"r{date:%Y%m%d}-%08d", np.arange(first, first + n))
    x = rng.standard_normal((n, N_NUMERIC))
    if drifted:
        x[:, 3] += 0.1
    columns: dict[str, pa.Array] = {}
    for i, name in enumerate(numeric_names()):
        values = x[:, i] * (1 + i % 4) + i
        mask = rng.random(n) < 0.01
        columns[name] = pa.array(values, pa.float64(), mask=mask)
    logit = x[:, :6] @ np.linspace(0.8, 0.2, 6)
    for j, name in enumerate(categorical_names()):
        cats = np.array(categories(j) + ["brand_new"], dtype=object)
        p = np.full(len(cats), 0.0)
        p[:-1] = np.linspace(2, 1, len(cats) - 1)
        p[:-1] /= p[:-1].sum()
        if drifted and j == 2:
            p[:-1] *= 0.98
            p[-1] = 0.02
        idx = rng.choice(len(cats), size=n, p=p)
        columns[name] = pa.array(cats[idx], pa.string())
        logit = logit + 0.15 * (idx % 3)
    for s in SEGMENTS:
        values = np.array(SEGMENT_VALUES[s], dtype=object)
        idx = rng.choice(len(values), size=n, p=[0.3, 0.3, 0.3, 0.1])
        columns[s] = pa.array(values[idx], pa.string())
    p_true = 1 / (1 + np.exp(-(logit - 1.0)))
    label = (rng.random(n) < p_true).astype(np.int64)

    def rows(role: str, version: str, noise: float) -> pa.Table:
        score = 1 / (1 + np.exp(-(logit - 1.0 + rng.normal(0, noise, n))))
        error = rng.random(n) < 0.002
        data = {
            "prediction_id": pa.array(np.strings.add(ids, f"-{version}"), pa.string()),
            "request_id": pa.array(ids, pa.string()),
            "model_name": pa.array(np.full(n, MODEL, dtype=object), pa.string()),
            "model_version": pa.array(np.full(n, version, dtype=object), pa.string()),
            "role": pa.array(np.full(n, role, dtype=object), pa.string()),
            "ts": pa.array(ts, pa.int64()).cast(TS),
            **columns,
            "score": pa.array(score, pa.float64(), mask=error),
            "prediction": pa.array((score >= 0.5).astype(np.int64), pa.int64(), mask=error),
            "latency_ms": pa.array(np.round(20 * np.exp(0.5 * rng.standard_normal(n)), 3), pa.float64()),
            "status": pa.array(np.where(error, "error", "ok"), pa.string()),
        }
        return pa.table(data)

    tables = [rows("champion", "v1", 0.3)]
    if shadow:
        tables.append(rows("shadow", "v2", 0.25))
    arrives = rng.random(n) < LABEL_SHARE
    label_ts = ts + rng.integers(US_PER_DAY, 7 * US_PER_DAY, n)
    label_table = pa.table(
        {
            "request_id": pa.array(ids[arrives], pa.string()),
            "label": pa.array(label[arrives], pa.int64()),
            "label_ts": pa.array(label_ts[arrives], pa.int64()).cast(TS),
        }
    )
    outcome_table = pa.table(
        {
            "request_id": pa.array(ids[arrives], pa.string()),
            "outcome": pa.array(np.full(int(arrives.sum()), "converted", dtype=object), pa.string()),
            "value": pa.array(label[arrives].astype(np.float64), pa.float64()),
            "ts": pa.array(label_ts[arrives] + US_PER_DAY // 2, pa.int64()).cast(TS),
        }
    )
    return tables, label_table, outcome_table


class _Writers:
    """One Parquet writer per (kind, folder day), opened on first use."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.open: dict[tuple[str, dt.date], pq.ParquetWriter] = {}

    def write(self, kind: str, date: dt.date, table: pa.Table) -> None:
        key = (kind, date)
        if key not in self.open:
            path = self.out / "incoming" / MODEL / kind / f"date={date.isoformat()}" / "part-0.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.open[key] = pq.ParquetWriter(str(path), table.schema)
        self.open[key].write_table(table)

    def by_day(self, kind: str, table: pa.Table, ts_column: str) -> None:
        days = table.column(ts_column).cast(pa.int64()).to_numpy() // US_PER_DAY
        for d in np.unique(days):
            self.write(kind, EPOCH + dt.timedelta(days=int(d)), table.filter(pa.array(days == d)))

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()


def generate(
    out: Path, rows: int, reference_rows: int, days: int = 1, shadow: bool = False, seed: int = 11
) -> dict:
    """Write the reference window and `days` live days; returns the live days and file counts."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_yaml(out))
    writers = _Writers(out)
    rng = np.random.default_rng(seed)
    plan = [
        (START + dt.timedelta(days=d), reference_rows // REFERENCE_DAYS, False) for d in range(REFERENCE_DAYS)
    ]
    live = [START + dt.timedelta(days=REFERENCE_DAYS + d) for d in range(days)]
    plan += [(day, rows, True) for day in live]
    try:
        for date, n_day, drifted in plan:
            done = 0
            while done < n_day:
                n = min(CHUNK, n_day - done)
                tables, labels, outcomes = _chunk(rng, n, date, done, drifted, shadow and drifted)
                for table in tables:
                    writers.write("predictions", date, table)
                writers.by_day("labels", labels, "label_ts")
                writers.by_day("outcomes", outcomes, "ts")
                done += n
    finally:
        writers.close()
    return {"live_days": [d.isoformat() for d in live], "config": str(out / "config.yaml")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000, help="champion rows per live day")
    parser.add_argument(
        "--reference-rows", type=int, default=1_000_000, help="rows over the 7 reference days"
    )
    parser.add_argument("--days", type=int, default=1, help="live days after the reference window")
    parser.add_argument("--shadow", action="store_true", help="a shadow row beside every live champion row")
    args = parser.parse_args()
    print(generate(args.out, args.rows, args.reference_rows, args.days, args.shadow))


if __name__ == "__main__":
    main()
