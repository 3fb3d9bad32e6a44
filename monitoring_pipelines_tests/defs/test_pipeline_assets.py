"""The Dagster layer on small generated data: real assets materialized with dagster.materialize."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    MarkdownMetadataValue,
    MultiPartitionKey,
    materialize,
)

from monitoring_pipelines.config import load_config
from monitoring_pipelines.defs.checks import CHECKS_TAG
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import synthetic_day, write_parquet
from monitoring_pipelines_tests.defs.assets import assets_for

START = dt.date(2026, 6, 1)
DAY_ASSETS = [
    "prediction_snapshots",
    "drift_scores",
    "performance_metrics",
    "subgroup_metrics",
    "serving_metrics",
    "shadow_comparisons",
]


def _labels(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(len(frame)) < frame["score"].to_numpy()).astype(int)
    return pd.DataFrame(
        {"request_id": frame["request_id"], "label": y, "label_ts": frame["ts"] + pd.Timedelta(days=3)}
    )


@pytest.fixture
def project(tmp_path, config_dict, write_config):
    config_dict["models"][0]["reference"] = {"start": START.isoformat(), "end": "2026-06-04"}
    config_path = write_config(config_dict)
    config = load_config(config_path)
    frames = {}
    for k in range(7):
        day = START + dt.timedelta(days=k)
        frames[day] = synthetic_day(day, 800, seed=k + 1)
        write_parquet(config.data_dir, "credit_default", day, frames[day])
    for day in list(frames)[:4]:  # reference days are labelled
        labels = _labels(frames[day], 99)
        write_parquet(
            config.data_dir,
            "credit_default",
            day + dt.timedelta(days=3),
            labels,
            kind="labels",
            name=f"labels-{day}.parquet",
        )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("models", ["credit_default", "churn_propensity"])
    resources = {"monitoring": MonitoringResource(config_path=str(config_path))}
    assets = assets_for(config)
    result = materialize(
        [assets.reference_profiles], partition_key="credit_default", resources=resources, instance=instance
    )
    assert result.success
    return {
        "config": config,
        "instance": instance,
        "resources": resources,
        "frames": frames,
        "warehouse": Warehouse(config.warehouse),
        "assets": assets,
    }


def _run(project, day: dt.date, assets=DAY_ASSETS, raise_on_error=True):
    key = MultiPartitionKey({"date": day.isoformat(), "model": "credit_default"})
    return materialize(
        [getattr(project["assets"], name) for name in assets],
        partition_key=key,
        resources=project["resources"],
        instance=project["instance"],
        raise_on_error=raise_on_error,
    )


def _count(warehouse: Warehouse, table: str, day: dt.date) -> int:
    return int(
        warehouse.query(f"SELECT count(*) AS n FROM monitoring.{table} WHERE partition_date = ?", [day])["n"][
            0
        ]
    )


def test_rerunning_a_partition_replaces_every_table(project):
    day = START + dt.timedelta(days=5)
    _run(project, day)
    wh = project["warehouse"]
    tables = [
        "prediction_snapshots",
        "drift_scores",
        "performance_metrics",
        "subgroup_metrics",
        "serving_metrics",
        "check_results",
    ]
    first = {t: _count(wh, t, day) for t in tables}
    _run(project, day)
    assert {t: _count(wh, t, day) for t in tables} == first
    assert first["prediction_snapshots"] == 800 and all(first.values())


def test_valid_plus_quarantined_equals_rows_read(project, tmp_path):
    day = START + dt.timedelta(days=6)
    frame = project["frames"][day].copy()
    frame.loc[:9, "score"] = 4.0
    write_parquet(project["config"].data_dir, "credit_default", day, frame)
    result = _run(project, day, ["prediction_snapshots"])
    meta = result.asset_materializations_for_node("prediction_snapshots")[0].metadata
    assert meta["rows_read"].value == 800 and meta["rows_quarantined"].value == 10
    assert _count(project["warehouse"], "quarantined_predictions", day) == 10
    assert _count(project["warehouse"], "prediction_snapshots", day) == 790
    validation = [e for e in result.get_asset_check_evaluations() if e.check_name == "validation"][0]
    assert not validation.passed


def test_unusable_day_blocks_downstream_assets(project):
    day = START + dt.timedelta(days=6)
    write_parquet(
        project["config"].data_dir, "credit_default", day, project["frames"][day].drop(columns=["score"])
    )
    result = _run(project, day, raise_on_error=False)
    assert not result.success
    usable = [e for e in result.get_asset_check_evaluations() if e.check_name == "snapshot_usable"][0]
    assert not usable.passed and "score" in usable.description
    materialized = {
        m.asset_key.to_user_string()
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }
    assert materialized == {"prediction_snapshots"}
    assert _count(project["warehouse"], "drift_scores", day) == 0


def test_late_labels_turn_estimates_into_measurements(project):
    day = START + dt.timedelta(days=5)
    _run(project, day, ["prediction_snapshots", "performance_metrics"])
    wh = project["warehouse"]
    before = wh.partition("performance_metrics", "credit_default", day)
    before = before[~before["metric"].str.startswith("outcome:")]
    assert before["estimated"].all() and (before["metric"] == "auc").any()
    write_parquet(
        project["config"].data_dir,
        "credit_default",
        day + dt.timedelta(days=2),
        _labels(project["frames"][day], 5),
        kind="labels",
    )
    _run(project, day, ["prediction_snapshots", "performance_metrics"])
    after = wh.partition("performance_metrics", "credit_default", day)
    measured = after[~after["estimated"].astype(bool) & ~after["metric"].str.startswith("outcome:")]
    assert set(measured["metric"]) >= {"auc", "accuracy", "brier"}
    assert measured["labelled_fraction"].max() == pytest.approx(1.0)


def test_a_unit_bug_fires_critical_drift(project):
    day = START + dt.timedelta(days=6)
    frame = project["frames"][day].copy()
    frame["income"] = frame["income"] / 1000
    write_parquet(project["config"].data_dir, "credit_default", day, frame)
    result = _run(project, day, ["prediction_snapshots", "drift_scores"])
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["critical_drift"].passed
    assert "income" in checks["critical_drift"].metadata["failed_subjects"].value
    rows = project["warehouse"].partition("drift_scores", "credit_default", day)
    assert set(rows.loc[rows["drifted"].astype(bool), "feature"]) == {"income"}
    lineage = result.asset_materializations_for_node("drift_scores")[0].metadata["dagster/column_lineage"]
    sources = {d.column_name for d in lineage.column_lineage.deps_by_column["value"]}
    assert {"income", "region", "score"} <= sources


def test_a_failing_model_day_is_marked_on_its_partition_with_what_failed(project):
    """The UI's check partition grid reads each check's latest status per model-day; the materialization
    of the model-day says which checks failed on it (tag and metadata)."""
    clean, bad = START + dt.timedelta(days=5), START + dt.timedelta(days=6)
    frame = project["frames"][bad].copy()
    frame["income"] = frame["income"] / 1000
    write_parquet(project["config"].data_dir, "credit_default", bad, frame)
    _run(project, clean, ["prediction_snapshots", "drift_scores"])
    result = _run(project, bad, ["prediction_snapshots", "drift_scores"])
    key = f"{bad.isoformat()}|credit_default"

    evaluations = result.get_asset_check_evaluations()
    assert {e.partition for e in evaluations} == {key}
    critical = next(e for e in evaluations if e.check_name == "critical_drift")
    assert critical.description.startswith(f"credit_default {bad}: failed (critical) on income. ")
    assert critical.metadata["partition_date"].value == bad.isoformat()
    assert isinstance(critical.metadata["worst_features"], MarkdownMetadataValue)

    (materialization,) = result.asset_materializations_for_node("drift_scores")
    assert materialization.tags[CHECKS_TAG] == "failed"
    assert materialization.metadata["failed_checks"].value.startswith("critical_drift (critical): income")
    summary = materialization.metadata["summary"].value.splitlines()
    assert summary[2].startswith("| `income` | critical: psi ")  # the alert's severity and statistic

    info = project["instance"].event_log_storage.get_asset_check_partition_info(
        [AssetCheckKey(AssetKey("drift_scores"), "critical_drift")]
    )
    status = {i.partition_key: i.latest_execution_status.value for i in info}
    assert status == {
        key: "FAILED",
        f"{clean.isoformat()}|credit_default": "SUCCEEDED",
    }


METRIC_TABLES = {
    "prediction_snapshots": ["prediction_id"],
    "quarantined_predictions": ["prediction_id", "reason"],
    "validation_results": ["expectation"],
    "drift_scores": ["feature", "statistic"],
    "performance_metrics": ["metric", "estimated"],
    "subgroup_metrics": ["segment", "segment_value", "metric"],
    "serving_metrics": ["role", "model_version"],
    "check_results": ["asset", "check_name"],
}


def _tables(project, day: dt.date) -> dict[str, pd.DataFrame]:
    out = {}
    for table, key in METRIC_TABLES.items():
        frame = project["warehouse"].partition(table, "credit_default", day)
        frame = frame.drop(columns=["run_id", "evaluated_at"], errors="ignore")
        out[table] = frame.sort_values(key).reset_index(drop=True)
    return out


def test_every_path_to_a_model_day_writes_the_same_tables(project, monkeypatch):
    """A day held in memory, a day held in a temporary DuckDB file (the path of days larger than
    FILE_BACKED_BYTES) and a day the metric assets read back from the warehouse give the same rows."""
    import monitoring_pipelines.storage.snapshot as snapshot_module

    day = START + dt.timedelta(days=6)
    frame = project["frames"][day].copy()
    frame["income"] = frame["income"] * 1.5
    frame.loc[:4, "score"] = 3.0  # a few rows quarantined
    write_parquet(project["config"].data_dir, "credit_default", day, frame)
    labels = _labels(project["frames"][day], 7)
    write_parquet(
        project["config"].data_dir, "credit_default", day + dt.timedelta(days=2), labels, kind="labels"
    )
    _run(project, day)
    in_memory = _tables(project, day)
    assert all(len(t) for t in in_memory.values())

    monkeypatch.setattr(snapshot_module, "FILE_BACKED_BYTES", 0)
    result = _run(project, day)
    assert result.success
    in_file = _tables(project, day)

    monkeypatch.setattr(snapshot_module, "FILE_BACKED_BYTES", 256 * 2**20)
    _run(project, day, [name for name in DAY_ASSETS if name != "prediction_snapshots"])
    from_warehouse = _tables(project, day)

    for table in METRIC_TABLES:
        pd.testing.assert_frame_equal(in_memory[table], in_file[table], check_exact=False, rtol=1e-9)
        pd.testing.assert_frame_equal(in_memory[table], from_warehouse[table], check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("assets", [DAY_ASSETS, ["prediction_snapshots"]])
def test_a_failed_snapshot_write_fails_the_run(project, monkeypatch, assets):
    day = START + dt.timedelta(days=5)
    original = Warehouse.replace_from

    def failing(self, con, writes):
        if any(table == "prediction_snapshots" for table, *_ in writes):
            raise OSError("disk full")
        return original(self, con, writes)

    monkeypatch.setattr(Warehouse, "replace_from", failing)
    result = _run(project, day, assets=assets, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_failure]
    text = " ".join(str(e.event_specific_data) for e in failures)
    assert "disk full" in text
    if len(assets) > 1:  # written in the background: the step that waited for it names the write
        assert "writing prediction_snapshots of credit_default" in text
    assert _count(project["warehouse"], "prediction_snapshots", day) == 0


def test_scores_outside_the_reference_make_the_estimate_untrusted_and_the_day_unknown(project):
    """A unit bug pushes every score to the extremes: CBPE would read a near-perfect model. The estimated
    rows say they are untrusted, and the performance checks neither pass nor fail the day."""
    day = START + dt.timedelta(days=6)
    frame = project["frames"][day].copy()
    logit = np.log(frame["score"] / (1 - frame["score"]))
    frame["score"] = 1 / (1 + np.exp(-12 * logit))
    frame["prediction"] = (frame["score"] >= 0.5).astype(int)
    write_parquet(project["config"].data_dir, "credit_default", day, frame)
    result = _run(project, day, ["prediction_snapshots", "performance_metrics"])
    rows = project["warehouse"].partition("performance_metrics", "credit_default", day)
    estimated = rows[rows["estimated"].astype(bool) & ~rows["metric"].str.startswith("outcome:")]
    assert len(estimated) and not estimated["trusted"].astype(bool).any()
    assert estimated["estimate_note"].str.startswith("untrusted: ").all()
    assert rows.loc[~rows["estimated"].astype(bool), "trusted"].isna().all()
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    for name in ("performance_degradation", "performance_critical_drop"):
        assert not checks[name].passed and "not judged" in checks[name].description
        assert checks[name].metadata["status"].value == "unknown"
    stored = project["warehouse"].partition("check_results", "credit_default", day)
    stored = stored[stored["check_name"].str.startswith("performance_")]
    assert set(stored["severity"]) == {"unknown"} and not stored["passed"].any()
