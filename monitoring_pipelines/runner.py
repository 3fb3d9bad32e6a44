"""Run the monitoring definitions over a date range, recorded in the Dagster instance.

One in-process run per model-day (the same jobs the UI launches), executed in date order: a
day's drift, performance and alert state build on earlier days. The job definitions are resolved
once, so a 120-day backfill pays Dagster's per-run bookkeeping (well under a second) and not
per-run process start-up, code loading or GX context creation.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from queue import Empty

from monitoring_pipelines.config import MonitoringConfig

BLOCKED_ERROR = "DagsterAssetCheckFailedError"
# The event log keeps every detail for the UI; the terminal shows the progress bar and the summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass
class RunReport:
    runs: int = 0
    succeeded: int = 0
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    alerts: dict[str, int] = field(default_factory=dict)
    top_alerts: list[str] = field(default_factory=list)
    pending_notifications: int = 0
    dashboard: str | None = None
    warehouse: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"{self.runs} runs in {self.seconds:.1f}s: {self.succeeded} complete, "
            f"{len(self.blocked)} stopped by a blocking check, {len(self.failed)} failed",
        ]
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


def _failure_kind(result) -> str | None:
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


def _first_error(result) -> str:
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


_WORKER: dict[str, object] = {}


def _execute(job_name: str, partition_key: object, label: str) -> tuple[str, str | None, str]:
    """Run one job partition in this process; returns (label, failure kind, message)."""
    if "defs" not in _WORKER:
        from dagster import DagsterInstance

        from monitoring_pipelines.definitions import defs

        _WORKER["defs"], _WORKER["instance"] = defs, DagsterInstance.get()
    job = _WORKER["defs"].resolve_job_def(job_name)  # type: ignore[attr-defined]
    kwargs = {"partition_key": partition_key} if partition_key is not None else {}
    result = job.execute_in_process(
        instance=_WORKER["instance"],
        raise_on_error=False,
        tags={"monitoring/source": "cli"},
        run_config=QUIET,
        **kwargs,
    )
    kind = _failure_kind(result)
    return label, kind, "" if kind is None else _first_error(result)


def _init_worker(progress_queue: object) -> None:
    """Worker initializer: keep the progress queue, and on Linux ask the kernel to end this worker when
    the CLI process dies, so a
    killed `run` leaves no orphan computing (and holding the warehouse lock) in the background. SIGKILL,
    because Dagster defers SIGTERM until a step ends; an interrupted write is a rolled-back transaction."""
    import contextlib
    import ctypes
    import signal
    import sys

    _WORKER["progress"] = progress_queue
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _model_runs(model: str, days: list[dt.date]) -> list[tuple[str, object, str]]:
    from monitoring_pipelines.defs.partitions import model_day_key

    runs: list[tuple[str, object, str]] = [("reference_job", model, f"reference {model}")]
    runs += [("monitoring_job", model_day_key(model, d), f"{model} {d}") for d in days]
    return runs


def _run_model(model: str, days: list[dt.date]) -> list[tuple[str, str | None, str]]:
    """A model's reference run, then its days in date order: alert state builds on earlier days."""
    progress_queue = _WORKER.get("progress")
    outcomes = []
    for job_name, key, label in _model_runs(model, days):
        outcomes.append(_execute(job_name, key, label))
        if progress_queue is not None:
            progress_queue.put(label)
    return outcomes


def run_range(
    config: MonitoringConfig,
    start: dt.date,
    end: dt.date,
    models: list[str],
    progress: bool = True,
    dashboard: bool = True,
    workers: int | None = None,
) -> RunReport:
    """Every model-day of the range through the Dagster jobs. Models run in parallel worker processes
    (up to `workers`, default: cores), each model's days in order; DuckDB writes stay serialized by the
    warehouse lock, compute overlaps."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from dagster import DagsterInstance
    from tqdm import tqdm

    from monitoring_pipelines.defs.partitions import MODELS_PARTITION_NAME

    instance = DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    missing = [m for m in models if m not in known]
    if missing:
        instance.add_dynamic_partitions(MODELS_PARTITION_NAME, missing)

    report = RunReport(warehouse=str(config.warehouse))
    began = time.monotonic()
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    total = len(models) * (len(days) + 1)
    workers = min(workers or os.cpu_count() or 1, len(models))
    results: list[tuple[str, str | None, str]] = []
    with tqdm(total=total, disable=not progress, unit="run", desc="monitoring") as bar:
        if workers <= 1:
            for model in models:
                for job_name, key, label in _model_runs(model, days):
                    bar.set_postfix_str(label)
                    results.append(_execute(job_name, key, label))
                    bar.update(1)
        else:
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            with ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,)
            ) as pool:
                futures = [pool.submit(_run_model, m, days) for m in models]
                while True:
                    try:
                        label = queue.get(timeout=0.5)
                    except Empty:
                        if all(f.done() for f in futures):
                            break
                        continue
                    bar.set_postfix_str(label)
                    bar.update(1)
                for future in futures:
                    results.extend(future.result())
    for label, kind, message in results:
        report.runs += 1
        if kind is None:
            report.succeeded += 1
        elif kind == "blocked":
            report.blocked.append(label)
        else:
            report.failed.append(f"{label}: {message}")
    if dashboard and not report.failed:
        label, kind, message = _execute("dashboard_job", None, "dashboard")
        report.runs += 1
        if kind is None:
            report.succeeded += 1
        else:
            report.failed.append(f"dashboard: {message}")
    report.seconds = time.monotonic() - began
    report.alerts, report.top_alerts, report.pending_notifications = _open_alerts(config)
    index = config.data_dir / "dashboard" / "index.html"
    report.dashboard = str(index) if index.exists() else None
    return report


def _open_alerts(config: MonitoringConfig, limit: int = 12) -> tuple[dict[str, int], list[str], int]:
    """Open alerts by severity, the worst and newest few as one line each, and the outbox backlog."""
    from monitoring_pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse(config.warehouse)
    frame = warehouse.query(
        "SELECT model_name, partition_date, first_seen_date, severity, check_name, subject, metric, value, "
        "threshold FROM monitoring.alerts WHERE status <> 'resolved' "
        "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, partition_date DESC"
    )
    if frame.empty:
        counts: dict[str, int] = {}
        lines: list[str] = []
    else:
        counts = frame["severity"].value_counts().astype(int).to_dict()
        lines = [
            f"{r.severity:8} {r.model_name} {r.check_name} {r.subject}: {r.metric} {_num(r.value)} "
            f"(threshold {_num(r.threshold)}) since {str(r.first_seen_date)[:10]}, last {str(r.partition_date)[:10]}"
            for r in frame.head(limit).itertuples()
        ]
        if len(frame) > limit:
            lines.append(f"... and {len(frame) - limit} more: `monitoring-pipelines alerts list`")
    pending = warehouse.query("SELECT count(*) AS n FROM monitoring.notifications WHERE status = 'pending'")
    return counts, lines, 0 if pending.empty else int(pending["n"].iloc[0])


def _num(value: object) -> str:
    try:
        return f"{float(value):.4g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"
