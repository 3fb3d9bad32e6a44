"""From core check specs and results to Dagster: one source, two sinks.

A core module declares its checks (`CheckSpec`: name, severity, description built from the config's
defaults) and decides them (`CheckResult`); this module only turns specs into AssetCheckSpecs and
results into AssetCheckResults plus `check_results` rows. The warehouse copy is what alerting reads
(and what analysts query); the Dagster copy is what the UI shows. Both come from the same
CheckResult object, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
)

from monitoring_pipelines.core.findings import OK, SEVERITY_RANK, UNKNOWN, CheckResult, CheckSpec
from monitoring_pipelines.core.formatting import fmt, markdown_table
from monitoring_pipelines.defs.resources import MonitoringResource, later_step_waits
from monitoring_pipelines.schema import columns_of

FINDINGS_SHOWN = 50


def check_specs(asset_name: str, specs: Sequence[CheckSpec]) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            name=s.name, asset=AssetKey(asset_name), description=s.description, blocking=s.blocking
        )
        for s in specs
    ]


def to_check_result(asset_name: str, result: CheckResult) -> AssetCheckResult:
    """The UI's copy. A check that could not judge the day (`status` unknown) shows as failed with severity
    WARN, metadata `status: unknown` and a description starting "not enough data: n=…, needs …": a green
    "passed" would claim a check that did not happen (how the age 65+ alert resolved itself), and ERROR
    would make a shortage of labels look like a broken model (docs/alerting.md, "Not enough data")."""
    severity = AssetCheckSeverity.ERROR if result.severity == "critical" else AssetCheckSeverity.WARN
    shown = [f for f in result.findings if f.severity != OK]  # judged-and-fine values are for alerting
    findings = json.loads(json.dumps([f.to_dict() for f in shown], default=_json_default))
    metadata: dict[str, object] = {
        "status": result.status,
        "findings": MetadataValue.json(findings),
        "failed_subjects": MetadataValue.text(
            ", ".join(f.subject for f in shown if f.severity in SEVERITY_RANK and f.severity != "info")
            or "none"
        ),
    }
    if result.unknown_subjects:
        metadata["unknown_subjects"] = MetadataValue.text(
            "; ".join(f"{f.subject}: {f.message}" for f in result.unknown_subjects[:FINDINGS_SHOWN])
        )
    for key, value in result.metadata.items():
        metadata[key] = MetadataValue.md(value) if key.endswith("_md") or key == "summary" else value
    if shown:
        metadata["findings_table"] = MetadataValue.md(
            markdown_table(
                [
                    (f.severity, f.subject, f.metric, fmt(f.value), fmt(f.threshold), f.message)
                    for f in shown[:FINDINGS_SHOWN]
                ],
                ["severity", "subject", "metric", "value", "threshold", "message"],
                formatters=str,
            )
        )
    description = result.description
    if result.status == "unknown":
        description = f"{result.unknown_reason}. {description}" if description else result.unknown_reason
    return AssetCheckResult(
        asset_key=AssetKey(asset_name),
        check_name=result.check_name,
        passed=result.status == "passed",
        severity=severity,
        metadata=metadata,
        description=description or None,
    )


def check_rows(
    asset_name: str,
    results: Iterable[CheckResult],
    model_name: str,
    partition_date: dt.date,
    run_id: str,
) -> pd.DataFrame:
    now = pd.Timestamp.now(tz="UTC")
    rows = [
        {
            "model_name": model_name,
            "partition_date": partition_date,
            "asset": asset_name,
            "check_name": r.check_name,
            "passed": r.status == "passed",  # as the UI shows it: unknown is not passed
            "severity": UNKNOWN if r.status == "unknown" else r.severity,
            "findings": json.dumps([f.to_dict() for f in r.findings], default=_json_default),
            "run_id": run_id,
            "evaluated_at": now,
        }
        for r in results
    ]
    return pd.DataFrame(rows, columns=columns_of("check_results"))


def _json_default(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    return str(value)


def checks_write(
    asset_name: str, results: list[CheckResult], model_name: str, partition_date: dt.date, run_id: str
) -> tuple[str, pd.DataFrame, str, list[object]]:
    """The warehouse write of this asset's check results for the model-day (replacing its earlier ones)."""
    return (
        "check_results",
        check_rows(asset_name, results, model_name, partition_date, run_id),
        "model_name = ? AND partition_date = ? AND asset = ?",
        [model_name, partition_date, asset_name],
    )


def record_checks(
    monitoring: MonitoringResource,
    context: AssetExecutionContext,
    asset_name: str,
    results: list[CheckResult],
    model_name: str,
    partition_date: dt.date,
    tables: dict[str, object] | None = None,
) -> list[AssetCheckResult]:
    """Persist the model-day's `tables` and the check results for alerting in one transaction, and return
    the results as Dagster check results for the UI. When this run's `alerts` step follows (it reads
    check_results and so waits for the write), the write goes on in the background meanwhile."""
    day = "model_name = ? AND partition_date = ?"
    writes = [(table, frame, day, [model_name, partition_date]) for table, frame in (tables or {}).items()]
    writes.append(checks_write(asset_name, results, model_name, partition_date, context.run_id))
    monitoring.replace(
        f"{asset_name} of {model_name} {partition_date}",
        writes,
        later=later_step_waits(context, SETTLING_STEPS),
    )
    return [to_check_result(asset_name, r) for r in results]


# The steps after the metrics that read the warehouse (and so wait for the writes left in the background).
SETTLING_STEPS = ("alerts",)
