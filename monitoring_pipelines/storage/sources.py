"""Where predictions, labels and outcomes come from: Hive-partitioned files or a SQL database.

A source loads rows into a DuckDB connection (a model-day's working database, see
`storage.snapshot`) as a relation, so a day is read once, by DuckDB, and never copied whole into
pandas. Only a partition's UTC days are returned. Rows logged late can sit in the next day's
folder, so a day reads its own folder and the next one and keeps rows whose `ts` falls on the day;
the next folder is scanned with the `ts` filter pushed into the Parquet reader, so its other
columns are read only where a late row is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from monitoring_pipelines.config import ModelConfig, MonitoringConfig

REQUIRED_COLUMNS = ("prediction_id", "request_id", "model_name", "model_version", "role", "ts")
LATE_FOLDERS = 1  # days after a partition whose folders may still hold its late-logged rows
FILE_COLUMN = "__file"  # where a raw row came from (path or `<database>/<table>`)
ORDER_COLUMN = "__order"  # position of a raw row in its source: file order, then row order
TS_COLUMN = "__ts"  # the row's `ts` parsed as TIMESTAMPTZ (NULL when missing or unparsable)
_FILE_ORDER_SHIFT = 1 << 40  # __order = file index << 40 | row number in the file


# What reading a broken file raises: DuckDB (Parquet), pyarrow (CSV) or the OS.
UNREADABLE = (duckdb.Error, pa.ArrowException, ValueError, OSError)


class SourceError(RuntimeError):
    """A source that cannot be read at all (unreadable file, unreachable database)."""


@dataclass
class SourceRead:
    """What a load put into the connection: `relation` holds the window's raw rows (original columns
    plus FILE_COLUMN, ORDER_COLUMN, TS_COLUMN); `problems` make the day unusable."""

    relation: str
    columns: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rows_outside_window: int = 0

    def frame(self, con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
        """The raw rows as pandas (tests and small days only)."""
        if not self.columns:
            return pd.DataFrame()
        return con.execute(
            f"SELECT * EXCLUDE ({FILE_COLUMN}, {ORDER_COLUMN}, {TS_COLUMN}) FROM {self.relation}"
        ).df()


class Source(Protocol):
    def load_predictions(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> SourceRead: ...

    def load_labels(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date
    ) -> str: ...

    def load_outcomes(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> str: ...

    def label_arrivals(self, model: ModelConfig, since: dt.date) -> dict[str, str]: ...


def new_connection(
    memory_limit: str | None = None, temp_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB in UTC; with a memory limit it spills to `temp_directory`."""
    config: dict[str, str] = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory:
        config["temp_directory"] = temp_directory
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _day_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return lo, hi


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    """Quote any column name found in data (not trusted): double the quotes."""
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- files


class FileSource:
    """Contract §1 layout: <data>/incoming/<model>/<kind>/date=YYYY-MM-DD/*.parquet|*.csv."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def _folder(self, model: str, kind: str, day: dt.date) -> Path:
        return self.data_dir / "incoming" / model / kind / f"date={day.isoformat()}"

    def _files(self, model: str, kind: str, start: dt.date, end: dt.date) -> list[Path]:
        files: list[Path] = []
        day = start
        while day <= end:
            folder = self._folder(model, kind, day)
            if folder.is_dir():
                files.extend(sorted(p for p in folder.iterdir() if p.suffix in (".parquet", ".csv")))
            day += dt.timedelta(days=1)
        return files

    def load_predictions(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> SourceRead:
        own = self._files(model.name, "predictions", start, end)
        late = self._files(
            model.name, "predictions", end + dt.timedelta(days=1), end + dt.timedelta(days=LATE_FOLDERS)
        )
        if not own:
            # A few late rows in the next folder do not make a day: its own log is missing.
            problem = (
                f"no prediction files for {model.name} in {self._folder(model.name, 'predictions', start)}"
            )
            return SourceRead(relation="", problems=[problem + (f" (through {end})" if end != start else "")])
        return load_files(con, own, late, start, end)

    def load_labels(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date
    ) -> str:
        files = self._files(model.name, "labels", arrived_from, arrived_to)
        return _load_side_table(con, files, "labels_raw", ("request_id", "label", "label_ts"), "label")

    def load_outcomes(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> str:
        files = self._files(model.name, "outcomes", start, end)
        return _load_side_table(
            con, files, "outcomes_raw", ("request_id", "outcome", "value", "ts"), "outcome"
        )

    def label_arrivals(self, model: ModelConfig, since: dt.date) -> dict[str, str]:
        """Arrival day -> fingerprint (names, sizes, mtimes) of that day's label files, from `since` on."""
        root = self.data_dir / "incoming" / model.name / "labels"
        out: dict[str, str] = {}
        if not root.is_dir():
            return out
        for folder in sorted(root.glob("date=*")):
            day = folder.name.removeprefix("date=")
            files = sorted(p for p in folder.iterdir() if p.suffix in (".parquet", ".csv"))
            if files and day >= since.isoformat():
                stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
                out[day] = hashlib.sha256(repr(stats).encode()).hexdigest()[:16]
        return out

    def fingerprint(self, model: ModelConfig, kind: str, start: dt.date, end: dt.date) -> str:
        """Names, sizes and mtimes of the files of [start, end]: changes when the data can have."""
        stats = [
            (str(p), p.stat().st_size, p.stat().st_mtime_ns)
            for p in self._files(model.name, kind, start, end)
        ]
        return hashlib.sha256(repr(stats).encode()).hexdigest()[:16]


