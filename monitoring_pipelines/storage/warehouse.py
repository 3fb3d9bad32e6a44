"""The DuckDB warehouse: schema `monitoring`, partition replace in one transaction, short-lived writers.

DuckDB allows one writing process per file. Dagster serializes our writer steps with the
`duckdb_warehouse` pool; inside a process a file lock makes every connection (reader or writer)
wait its turn instead of failing, and connections are held only for the write itself, never
during compute.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from monitoring_pipelines.config import IDENTIFIER

SCHEMA = "monitoring"

# Base columns of every table. prediction_snapshots also gets one column per feature/segment of the
# configured models (added by `ensure_columns`); a quarantined row keeps all its original values,
# typed or not, in `raw` (JSON), since a rejected value may not fit the column's type.
TABLES: dict[str, dict[str, str]] = {
    "prediction_snapshots": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "prediction_id": "VARCHAR NOT NULL",
        "request_id": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "role": "VARCHAR NOT NULL",
        "ts": "TIMESTAMPTZ NOT NULL",
        "score": "DOUBLE",
        "prediction": "INTEGER",
        "latency_ms": "DOUBLE",
        "status": "VARCHAR NOT NULL",
        "source_file": "VARCHAR",
    },
    "quarantined_predictions": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "prediction_id": "VARCHAR",
        "request_id": "VARCHAR",
        "model_version": "VARCHAR",
        "role": "VARCHAR",
        "ts": "TIMESTAMPTZ",
        "score": "DOUBLE",
        "prediction": "DOUBLE",
        "latency_ms": "DOUBLE",
        "status": "VARCHAR",
        "reason": "VARCHAR NOT NULL",
        "source_file": "VARCHAR",
        "raw": "VARCHAR",
    },
    "validation_results": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "expectation": "VARCHAR NOT NULL",
        "column_name": "VARCHAR",
        "success": "BOOLEAN NOT NULL",
        "unexpected_count": "BIGINT",
        "element_count": "BIGINT",
        "unexpected_percent": "DOUBLE",
        "blocking": "BOOLEAN",
        "details": "VARCHAR",
    },
    "reference_profiles": {
        "model_name": "VARCHAR NOT NULL",
        "profile_version": "VARCHAR NOT NULL",
        "feature": "VARCHAR NOT NULL",
        "kind": "VARCHAR NOT NULL",
        "profile": "JSON",
        "n": "BIGINT",
        "reference_start": "DATE",
        "reference_end": "DATE",
        "created_at": "TIMESTAMPTZ",
    },
    "reference_baselines": {
        "model_name": "VARCHAR NOT NULL",
        "profile_version": "VARCHAR NOT NULL",
        "domain": "VARCHAR NOT NULL",
        "feature": "VARCHAR",
        "statistic": "VARCHAR",
        "segment": "VARCHAR",
        "segment_value": "VARCHAR",
        "metric": "VARCHAR",
        "estimated": "BOOLEAN",
        "mean": "DOUBLE",
        "std": "DOUBLE",
        "n_days": "BIGINT",
    },
    "drift_scores": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "feature": "VARCHAR NOT NULL",
        "kind": "VARCHAR",
        "statistic": "VARCHAR NOT NULL",
        "value": "DOUBLE",
        "reference_value": "DOUBLE",
        "p_value": "DOUBLE",
        "p_value_adjusted": "DOUBLE",
        "threshold": "DOUBLE",
        "threshold_critical": "DOUBLE",
        "threshold_source": "VARCHAR",
        "drifted": "BOOLEAN",
        "severity": "VARCHAR",
        "error_bound": "DOUBLE",
        "n_reference": "BIGINT",
        "n_current": "BIGINT",
        "profile_version": "VARCHAR",
    },
    "performance_metrics": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "metric": "VARCHAR NOT NULL",
        "value": "DOUBLE",
        "ci_low": "DOUBLE",
        "ci_high": "DOUBLE",
        "n": "BIGINT",
        "labelled_fraction": "DOUBLE",
        "estimated": "BOOLEAN NOT NULL",
    },
    "subgroup_metrics": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "segment": "VARCHAR NOT NULL",
        "segment_value": "VARCHAR NOT NULL",
        "metric": "VARCHAR NOT NULL",
        "value": "DOUBLE",
        "ci_low": "DOUBLE",
        "ci_high": "DOUBLE",
        "n": "BIGINT",
        "rows": "BIGINT",
        "labelled": "BIGINT",
        "gap": "DOUBLE",
        "ratio": "DOUBLE",
    },
    "shadow_comparisons": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "champion_version": "VARCHAR NOT NULL",
        "shadow_version": "VARCHAR NOT NULL",
        "segment": "VARCHAR NOT NULL",
        "segment_value": "VARCHAR NOT NULL",
        "metric": "VARCHAR NOT NULL",
        "champion_value": "DOUBLE",
        "shadow_value": "DOUBLE",
        "delta": "DOUBLE",
        "ci_low": "DOUBLE",
        "ci_high": "DOUBLE",
        "p_value": "DOUBLE",
        "n": "BIGINT",
        "value": "DOUBLE",
    },
    "shadow_recommendations": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "champion_version": "VARCHAR NOT NULL",
        "shadow_version": "VARCHAR NOT NULL",
        "verdict": "VARCHAR NOT NULL",
        "primary_metric": "VARCHAR",
        "delta": "DOUBLE",
        "ci_low": "DOUBLE",
        "ci_high": "DOUBLE",
        "p_value": "DOUBLE",
        "days_pooled": "BIGINT",
        "days_needed": "DOUBLE",
        "n": "BIGINT",
        "harmed_segments": "JSON",
        "slo_breaches": "JSON",
        "reasons": "JSON",
    },
    "serving_metrics": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "role": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "latency_p50_ms": "DOUBLE",
        "latency_p95_ms": "DOUBLE",
        "latency_p99_ms": "DOUBLE",
        "requests": "BIGINT",
        "peak_requests_per_hour": "BIGINT",
        "error_rate": "DOUBLE",
        "errors": "BIGINT",
    },
    "check_results": {
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "asset": "VARCHAR NOT NULL",
        "check_name": "VARCHAR NOT NULL",
        "passed": "BOOLEAN NOT NULL",
        "severity": "VARCHAR",
        "findings": "JSON",
        "run_id": "VARCHAR",
        "evaluated_at": "TIMESTAMPTZ",
    },
    "alerts": {
        "alert_id": "VARCHAR NOT NULL",
        "model_name": "VARCHAR NOT NULL",
        "partition_date": "DATE NOT NULL",
        "first_seen_date": "DATE",
        "last_seen_date": "DATE",
        "check_name": "VARCHAR NOT NULL",
        "asset": "VARCHAR",
        "metric": "VARCHAR",
        "subject": "VARCHAR",
        "severity": "VARCHAR NOT NULL",
        "initial_severity": "VARCHAR",
        "value": "DOUBLE",
        "threshold": "DOUBLE",
        "message": "VARCHAR",
        "status": "VARCHAR NOT NULL",
        "dedup_key": "VARCHAR NOT NULL",
        "run_id": "VARCHAR",
        "consecutive_days": "INTEGER",
        "passing_days": "INTEGER",
        "notified": "BOOLEAN",
        "evidence": "JSON",
        "created_at": "TIMESTAMPTZ",
        "updated_at": "TIMESTAMPTZ",
        "acknowledged_at": "TIMESTAMPTZ",
        "resolved_at": "TIMESTAMPTZ",
        "detected_date": "DATE",
        "escalated_date": "DATE",
        "resolved_date": "DATE",
        "resolved_by": "VARCHAR",
        "notified_severity": "VARCHAR",
        "notified_at": "TIMESTAMPTZ",
        "failing_days": "INTEGER",
    },
    "notifications": {
        "notification_id": "VARCHAR NOT NULL",
        "channel": "VARCHAR NOT NULL",
        "kind": "VARCHAR NOT NULL",
        "severity": "VARCHAR",
        "model_name": "VARCHAR",
        "dedup_key": "VARCHAR",
        "alert_ids": "VARCHAR[]",
        "payload": "JSON",
        "status": "VARCHAR NOT NULL",
        "attempts": "INTEGER NOT NULL",
        "next_attempt_at": "TIMESTAMPTZ",
        "last_error": "VARCHAR",
        "created_at": "TIMESTAMPTZ",
        "delivered_at": "TIMESTAMPTZ",
    },
    "backlog_items": {
        "item_id": "VARCHAR NOT NULL",
        "title": "VARCHAR NOT NULL",
        "severity": "VARCHAR NOT NULL",
        "model_name": "VARCHAR NOT NULL",
        "status": "VARCHAR NOT NULL",
        "dedup_key": "VARCHAR",
        "alert_ids": "VARCHAR[]",
        "asset_keys": "VARCHAR[]",
        "partitions": "VARCHAR[]",
        "run_ids": "VARCHAR[]",
        "evidence": "JSON",
        "links": "JSON",
        "reported_by": "VARCHAR",
        "created_at": "TIMESTAMPTZ",
        "updated_at": "TIMESTAMPTZ",
        "resolved_at": "TIMESTAMPTZ",
        "external_ref": "VARCHAR",
    },
    "monitoring_kpis": {
        "computed_at": "TIMESTAMPTZ NOT NULL",
        "mean_time_to_detect_days": "DOUBLE",
        "mean_time_to_acknowledge_hours": "DOUBLE",
        "mean_time_to_resolve_days": "DOUBLE",
        "alerts_per_model_week": "DOUBLE",
        "detected_alerts_per_model_week": "DOUBLE",
        "share_alerts_acknowledged": "DOUBLE",
        "share_findings_with_backlog_item": "DOUBLE",
        "share_incidents_detected_by_monitoring_first": "DOUBLE",
        "alerts": "BIGINT",
        "open_alerts": "BIGINT",
        "incidents": "BIGINT",
        "open_incidents": "BIGINT",
        "model_weeks": "BIGINT",
    },
    "alert_volume_weekly": {
        "model_name": "VARCHAR NOT NULL",
        "week": "DATE NOT NULL",
        "alerts": "BIGINT",
        "detected": "BIGINT",
        "notified": "BIGINT",
        "critical": "BIGINT",
        "warning": "BIGINT",
        "info": "BIGINT",
    },
}

PARTITIONED_TABLES = frozenset(
    {
        "prediction_snapshots",
        "quarantined_predictions",
        "validation_results",
        "drift_scores",
        "performance_metrics",
        "subgroup_metrics",
        "shadow_comparisons",
        "shadow_recommendations",
        "serving_metrics",
    }
)


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

    def __init__(self, path: str | Path, lock_timeout_s: float = 600.0) -> None:
        self.path = Path(path).resolve()
        self.lock_timeout_s = lock_timeout_s
        self._schema_ready = False

    # ------------------------------------------------------------------ connections
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        deadline = time.monotonic() + self.lock_timeout_s
        with open(lock_path, "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"waited {self.lock_timeout_s:.0f}s for {lock_path}") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, serialized with every other user of the file on this machine.

        Another process holding the file (an analyst's session, say) makes DuckDB refuse the
        open; we retry for a while with backoff instead of failing the run at once.
        """
        with self._file_lock():
            if read_only and not self.path.exists():
                read_only = False
            delay = 0.05
            deadline = time.monotonic() + self.lock_timeout_s
            while True:
                try:
                    con = duckdb.connect(str(self.path), read_only=read_only)
                    break
                except duckdb.IOException as exc:
                    if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
            try:
                if not self._schema_ready and not read_only:
                    _create_schema(con)
                    self._schema_ready = True
                yield con
            finally:
                con.close()

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
            if not _schema_exists(con):
                return pd.DataFrame(columns=list(TABLES[table]))
            return con.execute(f"SELECT * FROM {qualified(table)}{clause}", list(params or [])).df()

    def export_parquet(
        self, sql: str, params: Sequence[Any], path: str | Path, batch_rows: int = 500_000
    ) -> int:
        """Stream a query's result to a Parquet file in batches: a large day leaves the warehouse without
        ever being whole in Python memory, and the lock is held only for the copy."""
        import pyarrow.parquet as pq

        written = 0
        with self.connect(read_only=True) as con:
            relation = con.sql(sql, params=list(params))
            # DuckDB 2 renamed the relation's record-batch reader to to_arrow_reader.
            stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            reader = stream(batch_rows)
            with pq.ParquetWriter(str(path), reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    written += batch.num_rows
        return written

    def partition(self, table: str, model_name: str, partition_date: dt.date) -> pd.DataFrame:
        return self.table(table, "model_name = ? AND partition_date = ?", [model_name, partition_date])

    # ------------------------------------------------------------------ writes
    def ensure_columns(self, table: str, columns: dict[str, str]) -> None:
        """Add per-model input columns (features, segments) the table does not have yet."""
        with self.connect() as con:
            existing = _columns(con, table)
            for name, sql_type in columns.items():
                if name not in existing:
                    con.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {quote_ident(name)} {sql_type}")

    def replace_partition(
        self, table: str, frame: pd.DataFrame, model_name: str, partition_date: dt.date
    ) -> int:
        """Delete the model-day's rows and insert `frame` in one transaction: re-runs replace."""
        return self.replace_where(
            table, frame, "model_name = ? AND partition_date = ?", [model_name, partition_date]
        )

    def replace_where(self, table: str, frame: pd.DataFrame, where: str, params: Sequence[Any]) -> int:
        """Transactional delete-then-insert; `frame` columns must be table columns (others rejected)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                _delete_insert(con, table, frame, where, params)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return len(frame)

    def replace_partitions(
        self, writes: dict[str, pd.DataFrame], model_name: str, partition_date: dt.date
    ) -> None:
        """Several tables of one model-day replaced atomically together."""
        where = "model_name = ? AND partition_date = ?"
        self.replace_many(
            [(table, frame, where, [model_name, partition_date]) for table, frame in writes.items()]
        )

    def replace_many(self, writes: Sequence[tuple[str, pd.DataFrame, str, Sequence[Any]]]) -> None:
        """Delete-then-insert on several tables in one transaction: readers see all or nothing."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, frame, where, params in writes:
                    _delete_insert(con, table, frame, where, params)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.connect() as con:
            con.execute(sql, list(params or []))

    # ------------------------------------------------------------------ analysts
    def publish_copy(self, target: str | Path | None = None) -> Path:
        """Copy the file (under the lock, so it is consistent) for analysts to open while runs go on."""
        target = Path(target) if target else self.path.with_name(self.path.stem + "_analyst.duckdb")
        with self._file_lock():
            if not self.path.exists():
                raise FileNotFoundError(self.path)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, target)
        return target


def _schema_exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", [SCHEMA]
    ).fetchone()
    return bool(row and row[0])


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [SCHEMA, table],
    ).fetchall()
    return {r[0] for r in rows}


def _delete_insert(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, where: str, params: Sequence[Any]
) -> None:
    columns = _columns(con, table)
    unknown = [c for c in frame.columns if c not in columns]
    if unknown:
        raise ValueError(f"columns {unknown} are not in {SCHEMA}.{table}")
    con.execute(f"DELETE FROM {qualified(table)} WHERE {where}", list(params))
    if len(frame):
        con.register("_incoming", frame)
        cols = ", ".join(quote_ident(c) for c in frame.columns)
        con.execute(f"INSERT INTO {qualified(table)} ({cols}) SELECT {cols} FROM _incoming")
        con.unregister("_incoming")


def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, columns in TABLES.items():
        cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {qualified(table)} ({cols})")
        existing = _columns(con, table)
        for c, t in columns.items():
            if c not in existing:
                con.execute(
                    f"ALTER TABLE {qualified(table)} ADD COLUMN {quote_ident(c)} {t.replace(' NOT NULL', '')}"
                )
