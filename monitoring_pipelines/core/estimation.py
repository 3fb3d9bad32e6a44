"""Confidence-based performance estimation (CBPE): metrics expected from the scores before labels arrive.

If the scores are calibrated, each row's label is a Bernoulli draw with p = score, independent across
rows. The expected confusion counts follow (E[TP] = sum of scores over predicted positives, ...), and so
do the metrics; a shift of the score distribution towards 0.5 lowers the expected AUC and accuracy on
the day it happens, weeks before the labels confirm it. Intervals are for the *realized* metric under
that model: where the labelled value should land once the labels are in, if the scores stay calibrated.
Reference: NannyML, "Confidence-based Performance Estimation" (docs.nannyml.com, how it works: CBPE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring_pipelines.core.stats import EPS, sorted_midranks, to_float_array, wilson_interval, z_value

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

# ECE is left out: CBPE assumes calibrated scores, so the estimate would be ~0 by construction.
ESTIMATED_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m != "ece")


def estimate_metrics(score: np.ndarray, prediction: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
    """Expected metrics of the logged decisions if `score` is a calibrated P(y = 1): metric, value,
    ci_low, ci_high, n, one row per metric in ESTIMATED_METRICS.

    Rows with a non-finite score or a prediction other than 0/1 are dropped; scores are clipped to [0, 1].
    Values (v_i = s_i(1 − s_i), A = TP, B = FN, P = predicted positives):
      accuracy  = (E[TP] + E[TN]) / n, Var = Σv / n²;  precision = E[TP] / P, Var = Σ_P v / P²  (exact);
      recall    = E[A] / (E[A] + E[B]);  f1 = 2E[A] / (E[A] + P + E[B])  (ratios of expectations, as CBPE;
                  variance by the delta method on the independent sums A and B);
      auc       = E[U] / E[n₁n₀] over distinct pairs, i.e. Σ_{i≠j} s_i(1 − s_j)·H(s_i − s_j) / Σ_{i≠j} s_i(1 − s_j)
                  with H the step (½ at ties), computed from midranks r as
                  E[U] = Σ s·r − (Σv + S² + S)/2, S = Σs; variance by the delta method on (Σ y·r, Σ y);
      log_loss  = mean of −s·log s − (1 − s)·log(1 − s) (scores clipped to [eps, 1 − eps]);
      brier     = mean of s(1 − s);  both with the exact per-row variance of the realized loss;
      positive_rate = P / n with its Wilson interval (it is known without labels).
    n = 0 gives nan values.
    """
    s = to_float_array(score)
    pred = to_float_array(prediction)
    if s.size != pred.size:
        raise ValueError(f"score has {s.size} rows, prediction has {pred.size}")
    keep = np.isfinite(s) & np.isin(pred, (0.0, 1.0))
    s = np.clip(s[keep], 0.0, 1.0)
    positive = pred[keep] == 1.0
    n = int(s.size)
    z = z_value(confidence)
    values: dict[str, tuple[float, float]] = {}  # metric -> (value, variance of the realized metric)
    intervals: dict[str, tuple[float, float]] = {}
    if n:
        v = s * (1.0 - s)
        n_pos = int(positive.sum())
        e_tp, v_tp = float(s[positive].sum()), float(v[positive].sum())
        e_fn, v_fn = float(s[~positive].sum()), float(v[~positive].sum())
        e_tn = (n - n_pos) - e_fn
        values["accuracy"] = ((e_tp + e_tn) / n, float(v.sum()) / n**2)
        values["precision"] = (e_tp / n_pos, v_tp / n_pos**2) if n_pos else (np.nan, np.nan)
        values["recall"] = _ratio_a_over_a_plus_b(e_tp, v_tp, e_fn, v_fn)
        values["f1"] = _f1(e_tp, v_tp, e_fn, v_fn, n_pos)
        values["auc"] = _expected_auc(s, v)
        values["log_loss"] = _expected_log_loss(s, v)
        slope = 1.0 - 2.0 * s
        slope *= slope
        values["brier"] = (float(v.mean()), float(v @ slope) / n**2)
        del slope
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


def _expected_log_loss(s: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Expected log loss, mean of s·l1 + (1 − s)·l0 = l0 + s·(l1 − l0), and the variance of the realized
    one, Σ v·(l1 − l0)² / n², with l1 = −log s, l0 = −log(1 − s) (s clipped to [EPS, 1 − EPS]). Built
    in place: a 10M-row day holds two arrays of it at a time, not five."""
    n = s.size
    loss0 = np.clip(s, EPS, 1.0 - EPS)
    gap = np.log(loss0)  # log s
    np.negative(loss0, out=loss0)
    np.log1p(loss0, out=loss0)  # log(1 - s)
    gap -= loss0  # l1 - l0 = log(1 - s) - log s, negated
    np.negative(gap, out=gap)
    np.negative(loss0, out=loss0)  # l0
    mean = float(loss0.mean()) + float(s @ gap) / n
    del loss0
    gap *= gap
    return mean, float(v @ gap) / n**2


def _expected_auc(s: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Expected AUC over distinct pairs and the delta-method variance of the realized AUC.

    The realized AUC is f(T, N) = (T − N(N + 1)/2) / (N(n − N)) with T = Σ y·r (r midranks of the
    scores, fixed) and N = Σ y; under y_i ~ Bernoulli(s_i), Var T = Σ r²v, Var N = Σ v, Cov = Σ r·v.
    """
    n = s.size
    total_s, total_v = float(s.sum()), float(v.sum())
    # Every sum below is order-free: take them over the sorted scores, whose midranks need no argsort.
    s = np.sort(s)
    v = s * (1.0 - s)
    r = sorted_midranks(s)
    expected_u = float(s @ r) - (total_v + total_s**2 + total_s) / 2.0
    expected_pairs = n * total_s - total_s**2 - total_v
    if expected_pairs <= 0:
        return np.nan, np.nan
    auc = expected_u / expected_pairs
    t0, n1 = float(s @ r), total_s
    denom = n1 * (n - n1)
    if denom <= 0:
        return auc, np.nan
    numer = t0 - n1 * (n1 + 1) / 2.0
    grad_t = 1.0 / denom
    grad_n = (-(n1 + 0.5) * denom - numer * (n - 2.0 * n1)) / denom**2
    var = grad_t**2 * float(r * r @ v) + grad_n**2 * total_v + 2.0 * grad_t * grad_n * float(r @ v)
    return auc, max(var, 0.0)