def read_csv_strict(path: Path) -> pa.Table:
    """A CSV file as text columns (an empty field is NULL), strictly: an empty file, a missing header or a
    row with too few or too many fields is an error naming the line. DuckDB's sniffer would instead
    guess a one-column layout and let a cut-off file through."""
    import csv as pycsv

    from pyarrow import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = fh.readline()
    if not header.strip():
        raise ValueError("empty file: no header line")
    names = next(pycsv.reader([header]))
    options = csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True, null_values=[""]
    )
    return csv.read_csv(path, convert_options=options)


def _probe(con: duckdb.DuckDBPyConnection, path: Path, full: bool = False) -> str | None:
    """None when the file can be read (its schema; with `full` every value), else the reason."""
    if path.suffix == ".csv":
        try:
            read_csv_strict(path)
        except UNREADABLE as exc:
            return str(exc).splitlines()[0]
        return None
    scan = f"read_parquet({_lit(str(path))}, hive_partitioning = false)"
    sql = f"SELECT count(*) FROM (SELECT * FROM {scan})" if full else f"SELECT * FROM {scan} LIMIT 0"
    try:
        con.execute(sql).fetchall()
    except (duckdb.Error, OSError) as exc:
        return str(exc).splitlines()[0]
    return None


def _parquet_scan(paths: list[Path]) -> str:
    listed = ", ".join(_lit(str(p)) for p in paths)
    return (
        f"read_parquet([{listed}], union_by_name = true, filename = true, file_row_number = true, "
        "hive_partitioning = false)"
    )


