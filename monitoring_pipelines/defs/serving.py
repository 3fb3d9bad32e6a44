"""serving_metrics: latency percentiles, traffic and errors per role and version against SLOs."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.core import serving
from monitoring_pipelines.core.formatting import fmt, markdown_table
from monitoring_pipelines.defs.checks import outcome, record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "serving_metrics",
        serving.CHECKS,
        description="Latency p50/p95/p99, requests, peak requests per hour and error rate of a model-day, "
        "per role and version plus a model-wide row (role = '__all__').",
        needs_reference=False,
        kinds=frozenset({"duckdb"}),
    )
    def serving_metrics(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        metrics = monitoring.snapshot(model, day).serving()
        results = serving.serving_checks(metrics, model.thresholds.serving)
        checks = record_checks(
            monitoring,
            context,
            "serving_metrics",
            results,
            model_name,
            day,
            tables={"serving_metrics": metrics.assign(model_name=model_name, partition_date=day)},
        )
        checked, tags = outcome(results)
        yield MaterializeResult(
            tags=tags,
            metadata={
                **checked,
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
                "serving": MetadataValue.md(_serving_md(metrics)),
            },
        )
        yield from checks

    return serving_metrics


def _serving_md(metrics) -> str:
    """One row per role:version, four columns (the UI clips wider tables): latency percentiles,
    requests with the peak hour, errors."""
    rows = [
        (
            f"{r['role']}:{r['model_version']}",
            " / ".join(fmt(r[f"latency_{q}_ms"], 4) for q in ("p50", "p95", "p99")),
            f"{fmt(r['requests'], grouping=True)} (peak {fmt(r['peak_requests_per_hour'], grouping=True)}/h)",
            f"{fmt(r['error_rate'] * 100, 3)} % ({fmt(r['errors'], grouping=True)})",
        )
        for r in metrics.to_dict("records")
    ]
    return markdown_table(
        rows,
        ["role:version", "latency p50 / p95 / p99 ms", "requests", "error rate (errors)"],
        formatters=str,
    )
