"""Champion/shadow pairing, paired statistics against reference implementations, and the promotion
rule's behaviour on synthetic traffic (better shadow promoted, identical never, segment harm flagged)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring_pipelines.config import ServingThresholds, ShadowThresholds
from monitoring_pipelines.core import shadow

AGE_BANDS = np.array(["18-34", "35-64", "65+"])
AGE_SHARES = [0.40, 0.52, 0.08]  # 65+: the 8 % segment


def separation(auc: float) -> float:
    """Binormal separation giving this AUC with unit-variance noise: AUC = Phi(mu / sqrt 2)."""
    return math.sqrt(2) * stats.norm.ppf(auc)


def traffic(
    rng: np.random.Generator,
    n: int,
    day: int = 0,
    champion_auc: float = 0.78,
    shadow_auc: float = 0.78,
    harmed_auc: float | None = None,
    identical: bool = False,
    shadow_latency_ms: float = 50.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One day of prediction-log rows for champion v1 and shadow v2 on the same requests, and its labels.

    Both scores share a latent noise (correlation 0.7), as two models of the same problem do.
    `harmed_auc` sets the shadow's AUC in the 65+ segment.
    """
    age = rng.choice(AGE_BANDS, size=n, p=AGE_SHARES)
    y = (rng.random(n) < 0.3).astype(float)
    common = rng.normal(size=n)
    noise_c = math.sqrt(0.7) * common + math.sqrt(0.3) * rng.normal(size=n)
    noise_s = math.sqrt(0.7) * common + math.sqrt(0.3) * rng.normal(size=n)
    mu_s = np.full(n, separation(shadow_auc))
    if harmed_auc is not None:
        mu_s[age == "65+"] = separation(harmed_auc)
    logit_c = -1.2 + separation(champion_auc) * y + noise_c
    logit_s = logit_c if identical else -1.2 + mu_s * y + noise_s
    score_c, score_s = 1 / (1 + np.exp(-logit_c)), 1 / (1 + np.exp(-logit_s))
    request_id = np.array([f"{day}-{i}" for i in range(n)], dtype=object)
    latency = np.concatenate(
        [rng.lognormal(np.log(50.0), 0.3, n), rng.lognormal(np.log(shadow_latency_ms), 0.3, n)]
    )
    frame = pd.DataFrame(
        {
            "request_id": np.concatenate([request_id, request_id]),
            "model_version": ["v1"] * n + ["v2"] * n,
            "role": ["champion"] * n + ["shadow"] * n,
            "age_band": np.concatenate([age, age]),
            "score": np.concatenate([score_c, score_s]),
            "prediction": np.concatenate([score_c > 0.4, score_s > 0.4]).astype(int),
            "latency_ms": latency,
            "status": "ok",
        }
    )
    return frame, pd.DataFrame({"request_id": request_id, "label": y})


def row(
    comparisons: pd.DataFrame, metric: str, segment: str = "__all__", value: str = "__all__"
) -> pd.Series:
    found = comparisons[
        (comparisons["metric"] == metric)
        & (comparisons["segment"] == segment)
        & (comparisons["segment_value"] == value)
    ]
    assert len(found) == 1, (metric, segment, value)
    return found.iloc[0]


# --------------------------------------------------------------------------- paired statistics


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 0), (7, 2), (12, 25), (40, 41), (150, 90)])
def test_mcnemar_exact_matches_binomtest(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert shadow.mcnemar_test(b, c) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("b", "c"), [(7, 2), (12, 25), (150, 90)])
def test_mcnemar_chi_square_matches_the_corrected_statistic(b: int, c: int) -> None:
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    assert shadow.mcnemar_test(b, c, exact=False) == pytest.approx(stats.chi2.sf(statistic, 1))


def test_mcnemar_matches_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.stats.contingency_tables")
    for b, c in [(7, 2), (12, 25), (150, 90)]:
        table = np.array([[30, b], [c, 30]])
        assert shadow.mcnemar_test(b, c) == pytest.approx(sm.mcnemar(table, exact=True).pvalue)
        assert shadow.mcnemar_test(b, c, exact=False) == pytest.approx(
            sm.mcnemar(table, exact=False, correction=True).pvalue
        )


def test_paired_proportion_difference_hand_case() -> None:
    delta, low, high, p = shadow.paired_proportion_difference(5, 2, 20)
    assert delta == pytest.approx(3 / 20)
    # Agresti-Min: cells + 0.5 -> b=5.5, c=2.5, n=22
    p12, p21 = 5.5 / 22, 2.5 / 22
    se = math.sqrt((p12 + p21 - (p12 - p21) ** 2) / 22)
    z = stats.norm.ppf(0.975)
    assert (low, high) == pytest.approx((p12 - p21 - z * se, p12 - p21 + z * se))
    assert p == pytest.approx(stats.binomtest(5, 7, 0.5).pvalue)