def _csv_relation(con: duckdb.DuckDBPyConnection, paths: list[Path], name: str) -> str:
    """CSV files (all columns as text) as one registered Arrow table with file name and row number."""
    tables = []
    for path in paths:
        table = read_csv_strict(path)
        tables.append(
            table.append_column(
                "filename", pa.array(np.full(table.num_rows, str(path), dtype=object), pa.string())
            ).append_column("file_row_number", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        )
    con.register(name, pa.concat_tables(tables, promote_options="permissive"))
    return name


def load_files(
    con: duckdb.DuckDBPyConnection,
    own: list[Path],
    late: list[Path],
    start: dt.date,
    end: dt.date,
    relation: str = "raw",
) -> SourceRead:
    """The prediction rows of [start, end] from `own` (the window's folders: every row, a row without a
    usable `ts` included, since it belongs to the folder it sits in) and `late` (later folders: only rows
    whose `ts` is in the window). Defines the view `relation`; a file DuckDB cannot read is a problem
    naming it, and then nothing is loaded (the day is unusable, the other files are not half-used)."""
    files = [*own, *late]
    try:
        return _load_files(con, own, late, start, end, relation)
    except UNREADABLE:
        # Name the file(s) DuckDB could not read; the day is unusable until they are fixed or removed.
        problems = unreadable(con, files) or [f"the files of {start}..{end} could not be read together"]
        return SourceRead(relation="", files=[str(p) for p in files], problems=problems)


def unreadable(con: duckdb.DuckDBPyConnection, files: list[Path], full: bool = False) -> list[str]:
    """A problem naming each file DuckDB cannot read (its schema, or with `full` every value)."""
    return [f"{p}: unreadable ({reason})" for p in files if (reason := _probe(con, p, full)) is not None]


def _load_files(
    con: duckdb.DuckDBPyConnection,
    own: list[Path],
    late: list[Path],
    start: dt.date,
    end: dt.date,
    relation: str,
) -> SourceRead:
    files = [*own, *late]
    order = {str(p): i for i, p in enumerate(files)}
    con.register(
        "__file_order",
        pa.table({"filename": list(order), "file_index": np.arange(len(order), dtype=np.int64)}),
    )
    lo, hi = _day_bounds(start, end)
    window = f"{TS_COLUMN} >= {_lit(lo.isoformat())}::TIMESTAMPTZ AND {TS_COLUMN} < {_lit(hi.isoformat())}::TIMESTAMPTZ"
    parts: list[str] = []
    for group, is_late in ((own, False), (late, True)):
        for suffix, scan in ((".parquet", "pq"), (".csv", "csv")):
            paths = [p for p in group if p.suffix == suffix]
            if not paths:
                continue
            name = f"__{scan}_{'late' if is_late else 'own'}"
            source = _parquet_scan(paths) if scan == "pq" else _csv_relation(con, paths, name + "_csv")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {source}")
            parts.append(_window_select(con, name, window, is_late))
    if not parts:
        return SourceRead(relation="", files=[str(p) for p in files], problems=["no readable files"])
    union = " UNION ALL BY NAME ".join(f"({p})" for p in parts)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT u.* EXCLUDE (filename, file_row_number, file_index), "
        f"u.filename AS {FILE_COLUMN}, (u.file_index << 40) | u.file_row_number AS {ORDER_COLUMN} "
        f"FROM ({union}) u"
    )
    columns = [c for c in con.sql(f"SELECT * FROM {relation} LIMIT 0").columns]
    outside = _rows_outside(con, own, late, window)
    return SourceRead(
        relation=relation, columns=columns, files=[str(p) for p in files], rows_outside_window=outside
    )


def _ts_expression(con: duckdb.DuckDBPyConnection, view: str) -> str:
    """`ts` as TIMESTAMPTZ: the column itself when it is one (so the filter reaches the Parquet scan), a
    cast for naive timestamps (taken as UTC), TRY_CAST for text (NULL when unparsable)."""
    rel = con.sql(f"SELECT * FROM {view} LIMIT 0")
    types = {name: str(kind).upper() for name, kind in zip(rel.columns, rel.types, strict=True)}
    kind = types.get("ts")
    if kind is None:
        return "CAST(NULL AS TIMESTAMPTZ)"
    if kind == "TIMESTAMP WITH TIME ZONE":
        return "ts"
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return "CAST(ts AS TIMESTAMPTZ)"
    return "TRY_CAST(CAST(ts AS VARCHAR) AS TIMESTAMPTZ)"


def _window_select(con: duckdb.DuckDBPyConnection, view: str, window: str, is_late: bool) -> str:
    ts = _ts_expression(con, view)
    select = (
        f"SELECT v.*, {ts} AS {TS_COLUMN}, o.file_index FROM {view} v JOIN __file_order o USING (filename)"
    )
    if not is_late:
        # Rows of the window's own folders: all in the window, plus those without a usable ts.
        return f"SELECT * FROM ({select}) WHERE {TS_COLUMN} IS NULL OR ({window})"
    return f"SELECT * FROM ({select}) WHERE {window}"


def _rows_outside(con: duckdb.DuckDBPyConnection, own: list[Path], late: list[Path], window: str) -> int:
    """Rows read but not on the window's days: stray rows of other days in the window's folders, and
    every row of the later folders that is not a late row of the window (rows of the later folders
    without a usable ts belong to those folders and are not counted)."""
    total = 0
    for group, is_late in ((own, False), (late, True)):
        for suffix, scan in ((".parquet", "pq"), (".csv", "csv")):
            if not any(p.suffix == suffix for p in group):
                continue
            name = f"__{scan}_{'late' if is_late else 'own'}"
            ts = _ts_expression(con, name)
            row = con.execute(
                f"SELECT count(*) FROM (SELECT {ts} AS {TS_COLUMN} FROM {name}) "
                f"WHERE {TS_COLUMN} IS NOT NULL AND NOT ({window})"
            ).fetchall()[0]
            total += int(row[0]) if row else 0
    return total


