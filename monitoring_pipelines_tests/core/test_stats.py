"""The shared statistical primitives (core.stats) against closed forms, hand-computed cases and the
scipy / statsmodels / scikit-learn reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring_pipelines.core.stats import (
    EPS,
    LOOKUP_BINS,
    PiecewiseLinear,
    auc_ci,
    delong_covariance,
    finite_pairs,
    log_loss_terms,
    mean_interval,
    midranks,
    newcombe_difference,
    normal_mean_interval,
    proportion_interval,
    roc_auc,
    to_float_array,
    wilson_interval,
    z_value,
)

Z95 = 1.959963984540054


def calibrated_sample(n: int, seed: int, sharpness: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = 1.0 / (1.0 + np.exp(-sharpness * rng.normal(size=n)))
    y = (rng.random(n) < score).astype(int)
    return y, score


# --------------------------------------------------------------------------- inputs and quantiles


def test_eps_is_float64_machine_epsilon() -> None:
    assert EPS == np.finfo(np.float64).eps == 2.0**-52


def test_to_float_array_parses_text_and_turns_na_into_nan() -> None:
    out = to_float_array(pd.Series(["0.5", None, "n/a", 1, pd.NA], dtype=object))
    assert out.dtype == float and out.shape == (5,)
    assert out[0] == 0.5 and out[3] == 1.0 and np.isnan(out[[1, 2, 4]]).all()
    assert np.array_equal(to_float_array(pd.array([1, None], dtype="Int64")), [1.0, np.nan], equal_nan=True)
    assert to_float_array([[1, 2], [3, 4]]).tolist() == [1.0, 2.0, 3.0, 4.0]  # flattened


def test_finite_pairs_keeps_finite_scores_with_binary_labels() -> None:
    y, s = finite_pairs([0, 1, 2, 1, np.nan, 0], [0.1, np.nan, 0.3, 0.4, 0.5, np.inf])
    assert y.tolist() == [0.0, 1.0] and s.tolist() == [0.1, 0.4]
    with pytest.raises(ValueError):
        finite_pairs([0, 1], [0.5])


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99])
def test_z_value_is_the_two_sided_normal_quantile(confidence: float) -> None:
    assert z_value(confidence) == pytest.approx(stats.norm.interval(confidence)[1], abs=1e-15)
    assert z_value(0.95) == pytest.approx(Z95, abs=1e-15)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.1, 95])
def test_z_value_rejects_confidence_outside_0_1(confidence: float) -> None:
    with pytest.raises(ValueError):
        z_value(confidence)


# --------------------------------------------------------------------------- Wilson


def test_wilson_matches_closed_form() -> None:
    for successes, n in [(0, 10), (3, 10), (10, 10), (81, 263), (1, 1)]:
        p = successes / n
        center = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
        low, high = wilson_interval(successes, n)
        assert float(low) == pytest.approx(max(0.0, center - half), abs=1e-14)
        assert float(high) == pytest.approx(min(1.0, center + half), abs=1e-14)


def test_wilson_zero_successes_upper_bound_is_z2_over_n_plus_z2() -> None:
    low, high = wilson_interval(0, 10)
    assert float(low) == 0.0
    assert float(high) == pytest.approx(Z95**2 / (10 + Z95**2), abs=1e-14)


def test_wilson_bounds_invert_the_score_test() -> None:
    """At each bound p, |p_hat - p| / sqrt(p(1-p)/n) equals z: the definition of the Wilson interval."""
    successes, n = np.array([7, 30, 120]), np.array([20, 50, 1000])
    low, high = wilson_interval(successes, n, confidence=0.9)
    z = stats.norm.ppf(0.95)
    p_hat = successes / n
    for bound in (low, high):
        assert np.allclose(np.abs(p_hat - bound) / np.sqrt(bound * (1 - bound) / n), z, atol=1e-10)


def test_wilson_is_vectorized_and_nan_for_empty_denominators() -> None:
    low, high = wilson_interval(np.array([0, 5, 0]), np.array([10, 10, 0]))
    assert low.shape == high.shape == (3,)
    assert np.isnan(low[2]) and np.isnan(high[2])
    assert np.all(low[:2] <= high[:2])


def test_wilson_rejects_more_successes_than_trials() -> None:
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


# --------------------------------------------------------------------------- AUC and DeLong


def test_roc_auc_hand_computed_cases() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    # ties count 1/2: positives {0.5, 0.9} vs negatives {0.5, 0.2} -> (0.5 + 1 + 1 + 1) / 4
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == pytest.approx(0.875)


def test_roc_auc_is_nan_with_one_class_and_ignores_nan_scores() -> None:
    assert math.isnan(roc_auc(np.ones(5), np.linspace(0, 1, 5)))
    assert math.isnan(roc_auc(np.array([]), np.array([])))
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, np.nan])
    assert roc_auc(y, s) == pytest.approx(0.75)


def test_roc_auc_constant_scores_is_one_half() -> None:
    assert roc_auc(np.array([0, 1, 0, 1, 1]), np.full(5, 0.3)) == pytest.approx(0.5)


def test_roc_auc_matches_sklearn_and_the_mann_whitney_u() -> None:
    y, s = calibrated_sample(2000, seed=9)
    s = np.round(s, 2)  # with ties
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert roc_auc(y, s) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-14)
    skm = pytest.importorskip("sklearn.metrics")
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-14)


def test_delong_hand_computed_case() -> None:
    """Positives X = (.9, .6, .4), negatives Y = (.5, .3).
    V10 = (1, 1, 1/2), V01 = (2/3, 1); AUC = 5/6;
    S10 = var(1, 1, .5) = 1/12, S01 = var(2/3, 1) = 1/18; Var = S10/3 + S01/2 = 1/36 + 1/36 = 1/18."""
    y = np.array([1, 1, 1, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.5, 0.3])
    aucs, cov = delong_covariance(y, s)
    assert aucs[0] == pytest.approx(5 / 6, abs=1e-15)
    assert cov[0, 0] == pytest.approx(1 / 18, abs=1e-15)


def test_delong_matches_structural_components_computed_pair_by_pair() -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    scores = np.vstack([np.round(rng.random(n) + 0.3 * y, 1), rng.random(n) + 0.6 * y])  # first has ties
    aucs, cov = delong_covariance(y, scores)
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # (k, m, n)
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    expected = np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]
    assert np.allclose(aucs, psi.mean(axis=(1, 2)), atol=1e-14)
    assert np.allclose(cov, expected, atol=1e-15)
    assert np.allclose([roc_auc(y, scores[0]), roc_auc(y, scores[1])], aucs, atol=1e-14)


def test_delong_degenerate_inputs() -> None:
    aucs, cov = delong_covariance(np.ones(4), np.random.default_rng(0).random((2, 4)))
    assert aucs.shape == (2,) and np.isnan(aucs).all() and np.isnan(cov).all()
    aucs, cov = delong_covariance(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.2]))
    assert aucs[0] == 1.0 and np.isnan(cov[0, 0])  # one positive: no sample variance


def test_auc_ci_is_logit_delong_interval() -> None:
    y, s = calibrated_sample(500, seed=1)
    auc, low, high = auc_ci(y, s)
    aucs, cov = delong_covariance(y, s)
    se_logit = math.sqrt(cov[0, 0]) / (auc * (1 - auc))
    logit = math.log(auc / (1 - auc))
    assert auc == pytest.approx(aucs[0])
    assert low == pytest.approx(1 / (1 + math.exp(-(logit - Z95 * se_logit))), abs=1e-12)
    assert high == pytest.approx(1 / (1 + math.exp(-(logit + Z95 * se_logit))), abs=1e-12)
    assert 0 < low < auc < high < 1


def test_auc_ci_perfect_separation_stays_at_one() -> None:
    auc, low, high = auc_ci(np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert (auc, low, high) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("k,n", [(0, 7), (3, 10), (81, 263), (499, 500), (1, 1)])
def test_wilson_matches_scipy_binomtest(k: int, n: int) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert float(low) == pytest.approx(ci.low, abs=1e-12)
    assert float(high) == pytest.approx(ci.high, abs=1e-12)


def test_proportion_interval_is_the_rate_with_its_wilson_bounds_and_nan_without_trials() -> None:
    value, low, high = proportion_interval(np.array([3, 0, 0]), np.array([10, 4, 0]))
    w_low, w_high = wilson_interval(np.array([3, 0]), np.array([10, 4]))
    assert value[:2].tolist() == [0.3, 0.0] and np.isnan(value[2])
    assert np.array_equal(low[:2], w_low) and np.array_equal(high[:2], w_high)
    assert np.isnan(low[2]) and np.isnan(high[2])
    scalar = proportion_interval(6, 8)
    assert float(scalar[0]) == 0.75 and 0 < float(scalar[1]) < 0.75 < float(scalar[2]) < 1


# --------------------------------------------------------------------------- difference of proportions


def test_newcombe_matches_the_published_example_and_statsmodels() -> None:
    """Newcombe (1998), Table II, example (a): 56/70 vs 48/80, method 10 gives 0.0524 to 0.3339."""
    (l1, l2), (h1, h2) = wilson_interval(np.array([56, 48]), np.array([70, 80]))
    d, low, high = newcombe_difference(56 / 70, l1, h1, 48 / 80, l2, h2)
    assert d == pytest.approx(0.2, abs=1e-15)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    sm = pytest.importorskip("statsmodels.stats.proportion")
    ref_low, ref_high = sm.confint_proportions_2indep(56, 70, 48, 80, method="newcomb", compare="diff")
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)


def test_newcombe_is_antisymmetric_and_nan_with_a_missing_interval() -> None:
    (l1, l2), (h1, h2) = wilson_interval(np.array([9, 30]), np.array([40, 60]))
    d, low, high = newcombe_difference(9 / 40, l1, h1, 30 / 60, l2, h2)
    d2, low2, high2 = newcombe_difference(30 / 60, l2, h2, 9 / 40, l1, h1)
    assert d == -d2 and low == pytest.approx(-high2, abs=1e-15) and high == pytest.approx(-low2, abs=1e-15)
    assert np.isnan(newcombe_difference(0.5, np.nan, 0.7, 0.4, 0.3, 0.5)[1])


# --------------------------------------------------------------------------- means


def test_mean_interval_matches_scipy_normal_interval() -> None:
    values = np.random.default_rng(7).exponential(size=200)
    mean, low, high = mean_interval(values, confidence=0.9)
    ref = stats.norm.interval(0.9, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean(), abs=1e-15)
    assert (low, high) == pytest.approx(ref, abs=1e-12)


def test_mean_interval_clips_and_handles_tiny_samples() -> None:
    mean, low, high = mean_interval(np.array([0.0, 0.0, 0.0, 3.0]), low=0.0, high=1.0)
    assert mean == 0.75 and low == 0.0 and high == 1.0
    assert mean_interval(np.array([2.5]))[0] == 2.5 and np.isnan(mean_interval(np.array([2.5]))[1:]).all()
    assert np.isnan(mean_interval(np.array([]))).all()


def test_normal_mean_interval_is_elementwise_from_summary_statistics() -> None:
    low, high = normal_mean_interval(
        np.array([1.0, 5.0, 2.0]), np.array([2.0, 0.0, np.nan]), np.array([4, 9, 1])
    )
    assert low[0] == pytest.approx(1.0 - Z95, abs=1e-15) and high[0] == pytest.approx(1.0 + Z95, abs=1e-15)
    assert low[1] == high[1] == 5.0
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_log_loss_terms_match_sklearn_and_stay_finite() -> None:
    y, s = calibrated_sample(1000, seed=11)
    skm = pytest.importorskip("sklearn.metrics")
    assert log_loss_terms(y, s).mean() == pytest.approx(skm.log_loss(y, s), abs=1e-12)
    worst = log_loss_terms(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert np.isfinite(worst).all() and worst == pytest.approx(-math.log(EPS), abs=1e-9)
    assert log_loss_terms(np.array([1.0]), np.array([0.5]))[0] == pytest.approx(math.log(2))


@pytest.mark.parametrize("distinct", [3, 50, 100_000])
def test_midranks_equal_scipy_rankdata(distinct: int) -> None:
    # few distinct values: long tie runs; many: mostly untied (the unstable sort must not matter)
    values = np.random.default_rng(distinct).integers(0, distinct, 20_000).astype(np.float64)
    np.testing.assert_array_equal(midranks(values), stats.rankdata(values))
    assert midranks(np.array([])).size == 0 and midranks(np.array([2.5])).tolist() == [1.0]


# --------------------------------------------------------------------------- piecewise-linear maps


def _knot_sets(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Maps like the isotonic ones CBPE fits, and the hard cases of the lookup table: knots crowded into
    one bin, knots on the table's bin edges, two knots, a wide range, and knots that are not strictly
    increasing (np.interp takes those as they are)."""
    iso = np.sort(rng.random(300))
    crowded = np.concatenate([np.sort(rng.uniform(0.5, 0.5 + 1e-9, 50)), [0.0, 1.0]])
    crowded.sort()
    on_edges = np.arange(0, LOOKUP_BINS + 1, 997) / LOOKUP_BINS
    wide = np.sort(rng.normal(0, 1e6, 40))
    repeated = np.array([0.1, 0.2, 0.2, 0.7])
    return [
        (iso, np.maximum.accumulate(rng.random(300))),
        (crowded, np.linspace(0, 1, crowded.size)),
        (on_edges, rng.random(on_edges.size)),
        (np.array([0.25, 0.75]), np.array([0.1, 0.9])),
        (wide, np.cumsum(rng.random(40))),
        (repeated, np.array([0.0, 0.3, 0.6, 1.0])),
    ]


def test_piecewise_linear_gives_np_interp_numbers_bit_for_bit() -> None:
    rng = np.random.default_rng(17)
    for x, y in _knot_sets(rng):
        f = PiecewiseLinear(x, y)
        span = x[-1] - x[0]
        values = np.concatenate(
            [
                rng.uniform(x[0] - 0.1 * span, x[-1] + 0.1 * span, 200_000),
                x,  # every knot exactly
                np.nextafter(x, np.inf),
                np.nextafter(x, -np.inf),
                x[0] + np.arange(LOOKUP_BINS + 1) / (LOOKUP_BINS / span),  # the table's bin edges
                [np.nan, np.inf, -np.inf, x[0], x[-1]],
            ]
        )
        rng.shuffle(values)
        np.testing.assert_array_equal(f(values), np.interp(values, x, y))
        np.testing.assert_array_equal(f(values[:10]), np.interp(values[:10], x, y))  # short input
