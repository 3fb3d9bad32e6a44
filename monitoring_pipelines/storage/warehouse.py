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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
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

__all__ = ["FILE_MODE", "PARTITIONED_TABLES", "SCHEMA", "TABLES", "Warehouse", "qualified", "quote_ident"]

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


class Warehouse:
    """One DuckDB file. Every public method opens, uses and closes its own connection."""

    _shared: dict[tuple[str, float], Warehouse] = {}

    @classmethod
    def shared(cls, path: str | Path, lock_timeout_s: float = 600.0) -> Warehouse:
        """The process's one object for this file: what it learned (schema created, columns known) is
        not learned again by every run of a backfill."""
        key = (str(Path(path).resolve()), lock_timeout_s)
        if key not in cls._shared:
            cls._shared[key] = cls(path, lock_timeout_s)
        return cls._shared[key]

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
        with self.connect() as con:
            existing = _columns(con, table)
            for name, sql_type in columns.items():
                if name not in existing:
                    con.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {quote_ident(name)} {sql_type}")
            self._columns[table] = _columns(con, table)

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
        with self.connect() as con:
            _in_transaction(con, lambda: [self._delete_insert(con, *write) for write in writes])

    def replace_from(
        self, con: duckdb.DuckDBPyConnection, writes: Sequence[tuple[str, Any, str, Sequence[Any]]]
    ) -> None:
        """Like `replace_many`, but written from another DuckDB connection (a model-day's working database)
        with this warehouse attached: a write's rows may be a SELECT over that connection's tables, streamed
        inside DuckDB, or a frame. One transaction."""
        with self.attached(con) as alias:

            def run() -> None:
                for table, rows, where, params in writes:
                    self._delete_insert(con, table, rows, where, params, alias)

            _in_transaction(con, run)

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
        with self.connect() as con:
            con.execute(sql, list(params or []))

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
