"""Labelled performance of a model per model-day, with confidence intervals, and its checks.

Binary classifiers here; regression (core.regression) and multiclass (core.multiclass) metrics are
assembled per task by `daily_performance` into the same rows and judged by the same checks, each
metric in its own direction (`metric_direction`). `target_drift` watches the labels themselves
(regression `label_mean`, multiclass `label_share:<class>`).

Every metric comes with an interval so a check can tell a real drop from a small, noisy day:
Wilson for proportions, DeLong for ROC AUC, the normal approximation of a mean for per-row losses,
the delta method for F1 and a percentile bootstrap for the expected calibration error.
Estimated rows (CBPE, core.estimation) use the reference's score calibration and say whether they can
be trusted; the checks never pass or fail a day on an untrusted estimate (the day is unknown), and say
so when a metric has no reference band to be judged against.
See docs/performance.md for the formulas, their references and the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from monitoring_pipelines.config import PROBABILITY_PREFIX, ModelConfig, PerformanceThresholds
from monitoring_pipelines.core.baselines import band_limits, band_multiplier
from monitoring_pipelines.core.estimation import (
    METRIC_COLUMNS,
    METRICS,
    UNCALIBRATED,
    Calibration,
    ScoreSupport,
    estimate_metrics,
    estimate_note,
    estimate_trust,
)
from monitoring_pipelines.core.findings import (
    UNKNOWN,
    CheckResult,
    CheckSpec,
    Finding,
    not_enough_data,
    observed,
)
from monitoring_pipelines.core.formatting import json_float, markdown_table
from monitoring_pipelines.core.multiclass import (
    MulticlassCalibration,
    confusion_long,
    estimate_multiclass_metrics,
    multiclass_metrics,
)
from monitoring_pipelines.core.profiles import SCORE_FEATURE, ReferenceProfile
from monitoring_pipelines.core.regression import (
    REGRESSION_HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    ErrorProfile,
    estimate_regression_metrics,
    regression_metrics,
)
from monitoring_pipelines.core.stats import (
    auc_ci,
    finite_pairs,
    log_loss_terms,
    mean_interval,
    proportion_interval,
    take,
    to_float_array,
    z_value,
)
from monitoring_pipelines.schema import result_columns

PERFORMANCE_DEGRADATION, PERFORMANCE_CRITICAL_DROP = "performance_degradation", "performance_critical_drop"
TARGET_DRIFT = "target_drift"
# Measured label-distribution rows: regression `label_mean`, multiclass `label_share:<class>`.
LABEL_MEAN, LABEL_SHARE = "label_mean", "label_share:"
# The subject of the finding that a metric has no reference band (one alert, apart from the model's).
REFERENCE_BAND = "reference_band"


def _check_specs(t: PerformanceThresholds = PerformanceThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008
    """The performance checks as this module decides them; numbers are the config's defaults."""
    return (
        CheckSpec(
            PERFORMANCE_DEGRADATION,
            "warning",
            f"A metric is outside its reference band (mean ± {t.band_k:g}·σ of the reference days, as a prediction "
            "interval for their count) and its interval, widened to the same k, excludes the reference mean; "
            f"measured when the day has at least {t.min_n} labelled rows, else estimated (CBPE, regression DLE). "
            "One alert per model, listing the metrics. Unknown (neither passed nor failed) on a day whose "
            "estimate is untrusted or that has neither labels nor an estimate; a warning when a metric has no "
            "reference band.",
        ),
        CheckSpec(
            PERFORMANCE_CRITICAL_DROP,
            "critical",
            f"A metric dropped beyond its critical limit (defaults: AUC −{t.auc_critical_drop:g}, multiclass "
            f"accuracy −{t.accuracy_critical_drop:g}, regression mae / rmse +{t.error_critical_increase:.0%} of "
            "the reference mean; thresholds.performance.critical_drops) while outside its band.",
        ),
        CheckSpec(
            TARGET_DRIFT,
            "warning",
            f"The labels moved: regression label_mean or a multiclass label_share:<class> is outside its "
            f"reference band (mean ± {t.band_k:g}·σ, either side) on at least {t.min_n} labelled rows, its "
            "interval at the same k excluding the reference mean. One alert per model, listing the moved metrics. Passes for "
            "binary models (their label rate is watched through the performance metrics).",
        ),
    )


CHECKS = _check_specs()
# positive_rate (share of rows the logged decision calls positive) has no better direction; it is
# listed True only so every metric has a key. The checks treat it as directionless and skip it
# (its shifts are prediction drift, reported by the drift checks as `__prediction_rate__`).
HIGHER_IS_BETTER: dict[str, bool] = {
    "auc": True,
    "log_loss": False,
    "brier": False,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "positive_rate": True,
    "ece": False,
}
DIRECTIONLESS: frozenset[str] = frozenset({"positive_rate"})
# Multiclass metrics and their direction (per-class precision:<c> / recall:<c> are higher-is-better).
MULTICLASS_HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "macro_f1": True,
    "weighted_f1": True,
    "log_loss": False,
}
MULTICLASS_PER_CLASS = ("precision:", "recall:")
# Every performance_metrics column but the model-day keys, as daily_performance returns them.
PERFORMANCE_TABLE_COLUMNS = result_columns("performance_metrics")
# The columns that describe estimates (NULL on measured and outcome rows).
ESTIMATE_COLUMNS: tuple[str, ...] = ("trusted", "estimate_note")
# The metric row every kind of row has (measured, estimated, outcome: core.outcomes builds these).
PERFORMANCE_COLUMNS = [c for c in PERFORMANCE_TABLE_COLUMNS if c not in ESTIMATE_COLUMNS]

ECE_BOOTSTRAP_SAMPLES = 400
ECE_BOOTSTRAP_SEED = 0  # fixed: a re-run of a partition must write the same interval
ECE_EXACT_BOOTSTRAP_MAX_ROWS = 50_000
_BOOTSTRAP_BLOCK_CELLS = 4_000_000  # resampled indices held in memory at once

Direction = Literal["higher_is_better", "lower_is_better", "two_sided"]


# --------------------------------------------------------------------------- calibration


