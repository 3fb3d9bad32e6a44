from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.sources import FileSource, SqlSource, normalize_labels
from monitoring_pipelines_tests.conftest import synthetic_day, write_parquet

DAY = dt.date(2026, 6, 10)


def test_file_source_reads_only_the_partition_day(tmp_path, write_config, config_dict):
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    today, yesterday, tomorrow = (
        synthetic_day(DAY + dt.timedelta(days=k), 50, seed=k + 1) for k in (0, -1, 1)
    )
    # the day's own folder also holds a stray row of yesterday; tomorrow's folder holds late rows of today
    late = synthetic_day(DAY, 7, seed=9)
    write_parquet(config.data_dir, model.name, DAY, pd.concat([today, yesterday.head(3)]))
    write_parquet(config.data_dir, model.name, DAY - dt.timedelta(days=1), yesterday)
    write_parquet(config.data_dir, model.name, DAY + dt.timedelta(days=1), pd.concat([tomorrow, late]))
    read = FileSource(config.data_dir).read_predictions(model, DAY, DAY)
    assert len(read.frame) == 57
    assert set(read.frame["prediction_id"]) == set(today["prediction_id"]) | set(late["prediction_id"])
    assert (read.frame["ts"].dt.date == DAY).all()
    assert read.rows_outside_window == 3 + len(tomorrow)


def test_file_source_reads_csv_and_reports_missing_day(tmp_path, write_config, config_dict):
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    folder = config.data_dir / "incoming" / model.name / "predictions" / f"date={DAY}"
    folder.mkdir(parents=True)
    synthetic_day(DAY, 20).to_csv(folder / "part.csv", index=False)
    read = FileSource(config.data_dir).read_predictions(model, DAY, DAY)
    assert len(read.frame) == 20 and not read.problems
    empty = FileSource(config.data_dir).read_predictions(
        model, DAY + dt.timedelta(days=5), DAY + dt.timedelta(days=5)
    )
    assert empty.frame.empty and "no prediction files" in empty.problems[0]


def test_unreadable_file_is_named(tmp_path, write_config, config_dict):
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    folder = config.data_dir / "incoming" / model.name / "predictions" / f"date={DAY}"
    folder.mkdir(parents=True)
    (folder / "broken.parquet").write_bytes(b"not parquet at all")
    read = FileSource(config.data_dir).read_predictions(model, DAY, DAY)
    assert any("broken.parquet" in p and "unreadable" in p for p in read.problems)


@pytest.fixture
def sqlite_source(tmp_path):
    url = f"sqlite:///{tmp_path / 'preds.db'}"
    engine = sa.create_engine(url)
    frame = pd.concat(
        [synthetic_day(DAY, 300, seed=1), synthetic_day(DAY + dt.timedelta(days=1), 200, seed=2)]
    )
    other = synthetic_day(DAY, 40, seed=3, model_name="churn_propensity")
    pd.concat([frame, other]).to_sql("predictions", engine, index=False)
    labels = pd.DataFrame(
        {
            "request_id": frame["request_id"].head(100),
            "label": 1,
            "label_ts": pd.Timestamp(DAY + dt.timedelta(days=3), tz="UTC"),
        }
    )
    labels.to_sql("labels", engine, index=False)
    return SqlSource(url, "predictions", "labels", None, chunk_rows=1000)


def test_sql_source_binds_dates_and_model(sqlite_source, write_config, config_dict):
    model = load_config(write_config(config_dict)).model("credit_default")
    read = sqlite_source.read_predictions(model, DAY, DAY)
    assert len(read.frame) == 300
    assert set(read.frame["model_name"]) == {"credit_default"}
    labels = sqlite_source.read_labels(model, DAY, DAY + dt.timedelta(days=7))
    assert len(labels) == 100


def test_sql_source_reports_missing_table(tmp_path, write_config, config_dict):
    model = load_config(write_config(config_dict)).model("credit_default")
    source = SqlSource(f"sqlite:///{tmp_path / 'empty.db'}", "nope", None, None)
    read = source.read_predictions(model, DAY, DAY)
    assert read.frame.empty and "nope" in read.problems[0]


def test_latest_label_wins():
    labels = pd.DataFrame(
        {
            "request_id": ["a", "a", "b"],
            "label": [0, 1, 1],
            "label_ts": ["2026-01-02", "2026-01-05", "2026-01-03"],
        }
    )
    out = normalize_labels(labels).set_index("request_id")
    assert out.loc["a", "label"] == 1 and len(out) == 2


def test_late_rows_alone_do_not_make_a_day(tmp_path, write_config, config_dict):
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    write_parquet(config.data_dir, model.name, DAY + dt.timedelta(days=1), synthetic_day(DAY, 5, seed=4))
    read = FileSource(config.data_dir).read_predictions(model, DAY, DAY)
    assert read.frame.empty and "no prediction files" in read.problems[0]


def test_row_without_timestamp_belongs_to_its_own_folder_only(tmp_path, write_config, config_dict):
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    nxt = DAY + dt.timedelta(days=1)
    frame = synthetic_day(nxt, 20, seed=5)
    frame["ts"] = frame["ts"].astype(object)
    frame.loc[0, "ts"] = None
    write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 10, seed=6))
    write_parquet(config.data_dir, model.name, nxt, frame)
    source = FileSource(config.data_dir)
    today = source.read_predictions(model, DAY, DAY).frame
    tomorrow = source.read_predictions(model, nxt, nxt).frame
    assert frame.loc[0, "prediction_id"] not in set(today["prediction_id"])
    assert frame.loc[0, "prediction_id"] in set(tomorrow["prediction_id"])
    assert today["source_file"].str.endswith(".parquet").all()
