"""A model's validated predictions over one or more days, held in a private DuckDB database.

The prediction log of a model-day is read once: from the source by the `prediction_snapshots` asset
(validated on the way in), or from the warehouse by the first metric asset of a run that did not
validate it. Every metric then asks this object for its inputs, and each answer is SQL over the
same rows: joins with labels and outcomes happen here (hash joins in DuckDB, never Python `isin`),
and only the columns a metric needs leave DuckDB, as numpy arrays or narrow frames.

Small days live in memory; a day whose source is larger than `FILE_BACKED_BYTES` lives in a
temporary DuckDB file (compressed, columnar, out of core), so a 10M-row day never sits in Python
memory whole. The SQL is the same either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.core.profiles import category_key
from monitoring_pipelines.schema import (
    CHAMPION,
    CHAMPION_OK_SQL,
    OK,
    SHADOW,
    TABLE,
    columns_of,
    result_columns,
)
from monitoring_pipelines.storage.sources import (
    FILE_COLUMN,
    ORDER_COLUMN,
    OUTCOMES_SQL,
    TS_COLUMN,
    UNREADABLE,
    Source,
    SourceRead,
    label_groups_sql,
    label_quarantine_sql,
    new_connection,
    source_for,
    unreadable,
)
from monitoring_pipelines.storage.warehouse import Warehouse, quote_ident
from monitoring_pipelines.validation.suite import DayValidation, preload_gx, validate

log = logging.getLogger(__name__)

FILE_BACKED_BYTES = 1024 * 2**20  # source bytes above which a snapshot lives in a temporary file
MEMORY_LIMIT = "800MB"  # DuckDB's buffer for one snapshot; beyond it, a file-backed snapshot pages out
CHECKED = "checked"  # table: every raw row typed, flagged, with its quarantine reason (validation.suite)
VALIDATED = "validated"  # view: CHECKED with the row's source_file (named from its file index, not stored)
DAY = "day"  # relation: the valid rows (partition_date + the snapshot columns)
SNAPSHOT_BASE = [c for c in columns_of("prediction_snapshots") if c not in ("model_name",)]


def _q(name: str) -> str:
    return quote_ident(name)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def task_columns(model: ModelConfig) -> dict[str, str]:
    """The snapshot columns a model's task adds to the shared ones, with their types: for a multiclass
    model the class as logged (`predicted_class`; `prediction` holds its index in `classes`) and the
    probability of each class (`score__<class>`). Stored in prediction_snapshots as model-specific
    columns, like the features."""
    if not model.is_multiclass:
        return {}
    return {"predicted_class": "VARCHAR", **dict.fromkeys(model.probability_columns, "DOUBLE")}


def snapshot_types(model: ModelConfig) -> dict[str, str]:
    """Every snapshot column of the model and its type: the shared ones, the task's and the inputs."""
    types = {c.name: c.type for c in TABLE["prediction_snapshots"].columns}
    types.update(task_columns(model))
    types.update({c: "DOUBLE" for c in model.features.numeric})
    types.update({c: "VARCHAR" for c in model.string_columns})
    return types


