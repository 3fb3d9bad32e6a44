"""Where predictions, labels and outcomes come from: Hive-partitioned files or a SQL database.

Only a partition's UTC day is returned. Rows logged late can sit in the next day's folder, so a
day reads its own folder and the next one, then keeps rows whose `ts` falls on the day.
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
import pandas as pd
import sqlalchemy as sa

from monitoring_pipelines.config import ModelConfig, MonitoringConfig

REQUIRED_COLUMNS = ("prediction_id", "request_id", "model_name", "model_version", "role", "ts")
LATE_FOLDERS = 1  # days after a partition whose folders may still hold its late-logged rows


class SourceError(RuntimeError):
    """A source that cannot be read at all (unreadable file, unreachable database)."""


@dataclass
class SourceRead:
    """Rows of one window plus where they came from; `problems` makes the day unusable."""

    frame: pd.DataFrame
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rows_outside_window: int = 0


class Source(Protocol):
    def read_predictions(self, model: ModelConfig, start: dt.date, end: dt.date) -> SourceRead: ...

    def read_labels(self, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date) -> pd.DataFrame: ...

    def label_arrivals(self, model: ModelConfig, since: dt.date) -> dict[str, str]: ...

    def read_outcomes(self, model: ModelConfig, start: dt.date, end: dt.date) -> pd.DataFrame: ...


def _day_bounds(start: dt.date, end: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    lo = pd.Timestamp(start, tz="UTC")
    hi = pd.Timestamp(end + dt.timedelta(days=1), tz="UTC")
    return lo, hi


def _to_utc(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse timestamps as UTC; returns (parsed, unparsable mask). Naive values are taken as UTC."""
    parsed = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & series.notna()
    return parsed, bad


