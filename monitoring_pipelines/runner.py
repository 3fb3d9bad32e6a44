"""Run the monitoring definitions over a date range, recorded in the Dagster instance.

One in-process run per model-day (the same jobs the UI launches), executed in date order: a
day's drift, performance and alert state build on earlier days. The job definitions are resolved
once, so a 120-day backfill pays Dagster's per-run bookkeeping (well under a second) and not
per-run process start-up, code loading or GX context creation.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

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
        if event.is_step_failure and event.event_specific_data is not None and event.event_specific_data.error:
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            return f"{event.step_key}: {error.cls_name}: {error.message.strip().splitlines()[0]}"
    return "run failed"


def run_range(
    config: MonitoringConfig,
    start: dt.date,
    end: dt.date,
    models: list[str],
    progress: bool = True,
    dashboard: bool = True,
) -> RunReport:
    from dagster import DagsterInstance
    from tqdm import tqdm

    from monitoring_pipelines.definitions import defs
    from monitoring_pipelines.defs.partitions import MODELS_PARTITION_NAME, model_day_key

    instance = DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    missing = [m for m in models if m not in known]
    if missing:
        instance.add_dynamic_partitions(MODELS_PARTITION_NAME, missing)

    report = RunReport(warehouse=str(config.warehouse))
    began = time.monotonic()
    reference_job = defs.resolve_job_def("reference_job")
    monitoring_job = defs.resolve_job_def("monitoring_job")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    jobs: list[tuple[str, object, object]] = [(f"reference {m}", reference_job, m) for m in models]
    jobs += [(f"{m} {d}", monitoring_job, model_day_key(m, d)) for d in days for m in models]
    with tqdm(total=len(jobs), disable=not progress, unit="run", desc="monitoring") as bar:
        for label, job, partition_key in jobs:
            bar.set_postfix_str(label)
            result = job.execute_in_process(  # type: ignore[attr-defined]
                instance=instance, partition_key=partition_key, raise_on_error=False,
                tags={"monitoring/source": "cli"}, run_config=QUIET,
            )
            report.runs += 1
            kind = _failure_kind(result)
            if kind is None:
                report.succeeded += 1
            elif kind == "blocked":
                report.blocked.append(label)
            else:
                report.failed.append(f"{label}: {_first_error(result)}")
            bar.update(1)
    if dashboard and not report.failed:
        result = defs.resolve_job_def("dashboard_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET
        )
        report.runs += 1
        if result.success:
            report.succeeded += 1
        else:
            report.failed.append(f"dashboard: {_first_error(result)}")
    report.seconds = time.monotonic() - began
    report.alerts = _open_alerts(config)
    index = config.data_dir / "dashboard" / "index.html"
    report.dashboard = str(index) if index.exists() else None
    return report


def _open_alerts(config: MonitoringConfig) -> dict[str, int]:
    from monitoring_pipelines.storage.warehouse import Warehouse

    frame = Warehouse(config.warehouse).query(
        "SELECT severity, count(*) AS n FROM monitoring.alerts WHERE status <> 'resolved' GROUP BY severity"
    )
    return {} if frame.empty else dict(zip(frame["severity"], frame["n"].astype(int), strict=True))
