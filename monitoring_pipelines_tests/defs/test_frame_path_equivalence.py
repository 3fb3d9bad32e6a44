"""The read-once path against the frame path, on one model-day with every kind of row.

The metric assets read a model-day once into a DuckDB `Snapshot` and compute from SQL and Arrow
(labels and outcomes joined in DuckDB, rows in the order of `hash(prediction_id)`). The core functions
still take pandas frames, as the assets did before the snapshot existed. These tests materialize the
day through the real assets, recompute each metric table with the core functions from pandas frames of
the raw files (the valid rows, the raw label and outcome files of the label window) and require the
same rows: counts exactly, every number within rtol 1e-9.

The day has rows that get quarantined, error rows, shadow rows, a missing segment value and a missing
feature value; a share of its requests is labelled two days later, some labels are corrected by a
later file and some label values are invalid; outcomes arrive for part of the requests.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.core import drift, fairness
from monitoring_pipelines.core.outcomes import daily_outcomes
from monitoring_pipelines.core.performance import attach_labels, daily_performance, estimation_inputs
from monitoring_pipelines.core.profiles import champion_rows
from monitoring_pipelines.schema import ALL, result_columns
from monitoring_pipelines.storage.reference import latest_profile
from monitoring_pipelines.storage.snapshot import label_window
from monitoring_pipelines_tests.conftest import write_parquet
from monitoring_pipelines_tests.defs.test_pipeline_assets import START, _labels, _run, project  # noqa: F401

DAY = START + dt.timedelta(days=6)  # the fixture's last day: no later folder can lend it late rows
MODEL = "credit_default"
ASSETS = [
    "prediction_snapshots",
    "drift_scores",
    "performance_metrics",
    "subgroup_metrics",
    "serving_metrics",
]
QUARANTINED = range(5)  # rows given a score of 3.0
ERRORS = range(5, 15)  # rows turned into failed requests (no score, no decision)
KEYS = ("model_name", "partition_date", "run_id", "evaluated_at")


def _day_rows(base: pd.DataFrame) -> pd.DataFrame:
    """The raw log of the day: the fixture's champion rows with every kind of row the paths must treat
    alike, plus a shadow version scoring a quarter of the requests."""
    frame = base.copy()
    frame["income"] = frame["income"] * 1.5  # drifted
    frame["score"] = frame["score"].astype(float)
    frame["prediction"] = frame["prediction"].astype(float)
    frame.loc[list(QUARANTINED), "score"] = 3.0
    frame.loc[list(ERRORS), ["score", "prediction"]] = np.nan
    frame.loc[list(ERRORS), "status"] = "error"
    frame.loc[20, "sex"] = None  # a missing segment value: __missing__
    frame.loc[21, "income"] = np.nan  # a missing feature value: null rate
    rng = np.random.default_rng(11)
    shadow = frame.iloc[100:300].copy()
    shadow["prediction_id"] = shadow["prediction_id"] + "-shadow"
    shadow["role"] = "shadow"
    shadow["model_version"] = "v4"
    shadow["score"] = np.clip(shadow["score"] + rng.normal(0, 0.05, len(shadow)), 0, 1)
    shadow["prediction"] = (shadow["score"] >= 0.5).astype(float)
    shadow["latency_ms"] = rng.gamma(5, 10, len(shadow))
    return pd.concat([frame, shadow], ignore_index=True)


def _label_files(base: pd.DataFrame) -> list[tuple[dt.date, str, pd.DataFrame]]:
    """60 % of the requests labelled two days later; a later file corrects 40 of those labels and
    brings invalid values (2, -1) that must not replace a valid label."""
    rng = np.random.default_rng(12)
    chosen = base.iloc[np.sort(rng.choice(len(base), int(0.6 * len(base)), replace=False))]
    late = _labels(chosen, 7)
    fixes = late.iloc[:40].assign(
        label=lambda f: 1 - f["label"], label_ts=lambda f: f["label_ts"] + pd.Timedelta(days=2)
    )
    invalid = late.iloc[40:50].assign(label=lambda f: np.where(np.arange(len(f)) % 2, 2, -1))
    invalid = invalid.assign(label_ts=invalid["label_ts"] + pd.Timedelta(days=3))
    return [
        (DAY + dt.timedelta(days=2), "late.parquet", late),
        (DAY + dt.timedelta(days=3), "fixes.parquet", pd.concat([fixes, invalid], ignore_index=True)),
    ]


def _outcomes(base: pd.DataFrame) -> pd.DataFrame:
    """`repaid` for 40 % of the requests (some recorded twice: the later one counts, one not finite),
    and an outcome the model does not track."""
    rng = np.random.default_rng(13)
    some = base.iloc[np.sort(rng.choice(len(base), int(0.4 * len(base)), replace=False))]
    ts = some["ts"] + pd.Timedelta(days=1)
    repaid = pd.DataFrame(
        {
            "request_id": some["request_id"],
            "outcome": "repaid",
            "value": rng.integers(0, 2, len(some)).astype(float),
            "ts": ts,
        }
    )
    again = repaid.iloc[:30].assign(
        value=lambda f: 1.0 - f["value"], ts=lambda f: f["ts"] + pd.Timedelta(hours=5)
    )
    broken = repaid.iloc[30:33].assign(value=np.nan, ts=lambda f: f["ts"] + pd.Timedelta(hours=6))
    other = repaid.iloc[:50].assign(outcome="churned")
    return pd.concat([repaid, again, broken, other], ignore_index=True)


def _in_snapshot_order(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` ordered as Snapshot.scored orders the champion's rows: by DuckDB's hash(prediction_id).
    Only the ECE interval depends on row order (a bootstrap of rows); DuckDB's hash cannot be computed
    in pandas, so DuckDB computes it and the frame is sorted by it, which makes even that interval
    comparable exactly."""
    ids = pd.DataFrame({"i": np.arange(len(frame)), "id": frame["prediction_id"].astype(str).to_numpy()})
    with duckdb.connect() as con:
        con.register("ids", ids)
        hashes = con.execute("SELECT hash(id) AS h FROM ids ORDER BY i").fetchnumpy()["h"]
    return frame.iloc[np.argsort(np.asarray(hashes, dtype=np.uint64), kind="stable")].reset_index(drop=True)


