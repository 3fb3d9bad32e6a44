from __future__ import annotations

import datetime as dt

import pandas as pd
from dagster import DagsterInstance, build_schedule_context, build_sensor_context

from monitoring_pipelines.config import load_config
from monitoring_pipelines.defs.partitions import Partitions
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.defs.schedules import nightly_monitoring
from monitoring_pipelines.defs.sensors import days_touched_by_labels, label_arrivals_sensor, register_models
from monitoring_pipelines.storage.reference import input_fingerprint
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import write_parquet

label_arrivals = label_arrivals_sensor(Partitions.for_start(dt.date(2026, 6, 1)))


def _context(instance, path, cursor=None):
    return build_sensor_context(
        instance=instance, cursor=cursor, resources={"monitoring": MonitoringResource(config_path=str(path))}
    )


def test_labels_arriving_on_a_day_touch_the_days_before_it():
    days = days_touched_by_labels(["2026-06-10"], 3, dt.date(2026, 6, 1), dt.date(2026, 6, 30))
    assert days == [dt.date(2026, 6, 7), dt.date(2026, 6, 8), dt.date(2026, 6, 9)]
    assert days_touched_by_labels(["2026-06-02"], 3, dt.date(2026, 6, 1), dt.date(2026, 6, 30)) == [
        dt.date(2026, 6, 1)
    ]


def _labels(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "label": 1,
            "label_ts": pd.Timestamp("2026-06-10", tz="UTC"),
        }
    )


def test_label_sensor_requests_reruns_only_for_changed_arrivals(
    tmp_path, config_dict, write_config, monkeypatch
):
    path = write_config(config_dict)
    data_dir = tmp_path / "data"
    write_parquet(data_dir, "credit_default", dt.date(2026, 6, 10), _labels(), kind="labels")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("models", ["credit_default"])
        with _context(instance, path) as context:
            first = label_arrivals(context)
        assert first.run_requests == []  # the first look only remembers
        with _context(instance, path, first.cursor) as context:
            again = label_arrivals(context)
        assert again.run_requests == []
        write_parquet(data_dir, "credit_default", dt.date(2026, 6, 12), _labels(7), kind="labels")
        with _context(instance, path, again.cursor) as context:
            changed = label_arrivals(context)
        keys = sorted(str(r.partition_key) for r in changed.run_requests)
        assert keys == [f"2026-06-{d:02d}|credit_default" for d in range(5, 12)]


def test_register_models_adds_partitions_and_rebuilds_only_changed_references(
    tmp_path, config_dict, write_config
):
    path = write_config(config_dict)
    config = load_config(path)
    with DagsterInstance.ephemeral() as instance:
        with _context(instance, path) as context:
            result = register_models(context)
        added = result.dynamic_partitions_requests[0].partition_keys
        assert sorted(added) == ["churn_propensity", "credit_default"]
        assert sorted(r.partition_key for r in result.run_requests) == ["churn_propensity", "credit_default"]
        # A reference built from exactly these inputs is not rebuilt, after a restart as before it.
        model = config.model("credit_default")
        stored = pd.DataFrame(
            {
                "model_name": ["credit_default"],
                "profile_version": ["v1"],
                "feature": ["income"],
                "kind": ["numeric"],
                "created_at": [pd.Timestamp.now(tz="UTC")],
                "input_fingerprint": [input_fingerprint(config, model)],
            }
        )
        Warehouse(config.warehouse).replace_where(
            "reference_profiles", stored, "model_name = ?", ["credit_default"]
        )
        instance.add_dynamic_partitions("models", ["churn_propensity", "credit_default"])
        with _context(instance, path) as context:
            unchanged = register_models(context)
        assert [r.partition_key for r in unchanged.run_requests] == ["churn_propensity"]
        assert unchanged.dynamic_partitions_requests == []
        # Labels of the reference window landing later change what the reference is built from.
        late = pd.DataFrame(
            {"request_id": ["r1"], "label": [1], "label_ts": [pd.Timestamp("2026-06-05", tz="UTC")]}
        )
        write_parquet(config.data_dir, "credit_default", dt.date(2026, 6, 5), late, kind="labels")
        with _context(instance, path) as context:
            changed = register_models(context)
        assert sorted(r.partition_key for r in changed.run_requests) == ["churn_propensity", "credit_default"]


def test_nightly_schedule_targets_yesterday_for_every_model(tmp_path, config_dict, write_config):
    path = write_config(config_dict)
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions("models", ["credit_default", "churn_propensity"])
        when = dt.datetime(2026, 7, 2, 2, 15, tzinfo=dt.UTC)
        resources = {"monitoring": MonitoringResource(config_path=str(path))}
        with build_schedule_context(
            instance=instance, scheduled_execution_time=when, resources=resources
        ) as ctx:
            requests = nightly_monitoring(ctx)
        assert sorted(str(r.partition_key) for r in requests) == [
            "2026-07-01|churn_propensity",
            "2026-07-01|credit_default",
        ]


def test_label_sensor_watches_a_sql_labels_table(tmp_path, config_dict, write_config, monkeypatch):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'labels.db'}"
    engine = sa.create_engine(url)
    _labels().to_sql("labels", engine, index=False)
    model = config_dict["models"][0]
    model.update(source="sql", sql={"url": url, "predictions_table": "predictions", "labels_table": "labels"})
    path = write_config(config_dict)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("models", ["credit_default"])
        with _context(instance, path) as context:
            first = label_arrivals(context)
        assert first.run_requests == []
        late = _labels(3).assign(
            request_id=["x1", "x2", "x3"], label_ts=pd.Timestamp("2026-06-14 09:00", tz="UTC")
        )
        late.to_sql("labels", engine, index=False, if_exists="append")
        with _context(instance, path, first.cursor) as context:
            changed = label_arrivals(context)
        keys = sorted(str(r.partition_key) for r in changed.run_requests)
        assert keys == [f"2026-06-{d:02d}|credit_default" for d in range(7, 14)]


def test_arrival_days_that_are_not_dates_touch_no_day():
    days = days_touched_by_labels(
        ["latest", "2026-06-10", "2026-13-45", ""], 2, dt.date(2026, 6, 1), dt.date(2026, 6, 30)
    )
    assert days == [dt.date(2026, 6, 8), dt.date(2026, 6, 9)]


def test_label_sensor_skips_a_label_folder_not_named_by_a_date(tmp_path, config_dict, write_config):
    path = write_config(config_dict)
    data_dir = tmp_path / "data"
    write_parquet(data_dir, "credit_default", dt.date(2026, 6, 10), _labels(), kind="labels")
    stray = data_dir / "incoming" / "credit_default" / "labels" / "date=latest"
    stray.mkdir(parents=True)
    _labels().to_parquet(stray / "labels.parquet", index=False)
    cursor = '{"credit_default": {}}'  # seen before, with no labels: every arrival day is new
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("models", ["credit_default"])
        with _context(instance, path, cursor) as context:
            result = label_arrivals(context)
    keys = sorted(str(r.partition_key) for r in result.run_requests)
    assert keys == [f"2026-06-{d:02d}|credit_default" for d in range(3, 10)]
    assert "latest" not in result.cursor
