"""What every metric asset shares: its partition, the pool, the dependency on the snapshot and the
reference profile, and the way its checks are reported."""

import warnings

from dagster import AssetDep, AssetKey, BetaWarning, MultiToSingleDimensionPartitionMapping

# The model-dimension mapping is the documented way to depend on a per-model asset from date×model
# assets; its "beta" label is not news to an operator reading our logs.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*MultiToSingleDimensionPartitionMapping.*")

WAREHOUSE_POOL = "duckdb_warehouse"

SNAPSHOT_DEP = AssetDep(AssetKey("prediction_snapshots"))
REFERENCE_DEP = AssetDep(
    AssetKey("reference_profiles"),
    partition_mapping=MultiToSingleDimensionPartitionMapping(partition_dimension_name="model"),
)


def bands_for(baselines, domain: str):
    """The reference bands of one domain (performance, outcome, subgroup, overall, drift)."""
    if baselines.empty:
        return baselines
    return baselines[baselines["domain"] == domain].reset_index(drop=True)
