"""Reference bands: how much a daily statistic moves on ordinary days of the reference window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from monitoring_pipelines.schema import columns_of

if TYPE_CHECKING:
    from monitoring_pipelines.config import ModelConfig
    from monitoring_pipelines.core.profiles import Columns, Estimator, ReferenceProfile

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


def band_multiplier(k: float, n_days: float | None = None) -> float:
    """The multiplier of σ that gives a band from `n_days` reference days the coverage of mean ± k·σ.

    σ is the sample std of a few dozen days, not the true spread: a new ordinary day falls outside
    mean ± k·s far more often than Φ(−k) (3·s from 7 days: about 1 day in 70 per side, not 1 in 740).
    The prediction interval for one new day, t_{n−1} quantile at Φ(k) times sqrt(1 + 1/n), keeps the rate
    at Φ(−k) per side whatever the window's length (k = 3: 5.24 for 7 days, 3.36 for 28, 3.17 for 56).
    Without a day count (or fewer than two days) it is k itself."""
    if n_days is None or not np.isfinite(n_days) or n_days < 2:
        return float(k)
    n = float(n_days)
    return float(stats.t.ppf(stats.norm.cdf(k), n - 1.0) * np.sqrt(1.0 + 1.0 / n))


def band_limits(mean: float, std: float, k: float, n_days: float | None = None) -> tuple[float, float]:
    """The band mean ± band_multiplier(k, n_days)·std; with no spread known the band collapses to the mean."""
    spread = 0.0 if std is None or not np.isfinite(std) else band_multiplier(k, n_days) * float(std)
    return float(mean) - spread, float(mean) + spread


class ReferenceDays(Protocol):
    """What the reference bands are computed from, day by day (storage.snapshot.Snapshot is one)."""

    def days(self) -> list[dt.date]: ...

    def columns(self, day: dt.date | None = None) -> Columns: ...

    def scored(self, extra: Sequence[str] = (), day: dt.date | None = None) -> pd.DataFrame: ...

    def outcome_totals(
        self, names: Sequence[str], day: dt.date | None = None
    ) -> tuple[pd.DataFrame, int]: ...


class FrameReference:
    """ReferenceDays over an in-memory frame (tests, small data), as the model-day snapshot is over DuckDB:
    the window's rows with `partition_date`, `score`, `prediction`, `label` (NaN until it lands) and the
    task's columns (multiclass: `predicted_class`, `score__<class>`). Champion `ok` rows only; no outcomes."""

    def __init__(self, frame: pd.DataFrame) -> None:
        from monitoring_pipelines.core.profiles import DAY_COLUMN, champion_rows, day_values

        self.frame = champion_rows(frame)
        self._day = day_values(self.frame[DAY_COLUMN]).dt.date.to_numpy()

    def _rows(self, day: dt.date | None) -> pd.DataFrame:
        return self.frame if day is None else self.frame.loc[self._day == day]

    def days(self) -> list[dt.date]:
        return sorted(set(self._day))

    def columns(self, day: dt.date | None = None) -> Columns:
        from monitoring_pipelines.core.profiles import FrameColumns

        return FrameColumns(self._rows(day))

    def scored(self, extra: Sequence[str] = (), day: dt.date | None = None) -> pd.DataFrame:
        from monitoring_pipelines.config import PROBABILITY_PREFIX

        rows = self._rows(day)
        proba = [c for c in rows.columns if c.startswith(PROBABILITY_PREFIX)]
        wanted = [c for c in ("score", "prediction", "label") if c in rows]
        return rows[list(dict.fromkeys([*wanted, *proba, *extra]))].reset_index(drop=True)

    def outcome_totals(self, names: Sequence[str], day: dt.date | None = None) -> tuple[pd.DataFrame, int]:
        from monitoring_pipelines.core.outcomes import TOTAL_COLUMNS

        return pd.DataFrame(columns=TOTAL_COLUMNS), len(self._rows(day))


BASELINE_COLUMNS = columns_of("reference_baselines")