def test_paired_mean_difference_matches_ttest_rel() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(0.3, 1, size=40)
    delta, low, high, p = shadow.paired_mean_difference(b - a)
    ref = stats.ttest_rel(b, a)
    ci = ref.confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert delta == pytest.approx(np.mean(b - a))


def direct_delong_difference(y: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """DeLong (1988) written out with the O(n²) kernel psi(x, y) = 1[x > y] + ½·1[x = y]."""
    components = []
    for score in (first, second):
        x, z = score[y == 1], score[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        components.append((psi.mean(axis=1), psi.mean(axis=0), psi.mean()))
    (v10a, v01a, auc_a), (v10b, v01b, auc_b) = components
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    m, n = int((y == 1).sum()), int((y == 0).sum())
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return auc_b - auc_a, var


def test_paired_delong_matches_direct_quadratic_computation() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(60) < 0.4).astype(float)
    first = np.round(y * 0.8 + rng.normal(size=60), 1)  # rounding creates ties
    second = np.round(y * 1.2 + rng.normal(size=60), 1)
    auc_c, auc_s, delta, low, high, p = shadow.paired_auc_difference(y, first, second)
    expected_delta, var = direct_delong_difference(y, first, second)
    assert delta == pytest.approx(expected_delta)
    z = stats.norm.ppf(0.975)
    assert (high - low) / 2 == pytest.approx(z * math.sqrt(var))
    assert p == pytest.approx(2 * stats.norm.sf(abs(expected_delta) / math.sqrt(var)))
    metrics = pytest.importorskip("sklearn.metrics")
    assert auc_c == pytest.approx(metrics.roc_auc_score(y, first))
    assert auc_s == pytest.approx(metrics.roc_auc_score(y, second))


def test_identical_scores_have_no_auc_difference() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1.0])
    s = np.array([0.1, 0.9, 0.3, 0.6, 0.4, 0.5, 0.2, 0.8])
    assert shadow.paired_auc_difference(y, s, s)[2:] == (0.0, 0.0, 0.0, 1.0)


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(50)
    b = a + rng.normal(0, 0.3, 50)
    r, low, high = shadow.spearman_interval(a, b)
    assert r == pytest.approx(stats.spearmanr(a, b).statistic)
    assert low < r < high


def test_precision_bootstrap_is_the_row_bootstrap_and_is_seeded() -> None:
    rng = np.random.default_rng(2)
    n = 300
    y = (rng.random(n) < 0.4).astype(int)
    cp = (rng.random(n) < 0.3 + 0.4 * y).astype(int)
    sp = np.where(rng.random(n) < 0.8, cp, 1 - cp)
    first = shadow.paired_precision_bootstrap(y, cp, sp, 2000, np.random.default_rng(0))
    again = shadow.paired_precision_bootstrap(y, cp, sp, 2000, np.random.default_rng(0))
    assert first == again
    pc, ps, delta, low, high, p = first
    assert pc == pytest.approx(y[cp == 1].mean()) and ps == pytest.approx(y[sp == 1].mean())
    assert delta == pytest.approx(ps - pc) and low < delta < high and 0 < p <= 1
    # a plain row bootstrap gives the same spread
    idx = np.random.default_rng(1).integers(0, n, size=(2000, n))
    rows = np.array([y[i][sp[i] == 1].mean() - y[i][cp[i] == 1].mean() for i in idx])
    assert high - low == pytest.approx(np.subtract(*np.quantile(rows, [0.975, 0.025])), rel=0.15)


def test_days_needed_follows_the_power_formula() -> None:
    # ((1.95996 + 0.84162) * 0.01 / 0.01)^2 = 7.85 -> 8 days from one day's standard error
    assert shadow.days_needed(0.01, 0.01, days=1) == 8
    assert shadow.days_needed(0.01, 0.01, days=7) == 55
    assert shadow.days_needed(0.0, 0.01, days=7) is None


# --------------------------------------------------------------------------- pairing and comparisons


