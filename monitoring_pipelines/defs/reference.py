"""reference_profiles: the baseline a model's live days are compared with, built once per version.

Besides the drift profile it records how much every daily statistic moves on ordinary reference
days (drift statistics, performance, outcomes, subgroup and overall metrics): those bands are what
the adaptive thresholds and the "below its reference band" checks compare against.
"""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.core.baselines import summarize_days
from monitoring_pipelines.core.drift import fit_reference_profile
from monitoring_pipelines.core.fairness import overall_metrics, subgroup_metrics
from monitoring_pipelines.core.outcomes import daily_outcomes
from monitoring_pipelines.core.performance import daily_performance
from monitoring_pipelines.core.profiles import ReferenceProfile, profile_from_rows, profile_to_rows
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.data import known_labels, known_outcomes, with_labels
from monitoring_pipelines.defs.partitions import model_partitions
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.sources import FileSource, restrict_to_window, source_for
from monitoring_pipelines.storage.warehouse import TABLES, Warehouse
from monitoring_pipelines.validation.suite import validate_day

BASELINE_COLUMNS = list(TABLES["reference_baselines"])


class MissingReferenceError(RuntimeError):
    """Drift and bands need the model's reference profile first."""


def load_reference_rows(config: MonitoringConfig, model: ModelConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Valid champion rows of the reference window (or reference file), with a partition_date column.

    The reference goes through the same GX rules as live days: a baseline built on rows we would
    quarantine today would make tomorrow's drift meaningless.
    """
    start, end = model.reference.start, model.reference.end
    if model.reference.path:
        path = (config.config_path.parent if config.config_path else config.data_dir) / model.reference.path
        frame, problems = FileSource(path.parent).read_files([path])
        read_files = [str(path)]
        frame, _ = restrict_to_window(frame, start, end)
        if frame.empty and not problems:
            problems = [f"reference file {path} has no rows in {start}..{end}"]
    else:
        read = source_for(config, model).read_predictions(model, start, end)
        frame, read_files, problems = read.frame, read.files, read.problems
    if "role" in frame.columns:  # the baseline is the champion's; shadow rows need no validation here
        frame = frame[frame["role"].astype("string").str.lower() == "champion"].reset_index(drop=True)
    outcome = validate_day(frame, model, start, read_files, problems)
    if not outcome.usable:
        raise MissingReferenceError(
            f"reference window {start}..{end} of {model.name} is unusable: {'; '.join(outcome.problems)}"
        )
    valid = outcome.valid
    valid = valid[(valid["role"] == "champion") & (valid["status"] == "ok")].copy()
    valid["partition_date"] = valid["ts"].dt.date
    return valid.reset_index(drop=True), {"read": outcome.read_rows, "quarantined": len(outcome.quarantined)}


def reference_baselines(
    config: MonitoringConfig, model: ModelConfig, rows: pd.DataFrame, profile: ReferenceProfile
) -> pd.DataFrame:
    """Day-to-day bands of every daily metric over the reference window (one loop per day, not per row)."""
    labels = known_labels(config, model, model.reference.start, model.reference.end)
    outcomes = known_outcomes(config, model, model.reference.start, model.reference.end)
    labelled = with_labels(rows, labels)
    day_of = rows[["request_id", "partition_date"]].drop_duplicates("request_id")
    labels_by_day = dict(tuple(labels.merge(day_of, on="request_id").groupby("partition_date")))
    outcomes_by_day = dict(tuple(outcomes.merge(day_of, on="request_id").groupby("partition_date")))
    perf, outc, subgroup, overall = [], [], [], []
    thresholds = model.thresholds
    for day, day_rows in labelled.groupby("partition_date", sort=True):
        day_labels = labels_by_day.get(day, labels.iloc[:0])
        perf.append(daily_performance(day_rows, day_labels, thresholds.performance).assign(day=day))
        if model.outcomes:
            day_outcomes = outcomes_by_day.get(day, outcomes.iloc[:0])
            outc.append(daily_outcomes(day_rows, day_outcomes, model.outcomes).assign(day=day))
        if model.segments:
            subgroup.append(
                subgroup_metrics(
                    day_rows, model.segments, model.segment_intersections, min_n=thresholds.subgroups.min_n
                ).assign(day=day)
            )
        overall.append(overall_metrics(day_rows).assign(day=day))

    def bands(frames: list[pd.DataFrame], keys: list[str], domain: str) -> pd.DataFrame:
        if not frames:
            return pd.DataFrame(columns=BASELINE_COLUMNS)
        return summarize_days(pd.concat(frames, ignore_index=True), keys).assign(domain=domain)

    drift = profile.variability_frame().assign(domain="drift")
    out = pd.concat(
        [
            drift,
            bands(perf, ["metric", "estimated"], "performance"),
            bands(outc, ["metric", "estimated"], "outcome"),
            bands(subgroup, ["segment", "segment_value", "metric"], "subgroup"),
            bands(overall, ["metric"], "overall"),
        ],
        ignore_index=True,
    )
    out = out.assign(model_name=model.name, profile_version=profile.version)
    return out.reindex(columns=BASELINE_COLUMNS)


def latest_profile_version(warehouse: Warehouse, model_name: str) -> str | None:
    frame = warehouse.query(
        "SELECT profile_version FROM monitoring.reference_profiles WHERE model_name = ? "
        "ORDER BY created_at DESC LIMIT 1",
        [model_name],
    )
    return None if frame.empty else str(frame["profile_version"].iloc[0])


def latest_profile(warehouse: Warehouse, model_name: str) -> ReferenceProfile:
    version = latest_profile_version(warehouse, model_name)
    if version is None:
        raise MissingReferenceError(
            f"no reference profile for model {model_name!r}: materialize reference_profiles "
            f"(partition {model_name}) first; `monitoring-pipelines run` and the register_models sensor do it"
        )
    rows = warehouse.table(
        "reference_profiles", "model_name = ? AND profile_version = ?", [model_name, version]
    )
    return profile_from_rows(rows)


def latest_baselines(warehouse: Warehouse, model_name: str) -> pd.DataFrame:
    version = latest_profile_version(warehouse, model_name)
    if version is None:
        return pd.DataFrame(columns=BASELINE_COLUMNS)
    return warehouse.table(
        "reference_baselines", "model_name = ? AND profile_version = ?", [model_name, version]
    )


@asset(
    partitions_def=model_partitions,
    group_name="reference",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Per model: the reference window's drift profile (quantile bins, sketch, category "
    "frequencies, score and decision rate) and the day-to-day bands of every daily statistic. Versioned; "
    "rewritten only when the window, the features, the binning or the reference data change.",
)
def reference_profiles(context: AssetExecutionContext, monitoring: MonitoringResource) -> MaterializeResult:
    config = monitoring.config
    model = config.model(context.partition_key)
    warehouse = monitoring.warehouse
    rows, counts = load_reference_rows(config, model)
    profile = fit_reference_profile(rows, model)
    previous = latest_profile_version(warehouse, model.name)
    unchanged = previous == profile.version
    if not unchanged:
        baselines = reference_baselines(config, model, rows, profile)
        profile_rows = profile_to_rows(profile).assign(created_at=pd.Timestamp.now(tz="UTC"))
        where = "model_name = ? AND profile_version = ?"
        warehouse.replace_many(
            [
                ("reference_profiles", profile_rows, where, [model.name, profile.version]),
                ("reference_baselines", baselines, where, [model.name, profile.version]),
            ]
        )
    return MaterializeResult(
        metadata={
            "profile_version": profile.version,
            "previous_version": previous or "none",
            "rebuilt": not unchanged,
            "reference_window": f"{model.reference.start} .. {model.reference.end}",
            "reference_rows": profile.n,
            "rows_read": counts["read"],
            "rows_quarantined": counts["quarantined"],
            "reference_days": int(rows["partition_date"].nunique()),
            "dagster/row_count": len(profile.features),
            "features": MetadataValue.md(_profile_md(profile)),
        }
    )


def _profile_md(profile: ReferenceProfile) -> str:
    lines = ["| feature | kind | null rate | summary |", "|---|---|---|---|"]
    for name, prof in profile.features.items():
        if prof.kind == "numeric":
            summary = f"mean {prof.mean:.4g}, std {prof.std:.4g}, range [{prof.min:.4g}, {prof.max:.4g}]"
        else:
            summary = ", ".join(prof.categories[:6]) + (" …" if len(prof.categories) > 6 else "")
        lines.append(f"| {name} | {prof.kind} | {prof.null_rate:.3%} | {summary} |")
    return "\n".join(lines)
