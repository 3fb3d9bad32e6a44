"""shadow_comparisons: the challenger against the champion on the same live requests, and the verdict."""

import datetime as dt
import json

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.core.findings import CheckOutcome
from monitoring_pipelines.core.shadow import promotion_recommendation, shadow_checks
from monitoring_pipelines.core.shadow import shadow_comparisons as compare
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import metric_asset
from monitoring_pipelines.defs.data import known_labels, snapshot_rows
from monitoring_pipelines.defs.partitions import split_key
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.warehouse import TABLES

SHADOW_CHECKS = {
    "shadow_coverage": "WARN: too few requests were scored by both champion and shadow to compare them.",
    "shadow_harm": "WARN: the shadow is significantly worse than the champion on a segment beyond the "
    "tolerance, or breaks the latency / error-rate SLOs: promoting it would hurt someone.",
    "shadow_promotion": "INFO: the promotion verdict over the last N labelled days (promote / do not promote); "
    "'keep collecting' with the days still needed is in the metadata.",
}


@metric_asset(
    "shadow_comparisons",
    SHADOW_CHECKS,
    description="Champion vs each shadow version on the same request_ids: agreement, flips, score "
    "correlation, latency and errors; with labels, paired metric deltas with CIs and p-values, per segment.",
    needs_reference=False,
)
def shadow_comparisons(context: AssetExecutionContext, monitoring: MonitoringResource):
    model_name, day = split_key(context.partition_key)
    config = monitoring.config
    model = config.model(model_name)
    thresholds = model.thresholds
    warehouse = monitoring.warehouse

    rows = snapshot_rows(warehouse, model, day, role=None, ok_only=False)
    has_shadow = bool((rows["role"] == "shadow").any()) if len(rows) else False
    comparisons = compare(rows, known_labels(config, model, day), model.segments, thresholds.shadow) \
        if has_shadow else pd.DataFrame(columns=TABLES["shadow_comparisons"])

    recommendations = []
    window_start = day - dt.timedelta(days=thresholds.shadow.window_days - 1)
    if has_shadow:
        pooled = snapshot_rows(warehouse, model, window_start, day, role=None, ok_only=False)
        labels = known_labels(config, model, window_start, day)
        labelled_days = int(pooled.loc[pooled["request_id"].isin(labels["request_id"]), "partition_date"].nunique())
        pooled_cmp = compare(pooled, labels, model.segments, thresholds.shadow)
        recommendations = promotion_recommendation(pooled_cmp, thresholds.shadow, thresholds.serving,
                                                   days=labelled_days)
    if has_shadow:
        outcomes = shadow_checks(comparisons, recommendations, thresholds.shadow)
    else:
        outcomes = [CheckOutcome(name, [], description="no shadow scored this day") for name in SHADOW_CHECKS]

    verdicts = pd.DataFrame([
        {"champion_version": r.champion_version, "shadow_version": r.shadow_version, "verdict": r.verdict,
         "primary_metric": r.metric, "delta": r.delta, "ci_low": r.ci_low, "ci_high": r.ci_high,
         "p_value": r.p_value, "days_pooled": r.days, "days_needed": r.days_needed, "n": r.n,
         "harmed_segments": json.dumps(r.harmed_segments, default=str),
         "slo_breaches": json.dumps(r.slo_breaches, default=str), "reasons": json.dumps(r.reasons)}
        for r in recommendations
    ], columns=[c for c in TABLES["shadow_recommendations"] if c not in ("model_name", "partition_date")])
    table = comparisons.reindex(columns=[c for c in TABLES["shadow_comparisons"] if c in comparisons.columns])
    warehouse.replace_partitions(
        {"shadow_comparisons": table.assign(model_name=model_name, partition_date=day),
         "shadow_recommendations": verdicts.assign(model_name=model_name, partition_date=day)},
        model_name, day,
    )
    checks = record_checks(warehouse, "shadow_comparisons", outcomes, model_name, day, context.run_id)
    verdict_md = "\n".join(
        f"- **{r.shadow_version} vs {r.champion_version}: {r.verdict.replace('_', ' ')}** — "
        f"{r.metric} Δ {_fmt(r.delta)} (95 % CI {_fmt(r.ci_low)} … {_fmt(r.ci_high)}), {r.days} labelled days"
        + (f", ~{r.days_needed} more days needed" if r.days_needed else "")
        + ("; " + "; ".join(r.reasons) if r.reasons else "")
        for r in recommendations
    ) or "no shadow scored this day"
    yield MaterializeResult(metadata={
        "dagster/row_count": len(table),
        "shadow_verdict": MetadataValue.md(verdict_md),
    })
    yield from checks


def _fmt(value) -> str:
    try:
        return f"{float(value):+.4f}"
    except (TypeError, ValueError):
        return "n/a"