def _load_side_table(
    con: duckdb.DuckDBPyConnection, files: list[Path], name: str, columns: tuple[str, ...], kind: str
) -> str:
    """Label or outcome rows of `files` as the view `name` with exactly `columns` (empty when no files).
    An unreadable file or a missing column is a SourceError naming it: metrics must not silently miss
    the labels they were promised."""
    try:
        return _side_view(con, files, name, columns, kind)
    except UNREADABLE as exc:
        problems = unreadable(con, files) or unreadable(con, files, full=True)
        raise SourceError(
            "; ".join(problems) or f"{kind} files could not be read: {str(exc).splitlines()[0]}"
        ) from exc


def _side_view(
    con: duckdb.DuckDBPyConnection, files: list[Path], name: str, columns: tuple[str, ...], kind: str
) -> str:
    parts = []
    for suffix in (".parquet", ".csv"):
        paths = [p for p in files if p.suffix == suffix]
        if not paths:
            continue
        rel = f"__{name}_{suffix[1:]}"
        if suffix == ".parquet":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {rel} AS SELECT * FROM {_parquet_scan(paths)}")
        else:
            _csv_relation(con, paths, rel)
        present = set(con.sql(f"SELECT * FROM {rel} LIMIT 0").columns)
        missing = [c for c in columns if c not in present]
        if missing:
            raise SourceError(f"{kind} files {[str(p) for p in paths][:3]} lack columns {missing}")
        # Parquet keeps its types (no text round trip for a million timestamps); CSV is text, and a union of
        # both falls back to text, which LABELS_SQL / OUTCOMES_SQL parse either way.
        # __order (file order, then row order) breaks ties between rows with the same timestamp: the
        # later row wins, as in a log where a correction is appended after the value it corrects.
        selected = ", ".join(f"r.{_ident(c)} AS {c}" for c in columns)
        parts.append(
            f"SELECT {selected}, (o.file_index << 40) | r.file_row_number AS {ORDER_COLUMN} "
            f"FROM {rel} r JOIN __{name}_files o USING (filename)"
        )
    con.register(
        f"__{name}_files",
        pa.table({"filename": [str(p) for p in files], "file_index": np.arange(len(files), dtype=np.int64)}),
    )
    if not parts:
        parts = [
            f"SELECT {', '.join(f'CAST(NULL AS VARCHAR) AS {c}' for c in columns)}, "
            f"CAST(NULL AS BIGINT) AS {ORDER_COLUMN} WHERE false"
        ]
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {' UNION ALL BY NAME '.join(parts)}")
    con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()  # binds every file's schema now
    return name


# --------------------------------------------------------------------------- SQL databases


