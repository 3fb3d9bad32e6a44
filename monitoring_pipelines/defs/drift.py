"""drift_scores: every feature, the score and the decision rate against the reference profile."""

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from monitoring_pipelines.config import DriftThresholds, ModelConfig
from monitoring_pipelines.core.drift import compute_drift, drift_checks
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines.defs.checks import record_checks
from monitoring_pipelines.defs.common import column_lineage, metric_asset
from monitoring_pipelines.defs.data import snapshot_count, snapshot_rows, snapshot_sql
from monitoring_pipelines.defs.partitions import split_key
from monitoring_pipelines.defs.reference import latest_profile
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.warehouse import Warehouse

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
    thresholds = model.thresholds.drift
    rows = snapshot_count(warehouse, model, day)
    if rows > LARGE_DAY_ROWS:
        drift = _large_day_drift(warehouse, model, day, profile, thresholds)
    else:
        drift = compute_drift(profile, snapshot_rows(warehouse, model, day), thresholds)
    outcomes = drift_checks(drift, thresholds, profile.version)
    warehouse.replace_partition("drift_scores", drift.assign(partition_date=day), model_name, day)
    checks = record_checks(warehouse, "drift_scores", outcomes, model_name, day, context.run_id)
    drifted = sorted(set(drift.loc[drift["drifted"].astype(bool), "feature"]))
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(drift),
            "profile_version": profile.version,
            "rows_compared": rows,
            "large_day_path": rows > LARGE_DAY_ROWS,
            "drifted_features": MetadataValue.text(", ".join(drifted) or "none"),
            "dagster/column_lineage": column_lineage(
                {"value": [*model.features.all, "score", "prediction"], "n_current": model.features.all}
            ),
            "summary": MetadataValue.md(_summary(drift)),
        }
    )
    yield from checks


# Above this many rows a day reaches compute_drift as a DuckDB relation over a Parquet copy, one column at
# a time, instead of a DataFrame: 10M rows then stay under 1 GB (bench/drift_bench.py --rows 10000000).
LARGE_DAY_ROWS = 2_000_000
LARGE_DAY_MEMORY_LIMIT = "512MB"


def _large_day_drift(
    warehouse: Warehouse,
    model: ModelConfig,
    day: dt.date,
    profile: ReferenceProfile,
    thresholds: DriftThresholds,
) -> pd.DataFrame:
    with tempfile.TemporaryDirectory(prefix="mp-drift-") as tmp:
        path = Path(tmp) / "day.parquet"
        warehouse.export_parquet(snapshot_sql(model), [model.name, day], path)
        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit = '{LARGE_DAY_MEMORY_LIMIT}'")
            return compute_drift(profile, con.read_parquet(str(path)), thresholds)
        finally:
            con.close()


def _summary(drift: pd.DataFrame) -> str:
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