class Snapshot:
    """Validated rows of one model over [start, end] and the side tables the metrics join with."""

    def __init__(
        self,
        model: ModelConfig,
        start: dt.date,
        end: dt.date,
        con: duckdb.DuckDBPyConnection,
        workdir: Path | None = None,
    ) -> None:
        self.model = model
        self.start = start
        self.end = end
        self.con = con
        self._workdir = workdir
        self._labels: tuple[dt.date, dt.date] | None = None
        self._outcomes: tuple[dt.date, dt.date] | None = None
        self._rows: int | None = None
        # what loading the labels found: label rows used, not used (quarantined_labels), without a time
        self.label_counts: dict[str, int] = {}
        self._scored: dict[tuple[Any, ...], pd.DataFrame] = {}
        self._writing: Future[None] | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def open(
        cls, model: ModelConfig, start: dt.date, end: dt.date | None = None, size_hint_bytes: int = 0
    ) -> Snapshot:
        """An empty snapshot: in memory, or in a temporary DuckDB file for a large source."""
        end = end or start
        workdir = Path(tempfile.mkdtemp(prefix=f"mp-{model.name}-"))
        con = new_connection(memory_limit=MEMORY_LIMIT, temp_directory=str(workdir / "spill"))
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = false")
        if size_hint_bytes > FILE_BACKED_BYTES:
            path = str(workdir / "snapshot.duckdb").replace("'", "''")
            con.execute(f"ATTACH '{path}' AS work")
            con.execute("USE work")
        return cls(model, start, end, con, workdir)

    @classmethod
    def from_source(
        cls, config: MonitoringConfig, model: ModelConfig, start: dt.date, end: dt.date | None = None
    ) -> tuple[Snapshot, DayValidation, SourceRead]:
        """Read the window from the model's source and validate it (quarantine + GX results)."""
        end = end or start
        preload_gx()  # imported while DuckDB reads and checks the rows (the table-level rules need it)
        source = source_for(config, model)
        size = _source_bytes(source, model, start, end)
        snap = cls.open(model, start, end, size_hint_bytes=size)
        try:
            read = source.load_predictions(snap.con, model, start, end)
            try:
                validation = validate(
                    snap.con,
                    read.relation,
                    read.columns,
                    model,
                    start,
                    read.files,
                    read.problems,
                    warnings=read.skipped,
                )
            except UNREADABLE as exc:  # a file of the window's own whose schema reads but whose data does not
                paths = [Path(f) for f in read.own_files if Path(f).exists()]
                problems = unreadable(snap.con, paths, full=True) or [f"{', '.join(read.own_files)}: {exc}"]
                validation = validate(
                    snap.con, "", [], model, start, read.files, problems, warnings=read.skipped
                )
            snap._define_day(validated=validation.usable, files=read.names)
        except BaseException:
            snap.close()
            raise
        return snap, validation, read

    @classmethod
    def from_frame(
        cls,
        model: ModelConfig,
        frame: pd.DataFrame,
        start: dt.date,
        end: dt.date | None = None,
        files: Sequence[str] = ("<frame>",),
        read_problems: Sequence[str] = (),
    ) -> tuple[Snapshot, DayValidation]:
        """Validate an in-memory frame of raw rows as if it had been read from `files` (tests, small data).
        Rows whose `ts` is outside [start, end] are kept, as a source's own folder would keep them."""
        end = end or start
        snap = cls.open(model, start, end)
        frame = frame.reset_index(drop=True)
        columns: list[str] = []
        if len(frame.columns):
            given = frame.assign(**{ORDER_COLUMN: np.arange(len(frame), dtype=np.int64)})
            snap.con.register("__frame", given)
            ts = "CAST(NULL AS TIMESTAMPTZ)"
            if "ts" in frame.columns:
                kind = str(snap.con.sql("SELECT ts FROM __frame LIMIT 0").types[0]).upper()
                ts = (
                    "CAST(ts AS TIMESTAMPTZ)"
                    if kind.startswith("TIMESTAMP")
                    else "TRY_CAST(CAST(ts AS VARCHAR) AS TIMESTAMPTZ)"
                )
            snap.con.execute(
                f"CREATE OR REPLACE TEMP VIEW raw AS SELECT *, {_literal(files[0])} AS {FILE_COLUMN}, "
                f"{ts} AS {TS_COLUMN} FROM __frame"
            )
            columns = list(snap.con.sql("SELECT * FROM raw LIMIT 0").columns)
        problems = list(read_problems)
        if not len(frame) and not problems:
            problems = [f"no rows for {model.name} in {', '.join(files)}"]
        validation = validate(snap.con, "raw", columns, model, start, list(files), problems)
        snap._define_day(validated=validation.usable, files=list(files[:1]))
        return snap, validation

    @classmethod
    def from_warehouse(
        cls,
        warehouse: Warehouse,
        model: ModelConfig,
        start: dt.date,
        end: dt.date | None = None,
        columns: Sequence[str] | None = None,
    ) -> Snapshot:
        """The model's stored snapshot rows of [start, end], copied inside DuckDB (no Python copy).
        `columns` limits the copy to what the caller needs (the partition keys are always there)."""
        end = end or start
        snap = cls.open(model, start, end)
        wanted = (
            list(columns)
            if columns is not None
            else [*SNAPSHOT_BASE, *task_columns(model), *model.input_columns]
        )
        wanted = list(dict.fromkeys(["partition_date", *wanted]))
        types = snapshot_types(model)
        try:
            with warehouse.attached(snap.con, read_only=True) as alias:
                present = {
                    r[0]
                    for r in snap.con.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? "
                        "AND table_schema = 'monitoring' AND table_name = 'prediction_snapshots'",
                        [alias],
                    ).fetchall()
                }
                if not present:
                    select = ", ".join(f"CAST(NULL AS {types.get(c, 'VARCHAR')}) AS {_q(c)}" for c in wanted)
                    snap.con.execute(f"CREATE TABLE {DAY} AS SELECT {select} WHERE false")
                else:
                    select = ", ".join(
                        _q(c) if c in present else f"CAST(NULL AS {types.get(c, 'VARCHAR')}) AS {_q(c)}"
                        for c in wanted
                    )
                    snap.con.execute(
                        f"CREATE TABLE {DAY} AS SELECT {select} FROM {alias}.monitoring.prediction_snapshots "
                        "WHERE model_name = ? AND partition_date BETWEEN ? AND ?",
                        [model.name, start, end],
                    )
        except BaseException:
            snap.close()
            raise
        snap._define_champion()
        return snap

    def _define_day(self, validated: bool, files: Sequence[str] = ()) -> None:
        """`day`: the valid rows with their partition date (the UTC day of ts), in the snapshot's columns.
        A row's source_file is `files[i]` for its file index i (the high bits of __order, see
        storage.sources): a path repeated on every row would cost a hundred bytes a row in memory.
        `files` are the names a source gives them for the tables (SourceRead.names), never host paths."""
        if validated:
            names = "(CAST([" + ", ".join(_literal(f) for f in files) + "] AS VARCHAR[]))"
            self.con.execute(
                f"CREATE OR REPLACE VIEW {VALIDATED} AS SELECT *, "
                f"{names}[({ORDER_COLUMN} >> 40) + 1] AS source_file FROM {CHECKED}"
            )
        cols = [c for c in SNAPSHOT_BASE if c not in ("partition_date", "prediction", "source_file")]
        select = ", ".join(_q(c) for c in cols)
        extra = [*task_columns(self.model), *self.model.input_columns]
        inputs = ", ".join(_q(c) for c in extra)
        if not validated:  # the same columns, no rows: every metric sees an empty day
            types = snapshot_types(self.model)
            names = [*SNAPSHOT_BASE, *extra]
            select = ", ".join(f"CAST(NULL AS {types[c]}) AS {_q(c)}" for c in names)
            self.con.execute(f"CREATE OR REPLACE VIEW {DAY} AS SELECT {select} WHERE false")
            self._rows = 0
        else:
            # a regression model's logged decision may be any number: one that is no INTEGER is NULL
            cast = "TRY_CAST" if self.model.is_regression else "CAST"
            self.con.execute(
                f"CREATE OR REPLACE VIEW {DAY} AS SELECT partition_date, "
                f"{select}, CASE WHEN prediction = round(prediction) THEN {cast}(prediction AS INTEGER) END AS prediction, "
                f"source_file{', ' + inputs if inputs else ''} FROM {VALIDATED} WHERE reason IS NULL"
            )
        self._define_champion()

    def _define_champion(self) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW champion AS SELECT * FROM {DAY} WHERE {CHAMPION_OK_SQL}")

    def close(self) -> None:
        if self._writing is not None:  # never pull the database from under a write in progress
            with contextlib.suppress(BaseException):
                self._writing.result()
        try:
            self.con.close()
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def write(
        self,
        warehouse: Warehouse,
        validation: DayValidation,
        also: Sequence[tuple[str, Any, str, Any]] = (),
        background: bool = False,
    ) -> Future[None] | None:
        """Replace the model-day's prediction_snapshots, quarantined_predictions and validation_results
        (and the writes in `also`, e.g. the check results) in one warehouse transaction; the rows stream
        from this database into the warehouse's.

        With `background`, the write runs on a thread with a cursor of its own and the returned future
        settles when it is committed: the metrics of the day are computed from this database meanwhile,
        and the warehouse's lock makes any later write wait for this one."""
        if self.start != self.end:
            raise ValueError("write() stores one model-day; this snapshot spans several days")
        model, day = self.model, self.start
        warehouse.ensure_columns(
            "prediction_snapshots",
            {
                **task_columns(model),
                **dict.fromkeys(model.features.numeric, "DOUBLE"),
                **dict.fromkeys(model.string_columns, "VARCHAR"),
            },
        )
        where = "model_name = ? AND partition_date = ?"
        params = [model.name, day]
        keys = f"{_literal(model.name)} AS model_name, DATE '{day.isoformat()}' AS partition_date"
        snapshot_cols = [
            c for c in [*SNAPSHOT_BASE, *task_columns(model), *model.input_columns] if c != "partition_date"
        ]
        quarantine_cols = [
            c for c in columns_of("quarantined_predictions") if c not in ("model_name", "partition_date")
        ]
        if validation.usable:
            snapshot_rows = f"SELECT {keys}, {', '.join(_q(c) for c in snapshot_cols)} FROM {DAY}"
            quarantine_rows = f"SELECT {keys}, {', '.join(_q(c) for c in quarantine_cols)} FROM {VALIDATED} WHERE reason IS NOT NULL"
        else:  # nothing valid to keep: the day's old rows go, its results say why
            snapshot_rows = f"SELECT {keys} WHERE false"
            quarantine_rows = f"SELECT {keys} WHERE false"
        writes = [
            ("validation_results", validation.results, where, params),
            ("prediction_snapshots", snapshot_rows, where, params),
            ("quarantined_predictions", quarantine_rows, where, params),
            *also,
        ]
        if not background:
            warehouse.replace_from(self.con, writes)
            return None
        cursor = self.cursor()
        done: Future[None] = Future()

        def run() -> None:
            try:
                warehouse.replace_from(cursor, writes)
                done.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the write
                done.set_exception(exc)
            finally:
                cursor.close()

        self._writing = done
        threading.Thread(target=run, name=f"write-{model.name}-{day}", daemon=True).start()
        return done

    # ------------------------------------------------------------------ what is here
    @property
    def rows(self) -> int:
        """Valid rows (both roles, both statuses)."""
        if self._rows is None:
            self._rows = int(self.con.execute(f"SELECT count(*) FROM {DAY}").fetchall()[0][0])
        return self._rows

    def has_role(self, role: str) -> bool:
        row = self.con.execute(f"SELECT count(*) FROM {DAY} WHERE role = ?", [role]).fetchall()[0]
        return bool(row and row[0])

    def days(self) -> list[dt.date]:
        return [
            r[0] for r in self.con.execute(f"SELECT DISTINCT partition_date FROM {DAY} ORDER BY 1").fetchall()
        ]

    def frame(self, relation: str = DAY, where: str = "", order: str = "") -> pd.DataFrame:
        """A relation as pandas (tests and small results only)."""
        sql = f"SELECT * FROM {relation}"
        sql += f" WHERE {where}" if where else ""
        sql += f" ORDER BY {order}" if order else ""
        return self.con.execute(sql).df()

    def head(self, n: int) -> pd.DataFrame:
        """The first `n` valid rows (by ts), for a preview."""
        return self.con.execute(f"SELECT * FROM {DAY} ORDER BY ts, prediction_id LIMIT {int(n)}").df()

    def column_types(self) -> dict[str, str]:
        rel = self.con.sql(f"SELECT * FROM {DAY} LIMIT 0")
        return {name: str(kind) for name, kind in zip(rel.columns, rel.types, strict=True)}

    def quarantine_frame(self) -> pd.DataFrame:
        cols = [c for c in columns_of("quarantined_predictions") if c not in ("model_name", "partition_date")]
        if not self._has_table(CHECKED):
            return pd.DataFrame(columns=cols)
        return self.con.execute(
            f"SELECT {', '.join(_q(c) for c in cols)} FROM {VALIDATED} WHERE reason IS NOT NULL ORDER BY {ORDER_COLUMN}"
        ).df()

    def _has_table(self, name: str) -> bool:
        return bool(
            self.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[
                0
            ][0]
        )

    # ------------------------------------------------------------------ labels and outcomes
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to this snapshot's database, for another thread (the caller closes it)."""
        catalog = self.con.execute("SELECT current_database()").fetchall()[0][0]
        cursor = self.con.cursor()
        cursor.execute(
            f"USE {_q(catalog)}"
        )  # a cursor starts in the default catalog, not the file-backed one
        return cursor

    def load_labels(self, source: Source, arrived_from: dt.date, arrived_to: dt.date) -> int:
        """`labels`: the latest usable label (0/1, the observed value, or the observed class's index) of
        each of this snapshot's requests that arrived in the window (semi-joined with the requests here, so a large label folder is filtered while it is read).
        The label rows of these requests that cannot be used are kept in `label_quarantine`
        (see quarantined_labels) and counted in `label_counts`."""
        if self._labels == (arrived_from, arrived_to):
            return self._count("labels")
        self._create_labels(self.con, source.load_labels(self.con, self.model, arrived_from, arrived_to))
        self._labels = (arrived_from, arrived_to)
        return self._count("labels")

    def _create_labels(self, con: duckdb.DuckDBPyConnection, raw: str) -> None:
        # Only the champion's requests: every metric and every shadow pair reads labels through them.
        # Rows without a request_id belong to no request: only counted.
        requests = f"request_id IN (SELECT request_id FROM {DAY} WHERE role = '{CHAMPION}')"
        groups = label_groups_sql(self.model).format(raw=raw, where=f"request_id IS NULL OR {requests}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE __label_groups AS {groups}")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE labels AS SELECT request_id, label, label_ts FROM __label_groups "
            "WHERE request_id IS NOT NULL AND label IS NOT NULL"
        )
        used, invalid, untimed, anonymous = con.execute(
            "SELECT count(*) FILTER (WHERE request_id IS NOT NULL AND label IS NOT NULL), "
            "coalesce(sum(invalid_labels) FILTER (WHERE request_id IS NOT NULL), 0), "
            "coalesce(sum(labels_without_label_ts) FILTER (WHERE request_id IS NOT NULL), 0), "
            "coalesce(sum(invalid_labels) FILTER (WHERE request_id IS NULL), 0) FROM __label_groups"
        ).fetchall()[0]
        # The rows of the label quarantine are read again only when there are some (rare): one pass otherwise.
        where = "false"
        if invalid:
            where = "request_id IN (SELECT request_id FROM __label_groups WHERE invalid_labels > 0)"
        con.execute(
            "CREATE OR REPLACE TEMP TABLE label_quarantine AS "
            + label_quarantine_sql(self.model).format(raw=raw, where=where)
        )
        con.execute("DROP TABLE __label_groups")
        self.label_counts = {
            "labelled_requests": int(used),
            "invalid_labels": int(invalid),
            "labels_without_label_ts": int(untimed),
            "labels_without_request_id": int(anonymous),
        }
        if invalid or anonymous:
            log.warning(
                "%s %s: %d label row(s) of its requests not used (kept in quarantined_labels: %s), "
                "%d label row(s) without a request_id in the label window",
                self.model.name,
                self.start if self.start == self.end else f"{self.start}..{self.end}",
                invalid,
                self._label_reasons() or "none",
                anonymous,
            )

    def _label_reasons(self) -> str:
        pairs = self.con.execute(
            "SELECT reason, count(*) FROM label_quarantine GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        return ", ".join(f"{reason}: {n}" for reason, n in pairs)

    def quarantined_labels(self) -> pd.DataFrame:
        """The label rows of this snapshot's requests that were not used, as read, with the reason and
        their file: `quarantined_labels` without the model-day keys (the caller adds them). Empty until
        labels are loaded."""
        cols = result_columns("quarantined_labels")
        if self._labels is None or not self._has_table("label_quarantine"):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        return self.con.execute(f"SELECT {', '.join(_q(c) for c in cols)} FROM label_quarantine").df()

    def set_labels(self, labels: pd.DataFrame) -> None:
        """Labels given as a frame (request_id, label[, label_ts]); tests and callers with their own."""
        frame = labels.copy()
        if "label_ts" not in frame.columns:
            frame["label_ts"] = pd.NaT
        frame["__order"] = np.arange(len(frame), dtype=np.int64)  # input order breaks ties
        self.con.register("__labels_frame", frame[["request_id", "label", "label_ts", "__order"]])
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW __labels_given AS SELECT CAST(request_id AS VARCHAR) AS request_id, "
            "CAST(label AS VARCHAR) AS label, CAST(label_ts AS VARCHAR) AS label_ts, __order, "
            f"'<frame>' AS {FILE_COLUMN} FROM __labels_frame"
        )
        self._create_labels(self.con, "__labels_given")
        self._labels = (dt.date.min, dt.date.min)

    def load_outcomes(self, source: Source, start: dt.date, end: dt.date) -> int:
        """`outcomes`: outcome rows of this snapshot's requests recorded in [start, end], the latest per
        request and outcome name."""
        if self._outcomes == (start, end):
            return self._count("outcomes")
        raw = source.load_outcomes(self.con, self.model, start, end)
        self._create_outcomes(raw, self.con)
        self._outcomes = (start, end)
        return self._count("outcomes")

    def set_outcomes(self, outcomes: pd.DataFrame) -> None:
        frame = outcomes.copy()
        if "ts" not in frame.columns:
            frame["ts"] = pd.NaT
        frame["__order"] = np.arange(len(frame), dtype=np.int64)  # input order breaks ties
        self.con.register("__outcomes_frame", frame[["request_id", "outcome", "value", "ts", "__order"]])
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW __outcomes_given AS SELECT CAST(request_id AS VARCHAR) AS request_id, "
            "CAST(outcome AS VARCHAR) AS outcome, CAST(value AS VARCHAR) AS value, CAST(ts AS VARCHAR) AS ts, "
            "__order FROM __outcomes_frame"
        )
        self._create_outcomes("__outcomes_given", self.con)
        self._outcomes = (dt.date.min, dt.date.min)

    def _create_outcomes(self, raw: str, con: duckdb.DuckDBPyConnection) -> None:
        names = ", ".join(_literal(n) for n in self.model.outcomes) or "NULL"
        where = (
            f"outcome IN ({names}) AND request_id IN (SELECT request_id FROM {DAY} WHERE role = '{CHAMPION}')"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE outcomes AS SELECT request_id, outcome, "
            "arg_max(value, (coalesce(ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'), __order)) AS value, max(ts) AS ts "
            f"FROM ({OUTCOMES_SQL.format(raw=raw, where=where)}) GROUP BY request_id, outcome"
        )

    def _count(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    def _labels_join(self) -> str:
        if self._labels is None:
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE labels AS SELECT CAST(NULL AS VARCHAR) AS request_id, "
                "CAST(NULL AS DOUBLE) AS label, CAST(NULL AS TIMESTAMPTZ) AS label_ts WHERE false"
            )
            self._labels = (dt.date.min, dt.date.min)
        return "LEFT JOIN labels l USING (request_id)"

    # ------------------------------------------------------------------ inputs of the metrics
    def champion_rows(self, day: dt.date | None = None) -> int:
        where = "" if day is None else f" WHERE partition_date = DATE '{day.isoformat()}'"
        return int(self.con.execute(f"SELECT count(*) FROM champion{where}").fetchall()[0][0])

    def columns(self, day: dt.date | None = None) -> SnapshotColumns:
        """The champion's `ok` rows as the column source drift statistics and profiles read from."""
        return SnapshotColumns(self.con, "champion", day)

    def scored(self, extra: Sequence[str] = (), day: dt.date | None = None) -> pd.DataFrame:
        """The champion's `ok` rows with their label (NaN until it lands): score, prediction, label, for a
        multiclass model its `score__<class>` columns (the probability matrix; prediction and label are
        class indexes), and the `extra` columns, in a canonical order (by a hash of the unique prediction_id: cheap to sort, the same
        in every run) so bootstraps repeat exactly. Rows are
        all of them; the metric decides which are usable. Kept for the run: performance and subgroups
        ask for the same rows."""
        key = (tuple(extra), day, self._labels)
        if key not in self._scored:
            labels = self._labels_join()
            key = (tuple(extra), day, self._labels)
            probabilities = self.model.probability_columns  # multiclass: the probability matrix
            cols = [
                "score",
                "CAST(prediction AS DOUBLE) AS prediction",
                "l.label AS label",
                *(_q(c) for c in probabilities),
                *(_q(c) for c in extra if c not in probabilities),
            ]
            where = "" if day is None else f"WHERE partition_date = DATE '{day.isoformat()}'"
            sql = f"SELECT {', '.join(cols)} FROM champion {labels} {where} ORDER BY hash(prediction_id)"
            table = _low_cardinality(self.con.sql(sql).to_arrow_table())
            # column by column, each Arrow buffer freed once converted: the day is never held twice
            self._scored[key] = table.to_pandas(split_blocks=True, self_destruct=True)
            del table
        return self._scored[key]

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.con.execute(sql, list(params or [])).to_arrow_table()

    def serving(self, day: dt.date | None = None) -> pd.DataFrame:
        """serving_metrics rows of every valid row (both roles, both statuses): per role and version and one
        model-wide row (`__all__`). Latency percentiles interpolate linearly (as numpy); peak requests per
        hour is the busiest UTC clock hour. Requests without a latency are counted but not in percentiles."""
        from monitoring_pipelines.schema import ALL

        where = "" if day is None else f"WHERE partition_date = DATE '{day.isoformat()}'"
        sql = f"""
        WITH base AS (
            SELECT coalesce(role, 'champion') AS role, coalesce(model_version, 'unknown') AS model_version,
                   latency_ms, status = 'error' AS is_error, date_trunc('hour', timezone('UTC', ts)) AS hour
            FROM {DAY} {where}
        ),
        grouped AS (
            SELECT coalesce(role, '{ALL}') AS role, coalesce(model_version, '{ALL}') AS model_version,
                   count(*) AS requests, count(*) FILTER (WHERE is_error) AS errors, grouping(role) AS g
            FROM base GROUP BY GROUPING SETS ((role, model_version), ())
        ),
        hourly AS (
            SELECT role, model_version, max(n) AS peak FROM (
                SELECT coalesce(role, '{ALL}') AS role, coalesce(model_version, '{ALL}') AS model_version, hour,
                       count(*) AS n
                FROM base WHERE hour IS NOT NULL GROUP BY GROUPING SETS ((role, model_version, hour), (hour))
            ) GROUP BY 1, 2
        )
        SELECT g.role, g.model_version, requests,
               CAST(h.peak AS DOUBLE) AS peak_requests_per_hour, errors / requests AS error_rate, errors
        FROM grouped g LEFT JOIN hourly h USING (role, model_version)
        WHERE requests > 0
        ORDER BY g.g, g.role, g.model_version
        """
        frame = self.con.execute(sql).df()
        percentiles = self._latency_percentiles(where)
        keys = zip(frame["role"], frame["model_version"], strict=True)
        values = np.array([percentiles.get(k, (np.nan,) * 3) for k in keys], dtype=np.float64).reshape(-1, 3)
        for j, column in enumerate(LATENCY_PERCENTILES):
            frame[column] = values[:, j]
        order = ["role", "model_version", *LATENCY_PERCENTILES, "requests", "peak_requests_per_hour"]
        return frame[[*order, "error_rate", "errors"]]

    def _latency_percentiles(self, where: str) -> dict[tuple[str, str], tuple[float, float, float]]:
        """p50/p95/p99 per (role, version) and model-wide, linearly interpolated (numpy's default, as
        DuckDB's quantile_cont). Computed in numpy from one group's latencies at a time: an exact
        quantile in SQL keeps every value of every grouping set in memory at once, which a 10M-row day's
        snapshot buffer cannot hold."""
        from monitoring_pipelines.schema import ALL

        base = (
            f"SELECT coalesce(role, 'champion') AS role, coalesce(model_version, 'unknown') AS model_version, "
            f"latency_ms FROM {DAY} {where}"
        )
        keys = self.con.execute(f"SELECT DISTINCT role, model_version FROM ({base})").fetchall()
        out: dict[tuple[str, str], tuple[float, float, float]] = {}
        parts = []
        for role, version in keys:
            values = self.con.execute(
                f"SELECT latency_ms FROM ({base}) WHERE role = ? AND model_version = ? AND latency_ms IS NOT NULL",
                [role, version],
            ).fetchnumpy()["latency_ms"]
            values = np.asarray(values, dtype=np.float64)
            parts.append(values)
            out[(role, version)] = _quantiles(values)
        out[(ALL, ALL)] = (
            _quantiles(np.concatenate(parts)) if len(parts) > 1 else out[keys[0]] if keys else (np.nan,) * 3
        )
        return out

    def outcome_totals(self, names: Sequence[str], day: dt.date | None = None) -> tuple[pd.DataFrame, int]:
        """Per configured outcome name over the champion's requests of the day: n, mean, sd, total and
        whether every value is 0/1 (a rate); and the number of distinct requests."""
        where = "" if day is None else f" AND partition_date = DATE '{day.isoformat()}'"
        requests = int(
            self.con.execute(
                f"SELECT count(DISTINCT request_id) FROM champion WHERE request_id IS NOT NULL{where}"
            ).fetchall()[0][0]
        )
        if self._outcomes is None or not names:
            return pd.DataFrame(columns=["outcome", "n", "mean", "sd", "total", "binary"]), requests
        frame = self.con.execute(
            f"""
            SELECT o.outcome, count(*) AS n, avg(o.value) AS mean, stddev_samp(o.value) AS sd, sum(o.value) AS total,
                   bool_and(o.value IN (0, 1)) AS binary
            FROM outcomes o
            WHERE o.outcome IN (SELECT unnest(?)) AND o.request_id IN (
                SELECT request_id FROM champion WHERE true{where})
            GROUP BY o.outcome
            """,
            [list(names)],
        ).df()
        return frame, requests

    def shadow_pairs(
        self, segments: Sequence[str] = (), day: dt.date | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The champion's and each shadow version's rows of the same request, paired by a hash join.

        Returns (paired, coverage), the shapes core.shadow expects. Each side keeps one row per request
        (per version for shadows): the earliest by ts. `paired`: request_id, champion_version,
        shadow_version, champion_/shadow_ score, prediction, status, latency_ms, the segments (champion
        side) and the label. `coverage`: per champion/shadow pair the requests on each side, the unmatched
        ones, the duplicate rows dropped and paired / requests seen by either; a shadow-only request is
        charged to the day's main champion version.
        """
        labels = self._labels_join()
        where = "" if day is None else f"AND partition_date = DATE '{day.isoformat()}'"
        seg = "".join(f", {_q(s)}" for s in segments)
        side = f"role, CASE WHEN role = '{SHADOW}' THEN model_version END, request_id"
        sides = f"{DAY} WHERE role IN ('{CHAMPION}', '{SHADOW}') {where}"
        repeated = self.con.execute(
            f"SELECT count(*) FROM (SELECT {side} FROM {sides} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        # Ranking every row within its request costs a sort; a day without repeated requests needs none.
        rank = f"row_number() OVER (PARTITION BY {side} ORDER BY ts, prediction_id)" if repeated else "1"
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE __sides AS
            SELECT role, partition_date, request_id, prediction_id, ts, model_version, score,
                   CAST(prediction AS DOUBLE) AS prediction,
                   coalesce(status, '{OK}') AS status, latency_ms{seg}, {rank} AS k
            FROM {sides}
            """
        )
        champion_cols = ", ".join(
            [f"c.{c} AS champion_{c}" for c in ("score", "prediction", "status", "latency_ms")]
            + [f"c.{_q(s)}" for s in segments]
        )
        shadow_cols = ", ".join(
            f"s.{c} AS shadow_{c}" for c in ("score", "prediction", "status", "latency_ms")
        )
        table = self.con.sql(
            f"""
            SELECT c.request_id, c.partition_date, c.model_version AS champion_version, s.model_version AS shadow_version,
                   {champion_cols}, {shadow_cols}, l.label AS label
            FROM (SELECT * FROM __sides WHERE role = '{CHAMPION}' AND k = 1) c
            JOIN (SELECT * FROM __sides WHERE role = '{SHADOW}' AND k = 1) s USING (request_id)
            {labels.replace("USING (request_id)", "ON l.request_id = c.request_id")}
            ORDER BY hash(c.prediction_id), s.model_version
            """
        ).to_arrow_table()
        paired = _low_cardinality(table, keep=("request_id",)).to_pandas(date_as_object=False)
        coverage = self._coverage()
        for column in segments:
            if column in paired.columns:
                paired[column] = paired[column].astype(object)
        return paired, coverage

    def _coverage(self) -> pd.DataFrame:
        """Pairing counts per champion/shadow version pair (see shadow_pairs), from four small aggregates."""
        champion = f"SELECT request_id, model_version FROM __sides WHERE role = '{CHAMPION}' AND k = 1"
        shadows = f"SELECT request_id, model_version FROM __sides WHERE role = '{SHADOW}' AND k = 1"
        paired = self.con.execute(
            f"SELECT c.model_version AS champion_version, s.model_version AS shadow_version, count(*) AS paired "
            f"FROM ({champion}) c JOIN ({shadows}) s USING (request_id) GROUP BY ALL"
        ).df()
        per_champion = self.con.execute(
            f"SELECT model_version, count(*) AS n FROM ({champion}) GROUP BY 1"
        ).df()
        alone = self.con.execute(
            f"SELECT s.model_version, count(*) FILTER (WHERE c.request_id IS NULL) AS n "
            f"FROM ({shadows}) s LEFT JOIN ({champion}) c USING (request_id) GROUP BY 1"
        ).df()
        dups = self.con.execute(
            "SELECT role, model_version, count(*) AS n FROM __sides WHERE k > 1 GROUP BY ALL"
        ).df()
        champion_counts = dict(zip(per_champion["model_version"], per_champion["n"].astype(int), strict=True))
        shadow_only = dict(zip(alone["model_version"], alone["n"].astype(int), strict=True))
        pairs = {(r.champion_version, r.shadow_version): int(r.paired) for r in paired.itertuples()}
        champion_dups = int(dups.loc[dups["role"] == CHAMPION, "n"].sum()) if len(dups) else 0
        shadow_dups = (
            dups[dups["role"] == SHADOW].groupby("model_version")["n"].sum().to_dict() if len(dups) else {}
        )
        # The day's main champion version (the most requests; ties to the first name) gets the shadow-only ones.
        main = min(champion_counts, key=lambda v: (-champion_counts[v], v)) if champion_counts else ""
        rows = []
        for version in sorted(shadow_only):
            for champion_version in sorted(set(champion_counts) | {main}):
                n_paired = pairs.get((champion_version, version), 0)
                n_champion = champion_counts.get(champion_version, 0)
                only = shadow_only[version] if champion_version == main else 0
                union = n_champion + only
                rows.append(
                    {
                        "champion_version": champion_version,
                        "shadow_version": version,
                        "champion_requests": n_champion,
                        "shadow_requests": n_paired + only,
                        "paired": n_paired,
                        "champion_only": n_champion - n_paired,
                        "shadow_only": only,
                        "duplicate_rows": champion_dups + int(shadow_dups.get(version, 0)),
                        "coverage": n_paired / union if union else float("nan"),
                    }
                )
        columns = ["champion_version", "shadow_version", "champion_requests", "shadow_requests", "paired"]
        columns += ["champion_only", "shadow_only", "duplicate_rows", "coverage"]
        return pd.DataFrame(rows, columns=columns)


