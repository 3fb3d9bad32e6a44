"""Run the monitoring definitions over a date range, recorded in the Dagster instance.

A backfill in four phases, each made of the same jobs the UI launches:

1. `reference_job` for each model whose reference inputs changed (skipped, without a run, when the
   stored reference was built from exactly these inputs);
2. `metrics_job` for every model-day: the snapshot, its validation, the metrics and their checks.
   Metrics of different days are independent, so these runs spread over worker processes (one per
   core) in date order;
3. `alerting_job` once per model over the whole range (a partition-range run): alert state needs date
   order, and the assets walk the days in order inside one run, each day still materialized on its
   own;
4. `dashboard_job`.

A single day runs `monitoring_job` (the nightly job: metrics then alerts) once per model. A single
model-day (or a machine with one core) runs in this process: no worker start-up to pay.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from monitoring_pipelines.config import MonitoringConfig

BLOCKED_ERROR = "DagsterAssetCheckFailedError"
# The event log keeps every detail for the UI; the terminal shows the progress bar and the summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class RunReport:
    runs: int = 0
    succeeded: int = 0
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_references: list[str] = field(default_factory=list)
    rebuilt_references: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rows: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    top_alerts: list[str] = field(default_factory=list)
    pending_notifications: int = 0
    dashboard: str | None = None
    warehouse: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        rate = f", {self.rows / self.seconds:,.0f} rows/s" if self.seconds and self.rows else ""
        lines = [
            f"{self.runs} runs in {self.seconds:.1f}s ({self.rows:,} prediction rows{rate}): {self.succeeded} complete, "
            f"{len(self.blocked)} stopped by a blocking check, {len(self.failed)} failed",
        ]
        if self.skipped_references:
            lines.append(f"references unchanged, not rebuilt: {', '.join(self.skipped_references)}")
        lines += [f"  blocked (day unusable, see check snapshot_usable): {b}" for b in self.blocked[:10]]
        lines += [f"  FAILED: {f}" for f in self.failed[:10]]
        if self.alerts:
            lines.append("open alerts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.alerts.items())))
            lines += [f"  {a}" for a in self.top_alerts]
        else:
            lines.append("open alerts: none")
        if self.pending_notifications:
            lines.append(
                f"notifications waiting in the outbox: {self.pending_notifications} "
                "(configure a channel, e.g. MONITORING_WEBHOOK_URL, then `monitoring-pipelines deliver`)"
            )
        lines.append(f"warehouse: {self.warehouse}")
        if self.dashboard:
            lines.append(f"dashboard: {self.dashboard}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Task:
    """One run: a job and its partition (a key, or a range as tags), and how the progress bar names it."""

    job: str
    label: str
    partition_key: Any = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Outcome:
    label: str
    kind: str | None  # None: succeeded; "blocked": only blocking checks stopped it; "failed"
    message: str = ""
    rows: int = 0
    model_day: bool = False  # a metrics (or nightly) run of one model-day: what the time left counts


def _failure_kind(result: Any) -> str | None:
    """None when the run succeeded, 'blocked' when only blocking checks stopped it, else 'failed'."""
    if result.success:
        return None
    errors = [
        event.event_specific_data.error
        for event in result.all_events
        if event.is_step_failure and event.event_specific_data is not None
    ]
    names = {getattr(err, "cls_name", None) for err in errors if err is not None}
    return "blocked" if names and names <= {BLOCKED_ERROR} else "failed"


def _first_error(result: Any) -> str:
    """The step and the root cause's message, not Dagster's wrapper ("Error occurred while executing")."""
    for event in result.all_events:
        if (
            event.is_step_failure
            and event.event_specific_data is not None
            and event.event_specific_data.error
        ):
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            return f"{event.step_key}: {error.cls_name}: {error.message.strip().splitlines()[0]}"
    return "run failed"


def _rows_read(result: Any) -> int:
    """Prediction rows the run read (the snapshot's rows_read), for the rows-per-second figure."""
    for event in result.all_events:
        if (
            event.is_step_materialization
            and event.asset_key
            and event.asset_key.path == ["prediction_snapshots"]
        ):
            value = event.event_specific_data.materialization.metadata.get("rows_read")
            return int(getattr(value, "value", value) or 0)
    return 0


_WORKER: dict[str, Any] = {}


def _execute(task: Task) -> Outcome:
    """Run one task in this process (the definitions and the instance are loaded once per process)."""
    if "defs" not in _WORKER:
        from dagster import DagsterInstance

        from monitoring_pipelines.definitions import defs

        _WORKER["defs"] = defs()
        if "instance" not in _WORKER:
            _WORKER["instance"] = DagsterInstance.get()
    from monitoring_pipelines.defs.run_hygiene import process_tags

    job = _WORKER["defs"].resolve_job_def(task.job)
    tags = {"monitoring/source": "cli", **process_tags(), **dict(task.tags)}
    if job.executor_def.name != "in_process":  # `execution:` in the config (defs/execution.py)
        return _execute_on_executor(task, job, tags)
    kwargs = {"partition_key": task.partition_key} if task.partition_key is not None else {}
    result = job.execute_in_process(
        instance=_WORKER["instance"],
        raise_on_error=False,
        tags=tags,
        run_config=QUIET,
        **kwargs,
    )
    return _outcome(task, result)


def _execute_on_executor(task: Task, job: Any, tags: dict[str, str]) -> Outcome:
    """Run one task with the job's own executor (multiprocess, Celery, Dask): this process orchestrates,
    the steps execute where the executor sends them, which load the definitions from the same module."""
    from dagster import execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    if task.partition_key is not None:
        tags = {**tags, **job.partitions_def.get_tags_for_partition_key(task.partition_key)}
    repository = ReconstructableRepository.for_module("monitoring_pipelines.definitions", "defs")
    with execute_job(
        repository.get_reconstructable_job(task.job),
        instance=_WORKER["instance"],
        tags=tags,
        run_config=QUIET,
        raise_on_error=False,
    ) as result:
        return _outcome(task, result)


def _outcome(task: Task, result: Any) -> Outcome:
    kind = _failure_kind(result)
    return Outcome(
        task.label,
        kind,
        "" if kind is None else _first_error(result),
        _rows_read(result),
        model_day=task.job in ("metrics_job", "monitoring_job"),
    )


def _init_worker() -> None:
    """On Linux, ask the kernel to end this worker when the CLI process dies, so a killed `run` leaves no
    orphan computing (and holding the warehouse lock) in the background. SIGKILL, because Dagster
    defers SIGTERM until a step ends; an interrupted write is a rolled-back transaction."""
    import contextlib
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    _preload(helper_process=False)


def _preload(helper_process: bool = True) -> None:
    """Start getting Great Expectations ready now: validating a day needs it, and its import costs
    seconds that otherwise land in the first run (a worker imports it in a thread, once for its days)."""
    from monitoring_pipelines.validation.suite import preload_gx

    preload_gx(helper_process)


def _release_gx() -> None:
    """This process validates no more days: its GX helper may exit while the summary is written."""
    from monitoring_pipelines.validation.suite import release_gx_helper

    release_gx_helper()


class _Executor:
    """Tasks in worker processes (spawned, so each loads Dagster cleanly), or in this process."""

    def __init__(self, workers: int) -> None:
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(
                workers, mp_context=mp.get_context("spawn"), initializer=_init_worker
            )

    def map(self, tasks: list[Task]) -> Iterator[Outcome]:
        """Outcomes as the tasks finish (submission order in this process)."""
        if self.pool is None:
            for task in tasks:
                yield _execute(task)
            return
        futures: list[Future[Outcome]] = [self.pool.submit(_execute, t) for t in tasks]
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def stale_references(config: MonitoringConfig, models: list[str]) -> tuple[list[str], list[str]]:
    """(models whose reference must be built, models whose stored reference is current)."""
    from monitoring_pipelines.storage.reference import input_fingerprint, stored_reference
    from monitoring_pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse.for_config(config)
    stale, current = [], []
    for name in models:
        _, stored = stored_reference(warehouse, name)
        (current if stored == input_fingerprint(config, config.model(name)) else stale).append(name)
    return stale, current


def _register_models(instance: Any, models: list[str]) -> None:
    """Before any run: fail the runs of dead CLI processes (they would hold run slots for ever), store the
    warehouse pool's limit, and add the models the instance does not know yet to the model partitions."""
    import sys

    from monitoring_pipelines.defs.common import WAREHOUSE_POOL
    from monitoring_pipelines.defs.partitions import MODELS_PARTITION_NAME
    from monitoring_pipelines.defs.run_hygiene import ensure_pools, fail_dead_cli_runs

    if dead := fail_dead_cli_runs(instance):
        print(f"marked {len(dead)} run(s) of killed CLI processes failed: {', '.join(dead)}", file=sys.stderr)
    ensure_pools(instance, (WAREHOUSE_POOL,))
    known = set(instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    if missing := [m for m in models if m not in known]:
        instance.add_dynamic_partitions(MODELS_PARTITION_NAME, missing)


def build_references(config: MonitoringConfig, models: list[str]) -> RunReport:
    """`reference_job` for each model whose reference inputs changed; the others are reported unchanged."""
    from dagster import DagsterInstance

    instance = DagsterInstance.get()
    _register_models(instance, models)
    report = RunReport(warehouse=_shown(config))
    began = time.monotonic()
    stale, report.skipped_references = stale_references(config, models)
    for name in stale:
        outcome = _execute(Task("reference_job", f"reference {name}", partition_key=name))
        report.runs += 1
        if outcome.kind is None:
            report.succeeded += 1
            report.rebuilt_references.append(name)
        else:
            report.failed.append(f"{outcome.label}: {outcome.message}")
    report.seconds = time.monotonic() - began
    return report


def run_range(
    config: MonitoringConfig,
    start: dt.date,
    end: dt.date,
    models: list[str],
    progress: bool = True,
    dashboard: bool = True,
    workers: int | None = None,
) -> RunReport:
    """Every model-day of the range through the Dagster jobs (see the module docstring for the phases)."""
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    metric_runs = len(models) * len(days)
    if metric_runs == 1:
        # One model-day runs in this process: GX loads in its helper while Dagster loads here.
        _preload()

    from dagster import DagsterInstance
    from tqdm import tqdm

    from monitoring_pipelines.defs.partitions import model_day_key

    instance = DagsterInstance.get()
    _WORKER["instance"] = instance  # the runs of this process use it (workers load their own)
    _register_models(instance, models)

    report = RunReport(warehouse=_shown(config))
    began = time.monotonic()
    stale, report.skipped_references = stale_references(config, models)
    references = [Task("reference_job", f"reference {m}", partition_key=m) for m in stale]
    if len(days) == 1:
        # One day: the nightly job itself (metrics, then alerts), one run per model.
        phases = [
            references,
            [Task("monitoring_job", f"{m} {start}", partition_key=model_day_key(m, start)) for m in models],
        ]
    else:
        phases = [
            references,
            [
                Task("metrics_job", f"{m} {d}", partition_key=model_day_key(m, d))
                for d in days
                for m in models
            ],
            [
                Task(
                    "alerting_job",
                    f"alerts {m} {start}..{end}",
                    tags=(
                        (RANGE_START_TAG, str(model_day_key(m, start))),
                        (RANGE_END_TAG, str(model_day_key(m, end))),
                    ),
                )
                for m in models
            ],
        ]
    total = sum(len(p) for p in phases) + (1 if dashboard else 0)
    executor = _Executor(min(workers or os.cpu_count() or 1, metric_runs) if metric_runs > 1 else 1)
    if executor.pool is None:
        _preload()  # (already started for a single model-day)
        from monitoring_pipelines.validation.suite import expect_validations

        expect_validations(len(references) + sum(len(p) for p in phases[1:2]))
    outcomes: list[Outcome] = []
    try:
        # Our own estimate instead of tqdm's: runs differ in cost (a reference reads 28 days, an alerting
        # run a whole range), so time left is extrapolated from the model-days alone, once two are done.
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        with tqdm(total=total, disable=not progress, desc="monitoring", bar_format=fmt) as bar:
            model_days = {"done": 0, "total": len(phases[1]), "began": began}

            def done(outcome: Outcome) -> None:
                outcomes.append(outcome)
                report.rows += outcome.rows
                now = time.monotonic()
                if outcome.model_day:
                    model_days["done"] += 1
                left = time_left(model_days["done"], model_days["total"], now - model_days["began"])
                rate = report.rows / max(now - began, 1e-9)
                bar.set_postfix_str(f"{left}, {outcome.label}, {rate:,.0f} rows/s")
                bar.update(1)

            for index, phase in enumerate(phases):
                if index == 1:
                    model_days["began"] = time.monotonic()
                for outcome in executor.map(phase):
                    done(outcome)
            if dashboard and not any(o.kind == "failed" for o in outcomes):
                for outcome in executor.map([Task("dashboard_job", "dashboard")]):
                    done(outcome)
    finally:
        executor.close()
        _release_gx()
    for outcome in outcomes:
        report.runs += 1
        if outcome.kind is None:
            report.succeeded += 1
        elif outcome.kind == "blocked":
            report.blocked.append(outcome.label)
        else:
            report.failed.append(f"{outcome.label}: {outcome.message}")
    report.seconds = time.monotonic() - began
    report.alerts, report.top_alerts, report.pending_notifications = _open_alerts(config)
    index = config.data_dir / "dashboard" / "index.html"
    report.dashboard = str(index) if index.exists() else None
    return report


def submit_range(
    config: MonitoringConfig, start: dt.date, end: dt.date, models: list[str]
) -> tuple[str, list[str]]:
    """Queue every model-day of the range as one asset backfill of the nightly job's assets (ingest,
    metrics, alerting) in the instance; the daemon plans its runs (alerting in date order: the alerting
    assets' backfill policy) and the run launcher starts them wherever the deployment runs runs. Returns
    the backfill's id and its partition keys."""
    from dagster import DagsterInstance
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from monitoring_pipelines.definitions import defs
    from monitoring_pipelines.defs.partitions import model_day_key

    instance = DagsterInstance.get()
    _register_models(instance, models)
    definitions = defs()
    job = definitions.resolve_job_def("monitoring_job")
    assets = sorted(job.asset_layer.executable_asset_keys, key=lambda key: key.to_user_string())
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    partitions = [str(model_day_key(m, d)) for d in days for m in models]
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=definitions.resolve_asset_graph(),
        partition_names=partitions,
        asset_selection=assets,
        backfill_timestamp=time.time(),
        tags={"monitoring/source": "cli-submit"},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"monitoring {start}..{end}",
        description=f"monitoring-pipelines run --submit: {', '.join(models)}",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id, partitions


def first_look_lines(config: MonitoringConfig, ui_url: str | None = None) -> list[str]:
    """What a new user (or on-call) should open first: per model its worst open incident (critical before
    warning, then the oldest) with its root cause and size, else that nothing is open; the dashboard; the
    Dagster page of that incident's lead model-day (`ui_url`, default the config's `alerting.ui_base_url`)."""
    from monitoring_pipelines.core.alerts import asset_url
    from monitoring_pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse.for_config(config)
    if not warehouse.exists():
        return [f"no results yet in {_shown(config)}: `make demo` or `monitoring-pipelines run` first"]
    ui_url = ui_url or config.alerting.ui_base_url
    frame = warehouse.query(
        "SELECT model_name, coalesce(incident_id, alert_id) AS incident, first_seen_date, last_seen_date, "
        "severity, check_name, asset, subject, message, root_cause FROM monitoring.alerts "
        "WHERE status <> 'resolved' AND severity IN ('critical', 'warning') "
        "ORDER BY model_name, CASE severity WHEN 'critical' THEN 0 ELSE 1 END, first_seen_date, alert_id"
    )
    lines = ["Look at first:"]
    page = None
    for name in config.model_names:
        rows = frame[frame["model_name"] == name]
        if rows.empty:
            lines.append(f"  {name}: no open problem")
            continue
        top = rows.iloc[0]
        members = int((rows["incident"] == top["incident"]).sum())
        others = rows["incident"].nunique() - 1
        what = f"{top['check_name']} on {top['subject']}" if top["subject"] else str(top["check_name"])
        cause = (
            top["root_cause"] if isinstance(top["root_cause"], str) and top["root_cause"] else top["message"]
        )
        # The cause belongs to the incident named first; the count of other incidents comes after it (it read
        # as the other incident's cause when it followed "+1 other open incident(s)").
        lines.append(
            f"  {name}: {top['severity']} {what} since {str(top['first_seen_date'])[:10]}"
            + (f" ({members} alerts in this incident)" if members > 1 else "")
            + (f": {_clip(str(cause))}" if isinstance(cause, str) and cause else "")
            + (
                f"; also {others} other open incident(s) (`monitoring-pipelines alerts list`)"
                if others
                else ""
            )
        )
        if page is None and top["asset"]:
            day = dt.date.fromisoformat(str(top["last_seen_date"])[:10])
            page = asset_url(ui_url, str(top["asset"]), name, day)
    index = config.data_dir / "dashboard" / "index.html"
    if index.exists():
        lines.append(f"  dashboard: {index.as_uri()}")
    lines.append(f"  Dagster UI: `make ui`, then open {page or ui_url.rstrip('/') + '/assets'}")
    return lines


def _shown(config: MonitoringConfig) -> str:
    """The warehouse as reports name it (a lake's password hidden)."""
    from monitoring_pipelines.storage.warehouse import shown

    return shown(config.warehouse)


def time_left(done: int, total: int, seconds: float) -> str:
    """Words for the progress bar: the model-days left at the pace of those done (runs in parallel
    included), after two of them; before that there is no honest figure."""
    if total == 0 or done >= total:
        return "finishing"
    if done < 2:
        return "estimating time left"
    left = round(seconds / done * (total - done))
    return f"about {left // 60}:{left % 60:02d} left" if left >= 60 else f"about {left}s left"


def _clip(text: str, width: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _open_alerts(config: MonitoringConfig, limit: int = 12) -> tuple[dict[str, int], list[str], int]:
    """Open alerts by severity, the worst and newest few as one line each, and the outbox backlog."""
    from monitoring_pipelines.core.formatting import fmt, is_missing
    from monitoring_pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse.for_config(config)
    frame = warehouse.query(
        "SELECT model_name, partition_date, first_seen_date, severity, check_name, subject, metric, value, "
        "threshold, message FROM monitoring.alerts WHERE status <> 'resolved' "
        "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, partition_date DESC"
    )
    if frame.empty:
        counts: dict[str, int] = {}
        lines: list[str] = []
    else:
        counts = frame["severity"].value_counts().astype(int).to_dict()
        lines = [
            f"{r.severity:8} {r.model_name} {r.check_name} {r.subject}: "
            + (
                _clip(str(r.message), 160)  # an unusable day: no value, the message names the file
                if is_missing(r.value)
                else f"{r.metric} {fmt(r.value)} (threshold {fmt(r.threshold, missing='n/a')})"
            )
            + f" since {str(r.first_seen_date)[:10]}, last {str(r.partition_date)[:10]}"
            for r in frame.head(limit).itertuples()
        ]
        if len(frame) > limit:
            lines.append(f"... and {len(frame) - limit} more: `monitoring-pipelines alerts list`")
    pending = warehouse.query("SELECT count(*) AS n FROM monitoring.notifications WHERE status = 'pending'")
    return counts, lines, 0 if pending.empty else int(pending["n"].iloc[0])
