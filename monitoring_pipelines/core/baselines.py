"""Reference bands: how much a daily statistic moves on ordinary days of the reference window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from monitoring_pipelines.schema import columns_of

if TYPE_CHECKING:
    from monitoring_pipelines.config import ModelConfig
    from monitoring_pipelines.core.profiles import Columns, ReferenceProfile

BAND_COLUMNS = ["mean", "std", "n_days"]


def summarize_days(daily: pd.DataFrame, keys: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, sample std (ddof=1) and day count of `value` per key group, NaN values ignored.

    A group seen on a single day gets std NaN: one day says nothing about day-to-day spread,
    and callers fall back to their fixed thresholds.
    """
    if daily.empty:
        return pd.DataFrame(columns=[*keys, *BAND_COLUMNS])
    frame = daily[[*keys, value]].copy()
    frame[value] = pd.to_numeric(frame[value], errors="coerce")
    frame = frame[np.isfinite(frame[value].to_numpy(dtype=float, na_value=np.nan))]
    grouped = frame.groupby(keys, dropna=False, sort=True)[value]
    out = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), n_days="count").reset_index()
    return out


def band_limits(mean: float, std: float, k: float) -> tuple[float, float]:
    """The band mean ± k·std; with no spread known the band collapses to the mean."""
    spread = 0.0 if std is None or not np.isfinite(std) else k * float(std)
    return float(mean) - spread, float(mean) + spread


class ReferenceDays(Protocol):
    """What the reference bands are computed from, day by day (storage.snapshot.Snapshot is one)."""

    def days(self) -> list[dt.date]: ...

    def columns(self, day: dt.date | None = None) -> Columns: ...

    def scored(self, extra: Sequence[str] = (), day: dt.date | None = None) -> pd.DataFrame: ...

    def outcome_totals(
        self, names: Sequence[str], day: dt.date | None = None
    ) -> tuple[pd.DataFrame, int]: ...


BASELINE_COLUMNS = columns_of("reference_baselines")


def reference_baselines(
    model: ModelConfig, profile: ReferenceProfile, reference: ReferenceDays
) -> tuple[ReferenceProfile, pd.DataFrame]:
    """The reference profile with its drift bands, and the bands of every other daily statistic.

    Every reference day is scored the way a live day is (drift statistics against the profile,
    measured and estimated performance, business outcomes, subgroup and overall metrics), and
    `summarize_days` gives each statistic's mean, std and day count: how much it moves on ordinary
    days. Returns the profile carrying its drift bands and its score calibration (fitted on the window's
    labels, cross-fitted over its days: each day's estimated rows use a map that never saw its labels, as a
    live day's do), and the `reference_baselines` rows (all domains).
    """
    from monitoring_pipelines.core.drift import reference_variability
    from monitoring_pipelines.core.estimation import reference_calibration
    from monitoring_pipelines.core.fairness import subgroup_and_overall_metrics
    from monitoring_pipelines.core.outcomes import outcome_rows
    from monitoring_pipelines.core.performance import daily_performance

    thresholds = model.thresholds
    days = reference.days()
    profile = profile.with_variability(
        reference_variability(
            profile, {day: reference.columns(day) for day in days}, thresholds=thresholds.drift
        )
    )
    # every day's scored rows, held at once (the snapshot caches them for the run anyway)
    scored_days = {day: reference.scored(model.segments, day) for day in days}
    calibration = reference_calibration(scored_days)
    profile = profile.with_calibration(calibration.calibration)
    perf, outcomes, subgroups, overall = [], [], [], []
    for day in days:  # a few dozen reference days: the work inside each is vectorized
        scored = scored_days[day]
        perf.append(
            daily_performance(
                scored, thresholds=thresholds.performance, calibration=calibration.for_day(day)
            ).assign(day=day)
        )
        if model.outcomes:
            totals, requests = reference.outcome_totals(model.outcomes, day)
            outcomes.append(outcome_rows(totals, requests, model.outcomes).assign(day=day))
        groups, overall_rows = subgroup_and_overall_metrics(
            scored, model.segments, model.segment_intersections, min_n=thresholds.subgroups.min_n
        )
        if model.segments:
            subgroups.append(groups.assign(day=day))
        overall.append(overall_rows.assign(day=day))

    def bands(frames: list[pd.DataFrame], keys: list[str], domain: str) -> pd.DataFrame:
        if not frames:
            return pd.DataFrame(columns=BASELINE_COLUMNS)
        return summarize_days(pd.concat(frames, ignore_index=True), keys).assign(domain=domain)

    out = pd.concat(
        [
            profile.variability_frame().assign(domain="drift"),
            bands(perf, ["metric", "estimated"], "performance"),
            bands(outcomes, ["metric", "estimated"], "outcome"),
            bands(subgroups, ["segment", "segment_value", "metric"], "subgroup"),
            bands(overall, ["metric"], "overall"),
        ],
        ignore_index=True,
    )
    out = out.assign(model_name=model.name, profile_version=profile.version)
    return profile, out.reindex(columns=BASELINE_COLUMNS)
