"""The DuckLake warehouse against a real PostgreSQL catalog (started here) and Parquet files on local disk:
the same tables as a DuckDB file, partition replacement in one transaction, writers in several processes at
once, analysts reading live, and the schema migrations."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from monitoring_pipelines.config import config_from_dict
from monitoring_pipelines.schema import ALL, SCHEMA_VERSION
from monitoring_pipelines.storage.warehouse import MIGRATIONS, LakeWarehouse, Warehouse
from monitoring_pipelines_tests.scale.servers import Postgres, postgres_server

pytestmark = pytest.mark.distributed  # needs the `distributed` extra: runs in .venv-distributed (Makefile)

DAY = dt.date(2026, 6, 10)


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def lake(pg: Postgres, tmp_path: Path) -> LakeWarehouse:
    """A new lake: its own catalog database, its files under tmp_path/lake."""
    db = pg.create_database(f"lake_{uuid.uuid4().hex[:8]}")
    warehouse = Warehouse(f"ducklake:postgres:{pg.libpq(db)}", data_path=str(tmp_path / "lake"))
    assert isinstance(warehouse, LakeWarehouse)
    return warehouse


def _rows(model: str, day: dt.date, n: int, value: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_name": model,
            "partition_date": day,
            "metric": [f"m{i}" for i in range(n)],
            "value": [value + i for i in range(n)],
            "estimated": False,
        }
    )


def _columns(con: duckdb.DuckDBPyConnection, catalog: str) -> set[tuple[str, str, str, str]]:
    return set(
        con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = 'monitoring'",
            [catalog],
        ).fetchall()
    )


def test_config_selects_the_lake_and_resolves_its_data_path(tmp_path):
    raw = {
        "warehouse": "ducklake:postgres:dbname=lake host=127.0.0.1",
        "warehouse_data_path": "lake-files",
        "models": [
            {
                "name": "m",
                "features": {"numeric": ["x"]},
                "reference": {"start": "2026-06-01", "end": "2026-06-07"},
            }
        ],
    }
    config = config_from_dict(raw, tmp_path / "config.yaml")
    assert config.warehouse == "ducklake:postgres:dbname=lake host=127.0.0.1"
    assert config.warehouse_data_path == str(tmp_path / "lake-files")
    assert isinstance(Warehouse.for_config(config), LakeWarehouse)


def test_the_lake_has_the_file_warehouses_tables_and_columns(lake, tmp_path):
    lake.ensure_schema()
    file = Warehouse(tmp_path / "w.duckdb")
    file.ensure_schema()
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    lake.prepare(con)
    con.execute(lake.attach_sql("l", read_only=True))
    con.execute(f"ATTACH '{file.path}' AS f (READ_ONLY)")
    in_lake, in_file = _columns(con, "l"), _columns(con, "f")
    assert in_file and in_lake == in_file
    assert lake.schema_version() == SCHEMA_VERSION


def test_partition_replace_is_one_transaction_and_a_rerun_replaces(lake):
    lake.replace_partitions(
        {"performance_metrics": _rows("a", DAY, 3), "serving_metrics": pd.DataFrame()}, "a", DAY
    )
    assert len(lake.partition("performance_metrics", "a", DAY)) == 3
    lake.replace_partition("performance_metrics", _rows("a", DAY, 2), "a", DAY)
    lake.replace_partition("performance_metrics", _rows("a", DAY, 2), "a", DAY)
    assert sorted(lake.partition("performance_metrics", "a", DAY)["metric"]) == ["m0", "m1"]
    bad = _rows("a", DAY, 1).assign(no_such_column=1)
    with pytest.raises(ValueError, match="no_such_column"):  # the second write fails: the first is undone
        lake.replace_many(
            [
                (
                    "performance_metrics",
                    _rows("a", DAY, 5),
                    "model_name = ? AND partition_date = ?",
                    ["a", DAY],
                ),
                ("serving_metrics", bad, "model_name = ?", ["a"]),
            ]
        )
    assert len(lake.partition("performance_metrics", "a", DAY)) == 2
    # the day's rows were written as Parquet under the data path or inlined in the catalog: either way
    # a new process (a fresh object, nothing cached) reads them back
    fresh = LakeWarehouse(lake.catalog)
    assert len(fresh.partition("performance_metrics", "a", DAY)) == 2


def _write_days(catalog: str, data_path: str, model: str, days: int) -> int:
    """A writer process: every day of `model` written twice (a re-run), each a transaction of its own."""
    warehouse = Warehouse(catalog, data_path=data_path)
    for k in range(days):
        day = DAY + dt.timedelta(days=k)
        for attempt in range(2):
            warehouse.replace_partitions(
                {
                    "performance_metrics": _rows(model, day, 4, value=attempt),
                    "serving_metrics": pd.DataFrame(),
                },
                model,
                day,
            )
    return days


def test_writers_in_two_processes_commit_concurrently(lake):
    """Two processes replace partitions of the same tables at the same time (the file warehouse would make
    them take turns on its lock): every write lands, conflicting commits are retried."""
    lake.ensure_schema()
    with mp.get_context("spawn").Pool(2) as pool:
        done = pool.starmap(_write_days, [(lake.catalog, lake.data_path, m, 6) for m in ("a", "b")])
    assert done == [6, 6]
    frame = lake.table("performance_metrics")
    assert len(frame) == 2 * 6 * 4
    assert set(frame["value"]) == {1.0, 2.0, 3.0, 4.0}  # the re-run's rows, never the first's
    assert frame.groupby(["model_name", "partition_date"]).size().eq(4).all()


def _keep_rewriting(catalog: str, data_path: str, rounds: int) -> int:
    warehouse = Warehouse(catalog, data_path=data_path)
    for k in range(rounds):
        warehouse.replace_partition("performance_metrics", _rows("a", DAY, 50, value=1000.0 * k), "a", DAY)
    return rounds


def test_an_analyst_reads_a_consistent_snapshot_while_a_run_writes(lake):
    """An analyst attaches the lake read-only while another process rewrites a partition over and over:
    every query sees one whole version of the partition (50 rows of one write), never a lock error."""
    lake.replace_partition("performance_metrics", _rows("a", DAY, 50), "a", DAY)
    analyst = lake.analyst_connection()
    with mp.get_context("spawn").Pool(1) as pool:
        writing = pool.apply_async(_keep_rewriting, (lake.catalog, lake.data_path, 25))
        seen = set()
        while not writing.ready():
            n, lo = analyst.execute(
                "SELECT count(*), min(value) FROM monitoring.performance_metrics WHERE model_name = 'a'"
            ).fetchone()
            assert n == 50, f"a partial write was visible: {n} rows"
            seen.add(lo)
        assert writing.get() == 25
    assert len(seen) >= 2  # the analyst did read while the writes went on
    with pytest.raises(duckdb.Error, match="read-only|read only|READ_ONLY"):
        analyst.execute("DELETE FROM monitoring.performance_metrics")
    analyst.close()


def test_an_old_lake_is_migrated_like_a_file(lake, pg):
    """A first-wave lake (no schema_version table, serving's old 'all' row) is upgraded by the first write
    with every migration since, once each, recorded in schema_version."""
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    lake.prepare(con)
    con.execute(lake.attach_sql("l"))
    con.execute("USE l")
    con.execute("CREATE SCHEMA monitoring")
    con.execute(
        "CREATE TABLE monitoring.serving_metrics (model_name VARCHAR NOT NULL, partition_date DATE NOT NULL, "
        "role VARCHAR NOT NULL, model_version VARCHAR NOT NULL, requests BIGINT)"
    )
    con.execute("INSERT INTO monitoring.serving_metrics VALUES ('a', DATE '2026-06-10', 'all', 'all', 100)")
    con.close()
    assert LakeWarehouse(lake.catalog).schema_version() == 1  # tables, no version table: the first wave

    lake.replace_partition("performance_metrics", _rows("a", DAY, 1), "a", DAY)
    assert lake.schema_version() == SCHEMA_VERSION
    serving = lake.table("serving_metrics")
    assert (serving["role"].tolist(), serving["model_version"].tolist()) == ([ALL], [ALL])
    recorded = lake.query("SELECT version, description FROM monitoring.schema_version ORDER BY version")
    assert recorded["version"].tolist() == list(range(2, SCHEMA_VERSION + 1))
    assert recorded["description"].tolist() == [MIGRATIONS[v][0] for v in range(2, SCHEMA_VERSION + 1)]
    LakeWarehouse(lake.catalog).ensure_schema()  # another process finds it current
    assert len(lake.query("SELECT * FROM monitoring.schema_version")) == SCHEMA_VERSION - 1


def test_a_lake_needs_no_copy_for_analysts(lake):
    lake.ensure_schema()
    assert not lake.path.exists()  # nothing for the dashboard to copy (it copies a file when there is one)
    with pytest.raises(RuntimeError, match="read-only"):
        lake.publish_copy()


def test_lake_files_in_a_bucket(pg, monkeypatch):
    """`warehouse_data_path: s3://...`: the Parquet files go to the bucket through DuckDB's httpfs (moto's
    standalone server: an emulator of the S3 API) and read back."""
    from pyarrow import fs

    from monitoring_pipelines_tests.scale.servers import moto_server

    with moto_server() as endpoint:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        s3 = fs.S3FileSystem(
            endpoint_override=endpoint.removeprefix("http://"),
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        s3.create_dir("lakebucket")
        db = pg.create_database(f"lake_{uuid.uuid4().hex[:8]}")
        lake = Warehouse(f"ducklake:postgres:{pg.libpq(db)}", data_path="s3://lakebucket/lake/")
        lake.replace_partition("performance_metrics", _rows("a", DAY, 500), "a", DAY)
        assert len(LakeWarehouse(lake.catalog).partition("performance_metrics", "a", DAY)) == 500
        files = [i.path for i in s3.get_file_info(fs.FileSelector("lakebucket", recursive=True))]
        assert any(
            p.startswith("lakebucket/lake/monitoring/performance_metrics/") and p.endswith(".parquet")
            for p in files
        )


def test_a_lake_password_is_never_shown():
    from monitoring_pipelines.storage.warehouse import shown

    lake = LakeWarehouse("ducklake:postgres:dbname=lake host=db password=s3cr3t-value user=u")
    assert "s3cr3t-value" not in repr(lake) and "password=***" in repr(lake)
    assert shown("ducklake:postgres:password='two words' host=db") == "ducklake:postgres:password=*** host=db"
    assert shown("/data/warehouse.duckdb") == "/data/warehouse.duckdb"


def _add_columns(catalog: str, data_path: str, start: float, columns: dict[str, str]) -> set[str]:
    """A writer process that, at `start` (epoch seconds), adds a model's columns, as every Celery worker's
    first run of a new model does."""
    import time

    warehouse = Warehouse(catalog, data_path=data_path)
    warehouse.ensure_schema()
    time.sleep(max(0.0, start - time.time()))
    warehouse.ensure_columns("prediction_snapshots", columns)
    return set(warehouse.table("prediction_snapshots").columns)


def test_writers_adding_the_same_columns_at_once_all_succeed(lake):
    """Two workers' first runs of one model both add its feature columns: the loser of the race finds them
    added and goes on (it used to fail the run with "Column with name region already exists")."""
    import time

    lake.ensure_schema()
    columns = {f"feature_{i}": "DOUBLE" for i in range(6)} | {"region": "VARCHAR"}
    for round_ in range(3):
        added = {f"{name}_{round_}": sql_type for name, sql_type in columns.items()}
        start = time.time() + 3.0  # every process has attached the lake by then
        with mp.get_context("spawn").Pool(4) as pool:
            seen = pool.starmap(_add_columns, [(lake.catalog, lake.data_path, start, added)] * 4)
        assert all(set(added) <= s for s in seen)
    assert set(columns) <= {c.rsplit("_", 1)[0] for c in lake.table("prediction_snapshots").columns}
