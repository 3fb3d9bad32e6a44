"""What every metric asset shares: its partitions, the pool, the dependency on the snapshot and the
reference profile, its checks declared up front, and the column lineage it reports."""

import warnings
from collections.abc import Callable, Sequence

from dagster import (
    AssetDep,
    AssetKey,
    AssetsDefinition,
    BetaWarning,
    MultiToSingleDimensionPartitionMapping,
    TableColumnDep,
    TableColumnLineage,
    asset,
)

from monitoring_pipelines.core.findings import CheckSpec
from monitoring_pipelines.core.formatting import escape_prose
from monitoring_pipelines.defs.checks import check_specs
from monitoring_pipelines.defs.partitions import Partitions

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


def metric_asset(
    parts: Partitions,
    name: str,
    checks: Sequence[CheckSpec],
    description: str,
    needs_reference: bool = True,
    kinds: frozenset[str] = frozenset({"duckdb", "scipy"}),
) -> Callable[[Callable], AssetsDefinition]:
    """The decorator every metric asset shares: date×model partitions, the warehouse pool, the snapshot
    (and reference) dependency, and its checks declared up front so the UI lists them."""
    return asset(
        name=name,
        partitions_def=parts.model_day,
        group_name="metrics",
        pool=WAREHOUSE_POOL,
        kinds=set(kinds),
        deps=[SNAPSHOT_DEP, REFERENCE_DEP] if needs_reference else [SNAPSHOT_DEP],
        check_specs=check_specs(name, checks, parts.model_day),
        description=escape_prose(description),  # the UI renders markdown: `__score__`
    )


def column_lineage(deps_by_column: dict[str, list[str]]) -> TableColumnLineage:
    """Which prediction_snapshots columns each output column is computed from, for the UI's lineage."""
    snapshot = AssetKey("prediction_snapshots")
    return TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(asset_key=snapshot, column_name=source) for source in sources]
            for column, sources in deps_by_column.items()
        }
    )