class SnapshotColumns:
    """The drift statistics' column source (core.profiles.Columns) over a relation of the snapshot:
    one column fetched at a time, numeric values sorted, categories counted in SQL. Safe to call from
    several threads: each call queries through a cursor of its own (DuckDB runs them side by side and
    numpy sorts without the GIL), so the drift workers fetch and sort in parallel."""

    parallel_extract = True

    def __init__(self, con: duckdb.DuckDBPyConnection, relation: str, day: dt.date | None = None) -> None:
        self.con = con
        self.catalog = con.execute("SELECT current_database()").fetchall()[0][0]
        self.where = "" if day is None else f"partition_date = DATE '{day.isoformat()}'"
        self.relation = relation
        self.present = set(con.sql(f"SELECT * FROM {relation} LIMIT 0").columns)
        self.n_rows = int(con.execute(f"SELECT count(*) FROM {relation}{self._where()}").fetchall()[0][0])

    def has(self, column: str) -> bool:
        return column in self.present

    def _where(self, extra: str = "") -> str:
        parts = [p for p in (self.where, extra) if p]
        return (" WHERE " + " AND ".join(parts)) if parts else ""

    def _check(self, column: str) -> str:
        if column not in self.present:
            raise KeyError(f"the current day has no column {column!r}")
        return _q(column)

    def numeric(self, column: str) -> tuple[np.ndarray, int]:
        q = self._check(column)
        sql = f"SELECT CAST({q} AS DOUBLE) AS v FROM {self.relation}{self._where(f'isfinite(CAST({q} AS DOUBLE))')}"
        with self._cursor() as cursor:
            values = np.asarray(cursor.execute(sql).fetchnumpy()["v"], dtype=np.float64)
        values.sort()
        return values, self.n_rows

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self.con.cursor()
        try:
            cursor.execute(f"USE {_q(self.catalog)}")  # a cursor starts in the default catalog
            yield cursor
        finally:
            cursor.close()

    def categorical(self, column: str) -> tuple[dict[str, int], int]:
        q = self._check(column)
        with self._cursor() as cursor:
            pairs = cursor.execute(
                f"SELECT {q} AS v, count(*) FROM {self.relation}{self._where(f'{q} IS NOT NULL')} GROUP BY 1"
            ).fetchall()
        counts: dict[str, int] = {}
        for value, n in pairs:
            if isinstance(value, float) and np.isnan(value):
                continue  # a NaN in a DOUBLE column is missing, as in pandas
            key = category_key(value)
            counts[key] = counts.get(key, 0) + int(n)
        return counts, self.n_rows