def expected_calibration_error(y: np.ndarray, score: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width score bins of (n_b / n)·|mean(y_b) − mean(score_b)|.

    Bins are [k/B, (k+1)/B), the last one closed at 1. Since (n_b / n)·|mean difference| equals
    |sum over the bin of (y − score)| / n, only per-bin sums are needed. nan with no rows.
    Reference: Naeini, Cooper & Hauskrecht (2015), AAAI; Guo et al. (2017), ICML.
    """
    y_arr, s_arr = finite_pairs(y, score)
    if y_arr.size == 0:
        return float("nan")
    idx = _bin_index(s_arr, bins)
    sums = np.bincount(idx, weights=y_arr - s_arr, minlength=bins)
    return float(np.abs(sums).sum() / y_arr.size)


# --------------------------------------------------------------------------- all metrics of a sample


def binary_metrics(
    y: np.ndarray,
    score: np.ndarray,
    prediction: np.ndarray,
    confidence: float = 0.95,
    ece_bins: int = 10,
) -> pd.DataFrame:
    """Every metric in METRICS for labelled rows, one row per metric: metric, value, ci_low, ci_high, n.

    Rows with a non-finite score, a label other than 0/1 or a prediction other than 0/1 are dropped;
    `n` is the number of rows used (the same for every metric). The decision is the logged
    `prediction`, not a re-thresholded score. Intervals (two-sided, `confidence`):
      accuracy, precision, recall, positive_rate: Wilson on their own denominators;
      auc: DeLong (logit scale); log_loss, brier: mean ± z·se of the per-row losses;
      f1: delta method on the multinomial confusion counts,
          Var(F1) ≈ 4·TP·(FP+FN)·(TP+FP+FN) / (2TP+FP+FN)^4;
      ece: normal bootstrap interval, ECE ± z·se with se from 400 row resamples (fixed seed; above
          50 000 rows the per-bin sums are drawn from their normal approximation instead).
    A metric whose denominator is empty (precision without predicted positives, recall or AUC without
    both classes, ...) is nan rather than 0, so it is never mistaken for a bad value.
    """
    y_arr, s_arr, p_arr = _clean_rows(y, score, prediction)
    n = int(y_arr.size)
    z = z_value(confidence)
    out: dict[str, tuple[float, float, float]] = {}
    pos = y_arr == 1
    pred = p_arr == 1
    tp = int(np.sum(pos & pred))
    fp = int(np.sum(~pos & pred))
    fn = int(np.sum(pos & ~pred))
    tn = n - tp - fp - fn

    out["auc"] = auc_ci(y_arr, s_arr, confidence) if n else _nan3()
    out["log_loss"] = mean_interval(log_loss_terms(y_arr, s_arr), confidence, low=0.0)
    out["brier"] = mean_interval((s_arr - y_arr) ** 2, confidence, low=0.0, high=1.0)
    out["accuracy"] = _proportion(tp + tn, n, confidence)
    out["precision"] = _proportion(tp, tp + fp, confidence)
    out["recall"] = _proportion(tp, tp + fn, confidence)
    out["f1"] = _f1_delta(tp, fp, fn, z)
    out["positive_rate"] = _proportion(tp + fp, n, confidence)
    out["ece"] = _ece_with_ci(y_arr, s_arr, ece_bins, confidence)
    return pd.DataFrame(
        [(metric, *out[metric], n) for metric in METRICS],
        columns=METRIC_COLUMNS,
    ).astype({"value": float, "ci_low": float, "ci_high": float, "n": "int64"})


def attach_labels(day: pd.DataFrame, labels: pd.DataFrame | None) -> tuple[pd.DataFrame, int]:
    """`day` with a `label` column (the latest valid label per request_id by label_ts, NaN when none)
    and the number of label rows dropped as invalid. For callers holding the labels as a frame; the
    model-day snapshot joins them in DuckDB instead (storage.snapshot.Snapshot.scored)."""
    latest, invalid = _latest_labels(labels)
    out = day.drop(columns=["label"], errors="ignore").merge(latest, on="request_id", how="left")
    return out, invalid


def daily_performance(
    day: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    thresholds: PerformanceThresholds | None = None,
    *,
    calibration: Calibration | ErrorProfile | MulticlassCalibration | None = None,
    support: ScoreSupport | None = None,
    model: ModelConfig | None = None,
) -> pd.DataFrame:
    """performance_metrics rows of one model-day (without model_name / partition_date).

    `model` selects the task (binary without one): regression and multiclass days go to
    `regression_performance` / `multiclass_performance`, whose `calibration` is the reference's
    estimator (an ErrorProfile, a MulticlassCalibration) and whose labels come joined in `day`.
    The rest of this docstring is the binary case.

    `day`: the champion's `ok` rows with score, prediction and label (NaN until it lands), as the
    snapshot gives them; or, with `labels` (request_id, label, label_ts), rows with a request_id to
    attach them to (the latest label_ts wins). Measured rows (estimated = False) are the metrics of the
    labelled rows, written when at least one row is labelled and only for metrics computable on them;
    estimated rows (estimated = True) are confidence-based estimates (estimation.estimate_metrics) over
    every scored row of the day, written always, so a degradation visible in the scores is seen before
    any label arrives. labelled_fraction = labelled rows / scored rows.

    The estimates use `calibration` (the reference's score -> P(y = 1) map; raw scores without one) and
    are `trusted` unless more than MAX_OUTSIDE_SUPPORT of the day's scores lie outside `support` (the
    reference's score range; not checked without one); `estimate_note` says how they were calibrated and
    why they are untrusted. Both are NULL on measured rows. Counts of dropped rows and the trust are in
    `.attrs` (rows, scored, dropped_scores, labelled, invalid_labels, trusted, outside_support, estimate_note).
    """
    thresholds = thresholds or PerformanceThresholds()
    if model is not None and not model.is_binary:
        if labels is not None:
            raise ValueError(
                f"daily_performance of {model.task} model {model.name!r}: labels come joined in the day's "
                "frame (Snapshot.scored), not as a separate frame"
            )
        if model.is_regression:
            estimator = calibration if isinstance(calibration, ErrorProfile) else None
            return regression_performance(day, estimator, thresholds)
        estimator = calibration if isinstance(calibration, MulticlassCalibration) else None
        return multiclass_performance(day, model.classes, estimator, support, thresholds)
    invalid_labels = 0
    if labels is not None:
        day, invalid_labels = attach_labels(day, labels)
    rows = len(day)
    score = to_float_array(day["score"]) if "score" in day else np.full(rows, np.nan)
    prediction = to_float_array(day["prediction"]) if "prediction" in day else np.full(rows, np.nan)
    label_all = to_float_array(day["label"]) if "label" in day else np.full(rows, np.nan)
    scored = np.isfinite(score) & np.isin(prediction, (0.0, 1.0))
    score, prediction, label = take(score, scored), take(prediction, scored), take(label_all, scored)
    has_label = np.isin(label, (0.0, 1.0))
    n_scored = int(scored.sum())
    n_labelled = int(has_label.sum())

    frames = []
    if n_labelled:
        measured = binary_metrics(
            take(label, has_label),
            take(score, has_label),
            take(prediction, has_label),
            ece_bins=thresholds.ece_bins,
        )
        frames.append(measured[np.isfinite(measured["value"])].assign(estimated=False))
    calibration = calibration or UNCALIBRATED
    trust = estimate_trust(score, support)
    note = estimate_note(calibration, trust)
    frames.append(estimate_metrics(score, prediction, calibration=calibration).assign(estimated=True))
    counts = _counts(rows, n_scored, n_labelled, trust.outside_share, invalid_labels)
    return _finish(frames, trust.trusted, note, counts)


def _counts(
    rows: int, scored: int, labelled: int, outside_support: float, invalid_labels: int = 0
) -> dict[str, Any]:
    """The counts a day's metrics carry in `.attrs` (every task the same)."""
    return {
        "rows": rows,
        "scored": scored,
        "dropped_scores": int(rows - scored),
        "labelled": labelled,
        "invalid_labels": invalid_labels,
        "outside_support": outside_support,
    }


def _finish(frames: list[pd.DataFrame], trusted: bool, note: str, attrs: dict[str, Any]) -> pd.DataFrame:
    """The day's rows in table layout: labelled_fraction from the counts, estimate columns set on estimated
    rows only, `.attrs` the counts with the trust."""
    fraction = attrs["labelled"] / attrs["scored"] if attrs["scored"] else float("nan")
    frames = [f for f in frames if len(f)]
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*METRIC_COLUMNS, "estimated"])
    )
    out = out.assign(labelled_fraction=fraction).reindex(columns=PERFORMANCE_TABLE_COLUMNS)
    is_estimate = out["estimated"].to_numpy(dtype=bool)
    out["trusted"] = pd.array(np.where(is_estimate, trusted, None), dtype="boolean")
    out["estimate_note"] = pd.Series(np.where(is_estimate, note, None), dtype=object)
    out = out.astype(
        {
            "value": float,
            "ci_low": float,
            "ci_high": float,
            "n": "int64",
            "estimated": bool,
            "labelled_fraction": float,
        }
    )
    out.attrs = {**attrs, "trusted": trusted, "estimate_note": note}
    return out