def test_pair_predictions_reports_coverage_on_both_sides() -> None:
    day = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "r4", "r1", "r2", "r5", "r2", "r1", "r1"],
            "model_version": ["v1"] * 4 + ["v2"] * 4 + ["v3", "v1"],
            "role": ["champion"] * 4 + ["shadow"] * 5 + ["champion"],
            "score": [0.1, 0.2, 0.3, 0.4, 0.15, 0.25, 0.5, 0.9, 0.11, 0.1],
            "prediction": [0, 0, 0, 0, 0, 0, 1, 1, 0, 0],
            "seg": list("aabbaabaab"),
        }
    )
    # r2 is logged twice by v2 (duplicate), r1 twice by the champion (duplicate); r5 has no champion.
    paired, coverage = shadow.pair_predictions(day, ["seg"])
    cov = coverage.set_index("shadow_version")
    assert cov.loc["v2", "paired"] == 2 and cov.loc["v2", "champion_only"] == 2
    assert cov.loc["v2", "shadow_only"] == 1 and cov.loc["v2", "shadow_requests"] == 3
    assert cov.loc["v2", "coverage"] == pytest.approx(2 / 5)
    assert cov.loc["v3", "paired"] == 1 and cov.loc["v3", "coverage"] == pytest.approx(1 / 4)
    assert cov.loc["v2", "duplicate_rows"] == 2 and cov.loc["v3", "duplicate_rows"] == 1
    v2 = paired[paired["shadow_version"] == "v2"].set_index("request_id")
    assert v2.loc["r2", "shadow_score"] == pytest.approx(0.25)  # first row wins
    assert v2.loc["r1", "champion_version"] == "v1" and v2.loc["r1", "seg"] == "a"


def test_comparisons_have_overall_and_per_segment_rows() -> None:
    frame, labels = traffic(np.random.default_rng(0), 3000, shadow_auc=0.82)
    comparisons = shadow.shadow_comparisons(
        frame, labels, ["age_band"], ShadowThresholds(bootstrap_samples=200)
    )
    assert list(comparisons.columns) == shadow.COLUMNS
    assert set(comparisons["segment_value"]) == {"__all__", "18-34", "35-64", "65+"}
    for metric in (*shadow.LABEL_FREE_METRICS, *shadow.LABELLED_METRICS):
        assert len(comparisons[comparisons["metric"] == metric]) == 4, metric
    auc = row(comparisons, "auc")
    assert auc["delta"] == pytest.approx(auc["shadow_value"] - auc["champion_value"])
    assert auc["ci_low"] < auc["delta"] < auc["ci_high"] and auc["n"] == 3000
    assert row(comparisons, "pairing_coverage")["value"] == 1.0
    agreement = row(comparisons, "agreement_rate")["value"]
    flips = row(comparisons, "flip_rate_0_to_1")["value"] + row(comparisons, "flip_rate_1_to_0")["value"]
    assert agreement + flips == pytest.approx(1.0)
    shift = row(comparisons, "positive_rate")
    assert shift["delta"] == pytest.approx(
        row(comparisons, "flip_rate_0_to_1")["value"] - row(comparisons, "flip_rate_1_to_0")["value"]
    )
    again = shadow.shadow_comparisons(frame, labels, ["age_band"], ShadowThresholds(bootstrap_samples=200))
    pd.testing.assert_frame_equal(comparisons, again)  # seeded: a re-run writes the same rows


def test_unlabelled_day_has_label_free_rows_only() -> None:
    frame, _ = traffic(np.random.default_rng(1), 500)
    comparisons = shadow.shadow_comparisons(frame, None, ["age_band"], ShadowThresholds())
    assert not set(shadow.LABELLED_METRICS) & set(comparisons["metric"])
    assert row(comparisons, "score_spearman")["value"] > 0.5


def test_poor_coverage_and_errors_are_reported() -> None:
    frame, labels = traffic(np.random.default_rng(2), 1000)
    shadow_rows = frame.index[frame["role"] == "shadow"]
    frame = frame.drop(shadow_rows[:100])  # the shadow missed 10 % of the requests
    errors = shadow_rows[100:150]
    frame.loc[errors, ["status", "score", "prediction"]] = ["error", np.nan, np.nan]
    comparisons = shadow.shadow_comparisons(frame, labels, [], ShadowThresholds())
    assert row(comparisons, "pairing_coverage")["value"] == pytest.approx(0.9)
    err = row(comparisons, "error_rate")
    assert err["shadow_value"] == pytest.approx(50 / 900) and err["champion_value"] == 0
    assert err["p_value"] < 1e-10
    assert row(comparisons, "auc")["n"] == 850  # quality metrics use pairs ok on both sides
    outcomes = {o.check_name: o for o in shadow.shadow_checks(comparisons, [], ShadowThresholds())}
    [finding] = outcomes["shadow_coverage"].findings
    assert finding.severity == "warning" and finding.subject == "v2" and finding.value == pytest.approx(0.9)
    assert finding.evidence["champion_only"] == 100


