"""Statistical primitives shared by the metric modules: quantiles, proportion and mean intervals, ROC AUC.

Every function is pure and elementwise where its docstring says so; missing input is nan, never an
exception, so a metric whose denominator is empty reads as "no value" rather than as a bad value.
The formulas and their references are in docs/performance.md and docs/fairness.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

EPS = float(np.finfo(np.float64).eps)
"""Machine epsilon of float64 (2.22e-16): scores are clipped to [EPS, 1 − EPS] before a log loss, as
scikit-learn does for float64."""


# --------------------------------------------------------------------------- piecewise-linear maps

LOOKUP_BINS = 1 << 16  # 64k int32 knot indexes per map (256 kB): a few knots per bin even where they crowd


class PiecewiseLinear:
    """`np.interp(values, x, y)`, same numbers, for a map with few knots applied to a million unsorted
    values: np.interp binary-searches every value, and on unsorted input each search misses the cache
    (60 ms per million against 6 ms sorted). Here a table over LOOKUP_BINS equal bins of [x[0], x[-1]]
    gives each value its knot directly; only values in a bin that holds a knot are searched. Knots that
    are not strictly increasing and finite fall back to np.interp."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        m = self.x.size
        self.fast = bool(
            m >= 2
            and np.isfinite(self.x).all()
            and np.isfinite(self.y).all()
            and (np.diff(self.x) > 0).all()
            and self.x[-1] > self.x[0]
        )
        if not self.fast:
            return
        self.scale = LOOKUP_BINS / (self.x[-1] - self.x[0])
        edges = self.x[0] + np.arange(LOOKUP_BINS + 1) / self.scale
        at_edge = (np.searchsorted(self.x, edges, side="right") - 1).astype(np.int32)
        # A value's computed bin may be one off its true bin by rounding: each bin's range of possible
        # knots is widened by one bin either way, and a value whose range holds more than one is searched.
        self.low = at_edge[np.clip(np.arange(LOOKUP_BINS) - 1, 0, LOOKUP_BINS)]
        self.high = at_edge[np.clip(np.arange(LOOKUP_BINS) + 2, 0, LOOKUP_BINS)]
        self.slope = np.diff(self.y) / np.diff(self.x)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if not self.fast or v.size < 1024:
            return np.interp(v, self.x, self.y)
        x, y = self.x, self.y
        with np.errstate(invalid="ignore"):  # NaN values cast to some index; their result stays NaN
            b = ((v - x[0]) * self.scale).astype(np.intp)
        np.clip(b, 0, LOOKUP_BINS - 1, out=b)
        j = self.low[b].astype(np.intp)
        unsure = np.flatnonzero(j != self.high[b])
        if unsure.size:
            j[unsure] = np.searchsorted(x, v[unsure], side="right") - 1
        np.clip(j, 0, x.size - 2, out=j)
        out = self.slope[j] * (v - x[j]) + y[j]
        out[v >= x[-1]] = y[-1]
        out[v < x[0]] = y[0]
        return out


# --------------------------------------------------------------------------- inputs


def to_float_array(values: Any) -> np.ndarray:
    """A 1-d float array of `values`; unparsable entries and pandas NA become nan.

    A Series or Index is parsed with ``pd.to_numeric(errors="coerce")`` (so text such as "0.5" is read
    and "n/a" becomes nan); anything else goes through ``np.asarray(dtype=float)`` and is flattened.
    """
    if isinstance(values, pd.Series | pd.Index):
        if values.dtype == np.float64:  # no copy (read-only under copy-on-write: callers never write)
            return values.to_numpy()
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(values, dtype=float).ravel()


