from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.sources import (
    FILE_COLUMN,
    TS_COLUMN,
    FileSource,
    SqlSource,
    new_connection,
    read_labels,
)
from monitoring_pipelines_tests.conftest import synthetic_day, write_parquet

DAY = dt.date(2026, 6, 10)
NEXT = DAY + dt.timedelta(days=1)


@pytest.fixture
def config(write_config, config_dict):
    return load_config(write_config(config_dict))


@pytest.fixture
def model(config):
    return config.model("credit_default")


@pytest.fixture
def con():
    connection = new_connection()
    yield connection
    connection.close()


def _folder(config, model, day: dt.date, kind: str = "predictions"):
    folder = config.data_dir / "incoming" / model.name / kind / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _column(con, read, column: str) -> pd.Series:
    """A column of the loaded relation (the bookkeeping columns FILE_COLUMN, TS_COLUMN included)."""
    return con.sql(f'SELECT "{column}" FROM {read.relation} ORDER BY __order').df()[column]


def test_file_source_reads_only_the_partition_day(config, model, con):
    today, yesterday, tomorrow = (
        synthetic_day(DAY + dt.timedelta(days=k), 50, seed=k + 1) for k in (0, -1, 1)
    )
    # the day's own folder also holds a stray row of yesterday; tomorrow's folder holds late rows of today
    late = synthetic_day(DAY, 7, seed=9)
    write_parquet(config.data_dir, model.name, DAY, pd.concat([today, yesterday.head(3)]))
    write_parquet(config.data_dir, model.name, DAY - dt.timedelta(days=1), yesterday)
    write_parquet(config.data_dir, model.name, NEXT, pd.concat([tomorrow, late]))
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert not read.problems
    frame = read.frame(con)
    assert len(frame) == 57
    assert set(frame["prediction_id"]) == set(today["prediction_id"]) | set(late["prediction_id"])
    assert (frame["ts"].dt.tz_convert("UTC").dt.date == DAY).all()
    assert (_column(con, read, TS_COLUMN).dt.date == DAY).all()
    # yesterday's rows in today's folder are yesterday's (late rows, within the lateness window) and
    # tomorrow's rows tomorrow's: no row is outside its folder's window
    assert read.rows_outside_window == 0
    # the late rows are read from (and attributed to) the next day's folder
    files = _column(con, read, FILE_COLUMN)
    ids = _column(con, read, "prediction_id")
    assert set(ids[files.str.contains(f"date={NEXT}")]) == set(late["prediction_id"])
    assert set(ids[files.str.contains(f"date={DAY}")]) == set(today["prediction_id"])


def test_file_source_reads_csv_and_reports_missing_day(config, model, con):
    folder = _folder(config, model, DAY)
    synthetic_day(DAY, 20).to_csv(folder / "part.csv", index=False)
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert not read.problems
    assert len(read.frame(con)) == 20
    assert read.files == [str(folder / "part.csv")]
    missing = DAY + dt.timedelta(days=5)
    empty = FileSource(config.data_dir).load_predictions(con, model, missing, missing)
    assert empty.frame(con).empty and "no prediction files" in empty.problems[0]


def test_csv_with_iso_8601_text_timestamps(config, model, con):
    """Text `ts` is parsed as ISO 8601 with its offset; the UTC day decides where a row belongs."""
    base = synthetic_day(DAY, 5, seed=2).drop(columns=["ts"])
    own = base.assign(
        prediction_id=[f"own-{i}" for i in range(5)],
        ts=[
            "2026-06-10T00:00:00Z",
            "2026-06-10T12:30:15.250+00:00",
            "2026-06-11T01:30:00+02:00",  # 23:30 UTC on the day, the next day in its own zone
            "2026-06-10T23:30:00-02:00",  # 01:30 UTC the next day: outside the window
            "not a time",  # no usable ts: kept by its own folder (validation quarantines it)
        ],
    )
    late = base.assign(
        prediction_id=[f"late-{i}" for i in range(5)],
        ts=[
            "2026-06-11T00:59:00+01:00",  # 23:59 UTC on the day: a late row of the day
            "2026-06-11T00:00:00Z",
            "2026-06-11T10:00:00Z",
            "2026-06-10T22:00:00-03:00",  # 01:00 UTC the next day
            "",  # no usable ts in the next folder: belongs to the next day only
        ],
    )
    own.to_csv(_folder(config, model, DAY) / "part.csv", index=False)
    late.to_csv(_folder(config, model, NEXT) / "part.csv", index=False)
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert not read.problems
    ids = _column(con, read, "prediction_id").tolist()
    ts = dict(zip(ids, _column(con, read, TS_COLUMN), strict=True))
    assert set(ids) == {"own-0", "own-1", "own-2", "own-4", "late-0"}
    assert ts["own-0"] == pd.Timestamp("2026-06-10 00:00", tz="UTC")
    assert ts["own-1"] == pd.Timestamp("2026-06-10 12:30:15.250", tz="UTC")
    assert ts["own-2"] == pd.Timestamp("2026-06-10 23:30", tz="UTC")
    assert ts["late-0"] == pd.Timestamp("2026-06-10 23:59", tz="UTC")
    assert pd.isna(ts["own-4"])
    # own-3 is the next day's (logged early: read by that day), the next folder's other rows are its own
    assert read.rows_outside_window == 0


