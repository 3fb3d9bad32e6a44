from __future__ import annotations

import datetime as dt
import logging
import multiprocessing as mp
import os
import re
import shutil
import signal
import stat
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from monitoring_pipelines.schema import ALL, SCHEMA_VERSION, columns_of
from monitoring_pipelines.storage.sources import new_connection
from monitoring_pipelines.storage.warehouse import MIGRATIONS, Warehouse, quote_ident

DAY = dt.date(2026, 6, 10)
WHERE = "model_name = ? AND partition_date = ?"


def _rows(model: str, day: dt.date, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_name": model,
            "partition_date": day,
            "metric": [f"m{i}" for i in range(n)],
            "value": range(n),
            "estimated": False,
        }
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_replace_partition_is_idempotent_and_scoped(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    wh.replace_partition("performance_metrics", _rows("b", DAY, 2), "b", DAY)
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    wh.replace_partition("performance_metrics", _rows("a", DAY, 1), "a", DAY)
    counts = wh.query(
        "SELECT model_name, count(*) n FROM monitoring.performance_metrics GROUP BY 1 ORDER BY 1"
    )
    assert counts.to_dict("list") == {"model_name": ["a", "b"], "n": [1, 2]}


def test_arrow_frames_are_written_like_pandas(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    assert (
        wh.replace_partition("performance_metrics", pa.Table.from_pandas(_rows("a", DAY, 4)), "a", DAY) == 4
    )
    wh.replace_partition("performance_metrics", _rows("b", DAY, 4), "b", DAY)
    a = wh.partition("performance_metrics", "a", DAY).drop(columns=["model_name"])
    b = wh.partition("performance_metrics", "b", DAY).drop(columns=["model_name"])
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b))
    # an empty frame clears the partition
    wh.replace_partition("performance_metrics", pa.Table.from_pandas(_rows("a", DAY, 0)), "a", DAY)
    assert wh.partition("performance_metrics", "a", DAY).empty


