"""Confidence-based performance estimation (CBPE): metrics expected from the scores before labels arrive.

If P(y = 1) is known for each row, each row's label is a Bernoulli draw with that probability,
independent across rows. The expected confusion counts follow (E[TP] = sum of the probabilities over
predicted positives, ...), and so do the metrics; a shift of the score distribution towards 0.5
lowers the expected AUC and accuracy on the day it happens, weeks before the labels confirm it.
Intervals are for the *realized* metric under that model: where the labelled value should land once
the labels are in.

The probability is the model's score only if the scores are calibrated. Most are not (an over- or
under-confident model makes CBPE read 0.90 for a realized AUC of 0.77), so, as NannyML does, the
reference window's labels first fit a monotone map score -> P(y = 1) (`Calibration`, isotonic
regression, cross-fitted over reference days: `reference_calibration`), and the estimates use the
calibrated probabilities while every metric stays that of the logged score and decision.

An estimate is only as good as the reference behind it: on a day whose scores lie outside the
reference's score range (`ScoreSupport`) the map is extrapolated, and the estimate is flagged untrusted
(`estimate_trust`) instead of read as a real change of performance.
Reference: NannyML, "Confidence-based Performance Estimation" (docs.nannyml.com, how it works: CBPE).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import isotonic_regression

from monitoring_pipelines.core.stats import (
    EPS,
    PiecewiseLinear,
    sorted_midranks,
    to_float_array,
    wilson_interval,
    z_value,
)

# The metrics of performance_metrics, in table order, and the columns of one metric row. Defined here
# because performance.py imports this module (for estimate_metrics) and takes both from it.
METRICS: tuple[str, ...] = (
    "auc",
    "log_loss",
    "brier",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "positive_rate",
    "ece",
)
METRIC_COLUMNS = ["metric", "value", "ci_low", "ci_high", "n"]

# ECE is left out: it measures the calibration that CBPE either assumes (raw scores: the estimate would
# be about 0 by construction) or took from the reference's labels (then it restates the reference).
ESTIMATED_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m != "ece")

# Calibration needs enough labels of both classes: with fewer, isotonic regression maps whole score
# ranges to 0 or 1 from a handful of rows, and the map adds more error than it removes (docs/performance.md).
MIN_CALIBRATION_LABELS = 500
MIN_CALIBRATION_CLASS = 50
CALIBRATION_FOLDS = 5  # folds of reference days for cross-fitting
# A day's estimate is untrusted when more than MAX_OUTSIDE_SUPPORT of its scores lie outside the
# reference's [SUPPORT_TAIL, 1 - SUPPORT_TAIL] score quantiles (an ordinary day has about 2·SUPPORT_TAIL there).
SUPPORT_TAIL = 0.001
MAX_OUTSIDE_SUPPORT = 0.05


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, eq=False)
class Calibration:
    """A monotone map from score to P(y = 1), fitted on the reference's labels; or the raw scores.

    `x` are increasing scores and `y` the non-decreasing probabilities at them: between two knots the
    map is linear, beyond the first and last it is constant (as scikit-learn's
    IsotonicRegression(out_of_bounds="clip") predicts). Without knots the raw scores are used and `note`
    says why. `n_labels`, `n_positive`: the labelled reference rows it was fitted on (or found).
    """

    x: np.ndarray
    y: np.ndarray
    n_labels: int
    n_positive: int
    note: str

    @property
    def applied(self) -> bool:
        return self.x.size > 0

    def apply(self, score: np.ndarray) -> np.ndarray:
        """P(y = 1) for each (finite) score; the scores themselves when the map is not applied."""
        return self._map(score) if self.applied else score

    @cached_property
    def _map(self) -> PiecewiseLinear:
        """np.interp over the knots, built once per map (a day applies it to every row)."""
        return PiecewiseLinear(self.x, self.y)

    @classmethod
    def raw(cls, note: str, n_labels: int = 0, n_positive: int = 0) -> Calibration:
        """The identity: the scores are taken as the probabilities, for the reason in `note`."""
        return cls(np.empty(0), np.empty(0), int(n_labels), int(n_positive), note)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "isotonic" if self.applied else "none",
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "n_labels": self.n_labels,
            "n_positive": self.n_positive,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            x=np.asarray(data.get("x", []), dtype=np.float64),
            y=np.asarray(data.get("y", []), dtype=np.float64),
            n_labels=int(data.get("n_labels", 0)),
            n_positive=int(data.get("n_positive", 0)),
            note=str(data.get("note", "")),
        )


UNCALIBRATED = Calibration.raw("raw scores: the reference profile carries no calibration")


def fit_calibration(score: Any, label: Any) -> Calibration:
    """Isotonic regression of `label` on `score` (pool-adjacent-violators, weighted by ties), as a
    `Calibration`; the raw scores when there are fewer than MIN_CALIBRATION_LABELS labelled rows or
    fewer than MIN_CALIBRATION_CLASS of either class. Rows with a non-finite score or a label other than
    0/1 are dropped; scores are clipped to [0, 1]. Equals scikit-learn's
    IsotonicRegression(out_of_bounds="clip") fitted on the same rows (tested)."""
    s, y = _labelled(score, label)
    n, positive = int(s.size), int(y.sum())
    short = _too_few_labels(n, positive)
    if short:
        return Calibration.raw(short, n, positive)
    order = np.argsort(s)  # ties need no order: their labels are pooled
    x, p = _isotonic_sorted(s[order], y[order])
    return Calibration(x, p, n, positive, f"isotonic on {n:,} reference labels ({positive:,} positive)")


@dataclass(frozen=True)
class ReferenceCalibration:
    """The map live days use (`calibration`, fitted on every labelled reference row) and, per labelled
    reference day, the map fitted without that day's fold of days (`for_day`): a reference day's
    estimate is then out of sample, as a live day's is, and the estimated bands are not flattered by
    a map that has seen the day's labels."""

    calibration: Calibration
    by_day: dict[Hashable, Calibration] = field(default_factory=dict)

    def for_day(self, day: Hashable) -> Calibration:
        return self.by_day.get(day, self.calibration)