def take(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """values[keep], without a copy when every row is kept (a 10M-row day's arrays are 80 MB each)."""
    return values if keep.all() else values[keep]


def finite_pairs(y: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (label, score) pairs with a finite score and a label of exactly 0 or 1, as float arrays.

    Raises ValueError when `y` and `score` differ in length.
    """
    y_arr, s_arr = to_float_array(y), to_float_array(score)
    if y_arr.size != s_arr.size:
        raise ValueError(f"y has {y_arr.size} rows, score has {s_arr.size}")
    keep = np.isfinite(s_arr) & np.isin(y_arr, (0.0, 1.0))
    return take(y_arr, keep), take(s_arr, keep)


# --------------------------------------------------------------------------- normal quantile


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile z_{(1 + confidence) / 2} (0.95 -> 1.959964).

    Raises ValueError unless 0 < confidence < 1.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2))


# --------------------------------------------------------------------------- proportions


def wilson_interval(
    successes: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) for a binomial proportion successes / n, elementwise.

    The interval inverts the score test, so unlike the Wald interval it stays inside [0, 1] and keeps
    close to nominal coverage for small n and proportions near 0 or 1. n == 0 gives (nan, nan);
    successes outside [0, n] raise ValueError.
    References: E. B. Wilson (1927), JASA 22:209-212; Brown, Cai & DasGupta (2001), Stat. Sci. 16:101-133.
    """
    s = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    if np.any((total > 0) & ((s < 0) | (s > total))):
        raise ValueError("successes must lie in [0, n]")
    z = z_value(confidence)
    z2 = z * z
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / total
        denom = 1.0 + z2 / total
        center = (p + z2 / (2.0 * total)) / denom
        half = z * np.sqrt(p * (1.0 - p) / total + z2 / (4.0 * total * total)) / denom
    valid = total > 0
    low = np.where(valid, np.clip(center - half, 0.0, 1.0), np.nan)
    high = np.where(valid, np.clip(center + half, 0.0, 1.0), np.nan)
    return low, high


def proportion_interval(
    successes: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proportion successes / n with its Wilson interval: (value, low, high), elementwise.

    All three are nan where n == 0 (see wilson_interval).
    """
    successes = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    low, high = wilson_interval(successes, n, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(n > 0, successes / np.where(n > 0, n, 1.0), np.nan)
    return value, low, high


def newcombe_difference(
    p1: float, low1: float, high1: float, p2: float, low2: float, high2: float
) -> tuple[float, float, float]:
    """Difference p1 − p2 of two independent proportions with Newcombe's hybrid score interval.

    Built from each proportion's own interval (low_i, high_i), normally Wilson:
    (d − sqrt((p1 − low1)² + (high2 − p2)²), d + sqrt((high1 − p1)² + (p2 − low2)²)), d = p1 − p2.
    A nan bound gives a nan bound. Returns (d, low, high).
    Reference: Newcombe (1998), Statistics in Medicine 17:873-890, method 10.
    """
    d = p1 - p2
    return (
        d,
        d - np.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
        d + np.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2),
    )


# --------------------------------------------------------------------------- means


def normal_mean_interval(
    mean: np.ndarray | float, sd: np.ndarray | float, n: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation interval mean ± z·sd/sqrt(n) from summary statistics, elementwise.

    `sd` is the sample standard deviation (ddof=1); nan where it is nan (n < 2) or n == 0.
    Returns (low, high).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        half = z_value(confidence) * sd / np.sqrt(n)
    return mean - half, mean + half


def mean_interval(
    values: np.ndarray, confidence: float = 0.95, low: float = -np.inf, high: float = np.inf
) -> tuple[float, float, float]:
    """Mean of `values` with the normal-approximation interval mean ± z·sd/sqrt(n) (sd with ddof=1).

    The interval is clipped to [low, high] (e.g. 0 for a loss that cannot be negative).
    No values: (nan, nan, nan); one value: (mean, nan, nan). Returns (mean, ci_low, ci_high).
    """
    n = values.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if n < 2:
        return mean, float("nan"), float("nan")
    ci_low, ci_high = normal_mean_interval(mean, float(values.std(ddof=1)), n, confidence)
    return mean, max(low, ci_low), min(high, ci_high)


BOOTSTRAP_BLOCK_CELLS = 2_000_000  # resampled positions held in memory at once


def bootstrap_means(columns: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of each row of `columns` (k × n) over `samples` bootstrap resamples of the n positions, the
    same resample for every row (paired statistics): samples × k. Resamples are drawn in blocks so at most
    BOOTSTRAP_BLOCK_CELLS positions are held at once."""
    k, n = columns.shape
    out = np.empty((samples, k))
    block = max(1, BOOTSTRAP_BLOCK_CELLS // n)
    for start in range(0, samples, block):
        stop = min(samples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = columns[:, idx].mean(axis=2).T
    return out


def log_loss_terms(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per-row log loss −(y·log s + (1 − y)·log(1 − s)) in nats, scores clipped to [EPS, 1 − EPS].

    The clipping keeps a confident wrong score finite (about 36 nats), as scikit-learn's log_loss.
    """
    clipped = np.clip(score, EPS, 1.0 - EPS)
    return -(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped))


# --------------------------------------------------------------------------- ROC AUC


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    Computed as the Mann-Whitney U statistic from midranks (as scipy.stats.rankdata), O(n log n).
    Rows with a non-finite score or a label other than 0/1 are ignored; nan if one class is absent.
    Equals sklearn.metrics.roc_auc_score.
    """
    y_arr, s_arr = finite_pairs(y, score)
    pos = y_arr == 1
    n_pos = int(pos.sum())
    n_neg = y_arr.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = midranks(s_arr)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sorted_midranks(ordered: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties averaged, as scipy.stats.rankdata) of already sorted values."""
    n = ordered.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    if n < 2:
        return ranks
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    if new.all():
        return ranks
    starts = np.flatnonzero(new)
    sizes = np.diff(starts, append=n)
    group = np.cumsum(new) - 1
    del new
    ranks = (starts + (sizes + 1) / 2.0)[group]
    return ranks


def midranks(values: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties averaged), equal to scipy.stats.rankdata: one unstable sort (ties need no
    order: they share a rank), where rankdata sorts stably, about three times slower on a million rows."""
    order = np.argsort(values)
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = sorted_midranks(values[order])
    return ranks


def _components(own: np.ndarray, other: np.ndarray, keep_order: bool) -> np.ndarray:
    """For each value of `own`: how many values of `other` lie below it, ties counted half. One sort of
    `other` and a binary search per value: memory stays a few arrays of the class sizes, where
    midranks over all rows would hold a dozen arrays of the whole day (gigabytes at 10M rows). Without
    `keep_order` (one score: only the components' mean and variance matter) `own` is sorted in place
    first, which makes the searches sequential."""
    ordered = np.sort(other)
    order = None
    if keep_order:  # search in sorted order anyway (sequential, several times faster), then put back
        order = np.argsort(own)
        own = own[order]
    else:
        own.sort()
    below = np.searchsorted(ordered, own, side="left").astype(np.float64)
    below += np.searchsorted(ordered, own, side="right")
    below /= 2.0
    if order is None:
        return below
    out = np.empty_like(below)
    out[order] = below
    return out


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUCs of k scores on the same rows and DeLong's estimate of their covariance.

    `scores` has shape (k, n) (a 1-d array is one score); labels must be 0/1. Uses the structural
    components V10 (per positive) and V01 (per negative), each from one sort of the other class, O(k n log n):
    cov = S10 / m + S01 / n_neg, S the sample covariances (ddof=1) of the components.
    One class absent -> AUCs nan; fewer than two rows in a class -> covariance nan.
    References: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845;
    Sun & Xu (2014), IEEE Signal Processing Letters 21:1389-1393.
    """
    y_arr = np.asarray(y, dtype=float).ravel()
    s_arr = np.atleast_2d(np.asarray(scores, dtype=float))
    if s_arr.shape[1] != y_arr.size:
        raise ValueError(f"scores has {s_arr.shape[1]} columns for {y_arr.size} labels")
    k = s_arr.shape[0]
    pos = y_arr == 1
    neg = y_arr == 0
    m, n_neg = int(pos.sum()), int(neg.sum())
    if m == 0 or n_neg == 0:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    v10, v01 = np.empty((k, m)), np.empty((k, n_neg))
    for row in range(k):  # one sort of each class per score
        scores_pos, scores_neg = s_arr[row, pos], s_arr[row, neg]
        # shares of negatives ranked below each positive, of positives ranked above each negative
        v10[row] = _components(scores_pos, scores_neg, keep_order=k > 1) / n_neg
        v01[row] = 1.0 - _components(scores_neg, scores_pos, keep_order=k > 1) / m
    aucs = v10.mean(axis=1)
    if m < 2 or n_neg < 2:
        return aucs, np.full((k, k), np.nan)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n_neg


def auc_ci(y: np.ndarray, score: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """ROC AUC with a DeLong interval, built on the logit scale so it stays inside (0, 1).

    Rows are filtered as in roc_auc. When the AUC is exactly 0 or 1 (logit undefined) the Wald
    interval clipped to [0, 1] is used. Returns (auc, low, high); (nan, nan, nan) with one class
    absent, (auc, nan, nan) with fewer than two rows in a class.
    """
    y_arr, s_arr = finite_pairs(y, score)
    aucs, cov = delong_covariance(y_arr, s_arr[None, :])
    auc, var = float(aucs[0]), float(cov[0, 0])
    if not np.isfinite(auc) or not np.isfinite(var):
        return auc, float("nan"), float("nan")
    z = z_value(confidence)
    se = float(np.sqrt(max(var, 0.0)))
    if 0.0 < auc < 1.0 and se > 0:
        center = special.logit(auc)
        half = z * se / (auc * (1.0 - auc))
        return auc, float(special.expit(center - half)), float(special.expit(center + half))
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)
