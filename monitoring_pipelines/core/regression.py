"""Labelled and label-free performance of a regression model, with confidence intervals.

A regression model's `score` is its predicted value and the label the observed value. Every metric has
an interval so a check can tell a real change from a noisy day (docs/performance.md, "Regression"):
  mae, bias (mean of predicted − observed: positive = over-predicts): mean ± z·se of the per-row terms;
  rmse: the interval of the mean squared error, square-rooted (a monotone map keeps the coverage);
  median_ae: the distribution-free order-statistic interval of a median (binomial ranks);
  mape: mean |e| / |observed| over rows whose observed value is not 0 (n says how many), mean ± z·se;
  smape: mean 2·|e| / (|observed| + |predicted|), defined where the label reaches 0;
  r2: 1 − MSE / Var(observed) with a delta-method (influence function) standard error.

Before labels land, direct loss estimation (DLE, after NannyML) estimates MAE and RMSE from what the
reference taught: the expected absolute and squared error given the predicted value, learned on the
reference's labelled rows over quantile bins of the prediction. It sees errors grow when traffic moves to
predictions the model was bad at (covariate shift reaching the output); it cannot see a change of the
relation between inputs and target (concept drift), which no label-free method can. An estimate whose
predictions lie outside the reference's range is untrusted, as for CBPE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from monitoring_pipelines.core.estimation import METRIC_COLUMNS, ScoreSupport, estimate_trust
from monitoring_pipelines.core.stats import bootstrap_means, mean_interval, to_float_array, z_value

REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "median_ae", "mape", "smape", "r2", "bias")
REGRESSION_ESTIMATED_METRICS: tuple[str, ...] = ("mae", "rmse")
REGRESSION_HIGHER_IS_BETTER: dict[str, bool] = {
    "mae": False,
    "rmse": False,
    "median_ae": False,
    "mape": False,
    "smape": False,
    "r2": True,
    "bias": False,  # judged two-sided: a bias away from the reference's in either direction is a change
}
REGRESSION_DIRECTIONLESS: frozenset[str] = frozenset({"bias"})

# Quantile bins of the reference's predictions for DLE: enough to follow a curved error profile, few
# enough that each bin holds hundreds of reference rows (a 28-day reference has tens of thousands).
DLE_BINS = 20
MIN_DLE_ROWS = 500


def _pairs(observed: Any, predicted: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = to_float_array(observed), to_float_array(predicted)
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep]


def regression_metrics(observed: Any, predicted: Any, confidence: float = 0.95) -> pd.DataFrame:
    """Every metric in REGRESSION_METRICS for labelled rows: metric, value, ci_low, ci_high, n.

    Rows with a non-finite observed or predicted value are dropped. A metric that cannot be computed
    (mape without a non-zero label, r2 without variance in the labels, any metric without rows) is nan,
    never 0, so it is not mistaken for a perfect value.
    """
    y, p = _pairs(observed, predicted)
    n = int(y.size)
    e = p - y
    abs_e = np.abs(e)
    rows: list[tuple[str, float, float, float, int]] = []
    rows.append(("mae", *mean_interval(abs_e, confidence, low=0.0), n))
    mse, mse_low, mse_high = mean_interval(e * e, confidence, low=0.0)
    rows.append(
        ("rmse", *(float(np.sqrt(v)) if np.isfinite(v) else np.nan for v in (mse, mse_low, mse_high)), n)
    )
    rows.append(("median_ae", *median_interval(abs_e, confidence), n))
    nonzero = y != 0
    rows.append(
        ("mape", *mean_interval(abs_e[nonzero] / np.abs(y[nonzero]), confidence, low=0.0), int(nonzero.sum()))
    )
    denom = np.abs(y) + np.abs(p)
    smape_terms = np.where(denom > 0, 2.0 * abs_e / np.where(denom > 0, denom, 1.0), 0.0)
    rows.append(("smape", *mean_interval(smape_terms, confidence, low=0.0, high=2.0), n))
    rows.append(("r2", *r2_interval(y, p, confidence), n))
    rows.append(("bias", *mean_interval(e, confidence), n))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype(
        {"value": float, "ci_low": float, "ci_high": float, "n": "int64"}
    )


def median_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Median with the distribution-free interval from order statistics (binomial ranks), as
    scipy.stats.quantile_test gives it; nan bounds when too few rows reach `confidence`."""
    x = values[np.isfinite(values)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    median = float(np.median(x))
    ci = stats.quantile_test(x, q=median, p=0.5).confidence_interval(confidence)
    return median, float(ci.low), float(ci.high)


def r2_interval(y: np.ndarray, p: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Out-of-sample R² = 1 − mean(e²) / var(y) (var with ddof 0, as scikit-learn's r2_score) with the
    delta-method interval: its influence function −(e² − A)/B + A·((y − ȳ)² − B)/B², A = mean e², B = var y."""
    n = y.size
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    e2 = (p - y) ** 2
    a = float(e2.mean())
    dev2 = (y - y.mean()) ** 2
    b = float(dev2.mean())
    if b <= 0:
        return float("nan"), float("nan"), float("nan")
    r2 = 1.0 - a / b
    influence = -(e2 - a) / b + a * (dev2 - b) / (b * b)
    half = z_value(confidence) * float(influence.std(ddof=1)) / np.sqrt(n)
    return r2, r2 - half, min(1.0, r2 + half)


# --------------------------------------------------------------------------- direct loss estimation


@dataclass(frozen=True)
class ErrorProfile:
    """What the reference's labels say about the error given the predicted value: per quantile bin of
    the prediction, the mean and variance of |e| and of e². `edges` are the inner bin edges."""

    edges: np.ndarray
    abs_mean: np.ndarray
    abs_var: np.ndarray
    sq_mean: np.ndarray
    sq_var: np.ndarray
    support: ScoreSupport
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "abs_mean": self.abs_mean.tolist(),
            "abs_var": self.abs_var.tolist(),
            "sq_mean": self.sq_mean.tolist(),
            "sq_var": self.sq_var.tolist(),
            "support": [self.support.low, self.support.high, self.support.tail],
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ErrorProfile:
        low, high, tail = raw["support"]
        return cls(
            edges=np.asarray(raw["edges"], dtype=float),
            abs_mean=np.asarray(raw["abs_mean"], dtype=float),
            abs_var=np.asarray(raw["abs_var"], dtype=float),
            sq_mean=np.asarray(raw["sq_mean"], dtype=float),
            sq_var=np.asarray(raw["sq_var"], dtype=float),
            support=ScoreSupport(float(low), float(high), float(tail)),
            n=int(raw["n"]),
        )


def fit_error_profile(observed: Any, predicted: Any, bins: int = DLE_BINS) -> ErrorProfile | None:
    """The reference's error profile; None with fewer than MIN_DLE_ROWS labelled rows (the estimate
    would rest on bins of a few rows)."""
    y, p = _pairs(observed, predicted)
    if y.size < MIN_DLE_ROWS:
        return None
    inner = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    idx = np.searchsorted(inner, p, side="right")
    k = inner.size + 1
    count = np.bincount(idx, minlength=k).astype(float)
    abs_e = np.abs(p - y)
    sq_e = abs_e * abs_e

    def mean_var(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s1 = np.bincount(idx, weights=v, minlength=k)
        s2 = np.bincount(idx, weights=v * v, minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / count
            var = np.maximum(s2 / count - mean * mean, 0.0) * count / np.maximum(count - 1, 1)
        return mean, var

    abs_mean, abs_var = mean_var(abs_e)
    sq_mean, sq_var = mean_var(sq_e)
    support = ScoreSupport.from_weighted(np.sort(p), np.ones(p.size))
    assert support is not None  # p has MIN_DLE_ROWS finite values
    return ErrorProfile(inner, abs_mean, abs_var, sq_mean, sq_var, support, int(y.size))


def estimate_regression_metrics(
    predicted: Any, profile: ErrorProfile, confidence: float = 0.95
) -> tuple[pd.DataFrame, bool, str]:
    """Estimated mae and rmse of a day's predictions (DLE): the rows' expected |e| and e² from their bins.

    The interval is where the realized metric should land once labels are in if the reference's error
    profile still holds: Var(realized MAE) = Σ_b n_b·σ²_b / n² over the day's bins. Returns the metric rows,
    whether they are trusted (the day's predictions inside the reference's range) and the note saying why not.
    """
    p = to_float_array(predicted)
    p = p[np.isfinite(p)]
    n = int(p.size)
    trust = estimate_trust(p, profile.support)
    note = (
        trust.reason
        + ("; " if trust.reason else "")
        + f"direct loss estimation from {profile.n} reference rows"
    )
    if n == 0:
        nan_rows = [(m, np.nan, np.nan, np.nan, 0) for m in REGRESSION_ESTIMATED_METRICS]
        return pd.DataFrame(nan_rows, columns=METRIC_COLUMNS), trust.trusted, note
    idx = np.searchsorted(profile.edges, p, side="right")
    z = z_value(confidence)
    mae = float(profile.abs_mean[idx].mean())
    mae_half = z * float(np.sqrt(profile.abs_var[idx].sum())) / n
    mse = float(profile.sq_mean[idx].mean())
    mse_half = z * float(np.sqrt(profile.sq_var[idx].sum())) / n
    rows = [
        ("mae", mae, max(0.0, mae - mae_half), mae + mae_half, n),
        (
            "rmse",
            float(np.sqrt(mse)),
            float(np.sqrt(max(0.0, mse - mse_half))),
            float(np.sqrt(mse + mse_half)),
            n,
        ),
    ]
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS).astype(
        {"value": float, "ci_low": float, "ci_high": float, "n": "int64"}
    )
    return frame, trust.trusted, note


# --------------------------------------------------------------------------- shadow: paired errors


def paired_error_comparison(
    observed: Any, champion: Any, shadow: Any, confidence: float = 0.95, samples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Shadow vs champion on the same labelled requests, by paired absolute errors d = |e_shadow| − |e_champion|
    (negative: the shadow errs less). Returns the mean difference with its percentile-bootstrap interval
    (fixed seed: a re-run gives the same interval), the paired t-test's and the Wilcoxon signed-rank test's
    two-sided p-values, and n."""
    y, c, s = to_float_array(observed), to_float_array(champion), to_float_array(shadow)
    keep = np.isfinite(y) & np.isfinite(c) & np.isfinite(s)
    d = np.abs(s[keep] - y[keep]) - np.abs(c[keep] - y[keep])
    n = int(d.size)
    out = {"delta_mae": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    out |= {"p_value_t": float("nan"), "p_value_wilcoxon": float("nan")}
    if n < 2:
        return out
    out["delta_mae"] = float(d.mean())
    means = bootstrap_means(d[None, :], samples, np.random.default_rng(seed))[:, 0]
    alpha = 1.0 - confidence
    out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    if np.any(d != 0):
        out["p_value_t"] = float(stats.ttest_1samp(d, 0.0).pvalue)
        out["p_value_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    else:
        out["p_value_t"] = out["p_value_wilcoxon"] = 1.0
    return out
