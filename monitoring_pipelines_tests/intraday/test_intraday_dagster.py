"""The intraday watch and the gap alerts through Dagster on small simulated data: the real sensors, the
real `intraday_today` asset, the real nightly run, one warehouse. The sensors' clock is the demo's live
clock file (`simulate --live`), set to the time a test needs, so nothing sleeps."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance, MultiPartitionKey, build_sensor_context, materialize

from monitoring_pipelines import alerting_service as svc
from monitoring_pipelines.config import load_config
from monitoring_pipelines.defs.gaps import DATE_TAG, MODEL_TAG, failed_nightly_days, monitoring_gaps
from monitoring_pipelines.defs.intraday import LOOK_AT_TAG, intraday_today, intraday_watch
from monitoring_pipelines.defs.resources import MonitoringResource, TrackerResource
from monitoring_pipelines.intraday_config import LIVE_CLOCK_FILE
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import DEMO_CONFIG, write_parquet
from monitoring_pipelines_tests.defs.assets import assets_for
from monitoring_pipelines_tests.intraday.helpers import (
    START,
    at,
    between,
    day_of,
    sim_day,
    with_errors,
    with_nulls,
)

K = 10  # the watched day
SERVING_KEY = "credit_default/serving_metrics.serving_slo/champion:v3"
INCOME_KEY = "credit_default/drift_scores.data_quality/income"


def set_clock(data_dir: Path, now: pd.Timestamp) -> None:
    """The live clock the sensors read: `now` from this moment on, at real speed."""
    clock = {"real_start": pd.Timestamp.now(tz="UTC").isoformat(), "sim_start": now.isoformat(), "speed": 1.0}
    (data_dir / LIVE_CLOCK_FILE).write_text(json.dumps(clock))


@pytest.fixture
def project(tmp_path):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data_dir"] = str(tmp_path / "data")
    raw["warehouse"] = str(tmp_path / "data" / "warehouse.duckdb")
    model = next(m for m in raw["models"] if m["name"] == "credit_default")
    model["reference"] = {"start": START.isoformat(), "end": day_of(3).isoformat()}
    model["intraday"] = {"every_minutes": 15}
    raw["models"] = [model]
    raw["partitions_start"] = day_of(K - 1).isoformat()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path)
    for k in range(4):
        write_parquet(config.data_dir, "credit_default", day_of(k), sim_day(k))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("models", ["credit_default"])
    resources = {"monitoring": MonitoringResource(config_path=str(path)), "tracker": TrackerResource()}
    assets = assets_for(config)
    assert materialize(
        [assets.reference_profiles], partition_key="credit_default", resources=resources, instance=instance
    ).success
    yield {
        "config": config,
        "instance": instance,
        "resources": resources,
        "assets": assets,
        "warehouse": Warehouse(config.warehouse),
    }
    instance.dispose()


def _tick(project, sensor, cursor=None):
    """One evaluation of the sensor: its result and the cursor it leaves."""
    with build_sensor_context(
        instance=project["instance"], cursor=cursor, resources=project["resources"]
    ) as context:
        result = sensor(context)
        return result, getattr(result, "cursor", None) or context.cursor


def _alerts(project) -> pd.DataFrame:
    return project["warehouse"].table("alerts")


def test_intraday_looks_alert_in_minutes_and_the_nightly_run_supersedes_them(project):
    config = project["config"]
    day = day_of(K)
    frame = with_errors(sim_day(K), at(K, 10), at(K, 10, 30))
    frame = with_nulls(frame, "income", at(K, 14), at(K, 14, 15))
    write_parquet(config.data_dir, "credit_default", day, frame)

    # 10:16: the sensor asks for the 10:15 look of the model; the look finds the error spike and pages
    set_clock(config.data_dir, at(K, 10, 16))
    result, cursor = _tick(project, intraday_watch)
    (request,) = result.run_requests
    assert request.partition_key == "credit_default"
    assert request.tags[LOOK_AT_TAG] == at(K, 10, 15).isoformat()
    again, _ = _tick(project, intraday_watch, cursor)
    assert again.run_requests == []  # the slot is taken: one look per every_minutes
    run = materialize(
        [intraday_today],
        partition_key="credit_default",
        tags=request.tags,
        resources=project["resources"],
        instance=project["instance"],
    )
    assert run.success
    meta = run.asset_materializations_for_node("intraday_today")[0].metadata
    assert meta["failing_findings"].value >= 1 and meta["notifications_enqueued"].value == 1
    alerts = _alerts(project).set_index("dedup_key")
    serving = alerts.loc[SERVING_KEY]
    assert serving["severity"] == "critical" and serving["status"] == "open"
    assert pd.Timestamp(serving["created_at"]) == at(K, 10, 15)
    looks = project["warehouse"].table("intraday_results")
    assert set(looks["look_at"].map(pd.Timestamp)) == {at(K, 10, 15)}
    assert {"serving_slo", "data_quality", "feature_drift", "critical_drift", "volume"} <= set(
        looks["check_name"]
    )

    # 14:15: the null spike of income
    tags = {LOOK_AT_TAG: at(K, 14, 15).isoformat()}
    assert materialize(
        [intraday_today],
        partition_key="credit_default",
        tags=tags,
        resources=project["resources"],
        instance=project["instance"],
    ).success
    alerts = _alerts(project)
    assert INCOME_KEY in set(alerts["dedup_key"])
    triggers_before = project["warehouse"].table("notifications")
    assert (triggers_before["kind"] == "trigger").sum() == 1

    # the nightly run of that day: it confirms the error spike (same alert) and not the 15-minute null spike
    key = MultiPartitionKey({"date": day.isoformat(), "model": "credit_default"})
    a = project["assets"]
    nightly = [
        a.prediction_snapshots,
        a.drift_scores,
        a.performance_metrics,
        a.subgroup_metrics,
        a.serving_metrics,
        a.shadow_comparisons,
        a.alerts,
        a.backlog_items,
    ]
    night = materialize(
        nightly, partition_key=key, resources=project["resources"], instance=project["instance"]
    )
    assert night.success
    run = project["instance"].get_run_by_id(night.run_id)
    assert (run.tags[DATE_TAG], run.tags[MODEL_TAG]) == (day.isoformat(), "credit_default")
    # the monitoring_gaps sensor reads the run's outcome from the instance by the model-day's tags
    assert failed_nightly_days(project["instance"], "credit_default", day_of(K + 1), 1) == set()
    after = _alerts(project)
    assert after["alert_id"].is_unique and after["dedup_key"].is_unique  # no duplicate alert
    serving_after = after.set_index("dedup_key").loc[SERVING_KEY]
    assert serving_after["alert_id"] == serving["alert_id"] and serving_after["status"] == "open"
    assert pd.Timestamp(serving_after["created_at"]) == at(K, 10, 15)
    income = after.set_index("dedup_key").loc[INCOME_KEY]
    assert income["status"] == "resolved" and income["resolved_by"] == "superseded"
    outbox = project["warehouse"].table("notifications")
    assert (outbox["kind"] == "trigger").sum() == 1  # nothing announced twice
    assert outbox["notification_id"].is_unique

    # time to detection: from the spike's first failed request to the 10:15 look's alert, in minutes
    kpis, _ = svc.compute_kpis(project["warehouse"], config)
    spike = frame[between(frame, at(K, 10), at(K, 10, 30)) & (frame["role"] == "champion").to_numpy()]
    expected = (at(K, 10, 15) - spike["ts"].min()).total_seconds() / 60
    assert kpis.values["mean_time_to_detect_minutes"] == pytest.approx(expected, abs=1e-3)


def test_a_model_whose_files_stop_at_12_gets_a_no_data_alert_within_the_configured_time(project):
    config = project["config"]
    frame = sim_day(K)
    write_parquet(config.data_dir, "credit_default", day_of(K), frame[frame["ts"] < at(K, 12)])
    # gaps.no_data_hours defaults to 2: at 13:55 the silence is shorter, at 14:00 it is long enough
    set_clock(config.data_dir, at(K, 13, 55))
    _, cursor = _tick(project, monitoring_gaps)
    assert "no_predictions" not in set(_alerts(project)["check_name"])
    set_clock(config.data_dir, at(K, 14, 0))
    _, cursor = _tick(project, monitoring_gaps, cursor)
    alerts = _alerts(project).set_index("check_name")
    gap = alerts.loc["no_predictions"]
    assert (
        gap["severity"] == "critical"
        and gap["dedup_key"] == "credit_default/monitoring_gaps.no_predictions/model"
    )
    assert at(K, 14, 0) <= pd.Timestamp(gap["created_at"]) < at(K, 14, 1)  # the clock runs on in real time
    # the nightly run of the day before never happened here either: that is an alert of its own
    assert alerts.loc["nightly_run_missing"]["severity"] == "critical"
    outbox = project["warehouse"].table("notifications")
    assert (outbox["kind"] == "trigger").sum() == 1  # one incident, one page
    # a third tick with nothing new writes nothing and sends nothing
    rows = len(project["warehouse"].table("intraday_results"))
    set_clock(config.data_dir, at(K, 14, 5))
    _tick(project, monitoring_gaps, cursor)
    assert len(project["warehouse"].table("intraday_results")) == rows
    assert len(project["warehouse"].table("notifications")) == len(outbox)