def reference_calibration(
    days: Mapping[Hashable, pd.DataFrame], folds: int = CALIBRATION_FOLDS
) -> ReferenceCalibration:
    """Calibrate the scores on the reference window's labels, cross-fitted over its days.

    `days`: each reference day's champion rows with `score` and `label` (NaN while unlabelled), as
    Snapshot.scored gives them. The labelled days are dealt into `folds` folds (day i into fold i mod
    k); each fold's days get the isotonic map fitted on the other folds. Calibration is kept only if
    those held-out maps lower the Brier score of the labelled rows against the raw scores (NannyML asks
    the same question with ECE; the Brier score is a proper scoring rule and needs no bins); then live
    days use the map fitted on every label. Raw scores, with the reason in the note, when there are too
    few labels (fit_calibration's minimum), labels on a single day only, or no held-out gain.
    """
    labelled: list[tuple[Hashable, np.ndarray, np.ndarray]] = []
    for day, frame in days.items():
        if "label" in frame and "score" in frame:
            s, y = _labelled(frame["score"], frame["label"])
            if s.size:
                labelled.append((day, s, y))
    s = np.concatenate([part for _, part, _ in labelled]) if labelled else np.empty(0)
    y = np.concatenate([part for _, _, part in labelled]) if labelled else np.empty(0)
    n, positive = int(s.size), int(y.sum())
    short = _too_few_labels(n, positive)
    if short:
        return ReferenceCalibration(Calibration.raw(short, n, positive))
    if len(labelled) < 2:
        note = f"raw scores: the {n:,} reference labels are all of one day; cross-fitting needs two"
        return ReferenceCalibration(Calibration.raw(note, n, positive))
    k = min(folds, len(labelled))
    fold = np.repeat(np.arange(len(labelled)) % k, [part.size for _, part, _ in labelled])
    order = np.argsort(s)  # ties need no order: their labels are pooled
    s, y, fold = s[order], y[order], fold[order]
    maps, calibrated_loss, raw_loss = [], 0.0, 0.0
    for f in range(k):  # k <= CALIBRATION_FOLDS fits, each O(n) on the sorted rows
        held = fold == f
        x_f, p_f = _isotonic_sorted(s[~held], y[~held])
        n_f = int((~held).sum())
        maps.append(
            Calibration(
                x_f, p_f, n_f, int(y[~held].sum()), f"isotonic on {n_f:,} reference labels (cross-fitted)"
            )
        )
        calibrated_loss += float(np.square(np.interp(s[held], x_f, p_f) - y[held]).sum())
        raw_loss += float(np.square(s[held] - y[held]).sum())
    calibrated_brier, raw_brier = calibrated_loss / n, raw_loss / n
    versus = f"held-out Brier {calibrated_brier:.4f} calibrated vs {raw_brier:.4f} raw, {k} folds of days"
    if not calibrated_brier < raw_brier:
        note = f"raw scores: isotonic calibration on {n:,} reference labels does not help ({versus})"
        return ReferenceCalibration(Calibration.raw(note, n, positive))
    x, p = _isotonic_sorted(s, y)
    note = f"isotonic on {n:,} reference labels ({positive:,} positive; {versus})"
    by_day = {day: maps[i % k] for i, (day, _, _) in enumerate(labelled)}
    return ReferenceCalibration(Calibration(x, p, n, positive, note), by_day)


