"""The DuckDB warehouse: schema `monitoring`, partition replace in one transaction, short-lived writers.

DuckDB allows one writing process per file. Dagster serializes our writer runs with the
`duckdb_warehouse` pool; inside and across processes a file lock (`<warehouse>.lock`, `filelock`, so
it works on every OS) makes every connection (reader or writer) wait its turn instead of failing, and
connections are held only for the read or write itself, never during compute.

The tables are declared once, in `monitoring_pipelines.schema`. The file records which version of
that schema it holds (table `schema_version`); opening an older file for writing upgrades it with
the migrations below, in one transaction, and records the new version.

Files it creates (the database, its WAL, its lock file, the analysts' copy) are never world-readable:
mode `FILE_MODE` (0640) at most, stricter if the process umask asks for it.

`warehouse: ducklake:<catalog>` in the config selects `LakeWarehouse` instead (same interface, same tables
and SQL): a DuckLake whose catalog lives in PostgreSQL and whose Parquet files live in a directory or a
bucket, written by several processes on several hosts at once (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from filelock import FileLock
from filelock import Timeout as LockTimeout

from monitoring_pipelines.config import IDENTIFIER
from monitoring_pipelines.schema import ALL, PARTITIONED_TABLES, SCHEMA, SCHEMA_VERSION, TABLE, TABLES

__all__ = [
    "FILE_MODE",
    "LAKE_PREFIX",
    "PARTITIONED_TABLES",
    "SCHEMA",
    "TABLES",
    "LakeWarehouse",
    "Warehouse",
    "is_lake",
    "qualified",
    "quote_ident",
]

log = logging.getLogger(__name__)

# Owner read-write, group read, nothing for others: the results are the team's, not the host's. Share them
# through the file's group (docs/operating.md); a process umask of 077 makes the data files 0600.
FILE_MODE = 0o640
# A wait for the file (the lock, or an analyst's session on it) longer than this is logged: before, a
# read-only session stalled the pipeline with nothing said. A wait for an analyst's session (outside our
# lock) is a warning at once; a wait for our own lock is routine between the writers of a backfill (a few
# seconds), so it is logged at INFO and becomes a warning only past LOCK_WAIT_WARN_S.
WAIT_REPORT_AFTER_S = 1.0
LOCK_WAIT_WARN_S = 30.0

# version -> (what it changes, statements run after the tables have their declared columns).
# Version 1 is the first wave's file, which had no schema_version table.
MIGRATIONS: dict[int, tuple[str, tuple[str, ...]]] = {
    2: (
        "serving's model-wide row is role = model_version = '__all__' (was 'all'); alerts keep their "
        "episode columns in the declared schema; reference_profiles records its input fingerprint",
        (
            f"UPDATE {SCHEMA}.serving_metrics SET role = '{ALL}', model_version = '{ALL}' "
            "WHERE role = 'all' AND model_version = 'all'",
        ),
    ),
    3: (
        "alerts are grouped into incidents (incident_id, root_cause) and re-open after a short resolution "
        "(reopened); an alert stored before stands alone until the next evaluation groups it. "
        "performance_metrics: estimated rows say whether the checks may judge them (trusted) and how the "
        "scores were calibrated (estimate_note); rows written before are trusted raw-score estimates. "
        "quarantined_labels: label rows of a model-day's requests that could not be used",
        (
            f"UPDATE {SCHEMA}.alerts SET incident_id = alert_id, reopened = 0 WHERE incident_id IS NULL",
            f"UPDATE {SCHEMA}.performance_metrics SET trusted = true, "
            "estimate_note = 'raw scores: written before schema version 3' WHERE estimated AND trusted IS NULL",
        ),
    ),
    4: (
        "intraday_results: what the intraday watch and the monitoring-gap looks found, one row per model, day, "
        "look and check (docs/intraday.md); created empty, nothing to convert",
        (),
    ),
    5: (
        "confusion_matrix: a multiclass model-day's counts per observed and predicted class, written by "
        "performance_metrics (regression and multiclass models, issue #15); created empty, nothing to convert",
        (),
    ),
}


def quote_ident(name: str) -> str:
    """Quote an identifier that came from config after checking it is one."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a safe SQL identifier")
    return f'"{name}"'


