"""The `monitoring_gaps` sensor: alerts when predictions, labels or the nightly run stop coming.

Every few minutes, per model with `gaps.enabled`, `intraday_service.run_gap_look` reads the newest
prediction row, the last label arrival day and the days the nightly run left check results for, and
`core.gaps` judges them at the clock's now. A result that changed since the model's previous gap look is
recorded in `intraday_results` (asset `monitoring_gaps`) and alerting is refreshed, so the findings are
routed, deduplicated and tracked like any alert (docs/intraday.md).
"""

import datetime as dt
import json

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.intraday_service import clock_now, run_gap_look
from monitoring_pipelines.storage.sources import SourceError

# A model-day run of the nightly job carries these tags (multi-partition key date × model).
DATE_TAG, MODEL_TAG = "dagster/partition/date", "dagster/partition/model"


def failed_nightly_days(
    instance: DagsterInstance, model_name: str, today: dt.date, days: int
) -> set[dt.date]:
    """Days of the last `days` whose latest run of the model-day (any job) failed."""
    failed = set()
    for back in range(1, days + 1):
        day = today - dt.timedelta(days=back)
        runs = instance.get_runs(
            filters=RunsFilter(tags={DATE_TAG: day.isoformat(), MODEL_TAG: model_name}), limit=1
        )
        if runs and runs[0].status == DagsterRunStatus.FAILURE:
            failed.add(day)
    return failed


@sensor(
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts for monitoring gaps (per model, gaps.enabled): no prediction rows for gaps.no_data_hours "
    "while the reference had traffic then, labels stopped (gaps.label_gap_days past label_delay_days), the "
    "nightly run of a recent day missing (no check results) or failed (its latest run in this instance). Writes monitoring.intraday_results (asset monitoring_gaps) "
    "and refreshes the model's alerts when a result changes.",
)
def monitoring_gaps(context: SensorEvaluationContext, monitoring: MonitoringResource):
    config = monitoring.config
    states: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
    now = clock_now(config)
    notes = []
    for model in config.models:
        if not model.gaps.enabled:
            continue
        previous = states.get(model.name, {})
        same_day = previous.get("day") == now.date().isoformat()
        try:
            failed = failed_nightly_days(
                context.instance, model.name, now.date(), model.gaps.nightly_lookback_days
            )
            look, state, refresh = run_gap_look(
                config,
                monitoring.warehouse,
                model,
                now,
                previous.get("state") if same_day else None,
                failed,
            )
        except (SourceError, OSError) as exc:
            context.log.warning(f"{model.name}: gaps not checked: {exc}")
            continue
        states[model.name] = {"day": now.date().isoformat(), "state": state}
        failing = [f.message for f in look.failing]
        if refresh is not None:
            notes.append(f"{model.name}: {len(failing)} gap(s), {refresh.enqueued} notification(s) queued")
    context.update_cursor(json.dumps(states, sort_keys=True))
    return SkipReason("; ".join(notes) or "no change in monitoring gaps")


SENSORS = [monitoring_gaps]