def _labelled_interval_row(metric: str, triple: tuple[float, float, float], n: int) -> tuple:
    return (metric, float(triple[0]), float(triple[1]), float(triple[2]), int(n))


def regression_performance(
    day: pd.DataFrame, estimator: ErrorProfile | None, thresholds: PerformanceThresholds | None = None
) -> pd.DataFrame:
    """performance_metrics rows of a regression model-day: `score` is the predicted value, `label` the
    observed one (NaN until it lands). Measured rows: regression_metrics of the labelled rows plus
    `label_mean` (the observed values' mean and interval, for target_drift). Estimated rows: DLE mae / rmse
    over every scored row from the reference's ErrorProfile, untrusted when the day's predictions leave the
    reference's range; none without an ErrorProfile (too few reference labels), said in `.attrs`."""
    rows = len(day)
    score = to_float_array(day["score"]) if "score" in day else np.full(rows, np.nan)
    label = to_float_array(day["label"]) if "label" in day else np.full(rows, np.nan)
    scored = np.isfinite(score)
    score, label = score[scored], label[scored]
    has_label = np.isfinite(label)
    n_scored, n_labelled = int(scored.sum()), int(has_label.sum())
    frames = []
    if n_labelled:
        measured = regression_metrics(label[has_label], score[has_label])
        observed_mean = mean_interval(label[has_label])
        measured.loc[len(measured)] = _labelled_interval_row(LABEL_MEAN, observed_mean, n_labelled)
        frames.append(measured[np.isfinite(measured["value"])].assign(estimated=False))
    if estimator is not None:
        estimated, trusted, note = estimate_regression_metrics(score, estimator)
        outside = estimator.support.outside_share(score)
        frames.append(estimated.assign(estimated=True))
    else:
        trusted, outside = True, float("nan")
        note = "no estimate: the reference has too few labelled rows for direct loss estimation"
    return _finish(frames, trusted, note, _counts(rows, n_scored, n_labelled, outside))


def class_indices(values: Any, k: int) -> np.ndarray:
    """Class indices (0..k-1) of a numeric column, -1 where missing, not integral or out of range."""
    v = to_float_array(values)
    ok = np.isfinite(v) & (v >= 0) & (v < k) & (np.floor(v) == v)
    return np.where(ok, np.nan_to_num(v, nan=-1.0), -1.0).astype(np.int64)


def probability_matrix(day: pd.DataFrame, classes: Sequence[str]) -> np.ndarray | None:
    """The day's `score__<class>` columns as rows × classes (None when they are not all there)."""
    columns = [f"{PROBABILITY_PREFIX}{c}" for c in classes]
    if not all(c in day for c in columns):
        return None
    out = np.empty((len(day), len(columns)))
    for i, c in enumerate(columns):
        out[:, i] = to_float_array(day[c])
    return out


def multiclass_performance(
    day: pd.DataFrame,
    classes: Sequence[str],
    calibration: MulticlassCalibration | None,
    support: ScoreSupport | None = None,
    thresholds: PerformanceThresholds | None = None,
) -> pd.DataFrame:
    """performance_metrics rows of a multiclass model-day in the snapshot's representation: `prediction`
    and `label` are class indices into `classes`, `score` the top-label probability, `score__<class>` the
    probabilities. Measured rows: multiclass_metrics of the labelled rows (log_loss when the probabilities
    are there) plus `label_share:<class>` (Wilson). Estimated rows: CBPE (estimate_multiclass_metrics) over
    every scored row with the reference's calibration (raw probabilities without one), untrusted when more
    than MAX_OUTSIDE_SUPPORT of the top-label probabilities lie outside the reference's (`support`)."""
    classes = list(classes)
    k = len(classes)
    rows = len(day)
    predicted = class_indices(day["prediction"], k) if "prediction" in day else np.full(rows, -1)
    observed = class_indices(day["label"], k) if "label" in day else np.full(rows, -1)
    proba = probability_matrix(day, classes)
    scored = predicted >= 0
    if proba is not None:
        scored &= np.isfinite(proba.sum(axis=1))  # probabilities are in [0, 1]: a sum is finite iff each is
    if not scored.all():  # copies of the day's arrays only when a row has to go
        predicted, observed = predicted[scored], observed[scored]
        proba = proba[scored] if proba is not None else None
    has_label = observed >= 0
    n_scored, n_labelled = int(scored.sum()), int(has_label.sum())
    frames = []
    if n_labelled:
        measured = multiclass_metrics(
            observed[has_label],  # class indices: encode keeps them (no name round trip)
            predicted[has_label],
            classes,
            proba[has_label] if proba is not None else None,
        )
        counts = np.bincount(observed[has_label], minlength=k)
        share_value, share_low, share_high = proportion_interval(counts, np.full(k, n_labelled))
        shares = pd.DataFrame(
            {
                "metric": [f"{LABEL_SHARE}{c}" for c in classes],
                "value": share_value,
                "ci_low": share_low,
                "ci_high": share_high,
                "n": n_labelled,
            }
        )
        measured = pd.concat([measured, shares], ignore_index=True)
        frames.append(measured[np.isfinite(measured["value"])].assign(estimated=False))
    top = to_float_array(day["score"])[scored] if "score" in day else np.empty(0)
    if proba is not None and top.size == 0 and n_scored:
        top = proba[np.arange(n_scored), predicted]
    trust = estimate_trust(top, support)
    note = "; ".join(
        p
        for p in (
            trust.reason,
            calibration.note
            if calibration is not None
            else "raw probabilities: the reference carries no calibration",
        )
        if p
    )
    if proba is not None:
        estimated = estimate_multiclass_metrics(proba, predicted, classes, calibration)
        frames.append(estimated.assign(estimated=True))
    else:
        note = "no estimate: the day has no score__<class> probabilities"
    return _finish(frames, trust.trusted, note, _counts(rows, n_scored, n_labelled, trust.outside_share))