def qualified(table: str) -> str:
    if table not in TABLES:
        raise KeyError(f"unknown warehouse table {table!r}")
    return f"{SCHEMA}.{quote_ident(table)}"


LAKE_PREFIX = "ducklake:"


def is_lake(target: object) -> bool:
    """Whether a `warehouse` value names a DuckLake (`ducklake:...`) rather than a DuckDB file."""
    return isinstance(target, str) and target.startswith(LAKE_PREFIX)


def shown(target: object) -> str:
    """A `warehouse` value as messages and reports show it: a lake's `password=...` as `***` (better kept
    out of the config altogether: libpq reads PGPASSWORD or ~/.pgpass)."""
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", str(target), flags=re.IGNORECASE)


class Warehouse:
    """One DuckDB file. Every public method opens, uses and closes its own connection.

    `Warehouse("ducklake:...")` makes a `LakeWarehouse`: every caller keeps one constructor."""

    _shared: dict[tuple[str, float], Warehouse] = {}

    def __new__(cls, target: str | Path | None = None, *args: Any, **kwargs: Any) -> Warehouse:
        # (target optional: unpickling calls __new__ without arguments)
        if cls is Warehouse and is_lake(target):
            return super().__new__(LakeWarehouse)
        return super().__new__(cls)

    @classmethod
    def shared(
        cls, path: str | Path, lock_timeout_s: float = 600.0, data_path: str | None = None
    ) -> Warehouse:
        """The process's one object for this warehouse: what it learned (schema created, columns known) is
        not learned again by every run of a backfill. `data_path` is a lake's (see LakeWarehouse)."""
        key = (str(path) if is_lake(path) else str(Path(path).resolve()), lock_timeout_s)
        if key not in cls._shared:
            cls._shared[key] = (
                LakeWarehouse(str(path), lock_timeout_s, data_path)
                if is_lake(path)
                else cls(path, lock_timeout_s)
            )
        found = cls._shared[key]
        if isinstance(found, LakeWarehouse) and data_path and not found.data_path:
            found.data_path = str(data_path)  # first asked for by a reader that did not know it
        return found

    @classmethod
    def for_config(cls, config: Any) -> Warehouse:
        """The config's warehouse (its `warehouse` and, for a lake, `warehouse_data_path`), shared."""
        return cls.shared(config.warehouse, data_path=getattr(config, "warehouse_data_path", None))

    @property
    def target(self) -> str:
        """What the config names: the file, or the lake's `ducklake:` string (for reports and errors)."""
        return str(self.path)

    def exists(self) -> bool:
        """Whether the warehouse has been created (a file warehouse: the file is there)."""
        return self.path.exists()

    def _retrying(self, write: Any) -> Any:
        """Run a write; the file warehouse's writers take turns on the lock, so there is nothing to retry."""
        return write()

    def __init__(self, path: str | Path, lock_timeout_s: float = 600.0) -> None:
        self.path = Path(path).resolve()
        self.lock_timeout_s = lock_timeout_s
        self._lock = FileLock(str(self.path.with_name(self.path.name + ".lock")), mode=FILE_MODE)
        self._columns: dict[str, set[str]] = {}  # known columns per table (they are only ever added)
        self._session = threading.local()  # this thread's open session connection, if any

    # ------------------------------------------------------------------ connections
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The file lock every user of the warehouse takes (reentrant within a thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            yield
        finally:
            self._lock.release()

    def _acquire(self) -> None:
        """Take the file lock. A wait past WAIT_REPORT_AFTER_S is logged (INFO) when it starts and when it
        ends; past LOCK_WAIT_WARN_S it is a warning, so a stalled run says what it waits for."""
        started = time.monotonic()
        steps = [min(self.lock_timeout_s, WAIT_REPORT_AFTER_S), min(self.lock_timeout_s, LOCK_WAIT_WARN_S)]
        waited_for = 0.0
        for step, level in zip(
            [*steps, self.lock_timeout_s], [None, logging.INFO, logging.WARNING], strict=True
        ):
            if level is not None:
                log.log(
                    level,
                    "waiting for the warehouse lock %s (%.0f s so far): another process using this warehouse "
                    "(a run, a CLI command, or a reader through monitoring_pipelines) holds it",
                    self._lock.lock_file,
                    time.monotonic() - started,
                )
            try:
                self._lock.acquire(timeout=max(step - waited_for, 0.0), poll_interval=0.05)
            except LockTimeout:
                waited_for = step
                if step >= self.lock_timeout_s:
                    raise TimeoutError(
                        f"waited {self.lock_timeout_s:.0f}s for {self._lock.lock_file}"
                    ) from None
                continue
            waited = time.monotonic() - started
            if level is not None:
                log.log(
                    logging.WARNING if waited >= LOCK_WAIT_WARN_S else logging.INFO,
                    "waited %.1f s for the warehouse lock %s",
                    waited,
                    self._lock.lock_file,
                )
            return

    def _open(self, open_: Any) -> Any:
        """Open the file, retrying while a process outside our lock (an analyst's session) holds it; a wait
        past WAIT_REPORT_AFTER_S is logged, naming the holder DuckDB reports."""
        delay = 0.05
        started = time.monotonic()
        deadline = started + self.lock_timeout_s
        warned = False
        while True:
            try:
                opened = open_()
            except (duckdb.IOException, duckdb.BinderException) as exc:
                text = str(exc).lower()
                if ("lock" not in text and "conflict" not in text) or time.monotonic() > deadline:
                    raise
                if not warned and time.monotonic() - started >= WAIT_REPORT_AFTER_S:
                    log.warning(
                        "waiting for the warehouse file %s: %s holds it open outside the warehouse lock, "
                        "usually an analyst's session (docs/analysts.md#opening-the-warehouse-safely)",
                        self.path,
                        _holder(str(exc)),
                    )
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            waited = time.monotonic() - started
            if waited >= WAIT_REPORT_AFTER_S:
                log.warning("waited %.1f s for the warehouse file %s", waited, self.path)
            return opened

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, serialized with every other user of the file.

        Another process holding the file (an analyst's session, say) makes DuckDB refuse the
        open; we retry for a while with backoff instead of failing the run at once.
        """
        shared = getattr(self._session, "con", None)
        if shared is not None:  # inside session(): its connection serves reads and writes
            yield shared
            return
        with self.lock():
            if read_only and not self.path.exists():
                read_only = False
            with contextlib.nullcontext() if read_only else _private_files():
                con = self._open(lambda: duckdb.connect(str(self.path), read_only=read_only))
                try:
                    if not read_only and not _at_current_version(con):
                        _create_schema(con)
                        self._columns.clear()
                    yield con
                finally:
                    con.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Every connect() of this thread inside the block shares one read-write connection: a burst of
        reads and writes (an alerting step's loads and upserts for one model-day) opens the file once
        instead of once per call. The lock is held for the whole block."""
        if getattr(self._session, "con", None) is not None:
            yield
            return
        with self.connect() as con:
            self._session.con = con
            try:
                yield
            finally:
                self._session.con = None

    def ensure_schema(self) -> None:
        """Create or upgrade the tables now (every write connection makes sure of it)."""
        with self.connect():
            pass

    @contextlib.contextmanager
    def attached(self, con: duckdb.DuckDBPyConnection, read_only: bool = False) -> Iterator[str]:
        """This warehouse ATTACHed to another DuckDB connection (a model-day's working database), under
        the lock: large partitions move between the two inside DuckDB, never whole in Python memory.
        Yields the catalog alias; tables are `<alias>.monitoring.<table>`."""
        alias = "warehouse"
        with self.lock():
            read_only = read_only and self.path.exists()
            with contextlib.nullcontext() if read_only else _private_files():
                mode = " (READ_ONLY)" if read_only else ""
                path = str(self.path).replace("'", "''")
                self._open(lambda: con.execute(f"ATTACH '{path}' AS {alias}{mode}"))
                if not read_only and not _at_current_version(con, alias):
                    con.execute(f"DETACH {alias}")
                    self.ensure_schema()  # a connection of its own creates or upgrades the tables
                    self._open(lambda: con.execute(f"ATTACH '{path}' AS {alias}"))
                try:
                    yield alias
                finally:
                    con.execute(f"DETACH {alias}")

    # ------------------------------------------------------------------ reads
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            if not _schema_exists(con):
                return pd.DataFrame()
            return con.execute(sql, params or []).df()

    def table(self, table: str, where: str = "", params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Rows of a table; `where` is SQL written in this package with `?` placeholders only."""
        clause = f" WHERE {where}" if where else ""
        with self.connect(read_only=True) as con:
            if not _schema_exists(con) or table not in _tables(con):
                return pd.DataFrame(columns=list(TABLES[table]))
            return con.execute(f"SELECT * FROM {qualified(table)}{clause}", list(params or [])).df()

    def partition(self, table: str, model_name: str, partition_date: dt.date) -> pd.DataFrame:
        return self.table(table, "model_name = ? AND partition_date = ?", [model_name, partition_date])

    def schema_version(self) -> int | None:
        """The schema version the file holds (None: no warehouse yet; 1: a first-wave file)."""
        if not self.path.exists():
            return None
        with self.connect(read_only=True) as con:
            return _stored_version(con)

    # ------------------------------------------------------------------ writes
    def ensure_columns(self, table: str, columns: dict[str, str]) -> None:
        """Add per-model input columns (features, segments) the table does not have yet."""
        if set(columns) <= self._columns.get(table, set()):
            return

        def write() -> None:
            with self.connect() as con:
                existing = _columns(con, table)
                for name, sql_type in columns.items():
                    if name in existing:
                        continue
                    con.execute(
                        f"ALTER TABLE {qualified(table)} ADD COLUMN IF NOT EXISTS {quote_ident(name)} {sql_type}"
                    )
                self._columns[table] = _columns(con, table)
            missing = set(columns) - self._columns[table]
            if missing:  # our view predates a concurrent writer's commit: look again
                raise duckdb.TransactionException(f"concurrent column add: {sorted(missing)} not seen yet")

        self._retrying(write)

    def _known_columns(
        self, con: duckdb.DuckDBPyConnection, table: str, names: Sequence[str], catalog: str | None = None
    ) -> None:
        """Refuse a write with columns the table does not have (the cache is refreshed before refusing:
        another process may have added them)."""
        if not set(names) <= self._columns.get(table, set()):
            self._columns[table] = _columns(con, table, catalog)
        unknown = [c for c in names if c not in self._columns[table]]
        if unknown:
            raise ValueError(f"columns {unknown} are not in {SCHEMA}.{table}")

    def replace_partition(self, table: str, frame: Any, model_name: str, partition_date: dt.date) -> int:
        """Delete the model-day's rows and insert `frame` in one transaction: re-runs replace."""
        return self.replace_where(
            table, frame, "model_name = ? AND partition_date = ?", [model_name, partition_date]
        )

    def replace_where(self, table: str, frame: Any, where: str, params: Sequence[Any]) -> int:
        """Transactional delete-then-insert; `frame` (pandas or Arrow) columns must be table columns."""
        self.replace_many([(table, frame, where, params)])
        return len(frame)

    def replace_partitions(self, writes: dict[str, Any], model_name: str, partition_date: dt.date) -> None:
        """Several tables of one model-day replaced atomically together."""
        where = "model_name = ? AND partition_date = ?"
        self.replace_many(
            [(table, frame, where, [model_name, partition_date]) for table, frame in writes.items()]
        )

    def replace_many(self, writes: Sequence[tuple[str, Any, str, Sequence[Any]]]) -> None:
        """Delete-then-insert on several tables in one transaction: readers see all or nothing.
        Each write is (table, rows, where, params); rows are a pandas or Arrow frame."""

        def write() -> None:
            with self.connect() as con:
                _in_transaction(con, lambda: [self._delete_insert(con, *w) for w in writes])

        self._retrying(write)

    def replace_from(
        self, con: duckdb.DuckDBPyConnection, writes: Sequence[tuple[str, Any, str, Sequence[Any]]]
    ) -> None:
        """Like `replace_many`, but written from another DuckDB connection (a model-day's working database)
        with this warehouse attached: a write's rows may be a SELECT over that connection's tables, streamed
        inside DuckDB, or a frame. One transaction."""

        def write() -> None:
            with self.attached(con) as alias:

                def run() -> None:
                    for table, rows, where, params in writes:
                        self._delete_insert(con, table, rows, where, params, alias)

                _in_transaction(con, run)

        self._retrying(write)

    def _delete_insert(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        rows: Any,
        where: str,
        params: Sequence[Any],
        catalog: str | None = None,
    ) -> None:
        target = f"{catalog}.{qualified(table)}" if catalog else qualified(table)
        if isinstance(rows, str):
            select, names = rows, list(con.sql(rows).columns)
        else:
            names = list(rows.column_names) if hasattr(rows, "column_names") else list(rows.columns)
            select = "SELECT * FROM _incoming" if len(rows) else ""
        self._known_columns(con, table, names, catalog)
        con.execute(f"DELETE FROM {target} WHERE {where}", list(params))
        if not select:
            return
        if not isinstance(rows, str):
            con.register("_incoming", rows)
        cols = ", ".join(quote_ident(c) for c in names)
        try:
            con.execute(f"INSERT INTO {target} ({cols}) {select}")
        finally:
            if not isinstance(rows, str):
                con.unregister("_incoming")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        def write() -> None:
            with self.connect() as con:
                con.execute(sql, list(params or []))

        self._retrying(write)

    # ------------------------------------------------------------------ analysts
    def publish_copy(self, target: str | Path | None = None) -> Path:
        """Copy the file for analysts to open while runs go on.

        Checkpoint, then copy, both under the lock: commits a writer has not folded into the file yet
        (a crashed run's sit in `<file>.wal` until the next open) are in the copy, and no writer changes
        the file while it is copied.
        """
        target = Path(target) if target else self.path.with_name(self.path.stem + "_analyst.duckdb")
        with self.lock():
            if not self.path.exists():
                raise FileNotFoundError(self.path)
            with self.connect() as con:  # opening replays a WAL left behind; CHECKPOINT folds it in
                con.execute("CHECKPOINT")
            tmp = target.with_name(target.name + ".tmp")
            tmp.unlink(missing_ok=True)  # a crashed publish's file keeps its mode: start afresh
            with open(self.path, "rb") as src, open(_create_private(tmp), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            # a WAL beside the old copy (an analyst opened it read-write) would be replayed onto the new one
            target.with_name(target.name + ".wal").unlink(missing_ok=True)
            os.replace(tmp, target)
        return target


class _PrivateFiles:
    """The process umask tightened by `bits` while any thread is inside the block.

    DuckDB creates the database, its WAL (anew after every checkpoint) and its temp folder itself, with
    0666 & ~umask, so the umask is the only handle on their mode; creating the file first is not an
    option (DuckDB refuses an empty file). The umask is per process, so this is kept narrow: only while
    a write connection is open (short by design), only ever stricter (group-write and world bits), and
    counted so that overlapping users in several threads restore the caller's umask exactly once. Files
    other threads create meanwhile lose the same bits, which never makes them readable by more people.
    """

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._guard = threading.Lock()
        self._users = 0
        self._saved = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._guard:
            if self._users == 0:
                self._saved = os.umask(self.bits)
                os.umask(self._saved | self.bits)
            self._users += 1
        try:
            yield
        finally:
            with self._guard:
                self._users -= 1
                if self._users == 0:
                    os.umask(self._saved)


# group-write and every bit of others': files 0640 (FILE_MODE), folders (DuckDB's spill folder) 0750
_private_files = _PrivateFiles(0o027)


def _create_private(path: Path) -> int:
    """A new file of mode FILE_MODE at most (the umask can only remove bits), as a descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def _holder(error: str) -> str:
    """Who holds the file, from DuckDB's lock error ("Conflicting lock is held in <program> (PID n)")."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", error)
    return f"process {found.group(2)} ({found.group(1)})" if found else "another process"


def _in_transaction(con: duckdb.DuckDBPyConnection, body: Any) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        body()
        con.execute("COMMIT")
    except Exception:
        # a failed COMMIT (a lake's transaction conflict) has already ended the transaction
        with contextlib.suppress(duckdb.TransactionException):
            con.execute("ROLLBACK")
        raise


def _schema_exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ? AND catalog_name = current_database()",
        [SCHEMA],
    ).fetchall()[0]
    return bool(row and row[0])


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_catalog = current_database()",
        [SCHEMA],
    ).fetchall()
    return {r[0] for r in rows}


def _columns(con: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "AND table_catalog = coalesce(?, current_database())",
        [SCHEMA, table, catalog],
    ).fetchall()
    return {r[0] for r in rows}


def _at_current_version(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> bool:
    """The file holds this package's schema (one small query per write connection: the file may have been
    replaced, or upgraded by another process, since we last looked)."""
    table = f"{catalog}.{SCHEMA}.schema_version" if catalog else f"{SCHEMA}.schema_version"
    try:
        row = con.execute(f"SELECT max(version) FROM {table}").fetchall()
    except duckdb.CatalogException:
        return False
    return bool(row) and row[0][0] == SCHEMA_VERSION


def _stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """The newest recorded version; a file with our tables but no version table is version 1."""
    if not _schema_exists(con):
        return 0
    if "schema_version" not in _tables(con):
        return 1 if _tables(con) else 0
    row = con.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version").fetchall()[0]
    return int(row[0]) if row and row[0] is not None else 1


def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and columns from the declarations, then upgrade an older file."""
    stored = _stored_version(con)
    if stored > SCHEMA_VERSION:
        raise RuntimeError(
            f"the warehouse holds schema version {stored}, newer than this package's {SCHEMA_VERSION}: "
            "upgrade monitoring_pipelines before writing to it"
        )
    _in_transaction(con, lambda: _create_and_migrate(con, stored))


def _create_and_migrate(con: duckdb.DuckDBPyConnection, stored: int) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table in TABLE.values():
        cols = ", ".join(f"{quote_ident(c.name)} {c.ddl}" for c in table.columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS {qualified(table.name)} ({cols})")
        existing = _columns(con, table.name)
        for c in table.columns:
            if c.name not in existing:  # added by a later version: nullable, old rows have no value
                con.execute(f"ALTER TABLE {qualified(table.name)} ADD COLUMN {quote_ident(c.name)} {c.type}")
    now = pd.Timestamp.now(tz="UTC")
    if stored == 0:  # a new file is born at the current version
        con.execute(f"INSERT INTO {SCHEMA}.schema_version VALUES (?, ?, ?)", [SCHEMA_VERSION, now, "created"])
        return
    for version in range(stored + 1, SCHEMA_VERSION + 1):
        description, statements = MIGRATIONS[version]
        for statement in statements:
            con.execute(statement)
        con.execute(f"INSERT INTO {SCHEMA}.schema_version VALUES (?, ?, ?)", [version, now, description])
        log.warning("warehouse upgraded to schema version %s: %s", version, description)


# ---------------------------------------------------------------------------------------------- DuckLake
LAKE_ALIAS = "lake"  # the lake's catalog name inside the process's own DuckDB database
# A lake commit that lost a race (another writer committed a change to the same table first) is retried
# from the start of the transaction after a random pause in [0, delay], the delay doubling up to this.
RETRY_MAX_DELAY_S = 2.0


def _conflict(exc: BaseException) -> bool:
    """A transaction that lost to a concurrent commit: worth running again (DuckLake reports it as a
    TransactionException naming a conflict; the catalog's own serialization failures read alike)."""
    text = str(exc).lower()
    if isinstance(exc, duckdb.CatalogException):
        # two writers adding the same column or table (a new model's first runs on two workers): the
        # loser's view predates the winner's commit; run again, it finds the column there
        return "already exists" in text
    return isinstance(exc, duckdb.Error) and (
        "conflict" in text or "could not serialize" in text or "concurrent" in text
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class LakeWarehouse(Warehouse):
    """The warehouse as a DuckLake: catalog in PostgreSQL (`ducklake:postgres:dbname=... host=...`), data as
    Parquet files under `data_path` (a directory, or an `s3://` URL). Same tables, same SQL.

    No file lock: every writer commits its own transaction against the catalog, from any number of
    processes and hosts; a commit that conflicts with a concurrent one (DuckLake detects it) is rolled back
    and run again. Readers see the last committed snapshot, so analysts attach the lake read-only while
    runs write. Each process keeps one DuckDB database with the lake attached and hands out a cursor per
    call (a cursor is a connection of its own: its own transaction)."""

    # httpfs always: a process that only reads learns from the catalog where the files are (maybe a bucket)
    EXTENSIONS = ("postgres", "ducklake", "httpfs")

    def __init__(
        self, target: str | Path, lock_timeout_s: float = 600.0, data_path: str | None = None
    ) -> None:
        self.catalog = str(target)
        if not is_lake(self.catalog):
            raise ValueError(f"{self.catalog!r} is not a DuckLake (ducklake:...)")
        self.data_path = str(data_path) if data_path else None
        self.lock_timeout_s = lock_timeout_s
        # Per-host state beside nothing shared: other modules name lock files after `path` (e.g. the
        # delivery lock), which therefore serialize processes of one host only (docs/scaling.md).
        tag = hashlib.sha256(self.catalog.encode()).hexdigest()[:16]
        state = Path(tempfile.gettempdir()) / f"monitoring-pipelines-lake-{os.getuid()}"
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = state / f"{tag}.ducklake"  # never created as a file
        self._columns = {}
        self._session = threading.local()
        self._guard = threading.RLock()
        self._attaching = threading.RLock()
        self._db: duckdb.DuckDBPyConnection | None = None
        self._db_pid = 0
        self._ready = False

    def __repr__(self) -> str:
        return f"LakeWarehouse({shown(self.catalog)!r}, data_path={self.data_path!r})"

    @property
    def target(self) -> str:
        return self.catalog

    # ------------------------------------------------------------------ connections
    def attach_sql(self, alias: str, read_only: bool = False) -> str:
        """The ATTACH statement for this lake (what an analyst runs, with read_only)."""
        options = []
        if self.data_path and not read_only:
            options.append(f"DATA_PATH {_literal(self.data_path)}")
        if read_only:
            options.append("READ_ONLY")
        suffix = f" ({', '.join(options)})" if options else ""
        return f"ATTACH {_literal(self.catalog)} AS {alias}{suffix}"

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Extensions from their wheels and, for data on S3, the credentials, in this connection's database."""
        from monitoring_pipelines.storage.engines import enable_s3, load_extensions

        load_extensions(con, *self.EXTENSIONS)
        enable_s3(con)  # the S3 secret from the AWS variables, when they are set

    def _attach(self, con: duckdb.DuckDBPyConnection, alias: str, read_only: bool = False) -> None:
        self.prepare(con)
        try:
            con.execute(self.attach_sql(alias, read_only))
        except duckdb.Error as exc:
            if self.data_path is None and "data_path" in str(exc).lower():
                raise RuntimeError(
                    f"the lake {shown(self.catalog)} has no catalog yet and no data path to create it with: set "
                    "`warehouse_data_path` in the config and run `monitoring-pipelines run` once"
                ) from exc
            raise

    def analyst_connection(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with the lake attached read-only as `warehouse` (and in use): what an
        analyst or a BI tool does to query live while runs write (docs/scaling.md)."""
        con = duckdb.connect(config={"autoinstall_known_extensions": False})
        self._attach(con, "warehouse", read_only=True)
        con.execute("USE warehouse")
        return con

    def _database(self) -> duckdb.DuckDBPyConnection:
        """This process's DuckDB database with the lake attached (made again in a forked child)."""
        with self._guard:
            if self._db is None or self._db_pid != os.getpid():
                con = duckdb.connect(
                    config={"autoinstall_known_extensions": False, "allow_unsigned_extensions": True}
                )
                for attempt in range(
                    5
                ):  # two processes creating the catalog at once: the loser attaches again
                    try:
                        self._attach(con, LAKE_ALIAS)
                        break
                    except duckdb.Error:
                        if attempt == 4:
                            raise
                        time.sleep(0.2 * (attempt + 1))
                self._db, self._db_pid, self._ready = con, os.getpid(), False
            return self._db

    def _ensure_ready(self) -> None:
        """Create or upgrade the tables once per process (retried like any write: two processes creating
        the lake at once conflict, and the loser finds the tables there)."""
        if self._ready:
            return
        with self._guard:
            if self._ready:
                return

            def create() -> None:
                con = self._database().cursor()
                try:
                    con.execute(f"USE {LAKE_ALIAS}")
                    if not _at_current_version(con):
                        _create_schema(con)
                        self._columns.clear()
                finally:
                    con.close()

            self._retrying(create)
            self._ready = True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Nothing to take: the lake's writers do not wait for each other."""
        yield

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        shared = getattr(self._session, "con", None)
        if shared is not None:
            yield shared
            return
        db = self._database()
        if not read_only:
            self._ensure_ready()
        con = db.cursor()
        try:
            con.execute(f"USE {LAKE_ALIAS}")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def attached(self, con: duckdb.DuckDBPyConnection, read_only: bool = False) -> Iterator[str]:
        """The lake ATTACHed to another DuckDB connection as `warehouse` (read-only for reads). ATTACH is per
        database, so the attaching threads of this process take turns (a model-day's reads and its
        background writes share one database)."""
        alias = "warehouse"
        if not read_only:
            self._ensure_ready()
        with self._attaching:
            self._attach(con, alias, read_only)
            try:
                yield alias
            finally:
                con.execute(f"DETACH {alias}")

    def _retrying(self, write: Any) -> Any:
        """Run a write (a whole transaction) again while it loses to concurrent commits, up to
        lock_timeout_s; waits past WAIT_REPORT_AFTER_S are logged."""
        started = time.monotonic()
        delay, attempt = 0.05, 0
        while True:
            try:
                return write()
            except Exception as exc:
                if not _conflict(exc) or time.monotonic() - started > self.lock_timeout_s:
                    raise
                attempt += 1
                if time.monotonic() - started >= WAIT_REPORT_AFTER_S:
                    log.info(
                        "lake commit conflict (attempt %d), retrying: %s", attempt, str(exc).splitlines()[0]
                    )
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, RETRY_MAX_DELAY_S)

    # ------------------------------------------------------------------ state
    def exists(self) -> bool:
        with self.connect(read_only=True) as con:
            return _schema_exists(con)

    def schema_version(self) -> int | None:
        with self.connect(read_only=True) as con:
            return _stored_version(con) or None

    def publish_copy(self, target: str | Path | None = None) -> Path:
        raise RuntimeError(
            "a DuckLake warehouse has no file to copy: analysts attach it read-only while runs write "
            f"({shown(self.attach_sql('warehouse', read_only=True))}; docs/scaling.md)"
        )
