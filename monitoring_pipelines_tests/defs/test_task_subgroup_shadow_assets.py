"""subgroup_metrics and shadow_comparisons materialized for a small regression and a small multiclass model:
raw prediction and label files per the data contract, the reference built by its asset, then two judged
days through the real assets; the tables and checks carry the task's metrics and see the injected change."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, MultiPartitionKey, materialize

from monitoring_pipelines.config import load_config
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import write_parquet
from monitoring_pipelines_tests.defs.assets import assets_for

START = dt.date(2026, 6, 1)
REFERENCE_DAYS = 4
JUDGED = [START + dt.timedelta(days=4), START + dt.timedelta(days=5)]
N = 800
REGIONS = ["north", "south", "east", "west"]
CLASSES = ["billing", "tech", "sales", "other"]
THRESHOLDS = {"subgroups": {"min_n": 30}, "shadow": {"min_n": 30, "window_days": 2}}


def model_entry(name: str, task: str) -> dict:
    entry = {
        "name": name,
        "task": task,
        "features": {"numeric": ["distance_km"], "categorical": ["region"]},
        "segments": ["region"],
        "label_delay_days": 2,
        "reference": {
            "start": START.isoformat(),
            "end": (START + dt.timedelta(days=REFERENCE_DAYS - 1)).isoformat(),
        },
        "owner": "ops-ml",
        "thresholds": THRESHOLDS,
    }
    if task == "multiclass_classification":
        entry["classes"] = CLASSES
    return entry


def requests(day: dt.date, seed: int, model_name: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, N), unit="s")
    return pd.DataFrame(
        {
            "request_id": [f"r{day:%Y%m%d}-{i}" for i in range(N)],
            "model_name": model_name,
            "ts": ts,
            "latency_ms": rng.gamma(4, 10, N),
            "status": "ok",
            "distance_km": rng.gamma(3, 2, N),
            "region": rng.choice(REGIONS, N),
        }
    )


def sides(base: pd.DataFrame, day: dt.date, champion: dict, shadow: dict) -> pd.DataFrame:
    """Champion and shadow rows of the same requests (shadow version v2)."""
    frames = []
    for role, version, columns in (("champion", "v1", champion), ("shadow", "v2", shadow)):
        side = base.assign(role=role, model_version=version, **columns)
        side["prediction_id"] = [f"{role}-{day:%Y%m%d}-{i}" for i in range(N)]
        frames.append(side)
    return pd.concat(frames, ignore_index=True)


def regression_day(day: dt.date, seed: int, worse_north: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Delivery minutes; the shadow errs less (sd 3 vs 4). `worse_north` scales the champion's errors in
    region north. No `prediction` column: a regression model need not log a decision."""
    base = requests(day, seed, "delivery_time")
    rng = np.random.default_rng(seed + 100)
    observed = 10 + 4 * base["distance_km"].to_numpy() + rng.normal(0, 3, N)
    scale = np.where(base["region"] == "north", 4 * worse_north, 4.0)
    frame = sides(
        base,
        day,
        {"score": observed + rng.normal(0, 1, N) * scale},
        {"score": observed + rng.normal(0, 3, N)},
    )
    labels = pd.DataFrame(
        {"request_id": base["request_id"], "label": observed, "label_ts": base["ts"] + pd.Timedelta(days=1)}
    )
    return frame, labels


