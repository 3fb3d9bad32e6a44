"""Issue #16: no check silently looks at nothing.

Rows outside the read window are quarantined by the day of the folder they sit in (never lost, never
counted twice); labels that cannot be used are counted and kept, and a label without a usable time never
beats one with; a day whose log is unusable is stopped by one root finding naming the file and the
problem; a bad file of a neighbouring day is left out with a warning instead of blocking the day.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from monitoring_pipelines.config import ConfigError, load_config
from monitoring_pipelines.storage.reference import input_fingerprint
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines.storage.sources import OUTSIDE_WINDOW, FileSource, read_labels
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines.validation.suite import NEIGHBOUR_FILES, validation_checks
from monitoring_pipelines_tests.conftest import synthetic_day, write_parquet

DAY = dt.date(2026, 6, 10)
NEXT = DAY + dt.timedelta(days=1)


def _days(k: int) -> dt.date:
    return DAY + dt.timedelta(days=k)


@pytest.fixture
def config(write_config, config_dict):
    return load_config(write_config(config_dict))


@pytest.fixture
def model(config):
    return config.model("credit_default")


def _rows(folder: dt.date, ts_day: dt.date, n: int, tag: str) -> pd.DataFrame:
    """`n` valid rows whose ts is on `ts_day`, ids naming the folder they are written to."""
    frame = synthetic_day(ts_day, n, seed=hash((folder, ts_day, tag)) % 1000)
    ids = [f"{tag}-{folder}-{ts_day}-{i}" for i in range(n)]
    return frame.assign(prediction_id=ids, request_id=[f"r{i}" for i in ids])


def _read_day(config, model, day: dt.date) -> tuple[set[str], dict[str, str], int]:
    """(valid prediction ids, quarantined id -> reason, rows_outside_window) of one partition."""
    snap, validation, read = Snapshot.from_source(config, model, day)
    try:
        if not validation.usable:
            return set(), {}, read.rows_outside_window
        valid = set(snap.frame()["prediction_id"])
        quarantined = snap.quarantine_frame()
        return (
            valid,
            dict(zip(quarantined["prediction_id"], quarantined["reason"], strict=True)),
            (read.rows_outside_window),
        )
    finally:
        snap.close()


# --------------------------------------------------------------------------- 1. the lateness window


def test_every_row_of_a_folder_is_read_by_exactly_one_day(config, model):
    """late_days = 2 (the default): a row two days late is read by its day; rows too late or in the
    future are quarantined by the day of the folder they sit in, with their own reason."""
    folders = {
        DAY: [
            _rows(DAY, DAY, 20, "own"),
            _rows(DAY, _days(-1), 3, "late1"),  # a day late: yesterday's
            _rows(DAY, _days(-2), 2, "late2"),  # two days late: the day before yesterday's
            _rows(DAY, _days(-3), 4, "stale"),  # three days late: outside the window
            _rows(DAY, _days(1), 2, "early"),  # tomorrow's, within the clock-skew allowance
            _rows(DAY, _days(5), 3, "future"),  # five days ahead: outside the window
        ],
        _days(-3): [_rows(_days(-3), _days(-3), 5, "own")],
        _days(-2): [_rows(_days(-2), _days(-2), 5, "own")],
        _days(-1): [_rows(_days(-1), _days(-1), 5, "own")],
        _days(1): [_rows(_days(1), _days(1), 5, "own")],
        _days(5): [_rows(_days(5), _days(5), 5, "own")],
    }
    for folder, parts in folders.items():
        write_parquet(config.data_dir, model.name, folder, pd.concat(parts, ignore_index=True))
    written = {pid for parts in folders.values() for part in parts for pid in part["prediction_id"]}

    seen: dict[str, list[tuple[dt.date, str | None]]] = {}
    outside: dict[dt.date, int] = {}
    for k in range(-3, 6):
        day = _days(k)
        valid, quarantined, outside[day] = _read_day(config, model, day)
        for pid in valid:
            seen.setdefault(pid, []).append((day, None))
        for pid, reason in quarantined.items():
            seen.setdefault(pid, []).append((day, reason))

    assert set(seen) == written  # nothing lost
    assert {pid: len(where) for pid, where in seen.items() if len(where) != 1} == {}  # nothing twice
    where = {pid: places[0] for pid, places in seen.items()}
    for pid, (day, reason) in where.items():
        tag, folder, ts_day = pid.split("-", 1)[0], pid.split("-")[1:4], pid.split("-")[4:7]
        folder_day, row_day = dt.date(*map(int, folder)), dt.date(*map(int, ts_day))
        if tag in ("stale", "future"):
            assert (day, reason) == (folder_day, OUTSIDE_WINDOW), pid
        else:
            assert (day, reason) == (row_day, None), pid
    # the metadata counts exactly the rows quarantined for it, by the folder's day only
    assert outside == {**dict.fromkeys(outside, 0), DAY: 7}


def test_rerunning_the_days_writes_the_same_tables(config, model):
    write_parquet(
        config.data_dir,
        model.name,
        DAY,
        pd.concat([_rows(DAY, DAY, 30, "own"), _rows(DAY, _days(-4), 2, "stale")]),
    )
    write_parquet(
        config.data_dir,
        model.name,
        NEXT,
        pd.concat([_rows(NEXT, NEXT, 30, "own"), _rows(NEXT, DAY, 3, "late")]),
    )
    warehouse = Warehouse(config.warehouse)

    def run() -> pd.DataFrame:
        for day in (DAY, NEXT):
            snap, validation, _ = Snapshot.from_source(config, model, day)
            try:
                snap.write(warehouse, validation)
            finally:
                snap.close()
        return warehouse.query(
            "SELECT 'kept' AS kind, partition_date, prediction_id, NULL AS reason FROM monitoring.prediction_snapshots "
            "UNION ALL SELECT 'quarantined', partition_date, prediction_id, reason FROM monitoring.quarantined_predictions "
            "ORDER BY ALL"
        )

    first = run()
    pd.testing.assert_frame_equal(run(), first)
    assert first.groupby(["kind", "partition_date"]).size().to_dict() == {
        ("kept", pd.Timestamp(DAY)): 33,
        ("kept", pd.Timestamp(NEXT)): 30,
        ("quarantined", pd.Timestamp(DAY)): 2,
    }


def test_late_days_is_a_model_setting_checked_at_load(config_dict, write_config):
    assert load_config(write_config(config_dict)).model("credit_default").late_days == 2  # the default
    config_dict["models"][0]["late_days"] = 3
    model = load_config(write_config(config_dict)).model("credit_default")
    assert model.late_days == 3
    config_dict["models"][0]["late_days"] = -1
    with pytest.raises(ConfigError, match="late_days"):
        load_config(write_config(config_dict))


def test_late_days_sets_which_folders_a_day_reads(config_dict, write_config):
    config_dict["models"][0]["late_days"] = 3
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    write_parquet(config.data_dir, model.name, DAY, _rows(DAY, DAY, 10, "own"))
    write_parquet(config.data_dir, model.name, _days(3), _rows(_days(3), DAY, 4, "late3"))
    valid, quarantined, _ = _read_day(config, model, DAY)
    assert len(valid) == 14 and not quarantined


def test_reference_fingerprint_covers_every_folder_the_window_reads(config, model):
    """The reference reads its window's folders plus the late ones: a late row landing two days after
    the window changes what it is built from."""
    end = model.reference.end
    write_parquet(config.data_dir, model.name, end, _rows(end, end, 5, "own"))
    before = input_fingerprint(config, model, today=end)
    write_parquet(config.data_dir, model.name, end + dt.timedelta(days=2), _rows(end, end, 2, "late2"))
    assert input_fingerprint(config, model, today=end) != before


# --------------------------------------------------------------------------- 2. labels


def _label_folder(config, model, day: dt.date):
    folder = config.data_dir / "incoming" / model.name / "labels" / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_label_without_a_usable_time_never_replaces_one_with(config, model):
    """An infinite, unparsable or missing label_ts is no time: that label counts as the oldest, before or
    after the one with a time in the file (DuckDB parses 'infinity' as a time after every other)."""
    bad = {"inf": "infinity", "text": "not a time", "none": ""}
    rows = []
    for key, bad_ts in bad.items():
        rows += [(f"{key}-after", 1, "2026-06-10T05:00:00Z"), (f"{key}-after", 0, bad_ts)]
        rows += [(f"{key}-before", 0, bad_ts), (f"{key}-before", 1, "2026-06-10T05:00:00Z")]
    frame = pd.DataFrame(rows, columns=["request_id", "label", "label_ts"])
    frame.to_csv(_label_folder(config, model, DAY) / "labels.csv", index=False)
    out = read_labels(FileSource(config.data_dir), model, DAY, DAY).set_index("request_id")
    assert out["label"].to_dict() == dict.fromkeys(frame["request_id"], 1.0)
    assert (out["label_ts"] == pd.Timestamp("2026-06-10 05:00", tz="UTC")).all()


def test_labels_that_cannot_be_used_are_counted_and_kept(config, model):
    frame = _rows(DAY, DAY, 6, "own")
    write_parquet(config.data_dir, model.name, DAY, frame)
    ids = frame["request_id"].tolist()
    pd.DataFrame(
        {
            "request_id": [ids[0], ids[1], ids[2], ids[3], ids[4], None, "not-a-request"],
            "label": ["1", "2", "yes", "", "0", "1", "7"],
            "label_ts": ["2026-06-12T00:00:00Z"] * 4
            + ["not a time", "2026-06-12T00:00:00Z", "2026-06-12T00:00:00Z"],
        }
    ).to_csv(_label_folder(config, model, _days(2)) / "labels.csv", index=False)
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    try:
        assert validation.usable
        assert snap.load_labels(FileSource(config.data_dir), DAY, _days(3)) == 2  # ids 0 and 4
        assert snap.label_counts == {
            "labelled_requests": 2,
            "invalid_labels": 3,  # of this day's requests; "not-a-request" belongs to no day here
            "labels_without_label_ts": 1,
            "labels_without_request_id": 1,
        }
        kept = snap.quarantined_labels()
        assert kept[["request_id", "reason"]].values.tolist() == [
            [ids[1], "label in {0, 1}"],
            [ids[2], "label in {0, 1}"],
            [ids[3], "label not null"],
        ]
        assert kept["label"].tolist()[:2] == ["2", "yes"] and pd.isna(kept["label"].iloc[2])
        assert set(kept["source_file"]) == {f"incoming/{model.name}/labels/date={_days(2)}/labels.csv"}
        scored = snap.scored()
        assert scored["label"].notna().sum() == 2  # the bad labels are not used
    finally:
        snap.close()


# --------------------------------------------------------------------------- 3. unusable days


@pytest.mark.parametrize("column", ["score", "ts", "prediction_id", "debt_ratio"])
def test_a_column_missing_from_the_days_file_blocks_the_day_naming_both(config, model, column):
    """The next day's file has every column (as it does in production): the day's own file decides."""
    own = write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 40).drop(columns=[column]))
    write_parquet(
        config.data_dir,
        model.name,
        NEXT,
        pd.concat([synthetic_day(NEXT, 40, seed=2), _rows(NEXT, DAY, 2, "late")]),
    )
    warehouse = Warehouse(config.warehouse)
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    try:
        assert not validation.usable
        assert any(str(own) in p and repr(column) in p for p in validation.problems), validation.problems
        snap.write(warehouse, validation)
        assert snap.rows == 0
    finally:
        snap.close()
    stored = warehouse.query(
        "SELECT count(*) AS n FROM monitoring.prediction_snapshots WHERE partition_date = ?", [DAY]
    )
    assert int(stored["n"][0]) == 0
    usable, _ = validation_checks(validation, model)
    assert not usable.passed and str(own) in usable.description and column in usable.description


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("part-0.parquet", lambda good: b"", "empty file, 0 bytes"),
        ("part-0.parquet", lambda good: good[: len(good) // 2], "unreadable"),
        ("part-0.parquet", lambda good: b"<html><body>502 Bad Gateway</body></html>", "unreadable"),
    ],
    ids=["zero-byte", "truncated", "html"],
)
def test_an_unusable_day_has_one_finding_naming_the_file_and_the_problem(
    config, model, name, content, problem
):
    good = write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 30))
    bytes_ = good.read_bytes()
    good.write_bytes(content(bytes_))
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    snap.close()
    usable, _ = validation_checks(validation, model)
    assert not usable.passed and len(usable.findings) == 1
    finding = usable.findings[0]
    assert f"{model.name} {DAY} is not monitored" in finding.message
    assert str(good) in finding.message and problem in finding.message
    # nothing that reads as a measurement: the message is what an alert shows
    assert finding.value is None and finding.threshold is None


def test_an_empty_day_has_one_finding_naming_the_folder(config, model):
    write_parquet(config.data_dir, model.name, NEXT, synthetic_day(NEXT, 10))
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    snap.close()
    usable, _ = validation_checks(validation, model)
    (finding,) = usable.findings
    assert f"{model.name} {DAY} is not monitored" in finding.message
    assert f"date={DAY}" in finding.message and "no prediction files" in finding.message


def test_every_problem_of_an_unusable_day_is_in_its_one_finding(config, model):
    good = write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 30), name="a.parquet")
    empty = write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 30), name="b.parquet")
    empty.write_bytes(b"")
    narrow = write_parquet(
        config.data_dir, model.name, DAY, synthetic_day(DAY, 30).drop(columns=["ts"]), name="c.parquet"
    )
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    snap.close()
    usable, _ = validation_checks(validation, model)
    (finding,) = usable.findings  # one root alert, not one per problem (alerting keeps one per subject)
    assert str(empty) in finding.message and str(narrow) in finding.message and "'ts'" in finding.message
    assert str(good) not in finding.message
    assert finding.evidence["problems"] == validation.problems and len(validation.problems) == 2


def _corrupt_pages(good: bytes) -> bytes:
    """The footer intact, the column data in the middle overwritten: only reading the values fails."""
    middle = len(good) // 4
    return good[:middle] + bytes(range(256)) * 8 + good[middle + 2048 :]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (lambda good: b"", "empty file, 0 bytes"),
        (lambda good: good[: len(good) // 2], "unreadable"),
        (lambda good: b"<!DOCTYPE html><html><body>Not Found</body></html>", "unreadable"),
        (_corrupt_pages, "unreadable"),
    ],
    ids=["zero-byte", "truncated", "html", "corrupt-pages"],
)
def test_a_bad_late_file_does_not_block_the_previous_day(config, model, caplog, content, problem):
    today = synthetic_day(DAY, 50)
    write_parquet(config.data_dir, model.name, DAY, today)
    late = _rows(NEXT, DAY, 3, "late")
    write_parquet(
        config.data_dir,
        model.name,
        NEXT,
        pd.concat([synthetic_day(NEXT, 20, seed=3), late]),
        name="a.parquet",
    )
    # its own rows and more late rows of the day: the day's read of it cannot skip its data
    more = pd.concat([synthetic_day(NEXT, 5000, seed=4), _rows(NEXT, DAY, 5000, "lost")])
    bad = write_parquet(config.data_dir, model.name, NEXT, more, name="b.parquet")
    bad.write_bytes(content(bad.read_bytes()))
    with caplog.at_level("WARNING", logger="monitoring_pipelines.storage.sources"):
        snap, validation, read = Snapshot.from_source(config, model, DAY)
    try:
        assert validation.usable, validation.problems
        assert set(snap.frame()["prediction_id"]) == set(today["prediction_id"]) | set(late["prediction_id"])
    finally:
        snap.close()
    # named in the read, the log, validation_results and the validation check (a warning)
    assert len(read.skipped) == 1 and str(bad) in read.skipped[0] and problem in read.skipped[0]
    assert any(str(bad) in r.getMessage() for r in caplog.records), caplog.text
    row = validation.results[validation.results["expectation"] == NEIGHBOUR_FILES]
    assert len(row) == 1 and not row["success"].iloc[0] and not row["blocking"].iloc[0]
    assert str(bad) in json.loads(row["details"].iloc[0])["skipped"][0]
    _, checks = validation_checks(validation, model)
    (finding,) = [f for f in checks.findings if f.subject == NEIGHBOUR_FILES]
    assert finding.severity == "warning" and str(bad) in finding.message
    # the file's own day is blocked by it
    snap, tomorrow, _ = Snapshot.from_source(config, model, NEXT)
    snap.close()
    assert not tomorrow.usable and any(str(bad) in p for p in tomorrow.problems), tomorrow.problems


def test_a_late_file_without_a_required_column_is_left_out_of_the_previous_day(config, model):
    """Its rows are not the day's bad rows (quarantined as `score not null for ok rows`): the file is
    named, once, as left out; its own day is blocked by it."""
    write_parquet(config.data_dir, model.name, DAY, synthetic_day(DAY, 30))
    bad = write_parquet(
        config.data_dir, model.name, NEXT, _rows(NEXT, DAY, 3, "late").drop(columns=["score"])
    )
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    try:
        assert validation.usable and snap.rows == 30 and snap.quarantine_frame().empty
    finally:
        snap.close()
    row = validation.results[validation.results["expectation"] == NEIGHBOUR_FILES]
    (note,) = json.loads(row["details"].iloc[0])["skipped"]
    assert str(bad) in note and "'score'" in note
    snap, tomorrow, _ = Snapshot.from_source(config, model, NEXT)
    snap.close()
    assert not tomorrow.usable and any(str(bad) in p and "'score'" in p for p in tomorrow.problems)
