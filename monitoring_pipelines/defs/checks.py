"""From core CheckResults to Dagster asset check results and `check_results` rows: one source, two sinks.

The warehouse copy is what the alerting asset reads (and what analysts query); the Dagster copy is
what the UI shows. Both come from the same CheckResult object, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from monitoring_pipelines.core.findings import CheckResult
from monitoring_pipelines.storage.warehouse import Warehouse


def check_specs(
    asset_name: str, descriptions: dict[str, str], blocking: Sequence[str] = ()
) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name=name, asset=AssetKey(asset_name), description=text, blocking=name in blocking)
        for name, text in descriptions.items()
    ]


def to_check_result(asset_name: str, outcome: CheckResult) -> AssetCheckResult:
    severity = AssetCheckSeverity.ERROR if outcome.severity == "critical" else AssetCheckSeverity.WARN
    findings = json.loads(json.dumps([f.to_dict() for f in outcome.findings], default=_json_default))
    metadata: dict[str, object] = {
        "findings": MetadataValue.json(findings),
        "failed_subjects": MetadataValue.text(
            ", ".join(f.subject for f in outcome.findings if f.severity != "info") or "none"
        ),
    }
    for key, value in outcome.metadata.items():
        metadata[key] = MetadataValue.md(value) if key.endswith("_md") or key == "summary" else value
    if outcome.findings:
        lines = ["| severity | subject | metric | value | threshold | message |", "|---|---|---|---|---|---|"]
        for f in outcome.findings[:50]:
            lines.append(
                f"| {f.severity} | {f.subject} | {f.metric} | {_fmt(f.value)} | {_fmt(f.threshold)} | {f.message} |"
            )
        metadata["findings_table"] = MetadataValue.md("\n".join(lines))
    return AssetCheckResult(
        asset_key=AssetKey(asset_name),
        check_name=outcome.check_name,
        passed=outcome.passed,
        severity=severity,
        metadata=metadata,
        description=outcome.description or None,
    )


def check_rows(
    asset_name: str,
    outcomes: Iterable[CheckResult],
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
            "check_name": o.check_name,
            "passed": o.passed,
            "severity": o.severity,
            "findings": json.dumps([f.to_dict() for f in o.findings], default=_json_default),
            "run_id": run_id,
            "evaluated_at": now,
        }
        for o in outcomes
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "model_name",
            "partition_date",
            "asset",
            "check_name",
            "passed",
            "severity",
            "findings",
            "run_id",
            "evaluated_at",
        ],
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _json_default(value: object) -> object:
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    return str(value)


def record_checks(
    warehouse: Warehouse,
    asset_name: str,
    outcomes: list[CheckResult],
    model_name: str,
    partition_date: dt.date,
    run_id: str,
) -> list[AssetCheckResult]:
    """Persist the outcomes for alerting (replacing this asset's rows of the model-day) and
    return them as Dagster check results for the UI."""
    rows = check_rows(asset_name, outcomes, model_name, partition_date, run_id)
    warehouse.replace_where(
        "check_results",
        rows,
        "model_name = ? AND partition_date = ? AND asset = ?",
        [model_name, partition_date, asset_name],
    )
    return [to_check_result(asset_name, o) for o in outcomes]