def multiclass_day(
    day: dt.date, seed: int, tech_recall_north: float = 0.8
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ticket routing with probabilities as score__<class> columns; the champion routes 80 % right (region
    north's tech tickets with `tech_recall_north`), the shadow 85 %."""
    base = requests(day, seed, "ticket_routing")
    rng = np.random.default_rng(seed + 200)
    observed = rng.choice(len(CLASSES), N, p=[0.3, 0.3, 0.25, 0.15])

    def side(recall: np.ndarray) -> dict:
        right = rng.random(N) < recall
        predicted = np.where(right, observed, (observed + rng.integers(1, len(CLASSES), N)) % len(CLASSES))
        probs = rng.dirichlet(np.ones(len(CLASSES)), N) * 0.4
        probs[np.arange(N), predicted] += 0.6
        columns = {f"score__{c}": probs[:, j] for j, c in enumerate(CLASSES)}
        return {"prediction": np.asarray(CLASSES, dtype=object)[predicted], **columns}

    recall = np.full(N, 0.8)
    recall[(base["region"] == "north").to_numpy() & (observed == 1)] = tech_recall_north
    frame = sides(base, day, side(recall), side(np.full(N, 0.85)))
    labels = pd.DataFrame(
        {
            "request_id": base["request_id"],
            "label": np.asarray(CLASSES, dtype=object)[observed],
            "label_ts": base["ts"] + pd.Timedelta(days=1),
        }
    )
    return frame, labels


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import yaml

    from monitoring_pipelines_tests.conftest import DEMO_CONFIG

    tmp = tmp_path_factory.mktemp("tasks")
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data_dir"] = str(tmp / "data")
    raw["warehouse"] = str(tmp / "data" / "warehouse.duckdb")
    raw["models"] = [
        model_entry("delivery_time", "regression"),
        model_entry("ticket_routing", "multiclass_classification"),
    ]
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path)
    for k in range(REFERENCE_DAYS + len(JUDGED)):
        day = START + dt.timedelta(days=k)
        judged = day in JUDGED
        for name, make in (
            ("delivery_time", lambda d, s, j: regression_day(d, s, worse_north=3.0 if j else 1.0)),
            ("ticket_routing", lambda d, s, j: multiclass_day(d, s, tech_recall_north=0.2 if j else 0.8)),
        ):
            frame, labels = make(day, k + 1, judged)
            write_parquet(config.data_dir, name, day, frame)
            write_parquet(
                config.data_dir,
                name,
                day + dt.timedelta(days=1),
                labels,
                kind="labels",
                name=f"labels-{day}.parquet",
            )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("models", ["delivery_time", "ticket_routing"])
    resources = {"monitoring": MonitoringResource(config_path=str(path))}
    assets = assets_for(config)
    results = {}
    for name in ("delivery_time", "ticket_routing"):
        assert materialize(
            [assets.reference_profiles], partition_key=name, resources=resources, instance=instance
        ).success
        for day in JUDGED:
            key = MultiPartitionKey({"date": day.isoformat(), "model": name})
            results[name, day] = materialize(
                [assets.prediction_snapshots, assets.subgroup_metrics, assets.shadow_comparisons],
                partition_key=key,
                resources=resources,
                instance=instance,
            )
            assert results[name, day].success
    return {"warehouse": Warehouse(config.warehouse), "results": results}


def _table(project, table: str, model: str, day: dt.date) -> pd.DataFrame:
    return project["warehouse"].query(
        f"SELECT * FROM monitoring.{table} WHERE model_name = ? AND partition_date = ?", [model, day]
    )


def _findings(project, model: str, day: dt.date, check: str) -> list[dict]:
    rows = project["warehouse"].query(
        "SELECT findings FROM monitoring.check_results WHERE model_name = ? AND partition_date = ? AND check_name = ?",
        [model, day, check],
    )
    assert len(rows) == 1, f"{check} not recorded for {model} {day}"
    raw = rows["findings"].iloc[0]
    return json.loads(raw) if isinstance(raw, str) else list(raw or [])


def test_regression_subgroups_and_shadow_assets(project):
    day = JUDGED[-1]
    sub = _table(project, "subgroup_metrics", "delivery_time", day)
    assert set(sub["metric"]) == {"mae", "bias", "mae_ratio"}
    north = sub[(sub["segment_value"] == "north")].set_index("metric")
    assert north.loc["mae", "n"] == north.loc["mae", "labelled"] > 150
    assert north.loc["mae_ratio", "ci_low"] > 2  # the champion's north errors are 3× the rest's
    degraded = [
        f
        for f in _findings(project, "delivery_time", day, "differential_degradation")
        if f["severity"] == "critical"
    ]
    assert [(f["subject"], f["metric"]) for f in degraded] == [("region=north", "mae")]

    comparisons = _table(project, "shadow_comparisons", "delivery_time", day)
    whole = comparisons[comparisons["segment"] == "__all__"].set_index("metric")
    assert {"mae", "rmse", "mean_score", "score_spearman"} <= set(whole.index)
    assert whole.loc["mae", "delta"] < 0 and whole.loc["mae", "n"] == N
    [rec] = _table(project, "shadow_recommendations", "delivery_time", day).to_dict("records")
    assert rec["primary_metric"] == "mae" and rec["verdict"] == "promote" and rec["days_pooled"] == 2


def test_multiclass_subgroups_and_shadow_assets(project):
    day = JUDGED[-1]
    sub = _table(project, "subgroup_metrics", "ticket_routing", day)
    assert {"accuracy", "accuracy_shortfall", "recall:tech", "recall:billing"} <= set(sub["metric"])
    north = sub[sub["segment_value"] == "north"].set_index("metric")
    assert north.loc["recall:tech", "value"] < 0.4
    degraded = [
        f
        for f in _findings(project, "ticket_routing", day, "differential_degradation")
        if f["severity"] == "critical"
    ]
    assert ("region=north", "recall:tech") in {(f["subject"], f["metric"]) for f in degraded}
    assert {f["subject"] for f in degraded} == {"region=north"}

    comparisons = _table(project, "shadow_comparisons", "ticket_routing", day)
    whole = comparisons[comparisons["segment"] == "__all__"].set_index("metric")
    assert {"accuracy", "agreement_rate", "mean_score", *(f"recall:{c}" for c in CLASSES)} <= set(whole.index)
    assert whole.loc["accuracy", "delta"] > 0
    [rec] = _table(project, "shadow_recommendations", "ticket_routing", day).to_dict("records")
    assert rec["primary_metric"] == "accuracy" and rec["days_pooled"] == 2
