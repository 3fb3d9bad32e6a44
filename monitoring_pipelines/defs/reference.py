"""reference_profiles: the baseline a model's live days are compared with, built once per version.

Besides the drift profile it records how much every daily statistic moves on ordinary reference
days (drift statistics, performance, outcomes, subgroup and overall metrics): those bands are what
the adaptive thresholds and the "outside its reference band" checks compare against. It is rebuilt
only when its inputs changed (storage.reference.input_fingerprint).
"""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from monitoring_pipelines.core.baselines import reference_baselines
from monitoring_pipelines.core.formatting import code_span, fmt, markdown_table
from monitoring_pipelines.core.multiclass import MulticlassCalibration
from monitoring_pipelines.core.profiles import ReferenceProfile, build_reference_profile, with_version_of
from monitoring_pipelines.core.regression import ErrorProfile
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import model_partitions
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.reference import (
    input_fingerprint,
    record_fingerprint,
    reference_snapshot,
    stored_reference,
    write_reference,
)

FEATURE_CATEGORIES_SHOWN = 6


def build() -> AssetsDefinition:
    @asset(
        name="reference_profiles",
        partitions_def=model_partitions,
        group_name="reference",
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        description="Per model: the reference window's drift profile (quantile bins, sketch, category "
        "frequencies, score and decision rate or predicted-class shares), the estimator fitted on its labels "
        "(score calibration; regression: the error profile for DLE; multiclass: the CBPE calibration) and the "
        "day-to-day bands of every daily statistic. Versioned; rebuilt only when the model's config or its "
        "reference window's data (labels included) change.",
    )
    def reference_profiles(
        context: AssetExecutionContext, monitoring: MonitoringResource
    ) -> MaterializeResult:
        config = monitoring.config
        model = config.model(context.partition_key)
        warehouse = monitoring.warehouse
        fingerprint = input_fingerprint(config, model)
        previous, stored = stored_reference(warehouse, model.name)
        window = f"{model.reference.start} .. {model.reference.end}"
        if stored == fingerprint:
            context.log.info(f"reference of {model.name} is current (inputs {fingerprint}): not rebuilt")
            return MaterializeResult(
                metadata={"profile_version": previous, "rebuilt": False, "reference_window": window}
            )
        snap, validation = reference_snapshot(config, model)
        with snap:
            monitoring.labelled(model, snap.start, snap)
            profile = build_reference_profile(snap.columns(), model)
            profile, baselines = reference_baselines(model, profile, snap)
            profile, baselines = with_version_of(profile, baselines)
            days = len(snap.days())
        if profile.version == previous:
            record_fingerprint(warehouse, model.name, profile.version, fingerprint)
        else:
            write_reference(warehouse, profile, baselines, fingerprint)
        return MaterializeResult(
            metadata={
                "profile_version": profile.version,
                "previous_version": previous or "none",
                "rebuilt": profile.version != previous,
                "input_fingerprint": fingerprint,
                "reference_window": window,
                "reference_rows": profile.n,
                "rows_read": validation.read_rows,
                "rows_quarantined": validation.quarantined_rows,
                "reference_days": days,
                "estimator": _estimator_text(profile),
                "dagster/row_count": len(profile.features),
                "features": MetadataValue.md(_profile_md(profile)),
            }
        )

    return reference_profiles


def _estimator_text(profile: ReferenceProfile) -> str:
    """What the live days' label-free estimates rest on, in words."""
    estimator = profile.estimator
    if isinstance(estimator, ErrorProfile):
        return f"direct loss estimation: error profile of {estimator.n:,} labelled reference rows"
    if isinstance(estimator, MulticlassCalibration):
        return estimator.note
    if profile.calibration is not None:
        return profile.calibration.note
    return "none: too few labelled reference rows for an estimator"


def _profile_md(profile: ReferenceProfile) -> str:
    rows = []
    for name, prof in profile.features.items():
        if prof.kind == "numeric":
            summary = f"mean {fmt(prof.mean)}, std {fmt(prof.std)}, range [{fmt(prof.min)}, {fmt(prof.max)}]"
        else:
            shown = prof.categories[:FEATURE_CATEGORIES_SHOWN]
            summary = ", ".join(shown) + (" …" if len(prof.categories) > len(shown) else "")
        rows.append((code_span(name), prof.kind, f"{prof.null_rate:.3%}", summary))
    return markdown_table(
        rows, ["feature", "kind", "null rate", "summary"], formatters=str, markdown=["feature"]
    )
