"""A regression and a multiclass model through the real assets (dagster.materialize on small generated files):
reference_profiles carries the task's estimator, drift_scores the task's prediction features, performance_metrics
the task's metrics, the target_drift check and (multiclass) the confusion matrix."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, MultiPartitionKey, materialize

from monitoring_pipelines.config import load_config
from monitoring_pipelines.core.profiles import PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE, SCORE_FEATURE
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import write_parquet
from monitoring_pipelines_tests.core.test_task_performance import CLASSES, multiclass_day, regression_day
from monitoring_pipelines_tests.defs.assets import assets_for

START = dt.date(2026, 6, 1)
REFERENCE_DAYS = 5
ROWS = 1200
REGRESSION, MULTICLASS = "delivery", "routing"


def raw_log(model: str, day: dt.date, snapshot_rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw prediction log and label file of a model-day from rows in the snapshot representation
    (core test generators): regression logs `score` (no prediction); multiclass the class name and
    score__<class>; labels carry the observed value or class name."""
    n = len(snapshot_rows)
    ids = [f"{model}-{day:%Y%m%d}-{i}" for i in range(n)]
    ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(n) * (86_000 // n), unit="s")
    log = pd.DataFrame(
        {
            "prediction_id": ids,
            "request_id": ids,
            "model_name": model,
            "model_version": "v1",
            "role": "champion",
            "ts": ts,
            "latency_ms": 20.0,
            "status": "ok",
        }
    )
    label = snapshot_rows["label"].to_numpy()
    if model == REGRESSION:
        log = log.assign(
            score=snapshot_rows["score"], distance=snapshot_rows["distance"], zone=snapshot_rows["zone"]
        )
        labelled = np.isfinite(label)
        values = label[labelled]
    else:
        log = log.assign(prediction=snapshot_rows["predicted_class"], length=snapshot_rows["length"])
        log["channel"] = snapshot_rows["channel"].to_numpy()
        for c in CLASSES:
            log[f"score__{c}"] = snapshot_rows[f"score__{c}"].to_numpy()
        labelled = np.isfinite(label)
        values = np.asarray(CLASSES, dtype=object)[label[labelled].astype(int)]
    labels = pd.DataFrame(
        {
            "request_id": np.asarray(ids)[labelled],
            "label": values,
            "label_ts": ts[labelled] + pd.Timedelta(hours=20),
        }
    )
    return log, labels


@pytest.fixture
def project(config_dict, write_config):
    end = START + dt.timedelta(days=REFERENCE_DAYS - 1)
    window = {"start": START.isoformat(), "end": end.isoformat()}
    config_dict["models"] += [
        {
            "name": REGRESSION,
            "task": "regression",
            "features": {"numeric": ["distance"], "categorical": ["zone"]},
            "reference": window,
            "label_delay_days": 2,
        },
        {
            "name": MULTICLASS,
            "task": "multiclass_classification",
            "classes": CLASSES,
            "features": {"numeric": ["length"], "categorical": ["channel"]},
            "reference": window,
            "label_delay_days": 2,
        },
    ]
    config_path = write_config(config_dict)
    config = load_config(config_path)
    days = {}
    for model, make_day, seed in ((REGRESSION, regression_day, 5), (MULTICLASS, multiclass_day, 6)):
        rng = np.random.default_rng(seed)
        for k in range(REFERENCE_DAYS + 2):
            day = START + dt.timedelta(days=k)
            # the last day is a label shift: regression outcomes 3 units up, multiclass class billing gains
            shifted = k == REFERENCE_DAYS + 1
            if model == REGRESSION:
                rows = make_day(ROWS, rng)
                if shifted:
                    rows["label"] += 3.0
            else:
                prior = np.array([0.4 + (1.5 if shifted else 0.0), 0.2, 0.0, -0.3])
                rows = make_day(ROWS, rng, prior=prior)
            log, labels = raw_log(model, day, rows)
            write_parquet(config.data_dir, model, day, log)
            write_parquet(
                config.data_dir,
                model,
                day + dt.timedelta(days=1),
                labels,
                kind="labels",
                name=f"l-{day}.parquet",
            )
            days[(model, day)] = rows
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("models", [REGRESSION, MULTICLASS])
    resources = {"monitoring": MonitoringResource(config_path=str(config_path))}
    assets = assets_for(config)
    for model in (REGRESSION, MULTICLASS):
        result = materialize(
            [assets.reference_profiles], partition_key=model, resources=resources, instance=instance
        )
        assert result.success
    return {"instance": instance, "resources": resources, "assets": assets, "wh": Warehouse(config.warehouse)}


def _run(project, model: str, day: dt.date) -> None:
    result = materialize(
        [
            project["assets"].prediction_snapshots,
            project["assets"].drift_scores,
            project["assets"].performance_metrics,
        ],
        partition_key=MultiPartitionKey({"date": day.isoformat(), "model": model}),
        resources=project["resources"],
        instance=project["instance"],
    )
    assert result.success


def _checks(wh: Warehouse, model: str, day: dt.date) -> dict[str, tuple[bool, list[str]]]:
    rows = wh.query(
        "SELECT check_name, passed, findings FROM monitoring.check_results WHERE model_name = ? AND "
        "partition_date = ? AND asset = 'performance_metrics'",
        [model, day],
    )
    return {
        r.check_name: (
            bool(r.passed),
            sorted(f["metric"] for f in json.loads(r.findings) if f["severity"] in ("warning", "critical")),
        )
        for r in rows.itertuples()
    }


def test_regression_and_multiclass_models_through_the_assets(project) -> None:
    wh = project["wh"]
    quiet, shifted = START + dt.timedelta(days=REFERENCE_DAYS), START + dt.timedelta(days=REFERENCE_DAYS + 1)

    profiles = wh.query("SELECT model_name, feature, profile FROM monitoring.reference_profiles")
    features = {m: set(g["feature"]) for m, g in profiles.groupby("model_name")}
    assert features[REGRESSION] == {"distance", "zone", SCORE_FEATURE}
    assert features[MULTICLASS] == {"length", "channel", SCORE_FEATURE, PREDICTED_CLASS_FEATURE}
    score_rows = profiles[profiles["feature"] == SCORE_FEATURE].set_index("model_name")["profile"]
    assert json.loads(score_rows[REGRESSION])["estimator"]["kind"] == "error_profile"
    assert json.loads(score_rows[MULTICLASS])["estimator"]["kind"] == "multiclass_calibration"

    for model in (REGRESSION, MULTICLASS):
        for day in (quiet, shifted):
            _run(project, model, day)

    metrics = wh.query(
        "SELECT model_name, partition_date, metric, estimated, value, n FROM monitoring.performance_metrics"
    )
    regression = metrics[
        (metrics["model_name"] == REGRESSION) & (metrics["partition_date"] == pd.Timestamp(quiet))
    ]
    assert {(m, e) for m, e in zip(regression["metric"], regression["estimated"], strict=True)} == {
        *((m, False) for m in ("mae", "rmse", "median_ae", "mape", "smape", "r2", "bias", "label_mean")),
        ("mae", True),
        ("rmse", True),
    }
    multiclass = metrics[
        (metrics["model_name"] == MULTICLASS) & (metrics["partition_date"] == pd.Timestamp(quiet))
    ]
    measured = set(multiclass.loc[~multiclass["estimated"], "metric"])
    assert {"accuracy", "macro_f1", "weighted_f1", "log_loss", "recall:tech", "label_share:other"} <= measured
    assert {"accuracy", "recall:tech"} <= set(multiclass.loc[multiclass["estimated"], "metric"])

    confusion = wh.query(
        "SELECT observed_class, predicted_class, n FROM monitoring.confusion_matrix WHERE model_name = ? "
        "AND partition_date = ?",
        [MULTICLASS, quiet],
    )
    accuracy_n = int(
        multiclass.loc[(multiclass["metric"] == "accuracy") & ~multiclass["estimated"], "n"].iloc[0]
    )
    assert len(confusion) == len(CLASSES) ** 2 and confusion["n"].sum() == accuracy_n == ROWS
    correct = confusion.loc[confusion["observed_class"] == confusion["predicted_class"], "n"].sum()
    accuracy = multiclass.loc[(multiclass["metric"] == "accuracy") & ~multiclass["estimated"], "value"].iloc[
        0
    ]
    assert correct / ROWS == pytest.approx(accuracy)

    drift = wh.query("SELECT DISTINCT model_name, feature FROM monitoring.drift_scores")
    drifted = {m: set(g["feature"]) for m, g in drift.groupby("model_name")}
    assert PREDICTION_FEATURE not in drifted[REGRESSION] and SCORE_FEATURE in drifted[REGRESSION]
    assert PREDICTED_CLASS_FEATURE in drifted[MULTICLASS] and PREDICTION_FEATURE not in drifted[MULTICLASS]

    for model, moved in ((REGRESSION, "label_mean"), (MULTICLASS, "label_share:billing")):
        quiet_checks = _checks(wh, model, quiet)
        assert quiet_checks["performance_degradation"] == (True, []), (model, quiet_checks)
        assert quiet_checks["target_drift"] == (True, []), (model, quiet_checks)
        passed, failed = _checks(wh, model, shifted)["target_drift"]
        assert not passed and moved in failed, (model, failed)
