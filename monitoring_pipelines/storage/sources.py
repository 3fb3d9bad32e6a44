"""Where predictions, labels and outcomes come from: Hive-partitioned files or a SQL database.

A source loads rows into a DuckDB connection (a model-day's working database, see
`storage.snapshot`) as a relation, so a day is read once, by DuckDB, and never copied whole into
pandas. Only a partition's UTC days are returned. A row belongs to the UTC day of its `ts`, and it may
sit in a folder of another day: logged late (up to the model's `late_days` after its day), or early
(up to CLOCK_SKEW_DAYS before: a writer's clock ahead, or folders named by a local date behind UTC).
So a day reads its own folder and those neighbours, and keeps the rows whose `ts` falls on the day;
the neighbours are scanned with the `ts` filter pushed into the Parquet reader, so their other
columns are read only where such a row is. A row whose `ts` is outside its folder's window (days
late beyond `late_days`, or in the future) is read by no other day: its own folder's day keeps it,
flagged for quarantine (OUTSIDE_WINDOW), so every row of a folder is counted by exactly one day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from monitoring_pipelines.config import ModelConfig, MonitoringConfig

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("prediction_id", "request_id", "model_name", "model_version", "role", "ts")
# Days before its own day a row may already sit in a folder (a writer's clock ahead, or folders named by
# a local date behind UTC): day D also reads folder D-1 for rows whose ts is on D.
CLOCK_SKEW_DAYS = 1
FILE_COLUMN = "__file"  # where a raw row came from (its path, or a SQL source's origin(table))
ORDER_COLUMN = "__order"  # position of a raw row in its source: file order, then row order
TS_COLUMN = "__ts"  # the row's `ts` parsed as TIMESTAMPTZ (NULL when missing or unparsable)
READ_REASON_COLUMN = "__read_reason"  # a quarantine reason found while reading (NULL for most rows)
BOOKKEEPING_COLUMNS = (FILE_COLUMN, ORDER_COLUMN, TS_COLUMN, READ_REASON_COLUMN)  # not the row's data
# The quarantine reason of a row whose ts is outside its folder's window [folder day - late_days,
# folder day + CLOCK_SKEW_DAYS]: no day reads it as valid, so its folder's day quarantines it.
OUTSIDE_WINDOW = "ts outside the lateness window"
_FILE_ORDER_SHIFT = 1 << 40  # __order = file index << 40 | row number in the file


# What reading a broken file raises: DuckDB (Parquet), pyarrow (CSV) or the OS.
UNREADABLE = (duckdb.Error, pa.ArrowException, ValueError, OSError)


class SourceError(RuntimeError):
    """A source that cannot be read at all (unreadable file, unreachable database)."""


class DatabaseUrlError(sa.exc.ArgumentError):
    """A database URL SQLAlchemy cannot use. Its message is redacted; it stays an ArgumentError, so
    code that handles SQLAlchemy's errors handles it."""


