"""subgroup_metrics: every segment value (and configured intersections) with CIs, gaps and parity."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.core.fairness import (
    overall_metrics,
    subgroup_checks,
)
from monitoring_pipelines.core.fairness import (
    subgroup_metrics as compute_subgroups,
)
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import bands_for, column_lineage, metric_asset
from monitoring_pipelines.defs.data import known_labels, snapshot_rows, with_labels
from monitoring_pipelines.defs.partitions import split_key
from monitoring_pipelines.defs.reference import latest_baselines
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.warehouse import TABLES

SUBGROUP_CHECKS = {
    "fairness_gap": "WARN: positive-rate disparity outside the four-fifths band, or demographic-parity / "
    "equalized-odds difference beyond its threshold, for segments with enough rows.",
    "differential_degradation": "ERROR: a segment's metric fell against its own reference band by more than "
    "the overall metric fell (plus a margin): the group getting worse while the average holds.",
}


@metric_asset(
    "subgroup_metrics",
    SUBGROUP_CHECKS,
    description="Disaggregated metrics per segment value: n, positive rate, TPR, FPR, precision, AUC, "
    "calibration with CIs, the gap and ratio to the overall value, parity differences per segment.",
)
def subgroup_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
    model_name, day = split_key(context.partition_key)
    config = monitoring.config
    model = config.model(model_name)
    thresholds = model.thresholds.subgroups
    warehouse = monitoring.warehouse
    rows = with_labels(snapshot_rows(warehouse, model, day), known_labels(config, model, day))
    today = compute_subgroups(rows, model.segments, model.segment_intersections, min_n=thresholds.min_n)
    overall = overall_metrics(rows)
    baselines = latest_baselines(warehouse, model_name)
    outcomes = subgroup_checks(
        today, bands_for(baselines, "subgroup"), overall, bands_for(baselines, "overall"), thresholds
    )
    table = today.reindex(columns=[c for c in TABLES["subgroup_metrics"] if c in today.columns])
    warehouse.replace_partition(
        "subgroup_metrics", table.assign(model_name=model_name, partition_date=day), model_name, day
    )
    checks = record_checks(warehouse, "subgroup_metrics", outcomes, model_name, day, context.run_id)
    failing = sorted({f.subject for o in outcomes for f in o.findings if f.severity != "info"})
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "segments": MetadataValue.text(", ".join(model.segments) or "none"),
            "dagster/column_lineage": column_lineage(
                {"segment_value": list(model.segments), "value": ["score", "prediction", "request_id"]}
            ),
            "failing_segments": MetadataValue.text(", ".join(failing) or "none"),
            "labelled_rows": int(rows["label"].notna().sum()) if len(rows) else 0,
        }
    )
    yield from checks