def reference_estimator(
    model: ModelConfig, days: dict[dt.date, pd.DataFrame]
) -> tuple[Estimator | None, dict[dt.date, Estimator | None]]:
    """A regression or multiclass model's estimator fitted on the reference window's labels, cross-fitted
    over its days as the binary score calibration is (estimation.reference_calibration): the labelled days
    are dealt into CALIBRATION_FOLDS folds (day i into fold i mod k) and each day gets the estimator fitted
    without its fold, so a reference day's estimated rows never saw its own labels and the estimated bands
    are those of out-of-sample estimates, as a live day's are. Returns (the estimator on every label, for
    live days; per labelled day its held-out one). Regression: ErrorProfile (DLE; None with fewer than
    MIN_DLE_ROWS labelled rows); multiclass: MulticlassCalibration (each map falls back to raw
    probabilities when it has too few labels; None when the frames carry no score__<class> columns).
    With labels on a single day there is nothing to hold out: that day uses the full fit."""
    from monitoring_pipelines.core.estimation import CALIBRATION_FOLDS
    from monitoring_pipelines.core.multiclass import fit_multiclass_calibration
    from monitoring_pipelines.core.performance import class_indices, probability_matrix
    from monitoring_pipelines.core.regression import fit_error_profile
    from monitoring_pipelines.core.stats import to_float_array

    if model.is_binary:
        raise ValueError("reference_estimator is for regression and multiclass models")
    classes = list(model.classes)
    parts: list[tuple[dt.date, tuple[np.ndarray, ...]]] = []
    for day, frame in days.items():
        if "label" not in frame or "score" not in frame or frame.empty:
            continue
        if model.is_regression:
            y, p = to_float_array(frame["label"]), to_float_array(frame["score"])
            keep = np.isfinite(y) & np.isfinite(p)
            if keep.any():
                parts.append((day, (y[keep], p[keep])))
            continue
        proba = probability_matrix(frame, classes)
        if proba is None:
            return None, {}
        y, p = class_indices(frame["label"], len(classes)), class_indices(frame["prediction"], len(classes))
        keep = (y >= 0) & (p >= 0) & np.all(np.isfinite(proba), axis=1)
        if keep.any():
            parts.append((day, (y[keep], p[keep], proba[keep])))

    def fit(chosen: list[tuple[np.ndarray, ...]]) -> Estimator | None:
        if not chosen:
            return None
        if model.is_regression:
            return fit_error_profile(
                np.concatenate([c[0] for c in chosen]), np.concatenate([c[1] for c in chosen])
            )
        y = np.concatenate([c[0] for c in chosen])
        p = np.concatenate([c[1] for c in chosen])
        proba = np.concatenate([c[2] for c in chosen])
        return fit_multiclass_calibration(proba, y, p, classes)

    full = fit([arrays for _, arrays in parts])
    if len(parts) < 2:
        return full, {}
    k = min(CALIBRATION_FOLDS, len(parts))
    held_out = [fit([arrays for i, (_, arrays) in enumerate(parts) if i % k != f]) for f in range(k)]
    return full, {day: held_out[i % k] for i, (day, _) in enumerate(parts)}


def reference_baselines(
    model: ModelConfig, profile: ReferenceProfile, reference: ReferenceDays
) -> tuple[ReferenceProfile, pd.DataFrame]:
    """The reference profile with its drift bands, and the bands of every other daily statistic.

    Every reference day is scored the way a live day is (drift statistics against the profile,
    measured and estimated performance, business outcomes, subgroup and overall metrics), and
    `summarize_days` gives each statistic's mean, std and day count: how much it moves on ordinary
    days. Returns the profile carrying its drift bands and its score calibration (fitted on the window's
    labels, cross-fitted over its days: each day's estimated rows use a map that never saw its labels, as a
    live day's do), and the `reference_baselines` rows (all domains). A regression or multiclass model
    carries its task's estimator instead (reference_estimator), and its bands cover its task's metrics,
    label rows included (daily_performance per task).
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
    if model.is_binary:
        calibration = reference_calibration(scored_days)
        profile = profile.with_calibration(calibration.calibration)
        estimator_for = calibration.for_day
        task_args: dict[str, object] = {}
    else:
        estimator, by_day = reference_estimator(model, scored_days)
        profile = profile.with_estimator(estimator)

        def estimator_for(day: dt.date) -> Estimator | None:
            return by_day.get(day, estimator)

        task_args = {"task": model.task, "classes": list(model.classes)}
    perf, outcomes, subgroups, overall = [], [], [], []
    for day in days:  # a few dozen reference days: the work inside each is vectorized
        scored = scored_days[day]
        perf.append(
            daily_performance(
                scored,
                thresholds=thresholds.performance,
                calibration=estimator_for(day),
                model=model,
            ).assign(day=day)
        )
        if model.outcomes:
            totals, requests = reference.outcome_totals(model.outcomes, day)
            outcomes.append(outcome_rows(totals, requests, model.outcomes).assign(day=day))
        groups, overall_rows = subgroup_and_overall_metrics(
            scored, model.segments, model.segment_intersections, min_n=thresholds.subgroups.min_n, **task_args
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
