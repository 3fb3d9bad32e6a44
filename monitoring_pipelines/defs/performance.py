"""performance_metrics: measured metrics as labels land, CBPE estimates before, business outcomes."""

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.core import outcomes, performance
from monitoring_pipelines.core.formatting import markdown_table
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import bands_for, column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "performance_metrics",
        (*performance.CHECKS, *outcomes.CHECKS),
        description="Champion metrics of a model-day with 95 % CIs: measured on the labels known so far "
        "(estimated = false) and estimated from calibrated scores (estimated = true); plus outcome:<name> rows.",
    )
    def performance_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        thresholds = model.thresholds
        snap = monitoring.labelled(model, day)
        metrics = performance.daily_performance(
            snap.scored(model.segments), thresholds=thresholds.performance
        )
        totals, requests = snap.outcome_totals(model.outcomes)
        outcome_rows = outcomes.outcome_rows(totals, requests, model.outcomes)
        _, baselines = monitoring.reference(model_name)
        results = performance.performance_checks(
            metrics, bands_for(baselines, "performance"), thresholds.performance
        )
        results += outcomes.outcome_checks(outcome_rows, bands_for(baselines, "outcome"), thresholds.outcomes)
        rows = pd.concat([metrics, outcome_rows], ignore_index=True) if len(outcome_rows) else metrics
        checks = record_checks(
            monitoring,
            context,
            "performance_metrics",
            results,
            model_name,
            day,
            tables={"performance_metrics": rows.assign(model_name=model_name, partition_date=day)},
        )
        measured = metrics[~metrics["estimated"].astype(bool)]
        yield MaterializeResult(
            metadata={
                "dagster/row_count": len(rows),
                "labelled_fraction": float(metrics["labelled_fraction"].max()) if len(metrics) else 0.0,
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

    return performance_metrics