@dataclass
class SourceRead:
    """What a load put into the connection: `relation` holds the window's raw rows (original columns
    plus the BOOKKEEPING_COLUMNS that are there); `problems` make the day unusable. `files` are where the
    rows were read (paths on this host), the window's own first, then `neighbours` (files of other days'
    folders, read for the window's late or early rows); `names` say the same in the tables
    (`source_file`), the same on every host: a path relative to the data directory, or a database's
    redacted URL and table. `skipped`: a warning per neighbouring file that could not be used (it is
    its own day's problem); `rows_outside_window`: rows of the window's own folders whose `ts` is outside
    their folder's lateness window (in `relation`, flagged for quarantine with OUTSIDE_WINDOW)."""

    relation: str
    columns: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rows_outside_window: int = 0
    names: list[str] = field(default_factory=list)
    neighbours: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.names:
            self.names = list(self.files)

    @property
    def own_files(self) -> list[str]:
        """The files of the window's own folders (or its database table)."""
        near = set(self.neighbours)
        return [f for f in self.files if f not in near]

    def frame(self, con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
        """The raw rows as pandas (tests and small days only)."""
        if not self.columns:
            return pd.DataFrame()
        hidden = ", ".join(c for c in BOOKKEEPING_COLUMNS if c in self.columns)
        return con.execute(f"SELECT * EXCLUDE ({hidden}) FROM {self.relation}").df()


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
    """A private in-memory DuckDB in UTC; with a memory limit it spills to `temp_directory`. It may load
    extensions verified once per process (a lake warehouse attaches to it: storage/engines.py)."""
    config: dict[str, str] = {"allow_unsigned_extensions": "true"}
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


SCORES_MAP = "scores"  # multiclass: the per-class probabilities as one map column (class -> probability)


@dataclass(frozen=True)
class OneOf:
    """A requirement any one of whose column sets meets it: a multiclass model's probabilities come as
    every `score__<class>` column or as one `scores` map column."""

    options: tuple[tuple[str, ...], ...]

    def met(self, present: Iterable[str]) -> bool:
        have = set(present)
        return any(all(c in have for c in option) for option in self.options)

    def missing(self, present: Iterable[str]) -> str:
        """What is missing, named: the first option's absent columns, then the others."""
        have = set(present)
        first, *others = self.options
        absent = ", ".join(c for c in first if c not in have)
        return absent + "".join(f" (or {', '.join(o)})" for o in others)


Required = str | OneOf


def required_columns(model: ModelConfig) -> list[Required]:
    """The columns every prediction file (or table) of the model must have: the contract's required
    columns, each configured feature and segment, and per task: `score` and `prediction` (binary),
    `score` (regression: the predicted value; a logged decision is optional), `prediction` (the class)
    and the probabilities as every `score__<class>` column or one `scores` map (multiclass)."""
    if model.is_regression:
        task: list[Required] = ["score"]
    elif model.is_multiclass:
        task = ["prediction", OneOf((tuple(model.probability_columns), (SCORES_MAP,)))]
    else:
        task = ["score", "prediction"]
    return [*REQUIRED_COLUMNS, *task, *model.input_columns]


def missing_required(required: Sequence[Required], present: Iterable[str]) -> list[str]:
    """The requirements `present` does not meet, each named (a column, or a OneOf's absent columns)."""
    have = set(present)
    out = []
    for need in required:
        if isinstance(need, OneOf):
            if not need.met(have):
                out.append(need.missing(have))
        elif need not in have:
            out.append(need)
    return out


def folder_window(model: ModelConfig, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last prediction folder the window [start, end] reads: CLOCK_SKEW_DAYS before it
    (rows logged early) to the model's `late_days` after it (rows logged late)."""
    return start - dt.timedelta(days=CLOCK_SKEW_DAYS), end + dt.timedelta(days=model.late_days)


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

    def _day_folders(self, model: str, kind: str, start: dt.date, end: dt.date) -> list[tuple[dt.date, Path]]:
        """The `date=YYYY-MM-DD` folders of [start, end], by day. Any other `date=` folder (`date=latest`,
        `date=2026-13-45`) is skipped with a warning naming it: one stray folder must not stop the
        model's other days, nor the label sensor for every model."""
        root = self.data_dir / "incoming" / model / kind
        if not root.is_dir():
            return []
        days: list[tuple[dt.date, Path]] = []
        for folder in root.glob("date=*"):
            if not folder.is_dir():
                continue
            day = folder_day(folder.name)
            if day is None:
                log.warning("ignoring folder %s: its name is not date=YYYY-MM-DD", folder)
            elif start <= day <= end:
                days.append((day, folder))
        return sorted(days)

    def _files(self, model: str, kind: str, start: dt.date, end: dt.date) -> list[Path]:
        return [
            p
            for _, folder in self._day_folders(model, kind, start, end)
            for p in sorted(folder.iterdir())
            if p.suffix in (".parquet", ".csv")
        ]

    def source_file(self, path: Path) -> str:
        """A file as named in the tables' `source_file`: relative to the data directory, so the host's
        layout stays out and a partition rerun on another host writes the same rows."""
        try:
            return path.relative_to(self.data_dir).as_posix()
        except ValueError:
            return path.name

    def load_predictions(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> SourceRead:
        own = self._files(model.name, "predictions", start, end)
        if not own:
            # A few late rows in the next folder do not make a day: its own log is missing.
            problem = (
                f"no prediction files for {model.name} in {self._folder(model.name, 'predictions', start)}"
            )
            return SourceRead(relation="", problems=[problem + (f" (through {end})" if end != start else "")])
        first, last = folder_window(model, start, end)
        near = [
            *self._files(model.name, "predictions", first, start - dt.timedelta(days=1)),
            *self._files(model.name, "predictions", end + dt.timedelta(days=1), last),
        ]
        read = load_files(con, own, near, start, end, model.late_days, required_columns(model))
        read.names = [self.source_file(Path(f)) for f in read.files]
        return read

    def load_labels(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date
    ) -> str:
        files = self._files(model.name, "labels", arrived_from, arrived_to)
        names = [self.source_file(p) for p in files]
        return _load_side_table(con, files, "labels_raw", ("request_id", "label", "label_ts"), "label", names)

    def load_outcomes(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, start: dt.date, end: dt.date
    ) -> str:
        files = self._files(model.name, "outcomes", start, end)
        names = [self.source_file(p) for p in files]
        return _load_side_table(
            con, files, "outcomes_raw", ("request_id", "outcome", "value", "ts"), "outcome", names
        )

    def label_arrivals(self, model: ModelConfig, since: dt.date) -> dict[str, str]:
        """Arrival day -> fingerprint (names, sizes, mtimes) of that day's label files, from `since` on."""
        out: dict[str, str] = {}
        for day, folder in self._day_folders(model.name, "labels", since, dt.date.max):
            files = sorted(p for p in folder.iterdir() if p.suffix in (".parquet", ".csv"))
            if files:
                stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
                out[day.isoformat()] = hashlib.sha256(repr(stats).encode()).hexdigest()[:16]
        return out

    def fingerprint(self, model: ModelConfig, kind: str, start: dt.date, end: dt.date) -> str:
        """Names, sizes and mtimes of the files of [start, end]: changes when the data can have."""
        stats = [
            (str(p), p.stat().st_size, p.stat().st_mtime_ns)
            for p in self._files(model.name, kind, start, end)
        ]
        return hashlib.sha256(repr(stats).encode()).hexdigest()[:16]


class ObjectStoreSource(FileSource):
    """The same layout in a bucket: `data_dir: s3://bucket/prefix` (AWS S3 or any S3-compatible store).

    The folders of the days a read needs are listed in the bucket and their files mirrored into a local
    cache (`<tmp>/monitoring-pipelines-s3-<uid>-<hash of the URL>/incoming/...`, downloaded again only
    when a file's size or modification time changed, which the copy keeps), and FileSource does the rest
    on the copy: the same late-row rule, quarantine, CSV strictness and `source_file` names
    (`incoming/<model>/...`, relative to the prefix), so a day read from the bucket gives the same tables
    as from a disk. The label watch fingerprints the bucket's listing (name, size, modification time)
    without downloading anything.

    Credentials and endpoint come from the standard AWS variables (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)."""

    def __init__(self, url: str) -> None:
        from pyarrow import fs

        scheme, _, rest = url.partition("://")
        if scheme != "s3" or not rest.strip("/"):
            raise SourceError(f"data_dir {url!r}: an object store location is s3://bucket[/prefix]")
        self.url = url.rstrip("/")
        self.root = rest.strip("/")  # bucket/prefix, as pyarrow names paths
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        options: dict[str, Any] = {
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        }
        if endpoint:
            endpoint_scheme, _, host = endpoint.partition("://")
            options.update(endpoint_override=host or endpoint, scheme=endpoint_scheme if host else "https")
        self.fs = fs.S3FileSystem(**options)
        tag = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        cache = Path(tempfile.gettempdir()) / f"monitoring-pipelines-s3-{os.getuid()}-{tag}"
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(cache)

    def _remote(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _folder(self, model: str, kind: str, day: dt.date) -> Any:
        """The day's folder as the messages name it: in the bucket."""
        return f"{self.url}/incoming/{model}/{kind}/date={day.isoformat()}"

    def _listing(self, path: str, recursive: bool = False) -> list[Any]:
        from pyarrow import fs

        try:
            return self.fs.get_file_info(fs.FileSelector(path, allow_not_found=True, recursive=recursive))
        except OSError as exc:
            raise SourceError(f"cannot list {self.url}/{path.removeprefix(self.root + '/')}: {exc}") from exc

    def _remote_days(self, model: str, kind: str, start: dt.date, end: dt.date) -> list[tuple[dt.date, str]]:
        from pyarrow import fs

        days = []
        for info in self._listing(self._remote("incoming", model, kind)):
            if info.type != fs.FileType.Directory:
                continue
            day = folder_day(info.base_name)
            if day is None:
                log.warning("ignoring folder %s/%s: its name is not date=YYYY-MM-DD", self.url, info.path)
            elif start <= day <= end:
                days.append((day, info.path))
        return sorted(days)

    def _remote_files(self, folder: str) -> list[Any]:
        from pyarrow import fs

        return sorted(
            (
                i
                for i in self._listing(folder)
                if i.type == fs.FileType.File and i.extension in ("parquet", "csv")
            ),
            key=lambda i: i.base_name,
        )

    def _day_folders(self, model: str, kind: str, start: dt.date, end: dt.date) -> list[tuple[dt.date, Path]]:
        out = []
        for day, folder in self._remote_days(model, kind, start, end):
            local = super()._folder(model, kind, day)
            self._mirror(folder, local)
            out.append((day, local))
        return out

    def _mirror(self, folder: str, local: Path) -> None:
        """The folder's files copied to `local`, each only when its size or modification time changed; a
        file gone from the bucket goes from the copy."""
        local.mkdir(parents=True, exist_ok=True)
        remote = self._remote_files(folder)
        names = {i.base_name for i in remote}
        for stale in local.iterdir():
            if stale.name not in names and not stale.name.startswith("."):
                stale.unlink(missing_ok=True)
        for info in remote:
            target = local / info.base_name
            with contextlib.suppress(FileNotFoundError):
                stat = target.stat()
                if stat.st_size == info.size and stat.st_mtime_ns == info.mtime_ns:
                    continue
            tmp = local / f".{info.base_name}.{os.getpid()}.{threading.get_ident()}"
            try:
                with self.fs.open_input_stream(info.path) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise SourceError(
                    f"cannot read {self.url}/{info.path.removeprefix(self.root + '/')}: {exc}"
                ) from exc
            os.utime(tmp, ns=(info.mtime_ns, info.mtime_ns))
            os.replace(tmp, target)

    def label_arrivals(self, model: ModelConfig, since: dt.date) -> dict[str, str]:
        """As FileSource's, from the bucket's listing: nothing is downloaded to watch for labels."""
        out: dict[str, str] = {}
        for day, folder in self._remote_days(model.name, "labels", since, dt.date.max):
            files = self._remote_files(folder)
            if files:
                stats = [(i.base_name, i.size, i.mtime_ns) for i in files]
                out[day.isoformat()] = hashlib.sha256(repr(stats).encode()).hexdigest()[:16]
        return out

    def fingerprint(self, model: ModelConfig, kind: str, start: dt.date, end: dt.date) -> str:
        stats = [
            (f"{self.url}/{i.path.removeprefix(self.root + '/')}", i.size, i.mtime_ns)
            for _, folder in self._remote_days(model.name, kind, start, end)
            for i in self._remote_files(folder)
        ]
        return hashlib.sha256(repr(stats).encode()).hexdigest()[:16]


def folder_day(name: str) -> dt.date | None:
    """The day of a `date=YYYY-MM-DD` folder name; None for any other name (`date=latest`, a month 13,
    `date=20260601`: only the contract's form names the folder `_folder` would look for)."""
    text = name.removeprefix("date=")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if name.startswith("date=") and day.isoformat() == text else None


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


def _reason(error: BaseException | str, path: Path) -> str:
    """Why `path` cannot be read, in a line: the reader's message without the path it repeats (the
    problem names the file already) and without the error class; a zero-byte file says so."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            return "empty file, 0 bytes"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for quoted in (f"'{path}'", f'"{path}"', str(path)):
        text = text.replace(f" {quoted}", "").replace(quoted, "")
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text)
    if "magic bytes" in text:  # DuckDB's words for a file without a Parquet footer
        text = "not a Parquet file, or cut off: it does not end with a Parquet footer"
    return " ".join(text.split()) or type(error).__name__


def _probe(con: duckdb.DuckDBPyConnection, path: Path, full: bool = False) -> str | None:
    """None when the file can be read (its schema; with `full` every value), else the reason."""
    if path.suffix == ".csv":
        try:
            read_csv_strict(path)
        except UNREADABLE as exc:
            return _reason(exc, path)
        return None
    scan = f"read_parquet({_lit(str(path))}, hive_partitioning = false)"
    # every value is decoded only when used: hashing each row uses all of them (a bare count(*) reads none)
    sql = (
        f"SELECT count(*) FROM {scan} t WHERE hash(t) IS NOT NULL"
        if full
        else f"SELECT * FROM {scan} LIMIT 0"
    )
    try:
        con.execute(sql).fetchall()
    except (duckdb.Error, OSError) as exc:
        return _reason(exc, path)
    return None


def file_columns(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> dict[Path, list[str] | str]:
    """Each file's top-level column names, or (a string) why they cannot be read: a Parquet file's
    footer (every file's in one DuckDB call; file by file only when one fails), a CSV file's header
    line. The values are read, and checked, later."""
    out: dict[Path, list[str] | str] = {}
    parquet = [p for p in paths if p.suffix == ".parquet"]
    if parquet:
        try:
            out.update(_parquet_columns(con, parquet))
        except (duckdb.Error, OSError):
            for path in parquet:
                try:
                    out.update(_parquet_columns(con, [path]))
                except (duckdb.Error, OSError) as exc:
                    out[path] = _reason(exc, path)
    for path in (p for p in paths if p.suffix == ".csv"):
        try:
            out[path] = _csv_header(path)
        except (ValueError, OSError) as exc:
            out[path] = _reason(exc, path)
    return out


def _parquet_columns(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> dict[Path, list[str]]:
    """Top-level column names from the files' footers. `parquet_schema` lists every schema element
    depth first (the root, then each column and its children), so a column is top-level when no
    enclosing element still has children to come."""
    listed = ", ".join(_lit(str(p)) for p in paths)
    elements = con.execute(f"SELECT file_name, name, num_children FROM parquet_schema([{listed}])").fetchall()
    by_name = {str(p): p for p in paths}
    names: dict[Path, list[str]] = {p: [] for p in paths}
    open_children: dict[Path, list[int]] = {}  # per file: children still to come at each depth
    for file_name, name, children in elements:
        path = by_name[file_name]
        stack = open_children.get(path)
        if stack is None:  # the root element
            open_children[path] = [int(children or 0)]
            continue
        if len(stack) == 1:
            names[path].append(name)
        stack[-1] -= 1
        if children:
            stack.append(int(children))
        while len(stack) > 1 and stack[-1] == 0:
            stack.pop()
    return names


def _csv_header(path: Path) -> list[str]:
    import csv as pycsv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = fh.readline()
    if not header.strip():
        raise ValueError("empty file: no header line")
    return next(pycsv.reader([header]))


def _file_problem(path: Path, schema: list[str] | str, required: Sequence[Required]) -> str | None:
    """Why a prediction file cannot be used: unreadable, or without a required column; None when it can."""
    if isinstance(schema, str):
        return f"{path}: unreadable ({schema})"
    missing = missing_required(required, schema)
    return f"missing required column(s) {missing} in {path}" if missing else None


def _skip_note(problem: str, path: Path, start: dt.date, end: dt.date) -> str:
    """The warning of a neighbouring file left out of the window [start, end]."""
    window = start.isoformat() if start == end else f"{start}..{end}"
    day = folder_day(path.parent.name) or "its own day"
    return (
        f"{problem}; left out of {window}, which reads it only for rows logged late or early. "
        f"It blocks {day}: fix it, then re-run {day} and {window}"
    )


def _parquet_scan(paths: list[Path]) -> str:
    listed = ", ".join(_lit(str(p)) for p in paths)
    return (
        f"read_parquet([{listed}], union_by_name = true, filename = true, file_row_number = true, "
        "hive_partitioning = false)"
    )


def _csv_table(path: Path) -> pa.Table:
    """A CSV file (all columns as text, strictly) with its file name and row number."""
    table = read_csv_strict(path)
    return table.append_column(
        "filename", pa.array(np.full(table.num_rows, str(path), dtype=object), pa.string())
    ).append_column("file_row_number", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _csv_relation(con: duckdb.DuckDBPyConnection, paths: list[Path], name: str) -> str:
    """CSV files (all columns as text) as one registered Arrow table with file name and row number."""
    return _register_tables(con, [_csv_table(p) for p in paths], name)


def _register_tables(con: duckdb.DuckDBPyConnection, tables: list[pa.Table], name: str) -> str:
    con.register(name, pa.concat_tables(tables, promote_options="permissive"))
    return name


def load_files(
    con: duckdb.DuckDBPyConnection,
    own: list[Path],
    near: list[Path],
    start: dt.date,
    end: dt.date,
    late_days: int | None = None,
    required: Sequence[Required] = (),
    relation: str = "raw",
) -> SourceRead:
    """The prediction rows of [start, end], as the view `relation`.

    From `own` (the window's folders): every row whose `ts` is in the window, every row without a usable
    `ts` (it belongs to the folder it sits in) and every row whose `ts` is outside its folder's lateness
    window (no day reads it otherwise; flagged with OUTSIDE_WINDOW for the quarantine). From `near`
    (other days' folders): the rows whose `ts` is in the window and within their folder's lateness
    window. A folder `date=F`'s lateness window is the days F - `late_days` .. F + CLOCK_SKEW_DAYS;
    `late_days` None: no lateness window (a file outside the folder layout, e.g. `reference.path`).

    An own file that cannot be read or lacks one of the `required` columns is a problem naming it, and
    then nothing is loaded (the day is unusable, the other files are not half-used). A neighbouring
    file with such a fault (or whose rows of the window cannot be read) is left out with a warning
    naming it (`skipped`): it is its own day's problem, and it blocks that day, not this one."""
    schemas = file_columns(con, [*own, *near])
    problems = [p for path in own if (p := _file_problem(path, schemas[path], required))]
    skipped: list[str] = []
    usable: list[Path] = []
    for path in near:
        problem = _file_problem(path, schemas[path], required)
        if problem:
            skipped.append(_skip_note(problem, path, start, end))
        else:
            usable.append(path)
    if problems:
        read = SourceRead(relation="", files=[str(p) for p in own], problems=problems, skipped=skipped)
    else:
        try:
            read = _load_files(con, own, usable, start, end, late_days, relation)
            read.skipped = [*skipped, *read.skipped]
        except UNREADABLE:
            # Name the file(s) DuckDB could not read; the day is unusable until they are fixed or removed.
            problems = (
                unreadable(con, own)
                or unreadable(con, own, full=True)
                or [f"the files of {start}..{end} could not be read together"]
            )
            read = SourceRead(relation="", files=[str(p) for p in own], problems=problems, skipped=skipped)
    for note in read.skipped:
        log.warning("%s", note)
    return read


def unreadable(con: duckdb.DuckDBPyConnection, files: list[Path], full: bool = False) -> list[str]:
    """A problem naming each file DuckDB cannot read (its schema, or with `full` every value)."""
    return [f"{p}: unreadable ({reason})" for p in files if (reason := _probe(con, p, full)) is not None]


def _register_files(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """`__file_order`: each file's index (the high bits of __order) and its folder's day (NULL outside
    the `date=` layout)."""
    days = [folder_day(p.parent.name) for p in files]
    con.register(
        "__file_order",
        pa.table(
            {
                "filename": pa.array([str(p) for p in files], pa.string()),
                "file_index": pa.array(np.arange(len(files), dtype=np.int64)),
                "folder_day": pa.array(days, pa.date32()),
            }
        ),
    )


def _load_files(
    con: duckdb.DuckDBPyConnection,
    own: list[Path],
    near: list[Path],
    start: dt.date,
    end: dt.date,
    late_days: int | None,
    relation: str,
) -> SourceRead:
    lo, hi = _day_bounds(start, end)
    window = f"{TS_COLUMN} >= {_lit(lo.isoformat())}::TIMESTAMPTZ AND {TS_COLUMN} < {_lit(hi.isoformat())}::TIMESTAMPTZ"
    near, skipped = _near_rows(con, own, near, window, late_days, start, end)  # registers __file_order
    parts: list[str] = []
    for suffix, scan in ((".parquet", "pq"), (".csv", "csv")):
        paths = [p for p in own if p.suffix == suffix]
        if not paths:
            continue
        name = f"__{scan}_own"
        source = _parquet_scan(paths) if scan == "pq" else _csv_relation(con, paths, name + "_csv")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {source}")
        parts.append(_window_select(con, name, window, late_days, own=True))
    if near:
        parts.append(f"SELECT * FROM {NEAR_ROWS}")
    if not parts:
        return SourceRead(relation="", files=[str(p) for p in own], problems=["no readable files"])
    union = " UNION ALL BY NAME ".join(f"({p})" for p in parts)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT u.* EXCLUDE (filename, file_row_number, file_index), "
        f"u.filename AS {FILE_COLUMN}, (u.file_index << 40) | u.file_row_number AS {ORDER_COLUMN} "
        f"FROM ({union}) u"
    )
    columns = [c for c in con.sql(f"SELECT * FROM {relation} LIMIT 0").columns]
    outside = con.execute(
        f"SELECT count(*) FROM {relation} WHERE {READ_REASON_COLUMN} IS NOT NULL"
    ).fetchall()
    return SourceRead(
        relation=relation,
        columns=columns,
        files=[str(p) for p in [*own, *near]],
        rows_outside_window=int(outside[0][0]) if outside else 0,
        neighbours=[str(p) for p in near],
        skipped=skipped,
    )


NEAR_ROWS = "__near_rows"  # table: the window's rows found in other days' folders


def _near_rows(
    con: duckdb.DuckDBPyConnection,
    own: list[Path],
    near: list[Path],
    window: str,
    late_days: int | None,
    start: dt.date,
    end: dt.date,
) -> tuple[list[Path], list[str]]:
    """Read the window's rows of the neighbouring files into NEAR_ROWS now (they are few: the filter on
    `ts` is pushed into the Parquet reader), so a file whose data cannot be read is found here and left
    out, with a warning naming it, instead of failing the window later. Registers `__file_order` for
    `own` and the neighbouring files kept; returns those and the warnings."""
    skipped: list[str] = []
    tables: dict[Path, pa.Table] = {}
    for path in (p for p in near if p.suffix == ".csv"):
        try:
            tables[path] = _csv_table(path)
        except UNREADABLE as exc:
            skipped.append(_skip_note(f"{path}: unreadable ({_reason(exc, path)})", path, start, end))

    def select(parquet: list[Path], csv: bool = True) -> str:
        parts = []
        if parquet:
            con.execute(f"CREATE OR REPLACE TEMP VIEW __pq_near AS SELECT * FROM {_parquet_scan(parquet)}")
            parts.append(_window_select(con, "__pq_near", window, late_days, own=False))
        if csv and tables:
            _register_tables(con, list(tables.values()), "__csv_near")
            parts.append(_window_select(con, "__csv_near", window, late_days, own=False))
        return " UNION ALL BY NAME ".join(f"({p})" for p in parts)

    def build(parquet: list[Path]) -> list[Path]:
        kept = [p for p in near if p in set(parquet) or p in tables]
        _register_files(con, [*own, *kept])  # the rows' file indexes are those of the files kept
        if kept:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {NEAR_ROWS} AS {select(parquet)}")
        return kept

    parquet = [p for p in near if p.suffix == ".parquet"]
    try:
        return build(parquet), skipped
    except UNREADABLE:
        readable = []
        for path in parquet:  # which file it was: each alone (the indexes of every candidate are set)
            try:
                con.execute(f"SELECT count(*) FROM ({select([path], csv=False)})").fetchall()
                readable.append(path)
            except UNREADABLE as exc:
                skipped.append(_skip_note(f"{path}: unreadable ({_reason(exc, path)})", path, start, end))
        return build(readable), skipped


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


def _window_select(
    con: duckdb.DuckDBPyConnection, view: str, window: str, late_days: int | None, own: bool
) -> str:
    """The rows of `view` (joined with `__file_order`) that the window reads; see load_files."""
    ts = _ts_expression(con, view)
    inside = "true"
    if late_days is not None:
        day = f"CAST(timezone('UTC', {ts}) AS DATE)"
        inside = (
            f"(o.folder_day IS NULL OR {day} BETWEEN o.folder_day - {int(late_days)} "
            f"AND o.folder_day + {CLOCK_SKEW_DAYS})"
        )
    select = (
        f"SELECT v.*, {ts} AS {TS_COLUMN}, o.file_index, {inside} AS __inside "
        f"FROM {view} v JOIN __file_order o USING (filename)"
    )
    if not own:
        return f"SELECT * EXCLUDE (__inside) FROM ({select}) WHERE ({window}) AND __inside"
    # Rows of the window's own folders: those on its days, those without a usable ts (they belong to
    # the folder they sit in) and those outside their folder's lateness window (quarantined here).
    reason = f"CASE WHEN {TS_COLUMN} IS NOT NULL AND NOT __inside THEN {_lit(OUTSIDE_WINDOW)} END"
    return (
        f"SELECT * EXCLUDE (__inside), {reason} AS {READ_REASON_COLUMN} FROM ({select}) "
        f"WHERE {TS_COLUMN} IS NULL OR NOT __inside OR ({window})"
    )


def _load_side_table(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    name: str,
    columns: tuple[str, ...],
    kind: str,
    names: Sequence[str] | None = None,
) -> str:
    """Label or outcome rows of `files` as the view `name` with exactly `columns`, ORDER_COLUMN and
    FILE_COLUMN (the file as `names` gives it, default its path); empty when no files. An unreadable file
    or a missing column is a SourceError naming it: metrics must not silently miss the labels they were
    promised."""
    try:
        return _side_view(con, files, name, columns, kind, names)
    except UNREADABLE as exc:
        problems = unreadable(con, files) or unreadable(con, files, full=True)
        raise SourceError(
            "; ".join(problems) or f"{kind} files could not be read: {str(exc).splitlines()[0]}"
        ) from exc


def _side_view(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    name: str,
    columns: tuple[str, ...],
    kind: str,
    names: Sequence[str] | None = None,
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
            f"SELECT {selected}, (o.file_index << 40) | r.file_row_number AS {ORDER_COLUMN}, "
            f"o.source_file AS {FILE_COLUMN} FROM {rel} r JOIN __{name}_files o USING (filename)"
        )
    con.register(
        f"__{name}_files",
        pa.table(
            {
                "filename": pa.array([str(p) for p in files], pa.string()),
                "file_index": pa.array(np.arange(len(files), dtype=np.int64)),
                "source_file": pa.array(
                    list(names) if names is not None else [str(p) for p in files], pa.string()
                ),
            }
        ),
    )
    if not parts:
        parts = [
            f"SELECT {', '.join(f'CAST(NULL AS VARCHAR) AS {c}' for c in columns)}, "
            f"CAST(NULL AS BIGINT) AS {ORDER_COLUMN}, CAST(NULL AS VARCHAR) AS {FILE_COLUMN} WHERE false"
        ]
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {' UNION ALL BY NAME '.join(parts)}")
    con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()  # binds every file's schema now
    return name


# --------------------------------------------------------------------------- SQL databases


class SqlSource:
    """Any SQLAlchemy database holding the same columns. Table names are validated identifiers
    (config), dates are bound parameters. The driver returns rows in chunks of `chunk_rows` (its own
    buffers stay small); the model-day's rows then reach DuckDB as one frame, so a SQL source holds a
    day in pandas once. Files are the faster path for days of millions of rows.

    The URL carries credentials: it is shown only as `shown` (see `redact_database_url`), and every
    text taken from the driver is scrubbed of them (`_safe`) before it reaches a message."""

    def __init__(
        self,
        url: str,
        predictions_table: str,
        labels_table: str | None,
        outcomes_table: str | None,
        chunk_rows: int = 200_000,
    ) -> None:
        self.url, expanded = _expand_env(url)
        self._secrets = [*expanded, *url_secrets(self.url)]
        self.shown = redact_database_url(self.url, expanded)
        self.predictions_table = predictions_table
        self.labels_table = labels_table
        self.outcomes_table = outcomes_table
        self.chunk_rows = chunk_rows
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        """The engine; a URL it cannot be made from is an error that does not quote the URL (SQLAlchemy
        and the dialects echo it, user and query string included)."""
        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url)
            except sa.exc.ArgumentError as exc:  # callers handle SQLAlchemy errors; keep the kind
                raise DatabaseUrlError(self._problem(exc)) from None
            except Exception as exc:  # noqa: BLE001 - a bad port, a missing driver: never chain the text
                raise SourceError(self._problem(exc)) from None
        return self._engine

    def origin(self, table: str) -> str:
        """A table as named in messages and in `source_file`: the redacted URL and the table."""
        return f"{self.shown}/{table}"

    def _safe(self, text: str) -> str:
        """The first line of a driver's message, without the URL's credentials."""
        return scrub(text.splitlines()[0] if text else "", self._secrets)

    def _problem(self, exc: BaseException, table: str | None = None) -> str:
        if isinstance(exc, DatabaseUrlError):
            return str(exc)  # already says where, redacted
        where = self.origin(table) if table else self.shown
        if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
            exc = exc.__cause__  # pandas' first line is its SQL; the driver's says what went wrong
        return f"{where}: {type(exc).__name__}: {self._safe(str(exc))}"

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
            # not chained: the driver's full text (and a traceback's) may quote the credentials
            raise SourceError(self._problem(exc, name)) from None
        if not chunks:
            return pd.DataFrame()
        return pd.concat(chunks, ignore_index=True)

    def _register(self, con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, name: str) -> None:
        """A frame from the database as a DuckDB view; object columns as text (types vary by driver)."""
        frame = frame.copy()
        if SCORES_MAP in frame.columns and frame[SCORES_MAP].dtype == object:
            # a multiclass `scores` map (a JSON/JSONB column) may come back as dicts: JSON text, as in CSV
            frame[SCORES_MAP] = frame[SCORES_MAP].map(
                lambda v: json.dumps(v) if isinstance(v, dict) else v, na_action="ignore"
            )
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
        origin = self.origin(self.predictions_table)
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
        # quarantined by validation), a row of the widened margin belongs to another day. A database has
        # no folders, so no lateness window: a row is found by its ts however late it was written.
        select = _window_select(con, "__sql_own", window, None, own=True)
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
            raise SourceError(self._problem(exc, self.labels_table)) from None
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
        return self._side(con, frame, "labels_raw", columns, "label", self.labels_table)

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
        return self._side(con, frame, "outcomes_raw", columns, "outcome", self.outcomes_table)

    def _side(
        self,
        con: duckdb.DuckDBPyConnection,
        frame: pd.DataFrame,
        name: str,
        columns: tuple[str, ...],
        kind: str,
        table: str | None,
    ) -> str:
        if frame.empty:
            frame = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SourceError(f"{kind} rows of {self.origin(table or '?')} lack columns {missing}")
        text = pd.DataFrame(
            {c: frame[c].map(lambda v: None if _missing(v) else str(v)).astype("string") for c in columns}
        )
        text[ORDER_COLUMN] = np.arange(len(text), dtype=np.int64)  # the database's row order breaks ties
        con.register(name + "_frame", text)
        origin = _lit(self.origin(table or "?"))
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT *, {origin} AS {FILE_COLUMN} FROM {name}_frame"
        )
        return name


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


# --------------------------------------------------------------------------- normalized side tables

# Why a label row cannot be used, per task: no request_id, no label, or a label the task cannot read: not
# 0/1 (binary), not a finite number (regression), not one of the classes (multiclass).
LABEL_RULES = {
    "binary_classification": "label in {0, 1}",
    "regression": "label is a finite number",
    "multiclass_classification": "label in classes",
}


def label_value_sql(model: ModelConfig | None) -> str:
    """SQL: a raw `label` as the DOUBLE the metrics read (NULL when the task cannot read it): the number
    itself (binary, regression) or the 0-based index of the class in `model.classes` (multiclass; class
    names are identifiers from config, quoted as literals all the same)."""
    if model is not None and model.is_multiclass:
        cases = " ".join(f"WHEN {_lit(c)} THEN {float(i)!r}" for i, c in enumerate(model.classes))
        return f"CAST(CASE CAST(label AS VARCHAR) {cases} END AS DOUBLE)"
    return "TRY_CAST(label AS DOUBLE)"


def label_reason_sql(model: ModelConfig | None) -> str:
    """SQL: why a label row cannot be used (NULL when it can), per the model's task (binary for None)."""
    task = model.task if model is not None else "binary_classification"
    value = label_value_sql(model)
    if task == "regression":
        unusable = f"NOT coalesce(isfinite({value}), false)"
    elif task == "multiclass_classification":
        unusable = f"{value} IS NULL"
    else:
        unusable = f"coalesce({value} NOT IN (0, 1), true)"
    return f"""CASE WHEN request_id IS NULL THEN 'request_id not null'
    WHEN label IS NULL THEN 'label not null'
    WHEN {unusable} THEN {_lit(LABEL_RULES[task])} END"""


def _braces(sql: str) -> str:
    return sql.replace("{", "{{").replace("}", "}}")


def label_groups_sql(model: ModelConfig | None) -> str:
    """Per request, one pass over the label rows: the latest usable label by label_ts and the rows not
    used. A label_ts that is missing, unparsable or infinite is no time: such a label counts as the
    oldest and never replaces one with a time; ties on label_ts go to the later row of the input.
    A template: `{raw}` the label rows, `{where}` narrows the requests (a semi-join with the day's
    requests, applied before the aggregation so a large label folder is filtered while it is read)."""
    return (
        """
SELECT request_id,
       arg_max(label, (label_ts IS NOT NULL, coalesce(label_ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'), __order))
           FILTER (WHERE reason IS NULL) AS label,
       max(label_ts) FILTER (WHERE reason IS NULL) AS label_ts,
       count(*) FILTER (WHERE reason IS NOT NULL) AS invalid_labels,
       count(*) FILTER (WHERE reason IS NULL AND label_ts IS NULL) AS labels_without_label_ts
FROM (
    SELECT CAST(request_id AS VARCHAR) AS request_id, """
        + _braces(label_value_sql(model))
        + """ AS label,
           CASE WHEN isfinite(TRY_CAST(label_ts AS TIMESTAMPTZ)) THEN TRY_CAST(label_ts AS TIMESTAMPTZ) END
               AS label_ts,
           __order, """
        + _braces(label_reason_sql(model))
        + """ AS reason
    FROM {raw}
)
WHERE {where}
GROUP BY request_id
"""
    )


def labels_sql(model: ModelConfig | None) -> str:
    """The latest usable label of each request (see label_groups_sql); a template of `{raw}`, `{where}`."""
    return (
        "SELECT request_id, label, label_ts FROM ("
        + label_groups_sql(model)
        + ") WHERE request_id IS NOT NULL AND label IS NOT NULL"
    )


def label_quarantine_sql(model: ModelConfig | None) -> str:
    """The label rows not used, as read, with the reason (quarantined_labels); a template of `{raw}` and
    `{where}` (narrows the requests)."""
    return (
        """
SELECT request_id, label, label_ts, reason, source_file FROM (
    SELECT CAST(request_id AS VARCHAR) AS request_id, CAST(label AS VARCHAR) AS label,
           CAST(label_ts AS VARCHAR) AS label_ts, """
        + _braces(label_reason_sql(model))
        + f""" AS reason,
           {FILE_COLUMN} AS source_file, {ORDER_COLUMN} AS __order
    FROM {{raw}}
)
WHERE reason IS NOT NULL AND {{where}}
ORDER BY __order
"""
    )


# The binary model's label SQL (0/1 labels); other tasks use the functions above with their model.
LABEL_REASON_SQL = label_reason_sql(None)
LABEL_GROUPS_SQL = label_groups_sql(None)
LABELS_SQL = labels_sql(None)
LABEL_QUARANTINE_SQL = label_quarantine_sql(None)

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
    """request_id, label, label_ts (UTC); the latest label of a request wins (small reads, sensors, tests).
    The label as the metrics read it: 0/1, the observed value, or the observed class's index."""
    con = new_connection()
    try:
        raw = source.load_labels(con, model, arrived_from, arrived_to)
        return con.execute(labels_sql(model).format(raw=raw, where="true")).df()
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
    if config.input_url:
        return ObjectStoreSource(config.input_url)
    return FileSource(config.data_dir)


# --------------------------------------------------------------------------- credentials

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
SECRET_MIN_CHARS = 4  # shorter values are not scrubbed: replacing "a" or "ml" would mangle, not protect


def _expand_env(url: str) -> tuple[str, list[str]]:
    """The URL with every `${NAME}` replaced by the variable's value, and those values: they are
    credentials (docs/configuration.md) and are scrubbed from every message."""
    values: list[str] = []

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SourceError(f"environment variable {name} (used in a sql.url) is not set")
        values.append(os.environ[name])
        return os.environ[name]

    return _ENV.sub(repl, url), values


def url_secrets(url: str) -> list[str]:
    """The parts of a database URL that may carry a credential: the URL itself, user, password and
    every query value (an ODBC string's `key=value` parts too: `PWD=...`)."""
    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is scrubbed whole
        return [url]
    values = [v for value in parsed.query.values() for v in ([value] if isinstance(value, str) else value)]
    parts = [p.partition("=")[2] for v in values for p in v.split(";")]
    return [url, parsed.username or "", parsed.password or "", *values, *parts]


def redact_database_url(url: str, secrets: Iterable[str] = ()) -> str:
    """How a database URL is shown anywhere (messages, metadata, `source_file`): `driver://host:port/
    database` only. User info and the query string carry credentials (passwords, tokens, ODBC
    strings) and are dropped; a file database is named by its file name (its folder is the host's
    layout); and any of `secrets` (the values of `${NAME}` references) left in it shows as `***`."""
    try:
        parsed = sa.engine.make_url(url)
        host = parsed.host or ""
        port = f":{parsed.port}" if parsed.port else ""
        database = parsed.database or ""
        driver = parsed.drivername
    except Exception:  # noqa: BLE001 - never echo a URL that does not parse
        scheme = _SCHEME.match(url)
        return f"{scheme.group(1) if scheme else 'database'}://<unparsable url>"
    if not host:
        database = PurePath(database).name if database else ""
    return scrub(f"{driver}://{host}{port}/{database}", secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (of at least SECRET_MIN_CHARS characters) replaced by `***`, longest
    first, so a secret that contains another is hidden whole."""
    for secret in sorted({s for s in secrets if s and len(s) >= SECRET_MIN_CHARS}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