# --------------------------------------------------------------------------- promotion rule

THRESHOLDS = ShadowThresholds(bootstrap_samples=200)
SERVING = ServingThresholds()


def recommend_over_days(days: int, n: int, seed: int, **kwargs: object) -> list[shadow.Recommendation]:
    """The daily rule as the pipeline runs it: pool the last window_days days, compare, recommend."""
    rng = np.random.default_rng(seed)
    history, out = [], []
    for d in range(days):
        history.append(traffic(rng, n, day=d, **kwargs))
        window = history[-THRESHOLDS.window_days :]
        pooled = pd.concat([w[0] for w in window], ignore_index=True)
        labels = pd.concat([w[1] for w in window], ignore_index=True)
        comparisons = shadow.shadow_comparisons(pooled, labels, ["age_band"], THRESHOLDS)
        [rec] = shadow.promotion_recommendation(comparisons, THRESHOLDS, SERVING, days=len(window))
        out.append(rec)
    return out


def test_better_shadow_is_recommended_within_two_days() -> None:
    recs = recommend_over_days(2, 10_000, seed=1, champion_auc=0.78, shadow_auc=0.80)
    assert "promote" in [r.verdict for r in recs]  # docs/shadow.md: 0.02 AUC at 10k/day -> within 2 days
    rec = next(r for r in recs if r.verdict == "promote")
    assert rec.delta > 0 and rec.ci_low > 0 and rec.p_value < 0.05 and not rec.harmed_segments
    outcomes = {
        o.check_name: o for o in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], THRESHOLDS)
    }
    [finding] = outcomes["shadow_promotion"].findings
    assert finding.severity == "info" and finding.subject == "v2" and "v1" in finding.message
    assert outcomes["shadow_harm"].findings == [] and outcomes["shadow_promotion"].passed


def test_identical_shadow_is_never_recommended_over_sixty_days() -> None:
    recs = recommend_over_days(60, 400, seed=2, identical=True)
    assert {r.verdict for r in recs} == {"keep_collecting"}
    assert all(r.delta == 0 and r.days_needed is None for r in recs)


def test_shadow_worse_for_one_segment_is_flagged_not_recommended() -> None:
    [rec] = recommend_over_days(1, 10_000, seed=3, champion_auc=0.78, shadow_auc=0.81, harmed_auc=0.68)
    assert rec.delta > 0 and rec.p_value < 0.05  # better on average ...
    assert rec.verdict == "do_not_promote"
    assert [(h["segment"], h["segment_value"]) for h in rec.harmed_segments] == [("age_band", "65+")]
    harm = rec.harmed_segments[0]
    assert harm["delta"] < -0.05 and harm["ci_high"] < -THRESHOLDS.segment_tolerance
    outcomes = {
        o.check_name: o for o in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], THRESHOLDS)
    }
    [finding] = outcomes["shadow_harm"].findings
    assert finding.severity == "warning" and finding.subject == "v2:age_band=65+" and finding.metric == "auc"
    assert "65+" in finding.message and "v1" in finding.message
    assert not outcomes["shadow_harm"].passed


def test_significantly_worse_shadow_is_not_promoted() -> None:
    [rec] = recommend_over_days(1, 5000, seed=4, champion_auc=0.80, shadow_auc=0.75)
    assert rec.verdict == "do_not_promote" and rec.delta < 0


def test_slow_shadow_breaks_serving_slo() -> None:
    [rec] = recommend_over_days(1, 2000, seed=5, shadow_auc=0.85, shadow_latency_ms=600.0)
    assert rec.verdict == "do_not_promote"
    assert [b["metric"] for b in rec.slo_breaches] == ["latency_p99_ms"]
    outcomes = {
        o.check_name: o for o in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], THRESHOLDS)
    }
    assert [f.metric for f in outcomes["shadow_harm"].findings] == ["latency_p99_ms"]


def test_undecided_shadow_keeps_collecting_with_days_needed() -> None:
    [rec] = recommend_over_days(1, 1000, seed=6, champion_auc=0.78, shadow_auc=0.79)
    assert rec.verdict == "keep_collecting"
    se = (rec.ci_high - rec.ci_low) / (2 * stats.norm.ppf(0.975))
    assert rec.days_needed == shadow.days_needed(rec.delta, se, 1)
    outcomes = {
        o.check_name: o for o in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], THRESHOLDS)
    }
    assert outcomes["shadow_promotion"].findings == []
    assert outcomes["shadow_promotion"].metadata["verdicts"] == {"v2": "keep_collecting"}
