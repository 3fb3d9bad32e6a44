"""shadow_comparisons: the challenger against the champion on the same live requests, and the verdict."""

import datetime as dt

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.core.findings import CheckResult
from monitoring_pipelines.core.shadow import (
    promotion_recommendation,
    recommendation_rows,
    recommendations_markdown,
    shadow_checks,
)
from monitoring_pipelines.core.shadow import shadow_comparisons as compare
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
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
    recommendations = []
    if len(rows) and (rows["role"] == "shadow").any():
        # The verdict pools the last window_days days: one day's labels are too few to decide. The pool's
        # labels cover the day too, so they are read once; only the earlier days' rows are read again.
        start = day - dt.timedelta(days=thresholds.shadow.window_days - 1)
        labels = known_labels(config, model, start, day)
        comparisons = compare(rows, labels, model.segments, thresholds.shadow)
        earlier = snapshot_rows(warehouse, model, start, day - dt.timedelta(days=1), role=None, ok_only=False)
        pooled = pd.concat([earlier, rows], ignore_index=True) if len(earlier) else rows
        labelled_days = int(
            pooled.loc[pooled["request_id"].isin(labels["request_id"]), "partition_date"].nunique()
        )
        recommendations = promotion_recommendation(
            compare(pooled, labels, model.segments, thresholds.shadow),
            thresholds.shadow,
            thresholds.serving,
            days=labelled_days,
        )
        outcomes = shadow_checks(comparisons, recommendations, thresholds.shadow)
    else:
        comparisons = pd.DataFrame(columns=TABLES["shadow_comparisons"])
        outcomes = [CheckResult(name, [], description="no shadow scored this day") for name in SHADOW_CHECKS]

    table = comparisons.reindex(columns=[c for c in TABLES["shadow_comparisons"] if c in comparisons.columns])
    warehouse.replace_partitions(
        {
            "shadow_comparisons": table.assign(model_name=model_name, partition_date=day),
            "shadow_recommendations": recommendation_rows(recommendations).assign(
                model_name=model_name, partition_date=day
            ),
        },
        model_name,
        day,
    )
    checks = record_checks(warehouse, "shadow_comparisons", outcomes, model_name, day, context.run_id)
    yield MaterializeResult(
        metadata={
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
            "shadow_verdict": MetadataValue.md(recommendations_markdown(recommendations)),
        }
    )
    yield from checks
