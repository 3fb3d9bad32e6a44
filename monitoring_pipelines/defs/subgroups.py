"""subgroup_metrics: every segment value (and configured intersections) with CIs, gaps and parity."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.core import fairness
from monitoring_pipelines.defs.checks import outcome, record_checks
from monitoring_pipelines.defs.common import bands_for, column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.schema import result_columns


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "subgroup_metrics",
        fairness.CHECKS,
        description="Disaggregated metrics per segment value: n, positive rate, TPR, FPR, precision, AUC, "
        "calibration with CIs, the gap and ratio to the overall value, the four-fifths ratio to the "
        "most-favoured value, parity differences per segment (regression: MAE, bias and the MAE ratio to "
        "the rest of the segment; multiclass: accuracy, per-class recall and the accuracy shortfall).",
    )
    def subgroup_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        thresholds = model.thresholds.subgroups
        rows = monitoring.labelled(model, day).scored(model.segments)
        today, overall = fairness.subgroup_and_overall_metrics(
            rows,
            model.segments,
            model.segment_intersections,
            min_n=thresholds.min_n,
            task=model.task,
            classes=list(model.classes),
        )
        _, baselines = monitoring.reference(model_name)
        results = fairness.subgroup_checks(
            today,
            bands_for(baselines, "subgroup"),
            overall,
            bands_for(baselines, "overall"),
            thresholds,
            task=model.task,
        )
        table = today.reindex(columns=result_columns("subgroup_metrics"))
        checks = record_checks(
            monitoring,
            context,
            "subgroup_metrics",
            results,
            model_name,
            day,
            tables={"subgroup_metrics": table.assign(model_name=model_name, partition_date=day)},
        )
        failing = sorted(
            {f.subject for r in results for f in r.findings if f.severity in ("warning", "critical")}
        )
        review = sorted({f.subject for r in results for f in r.findings if f.severity == "info"})
        checked, tags = outcome(results)
        yield MaterializeResult(
            tags=tags,
            metadata={
                **checked,
                "dagster/row_count": len(table),
                "segments": MetadataValue.text(", ".join(model.segments) or "none"),
                "dagster/column_lineage": column_lineage(
                    {"segment_value": list(model.segments), "value": ["score", "prediction", "request_id"]}
                ),
                "failing_segments": MetadataValue.text(", ".join(failing) or "none"),
                "gaps_for_review": MetadataValue.text(", ".join(review) or "none"),  # standing: info
                "labelled_rows": int(rows["label"].notna().sum()) if len(rows) else 0,
            },
        )
        yield from checks

    return subgroup_metrics
