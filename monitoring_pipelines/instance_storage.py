"""Dagster's SQLite instance storage with pooled connections: the embedded default, made cheap per event.

Dagster's SQLite event log opens a new SQLAlchemy engine and connection for every event it stores
(and a second one for asset events, which it mirrors into the index shard), and SQLite's default
`synchronous = FULL` syncs the WAL on every commit. A model-day run writes ~70 events, so on this
machine a run cost ~1.3 s of bookkeeping before any monitoring happened. This storage is the same
files, schema and layout as Dagster's default `storage: sqlite` (an instance can switch back and
forth), with two changes measured in bench/results.json:

* one pooled engine per shard (the index shard and the current runs' shards), not one per event;
* `PRAGMA synchronous = NORMAL` in WAL mode: a committed event survives a crash of any process;
  only a power loss can drop the last few events of a run, which the run's own status then shows
  as unfinished.

Selected in dagster_home/dagster.yaml (`storage: custom:`). PostgreSQL (`dagster-postgres`) is the
choice when several hosts share an instance; this is for the single-machine default.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine, event

SQLITE_BUSY_TIMEOUT_SECONDS = 30
OPEN_SHARDS = 8  # run shards kept open: the runs of this process that are writing now


def _pooled_engine(conn_string: str) -> Engine:
    engine = create_engine(
        conn_string,
        pool_size=2,
        max_overflow=4,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return engine


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose shards keep one pooled engine each (LRU of OPEN_SHARDS + the index)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = _pooled_engine(self.conn_string_for_shard(shard))
            self._engines[shard] = engine
            while len(self._engines) > OPEN_SHARDS + 1:
                oldest = next(k for k in self._engines if k != "index")
                self._engines.pop(oldest).dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()

    def delete_events(self, run_id: str) -> None:
        with self._engines_lock:  # the shard's file goes: let go of it first
            engine = self._engines.pop(run_id, None)
            if engine is not None:
                engine.dispose()
        super().delete_events(run_id)


class PooledSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite` with the pooled event log (same base_dir layout as Dagster's default)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> PooledSqliteStorage:
        base_dir = config_value.get("base_dir") or os.environ["DAGSTER_HOME"]
        return cls(os.path.abspath(base_dir), inst_data=inst_data)
