"""serving_metrics: latency percentiles, traffic and errors per role and version against SLOs."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.core.performance import markdown_table
from monitoring_pipelines.core.serving import serving_checks
from monitoring_pipelines.core.serving import serving_metrics as compute_serving
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.data import snapshot_rows
from monitoring_pipelines.defs.partitions import split_key
from monitoring_pipelines.defs.resources import MonitoringResource

SERVING_CHECKS = {
    "serving_slo": "p99 latency and error rate per role and version against the SLOs in the config "
    "(WARN and ERROR levels; a shadow's breach is at most a warning since it serves no user).",
}


@metric_asset(
    "serving_metrics",
    SERVING_CHECKS,
    description="Latency p50/p95/p99, requests, peak requests per hour and error rate of a model-day, "
    "per role and version plus a model-wide row (role = 'all').",
    needs_reference=False,
    kinds=frozenset({"duckdb"}),
)
def serving_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
    model_name, day = split_key(context.partition_key)
    model = monitoring.config.model(model_name)
    warehouse = monitoring.warehouse
    rows = snapshot_rows(warehouse, model, day, role=None, ok_only=False)
    metrics = compute_serving(rows)
    outcomes = serving_checks(metrics, model.thresholds.serving)
    warehouse.replace_partition(
        "serving_metrics", metrics.assign(model_name=model_name, partition_date=day), model_name, day
    )
    checks = record_checks(warehouse, "serving_metrics", outcomes, model_name, day, context.run_id)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(metrics),
            "dagster/column_lineage": column_lineage(
                {
                    "role": ["role"],
                    "model_version": ["model_version"],
                    **{f"latency_{q}_ms": ["latency_ms"] for q in ("p50", "p95", "p99")},
                    "requests": ["request_id"],
                    "peak_requests_per_hour": ["ts"],
                    "error_rate": ["status"],
                    "errors": ["status"],
                }
            ),
            "serving": MetadataValue.md(markdown_table(metrics.to_dict("records"), list(metrics.columns))),
        }
    )
    yield from checks