def _low_cardinality(table: pa.Table, keep: Sequence[str] = ()) -> pa.Table:
    """Text columns (segments, versions, statuses) as dictionaries, so pandas gets categoricals: a few
    distinct values over millions of rows, where Python strings would take gigabytes. `keep`: columns
    of distinct values (ids) left as text."""
    for i, field in enumerate(table.schema):
        if field.name not in keep and (
            pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        ):
            table = table.set_column(i, field.name, pc.dictionary_encode(table.column(i)))
    return table


LATENCY_PERCENTILES = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")


def _quantiles(values: np.ndarray) -> tuple[float, float, float]:
    if not values.size:
        return (np.nan, np.nan, np.nan)
    p50, p95, p99 = np.quantile(values, [0.5, 0.95, 0.99])
    return (float(p50), float(p95), float(p99))


def _source_bytes(source: Source, model: ModelConfig, start: dt.date, end: dt.date) -> int:
    files = getattr(source, "_files", None)
    if files is None:
        return 0
    return sum(p.stat().st_size for p in files(model.name, "predictions", start, end))


def _empty_results() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns_of("validation_results")})


def label_lookahead_days(model: ModelConfig) -> int:
    """How many days after a prediction day we look for its labels: twice the promised delay, at
    least two weeks, so stragglers still count without scanning the whole label history."""
    return max(2 * model.label_delay_days, 14)


def label_window(
    model: ModelConfig, start: dt.date, end: dt.date, today: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """The arrival days whose label (and outcome) folders can hold labels of predictions of [start, end]
    that are known by `today` (default: the current UTC date)."""
    today = today or dt.datetime.now(dt.UTC).date()
    arrived_to = max(start, min(today, end + dt.timedelta(days=label_lookahead_days(model))))
    return start, arrived_to