def _labelled(score: Any, label: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = to_float_array(score), to_float_array(label)
    if s.size != y.size:
        raise ValueError(f"score has {s.size} rows, label has {y.size}")
    keep = np.isfinite(s) & np.isin(y, (0.0, 1.0))
    return np.clip(s[keep], 0.0, 1.0), y[keep]


def _too_few_labels(n: int, positive: int) -> str | None:
    negative = n - positive
    if n >= MIN_CALIBRATION_LABELS and min(positive, negative) >= MIN_CALIBRATION_CLASS:
        return None
    return (
        f"raw scores: the reference has {n:,} labelled rows ({positive:,} positive, {negative:,} negative); "
        f"calibrating needs {MIN_CALIBRATION_LABELS} with {MIN_CALIBRATION_CLASS} of each class"
    )


def _isotonic_sorted(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the isotonic regression of y on sorted s: PAVA (scipy.optimize.isotonic_regression, exact,
    O(n)) on the label means of the distinct scores, weighted by their counts; interior points of a
    constant block are dropped, its two ends kept (scikit-learn keeps the same points)."""
    if s.size == 0:
        return np.empty(0), np.empty(0)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    counts = np.diff(np.append(starts, s.size)).astype(np.float64)
    fitted = isotonic_regression(np.add.reduceat(y, starts) / counts, weights=counts, increasing=True).x
    x = s[starts]
    keep = np.ones(x.size, dtype=bool)
    if x.size > 2:
        keep[1:-1] = (fitted[:-2] != fitted[1:-1]) | (fitted[1:-1] != fitted[2:])
    return x[keep].copy(), np.clip(fitted[keep], 0.0, 1.0)


# --------------------------------------------------------------------------- trust


@dataclass(frozen=True)
class ScoreSupport:
    """Where the reference's scores lie: its [tail, 1 - tail] quantile range. The map from score to
    P(y = 1) and the bands of the estimates were learned there; outside it they are extrapolated."""

    low: float
    high: float
    tail: float = SUPPORT_TAIL

    @classmethod
    def from_weighted(
        cls, values: np.ndarray, counts: np.ndarray, tail: float = SUPPORT_TAIL
    ) -> ScoreSupport | None:
        """From increasing `values` with their row `counts` (a profile's sketch of the reference scores:
        its CDF is within 1/SKETCH_SIZE of the reference's). Inverted-CDF quantiles: less than `tail` of
        the reference lies below `low`, at most `tail` above `high`. None without values."""
        values, counts = np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.float64)
        if values.size == 0 or counts.sum() <= 0:
            return None
        cdf = np.cumsum(counts)
        cdf /= cdf[-1]
        last = values.size - 1
        low = values[min(int(np.searchsorted(cdf, tail, side="left")), last)]
        high = values[min(int(np.searchsorted(cdf, 1.0 - tail, side="left")), last)]
        return cls(float(low), float(high), tail)

    def outside_share(self, score: Any) -> float:
        """Share of the finite scores below `low` or above `high`; NaN without scores."""
        s = to_float_array(score)
        s = s[np.isfinite(s)]
        if s.size == 0:
            return float("nan")
        return float(np.count_nonzero((s < self.low) | (s > self.high)) / s.size)


@dataclass(frozen=True)
class EstimateTrust:
    """Whether a day's estimates may be judged: `reason` says why not ("" when trusted)."""

    trusted: bool
    outside_share: float  # share of the day's scores outside the reference's support; NaN when unknown
    reason: str = ""


def estimate_trust(
    score: Any, support: ScoreSupport | None, max_outside: float = MAX_OUTSIDE_SUPPORT
) -> EstimateTrust:
    """Untrusted when more than `max_outside` of the day's scores lie outside the reference's support:
    the estimate would rest on an extrapolated calibration (a unit bug pushing every score to 0.99
    reads as a model that became near perfect). Trusted when the support is unknown or the day empty."""
    share = support.outside_share(score) if support is not None else float("nan")
    if support is None or not np.isfinite(share) or share <= max_outside:
        return EstimateTrust(True, share)
    reason = (
        f"untrusted: {share:.1%} of the day's scores lie outside the reference's score range "
        f"[{support.low:.4g}, {support.high:.4g}] (its {support.tail:.1%} to {1 - support.tail:.1%} "
        f"quantiles; at most {max_outside:.0%} may)"
    )
    return EstimateTrust(False, share, reason)


def estimate_note(calibration: Calibration | None, trust: EstimateTrust | None = None) -> str:
    """The estimated rows' note: why they are untrusted, if they are, and how the scores were calibrated."""
    parts = [trust.reason] if trust is not None and trust.reason else []
    parts.append((calibration or UNCALIBRATED).note)
    return "; ".join(parts)


# --------------------------------------------------------------------------- estimates


def estimate_metrics(
    score: np.ndarray,
    prediction: np.ndarray,
    confidence: float = 0.95,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Expected metrics of the logged scores and decisions if each row's label is a Bernoulli draw with
    p = calibration(score) (p = score without an applied calibration): metric, value, ci_low, ci_high,
    n, one row per metric in ESTIMATED_METRICS.

    Rows with a non-finite score or a prediction other than 0/1 are dropped; scores are clipped to [0, 1].
    The metrics are those of the score `s` and decision, as measured later on labels; only the label
    probabilities come from `p`. Values (v_i = p_i(1 − p_i), A = TP, B = FN, P = predicted positives):
      accuracy  = (E[TP] + E[TN]) / n, Var = Σv / n²;  precision = E[TP] / P, Var = Σ_P v / P²  (exact);
      recall    = E[A] / (E[A] + E[B]);  f1 = 2E[A] / (E[A] + P + E[B])  (ratios of expectations, as CBPE;
                  variance by the delta method on the independent sums A and B);
      auc       = E[U] / E[n₁n₀] over distinct pairs, i.e. Σ_{i≠j} p_i(1 − p_j)·H(s_i − s_j) / Σ_{i≠j} p_i(1 − p_j)
                  with H the step (½ at ties), computed from the midranks r of s as
                  E[U] = Σ p·r − (Σv + S² + S)/2, S = Σp; variance by the delta method on (Σ y·r, Σ y);
      log_loss  = mean of p·(−log s) + (1 − p)·(−log(1 − s)) (s clipped to [eps, 1 − eps]);
      brier     = mean of p(1 − s)² + (1 − p)s²;  both with the exact per-row variance of the realized loss;
      positive_rate = P / n with its Wilson interval (it is known without labels).
    With p = s these are the classic CBPE formulas (log_loss the mean entropy, brier the mean s(1 − s)).
    n = 0 gives nan values.
    """
    s = to_float_array(score)
    pred = to_float_array(prediction)
    if s.size != pred.size:
        raise ValueError(f"score has {s.size} rows, prediction has {pred.size}")
    keep = np.isfinite(s) & np.isin(pred, (0.0, 1.0))
    s = np.clip(s[keep], 0.0, 1.0)
    calibrated = calibration is not None and calibration.applied
    p = calibration.apply(s) if calibrated else s
    positive = pred[keep] == 1.0
    n = int(s.size)
    z = z_value(confidence)
    values: dict[str, tuple[float, float]] = {}  # metric -> (value, variance of the realized metric)
    intervals: dict[str, tuple[float, float]] = {}
    if n:
        v = p * (1.0 - p)
        n_pos = int(positive.sum())
        e_tp, v_tp = float(p[positive].sum()), float(v[positive].sum())
        e_fn, v_fn = float(p[~positive].sum()), float(v[~positive].sum())
        e_tn = (n - n_pos) - e_fn
        values["accuracy"] = ((e_tp + e_tn) / n, float(v.sum()) / n**2)
        values["precision"] = (e_tp / n_pos, v_tp / n_pos**2) if n_pos else (np.nan, np.nan)
        values["recall"] = _ratio_a_over_a_plus_b(e_tp, v_tp, e_fn, v_fn)
        values["f1"] = _f1(e_tp, v_tp, e_fn, v_fn, n_pos)
        values["auc"] = _expected_auc(s, calibration if calibrated else None)
        values["log_loss"] = _expected_log_loss(s, p, v)
        values["brier"] = _expected_brier(s, p, v)
        low, high = wilson_interval(n_pos, n, confidence)
        values["positive_rate"] = (n_pos / n, np.nan)
        intervals["positive_rate"] = (float(low), float(high))
    rows = []
    for metric in ESTIMATED_METRICS:
        value, var = values.get(metric, (np.nan, np.nan))
        if metric in intervals:
            low, high = intervals[metric]
        elif np.isfinite(value) and np.isfinite(var):
            half = z * np.sqrt(max(var, 0.0))
            upper = np.inf if metric == "log_loss" else 1.0
            low, high = max(0.0, value - half), min(upper, value + half)
        else:
            low = high = np.nan
        rows.append((metric, float(value), float(low), float(high), n))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype({"n": "int64"})


def _ratio_a_over_a_plus_b(a: float, var_a: float, b: float, var_b: float) -> tuple[float, float]:
    """A / (A + B) for independent sums A, B: value at the expectations and delta-method variance."""
    total = a + b
    if total <= 0:
        return np.nan, np.nan
    return a / total, (b * b * var_a + a * a * var_b) / total**4


def _f1(a: float, var_a: float, b: float, var_b: float, n_pos: int) -> tuple[float, float]:
    """F1 = 2A / (A + P + B) (FP = P − A), delta-method variance over the independent A and B."""
    denom = a + n_pos + b
    if denom <= 0:
        return np.nan, np.nan
    grad_a = 2.0 * (n_pos + b) / denom**2
    grad_b = -2.0 * a / denom**2
    return 2.0 * a / denom, grad_a**2 * var_a + grad_b**2 * var_b


def _expected_log_loss(s: np.ndarray, p: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Expected log loss of the scores s when y ~ Bernoulli(p), mean of p·l1 + (1 − p)·l0 = l0 + p·(l1 − l0),
    and the variance of the realized one, Σ v·(l1 − l0)² / n², with l1 = −log s, l0 = −log(1 − s)
    (s clipped to [EPS, 1 − EPS]) and v = p(1 − p). Built in place: a 10M-row day holds two arrays of
    it at a time, not five."""
    n = s.size
    loss0 = np.clip(s, EPS, 1.0 - EPS)
    gap = np.log(loss0)  # log s
    np.negative(loss0, out=loss0)
    np.log1p(loss0, out=loss0)  # log(1 - s)
    gap -= loss0  # l1 - l0 = log(1 - s) - log s, negated
    np.negative(gap, out=gap)
    np.negative(loss0, out=loss0)  # l0
    mean = float(loss0.mean()) + float(p @ gap) / n
    del loss0
    gap *= gap
    return mean, float(v @ gap) / n**2


def _expected_brier(s: np.ndarray, p: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Expected Brier score of the scores s when y ~ Bernoulli(p), mean of l0 + p·(l1 − l0) with
    l0 = s², l1 − l0 = 1 − 2s (p = s: mean s(1 − s)), and the variance Σ v·(1 − 2s)² / n²."""
    n = s.size
    slope = 1.0 - 2.0 * s
    mean = (float(s @ s) + float(p @ slope)) / n
    slope *= slope
    return mean, float(v @ slope) / n**2


def _expected_auc(s: np.ndarray, calibration: Calibration | None = None) -> tuple[float, float]:
    """Expected AUC of the scores s over distinct pairs, labels drawn with p = calibration(s) (p = s
    without one), and the delta-method variance of the realized AUC.

    The realized AUC is f(T, N) = (T − N(N + 1)/2) / (N(n − N)) with T = Σ y·r (r midranks of the
    scores, fixed) and N = Σ y; under y_i ~ Bernoulli(p_i), Var T = Σ r²v, Var N = Σ v, Cov = Σ r·v,
    v = p(1 − p). The calibration is monotone, so the ranks of s order p as well and equal scores share p.
    """
    n = s.size
    # Every sum below is order-free: take them over the sorted scores, whose midranks need no argsort.
    s = np.sort(s)
    r = sorted_midranks(s)
    p = calibration.apply(s) if calibration is not None else s
    v = p * (1.0 - p)
    total_p, total_v = float(p.sum()), float(v.sum())
    t0 = float(p @ r)
    expected_u = t0 - (total_v + total_p**2 + total_p) / 2.0
    expected_pairs = n * total_p - total_p**2 - total_v
    if expected_pairs <= 0:
        return np.nan, np.nan
    auc = expected_u / expected_pairs
    n1 = total_p
    denom = n1 * (n - n1)
    if denom <= 0:
        return auc, np.nan
    numer = t0 - n1 * (n1 + 1) / 2.0
    grad_t = 1.0 / denom
    grad_n = (-(n1 + 0.5) * denom - numer * (n - 2.0 * n1)) / denom**2
    var = grad_t**2 * float(r * r @ v) + grad_n**2 * total_v + 2.0 * grad_t * grad_n * float(r @ v)
    return auc, max(var, 0.0)
