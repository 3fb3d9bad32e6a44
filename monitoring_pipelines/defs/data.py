"""Reading a model-day's inputs for the metric assets: validated snapshots from the warehouse and the
labels / outcomes known so far from the source. One place, so every asset sees the same rows."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.storage.sources import source_for
from monitoring_pipelines.storage.warehouse import Warehouse, quote_ident


def label_lookahead_days(model: ModelConfig) -> int:
    """How many days after a prediction day we look for its labels: twice the promised delay, at
    least two weeks, so stragglers still count without scanning the whole label history."""
    return max(2 * model.label_delay_days, 14)


def snapshot_rows(
    warehouse: Warehouse,
    model: ModelConfig,
    start: dt.date,
    end: dt.date | None = None,
    role: str | None = "champion",
    ok_only: bool = True,
) -> pd.DataFrame:
    """Validated rows of one model over [start, end] with the model's own input columns."""
    end = end or start
    columns = [
        "partition_date",
        "prediction_id",
        "request_id",
        "model_version",
        "role",
        "ts",
        "score",
        "prediction",
        "latency_ms",
        "status",
        *model.input_columns,
    ]
    where = ["model_name = ?", "partition_date BETWEEN ? AND ?"]
    params: list[object] = [model.name, start, end]
    if role:
        where.append("role = ?")
        params.append(role)
    if ok_only:
        where.append("status = 'ok'")
    sql = (
        f"SELECT {', '.join(quote_ident(c) for c in columns)} FROM monitoring.prediction_snapshots "
        f"WHERE {' AND '.join(where)}"
    )
    frame = warehouse.query(sql, params)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["partition_date"] = pd.to_datetime(frame["partition_date"]).dt.date
    return frame


def snapshot_sql(model: ModelConfig, columns: list[str] | None = None) -> str:
    """The champion, status 'ok' rows of one model-day (parameters: model_name, partition_date)."""
    cols = columns or [*model.input_columns, "score", "prediction"]
    return (
        f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM monitoring.prediction_snapshots "
        "WHERE model_name = ? AND partition_date = ? AND role = 'champion' AND status = 'ok'"
    )


def snapshot_count(warehouse: Warehouse, model: ModelConfig, day: dt.date) -> int:
    frame = warehouse.query(
        f"SELECT count(*) AS n FROM ({snapshot_sql(model, ['prediction_id'])})", [model.name, day]
    )
    return 0 if frame.empty else int(frame["n"].iloc[0])


def known_labels(
    config: MonitoringConfig,
    model: ModelConfig,
    start: dt.date,
    end: dt.date | None = None,
    today: dt.date | None = None,
) -> pd.DataFrame:
    """Labels for predictions of [start, end] that have arrived by now (label folders by arrival day)."""
    end = end or start
    today = today or dt.datetime.now(dt.UTC).date()
    arrived_to = min(today, end + dt.timedelta(days=label_lookahead_days(model)))
    if arrived_to < start:
        arrived_to = start
    return source_for(config, model).read_labels(model, start, arrived_to)


def known_outcomes(
    config: MonitoringConfig,
    model: ModelConfig,
    start: dt.date,
    end: dt.date | None = None,
    today: dt.date | None = None,
) -> pd.DataFrame:
    end = end or start
    today = today or dt.datetime.now(dt.UTC).date()
    if not model.outcomes:
        return source_for(config, model).read_outcomes(model, start, start - dt.timedelta(days=1))
    return source_for(config, model).read_outcomes(
        model, start, min(today, end + dt.timedelta(days=label_lookahead_days(model)))
    )


def with_labels(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Attach the latest known label to each prediction (NaN when none has arrived)."""
    if frame.empty:
        return frame.assign(label=pd.Series(dtype="float64"))
    lab = labels[["request_id", "label"]].drop_duplicates("request_id", keep="last")
    out = frame.merge(lab, on="request_id", how="left")
    out["label"] = pd.to_numeric(out["label"], errors="coerce").astype("float64")
    return out
