"""shadow_comparisons: the challenger against the champion on the same live requests, and the verdict."""

import datetime as dt

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.core import shadow
from monitoring_pipelines.core.findings import CheckResult
from monitoring_pipelines.core.formatting import fmt, markdown_table
from monitoring_pipelines.defs.checks import outcome, record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.schema import SHADOW, result_columns
from monitoring_pipelines.storage.snapshot import Snapshot

SHADOW_COLUMNS = ("partition_date", "prediction_id", "request_id", "model_version", "role", "ts", "score")
SHADOW_COLUMNS += ("prediction", "latency_ms", "status")


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "shadow_comparisons",
        shadow.CHECKS,
        description="Champion vs each shadow version on the same request_ids: agreement, flips, score "
        "correlation, latency and errors; with labels, paired metric deltas with CIs and p-values, per segment.",
        needs_reference=False,
    )
    def shadow_comparisons(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        thresholds = model.thresholds
        snap = monitoring.snapshot(model, day)
        recommendations: list[shadow.Recommendation] = []
        if snap.has_role(SHADOW):
            monitoring.labelled(model, day, snap)
            paired, coverage = snap.shadow_pairs(model.segments)
            task = {"task": model.task, "classes": list(model.classes)}
            comparisons = shadow.shadow_comparisons(
                paired, coverage, model.segments, thresholds.shadow, **task
            )
            pooled, pooled_coverage = _pool(monitoring, model, day, paired, coverage)
            recommendations = shadow.pooled_recommendations(
                pooled,
                pooled_coverage,
                model.segments,
                thresholds.shadow,
                thresholds.serving,
                comparisons=comparisons if pooled is paired else None,  # a pool of today alone
                **task,
            )
            results = shadow.shadow_checks(comparisons, recommendations, thresholds.shadow)
        else:
            comparisons = pd.DataFrame(columns=result_columns("shadow_comparisons"))
            results = [
                CheckResult(spec.name, [], description="no shadow scored this day") for spec in shadow.CHECKS
            ]
        table = comparisons.reindex(columns=result_columns("shadow_comparisons"))
        checks = record_checks(
            monitoring,
            context,
            "shadow_comparisons",
            results,
            model_name,
            day,
            tables={
                "shadow_comparisons": table.assign(model_name=model_name, partition_date=day),
                "shadow_recommendations": shadow.recommendation_rows(recommendations).assign(
                    model_name=model_name, partition_date=day
                ),
            },
        )
        checked, tags = outcome(results)
        yield MaterializeResult(
            tags=tags,
            metadata={
                **checked,
                "dagster/row_count": len(table),
                "dagster/column_lineage": column_lineage(
                    {
                        "champion_version": ["model_version", "role"],
                        "shadow_version": ["model_version", "role"],
                        "segment_value": list(model.segments),
                        "champion_value": ["score", "prediction", "latency_ms", "status"],
                        "shadow_value": ["score", "prediction", "latency_ms", "status"],
                    }
                ),
                "shadow_verdict": MetadataValue.md(_verdicts_md(recommendations)),
            },
        )
        yield from checks

    return shadow_comparisons


def _pool(monitoring: MonitoringResource, model, day, paired: pd.DataFrame, coverage: pd.DataFrame):
    """Today's pairs plus those of the window's earlier days (read from the warehouse, shadow columns only,
    and only when an earlier day had a shadow)."""
    start, _ = shadow.pool_window(day, model.thresholds.shadow)
    earlier_end = day - dt.timedelta(days=1)
    if start > earlier_end or not _has_shadow(monitoring, model.name, start, earlier_end):
        return paired, coverage
    columns = [*SHADOW_COLUMNS, *model.segments]
    with Snapshot.from_warehouse(monitoring.warehouse, model, start, earlier_end, columns) as earlier:
        monitoring.labelled(model, start, earlier)
        before, before_coverage = earlier.shadow_pairs(model.segments)
    pooled = pd.concat([before, paired], ignore_index=True)
    return pooled, shadow.merge_coverage([before_coverage, coverage])


def _has_shadow(monitoring: MonitoringResource, model_name: str, start, end) -> bool:
    frame = monitoring.warehouse.query(
        "SELECT count(*) AS n FROM monitoring.prediction_snapshots WHERE model_name = ? "
        "AND partition_date BETWEEN ? AND ? AND role = ?",
        [model_name, start, end, SHADOW],
    )
    return bool(len(frame) and frame["n"].iloc[0])


def _verdicts_md(recommendations: list[shadow.Recommendation]) -> str:
    """One row per champion/shadow pair: verdict, primary-metric delta with its interval, labelled days,
    reasons; every cell escaped (a version or segment name must not turn into markup)."""
    if not recommendations:
        return "no shadow scored this day"

    def delta(value: float | None) -> str:
        return fmt(value, 4, style="f", sign=True, missing="n/a")

    rows = [
        (
            f"{r.shadow_version} vs {r.champion_version}",
            r.verdict.replace("_", " "),
            f"{r.metric} {delta(r.delta)} ({delta(r.ci_low)} … {delta(r.ci_high)})",
            f"{r.days}" + (f" (~{r.days_needed} more needed)" if r.days_needed else ""),
            "; ".join(r.reasons) or "–",
        )
        for r in recommendations
    ]
    return markdown_table(
        rows, ["pair", "verdict", "delta (95 % CI)", "labelled days", "reasons"], formatters=str
    )