@pytest.fixture
def new_york(monkeypatch):
    """The process's local time zone is not UTC (DuckDB connections default to it)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_naive_timestamp_is_taken_as_utc(config, model, new_york):
    con = new_connection()  # a naive value must not be read in the local zone
    frame = synthetic_day(DAY, 5, seed=3)
    frame["ts"] = pd.to_datetime(
        ["2026-06-10 00:30", "2026-06-10 23:30", "2026-06-09 23:30", "2026-06-10 12:00", "2026-06-11 00:00"]
    )
    nxt = synthetic_day(NEXT, 2, seed=4)
    nxt["ts"] = pd.to_datetime(["2026-06-10 23:45", "2026-06-11 03:00"])
    write_parquet(config.data_dir, model.name, DAY, frame)
    write_parquet(config.data_dir, model.name, NEXT, nxt)
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert not read.problems
    ids = _column(con, read, "prediction_id").tolist()
    ts = dict(zip(ids, _column(con, read, TS_COLUMN), strict=True))
    expected = {
        frame.loc[0, "prediction_id"]: pd.Timestamp("2026-06-10 00:30", tz="UTC"),
        frame.loc[1, "prediction_id"]: pd.Timestamp("2026-06-10 23:30", tz="UTC"),
        frame.loc[3, "prediction_id"]: pd.Timestamp("2026-06-10 12:00", tz="UTC"),
        nxt.loc[0, "prediction_id"]: pd.Timestamp("2026-06-10 23:45", tz="UTC"),
    }
    assert ts == expected
    assert read.rows_outside_window == 0  # the other rows are on the neighbouring days, read by those
    con.close()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.parquet", lambda parquet, csv: b"not parquet at all"),
        ("truncated.parquet", lambda parquet, csv: parquet[: len(parquet) // 2]),
        ("empty.parquet", lambda parquet, csv: b""),
        ("empty.csv", lambda parquet, csv: b""),
        ("truncated.csv", lambda parquet, csv: csv[: len(csv) - 40]),  # cut in the middle of a row
    ],
    ids=["corrupt-parquet", "truncated-parquet", "empty-parquet", "empty-csv", "truncated-csv"],
)
def test_unreadable_file_is_named(config, model, con, name, content):
    good = write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 30), name="good.parquet")
    bad = good.parent / name
    csv = synthetic_day(DAY, 30, seed=1).to_csv(index=False).encode()
    bad.write_bytes(content(good.read_bytes(), csv))
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert any(str(bad) in p and "unreadable" in p for p in read.problems), read.problems
    assert not any("good.parquet" in p for p in read.problems)
    assert read.relation == ""  # nothing is half-used: the day is unusable


def test_parquet_with_truncated_end_next_to_good_files_is_named(config, model, con):
    first = write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 40, seed=1), name="a.parquet")
    write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 40, seed=2), name="c.parquet")
    write_parquet(config.data_dir, model.name, NEXT, synthetic_day(NEXT, 40, seed=3), name="d.parquet")
    truncated = first.parent / "b.parquet"
    truncated.write_bytes(first.read_bytes()[:-10])  # footer cut off
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    unreadable = [p for p in read.problems if "unreadable" in p]
    assert len(unreadable) == 1 and str(truncated) in unreadable[0], read.problems
    assert read.relation == ""


def test_late_folder_unreadable_file_is_skipped_and_named(config, model, con):
    write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 20))
    late = _folder(config, model, NEXT) / "late.parquet"
    late.write_bytes(b"PAR1 garbage")
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert not read.problems and len(read.frame(con)) == 20
    assert any(str(late) in w and "unreadable" in w for w in read.skipped), read.skipped
    tomorrow = FileSource(config.data_dir).load_predictions(con, model, NEXT, NEXT)
    assert any(str(late) in p and "unreadable" in p for p in tomorrow.problems), tomorrow.problems


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


def test_sql_source_binds_dates_and_model(sqlite_source, model, con):
    read = sqlite_source.load_predictions(con, model, DAY, DAY)
    assert not read.problems
    frame = read.frame(con)
    assert len(frame) == 300
    assert set(frame["model_name"]) == {"credit_default"}
    assert (_column(con, read, TS_COLUMN).dt.date == DAY).all()
    assert read.rows_outside_window == 0  # the next day's rows, fetched by the widened bounds, are its own
    labels = read_labels(sqlite_source, model, DAY, DAY + dt.timedelta(days=7))
    assert len(labels) == 100
    assert set(labels["label"]) == {1}


def test_sql_source_reports_missing_table(tmp_path, model, con):
    source = SqlSource(f"sqlite:///{tmp_path / 'empty.db'}", "nope", None, None)
    read = source.load_predictions(con, model, DAY, DAY)
    assert read.frame(con).empty and read.relation == "" and "nope" in read.problems[0]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_latest_label_wins(config, model, suffix):
    first = pd.DataFrame(
        {
            "request_id": ["a", "b", "c"],
            "label": [1, 1, 0],
            "label_ts": ["2026-01-05T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z"],
        }
    )
    # arrives later but is older for `a`; newer for `c`
    second = pd.DataFrame(
        {
            "request_id": ["a", "c"],
            "label": [0, 1],
            "label_ts": ["2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z"],
        }
    )
    for day, frame in ((DAY, first), (NEXT, second)):
        path = _folder(config, model, day, "labels") / f"labels{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    out = read_labels(FileSource(config.data_dir), model, DAY, NEXT).set_index("request_id")
    assert len(out) == 3
    assert out.loc["a", "label"] == 1 and out.loc["b", "label"] == 1 and out.loc["c", "label"] == 1
    assert out.loc["a", "label_ts"] == pd.Timestamp("2026-01-05", tz="UTC")
    only_first = read_labels(FileSource(config.data_dir), model, DAY, DAY).set_index("request_id")
    assert only_first.loc["c", "label"] == 0


def test_late_rows_alone_do_not_make_a_day(config, model, con):
    write_parquet(config.data_dir, model.name, NEXT, synthetic_day(DAY, 5, seed=4))
    read = FileSource(config.data_dir).load_predictions(con, model, DAY, DAY)
    assert read.frame(con).empty and "no prediction files" in read.problems[0]


@pytest.mark.parametrize("bad_ts", [None, "not a time"], ids=["missing", "unparsable"])
def test_row_without_timestamp_belongs_to_its_own_folder_only(config, model, bad_ts):
    frame = synthetic_day(NEXT, 20, seed=5)
    frame["ts"] = frame["ts"].astype(object) if bad_ts is None else frame["ts"].map(lambda t: t.isoformat())
    frame.loc[0, "ts"] = bad_ts
    write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 10, seed=6))
    write_parquet(config.data_dir, model.name, NEXT, frame)
    source = FileSource(config.data_dir)
    con_today, con_tomorrow = new_connection(), new_connection()
    try:
        today = source.load_predictions(con_today, model, DAY, DAY)
        tomorrow = source.load_predictions(con_tomorrow, model, NEXT, NEXT)
        stray = frame.loc[0, "prediction_id"]
        assert stray not in set(today.frame(con_today)["prediction_id"])
        assert stray in set(tomorrow.frame(con_tomorrow)["prediction_id"])
        assert len(today.frame(con_today)) == 10 and len(tomorrow.frame(con_tomorrow)) == 20
        # the next folder's other rows are the next day's, within their folder's lateness window
        assert today.rows_outside_window == 0 and tomorrow.rows_outside_window == 0
        assert _column(con_today, today, FILE_COLUMN).str.endswith(".parquet").all()
        tomorrow_files = dict(
            zip(
                _column(con_tomorrow, tomorrow, "prediction_id"),
                _column(con_tomorrow, tomorrow, FILE_COLUMN),
                strict=True,
            )
        )
        assert f"date={NEXT}" in tomorrow_files[stray]
    finally:
        con_today.close()
        con_tomorrow.close()


BAD_FOLDERS = ["latest", "2026-13-45", "", "tmp", "20260612"]


@pytest.mark.parametrize("bad", BAD_FOLDERS, ids=["latest", "month-13", "empty", "tmp", "basic-format"])
def test_label_folder_not_named_by_a_date_is_skipped_with_a_warning(config, model, caplog, bad):
    labels = pd.DataFrame({"request_id": ["a"], "label": [1], "label_ts": ["2026-06-10T00:00:00Z"]})
    labels.to_parquet(_folder(config, model, DAY, "labels") / "labels.parquet", index=False)
    stray = config.data_dir / "incoming" / model.name / "labels" / f"date={bad}"
    stray.mkdir(parents=True)
    labels.to_parquet(stray / "labels.parquet", index=False)
    source = FileSource(config.data_dir)
    with caplog.at_level("WARNING", logger="monitoring_pipelines.storage.sources"):
        arrivals = source.label_arrivals(model, DAY - dt.timedelta(days=30))
    assert list(arrivals) == [DAY.isoformat()]
    assert any(str(stray) in r.getMessage() for r in caplog.records), caplog.text
    assert len(read_labels(source, model, DAY - dt.timedelta(days=30), DAY + dt.timedelta(days=30))) == 1


def test_label_arrivals_compare_days_as_dates(config, model):
    labels = pd.DataFrame({"request_id": ["a"], "label": [1], "label_ts": ["2026-06-10T00:00:00Z"]})
    for day in (DAY - dt.timedelta(days=1), DAY, NEXT):
        labels.to_parquet(_folder(config, model, day, "labels") / "labels.parquet", index=False)
    assert list(FileSource(config.data_dir).label_arrivals(model, DAY)) == [DAY.isoformat(), NEXT.isoformat()]


def test_prediction_folder_not_named_by_a_date_is_skipped_with_a_warning(config, model, con, caplog):
    write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 20, seed=1))
    stray = config.data_dir / "incoming" / model.name / "predictions" / "date=latest"
    stray.mkdir(parents=True)
    synthetic_day(DAY, 5, seed=2).to_parquet(stray / "part-0.parquet", index=False)
    source = FileSource(config.data_dir)
    with caplog.at_level("WARNING", logger="monitoring_pipelines.storage.sources"):
        read = source.load_predictions(con, model, DAY, DAY)
        fingerprint = source.fingerprint(model, "predictions", DAY, NEXT)
    assert not read.problems and len(read.frame(con)) == 20
    assert any(str(stray) in r.getMessage() for r in caplog.records), caplog.text
    (stray / "part-0.parquet").unlink()  # the stray folder's files are no input of the day
    assert source.fingerprint(model, "predictions", DAY, NEXT) == fingerprint


def test_source_file_is_the_path_relative_to_the_data_directory(config, model):
    from monitoring_pipelines.storage.snapshot import Snapshot
    from monitoring_pipelines.storage.warehouse import Warehouse

    own = synthetic_day(DAY, 30, seed=1)
    own.loc[0, "score"] = 4.0  # quarantined: its source_file is kept too
    write_parquet(config.data_dir, model.name, DAY, own)
    write_parquet(config.data_dir, model.name, NEXT, synthetic_day(DAY, 4, seed=2), name="late.parquet")
    snap, validation, read = Snapshot.from_source(config, model, DAY)
    warehouse = Warehouse(config.warehouse)
    try:
        assert validation.usable
        snap.write(warehouse, validation)
    finally:
        snap.close()
    stored = warehouse.query(
        "SELECT 'kept' AS kind, source_file FROM monitoring.prediction_snapshots "
        "UNION ALL SELECT 'quarantined', source_file FROM monitoring.quarantined_predictions"
    )
    folder = f"incoming/{model.name}/predictions"
    assert set(stored["source_file"]) == {
        f"{folder}/date={DAY}/part-0.parquet",
        f"{folder}/date={NEXT}/late.parquet",
    }
    assert stored["kind"].value_counts().to_dict() == {"kept": 33, "quarantined": 1}
    assert not stored["source_file"].str.contains(str(config.data_dir), regex=False).any()
    assert read.files[0] == str(config.data_dir / f"{folder}/date={DAY}/part-0.parquet")  # where it was read
