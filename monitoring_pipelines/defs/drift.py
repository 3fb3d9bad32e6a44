"""drift_scores: every feature, the score and the decision rate against the reference profile."""

import math
from dataclasses import replace

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.config import ModelConfig
from monitoring_pipelines.core import drift
from monitoring_pipelines.core.findings import OK, SEVERITY_RANK, CheckResult, Finding
from monitoring_pipelines.core.formatting import code_span, fmt, markdown_table
from monitoring_pipelines.defs.checks import outcome, record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource

SUMMARY_ROWS = 12


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "drift_scores",
        drift.CHECKS,
        description="PSI, JS, normalized Wasserstein, KS / chi-squared with BH-adjusted p-values, null-rate "
        "change, unseen and out-of-range shares for every feature and the model's output: __score__ (the score, "
        "a regression's predicted value, a multiclass model's top-label probability) and __prediction_rate__ "
        "(binary) or __predicted_class__ (multiclass).",
    )
    def drift_scores(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        thresholds = model.thresholds.drift
        profile, _ = monitoring.reference(model_name)
        columns = monitoring.snapshot(model, day).columns()
        scores = drift.compute_drift(profile, columns, thresholds)
        results = drift.drift_checks(scores, thresholds, profile.version)
        summary = _summary(results)
        # The drift checks show the same per-feature table as the asset, so their severities agree.
        results = [
            r
            if r.check_name == drift.DATA_QUALITY
            else replace(r, metadata={**r.metadata, "worst_features": summary})
            for r in results
        ]
        checks = record_checks(
            monitoring,
            context,
            "drift_scores",
            results,
            model_name,
            day,
            tables={"drift_scores": scores.assign(partition_date=day)},
        )
        drifted = sorted(set(scores.loc[scores["drifted"].astype(bool), "feature"]))
        checked, tags = outcome(results)
        yield MaterializeResult(
            tags=tags,
            metadata={
                **checked,
                "dagster/row_count": len(scores),
                "profile_version": profile.version,
                "rows_compared": columns.n_rows,
                "drifted_features": MetadataValue.text(", ".join(drifted) or "none"),
                "dagster/column_lineage": column_lineage(
                    {
                        "value": [*model.features.all, "score", "prediction", *_task_columns(model)],
                        "n_current": model.features.all,
                    }
                ),
                "summary": MetadataValue.md(summary),
            },
        )
        yield from checks

    return drift_scores


def _task_columns(model: ModelConfig) -> list[str]:
    """The snapshot columns a multiclass model's drift also reads (its predicted class)."""
    return ["predicted_class"] if model.is_multiclass else []


def _summary(results: list[CheckResult]) -> str:
    """One row per feature as the checks judged it, worst first: the drift finding an alert is opened
    from (critical_drift, else feature_drift) with its statistic, value and line, else the statistic
    closest to its line (ok); and the feature's worst data-quality finding. Built from the findings, so
    a severity here is the alert's (a table of the scores showed "warning" by JS beside an alert that
    was critical by PSI)."""
    by_check = {r.check_name: r for r in results}
    judged: dict[str, Finding] = {}
    for f in by_check[drift.CRITICAL_DRIFT].findings:
        if f.severity == "critical":
            judged[f.subject] = f
    for f in by_check[drift.FEATURE_DRIFT].findings:
        if f.subject not in judged and f.severity in ("warning", OK):
            judged[f.subject] = f
    quality: dict[str, Finding] = {}
    for f in by_check[drift.DATA_QUALITY].findings:
        if _rank(f) >= 0 and _rank(f) > _rank(quality.get(f.subject)):
            quality[f.subject] = f
    if not judged and not quality:
        return "no statistics (too few rows?)"

    def order(feature: str) -> tuple[int, float, str]:
        worst = max(_rank(judged.get(feature)), _rank(quality.get(feature)))
        return -worst, -_ratio(judged.get(feature)), feature

    rows = []
    for feature in sorted(set(judged) | set(quality), key=order)[:SUMMARY_ROWS]:
        f, q = judged.get(feature), quality.get(feature)
        rows.append(
            (
                code_span(feature),
                _judgement(f),
                _judgement(q),
            )
        )
    # three columns: the narrow partition panel of the UI clips wider tables
    return markdown_table(
        rows,
        ["feature", "drift: statistic value / line", "data quality"],
        formatters=str,
        markdown=["feature"],
    )


def _judgement(finding: Finding | None) -> str:
    """The severity (ok when judged and fine), statistic, value and line: `critical: psi 8.28 / 0.25`."""
    if finding is None:
        return "–"
    return f"{finding.severity}: {finding.metric} {fmt(finding.value, 3)} / {fmt(finding.threshold, 3)}"


def _rank(finding: Finding | None) -> int:
    """Severity rank of a finding: -1 for none or a judged-and-fine value."""
    return SEVERITY_RANK.get(finding.severity, -1) if finding is not None else -1


def _ratio(finding: Finding | None) -> float:
    """How far the value is past (or below) its line: the order within a severity."""
    if finding is None or finding.value is None or not finding.threshold:
        return -math.inf
    return finding.value / finding.threshold
