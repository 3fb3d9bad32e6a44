"""The intraday watch and the monitoring-gap looks against the sources and the warehouse (no Dagster).

The Dagster layer (defs/intraday.py, defs/gaps.py) and the bench call these; the decisions are pure
functions in core/intraday.py and core/gaps.py, the alerts come from `alerting_service.refresh_alerts`.
A look reads the day so far once, through DuckDB, with the model's source and the nightly run's row rules
(storage.sources, validation.suite.check_rows): a row the nightly run would quarantine is not judged. The
table-level expectations (Great Expectations) stay with the nightly run: importing GX alone costs more
than a look.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring_pipelines import alerting_service as svc
from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.core import gaps as core_gaps
from monitoring_pipelines.core import intraday as core
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines.intraday_config import LIVE_CLOCK_FILE
from monitoring_pipelines.storage.reference import MissingReferenceError, latest_profile, reference_path
from monitoring_pipelines.storage.sources import load_files, new_connection, required_columns, source_for
from monitoring_pipelines.storage.warehouse import Warehouse, quote_ident
from monitoring_pipelines.validation.suite import build_rules, check_rows, whole_day_problems

log = logging.getLogger(__name__)

BASE_COLUMNS = ("ts", "role", "model_version", "status", "latency_ms", "score", "prediction")
LABEL_LOOKBACK_DAYS = 120  # label arrival folders scanned for the last arrival


# --------------------------------------------------------------------------- the clock


def clock_now(config: MonitoringConfig, wall: pd.Timestamp | None = None) -> pd.Timestamp:
    """Now, UTC. While `simulate --live` plays a day, its accelerated clock (`<data_dir>/live_clock.json`:
    `real_start`, `sim_start`, `speed`, `sim_end`), so the demo's looks follow the simulated day."""
    wall = wall if wall is not None else pd.Timestamp.now(tz="UTC")
    path = Path(config.data_dir) / LIVE_CLOCK_FILE
    try:
        clock = json.loads(path.read_text())
        real, sim = pd.Timestamp(clock["real_start"]), pd.Timestamp(clock["sim_start"])
        speed = float(clock["speed"])
        end = pd.Timestamp(clock["sim_end"]) if clock.get("sim_end") else None
    except (OSError, ValueError, KeyError, TypeError):
        return wall
    now = sim + (wall - real) * speed
    # a clock its writer left behind (killed) stops once its day is over: back to the wall clock
    return wall if end is not None and now > end + pd.Timedelta(hours=1) else now


# --------------------------------------------------------------------------- inputs

_TRAFFIC: dict[tuple[Any, ...], core.HourlyTraffic] = {}
_TRAFFIC_LOCK = threading.Lock()


def reference_traffic(config: MonitoringConfig, model: ModelConfig) -> core.HourlyTraffic | None:
    """Champion requests per reference day and UTC hour, counted by DuckDB from the reference window's rows
    (only `ts` and `role` are read); kept per process until the window or its files change."""
    start, end = model.reference.start, model.reference.end
    path = reference_path(config, model)
    source = source_for(config, model)
    fingerprint = getattr(source, "fingerprint", None)
    if path is not None:
        stamp = str(path.stat().st_mtime_ns) if path.exists() else "missing"
    else:
        stamp = fingerprint(model, "predictions", start, end) if fingerprint else ""
    key = (str(config.data_dir), model.name, start, end, stamp)
    with _TRAFFIC_LOCK:
        if key in _TRAFFIC:
            return _TRAFFIC[key]
    con = new_connection()
    try:
        if path is not None:
            read = load_files(con, [path], [], start, end, None, required_columns(model))
        else:
            read = source.load_predictions(con, model, start, end)
        if read.problems or not read.relation:
            log.warning("%s: reference traffic not readable: %s", model.name, "; ".join(read.problems))
            return None
        lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
        hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        counts = con.execute(
            f"SELECT CAST(timezone('UTC', __ts) AS DATE) AS day, hour(timezone('UTC', __ts)) AS hour, "
            f"count(*) AS n FROM {read.relation} WHERE __ts >= ? AND __ts < ? "
            "AND lower(trim(CAST(role AS VARCHAR))) = 'champion' GROUP BY 1, 2",
            [lo, hi],
        ).df()
    finally:
        con.close()
    traffic = core.hourly_traffic(counts)
    with _TRAFFIC_LOCK:
        _TRAFFIC[key] = traffic
    return traffic


