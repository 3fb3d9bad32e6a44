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
import warnings
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
)

from monitoring_pipelines.core.findings import OK, SEVERITY_RANK, UNKNOWN, CheckResult, CheckSpec, Finding
from monitoring_pipelines.core.formatting import escape_prose, fmt, markdown_table
from monitoring_pipelines.defs.resources import MonitoringResource, later_step_waits
from monitoring_pipelines.schema import columns_of

FINDINGS_SHOWN = 50
# Failing findings quoted in a check result's description (the rest are in `findings_table`).
DESCRIBED = 3
# A check result's metadata entries that hold a markdown table (besides keys ending in "_md").
MARKDOWN_KEYS = frozenset({"summary", "worst_features"})
# Settings a check reports for the record (thresholds, counts fixed by the config). They are the same on
# every model-day of a model, so as numbers the UI would plot them as flat lines mixing the models; they
# go into one `settings` text entry instead. Numeric metadata is kept for what varies per model-day.
SETTING_KEYS = frozenset(
    {
        "min_n",
        "band_k",
        "four_fifths_line",
        "parity_gap",
        "equalized_odds_gap",
        "degradation_margin",
        "absolute_limits",
        "min_coverage",
        "segment_tolerance",
        "n_features",
        "segments",
        "metrics",
        "profile_version",
    }
)
# Tag of a model-day's materialization: whether a check of the asset failed on it (the partition view
# shows materialized or missing only; this and `failed_checks` say which model-days failed what).
CHECKS_TAG = "monitoring/checks"


def check_specs(
    asset_name: str, specs: Sequence[CheckSpec], partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    """The asset's checks, partitioned like the asset (date × model): each result is recorded for its
    model-day, so the UI lists results by partition and shows a date × model grid of passed/failed.
    Partitioned checks are a "preview" API in Dagster 1.13; its warning at every load is not news."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec"
        )
        return [
            AssetCheckSpec(
                name=s.name,
                asset=AssetKey(asset_name),
                description=escape_prose(s.description),  # the UI renders markdown
                blocking=s.blocking,
                partitions_def=partitions_def,
            )
            for s in specs
        ]


def failing(result: CheckResult) -> list[Finding]:
    """The findings that fail the check (warning or critical), worst first."""
    bad = [f for f in result.findings if f.severity in ("warning", "critical")]
    return sorted(bad, key=lambda f: -SEVERITY_RANK[f.severity])


def verdict(result: CheckResult, model_name: str, partition_date: dt.date) -> str:
    """One line on what the check found for the model-day: which model-day, passed / failed / could not
    judge, and for a failure the failing subjects with their values."""
    where = f"{model_name} {partition_date.isoformat()}"
    if result.status == "unknown":
        return f"{where}: {result.unknown_reason}"
    bad = failing(result)
    if not bad:
        info = [f for f in result.findings if f.severity == "info"]
        return f"{where}: passed" + (f" ({len(info)} for review: {_subjects(info)})" if info else "")
    quoted = "; ".join(f.message or f"{f.subject}: {f.metric} = {fmt(f.value)}" for f in bad[:DESCRIBED])
    more = f"; and {len(bad) - DESCRIBED} more" if len(bad) > DESCRIBED else ""
    return f"{where}: failed ({result.severity}) on {_subjects(bad)}. {quoted}{more}"


def _subjects(findings: Sequence[Finding]) -> str:
    return ", ".join(dict.fromkeys(f.subject for f in findings))


def to_check_result(
    asset_name: str, result: CheckResult, model_name: str, partition_date: dt.date
) -> AssetCheckResult:
    """The UI's copy. The description starts with the model-day and what failed on it ("credit_default
    2026-07-06: critical on income. ..."), and the metadata names the model, the day and the failing
    subjects, so a list of results answers "which model-day failed, what failed" without opening them.

    A check that could not judge the day (`status` unknown) shows as failed with severity WARN, metadata
    `status: unknown` and a description "<model> <day>: not enough data: n=…, needs …": a green "passed"
    would claim a check that did not happen (how the age 65+ alert resolved itself), and ERROR would make
    a shortage of labels look like a broken model (docs/alerting.md, "Not enough data")."""
    severity = AssetCheckSeverity.ERROR if result.severity == "critical" else AssetCheckSeverity.WARN
    shown = [f for f in result.findings if f.severity != OK]  # judged-and-fine values are for alerting
    findings = json.loads(json.dumps([f.to_dict() for f in shown], default=_json_default))
    metadata: dict[str, object] = {
        "model": MetadataValue.text(model_name),
        "partition_date": MetadataValue.text(partition_date.isoformat()),
        "status": result.status,
        "failed_subjects": MetadataValue.text(_subjects(failing(result)) or "none"),
    }
    if result.unknown_subjects:
        metadata["unknown_subjects"] = MetadataValue.text(
            "; ".join(f"{f.subject}: {f.message}" for f in result.unknown_subjects[:FINDINGS_SHOWN])
        )
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
    settings = {k: v for k, v in result.metadata.items() if k in SETTING_KEYS}
    for key, value in result.metadata.items():
        if key in settings:
            continue
        if key.endswith("_md") or key in MARKDOWN_KEYS:
            metadata[key] = MetadataValue.md(str(value) or "nothing to show")
        else:
            metadata[key] = value
    if settings:
        metadata["settings"] = MetadataValue.text(
            ", ".join(f"{k} = {_setting_text(v)}" for k, v in settings.items())
        )
    metadata["findings"] = MetadataValue.json(findings)
    what = verdict(result, model_name, partition_date)
    return AssetCheckResult(
        asset_key=AssetKey(asset_name),
        check_name=result.check_name,
        passed=result.status == "passed",
        severity=severity,
        metadata=metadata,
        # the UI renders it as markdown: `__score__` would be a bold "score"
        description=escape_prose(f"{what}. {result.description}" if result.description else what),
    )


def _setting_text(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_setting_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_setting_text(v) for v in value) + "]"
    return fmt(value, 6) if isinstance(value, float) else str(value)


def outcome(results: Sequence[CheckResult]) -> tuple[dict[str, object], dict[str, str]]:
    """Metadata and tags of the model-day's materialization that summarize its checks: `failed_checks`
    (each failed check with its severity and subjects), `checks_failed` (how many) and the tag
    `monitoring/checks` = failed | unknown | passed. The asset page and each partition's materialization
    then say whether the model-day failed a check and which, next to the data it describes."""
    failed = [r for r in results if r.status == "failed"]
    unknown = [r for r in results if r.status == "unknown"]
    lines = [f"{r.check_name} ({r.severity}): {_subjects(failing(r))}" for r in failed]
    lines += [f"{r.check_name}: {r.unknown_reason}" for r in unknown]
    state = "failed" if failed else "unknown" if unknown else "passed"
    metadata: dict[str, object] = {
        "failed_checks": MetadataValue.text("; ".join(lines) or "none"),
        "checks_failed": len(failed),
    }
    return metadata, {CHECKS_TAG: state}


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
    return [to_check_result(asset_name, r, model_name, partition_date) for r in results]


# The steps after the metrics that read the warehouse (and so wait for the writes left in the background).
SETTLING_STEPS = ("alerts",)