def restrict_to_window(frame: pd.DataFrame, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, int]:
    """Keep rows whose ts falls in [start, end] (UTC days). Rows with an unparsable or missing ts
    are kept (they are quarantined by validation with that reason, not dropped here)."""
    if frame.empty or "ts" not in frame.columns:
        return frame, 0
    parsed, bad = _to_utc(frame["ts"])
    lo, hi = _day_bounds(start, end)
    inside = ((parsed >= lo) & (parsed < hi)) | bad | parsed.isna()
    out = frame.loc[inside].copy()
    out["ts"] = parsed.loc[inside]
    return out.reset_index(drop=True), int((~inside).sum())


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

    def read_files(self, files: list[Path]) -> tuple[pd.DataFrame, list[str]]:
        frames: list[pd.DataFrame] = []
        problems: list[str] = []
        con = duckdb.connect()
        try:
            for path in files:
                try:
                    if path.suffix == ".parquet":
                        rel = con.read_parquet(str(path))
                    else:
                        rel = con.read_csv(str(path), all_varchar=True, header=True)
                    frames.append(rel.df().assign(source_file=str(path)))
                except (duckdb.Error, OSError) as exc:
                    problems.append(f"{path}: unreadable ({str(exc).splitlines()[0]})")
        finally:
            con.close()
        if not frames:
            return pd.DataFrame(), problems
        frames = [f for f in frames if len(f.columns)]
        if not frames:
            return pd.DataFrame(), problems
        return pd.concat(frames, ignore_index=True, sort=False), problems

    def read_predictions(self, model: ModelConfig, start: dt.date, end: dt.date) -> SourceRead:
        own = self._files(model.name, "predictions", start, end)
        late = self._files(
            model.name, "predictions", end + dt.timedelta(days=1), end + dt.timedelta(days=LATE_FOLDERS)
        )
        problems: list[str] = []
        if not own:
            # A few late rows in the next folder do not make a day: its own log is missing.
            problems.append(
                f"no prediction files for {model.name} in "
                f"{self._folder(model.name, 'predictions', start)}"
                + (f" (through {end})" if end != start else "")
            )
            return SourceRead(frame=pd.DataFrame(), files=[], problems=problems)
        frame, problems = self.read_files(own + late)
        if len(frame) and "ts" in frame.columns:
            # A row without a usable ts belongs to the folder it sits in, so only one partition sees it.
            parsed, bad = _to_utc(frame["ts"])
            foreign = (parsed.isna() | bad) & ~frame["source_file"].isin([str(p) for p in own])
            frame = frame.loc[~foreign]
        frame, outside = restrict_to_window(frame, start, end)
        return SourceRead(
            frame=frame, files=[str(p) for p in own + late], problems=problems, rows_outside_window=outside
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

    def read_labels(self, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date) -> pd.DataFrame:
        frame, problems = self.read_files(self._files(model.name, "labels", arrived_from, arrived_to))
        if problems:
            raise SourceError("; ".join(problems))
        return normalize_labels(frame)

    def read_outcomes(self, model: ModelConfig, start: dt.date, end: dt.date) -> pd.DataFrame:
        frame, problems = self.read_files(self._files(model.name, "outcomes", start, end))
        if problems:
            raise SourceError("; ".join(problems))
        return normalize_outcomes(frame)


class SqlSource:
    """Any SQLAlchemy database holding the same columns. Table names are validated identifiers
    (config), dates are bound parameters, and rows stream in chunks."""

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

    def read_predictions(self, model: ModelConfig, start: dt.date, end: dt.date) -> SourceRead:
        # Bounds are widened by a day on each side and then filtered in UTC: databases store
        # timestamps in many ways (naive, text, with zone), the exact filter happens in pandas.
        lo = dt.datetime.combine(start - dt.timedelta(days=1), dt.time())
        hi = dt.datetime.combine(end + dt.timedelta(days=2), dt.time())
        where = sa.and_(
            sa.column("model_name") == sa.bindparam("model_name", model.name),
            sa.column("ts") >= sa.bindparam("lo", lo),
            sa.column("ts") < sa.bindparam("hi", hi),
        )
        try:
            frame = self._select(self.predictions_table, where)
        except SourceError as exc:
            return SourceRead(frame=pd.DataFrame(), files=[], problems=[str(exc)])
        frame, outside = restrict_to_window(frame, start, end)
        origin = f"{_redact(self.url)}/{self.predictions_table}"
        problems = (
            [] if len(frame) else [f"no prediction rows for {model.name} in {origin} on {start}..{end}"]
        )
        return SourceRead(frame=frame, files=[origin], problems=problems, rows_outside_window=outside)

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

    def read_labels(self, model: ModelConfig, arrived_from: dt.date, arrived_to: dt.date) -> pd.DataFrame:
        if not self.labels_table:
            return normalize_labels(pd.DataFrame())
        where = sa.and_(
            sa.column("label_ts") >= sa.bindparam("lo", dt.datetime.combine(arrived_from, dt.time())),
            sa.column("label_ts")
            < sa.bindparam("hi", dt.datetime.combine(arrived_to + dt.timedelta(days=1), dt.time())),
        )
        return normalize_labels(self._select(self.labels_table, where))

    def read_outcomes(self, model: ModelConfig, start: dt.date, end: dt.date) -> pd.DataFrame:
        if not self.outcomes_table:
            return normalize_outcomes(pd.DataFrame())
        where = sa.and_(
            sa.column("ts") >= sa.bindparam("lo", dt.datetime.combine(start, dt.time())),
            sa.column("ts") < sa.bindparam("hi", dt.datetime.combine(end + dt.timedelta(days=1), dt.time())),
        )
        return normalize_outcomes(self._select(self.outcomes_table, where))


def normalize_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """request_id, label (0/1), label_ts (UTC); the latest label of a request wins."""
    cols = ["request_id", "label", "label_ts"]
    if frame.empty:
        return pd.DataFrame(
            {
                "request_id": pd.Series(dtype="string"),
                "label": pd.Series(dtype="float64"),
                "label_ts": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SourceError(f"label rows lack columns {missing}")
    out = frame[cols].copy()
    out["request_id"] = out["request_id"].astype("string")
    out["label"] = pd.to_numeric(out["label"], errors="coerce")
    out["label_ts"], _ = _to_utc(out["label_ts"])
    out = out[out["label"].isin([0, 1])]
    out = out.sort_values(["request_id", "label_ts"]).drop_duplicates("request_id", keep="last")
    return out.reset_index(drop=True)


def normalize_outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["request_id", "outcome", "value", "ts"]
    if frame.empty:
        return pd.DataFrame(
            {
                "request_id": pd.Series(dtype="string"),
                "outcome": pd.Series(dtype="string"),
                "value": pd.Series(dtype="float64"),
                "ts": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SourceError(f"outcome rows lack columns {missing}")
    out = frame[cols].copy()
    out["request_id"] = out["request_id"].astype("string")
    out["outcome"] = out["outcome"].astype("string")
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    out["ts"], _ = _to_utc(out["ts"])
    return out.dropna(subset=["value"]).reset_index(drop=True)


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