def day_so_far(
    config: MonitoringConfig, model: ModelConfig, day: dt.date, look_at: pd.Timestamp
) -> pd.DataFrame:
    """The model's valid rows of `day` logged up to `look_at`: read once by DuckDB from the source (the
    day's folder and its neighbours' rows of the day) and typed and screened by the nightly run's row
    rules; an unreadable or incomplete day gives no rows (the nightly run reports why)."""
    empty = pd.DataFrame(columns=[*BASE_COLUMNS, *model.input_columns])
    con = new_connection()
    try:
        read = source_for(config, model).load_predictions(con, model, day, day)
        if read.problems or not read.relation:
            return empty
        if whole_day_problems(read.columns, model, read.files):
            return empty
        check_rows(con, read.relation, model, build_rules(model))
        columns = ", ".join(quote_ident(c) for c in [*BASE_COLUMNS, *model.input_columns])
        # The bound values go through a prepared CREATE, the rows out through a relation without parameters:
        # DuckDB 1.5 took 0.7 s to hand over 100k rows of a relation with bound parameters (0.02 s this way),
        # and DuckDB 2 copies a prepared statement's result once more for Arrow (and warns).
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE so_far AS SELECT {columns} FROM checked "
            "WHERE reason IS NULL AND partition_date = ? AND ts <= ?",
            [day, look_at.to_pydatetime()],
        )
        table = con.sql("SELECT * FROM so_far").to_arrow_table()
        # roles, versions, statuses and categories repeat: as pandas categoricals they convert in a blink
        return table.to_pandas(strings_to_categorical=True)
    finally:
        con.close()


def reference_profile(warehouse: Warehouse, model: ModelConfig) -> ReferenceProfile | None:
    try:
        return latest_profile(warehouse, model.name)
    except MissingReferenceError:
        return None


def previous_look(
    warehouse: Warehouse, model_name: str, day: dt.date, look_at: pd.Timestamp
) -> pd.Timestamp | None:
    """The clock of the model's previous look of `day` (None for its first)."""
    frame = warehouse.query(
        "SELECT max(look_at) AS last FROM monitoring.intraday_results WHERE model_name = ? "
        "AND partition_date = ? AND look_at < ? AND asset <> ?",
        [model_name, day, look_at.to_pydatetime(), core_gaps.GAPS_ASSET],
    )
    last = frame["last"].iloc[0] if len(frame) else None
    return None if last is None or pd.isna(last) else core.as_utc(last)


# --------------------------------------------------------------------------- a look


def run_look(
    config: MonitoringConfig,
    warehouse: Warehouse,
    model: ModelConfig,
    look_at: pd.Timestamp,
    run_id: str | None = None,
) -> tuple[core.Look, svc.AlertRefresh]:
    """Look at the model's UTC day of `look_at` up to `look_at`, record the look and refresh the model's
    alerts as of that day; their clock is the look's, so an alert is created when the look saw it."""
    look_at = core.as_utc(look_at)
    day = look_at.date()
    warehouse.ensure_schema()
    frame = day_so_far(config, model, day, look_at)
    result = core.look(
        frame,
        model,
        reference_profile(warehouse, model),
        reference_traffic(config, model),
        day,
        look_at,
        since=previous_look(warehouse, model.name, day, look_at),
    )
    svc.write_look(warehouse, result.rows(run_id=run_id))
    refresh = svc.refresh_alerts(warehouse, config, model.name, day, now=look_at)
    return result, refresh


def day_fingerprint(config: MonitoringConfig, model: ModelConfig, day: dt.date) -> str:
    """What has arrived for the day (file names, sizes, mtimes); '' when the source cannot tell."""
    fingerprint = getattr(source_for(config, model), "fingerprint", None)
    return fingerprint(model, "predictions", day, day) if fingerprint else ""


