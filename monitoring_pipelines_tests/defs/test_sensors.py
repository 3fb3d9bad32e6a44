from __future__ import annotations

import datetime as dt

import pandas as pd
from dagster import DagsterInstance, build_schedule_context, build_sensor_context

from monitoring_pipelines.defs.schedules import nightly_monitoring
from monitoring_pipelines.defs.sensors import days_touched_by_labels, label_arrivals, register_models
from monitoring_pipelines_tests.conftest import write_parquet


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
    monkeypatch.setenv("MONITORING_CONFIG", str(path))
    data_dir = tmp_path / "data"
    write_parquet(data_dir, "credit_default", dt.date(2026, 6, 10), _labels(), kind="labels")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("models", ["credit_default"])
        first = label_arrivals(build_sensor_context(instance=instance))
        assert first.run_requests == []  # the first look only remembers
        again = label_arrivals(build_sensor_context(instance=instance, cursor=first.cursor))
        assert again.run_requests == []
        write_parquet(data_dir, "credit_default", dt.date(2026, 6, 12), _labels(7), kind="labels")
        changed = label_arrivals(build_sensor_context(instance=instance, cursor=again.cursor))
        keys = sorted(str(r.partition_key) for r in changed.run_requests)
        assert keys == [f"2026-06-{d:02d}|credit_default" for d in range(5, 12)]


def test_register_models_adds_partitions_and_requests_reference(
    tmp_path, config_dict, write_config, monkeypatch
):
    monkeypatch.setenv("MONITORING_CONFIG", str(write_config(config_dict)))
    with DagsterInstance.ephemeral() as instance:
        result = register_models(build_sensor_context(instance=instance))
        added = result.dynamic_partitions_requests[0].partition_keys
        assert sorted(added) == ["churn_propensity", "credit_default"]
        assert sorted(r.partition_key for r in result.run_requests) == ["churn_propensity", "credit_default"]
        unchanged = register_models(build_sensor_context(instance=instance, cursor=result.cursor))
        assert unchanged.run_requests == []


def test_nightly_schedule_targets_yesterday_for_every_model(tmp_path, config_dict, write_config, monkeypatch):
    monkeypatch.setenv("MONITORING_CONFIG", str(write_config(config_dict)))
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions("models", ["credit_default", "churn_propensity"])
        when = dt.datetime(2026, 7, 2, 2, 15, tzinfo=dt.UTC)
        requests = nightly_monitoring(
            build_schedule_context(instance=instance, scheduled_execution_time=when)
        )
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
    monkeypatch.setenv("MONITORING_CONFIG", str(write_config(config_dict)))
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("models", ["credit_default"])
        first = label_arrivals(build_sensor_context(instance=instance))
        assert first.run_requests == []
        late = _labels(3).assign(
            request_id=["x1", "x2", "x3"], label_ts=pd.Timestamp("2026-06-14 09:00", tz="UTC")
        )
        late.to_sql("labels", engine, index=False, if_exists="append")
        changed = label_arrivals(build_sensor_context(instance=instance, cursor=first.cursor))
        keys = sorted(str(r.partition_key) for r in changed.run_requests)
        assert keys == [f"2026-06-{d:02d}|credit_default" for d in range(7, 14)]