def confusion_matrix_rows(day: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """The `confusion_matrix` rows of a multiclass model-day (without model_name / partition_date): every
    (observed, predicted) pair of declared classes with its count over the labelled rows; no rows when
    nothing is labelled yet."""
    classes = list(classes)
    k = len(classes)
    predicted = class_indices(day["prediction"], k) if "prediction" in day else np.full(len(day), -1)
    observed = class_indices(day["label"], k) if "label" in day else np.full(len(day), -1)
    keep = (predicted >= 0) & (observed >= 0)
    if not keep.any():
        return pd.DataFrame(columns=result_columns("confusion_matrix")).astype({"n": "int64"})
    out = confusion_long(observed[keep], predicted[keep], classes)
    return out.reindex(columns=result_columns("confusion_matrix"))


def estimation_inputs(
    profile: ReferenceProfile | None,
) -> tuple[Calibration | ErrorProfile | MulticlassCalibration | None, ScoreSupport | None]:
    """What a live day's estimates take from the reference profile: its estimator (binary: the score
    calibration, raw scores when the profile has none; regression: the ErrorProfile; multiclass: the
    MulticlassCalibration; None when the reference could not fit one) and the support of its scores (the
    `__score__` profile's sketch: scores, predicted values or top-label probabilities)."""
    if profile is None:
        return UNCALIBRATED, None
    score = profile.features.get(SCORE_FEATURE)
    sketch = getattr(score, "sketch", None)
    support = ScoreSupport.from_weighted(sketch.values, sketch.counts) if sketch is not None else None
    if profile.estimator is not None:
        return profile.estimator, support
    return profile.calibration or UNCALIBRATED, support


def table_rows(metrics: pd.DataFrame, *others: pd.DataFrame) -> pd.DataFrame:
    """The model-day's performance_metrics rows: daily_performance's rows and any other metric rows
    (outcome rows), the estimate columns left NULL on the others."""
    frames = [metrics, *(frame for frame in others if len(frame))]
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else metrics
    out = out.reindex(columns=PERFORMANCE_TABLE_COLUMNS)
    return out.astype({"trusted": "boolean"})


# --------------------------------------------------------------------------- checks


def compare_to_band(
    value: float,
    ci_low: float,
    ci_high: float,
    mean: float,
    std: float,
    k: float,
    direction: Direction,
    n_days: float | None = None,
) -> tuple[bool, float, float]:
    """Is `value` outside the reference band on its worse side, with its interval excluding the mean?

    Both conditions, at the same k: outside mean ± k·std (the day-to-day spread of the reference window;
    with `n_days` the prediction interval of baselines.band_multiplier, so a short window's underestimated
    std does not make ordinary days fail), and the day's own interval, widened from 95 % to ± k of its
    standard errors, not containing the reference mean. The band's spread is that of full reference
    days; a small day (a weekend) is noisier, and at 95 % its interval alone let about 2.5 % of such days
    through per metric, which a multiclass model's dozen metrics turned into a false alarm a month. A
    missing interval does not block. Returns (breach, band_low, band_high); without a finite std there is
    no band and no breach.
    """
    low, high = band_limits(mean, std, k, n_days)
    if not (np.isfinite(value) and np.isfinite(mean) and std is not None and np.isfinite(std)):
        return False, low, high
    stretch = k / z_value(0.95)  # the rows' intervals are 95 %
    reach_high = value + (ci_high - value) * stretch if np.isfinite(ci_high) else np.nan
    reach_low = value - (value - ci_low) * stretch if np.isfinite(ci_low) else np.nan
    below = value < low and not (np.isfinite(reach_high) and reach_high >= mean)
    above = value > high and not (np.isfinite(reach_low) and reach_low <= mean)
    if direction == "higher_is_better":
        return below, low, high
    if direction == "lower_is_better":
        return above, low, high
    return below or above, low, high


@dataclass(frozen=True)
class MetricJudgement:
    """What the performance checks decided about one metric of a model-day, with the numbers behind it.

    Deciding is kept apart from describing so the rules read on their own and the wording (findings,
    summary table) can change without touching them. `basis` says which row and band were compared.
    """

    metric: str
    basis: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    estimated: bool
    labelled_fraction: float
    band_mean: float
    band_std: float
    band_k: float
    band_low: float
    band_high: float
    n_days: int
    higher_is_better: bool
    degraded: bool  # outside the band on the worse side, interval excluding the mean (compare_to_band)
    critical_drop: float | None  # the configured drop for this metric; None: it has no critical limit
    worse_by: float  # distance from the band mean towards worse (negative when better)
    critical: bool
    # False: the row is an untrusted estimate, withheld (neither degraded nor critical)
    trusted: bool = True
    estimate_note: str = ""  # estimated rows: how they were calibrated and, when untrusted, why
    # two_sided (regression bias): worse is away from the reference mean either way; "" reads higher_is_better
    direction: str = ""

    @property
    def two_sided(self) -> bool:
        return self.direction == "two_sided"

    @property
    def worse_below(self) -> bool:
        """Is the worse side below the mean (higher is better, or a two-sided value under its mean)?"""
        return self.value < self.band_mean if self.two_sided else self.higher_is_better

    @property
    def band_limit(self) -> float:
        """The band edge on the worse side: the warning's threshold."""
        return self.band_low if self.worse_below else self.band_high

    @property
    def critical_limit(self) -> float:
        """The value beyond which the metric is a critical drop (only meaningful with a critical_drop)."""
        drop = self.critical_drop or 0.0
        return self.band_mean - drop if self.worse_below else self.band_mean + drop

    @property
    def margin(self) -> float:
        """How far inside its band the value is on the worse side (negative: outside)."""
        if self.two_sided:
            return min(self.value - self.band_low, self.band_high - self.value)
        return self.value - self.band_low if self.higher_is_better else self.band_high - self.value


def metric_direction(metric: str) -> Direction:
    """Which way a performance_metrics metric gets worse, whatever the task: binary (HIGHER_IS_BETTER),
    regression (errors lower is better, r2 higher, bias two-sided), multiclass (accuracy, F1, per-class
    precision / recall higher, log loss lower); label rows (label_mean, label_share:<class>) and
    directionless metrics are two-sided. Unknown metrics raise KeyError."""
    if metric in DIRECTIONLESS or metric == LABEL_MEAN or metric.startswith(LABEL_SHARE):
        return "two_sided"
    if metric == "bias":
        return "two_sided"
    if metric.startswith(MULTICLASS_PER_CLASS):
        return "higher_is_better"
    for table in (HIGHER_IS_BETTER, REGRESSION_HIGHER_IS_BETTER, MULTICLASS_HIGHER_IS_BETTER):
        if metric in table:
            return "higher_is_better" if table[metric] else "lower_is_better"
    raise KeyError(f"no direction known for metric {metric!r}")


@dataclass(frozen=True)
class TaskMetrics:
    """The metrics the performance checks judge for one task, in table order, and its critical limits."""

    task: str
    checked: tuple[str, ...]

    def critical_drop(self, metric: str, band_mean: float, thresholds: PerformanceThresholds) -> float | None:
        """How much worse than the band mean is critical: critical_drops[metric] (absolute) when set; else
        binary AUC auc_critical_drop, multiclass accuracy accuracy_critical_drop, regression mae / rmse
        error_critical_increase × the band mean (errors are in the label's unit); None: no critical limit."""
        if metric in thresholds.critical_drops:
            return float(thresholds.critical_drops[metric])
        if self.task == "binary_classification" and metric == "auc":
            return thresholds.auc_critical_drop
        if self.task == "multiclass_classification" and metric == "accuracy":
            return thresholds.accuracy_critical_drop
        if self.task == "regression" and metric in ("mae", "rmse") and np.isfinite(band_mean):
            return thresholds.error_critical_increase * abs(float(band_mean))
        return None


BINARY_METRICS = TaskMetrics("binary_classification", tuple(m for m in METRICS if m not in DIRECTIONLESS))


def task_metrics(model: ModelConfig | None) -> TaskMetrics:
    """The checked metrics of the model's task (binary without a model)."""
    if model is None or model.is_binary:
        return BINARY_METRICS
    if model.is_regression:
        return TaskMetrics(model.task, REGRESSION_METRICS)
    classes = list(model.classes)
    names = ["accuracy", "macro_f1", "weighted_f1", "log_loss"]
    names += [f"precision:{c}" for c in classes] + [f"recall:{c}" for c in classes]
    return TaskMetrics(model.task, tuple(names))


def performance_checks(
    today: pd.DataFrame,
    bands: pd.DataFrame,
    thresholds: PerformanceThresholds,
    metrics: TaskMetrics = BINARY_METRICS,
) -> list[CheckResult]:
    """`performance_degradation` (warning) and `performance_critical_drop` (critical) for one model-day.

    `today`: daily_performance rows; `bands`: metric, estimated, mean, std, n_days (summarize_days over
    the reference window's daily rows, keyed by metric and estimated). Per metric the measured row is
    used when it has n >= min_n and a measured band exists, else the estimated row against the
    estimated band (said in the evidence). `metrics` are the task's (task_metrics(model); binary by default),
    each judged in its direction (metric_direction). Degradation: outside the band on the worse side
    (compare_to_band). Critical: outside the band as well, and worse than the band mean by more than the
    metric's critical drop (TaskMetrics.critical_drop) with the interval excluding the mean. Binary
    positive_rate and the label rows are not checked here (target_drift_check judges the latter).

    An untrusted estimate (`trusted` false) is withheld: its subject gets an `unknown` entry (`model` for
    the degradation check, the metric for the critical one; an open alert stays open), and a check that
    found nothing on the trusted rows is unknown for the day (`CheckResult.unknown`), not passed.
    A metric with a row but no band to judge it against (above all, labelled rows without a measured
    band: the reference was built before its labels landed) gives one warning finding, subject
    `reference_band`, instead of passing silently. A day with nothing to judge at all (no labelled rows
    and no estimate: a regression model whose reference had no labels to fit DLE on) is unknown for
    both checks.
    """
    judgements = judge_metrics(today, bands, thresholds, metrics)
    judged = [j for j in judgements.values() if j is not None]
    gaps = band_gaps(today, bands, thresholds, metrics)
    summary = _summary_table(judgements, gaps)
    withheld = [j for j in judged if not j.trusted]
    degradations = [_degradation_finding(j) for j in judged if j.degraded]
    if withheld and not degradations:
        degradations.append(_withheld_entry(PERFORMANCE_DEGRADATION, "model", withheld))
    if gaps:
        degradations.append(_band_gap_finding(gaps, today, thresholds))
    criticals = [_critical_finding(j) for j in judged if j.critical]
    criticals += [
        _withheld_entry(PERFORMANCE_CRITICAL_DROP, j.metric, [j])
        for j in withheld
        if j.critical_drop is not None
    ]
    # Judged and fine: the values, so an open alert resolves only once back inside its line by a margin.
    fine = [j for j in judged if j.trusted and not j.degraded and np.isfinite(j.value)]
    if fine and not any(f.severity in ("warning", "critical", UNKNOWN) for f in degradations):
        closest = min(fine, key=lambda j: j.margin)
        degradations.append(
            observed(PERFORMANCE_DEGRADATION, "model", closest.metric, closest.value, closest.band_limit)
        )
    criticals += [
        observed(PERFORMANCE_CRITICAL_DROP, j.metric, j.metric, j.value, j.critical_limit)
        for j in fine
        if j.critical_drop is not None and not j.critical
    ]
    if not judged and not gaps:  # no labels and no estimate (a regression reference built before labels)
        labelled = _labelled_rows(_usable_today(today))
        for findings, check in (
            (degradations, PERFORMANCE_DEGRADATION),
            (criticals, PERFORMANCE_CRITICAL_DROP),
        ):
            entry = not_enough_data(
                check, "model", metrics.checked[0], labelled, thresholds.min_n, "labelled rows"
            )
            findings.append(
                replace(entry, message=f"{entry.message}; no label-free estimate with a reference band")
            )
    return [
        CheckResult(
            check_name=PERFORMANCE_DEGRADATION,
            findings=degradations,
            metadata={"summary": summary},
            description=f"Metrics outside their reference band (mean ± {thresholds.band_k:g}·σ as a prediction interval "
            "for the reference's day count), their interval at the same k excluding the mean",
            unknown=_unknown_reason(degradations),
        ),
        CheckResult(
            check_name=PERFORMANCE_CRITICAL_DROP,
            findings=criticals,
            metadata={"summary": summary},
            description="Metrics worse than their reference mean by more than the critical drop",
            unknown=_unknown_reason(criticals),
        ),
    ]


def is_label_metric(metric: str) -> bool:
    """A measured row describing the labels themselves (regression label_mean, multiclass label_share:<c>)."""
    return metric == LABEL_MEAN or metric.startswith(LABEL_SHARE)


def target_drift_check(
    today: pd.DataFrame | None,
    bands: pd.DataFrame | None,
    thresholds: PerformanceThresholds,
    metrics: TaskMetrics = BINARY_METRICS,
) -> CheckResult:
    """`target_drift` (warning): the label distribution moved. Each measured label row (label_mean,
    label_share:<class>) on at least min_n labelled rows is compared with its measured reference band
    two-sided (compare_to_band: outside mean ± band_k·σ and the day's interval excluding the mean). One
    finding per moved metric, all with subject `model`, so the model gets one alert listing them.
    A binary model has no label rows: passes. A regression or multiclass day that judged nothing (labels
    not in yet, fewer than min_n, no band) is unknown, not passed: an open alert must not resolve on a day
    that could not be looked at."""
    today = _usable_today(today)
    labelled = _labelled_rows(today)
    rows = today[
        today["metric"].astype(str).map(is_label_metric).astype(bool) & ~today["estimated"].astype(bool)
    ]
    findings: list[Finding] = []
    fine: list[MetricJudgement] = []
    table: list[dict[str, Any]] = []
    for row in rows.to_dict("records"):
        metric = str(row["metric"])
        band = _band_row(bands, metric, False)
        if band is None or not np.isfinite(_f(row["value"])):
            table.append(
                {
                    "metric": metric,
                    "value": _f(row["value"]),
                    "n": int(row["n"]),
                    "status": "no reference band",
                }
            )
            continue
        if labelled < thresholds.min_n:
            status = f"not judged: {labelled} labelled rows < min_n {thresholds.min_n}"
            table.append({"metric": metric, "value": _f(row["value"]), "n": int(row["n"]), "status": status})
            continue
        basis = f"measured on {labelled} labelled rows"
        j = judge_metric(metric, pd.Series(row), band, basis, thresholds.band_k, None)
        table.append(
            {
                "metric": metric,
                "value": j.value,
                "ci": f"[{j.ci_low:.4g}, {j.ci_high:.4g}]",
                "band": f"[{j.band_low:.4g}, {j.band_high:.4g}]",
                "n": j.n,
                "status": "warning" if j.degraded else "ok",
            }
        )
        if j.degraded:
            side = "below" if j.worse_below else "above"
            findings.append(
                Finding(
                    check_name=TARGET_DRIFT,
                    severity="warning",
                    metric=metric,
                    subject="model",
                    value=j.value,
                    threshold=j.band_limit,
                    message=f"{_describe(j)} is {side} its reference band {_band_text(j)}: the labels moved",
                    evidence=_evidence(j),
                )
            )
        else:
            fine.append(j)
    if fine and not findings:
        closest = min(fine, key=lambda j: j.margin)
        findings.append(observed(TARGET_DRIFT, "model", closest.metric, closest.value, closest.band_limit))
    unknown = ""
    if not findings and metrics.task != BINARY_METRICS.task:
        label_metric = LABEL_MEAN if metrics.task == "regression" else f"{LABEL_SHARE}*"
        entry = not_enough_data(
            TARGET_DRIFT, "model", label_metric, labelled, thresholds.min_n, "labelled rows"
        )
        if labelled >= thresholds.min_n:  # labelled enough, but no reference band to compare with
            entry = replace(
                entry,
                message="not judged: the label rows have no reference band (two labelled "
                "reference days are needed)",
            )
        findings.append(entry)
        unknown = entry.message
    return CheckResult(
        check_name=TARGET_DRIFT,
        findings=findings,
        metadata={"summary": markdown_table(table, ["metric", "value", "ci", "band", "n", "status"])},
        description=f"Label distribution inside its reference band (mean ± {thresholds.band_k:g}·σ as a prediction "
        "interval for the reference's day count, either side)",
        unknown=unknown,
    )


def _withheld_entry(check_name: str, subject: str, withheld: list[MetricJudgement]) -> Finding:
    """The `unknown` entry of a subject whose metrics rest on an untrusted estimate today."""
    names = ", ".join(j.metric for j in withheld)
    return Finding(
        check_name=check_name,
        severity=UNKNOWN,
        metric=withheld[0].metric,
        subject=subject,
        value=withheld[0].value,
        threshold=withheld[0].band_limit,
        message=f"not judged: {names} rest on an untrusted estimate ({withheld[0].estimate_note})",
        evidence={"withheld": [j.metric for j in withheld], **_evidence(withheld[0])},
    )


def _unknown_reason(findings: list[Finding]) -> str:
    """The check is unknown when it failed nothing and withheld something ('' otherwise)."""
    if any(f.severity in ("warning", "critical") for f in findings):
        return ""
    return next((f.message for f in findings if f.severity == UNKNOWN), "")


def judge_metrics(
    today: pd.DataFrame | None,
    bands: pd.DataFrame | None,
    thresholds: PerformanceThresholds,
    metrics: TaskMetrics = BINARY_METRICS,
) -> dict[str, MetricJudgement | None]:
    """Every checked metric of the task (table order; binary: METRICS without DIRECTIONLESS) -> its
    judgement, or None when the day has no usable row or no reference band for it. Missing inputs judge
    as no data, never fail."""
    today = _usable_today(today)
    out: dict[str, MetricJudgement | None] = {}
    for metric in metrics.checked:
        chosen = _choose_row(today, bands, metric, thresholds.min_n)
        if chosen is None:
            out[metric] = None
            continue
        row, band, basis = chosen
        drop = metrics.critical_drop(metric, _f(band["mean"]), thresholds)
        out[metric] = judge_metric(metric, row, band, basis, thresholds.band_k, drop)
    return out


def band_gaps(
    today: pd.DataFrame | None,
    bands: pd.DataFrame | None,
    thresholds: PerformanceThresholds,
    metrics: TaskMetrics = BINARY_METRICS,
) -> dict[str, str]:
    """Checked metric -> which band it lacks: "measured" when the day has at least min_n labelled rows and
    a measured row but no measured band (a band needs two reference days with labels), so the labels
    cannot be judged and the estimate stands in where it has a band; "any" when the day is judged on its
    estimate and that has no band either."""
    today = _usable_today(today)
    labelled = _labelled_rows(today)
    out: dict[str, str] = {}
    for metric in metrics.checked:
        rows = today[(today["metric"] == metric) & np.isfinite(to_float_array(today["value"]))]
        is_estimated = rows["estimated"].astype(bool)
        if labelled >= thresholds.min_n and (~is_estimated).any():  # a measured row to judge
            if _band_row(bands, metric, False) is None:
                out[metric] = "measured"
        elif is_estimated.any() and _band_row(bands, metric, True) is None:
            out[metric] = "any"
    return out


def judge_metric(
    metric: str, row: pd.Series, band: pd.Series, basis: str, band_k: float, critical_drop: float | None
) -> MetricJudgement:
    """One metric's row against its band: degraded (compare_to_band) and, when a critical drop is set,
    critical = degraded as well (so not a small day's noise) and worse than the mean by more than the
    drop, with the interval excluding the mean. A row that is an untrusted estimate is withheld: neither."""
    direction = metric_direction(metric)
    hib = direction == "higher_is_better"
    value, lo, hi = float(row["value"]), _f(row["ci_low"]), _f(row["ci_high"])
    mean, std = float(band["mean"]), _f(band["std"])
    trusted = not _is_false(row.get("trusted"))
    n_days = _f(band.get("n_days"))
    degraded, band_low, band_high = compare_to_band(value, lo, hi, mean, std, band_k, direction, n_days)
    band_k = band_multiplier(band_k, n_days)  # shown: the prediction interval's k for these days
    if direction == "two_sided":
        low_side = value < mean
        worse_by = abs(value - mean)
    else:
        low_side = hib
        worse_by = (mean - value) if hib else (value - mean)
    ci_excludes = not np.isfinite(hi if low_side else lo) or ((hi < mean) if low_side else (lo > mean))
    critical = bool(
        critical_drop is not None
        and degraded
        and np.isfinite(worse_by)
        and worse_by > critical_drop
        and ci_excludes
    )
    return MetricJudgement(
        metric=metric,
        basis=basis,
        value=value,
        ci_low=lo,
        ci_high=hi,
        n=int(row["n"]),
        estimated=bool(row["estimated"]),
        labelled_fraction=_f(row.get("labelled_fraction", np.nan)),
        band_mean=mean,
        band_std=std,
        band_k=band_k,
        band_low=band_low,
        band_high=band_high,
        n_days=int(band["n_days"]),
        higher_is_better=hib,
        degraded=degraded and trusted,
        critical_drop=critical_drop,
        worse_by=worse_by,
        critical=critical and trusted,
        trusted=trusted,
        estimate_note=_note(row.get("estimate_note")) or ("" if trusted else "untrusted estimate"),
        direction=direction,
    )


def _evidence(j: MetricJudgement) -> dict[str, Any]:
    """The numbers a finding is judged on, JSON-safe (NaN and inf become null)."""
    return {
        "n": j.n,
        "ci": [json_float(j.ci_low), json_float(j.ci_high)],
        "band_mean": json_float(j.band_mean),
        "band_std": json_float(j.band_std),
        "band_k": j.band_k,
        "band": [json_float(j.band_low), json_float(j.band_high)],
        "n_days": j.n_days,
        "estimated": j.estimated,
        "basis": j.basis,
        "labelled_fraction": json_float(j.labelled_fraction),
        **({"estimate_note": j.estimate_note} if j.estimated and j.estimate_note else {}),
    }


def _degradation_finding(j: MetricJudgement) -> Finding:
    side = "below" if j.worse_below else "above"
    return Finding(
        check_name=PERFORMANCE_DEGRADATION,
        severity="warning",
        metric=j.metric,
        # One subject for the whole check: a degraded model moves several metrics at once,
        # and one alert (listing them) is what on-call should get, not one page per metric.
        subject="model",
        value=j.value,
        threshold=j.band_limit,
        message=f"{_describe(j)} is {side} its reference band {_band_text(j)}",
        evidence=_evidence(j),
    )


def _critical_finding(j: MetricJudgement) -> Finding:
    return Finding(
        check_name=PERFORMANCE_CRITICAL_DROP,
        severity="critical",
        metric=j.metric,
        subject=j.metric,
        value=j.value,
        threshold=j.critical_limit,
        message=(
            f"{_describe(j)} is {j.worse_by:.4g} worse than its reference mean {j.band_mean:.4g} "
            f"(critical drop {j.critical_drop:.4g}; band {_band_text(j)})"
        ),
        evidence={**_evidence(j), "critical_drop": j.critical_drop, "worse_by": json_float(j.worse_by)},
    )


def _band_gap_finding(
    gaps: Mapping[str, str], today: pd.DataFrame, thresholds: PerformanceThresholds
) -> Finding:
    measured = [m for m, kind in gaps.items() if kind == "measured"]
    missing = [m for m, kind in gaps.items() if kind == "any"]
    labelled = _labelled_rows(_usable_today(today))
    parts = []
    if measured:
        parts.append(
            f"{', '.join(measured)} cannot be judged on the day's {labelled} labelled rows: the reference has no "
            "measured band for them (it was built before the reference window's labels landed, or they never "
            "did); the estimates stand in where they have a band. Rebuild the reference once its labels are in"
        )
    if missing:
        parts.append(
            f"{', '.join(missing)}: no reference band for the estimate either (a band needs two reference "
            "days): not judged"
        )
    return Finding(
        check_name=PERFORMANCE_DEGRADATION,
        severity="warning",
        metric=REFERENCE_BAND,
        subject=REFERENCE_BAND,
        value=float(len(gaps)),
        threshold=None,
        message="; ".join(parts),
        evidence={
            "no_measured_band": measured,
            "no_band": missing,
            "labelled": labelled,
            "min_n": thresholds.min_n,
        },
    )


def _summary_table(judgements: Mapping[str, MetricJudgement | None], gaps: Mapping[str, str]) -> str:
    """The markdown table shown with both checks: one line per checked metric, with its status."""
    table: list[dict[str, Any]] = []
    for metric, j in judgements.items():
        if j is None:
            status = {"any": "no reference band", "measured": "no measured reference band"}.get(
                gaps.get(metric, ""), "no data"
            )
            table.append({"metric": metric, "status": status})
            continue
        table.append(
            {
                "metric": metric,
                "basis": j.basis,
                "value": j.value,
                "ci": f"[{j.ci_low:.4g}, {j.ci_high:.4g}]",
                "band": f"[{j.band_low:.4g}, {j.band_high:.4g}]",
                "n": j.n,
                "status": _status(j) + ("; no measured band" if gaps.get(metric) == "measured" else ""),
            }
        )
    return markdown_table(table, ["metric", "basis", "value", "ci", "band", "n", "status"])


def _status(j: MetricJudgement) -> str:
    if not j.trusted:
        return "unknown: untrusted estimate"
    if j.critical:
        return "critical"
    if j.degraded:
        return "warning"
    return "ok"


# --------------------------------------------------------------------------- helpers


def _clean_rows(y: Any, score: Any, prediction: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_arr, s_arr, p_arr = to_float_array(y), to_float_array(score), to_float_array(prediction)
    if not y_arr.size == s_arr.size == p_arr.size:
        raise ValueError(f"y, score and prediction have {y_arr.size}, {s_arr.size}, {p_arr.size} rows")
    keep = np.isfinite(s_arr) & np.isin(y_arr, (0.0, 1.0)) & np.isin(p_arr, (0.0, 1.0))
    return take(y_arr, keep), take(s_arr, keep), take(p_arr, keep)


def _bin_index(score: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.floor(score * bins), 0, bins - 1).astype(np.intp)


def _nan3() -> tuple[float, float, float]:
    return float("nan"), float("nan"), float("nan")


def _proportion(successes: int, total: int, confidence: float) -> tuple[float, float, float]:
    value, low, high = proportion_interval(successes, total, confidence)
    return float(value), float(low), float(high)


def _f1_delta(tp: int, fp: int, fn: int, z: float) -> tuple[float, float, float]:
    """F1 = 2TP/(2TP+FP+FN) with a delta-method interval under multinomial sampling of the counts."""
    denom = 2 * tp + fp + fn
    if denom == 0:
        return _nan3()
    f1 = 2 * tp / denom
    var = 4.0 * tp * (fp + fn) * (tp + fp + fn) / float(denom) ** 4
    half = z * np.sqrt(var)
    return f1, max(0.0, f1 - half), min(1.0, f1 + half)


def _ece_with_ci(
    y: np.ndarray, score: np.ndarray, bins: int, confidence: float
) -> tuple[float, float, float]:
    n = y.size
    if n == 0:
        return _nan3()
    idx = _bin_index(score, bins)
    diff = y - score
    ece = float(np.abs(np.bincount(idx, weights=diff, minlength=bins)).sum() / n)
    if n < 2:
        return ece, float("nan"), float("nan")
    rng = np.random.default_rng(ECE_BOOTSTRAP_SEED)
    if n <= ECE_EXACT_BOOTSTRAP_MAX_ROWS:
        draws = _ece_bootstrap(idx, diff, bins, ECE_BOOTSTRAP_SAMPLES, rng)
    else:
        draws = _ece_normal_bootstrap(idx, diff, bins, ECE_BOOTSTRAP_SAMPLES, rng)
    # Normal bootstrap interval (estimate ± z·bootstrap se): the percentile interval of a statistic this
    # biased upwards (|sums| fold the noise) can lie entirely above the estimate itself.
    half = z_value(confidence) * float(draws.std(ddof=1))
    return ece, max(0.0, ece - half), ece + half


def _ece_bootstrap(
    idx: np.ndarray, diff: np.ndarray, bins: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """ECE of `samples` row resamples, in blocks so at most ~4M resampled indices are held at once."""
    n = idx.size
    block = max(1, min(samples, _BOOTSTRAP_BLOCK_CELLS // n))
    out = np.empty(samples)
    for start in range(0, samples, block):  # loop over resample blocks, not rows
        size = min(block, samples - start)
        pick = rng.integers(0, n, size=(size, n))
        cells = idx[pick] + bins * np.arange(size)[:, None]
        sums = np.bincount(cells.ravel(), weights=diff[pick].ravel(), minlength=size * bins)
        out[start : start + size] = np.abs(sums.reshape(size, bins)).sum(axis=1) / n
    return out


def _ece_normal_bootstrap(
    idx: np.ndarray, diff: np.ndarray, bins: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Large samples: per-bin means of diff·1[bin] are ~ multivariate normal (CLT) with covariance
    (diag(q) − m mᵀ)/n, m and q the first and second moments; draw them instead of resampling rows."""
    n = idx.size
    m = np.bincount(idx, weights=diff, minlength=bins) / n
    q = np.bincount(idx, weights=diff * diff, minlength=bins) / n
    cov = (np.diag(q) - np.outer(m, m)) / n
    draws = rng.multivariate_normal(m, cov, size=samples, method="eigh")
    return np.abs(draws).sum(axis=1)


def _latest_labels(labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One label per request: the latest by label_ts (input order breaks ties); invalid labels dropped."""
    if labels is None or labels.empty or "label" not in labels:
        return pd.DataFrame({"request_id": pd.Series(dtype=object), "label": pd.Series(dtype=float)}), 0
    frame = labels[["request_id", "label", *(["label_ts"] if "label_ts" in labels else [])]].copy()
    frame["label"] = to_float_array(frame["label"])
    valid = np.isin(frame["label"].to_numpy(), (0.0, 1.0)) & frame["request_id"].notna().to_numpy()
    invalid = int((~valid).sum())
    frame = frame[valid]
    if "label_ts" in frame:
        frame = frame.assign(label_ts=pd.to_datetime(frame["label_ts"], utc=True, errors="coerce"))
        frame = frame.sort_values("label_ts", kind="stable", na_position="first")
    frame = frame.drop_duplicates("request_id", keep="last")
    return frame[["request_id", "label"]], invalid


def _usable_today(today: pd.DataFrame | None) -> pd.DataFrame:
    if today is None or not set(PERFORMANCE_COLUMNS) <= set(today.columns):
        return pd.DataFrame({column: [] for column in PERFORMANCE_COLUMNS})
    return today


def _labelled_rows(today: pd.DataFrame) -> int:
    return int(to_float_array(today.loc[~today["estimated"].astype(bool), "n"]).max(initial=0))


def _choose_row(
    today: pd.DataFrame, bands: pd.DataFrame, metric: str, min_n: int
) -> tuple[pd.Series, pd.Series, str] | None:
    labelled = _labelled_rows(today)
    rows = today[(today["metric"] == metric) & np.isfinite(to_float_array(today["value"]))]
    measured = rows[~rows["estimated"].astype(bool)]
    estimated = rows[rows["estimated"].astype(bool)]
    candidates: list[tuple[pd.DataFrame, bool, str]] = []
    if labelled < min_n:
        fallback = f"estimated (labelled n={labelled} < min_n {min_n})"
    elif measured.empty:
        fallback = f"estimated ({metric} not computable on the {labelled} labelled rows)"
    else:
        candidates.append((measured, False, f"measured on {labelled} labelled rows"))
        fallback = f"estimated (no measured reference band; {labelled} labelled rows)"
    candidates.append((estimated, True, fallback))
    for frame, estimated_basis, basis in candidates:
        band = _band_row(bands, metric, estimated_basis)
        if len(frame) and band is not None:
            return frame.iloc[0], band, basis
    return None


def _band_row(bands: pd.DataFrame, metric: str, estimated: bool) -> pd.Series | None:
    """The band of (metric, estimated), if there is one: a finite mean and a finite spread (a std needs
    two reference days; a mean alone cannot tell a bad day from an ordinary one)."""
    if bands is None or bands.empty:
        return None
    match = bands["metric"] == metric
    if "estimated" in bands:
        match &= bands["estimated"].astype(bool) == estimated
    elif estimated:
        return None
    found = bands[match]
    if found.empty or not (np.isfinite(_f(found["mean"].iloc[0])) and np.isfinite(_f(found["std"].iloc[0]))):
        return None
    return found.iloc[0]


def _note(value: Any) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
        else str(value)
    )


def _is_false(value: Any) -> bool:
    """An explicit false (a missing `trusted` is not one: measured rows and older frames are trusted)."""
    return value is not None and not pd.isna(value) and not bool(value)


def _describe(j: MetricJudgement) -> str:
    kind = "estimated" if j.estimated else "measured"
    return f"{j.metric} {j.value:.4g} ({kind}, 95% CI [{j.ci_low:.4g}, {j.ci_high:.4g}], n={j.n}; {j.basis})"


def _band_text(j: MetricJudgement) -> str:
    std_text = f"{j.band_std:.3g}" if np.isfinite(j.band_std) else "n/a"
    return (
        f"[{j.band_low:.4g}, {j.band_high:.4g}] (mean {j.band_mean:.4g} ± {j.band_k:.3g}·σ, σ={std_text}, "
        f"{j.n_days} reference days)"
    )


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
