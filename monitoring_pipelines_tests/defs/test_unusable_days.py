"""Issue #16 through Dagster: a day whose own file lacks a column is stopped by `snapshot_usable` alone
(nothing downstream writes a row for it), and a bad file of the next day does not stop the day."""

from __future__ import annotations

import datetime as dt
import json

from monitoring_pipelines.validation.suite import NEIGHBOUR_FILES
from monitoring_pipelines_tests.conftest import write_parquet
from monitoring_pipelines_tests.defs.test_pipeline_assets import (  # noqa: F401 - `project` is a fixture
    DAY_ASSETS,
    START,
    _count,
    _run,
    project,
)


def _materialized(result) -> set[str]:
    return {
        m.asset_key.to_user_string()
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }


def test_a_column_missing_from_the_days_own_file_stops_the_day(project):  # noqa: F811
    day = START + dt.timedelta(days=5)  # the next day's folder exists, with every column
    path = write_parquet(
        project["config"].data_dir, "credit_default", day, project["frames"][day].drop(columns=["score"])
    )
    result = _run(project, day, raise_on_error=False)
    usable = [e for e in result.get_asset_check_evaluations() if e.check_name == "snapshot_usable"][0]
    assert not usable.passed and str(path) in usable.description and "'score'" in usable.description
    assert _materialized(result) == {"prediction_snapshots"}
    for table in ("prediction_snapshots", "quarantined_predictions", "serving_metrics", "drift_scores"):
        assert _count(project["warehouse"], table, day) == 0, table
    checks = project["warehouse"].query(
        "SELECT check_name FROM monitoring.check_results WHERE partition_date = ? AND NOT passed", [day]
    )
    assert set(checks["check_name"]) == {"snapshot_usable"}  # the one root finding, no error_rate = 1


def test_a_bad_file_of_the_next_day_does_not_stop_the_day(project):  # noqa: F811
    day = START + dt.timedelta(days=4)
    nxt = day + dt.timedelta(days=1)
    bad = write_parquet(
        project["config"].data_dir, "credit_default", nxt, project["frames"][nxt], name="z.parquet"
    )
    bad.write_bytes(b"")
    result = _run(project, day, raise_on_error=False)
    assert result.success
    assert _materialized(result) == set(DAY_ASSETS)
    assert _count(project["warehouse"], "prediction_snapshots", day) == 800
    meta = result.asset_materializations_for_node("prediction_snapshots")[0].metadata
    assert str(bad) in meta["skipped_files"].value
    findings = project["warehouse"].query(
        "SELECT findings FROM monitoring.check_results WHERE partition_date = ? AND check_name = 'validation'",
        [day],
    )
    (skipped,) = [f for f in json.loads(findings["findings"][0]) if f["subject"] == NEIGHBOUR_FILES]
    assert skipped["severity"] == "warning" and str(bad) in skipped["message"]
    blocked = _run(project, nxt, ["prediction_snapshots"], raise_on_error=False)
    usable = [e for e in blocked.get_asset_check_evaluations() if e.check_name == "snapshot_usable"][0]
    assert not usable.passed and str(bad) in usable.description


def test_unusable_labels_are_kept_in_quarantined_labels_not_dropped(project):  # noqa: F811
    from monitoring_pipelines_tests.defs.test_pipeline_assets import _labels

    day = START + dt.timedelta(days=5)
    labels = _labels(project["frames"][day], 5).astype({"label": float})
    labels.loc[:9, "label"] = 2.0  # not 0/1
    labels.loc[10:14, "label"] = float("nan")
    write_parquet(
        project["config"].data_dir, "credit_default", day + dt.timedelta(days=2), labels, kind="labels"
    )
    result = _run(project, day, ["prediction_snapshots", "performance_metrics"])
    kept = project["warehouse"].partition("quarantined_labels", "credit_default", day)
    assert sorted(kept["reason"].value_counts().items()) == [("label in {0, 1}", 10), ("label not null", 5)]
    assert not kept["source_file"].str.startswith("/").any()  # relative to data_dir, like source_file
    meta = result.asset_materializations_for_node("performance_metrics")[0].metadata
    assert meta["invalid_labels"].value == 15
    _run(project, day, ["prediction_snapshots", "performance_metrics"])  # a re-run replaces, never adds
    assert len(project["warehouse"].partition("quarantined_labels", "credit_default", day)) == 15
