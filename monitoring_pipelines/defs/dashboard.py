"""dashboard: the static site people look at, rebuilt after the nightly runs."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from monitoring_pipelines.defs.resources import MonitoringResource


@asset(
    group_name="reporting",
    kinds={"html", "altair"},
    deps=[AssetKey("alerts"), AssetKey("backlog_items"), AssetKey("monitoring_kpis")],
    description="Self-contained static site under <data_dir>/dashboard for readers who never open Dagster: the "
    "index says per model what is wrong, since when and what is being done, with model quality beside the "
    "business outcome; each model page groups open alerts by incident, then quality and outcome against their "
    "usual range, input drift, groups of people, shadow vs champion, serving and the backlog. Jinja2 templates "
    "with autoescaping; opens from disk with no network. Also publishes a read-only copy of the warehouse for "
    "analysts.",
)
def dashboard(context: AssetExecutionContext, monitoring: MonitoringResource) -> MaterializeResult:
    from monitoring_pipelines.dashboard.render import render_dashboard  # altair: imported when drawing

    config = monitoring.config
    warehouse = monitoring.warehouse
    analyst_copy = warehouse.publish_copy() if warehouse.path.exists() else None
    result = render_dashboard(warehouse, config, config.data_dir / "dashboard")
    return MaterializeResult(
        metadata={
            "index": MetadataValue.path(str(result.index_path)),
            "pages": MetadataValue.json({m: str(p) for m, p in result.model_pages.items()}),
            "charts": result.charts,
            "analyst_copy": MetadataValue.path(str(analyst_copy)) if analyst_copy else "none",
        }
    )
