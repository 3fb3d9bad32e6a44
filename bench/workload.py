"""Bench workloads: a wide model's traffic in the contract layout, at any size.

    .venv/bin/python bench/workload.py --out /tmp/w --rows 1000000 --reference-rows 1000000

One model, ``wide_model``: 20 numeric and 5 categorical features, 2 segments, a 7-day reference
window, then ``--days`` live days of ``--rows`` champion rows each (plus as many shadow rows with
``--shadow``). Labels for 60 % of requests arrive 1-7 days after the request, in the label folder of
the day they arrive; one business outcome follows the label. A config YAML next to the data points
at it. Rows are generated and written in chunks, so a 10M-row day needs ~1 GB, not the whole day.

``--task`` picks what the model predicts from the same features (issue #15): a binary probability
(the default; its data is unchanged by the other tasks), minutes to an event (regression: ``score`` is
the predicted value, no ``prediction`` column, the label the observed minutes, lognormal around the
truth), or one of 4 classes (multiclass: ``prediction`` the predicted class, ``score__<class>`` the
model's probabilities, softmax of the true class logits plus noise, the label drawn from the true
probabilities).

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
BINARY, REGRESSION, MULTICLASS = "binary_classification", "regression", "multiclass_classification"
TASKS = (BINARY, REGRESSION, MULTICLASS)
CLASSES = ("billing", "technical", "shipping", "account")
# multiclass: the true logit of each class from the first 6 features (rows) and a categorical nudge
CLASS_WEIGHTS = np.array(
    [
        [0.9, -0.3, 0.0, -0.4],
        [-0.2, 0.8, -0.3, 0.0],
        [0.0, -0.2, 0.7, -0.3],
        [-0.4, 0.0, -0.2, 0.6],
        [0.3, 0.3, -0.3, -0.3],
        [-0.2, 0.2, 0.2, -0.2],
    ]
)
CLASS_PRIOR = np.log([0.4, 0.3, 0.2, 0.1])  # billing most common, account rare
OUTCOME = {BINARY: "converted", REGRESSION: "refunded", MULTICLASS: "resolved"}


def _keys(ids: np.ndarray, version: str, role: str, ts: np.ndarray) -> dict[str, pa.Array]:
    """The key columns of one role's prediction log (prediction_id is the request id and the version)."""
    n = len(ids)
    return {
        "prediction_id": pa.array(np.strings.add(ids, f"-{version}"), pa.string()),
        "request_id": pa.array(ids, pa.string()),
        "model_name": pa.array(np.full(n, MODEL, dtype=object), pa.string()),
        "model_version": pa.array(np.full(n, version, dtype=object), pa.string()),
        "role": pa.array(np.full(n, role, dtype=object), pa.string()),
        "ts": pa.array(ts, pa.int64()).cast(TS),
    }


def numeric_names() -> list[str]:
    return [f"num_{i:02d}" for i in range(N_NUMERIC)]


def categorical_names() -> list[str]:
    return [f"cat_{i}" for i in range(N_CATEGORICAL)]


def categories(j: int) -> list[str]:
    return [f"c{j}_{k}" for k in range(4 + 3 * j)]


def config_yaml(out: Path, start: dt.date = START, task: str = BINARY) -> str:
    end = start + dt.timedelta(days=REFERENCE_DAYS - 1)
    head = "" if task == BINARY else f"\n    task: {task}"
    if task == MULTICLASS:
        head += f"\n    classes: [{', '.join(CLASSES)}]"
    return f"""# bench workload (bench/workload.py)
data_dir: .
warehouse: warehouse.duckdb
models:
  - name: {MODEL}{head}
    features:
      numeric: [{", ".join(numeric_names())}]
      categorical: [{", ".join(categorical_names())}]
    segments: [{", ".join(SEGMENTS)}]
    label_delay_days: 7
    reference: {{start: {start.isoformat()}, end: {end.isoformat()}}}
    outcomes: [{OUTCOME[task]}]
    owner: bench
alerting:
  routes: {{critical: [webhook], warning: [webhook], info: []}}
"""


