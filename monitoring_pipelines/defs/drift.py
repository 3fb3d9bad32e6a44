"""drift_scores: every feature, the score and the decision rate against the reference profile."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.core.drift import compute_drift, drift_checks
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.data import snapshot_rows
from monitoring_pipelines.defs.partitions import split_key
from monitoring_pipelines.defs.reference import latest_profile
from monitoring_pipelines.defs.resources import MonitoringResource

DRIFT_CHECKS = {
    "feature_drift": "WARN: a feature's effect size (PSI, normalized Wasserstein, JS) passed its threshold "
    "AND the change is significant after Benjamini–Hochberg across the model's features AND the day has "
    "enough rows.",
    "critical_drift": "ERROR: PSI beyond the critical threshold on a feature, or drift of the score "
    "distribution / positive-decision rate (prediction drift).",
    "data_quality": "Null-rate increase, values outside the reference range, unseen categories: WARN, "
    "ERROR beyond the critical sizes.",
}


@metric_asset(
    "drift_scores",
    DRIFT_CHECKS,
    description="PSI, JS, normalized Wasserstein, KS / chi-squared with BH-adjusted p-values, null-rate "
    "change, unseen and out-of-range shares for every feature, __score__ and __prediction_rate__.",
)
def drift_scores(context: AssetExecutionContext, monitoring: MonitoringResource):
    model_name, day = split_key(context.partition_key)
    model = monitoring.config.model(model_name)
    warehouse = monitoring.warehouse
    profile = latest_profile(warehouse, model_name)
    current = snapshot_rows(warehouse, model, day)
    thresholds = model.thresholds.drift
    drift = compute_drift(profile, current, thresholds)
    outcomes = drift_checks(drift, thresholds, profile.version)
    warehouse.replace_partition("drift_scores", drift.assign(partition_date=day), model_name, day)
    checks = record_checks(warehouse, "drift_scores", outcomes, model_name, day, context.run_id)
    drifted = sorted(set(drift.loc[drift["drifted"].astype(bool), "feature"]))
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(drift),
            "profile_version": profile.version,
            "rows_compared": len(current),
            "drifted_features": MetadataValue.text(", ".join(drifted) or "none"),
        "dagster/column_lineage": column_lineage(
            {"value": [*model.features.all, "score", "prediction"], "n_current": model.features.all}
        ),
            "summary": MetadataValue.md(_summary(drift)),
        }
    )
    yield from checks


def _summary(drift) -> str:
    effect = drift[drift["statistic"].isin(["psi", "wasserstein_norm", "js"])]
    if effect.empty:
        return "no statistics (too few rows?)"
    worst = effect.sort_values("value", ascending=False).drop_duplicates("feature").head(12)
    lines = ["| feature | statistic | value | threshold | drifted | severity |", "|---|---|---|---|---|---|"]
    for r in worst.itertuples():
        lines.append(
            f"| {r.feature} | {r.statistic} | {r.value:.4g} | {r.threshold:.4g} | {r.drifted} | {r.severity} |"
        )
    return "\n".join(lines)