def _read_window(data_dir, kind: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Every raw file of `kind` in the arrival folders [start, end], in the order a source reads them."""
    frames = []
    day = start
    while day <= end:
        folder = data_dir / "incoming" / MODEL / kind / f"date={day.isoformat()}"
        if folder.is_dir():
            frames += [pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
        day += dt.timedelta(days=1)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def both_paths(project):  # noqa: F811 - the fixture imported above
    """The day materialized by the assets, and the frames the core functions read: the valid raw rows,
    the champion's ok rows in snapshot order, and the raw labels / outcomes of the label window."""
    config = project["config"]
    model = config.model(MODEL)
    raw = _day_rows(project["frames"][DAY])
    path = write_parquet(config.data_dir, MODEL, DAY, raw)
    champion_base = raw[raw["role"] == "champion"].reset_index(drop=True)
    for folder, name, labels in _label_files(champion_base):
        write_parquet(config.data_dir, MODEL, folder, labels, kind="labels", name=name)
    write_parquet(
        config.data_dir, MODEL, DAY + dt.timedelta(days=1), _outcomes(champion_base), kind="outcomes"
    )
    assert _run(project, DAY, ASSETS).success

    warehouse = project["warehouse"]
    quarantined = set(warehouse.partition("quarantined_predictions", MODEL, DAY)["prediction_id"])
    assert quarantined == set(raw.loc[list(QUARANTINED), "prediction_id"])
    written = pd.read_parquet(path)
    valid = written[~written["prediction_id"].isin(quarantined)].reset_index(drop=True)
    arrived_from, arrived_to = label_window(model, DAY, DAY)
    return {
        "model": model,
        "warehouse": warehouse,
        "valid": valid,
        "champion": _in_snapshot_order(champion_rows(valid)),
        "labels": _read_window(config.data_dir, "labels", arrived_from, arrived_to),
        "outcomes": _read_window(config.data_dir, "outcomes", DAY, arrived_to),
    }


def _stored(paths: dict, table: str) -> pd.DataFrame:
    return paths["warehouse"].partition(table, MODEL, DAY)


def _assert_same(stored: pd.DataFrame, computed: pd.DataFrame, key: list[str], counts: list[str]) -> None:
    """The same rows (matched on `key`), counts exactly, numbers within rtol 1e-9. Text columns are
    compared as values: the snapshot hands segments and versions over as categoricals."""
    stored = stored.drop(columns=[c for c in KEYS if c in stored.columns])
    computed = computed.drop(columns=[c for c in KEYS if c in computed.columns])
    assert sorted(stored.columns) == sorted(computed.columns)
    frames = []
    for frame in (stored, computed[list(stored.columns)]):
        frame = frame.copy()
        for column in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
                frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        frames.append(frame.sort_values(key).reset_index(drop=True))
    stored, computed = frames
    assert stored[key].equals(computed[key]), "the two paths wrote different rows"
    for column in counts:
        pd.testing.assert_series_equal(
            stored[column].astype(float), computed[column].astype(float), check_exact=True
        )
    pd.testing.assert_frame_equal(stored, computed, check_dtype=False, check_exact=False, rtol=1e-9, atol=0)


def test_performance_metrics_equal_daily_performance_on_frames(both_paths):
    """performance_metrics (measured on the labels so far, CBPE estimates, outcome rows) equals
    daily_performance of the champion's ok rows with the raw label files (it keeps the latest valid
    label per request itself) plus daily_outcomes of the raw outcome files."""
    model = both_paths["model"]
    champion = both_paths["champion"]
    calibration, support = estimation_inputs(latest_profile(both_paths["warehouse"], MODEL))
    metrics = daily_performance(
        champion,
        labels=both_paths["labels"],
        thresholds=model.thresholds.performance,
        calibration=calibration,
        support=support,
    )
    outcome_rows = daily_outcomes(champion, both_paths["outcomes"], model.outcomes)
    computed = pd.concat([metrics, outcome_rows], ignore_index=True)
    stored = _stored(both_paths, "performance_metrics")

    _assert_same(stored, computed, ["metric", "estimated"], ["n"])
    measured = stored[~stored["estimated"].astype(bool) & ~stored["metric"].str.startswith("outcome:")]
    assert {"auc", "ece", "brier"} <= set(measured["metric"])
    assert 0.5 < measured["labelled_fraction"].iloc[0] < 0.7  # part of the rows labelled
    assert set(stored["metric"]) >= {"outcome:repaid"} and stored["n"].min() > 0


def test_drift_scores_equal_compute_drift_on_the_frame(both_paths):
    """drift_scores (from the snapshot's columns, fetched per feature in SQL) equals compute_drift of
    the stored reference profile on the valid rows as a frame (it keeps the champion's ok rows)."""
    model = both_paths["model"]
    profile = latest_profile(both_paths["warehouse"], MODEL)
    computed = drift.compute_drift(profile, both_paths["valid"], model.thresholds.drift)
    stored = _stored(both_paths, "drift_scores")

    _assert_same(stored, computed, ["feature", "statistic"], ["n_reference", "n_current"])
    drifted = stored[stored["drifted"].astype(bool)]
    assert "income" in set(drifted["feature"])
    assert {"null_rate_change", "ks", "chi2"} <= set(stored["statistic"])


def test_subgroup_metrics_equal_fairness_on_frames(both_paths):
    """subgroup_metrics equals subgroup_and_overall_metrics of the champion's ok rows with their latest
    label attached from the raw label files, for every segment, intersection and summary row."""
    model = both_paths["model"]
    rows, _ = attach_labels(both_paths["champion"], both_paths["labels"])
    today, _ = fairness.subgroup_and_overall_metrics(
        rows, model.segments, model.segment_intersections, min_n=model.thresholds.subgroups.min_n
    )
    computed = today.reindex(columns=result_columns("subgroup_metrics"))
    stored = _stored(both_paths, "subgroup_metrics")

    _assert_same(stored, computed, ["segment", "segment_value", "metric"], ["n", "rows", "labelled"])
    assert "__missing__" in set(stored.loc[stored["segment"] == "sex", "segment_value"])
    assert (stored["segment_value"] == ALL).any() and (stored["segment"] == "age_band*sex").any()


def _serving_from_frame(day: pd.DataFrame) -> pd.DataFrame:
    """serving_metrics of every valid row (both roles, both statuses) with pandas and numpy: latency
    percentiles interpolated linearly (np.quantile's default), requests, errors, the busiest UTC hour."""
    frame = pd.DataFrame(
        {
            "role": day["role"].astype(object),
            "model_version": day["model_version"].astype(object),
            "latency": day["latency_ms"].astype(float),
            "error": (day["status"] == "error").to_numpy(),
            "hour": pd.to_datetime(day["ts"], utc=True).dt.floor("h"),
        }
    )
    both = pd.concat([frame, frame.assign(role=ALL, model_version=ALL)], ignore_index=True)
    rows = []
    for (role, version), group in both.groupby(["role", "model_version"], sort=True):
        latency = group["latency"].dropna().to_numpy()
        p50, p95, p99 = np.quantile(latency, [0.5, 0.95, 0.99])
        rows.append(
            {
                "role": role,
                "model_version": version,
                "latency_p50_ms": p50,
                "latency_p95_ms": p95,
                "latency_p99_ms": p99,
                "requests": len(group),
                "peak_requests_per_hour": group.groupby("hour").size().max(),
                "error_rate": group["error"].sum() / len(group),
                "errors": int(group["error"].sum()),
            }
        )
    return pd.DataFrame(rows)


def test_serving_metrics_equal_numpy_percentiles(both_paths):
    """serving_metrics (aggregated in DuckDB, percentiles per group in numpy) equals the same figures
    computed with pandas and np.quantile from the valid rows, per role and version and model-wide."""
    computed = _serving_from_frame(both_paths["valid"])
    stored = _stored(both_paths, "serving_metrics")

    _assert_same(
        stored, computed, ["role", "model_version"], ["requests", "errors", "peak_requests_per_hour"]
    )
    assert set(stored["role"]) == {"champion", "shadow", ALL}
    assert stored.loc[stored["role"] == "champion", "errors"].iloc[0] == len(ERRORS)