class SqlSource:
    """Any SQLAlchemy database holding the same columns. Table names are validated identifiers
    (config), dates are bound parameters. The driver returns rows in chunks of `chunk_rows` (its own
    buffers stay small); the model-day's rows then reach DuckDB as one frame, so a SQL source holds a
    day in pandas once. Files are the faster path for days of millions of rows."""

    def __init__(
        self,
        url: str,
        predictions_table: str,
        labels_table: str | None,
        outcomes_table: str | None,
        chunk_rows: int = 200_000,
    ) -> None:
        self.url = _expand_env(url)
        self.predictions_table = predictions_table
        self.labels_table = labels_table
        self.outcomes_table = outcomes_table
        self.chunk_rows = chunk_rows
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.url)
        return self._engine

    def _table(self, name: str) -> sa.TableClause:
        schema, _, table = name.rpartition(".")
        return sa.table(table, schema=schema or None)

    def _select(self, name: str, where: sa.ColumnElement[bool]) -> pd.DataFrame:
        stmt = sa.select(sa.text("*")).select_from(self._table(name)).where(where)
        chunks: list[pd.DataFrame] = []
        try:
            with self.engine.connect() as con:
                for chunk in pd.read_sql(stmt, con, chunksize=self.chunk_rows):
                    chunks.append(chunk)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise SourceError(f"{_redact(self.url)} table {name}: {str(exc).splitlines()[0]}") from exc
        if not chunks:
            return pd.DataFrame()
        return pd.concat(chunks, ignore_index=True)

    def _register(self, con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, name: str) -> None:
        """A frame from the database as a DuckDB view; object columns as text (types vary by driver)."""
        frame = frame.copy()
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].astype("string")  # vectorized; None and NaN are missing
        con.register(name + "_frame", frame)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_frame")

    def load_predictions(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> SourceRead:
        # Bounds are widened by a day on each side and then filtered in UTC: databases store
        # timestamps in many ways (naive, text, with zone); the exact filter happens in DuckDB.
        lo = dt.datetime.combine(start - dt.timedelta(days=1), dt.time())
        hi = dt.datetime.combine(end + dt.timedelta(days=2), dt.time())
        where = sa.and_(
            sa.column("model_name") == sa.bindparam("model_name", model.name),
            sa.column("ts") >= sa.bindparam("lo", lo),
            sa.column("ts") < sa.bindparam("hi", hi),
        )
        origin = f"{_redact(self.url)}/{self.predictions_table}"
        try:
            frame = self._select(self.predictions_table, where)
        except SourceError as exc:
            return SourceRead(relation="", files=[origin], problems=[str(exc)])
        if frame.empty:
            return SourceRead(
                relation="",
                files=[origin],
                problems=[f"no prediction rows for {model.name} in {origin} on {start}..{end}"],
            )
        frame["filename"] = origin
        frame["file_row_number"] = np.arange(len(frame), dtype=np.int64)
        self._register(con, frame, "__sql_own")
        con.register(
            "__file_order", pa.table({"filename": [origin], "file_index": pa.array([0], pa.int64())})
        )
        lo_utc, hi_utc = _day_bounds(start, end)
        window = f"{TS_COLUMN} >= {_lit(lo_utc.isoformat())}::TIMESTAMPTZ AND {TS_COLUMN} < {_lit(hi_utc.isoformat())}::TIMESTAMPTZ"
        # Every row the query returned is the window's own: a row without a usable ts is kept (and
        # quarantined by validation), a row of the widened margin is outside.
        select = _window_select(con, "__sql_own", window, is_late=False)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW raw AS SELECT u.* EXCLUDE (filename, file_row_number, file_index), "
            f"u.filename AS {FILE_COLUMN}, (u.file_index << 40) | u.file_row_number AS {ORDER_COLUMN} FROM ({select}) u"
        )
        columns = [c for c in con.sql("SELECT * FROM raw LIMIT 0").columns]
        kept = int(con.execute("SELECT count(*) FROM raw").fetchall()[0][0])
        problems = [] if kept else [f"no prediction rows for {model.name} in {origin} on {start}..{end}"]
        return SourceRead(
            relation="raw" if kept else "",
            columns=columns if kept else [],
            files=[origin],
            problems=problems,
            rows_outside_window=len(frame) - kept,
        )

    def label_arrivals(self, model: ModelConfig, since: dt.date) -> dict[str, str]:
        """Arrival day -> fingerprint (row count and latest label_ts) of the labels table, from `since` on."""
        if not self.labels_table:
            return {}
        day = sa.func.date(sa.column("label_ts"))
        stmt = (
            sa.select(
                day.label("day"), sa.func.count().label("n"), sa.func.max(sa.column("label_ts")).label("last")
            )
            .select_from(self._table(self.labels_table))
            .where(sa.column("label_ts") >= sa.bindparam("since", dt.datetime.combine(since, dt.time())))
            .group_by(day)
        )
        try:
            with self.engine.connect() as con:
                rows = con.execute(stmt).all()
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(
                f"{_redact(self.url)} table {self.labels_table}: {str(exc).splitlines()[0]}"
            ) from exc
        return {str(r.day)[:10]: hashlib.sha256(f"{r.n}|{r.last}".encode()).hexdigest()[:16] for r in rows}

    def load_labels(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date
    ) -> str:
        columns = ("request_id", "label", "label_ts")
        frame = pd.DataFrame()
        if self.labels_table:
            where = sa.and_(
                sa.column("label_ts") >= sa.bindparam("lo", dt.datetime.combine(arrived_from, dt.time())),
                sa.column("label_ts")
                < sa.bindparam("hi", dt.datetime.combine(arrived_to + dt.timedelta(days=1), dt.time())),
            )
            frame = self._select(self.labels_table, where)
        return self._side(con, frame, "labels_raw", columns, "label")

    def load_outcomes(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> str:
        columns = ("request_id", "outcome", "value", "ts")
        frame = pd.DataFrame()
        if self.outcomes_table:
            where = sa.and_(
                sa.column("ts") >= sa.bindparam("lo", dt.datetime.combine(start, dt.time())),
                sa.column("ts")
                < sa.bindparam("hi", dt.datetime.combine(end + dt.timedelta(days=1), dt.time())),
            )
            frame = self._select(self.outcomes_table, where)
        return self._side(con, frame, "outcomes_raw", columns, "outcome")

    def _side(
        self,
        con: duckdb.DuckDBPyConnection,
        frame: pd.DataFrame,
        name: str,
        columns: tuple[str, ...],
        kind: str,
    ) -> str:
        if frame.empty:
            frame = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SourceError(f"{kind} rows of {_redact(self.url)} lack columns {missing}")
        text = pd.DataFrame(
            {c: frame[c].map(lambda v: None if _missing(v) else str(v)).astype("string") for c in columns}
        )
        text[ORDER_COLUMN] = np.arange(len(text), dtype=np.int64)  # the database's row order breaks ties
        con.register(name + "_frame", text)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_frame")
        return name


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


# --------------------------------------------------------------------------- normalized side tables

# The latest valid (0/1) label of each request (ties on label_ts: the later row of the input; a label without
# label_ts counts as oldest); `{where}` narrows the requests (a semi-join with the
# day's requests, applied before the aggregation so a large label folder is filtered while it is read).
LABELS_SQL = """
SELECT request_id,
       arg_max(label, (coalesce(label_ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'), __order)) AS label,
       max(label_ts) AS label_ts
FROM (
    SELECT CAST(request_id AS VARCHAR) AS request_id, TRY_CAST(label AS DOUBLE) AS label,
           TRY_CAST(label_ts AS TIMESTAMPTZ) AS label_ts, __order
    FROM {raw}
    WHERE request_id IS NOT NULL AND TRY_CAST(label AS DOUBLE) IN (0, 1)
)
WHERE {where}
GROUP BY request_id
"""

# Outcome rows with a finite value; the latest per request and outcome when `latest` is used.
OUTCOMES_SQL = """
SELECT request_id, outcome, value, ts, __order FROM (
    SELECT CAST(request_id AS VARCHAR) AS request_id, CAST(outcome AS VARCHAR) AS outcome,
           TRY_CAST(value AS DOUBLE) AS value, TRY_CAST(ts AS TIMESTAMPTZ) AS ts, __order
    FROM {raw}
    WHERE request_id IS NOT NULL AND isfinite(TRY_CAST(value AS DOUBLE))
)
WHERE {where}
"""


def read_labels(
    source: Source, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date
) -> pd.DataFrame:
    """request_id, label (0/1), label_ts (UTC); the latest label of a request wins (small reads, sensors, tests)."""
    con = new_connection()
    try:
        raw = source.load_labels(con, model, arrived_from, arrived_to)
        return con.execute(LABELS_SQL.format(raw=raw, where="true")).df()
    finally:
        con.close()


def read_outcomes(source: Source, model: ModelConfig, start: dt.date, end: dt.date) -> pd.DataFrame:
    """request_id, outcome, value, ts of the outcomes recorded in [start, end] (finite values only)."""
    con = new_connection()
    try:
        raw = source.load_outcomes(con, model, start, end)
        sql = OUTCOMES_SQL.format(raw=raw, where="true")
        return con.execute(f"SELECT * EXCLUDE ({ORDER_COLUMN}) FROM ({sql}) ORDER BY {ORDER_COLUMN}").df()
    finally:
        con.close()


def source_for(config: MonitoringConfig, model: ModelConfig) -> Source:
    if model.source == "sql" and model.sql is not None:
        return SqlSource(
            model.sql.url,
            model.sql.predictions_table,
            model.sql.labels_table,
            model.sql.outcomes_table,
            model.sql.chunk_rows,
        )
    return FileSource(config.data_dir)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(url: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SourceError(f"environment variable {name} (used in a sql.url) is not set")
        return os.environ[name]

    return _ENV.sub(repl, url)


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never leak a malformed secret
        return "<database>"
