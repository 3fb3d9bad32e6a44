"""Regression metrics against scikit-learn / scipy, interval coverage, direct loss estimation, paired errors."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from monitoring_pipelines.core.regression import (
    REGRESSION_METRICS,
    estimate_regression_metrics,
    fit_error_profile,
    median_interval,
    paired_error_comparison,
    r2_interval,
    regression_metrics,
)


def _data(n: int, seed: int = 0, zero_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 10.0, n)
    y = 5 + 1.5 * x + rng.normal(0, 4 + 0.2 * x, n)
    if zero_share:
        y[rng.random(n) < zero_share] = 0.0
    pred = 5 + 1.4 * x + 1.0
    return y, pred


def _by_metric(frame):
    return {r.metric: r for r in frame.itertuples()}


def test_metrics_match_sklearn():
    y, p = _data(5_000)
    got = _by_metric(regression_metrics(y, p))
    assert list(got) == list(REGRESSION_METRICS)
    assert got["mae"].value == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert got["rmse"].value == pytest.approx(skm.root_mean_squared_error(y, p), rel=1e-12)
    assert got["median_ae"].value == pytest.approx(skm.median_absolute_error(y, p), rel=1e-12)
    assert got["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-9)
    assert got["r2"].value == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert got["bias"].value == pytest.approx(np.mean(p - y), rel=1e-12)
    smape = np.mean(2 * np.abs(p - y) / (np.abs(y) + np.abs(p)))
    assert got["smape"].value == pytest.approx(smape, rel=1e-12)
    for r in got.values():
        assert r.ci_low < r.value < r.ci_high, r.metric
        assert r.n == 5_000 or r.metric == "mape"


def test_mape_leaves_out_zero_labels_and_says_how_many():
    y, p = _data(2_000, zero_share=0.1)
    got = _by_metric(regression_metrics(y, p))
    nonzero = y != 0
    assert got["mape"].n == int(nonzero.sum()) < 2_000
    assert got["mape"].value == pytest.approx(np.mean(np.abs(p - y)[nonzero] / np.abs(y[nonzero])))
    assert np.isfinite(got["smape"].value) and got["smape"].n == 2_000


def test_non_finite_rows_dropped_and_empty_is_nan():
    y, p = _data(100)
    y[:10] = np.nan
    p[10:15] = np.inf
    assert set(regression_metrics(y, p)["n"]) <= {85}
    empty = regression_metrics([], [])
    assert empty["value"].isna().all()
    constant = _by_metric(regression_metrics(np.ones(50), np.ones(50) * 2))
    assert np.isnan(constant["r2"].value)  # no variance in the labels: undefined, not 0 or -inf


@pytest.mark.parametrize("which", ["r2", "median", "rmse"])
def test_interval_coverage_near_nominal(which):
    """Over 300 samples of 400 rows the 95 % intervals cover the population value 91-99 % of the time."""
    y_pop, p_pop = _data(400_000, seed=1)
    truth = {
        "r2": skm.r2_score(y_pop, p_pop),
        "median": float(np.median(np.abs(p_pop - y_pop))),
        "rmse": skm.root_mean_squared_error(y_pop, p_pop),
    }[which]
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(300):
        idx = rng.integers(0, y_pop.size, 400)
        y, p = y_pop[idx], p_pop[idx]
        if which == "r2":
            _, low, high = r2_interval(y, p)
        elif which == "median":
            _, low, high = median_interval(np.abs(p - y))
        else:
            row = _by_metric(regression_metrics(y, p))["rmse"]
            low, high = row.ci_low, row.ci_high
        hits += low <= truth <= high
    assert 0.91 <= hits / 300 <= 0.99


def test_dle_follows_a_shift_to_predictions_the_model_errs_on():
    """Errors grow with the predicted value; a day whose traffic moves to high predictions has a higher
    realized MAE, and the label-free estimate lands on it (inside its interval), not on the reference's."""
    rng = np.random.default_rng(3)
    x_ref = rng.uniform(0, 100, 40_000)
    y_ref = x_ref + rng.normal(0, 1 + 0.1 * x_ref)
    profile = fit_error_profile(y_ref, x_ref)
    assert profile is not None
    x_day = rng.uniform(50, 100, 5_000)
    y_day = x_day + rng.normal(0, 1 + 0.1 * x_day)
    est, trusted, note = estimate_regression_metrics(x_day, profile)
    got = _by_metric(est)
    realized_mae = skm.mean_absolute_error(y_day, x_day)
    reference_mae = skm.mean_absolute_error(y_ref, x_ref)
    assert trusted and "direct loss estimation" in note
    assert got["mae"].ci_low <= realized_mae <= got["mae"].ci_high
    assert got["mae"].ci_low > reference_mae
    realized_rmse = skm.root_mean_squared_error(y_day, x_day)
    assert got["rmse"].ci_low <= realized_rmse <= got["rmse"].ci_high


def test_dle_untrusted_outside_the_reference_range_and_needs_rows():
    rng = np.random.default_rng(4)
    x_ref = rng.uniform(0, 100, 5_000)
    profile = fit_error_profile(x_ref + rng.normal(0, 1, 5_000), x_ref)
    _, trusted, note = estimate_regression_metrics(rng.uniform(150, 200, 1_000), profile)
    assert not trusted and "outside the reference's score range" in note
    assert fit_error_profile(x_ref[:100], x_ref[:100]) is None
    again = type(profile).from_dict(profile.to_dict())
    a, _, _ = estimate_regression_metrics(x_ref[:500], profile)
    b, _, _ = estimate_regression_metrics(x_ref[:500], again)
    assert a.equals(b)


def test_paired_errors_match_scipy_and_cover_the_difference():
    rng = np.random.default_rng(5)
    y = rng.normal(50, 10, 3_000)
    champion = y + rng.normal(0, 5, 3_000)
    shadow = y + rng.normal(0, 4, 3_000)
    out = paired_error_comparison(y, champion, shadow)
    d_c, d_s = np.abs(champion - y), np.abs(shadow - y)
    assert out["delta_mae"] == pytest.approx(np.mean(d_s - d_c))
    assert out["p_value_t"] == pytest.approx(stats.ttest_rel(d_s, d_c).pvalue)
    assert out["p_value_wilcoxon"] == pytest.approx(stats.wilcoxon(d_s, d_c).pvalue)
    assert out["ci_high"] < 0  # the shadow errs less: 4 vs 5 of noise
    expected = (4 - 5) * np.sqrt(2 / np.pi)  # E|N(0, σ)| = σ·sqrt(2/π)
    assert out["ci_low"] <= expected <= out["ci_high"]
    assert paired_error_comparison(y, champion, shadow) == out  # fixed seed: same interval on a re-run
