"""drift_scores: every feature, the score and the decision rate against the reference profile."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue

from monitoring_pipelines.core import drift
from monitoring_pipelines.core.formatting import code_span, fmt, markdown_table
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource

SUMMARY_ROWS = 12


def build(parts: Partitions) -> AssetsDefinition:
    @metric_asset(
        parts,
        "drift_scores",
        drift.CHECKS,
        description="PSI, JS, normalized Wasserstein, KS / chi-squared with BH-adjusted p-values, null-rate "
        "change, unseen and out-of-range shares for every feature, __score__ and __prediction_rate__.",
    )
    def drift_scores(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        thresholds = model.thresholds.drift
        profile, _ = monitoring.reference(model_name)
        columns = monitoring.snapshot(model, day).columns()
        scores = drift.compute_drift(profile, columns, thresholds)
        results = drift.drift_checks(scores, thresholds, profile.version)
        checks = record_checks(
            monitoring,
            context,
            "drift_scores",
            results,
            model_name,
            day,
            tables={"drift_scores": scores.assign(partition_date=day)},
        )
        drifted = sorted(set(scores.loc[scores["drifted"].astype(bool), "feature"]))
        yield MaterializeResult(
            metadata={
                "dagster/row_count": len(scores),
                "profile_version": profile.version,
                "rows_compared": columns.n_rows,
                "drifted_features": MetadataValue.text(", ".join(drifted) or "none"),
                "dagster/column_lineage": column_lineage(
                    {"value": [*model.features.all, "score", "prediction"], "n_current": model.features.all}
                ),
                "summary": MetadataValue.md(_summary(scores)),
            }
        )
        yield from checks

    return drift_scores


def _summary(scores) -> str:
    effect = scores[scores["statistic"].isin(["psi", "wasserstein_norm", "js"])]
    if effect.empty:
        return "no statistics (too few rows?)"
    worst = effect.sort_values("value", ascending=False).drop_duplicates("feature").head(SUMMARY_ROWS)
    return markdown_table(
        [
            (code_span(r.feature), r.statistic, fmt(r.value), fmt(r.threshold), str(r.drifted), r.severity)
            for r in worst.itertuples()
        ],
        ["feature", "statistic", "value", "threshold", "drifted", "severity"],
        formatters=str,
        markdown=["feature"],
    )
