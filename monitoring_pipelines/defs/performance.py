"""performance_metrics: measured metrics as labels land, CBPE estimates before, business outcomes."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.core.outcomes import daily_outcomes, outcome_checks
from monitoring_pipelines.core.performance import daily_performance, markdown_table, performance_checks
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import bands_for, column_lineage, metric_asset
from monitoring_pipelines.defs.data import known_labels, known_outcomes, snapshot_rows
from monitoring_pipelines.defs.partitions import split_key
from monitoring_pipelines.defs.reference import latest_baselines
from monitoring_pipelines.defs.resources import MonitoringResource

PERFORMANCE_CHECKS = {
    "performance_degradation": "WARN: a metric is outside its reference band (mean ± k·σ of the reference "
    "days) and its 95 % CI excludes the reference mean; measured when enough labels, else estimated (CBPE).",
    "performance_critical_drop": "ERROR: a metric dropped beyond the critical limit (default AUC −0.05).",
    "business_outcome": "WARN: a business outcome's rate is outside its reference band.",
}


@metric_asset(
    "performance_metrics",
    PERFORMANCE_CHECKS,
    description="Champion metrics of a model-day with 95 % CIs: measured on the labels known so far "
    "(estimated = false) and estimated from calibrated scores (estimated = true); plus outcome:<name> rows.",
)
def performance_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
    model_name, day = split_key(context.partition_key)
    config = monitoring.config
    model = config.model(model_name)
    thresholds = model.thresholds
    warehouse = monitoring.warehouse

    champion = snapshot_rows(warehouse, model, day)
    labels = known_labels(config, model, day)
    metrics = daily_performance(champion, labels, thresholds.performance)
    outcome_rows = daily_outcomes(champion, known_outcomes(config, model, day), model.outcomes)
    baselines = latest_baselines(warehouse, model_name)

    outcomes = performance_checks(metrics, bands_for(baselines, "performance"), thresholds.performance)
    outcomes += outcome_checks(outcome_rows, bands_for(baselines, "outcome"), thresholds.outcomes)

    rows = pd.concat([metrics, outcome_rows], ignore_index=True) if len(outcome_rows) else metrics
    warehouse.replace_partition(
        "performance_metrics", rows.assign(model_name=model_name, partition_date=day), model_name, day
    )
    checks = record_checks(warehouse, "performance_metrics", outcomes, model_name, day, context.run_id)
    measured = metrics[~metrics["estimated"].astype(bool)]
    labelled = float(metrics["labelled_fraction"].max()) if len(metrics) else 0.0
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "labelled_fraction": labelled,
            "dagster/column_lineage": column_lineage(
                {"value": ["score", "prediction", "request_id"], "n": ["request_id"]}
            ),
            "measured_metrics": len(measured),
            "metrics": MetadataValue.md(
                markdown_table(
                    rows.to_dict("records"),
                    ["metric", "estimated", "value", "ci_low", "ci_high", "n", "labelled_fraction"],
                )
            ),
        }
    )
    yield from checks