# --------------------------------------------------------------------------- monitoring gaps


def last_prediction(config: MonitoringConfig, model: ModelConfig, now: pd.Timestamp) -> pd.Timestamp | None:
    """The newest prediction row's `ts` up to `now`, over yesterday and today (read by DuckDB)."""
    today = now.date()
    con = new_connection()
    try:
        read = source_for(config, model).load_predictions(con, model, today - dt.timedelta(days=1), today)
        if not read.relation:
            return None
        value = con.execute(
            f"SELECT max(__ts) FROM {read.relation} WHERE __ts <= ?", [now.to_pydatetime()]
        ).fetchall()[0][0]
    finally:
        con.close()
    return None if value is None else core.as_utc(value)


def nightly_days(warehouse: Warehouse, model_name: str, since: dt.date) -> tuple[set[dt.date], set[dt.date]]:
    """Days since `since` the nightly run judged (its last label-free check ran, or the day was blocked at
    its root), and the days whose log was usable (labels are expected for those)."""
    frame = warehouse.query(
        "SELECT partition_date, bool_or(check_name = 'serving_slo' OR (check_name = 'snapshot_usable' "
        "AND NOT passed)) AS ran, bool_or(check_name = 'snapshot_usable' AND passed) AS usable "
        "FROM monitoring.check_results WHERE model_name = ? AND partition_date >= ? GROUP BY partition_date",
        [model_name, since],
    )
    if frame.empty:
        return set(), set()
    days = [pd.Timestamp(d).date() for d in frame["partition_date"]]
    ran = {d for d, r in zip(days, frame["ran"], strict=True) if r}
    usable = {d for d, u in zip(days, frame["usable"], strict=True) if u}
    return ran, usable


def gap_results(
    config: MonitoringConfig,
    warehouse: Warehouse,
    model: ModelConfig,
    now: pd.Timestamp,
    failed_days: set[dt.date] | None = None,
) -> core.Look:
    """The three gap checks of one model at `now` (core.gaps); `failed_days`: days whose latest nightly run
    failed (the Dagster instance knows them)."""
    cfg = model.gaps
    now = core.as_utc(now)
    today = now.date()
    last_ts = last_prediction(config, model, now)
    since = pd.Timestamp(today - dt.timedelta(days=1), tz="UTC")
    results = [core_gaps.no_predictions(cfg, now, last_ts, since, reference_traffic(config, model))]
    lookback = today - dt.timedelta(days=LABEL_LOOKBACK_DAYS)
    ran, usable = nightly_days(warehouse, model.name, lookback)
    days = []
    for text in source_for(config, model).label_arrivals(model, lookback):
        try:
            days.append(dt.date.fromisoformat(text))
        except ValueError:
            continue
    last_arrival = max((d for d in days if d <= today), default=None)
    results.append(core_gaps.labels_stopped(cfg, model.label_delay_days, today, last_arrival, usable))
    first_day = max(config.start_date, model.reference.start)
    results.append(core_gaps.nightly_missing(cfg, now, ran, first_day, failed_days or set()))
    return core_gaps.gap_look(model.name, now, results, last_ts)


def gap_state(look: core.Look) -> str:
    """What a gap look says, without its clock: a look saying what the previous one said is not stored."""
    return json.dumps(
        sorted((r.check_name, r.status, sorted(f.severity for f in r.findings)) for _, r in look.results)
    )


def run_gap_look(
    config: MonitoringConfig,
    warehouse: Warehouse,
    model: ModelConfig,
    now: pd.Timestamp,
    previous_state: str | None = None,
    failed_days: set[dt.date] | None = None,
) -> tuple[core.Look, str, svc.AlertRefresh | None]:
    """Judge the gaps of one model at `now`; record the look and refresh alerts when its state changed."""
    warehouse.ensure_schema()
    look = gap_results(config, warehouse, model, now, failed_days)
    state = gap_state(look)
    if state == previous_state:
        return look, state, None
    svc.write_look(warehouse, look.rows(now=core.as_utc(now)))
    return look, state, svc.refresh_alerts(warehouse, config, model.name, look.day, now=core.as_utc(now))