def test_failed_write_rolls_back(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    bad = _rows("a", DAY, 2).assign(not_a_column=1)
    with pytest.raises(ValueError, match="not_a_column"):
        wh.replace_partitions({"performance_metrics": _rows("a", DAY, 5), "drift_scores": bad}, "a", DAY)
    assert len(wh.partition("performance_metrics", "a", DAY)) == 3


@pytest.mark.parametrize("how", ["frame", "select"])
def test_write_with_an_unknown_column_is_refused_naming_it(tmp_path, how):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    bad = _rows("a", DAY, 2).assign(bogus_column=1.0)
    with pytest.raises(ValueError, match="bogus_column") as refused:
        if how == "frame":
            wh.replace_partition("performance_metrics", bad, "a", DAY)
        else:
            con = new_connection()
            try:
                con.register("bad", bad)
                wh.replace_from(con, [("performance_metrics", "SELECT * FROM bad", WHERE, ["a", DAY])])
            finally:
                con.close()
    assert "['bogus_column']" in str(refused.value)  # only the unknown column is named
    assert "performance_metrics" in str(refused.value)
    assert len(wh.partition("performance_metrics", "a", DAY)) == 3


def test_columns_added_by_another_writer_are_seen_before_refusing(tmp_path):
    path = tmp_path / "w.duckdb"
    first, second = Warehouse(path), Warehouse(path)
    snapshot = {c: None for c in columns_of("prediction_snapshots")}
    row = pd.DataFrame(
        [
            {
                **snapshot,
                "model_name": "a",
                "partition_date": DAY,
                "prediction_id": "p1",
                "request_id": "r1",
                "model_version": "v1",
                "role": "champion",
                "ts": pd.Timestamp("2026-06-10 12:00", tz="UTC"),
                "status": "ok",
            }
        ]
    )
    first.replace_partition("prediction_snapshots", row, "a", DAY)  # `first` now knows the columns
    second.ensure_columns("prediction_snapshots", {"new_feature": "DOUBLE"})
    first.replace_partition("prediction_snapshots", row.assign(new_feature=2.5), "a", DAY)
    assert first.partition("prediction_snapshots", "a", DAY)["new_feature"].tolist() == [2.5]


def test_identifiers_are_validated():
    assert quote_ident("income") == '"income"'
    with pytest.raises(ValueError):
        quote_ident('x"; DROP TABLE y; --')


def test_shared_is_one_object_per_file(tmp_path):
    path = tmp_path / "w.duckdb"
    assert Warehouse.shared(path) is Warehouse.shared(str(path))
    assert Warehouse.shared(path) is Warehouse.shared(tmp_path / "." / "w.duckdb")
    assert Warehouse.shared(path) is not Warehouse.shared(tmp_path / "other.duckdb")


def test_new_file_records_the_current_schema_version(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    assert wh.schema_version() is None
    wh.ensure_schema()
    assert wh.schema_version() == SCHEMA_VERSION
    versions = wh.query("SELECT version FROM monitoring.schema_version")
    assert versions["version"].tolist() == [SCHEMA_VERSION]


def test_a_new_file_at_the_same_path_gets_its_tables_again(tmp_path):
    """The schema is cached per file; another database put at the path must be checked again.
    `cp` over the old file keeps its inode (as deleting and creating a file often does on ext4,
    which reuses the freed inode number), so the file's identity must not rest on (device, inode)."""
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    fresh = tmp_path / "fresh.duckdb"
    duckdb.connect(str(fresh)).close()
    shutil.copyfile(fresh, path)  # like `cp fresh.duckdb w.duckdb`: a new, empty database
    wh.replace_partition("performance_metrics", _rows("a", DAY, 2), "a", DAY)
    assert len(wh.partition("performance_metrics", "a", DAY)) == 2
    assert wh.schema_version() == SCHEMA_VERSION


def test_a_deleted_and_recreated_file_gets_its_tables_again(tmp_path):
    """Repeated, because whether the new file gets the freed inode number is up to the file system."""
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    for k in range(40):
        wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
        path.unlink()
        wh.replace_partition("performance_metrics", _rows("a", DAY, 2), "a", DAY)
        assert len(wh.partition("performance_metrics", "a", DAY)) == 2, f"round {k}"
        path.unlink()


def _v1_file(path) -> None:
    """A first-wave warehouse: no schema_version table, serving's model-wide row is 'all', and
    reference_profiles without the input fingerprint column."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA monitoring")
        con.execute(
            """
            CREATE TABLE monitoring.serving_metrics (
                model_name VARCHAR NOT NULL, partition_date DATE NOT NULL, role VARCHAR NOT NULL,
                model_version VARCHAR NOT NULL, latency_p50_ms DOUBLE, latency_p95_ms DOUBLE,
                latency_p99_ms DOUBLE, requests BIGINT, peak_requests_per_hour BIGINT, error_rate DOUBLE,
                errors BIGINT
            )
            """
        )
        con.execute(
            """
            INSERT INTO monitoring.serving_metrics VALUES
                ('a', DATE '2026-06-10', 'all', 'all', 10, 20, 30, 100, 9, 0.01, 1),
                ('a', DATE '2026-06-10', 'champion', 'v1', 10, 20, 30, 60, 5, 0.0, 0),
                ('a', DATE '2026-06-10', 'shadow', 'all', 11, 21, 31, 40, 4, 0.025, 1)
            """
        )
        con.execute(
            """
            CREATE TABLE monitoring.reference_profiles (
                model_name VARCHAR NOT NULL, profile_version VARCHAR NOT NULL, feature VARCHAR NOT NULL,
                kind VARCHAR NOT NULL, profile JSON, n BIGINT, reference_start DATE, reference_end DATE,
                created_at TIMESTAMPTZ
            )
            """
        )
        con.execute(
            "INSERT INTO monitoring.reference_profiles (model_name, profile_version, feature, kind) VALUES ('a', 'p1', 'x', 'numeric')"
        )


def test_v1_file_is_upgraded_once_and_recorded(tmp_path):
    path = tmp_path / "w.duckdb"
    _v1_file(path)
    wh = Warehouse(path)
    assert wh.schema_version() == 1
    # reading does not upgrade
    assert set(wh.table("serving_metrics")["role"]) == {"all", "champion", "shadow"}
    assert wh.schema_version() == 1

    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)  # the first write upgrades
    assert wh.schema_version() == SCHEMA_VERSION == 5
    serving = wh.table("serving_metrics").set_index("requests")
    assert (serving.loc[100, "role"], serving.loc[100, "model_version"]) == (ALL, ALL)
    assert (serving.loc[60, "role"], serving.loc[60, "model_version"]) == ("champion", "v1")
    assert (serving.loc[40, "role"], serving.loc[40, "model_version"]) == ("shadow", "all")
    assert len(serving) == 3
    # the tables and columns the new version declares are there; old rows are kept
    profiles = wh.table("reference_profiles")
    assert "input_fingerprint" in profiles.columns and profiles["feature"].tolist() == ["x"]
    assert wh.table("alerts").empty and "resolved_by" in wh.table("alerts").columns
    recorded = wh.query("SELECT version, description FROM monitoring.schema_version ORDER BY version")
    assert recorded["version"].tolist() == [2, 3, 4, 5]
    assert recorded["description"].tolist() == [MIGRATIONS[v][0] for v in (2, 3, 4, 5)]
    # version 5: the multiclass confusion matrix (issue #15)
    assert wh.table("confusion_matrix").empty
    # version 3: incidents on alerts, trust on estimates, the label quarantine
    assert {"incident_id", "root_cause", "reopened"} <= set(wh.table("alerts").columns)
    perf = wh.partition("performance_metrics", "a", DAY)
    assert {"trusted", "estimate_note"} <= set(perf.columns)
    assert wh.table("quarantined_labels").empty

    # a later writer (another process: nothing cached) finds it current and does not migrate again
    Warehouse(path).replace_partition("performance_metrics", _rows("a", DAY, 2), "a", DAY)
    Warehouse(path).ensure_schema()
    again = Warehouse(path).query("SELECT version FROM monitoring.schema_version ORDER BY version")
    assert again["version"].tolist() == [2, 3, 4, 5]
    assert len(Warehouse(path).partition("performance_metrics", "a", DAY)) == 2


def test_a_newer_schema_version_refuses_writes(tmp_path):
    path = tmp_path / "w.duckdb"
    Warehouse(path).replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    with duckdb.connect(str(path)) as con:
        con.execute(
            "INSERT INTO monitoring.schema_version VALUES (?, now(), 'from the future')", [SCHEMA_VERSION + 1]
        )
    wh = Warehouse(path)
    assert wh.schema_version() == SCHEMA_VERSION + 1
    with pytest.raises(RuntimeError, match=rf"schema version {SCHEMA_VERSION + 1}.*newer") as refused:
        wh.replace_partition("performance_metrics", _rows("a", DAY, 1), "a", DAY)
    assert str(SCHEMA_VERSION) in str(refused.value) and "upgrade" in str(refused.value)
    with pytest.raises(RuntimeError, match="newer"):
        con = new_connection()
        try:
            wh.replace_from(con, [("performance_metrics", _rows("a", DAY, 1), WHERE, ["a", DAY])])
        finally:
            con.close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM monitoring.performance_metrics").fetchone()[0] == 3
        versions = con.execute("SELECT version FROM monitoring.schema_version ORDER BY 1").fetchall()
    assert [v[0] for v in versions] == [SCHEMA_VERSION, SCHEMA_VERSION + 1]


def _working_db() -> duckdb.DuckDBPyConnection:
    """A model-day's working database with rows for two warehouse tables."""
    con = new_connection()
    con.execute(
        "CREATE TABLE perf AS SELECT 'a' AS model_name, DATE '2026-06-10' AS partition_date, "
        "'m' || i AS metric, i * 1.5 AS value, false AS estimated FROM range(5) t(i)"
    )
    con.execute(
        "CREATE TABLE serving AS SELECT 'a' AS model_name, DATE '2026-06-10' AS partition_date, "
        "'champion' AS role, 'v' || i AS model_version, 100 + i AS requests FROM range(3) t(i)"
    )
    return con


def test_replace_from_streams_selects_and_frames_in_one_transaction(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("b", DAY, 2), "b", DAY)
    con = _working_db()
    try:
        writes = [
            ("performance_metrics", "SELECT * FROM perf", WHERE, ["a", DAY]),
            ("serving_metrics", "SELECT * FROM serving", WHERE, ["a", DAY]),
            (
                "drift_scores",
                pd.DataFrame(
                    {
                        "model_name": ["a"],
                        "partition_date": [DAY],
                        "feature": ["x"],
                        "statistic": ["psi"],
                        "value": [0.1],
                    }
                ),
                WHERE,
                ["a", DAY],
            ),
        ]
        wh.replace_from(con, writes)
        first = {
            t: _sorted(wh.partition(t, "a", DAY))
            for t in ("performance_metrics", "serving_metrics", "drift_scores")
        }
        assert [len(first[t]) for t in first] == [5, 3, 1]
        wh.replace_from(con, writes)  # re-running replaces: the same table
        for table, frame in first.items():
            pd.testing.assert_frame_equal(_sorted(wh.partition(table, "a", DAY)), frame)
        assert len(wh.partition("performance_metrics", "b", DAY)) == 2  # other partitions untouched
        # the connection is usable afterwards: the warehouse is detached
        assert con.execute("SELECT count(*) FROM perf").fetchone()[0] == 5
        assert "warehouse" not in {
            r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        }
    finally:
        con.close()


@pytest.mark.parametrize(
    "failing",
    [
        (
            "drift_scores",
            "SELECT 'a' AS model_name, DATE '2026-06-10' AS partition_date, 1 AS no_such_column",
        ),
        # NOT NULL violated on insert: the error comes from DuckDB, after the first write's insert
        (
            "drift_scores",
            "SELECT 'a' AS model_name, DATE '2026-06-10' AS partition_date, NULL AS feature, 'psi' AS statistic",
        ),
    ],
    ids=["unknown-column", "constraint"],
)
def test_replace_from_is_atomic(tmp_path, failing):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    before = _sorted(wh.partition("performance_metrics", "a", DAY))
    con = _working_db()
    try:
        with pytest.raises((ValueError, duckdb.Error)):
            wh.replace_from(
                con,
                [
                    ("performance_metrics", "SELECT * FROM perf", WHERE, ["a", DAY]),
                    (failing[0], failing[1], WHERE, ["a", DAY]),
                ],
            )
        # the warehouse is detached again and the first table is as it was
        assert "warehouse" not in {
            r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        }
        pd.testing.assert_frame_equal(_sorted(wh.partition("performance_metrics", "a", DAY)), before)
        assert wh.partition("drift_scores", "a", DAY).empty
        # and a correct write still goes through on the same connection
        wh.replace_from(con, [("performance_metrics", "SELECT * FROM perf", WHERE, ["a", DAY])])
        assert len(wh.partition("performance_metrics", "a", DAY)) == 5
    finally:
        con.close()


def _writer(path: str, model: str, ready=None) -> None:
    wh = Warehouse(path)
    if ready is not None:
        ready.set()  # about to write
    for k in range(15):
        wh.replace_partition(
            "performance_metrics",
            _rows(model, DAY + dt.timedelta(days=k), 50),
            model,
            DAY + dt.timedelta(days=k),
        )


def test_concurrent_writer_processes_never_hit_a_lock_error(tmp_path):
    path = str(tmp_path / "w.duckdb")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"m{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert (
        Warehouse(path).query("SELECT count(*) n FROM monitoring.performance_metrics")["n"][0] == 3 * 15 * 50
    )
    assert Warehouse(path).schema_version() == SCHEMA_VERSION
    assert Warehouse(path).query("SELECT count(*) n FROM monitoring.schema_version")["n"][0] == 1


def test_writers_wait_for_the_lock(tmp_path):
    """Two processes write at once: one waits for the other's file lock instead of failing."""
    path = str(tmp_path / "w.duckdb")
    Warehouse(path).ensure_schema()
    ctx = mp.get_context("spawn")
    holder = Warehouse(path)
    ready = ctx.Event()
    with holder.lock():  # this process is "writing": a second writer must wait
        proc = ctx.Process(target=_writer, args=(path, "waiting", ready))
        proc.start()
        assert ready.wait(120)
        time.sleep(2)  # ample time for a write that did not wait
        assert proc.is_alive() and proc.exitcode is None
        with duckdb.connect(path, read_only=True) as con:  # nothing written behind the lock's back
            assert con.execute("SELECT count(*) FROM monitoring.performance_metrics").fetchone()[0] == 0
    proc.join(120)
    assert proc.exitcode == 0
    assert Warehouse(path).query("SELECT count(*) n FROM monitoring.performance_metrics")["n"][0] == 15 * 50


def test_publish_copy_is_readable(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    copy = wh.publish_copy()
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM monitoring.performance_metrics").fetchone()[0] == 3


def _write_then_die(path: str) -> None:
    """A writer killed after its commit, before any checkpoint: its rows are only in the WAL."""
    with Warehouse(path).connect() as con:
        con.register("incoming", _rows("a", DAY, 3))
        con.execute(
            "INSERT INTO monitoring.performance_metrics (model_name, partition_date, metric, value, estimated) "
            "SELECT * FROM incoming"
        )
        os.kill(os.getpid(), signal.SIGKILL)


def _count(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM monitoring.performance_metrics").fetchone()[0]


def test_published_copy_holds_the_commits_a_crashed_writer_left_in_the_wal(tmp_path):
    path = tmp_path / "w.duckdb"
    Warehouse(path).ensure_schema()
    proc = mp.get_context("spawn").Process(target=_write_then_die, args=(str(path),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    wal = Path(f"{path}.wal")
    assert wal.stat().st_size > 0
    shutil.copyfile(path, tmp_path / "file_alone.duckdb")
    assert _count(tmp_path / "file_alone.duckdb") == 0  # the main file alone lacks them
    Path(tmp_path / "w_analyst.duckdb.wal").write_bytes(b"left by an analyst's read-write session")

    copy = Warehouse(path).publish_copy()

    assert _count(copy) == 3
    assert not Path(f"{copy}.wal").exists()


def _hold_read_only(path: str, ready, seconds: float) -> None:
    """An analyst's read-only session on the live file."""
    con = duckdb.connect(path, read_only=True)
    ready.set()
    time.sleep(seconds)
    con.close()


def _waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "monitoring_pipelines.storage.warehouse"]


def _waited_seconds(messages: list[str], what: str) -> float:
    (line,) = [m for m in messages if m.startswith("waited") and what in m]
    return float(re.match(r"waited (\d+\.\d) s ", line).group(1))


def test_a_writer_kept_waiting_by_a_read_only_session_says_so(tmp_path, caplog):
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    caplog.set_level(logging.INFO, logger="monitoring_pipelines.storage.warehouse")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    assert _waits(caplog) == []  # a write that did not wait is quiet
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    reader = ctx.Process(target=_hold_read_only, args=(str(path), ready, 2.5))
    reader.start()
    assert ready.wait(120)

    wh.replace_partition("performance_metrics", _rows("a", DAY, 2), "a", DAY)

    reader.join(60)
    messages = _waits(caplog)
    assert any(
        m.startswith(f"waiting for the warehouse file {path}") and f"process {reader.pid}" in m
        for m in messages
    ), messages
    assert 1.0 <= _waited_seconds(messages, str(path)) < 60
    assert len(wh.partition("performance_metrics", "a", DAY)) == 2


def test_a_writer_kept_waiting_by_the_lock_says_so(tmp_path, caplog):
    path = tmp_path / "w.duckdb"
    Warehouse(path).ensure_schema()
    held = threading.Event()

    def another_writer() -> None:
        with Warehouse(path).lock():
            held.set()
            time.sleep(2)

    holder = threading.Thread(target=another_writer)
    holder.start()
    assert held.wait(30)
    caplog.set_level(logging.INFO, logger="monitoring_pipelines.storage.warehouse")

    Warehouse(path).replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)

    holder.join()
    messages = _waits(caplog)
    lock_file = f"{path}.lock"
    assert any(m.startswith(f"waiting for the warehouse lock {lock_file}") for m in messages), messages
    assert 1.0 <= _waited_seconds(messages, lock_file) < 30
    # a few seconds behind another writer of ours is routine (a backfill's workers): INFO, not a warning
    lock_records = [r for r in caplog.records if "warehouse lock" in r.getMessage()]
    assert lock_records and all(r.levelno == logging.INFO for r in lock_records)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_warehouse_files_are_created_without_access_for_others(tmp_path, umask):
    """The database, its WAL, its lock file and the analysts' copy: 0640 whatever the umask, which the
    warehouse leaves as it found it."""
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    previous = os.umask(umask)
    try:
        with wh.connect() as con:
            con.register("incoming", _rows("a", DAY, 3))
            con.execute(
                "INSERT INTO monitoring.performance_metrics (model_name, partition_date, metric, value, "
                "estimated) SELECT * FROM incoming"
            )
            wal = Path(f"{path}.wal")
            assert wal.exists()  # committed, not checkpointed yet
            modes = {"wal": stat.S_IMODE(wal.stat().st_mode)}
        copy = wh.publish_copy()
        assert os.umask(umask) == umask  # restored
    finally:
        os.umask(previous)
    modes |= {
        name: stat.S_IMODE(Path(file).stat().st_mode)
        for name, file in {"database": path, "lock": f"{path}.lock", "copy": copy}.items()
    }
    assert modes == {"wal": 0o640, "database": 0o640, "lock": 0o640, "copy": 0o640}