def _chunk(
    rng: np.random.Generator,
    n: int,
    date: dt.date,
    first: int,
    drifted: bool,
    shadow: bool,
    task: str = BINARY,
):
    """One chunk of requests on `date`: prediction rows (champion, then shadow), labels, outcomes.
    The features, and for the binary task everything, are drawn in the same order whatever `task`."""
    if task != BINARY:
        return _task_chunk(rng, n, date, first, drifted, shadow, task)
    ts, ids, x, columns, logit, _ = _features(rng, n, date, first, drifted)
    p_true = 1 / (1 + np.exp(-(logit - 1.0)))
    label = (rng.random(n) < p_true).astype(np.int64)

    def rows(role: str, version: str, noise: float) -> pa.Table:
        score = 1 / (1 + np.exp(-(logit - 1.0 + rng.normal(0, noise, n))))
        error = rng.random(n) < 0.002
        data = {
            **_keys(ids, version, role, ts),
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


def _features(rng: np.random.Generator, n: int, date: dt.date, first: int, drifted: bool):
    """Request times, ids, the raw feature matrix, the feature and segment columns, the binary logit,
    and each categorical feature's category index (for the multiclass logits)."""
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
    cat_idx = []
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
        cat_idx.append(idx)
    for s in SEGMENTS:
        values = np.array(SEGMENT_VALUES[s], dtype=object)
        idx = rng.choice(len(values), size=n, p=[0.3, 0.3, 0.3, 0.1])
        columns[s] = pa.array(values[idx], pa.string())
    return ts, ids, x, columns, logit, cat_idx


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _task_chunk(
    rng: np.random.Generator, n: int, date: dt.date, first: int, drifted: bool, shadow: bool, task: str
):
    """`_chunk` for a regression or multiclass model on the same features.

    regression: delivery-like minutes, truth 25·exp(0.3·(logit − 1)) (about 10-60 min); the observed
    label is the truth times lognormal noise (sigma 0.2), the model's prediction the truth times its own
    (sigma 0.1 champion, 0.08 shadow). multiclass: true class probabilities softmax(x·W + a categorical
    nudge + prior); the label drawn from them; the model's probabilities softmax of the true logits plus
    Gaussian noise (0.5 champion, 0.4 shadow), so roughly calibrated and a little overconfident.
    """
    ts, ids, x, columns, logit, cat_idx = _features(rng, n, date, first, drifted)
    if task == REGRESSION:
        truth = 25.0 * np.exp(0.3 * (logit - 1.0))
        label = np.round(truth * np.exp(rng.normal(0, 0.2, n)), 2)
    elif task == MULTICLASS:
        z = x[:, :6] @ CLASS_WEIGHTS + CLASS_PRIOR
        z[np.arange(n), cat_idx[0] % len(CLASSES)] += 0.3
        cdf = np.cumsum(_softmax(z), axis=1)
        truth_idx = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), len(CLASSES) - 1)
        label = np.asarray(CLASSES, dtype=object)[truth_idx]
    else:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")

    def rows(role: str, version: str, noise: float) -> tuple[pa.Table, np.ndarray]:
        error = rng.random(n) < 0.002
        outputs: dict[str, pa.Array] = {}
        if task == REGRESSION:
            predicted = np.round(truth * np.exp(rng.normal(0, noise, n)), 2)
            outputs["score"] = pa.array(predicted, pa.float64(), mask=error)
            hit = label > 1.25 * predicted  # refunded: a lot later than promised
        else:
            proba = _softmax(z + rng.normal(0, noise, (n, len(CLASSES))))
            best = proba.argmax(axis=1)
            outputs["prediction"] = pa.array(np.asarray(CLASSES, dtype=object)[best], pa.string(), mask=error)
            for k, c in enumerate(CLASSES):
                outputs[f"score__{c}"] = pa.array(proba[:, k], pa.float64(), mask=error)
            hit = best == truth_idx  # resolved: routed to the right queue
        data = {
            **_keys(ids, version, role, ts),
            **columns,
            **outputs,
            "latency_ms": pa.array(np.round(20 * np.exp(0.5 * rng.standard_normal(n)), 3), pa.float64()),
            "status": pa.array(np.where(error, "error", "ok"), pa.string()),
        }
        return pa.table(data), hit

    champion, hit = rows("champion", "v1", 0.1 if task == REGRESSION else 0.5)
    tables = [champion]
    if shadow:
        tables.append(rows("shadow", "v2", 0.08 if task == REGRESSION else 0.4)[0])
    arrives = rng.random(n) < LABEL_SHARE
    label_ts = ts + rng.integers(US_PER_DAY, 7 * US_PER_DAY, n)
    kind = pa.float64() if task == REGRESSION else pa.string()
    label_table = pa.table(
        {
            "request_id": pa.array(ids[arrives], pa.string()),
            "label": pa.array(label[arrives], kind),
            "label_ts": pa.array(label_ts[arrives], pa.int64()).cast(TS),
        }
    )
    outcome_table = pa.table(
        {
            "request_id": pa.array(ids[arrives], pa.string()),
            "outcome": pa.array(np.full(int(arrives.sum()), OUTCOME[task], dtype=object), pa.string()),
            "value": pa.array(hit[arrives].astype(np.float64), pa.float64()),
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
    out: Path,
    rows: int,
    reference_rows: int,
    days: int = 1,
    shadow: bool = False,
    seed: int = 11,
    task: str = BINARY,
) -> dict:
    """Write the reference window and `days` live days of a `task` model; returns the live days and
    the config's path."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_yaml(out, task=task))
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
                tables, labels, outcomes = _chunk(rng, n, date, done, drifted, shadow and drifted, task)
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
    parser.add_argument("--task", choices=TASKS, default=BINARY, help="what the model predicts")
    args = parser.parse_args()
    print(generate(args.out, args.rows, args.reference_rows, args.days, args.shadow, task=args.task))


if __name__ == "__main__":
    main()
