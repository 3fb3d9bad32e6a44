"""performance_metrics: measured metrics as labels land, label-free estimates before (CBPE; DLE for
regression), business outcomes, and a multiclass model's confusion matrix."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.core import outcomes, performance
from monitoring_pipelines.core.formatting import json_float, markdown_table
from monitoring_pipelines.defs.checks import outcome, record_checks
from monitoring_pipelines.defs.common import bands_for, column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "performance_metrics",
        (*performance.CHECKS, *outcomes.CHECKS),
        description="Champion metrics of a model-day with 95 % CIs, per task: measured on the labels known so far "
        "(estimated = false) and estimated from the scores, calibrated on the reference's labels (estimated = "
        "true; trusted = false when the day's scores lie outside the reference's; CBPE, DLE for regression); "
        "label_mean / label_share:<class> rows for target drift; plus outcome:<name> rows. Multiclass models "
        "also write confusion_matrix.",
    )
    def performance_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        thresholds = model.thresholds
        snap = monitoring.labelled(model, day)
        profile, baselines = monitoring.reference(model_name)
        calibration, support = performance.estimation_inputs(profile)
        scored = snap.scored(model.segments)
        metrics = performance.daily_performance(
            scored,
            thresholds=thresholds.performance,
            calibration=calibration,
            support=support,
            model=model,
        )
        totals, requests = snap.outcome_totals(model.outcomes)
        outcome_rows = outcomes.outcome_rows(totals, requests, model.outcomes)
        performance_bands = bands_for(baselines, "performance")
        task_metrics = performance.task_metrics(model)
        results = performance.performance_checks(
            metrics, performance_bands, thresholds.performance, task_metrics
        )
        results.append(
            performance.target_drift_check(metrics, performance_bands, thresholds.performance, task_metrics)
        )
        results += outcomes.outcome_checks(outcome_rows, bands_for(baselines, "outcome"), thresholds.outcomes)
        rows = performance.table_rows(metrics, outcome_rows)
        tables = {}
        if model.is_multiclass:  # replaced on every run: a day whose labels were all withdrawn has none
            confusion = performance.confusion_matrix_rows(scored, model.classes)
            tables["confusion_matrix"] = confusion.assign(model_name=model_name, partition_date=day)
        checks = record_checks(
            monitoring,
            context,
            "performance_metrics",
            results,
            model_name,
            day,
            tables={
                "performance_metrics": rows.assign(model_name=model_name, partition_date=day),
                # label rows of the day's requests that could not be used: kept, not dropped silently
                "quarantined_labels": snap.quarantined_labels().assign(
                    model_name=model_name, partition_date=day
                ),
                **tables,
            },
        )
        measured = metrics[~metrics["estimated"].astype(bool)]
        checked, tags = outcome(results)
        yield MaterializeResult(
            tags=tags,
            metadata={
                **checked,
                "dagster/row_count": len(rows),
                "labelled_fraction": float(metrics["labelled_fraction"].max()) if len(metrics) else 0.0,
                "dagster/column_lineage": column_lineage(
                    {"value": ["score", "prediction", "request_id"], "n": ["request_id"]}
                ),
                "measured_metrics": len(measured),
                "invalid_labels": int(snap.label_counts.get("invalid_labels", 0)),
                "label_counts": MetadataValue.json(dict(snap.label_counts)),
                "estimate_trusted": bool(metrics.attrs["trusted"]),
                "scores_outside_reference": json_float(metrics.attrs["outside_support"]),
                "estimate_note": metrics.attrs["estimate_note"],
                "metrics": MetadataValue.md(
                    markdown_table(
                        rows.to_dict("records"),
                        [
                            "metric",
                            "estimated",
                            "trusted",
                            "value",
                            "ci_low",
                            "ci_high",
                            "n",
                            "labelled_fraction",
                        ],
                    )
                ),
            },
        )
        yield from checks

    return performance_metrics
