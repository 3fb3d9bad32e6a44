"""Drift statistics against scipy, the decision rule, and the three checks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from monitoring_pipelines.config import DriftThresholds, ModelConfig
from monitoring_pipelines.core import drift as D
from monitoring_pipelines.core.profiles import (
    PREDICTION_FEATURE,
    SCORE_FEATURE,
    ReferenceProfile,
    build_reference_profile,
    build_sketch,
    profile_numeric,
)
from monitoring_pipelines.storage.snapshot import Snapshot

TOL = 1e-9
CATEGORIES = np.array(["north", "south", "east", "west", "central"])
CATEGORY_P = np.array([0.35, 0.25, 0.2, 0.15, 0.05])


def raised(findings: list) -> list:
    """What a check raised; `ok` entries only record a judged subject's value (for hysteresis)."""
    return [f for f in findings if f.severity in ("critical", "warning", "info")]


def make_model(**drift: object) -> ModelConfig:
    return ModelConfig(
        name="credit",
        features={
            "numeric": ["income", "debt_ratio", "accounts", "age"],
            "categorical": ["region", "product"],
        },
        reference={"start": "2026-01-01", "end": "2026-01-28"},
        thresholds={"drift": drift},
    )


def make_rows(
    n: int,
    rng: np.random.Generator,
    *,
    shift: float = 0.0,
    new_category: float = 0.0,
    null_spike: float = 0.0,
    days: int = 0,
    start: dt.date = dt.date(2026, 1, 1),
    as_category: bool = False,
) -> pd.DataFrame:
    """Prediction-log rows of the test model; the reference distribution unless told otherwise.

    ``as_category`` gives the string features pandas' category dtype (much faster to build).
    """
    income = rng.lognormal(10.5, 0.5, n)
    income[rng.random(n) < 0.02] = np.nan  # a steady 2 % of missing incomes
    age = rng.normal(45 + 12 * shift, 12, n)  # `shift` is in reference standard deviations
    frame = pd.DataFrame(
        {
            "income": income,
            "debt_ratio": rng.beta(2, 5, n),
            "accounts": rng.poisson(3, n).astype(float),
            "age": age,
            "region": _strings(CATEGORIES, rng.choice(5, n, p=CATEGORY_P), as_category),
            "product": _strings(np.array(["card", "loan"]), (rng.random(n) >= 0.7).astype(int), as_category),
        }
    )
    if new_category:
        frame.loc[rng.random(n) < new_category, "region"] = "atlantis"
    if null_spike:
        frame.loc[rng.random(n) < null_spike, "debt_ratio"] = np.nan
    logit = -1.0 + 0.8 * frame["debt_ratio"].fillna(0.3) * 3 - 0.01 * (frame["age"] - 45)
    frame["score"] = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, n))))
    frame["prediction"] = (frame["score"] > 0.4).astype(int)
    if days:
        frame["partition_date"] = [start + dt.timedelta(days=int(d)) for d in rng.integers(0, days, n)]
    return frame


def _strings(labels: np.ndarray, codes: np.ndarray, as_category: bool) -> pd.Categorical | np.ndarray:
    return pd.Categorical.from_codes(codes, labels) if as_category else labels[codes]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_rows(120_000, np.random.default_rng(0), days=28)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return D.fit_reference_profile(reference, make_model())


def row(drift: pd.DataFrame, feature: str, statistic: str) -> pd.Series:
    hit = drift[(drift["feature"] == feature) & (drift["statistic"] == statistic)]
    assert len(hit) == 1, (feature, statistic)
    return hit.iloc[0]


# --------------------------------------------------------------------------- statistics vs scipy


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(42)
    return [
        ("normal", rng.normal(size=700), rng.normal(0.2, 1.3, size=900)),
        ("ties", rng.integers(0, 6, 800).astype(float), rng.integers(1, 8, 300).astype(float)),
        ("shared_ties", np.repeat([1.0, 2.0, 3.0], [5, 1, 7]), np.repeat([1.0, 3.0, 4.0], [2, 9, 1])),
        ("constant_reference", np.full(50, 3.0), rng.normal(3, 1, 60)),
        ("both_constant", np.full(40, 1.5), np.full(30, 1.5)),
        ("single_current_row", rng.normal(size=300), np.array([0.7])),
        ("single_reference_row", np.array([-0.2]), rng.normal(size=250)),
        ("disjoint", rng.uniform(0, 1, 400), rng.uniform(5, 6, 400)),
        ("large_offset", rng.normal(1.7e9, 3.0, 500), rng.normal(1.7e9 + 1, 3.0, 500)),
        ("heavy_tail", rng.standard_cauchy(600), rng.standard_cauchy(600)),
    ]


@pytest.mark.parametrize(("name", "x", "y"), _cases(), ids=[c[0] for c in _cases()])
def test_ks_and_wasserstein_equal_scipy_on_the_same_arrays(name: str, x: np.ndarray, y: np.ndarray) -> None:
    sketch = build_sketch(np.sort(x))  # few enough distinct values: the sketch is the reference
    assert sketch.exact
    ys = np.sort(y)
    assert abs(sketch.ks_distance(ys) - stats.ks_2samp(x, y).statistic) <= TOL
    w = stats.wasserstein_distance(x, y)
    assert abs(sketch.wasserstein_distance(ys) - w) <= TOL * max(1.0, abs(w))


def test_ks_and_wasserstein_equal_scipy_through_compute_drift() -> None:
    rng = np.random.default_rng(5)
    ref = make_rows(3000, rng)
    cur = make_rows(2500, rng, shift=0.4)
    profile = build_reference_profile(ref, make_model())
    drift = D.compute_drift(profile, cur, DriftThresholds())
    for feature in ("income", "accounts", "age"):
        x, y = ref[feature].dropna().to_numpy(), cur[feature].dropna().to_numpy()
        ks = stats.ks_2samp(x, y, method="asymp")
        assert abs(row(drift, feature, "ks")["value"] - ks.statistic) <= TOL
        p_value = row(drift, feature, "ks")["p_value"]
        if ks.pvalue >= D.KS_TAIL:
            assert p_value == pytest.approx(ks.pvalue, rel=1e-9)
        else:  # the limiting distribution: never below the exact tail (see ks_pvalue)
            assert ks.pvalue <= p_value < D.KS_TAIL
        w = stats.wasserstein_distance(x, y) / x.std()
        assert abs(row(drift, feature, "wasserstein_norm")["value"] - w) <= TOL
        assert row(drift, feature, "ks")["error_bound"] == 0.0


@pytest.mark.parametrize("en", [250, 1_000, 10_000, 100_000])
def test_ks_pvalue_is_scipy_above_the_tail_and_conservative_below_it(en: int) -> None:
    # scipy's exact tail is slow for a large en and a small p (why ks_pvalue uses the limit there)
    for p in np.logspace(0, -6 if en > 10_000 else -12, 25):
        statistic = float(special.kolmogi(p)) / np.sqrt(en)
        if statistic >= 1:
            continue
        exact = float(stats.kstwo.sf(statistic, en))
        got = D.ks_pvalue(statistic, 2 * en, 2 * en)  # en = n*m/(n+m)
        if en >= D.KS_LIMIT_EN:  # the limit throughout: conservative, within 0.4 % above the tail
            assert got >= exact
            if exact >= 1e-6:
                assert got <= exact * (1.004 if exact >= D.KS_TAIL else 1.1)
        elif exact >= D.KS_TAIL:
            assert got == pytest.approx(exact, rel=1e-9)
        elif got < D.KS_TAIL:
            assert got >= exact
            if exact >= 1e-6:  # the stated worst case down to 1e-6
                assert got <= exact * (1.22 if en <= 250 else 1.1)


def test_sketched_ks_and_wasserstein_stay_within_the_stated_bound() -> None:
    rng = np.random.default_rng(6)
    x = rng.lognormal(0, 1, 300_000)
    y = rng.lognormal(0.05, 1.1, 200_000)
    sketch = build_sketch(np.sort(x), size=512)  # coarse on purpose, so the bound matters
    assert not sketch.exact and sketch.values.size <= 512
    ys = np.sort(y)
    ks_err = abs(sketch.ks_distance(ys) - stats.ks_2samp(x, y).statistic)
    w_err = abs(sketch.wasserstein_distance(ys) - stats.wasserstein_distance(x, y))
    assert ks_err <= sketch.ks_error + TOL
    assert w_err <= sketch.wasserstein_error + TOL
    # the stated worst case of the KS bound: half a sketch cell of probability mass (plus one row)
    assert sketch.ks_error <= 1 / (2 * 512) + 2 / x.size + TOL


def test_sketch_error_is_its_exact_distance_to_the_reference() -> None:
    rng = np.random.default_rng(7)
    x = np.sort(np.concatenate([rng.normal(size=40_000), np.zeros(15_000)]))  # an atom at 0
    sketch = build_sketch(x, size=256)
    expanded = np.repeat(sketch.values, sketch.counts)  # the sketch as a sample of the same size
    assert abs(sketch.ks_error - stats.ks_2samp(x, expanded).statistic) <= TOL
    assert abs(sketch.wasserstein_error - stats.wasserstein_distance(x, expanded)) <= TOL
    assert sketch.counts[np.searchsorted(sketch.values, 0.0)] >= 15_000  # the atom stays whole


def test_ks_pvalue_is_scipys_asymptotic_pvalue() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=20_000), rng.normal(0.02, 1, 15_000)
    ref = stats.ks_2samp(x, y, method="asymp")
    assert D.ks_pvalue(ref.statistic, x.size, y.size) == pytest.approx(ref.pvalue, rel=1e-12)
    assert D.ks_pvalue(0.0, 10, 10) == 1.0
    assert np.isnan(D.ks_pvalue(0.1, 0, 10))


def test_psi_uses_reference_bins_and_floors_empty_bins_at_epsilon() -> None:
    ref = np.array([50, 30, 20, 0])
    cur = np.array([40, 30, 20, 10])
    p = np.maximum(ref / 100, D.PSI_EPSILON)
    q = cur / 100
    assert D.psi(ref, cur) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert D.psi(ref, ref) == 0.0
    assert np.isnan(D.psi(ref, np.zeros(4)))


def test_psi_bins_are_the_reference_quantile_bins() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=10_000)
    prof = profile_numeric("f", "f", x, bins=10)
    assert len(prof.edges) == 9
    assert np.all(np.abs(prof.counts - 1000) <= 1)  # deciles of the reference
    y = np.sort(rng.normal(0.5, 1, 5000))
    rows = {r["statistic"]: r for r in D.numeric_statistics(prof, y, y.size)}
    expected_counts = np.histogram(y, bins=np.concatenate(([-np.inf], prof.edges, [np.inf])))[0]
    assert rows["psi"]["value"] == pytest.approx(D.psi(prof.counts, expected_counts), rel=1e-12)
    assert rows["js"]["value"] == pytest.approx(
        jensenshannon(prof.counts / prof.counts.sum(), expected_counts / y.size, base=2), rel=1e-12
    )


def test_chi2_equals_scipy_contingency_without_correction() -> None:
    ref, cur = np.array([500, 300, 200, 0]), np.array([40, 35, 20, 5])
    stat, p = D.chi2_homogeneity(ref, cur)
    table = np.vstack([ref, cur])[:, :4]
    expected = stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    two = stats.chi2_contingency(np.array([[70, 30], [55, 45]]), correction=False)
    assert D.chi2_homogeneity(np.array([70, 30]), np.array([55, 45]))[1] == pytest.approx(
        two.pvalue, rel=1e-9
    )
    assert D.chi2_homogeneity(np.array([10, 0]), np.array([5, 0])) == (0.0, 1.0)


def test_all_null_current_column_has_no_distribution_but_a_null_spike(profile: ReferenceProfile) -> None:
    cur = make_rows(2000, np.random.default_rng(10))
    cur["age"] = np.nan
    drift = D.compute_drift(profile, cur, DriftThresholds())
    for stat in ("psi", "js", "wasserstein_norm", "ks", "out_of_range_share"):
        assert np.isnan(row(drift, "age", stat)["value"])
        assert not row(drift, "age", stat)["drifted"]
    null = row(drift, "age", "null_rate_change")
    assert null["value"] == pytest.approx(1.0)
    assert null["severity"] == "critical"


def test_all_null_reference_column_profiles_and_scores_without_error() -> None:
    rng = np.random.default_rng(11)
    ref = make_rows(1000, rng)
    ref["age"] = np.nan
    profile = build_reference_profile(ref, make_model())
    assert profile.features["age"].n_values == 0
    drift = D.compute_drift(profile, make_rows(1000, rng), DriftThresholds())
    assert np.isnan(row(drift, "age", "psi")["value"])
    assert row(drift, "age", "null_rate_change")["value"] == pytest.approx(-1.0)


def test_single_row_day_is_scored_but_not_judged(profile: ReferenceProfile) -> None:
    cur = make_rows(1, np.random.default_rng(12), shift=3.0)
    drift = D.compute_drift(profile, cur, DriftThresholds())
    assert row(drift, "age", "ks")["n_current"] == 1
    assert np.isfinite(row(drift, "age", "ks")["value"])
    assert not drift["drifted"].any()
    outcomes = D.drift_checks(drift, DriftThresholds())
    assert all(o.passed for o in outcomes)
    # not judged is unknown, never passed: an open drift alert stays open on such a day
    assert all(o.status == "unknown" and o.unknown.startswith("not enough data: n=1 ") for o in outcomes)


def test_non_finite_values_count_as_null(profile: ReferenceProfile) -> None:
    cur = make_rows(5000, np.random.default_rng(13))
    cur.loc[:999, "age"] = np.inf
    drift = D.compute_drift(profile, cur, DriftThresholds())
    assert row(drift, "age", "null_rate_change")["value"] == pytest.approx(0.2)
    assert row(drift, "age", "ks")["n_current"] == 4000


def test_out_of_range_share_counts_values_outside_the_reference_range(profile: ReferenceProfile) -> None:
    cur = make_rows(4000, np.random.default_rng(14))
    ref = profile.features["debt_ratio"]
    cur.loc[:199, "debt_ratio"] = ref.max + 1
    cur.loc[200:299, "debt_ratio"] = ref.min - 1
    drift = D.compute_drift(profile, cur, DriftThresholds())
    assert row(drift, "debt_ratio", "out_of_range_share")["value"] == pytest.approx(300 / 4000)


def test_unseen_share_and_other_bucket(profile: ReferenceProfile) -> None:
    cur = make_rows(4000, np.random.default_rng(15))
    cur.loc[:399, "region"] = "atlantis"
    drift = D.compute_drift(profile, cur, DriftThresholds())
    assert row(drift, "region", "unseen_share")["value"] == pytest.approx(0.1)
    assert row(drift, "region", "psi")["value"] > 0.25  # 10 % in a bin the reference had empty


def as_log(frame: pd.DataFrame, day: dt.date = dt.date(2026, 2, 1)) -> pd.DataFrame:
    """`frame` (make_rows) as raw prediction-log rows of the test model, all on `day`."""
    n = len(frame)
    out = frame.reset_index(drop=True).copy()
    out["prediction_id"] = [f"p{i}" for i in range(n)]
    out["request_id"] = [f"r{i}" for i in range(n)]
    out["model_name"] = "credit"
    out["model_version"] = "v1"
    out["role"] = "champion"
    out["ts"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(n) % 86_400, unit="s")
    return out


def test_snapshot_columns_give_the_same_rows_as_a_frame(profile: ReferenceProfile) -> None:
    cur = as_log(make_rows(20_000, np.random.default_rng(16), shift=0.3))
    cur["role"] = np.where(np.arange(len(cur)) % 10 == 0, "shadow", "champion")
    failed = np.arange(len(cur)) % 10 == 1
    cur["status"] = np.where(failed, "error", "ok")
    cur.loc[failed, ["score", "prediction"]] = np.nan  # a failed request has no score
    snap, validation = Snapshot.from_frame(make_model(), cur, dt.date(2026, 2, 1))
    with snap:
        assert validation.quarantined_rows == 0
        from_snapshot = D.compute_drift(profile, snap.columns(), DriftThresholds())
    from_frame = D.compute_drift(profile, cur, DriftThresholds())
    pd.testing.assert_frame_equal(from_frame, from_snapshot, check_exact=False, rtol=1e-12)
    assert row(from_frame, "age", "ks")["n_current"] == 16_000  # shadow and error rows left out
    assert row(from_frame, "income", "null_rate_change")["n_current"] == 16_000


def test_snapshot_columns_of_one_day_of_several(profile: ReferenceProfile) -> None:
    first = as_log(make_rows(6000, np.random.default_rng(19)), dt.date(2026, 2, 1))
    second = as_log(make_rows(4000, np.random.default_rng(20), shift=1.0), dt.date(2026, 2, 2))
    both = pd.concat([first, second.assign(prediction_id="b" + second["prediction_id"])], ignore_index=True)
    snap, _ = Snapshot.from_frame(make_model(), both, dt.date(2026, 2, 1), dt.date(2026, 2, 2))
    with snap:
        for day, frame in ((dt.date(2026, 2, 1), first), (dt.date(2026, 2, 2), second)):
            pd.testing.assert_frame_equal(
                D.compute_drift(profile, frame, DriftThresholds()),
                D.compute_drift(profile, snap.columns(day), DriftThresholds()),
                check_exact=False,
                rtol=1e-12,
            )


def test_missing_column_is_an_error(profile: ReferenceProfile) -> None:
    cur = make_rows(100, np.random.default_rng(17)).drop(columns=["age"])
    with pytest.raises(KeyError, match="age"):
        D.compute_drift(profile, cur, DriftThresholds())


# --------------------------------------------------------------------------- the decision rule


def test_drift_rows_have_the_contract_columns_and_the_profile_version(profile: ReferenceProfile) -> None:
    drift = D.compute_drift(profile, make_rows(5000, np.random.default_rng(18)), DriftThresholds())
    assert list(drift.columns) == D.DRIFT_COLUMNS
    assert set(drift["profile_version"]) == {profile.version}
    assert set(drift["feature"]) == {*make_model().features.all, SCORE_FEATURE, PREDICTION_FEATURE}
    assert set(drift["severity"]) <= {"ok", "warning", "critical"}
    numeric = set(drift.loc[drift["kind"] == "numeric", "statistic"])
    assert numeric == {
        "psi",
        "js",
        "wasserstein_norm",
        "ks",
        "null_rate_change",
        "out_of_range_share",
        "mean",
        "std",
    }
    categorical = set(drift.loc[drift["feature"] == "region", "statistic"])
    assert categorical == {"psi", "js", "chi2", "null_rate_change", "unseen_share"}


def test_million_row_day_with_a_negligible_shift_stays_quiet() -> None:
    """The peers' failure: at this size every p-value is tiny; the effect-size gate keeps us quiet."""
    rng = np.random.default_rng(19)
    profile = build_reference_profile(make_rows(200_000, rng), make_model())
    cur = make_rows(1_000_000, rng, shift=0.03)  # real, but 0.03 sigma: not worth a page
    drift = D.compute_drift(profile, cur, DriftThresholds())
    assert row(drift, "age", "ks")["p_value_adjusted"] < 1e-6  # significant ...
    assert not drift["drifted"].any()  # ... but not drift
    assert all(o.passed for o in D.drift_checks(drift, DriftThresholds()))


def test_effect_size_without_significance_is_not_drift() -> None:
    raw = pd.DataFrame(
        [
            ("a", "numeric", "psi", 0.3, np.nan, np.nan, np.nan, 1000, 600),
            ("a", "numeric", "ks", 0.05, np.nan, 0.2, np.nan, 1000, 600),
        ],
        columns=D._RAW_COLUMNS,
    )
    out = D.decide(raw, DriftThresholds())
    assert not out["drifted"].any()
    raw.loc[1, "p_value"] = 1e-4
    out = D.decide(raw, DriftThresholds())
    assert out["drifted"].all() and set(out["severity"]) == {"critical"}


def test_significance_is_benjamini_hochberg_across_the_models_features() -> None:
    # Five features, each with a large effect. Raw p-values of f0..f3 are all below alpha = 0.05;
    # after BH only f0 (adjusted 0.025) is; f1..f3 adjust to 0.05625.
    p_values = [0.005, 0.03, 0.04, 0.045, 0.9]
    rows = []
    for i, p in enumerate(p_values):
        rows += [
            (f"f{i}", "numeric", "wasserstein_norm", 0.5, np.nan, np.nan, np.nan, 5000, 5000),
            (f"f{i}", "numeric", "ks", 0.1, np.nan, p, np.nan, 5000, 5000),
        ]
    out = D.decide(pd.DataFrame(rows, columns=D._RAW_COLUMNS), DriftThresholds())
    adjusted = out.loc[out["statistic"] == "ks", "p_value_adjusted"].to_numpy()
    np.testing.assert_allclose(adjusted, stats.false_discovery_control(p_values))
    drifted = set(out.loc[out["drifted"] & (out["statistic"] == "wasserstein_norm"), "feature"])
    assert drifted == {"f0"}
    loose = D.decide(pd.DataFrame(rows, columns=D._RAW_COLUMNS), DriftThresholds(fdr_alpha=0.1))
    assert set(loose.loc[loose["drifted"] & (loose["statistic"] == "ks"), "feature"]) == {
        "f0",
        "f1",
        "f2",
        "f3",
    }


def test_days_below_min_rows_are_not_judged() -> None:
    raw = pd.DataFrame(
        [
            ("a", "numeric", "wasserstein_norm", 0.9, np.nan, np.nan, np.nan, 1000, 499),
            ("a", "numeric", "ks", 0.5, np.nan, 1e-20, np.nan, 1000, 499),
            ("a", "numeric", "null_rate_change", 0.5, 0.0, np.nan, np.nan, 1000, 499),
        ],
        columns=D._RAW_COLUMNS,
    )
    assert not D.decide(raw, DriftThresholds()).loc[:, "drifted"].any()
    assert D.decide(raw, DriftThresholds(min_n=400))["drifted"].all()


def test_first_day_of_a_mean_shift_is_a_warning_on_that_feature_only(profile: ReferenceProfile) -> None:
    cur = make_rows(100_000, np.random.default_rng(20))
    cur["debt_ratio"] = cur["debt_ratio"] + 0.3 * profile.features["debt_ratio"].std
    drift = D.compute_drift(profile, cur, DriftThresholds())
    flagged = set(
        drift.loc[drift["drifted"] & drift["statistic"].isin(["psi", "js", "wasserstein_norm"]), "feature"]
    )
    assert "debt_ratio" in flagged
    assert flagged <= {"debt_ratio", SCORE_FEATURE, PREDICTION_FEATURE}  # the score depends on it
    feature_drift = D.drift_checks(drift, DriftThresholds())[0]
    assert {f.subject for f in raised(feature_drift.findings)} == flagged


def test_prediction_drift_is_critical(profile: ReferenceProfile) -> None:
    cur = make_rows(50_000, np.random.default_rng(21))
    cur["score"] = np.clip(cur["score"] + 0.1, 0, 1)
    drift = D.compute_drift(profile, cur, DriftThresholds())
    critical = D.drift_checks(drift, DriftThresholds())[1]
    assert SCORE_FEATURE in {f.subject for f in raised(critical.findings)}
    assert all(f.severity == "critical" for f in raised(critical.findings))


def test_psi_beyond_critical_is_a_critical_finding(profile: ReferenceProfile) -> None:
    cur = make_rows(50_000, np.random.default_rng(22))
    cur["accounts"] = cur["accounts"] + 3
    drift = D.compute_drift(profile, cur, DriftThresholds())
    assert row(drift, "accounts", "psi")["value"] >= 0.25
    critical = D.drift_checks(drift, DriftThresholds())[1]
    finding = next(f for f in critical.findings if f.subject == "accounts")
    assert (finding.metric, finding.threshold) == ("psi", 0.25)


# --------------------------------------------------------------------------- checks


def test_findings_name_subject_metric_value_threshold_version_and_evidence(profile: ReferenceProfile) -> None:
    cur = make_rows(30_000, np.random.default_rng(23), shift=0.5, null_spike=0.3)
    drift = D.compute_drift(profile, cur, DriftThresholds())
    outcomes = {o.check_name: o for o in D.drift_checks(drift, DriftThresholds(), profile.version)}
    assert set(outcomes) == {"feature_drift", "critical_drift", "data_quality"}
    age = next(f for f in outcomes["feature_drift"].findings if f.subject == "age")
    assert age.check_name == "feature_drift" and age.severity == "warning"
    assert age.metric in ("psi", "js", "wasserstein_norm")
    assert age.value >= age.threshold
    ev = age.evidence
    assert ev["profile_version"] == profile.version
    assert ev["n_current"] == 30_000 and ev["n_reference"] == profile.features["age"].n_values
    assert ev["p_value_adjusted"] <= 0.05 and ev["test"] == "ks"
    assert ev["reference"]["mean"] == pytest.approx(profile.features["age"].mean)
    assert ev["current"]["mean"] == pytest.approx(cur["age"].mean())
    null = next(f for f in outcomes["data_quality"].findings if f.subject == "debt_ratio")
    assert (null.metric, null.severity, null.threshold) == ("null_rate_change", "critical", 0.2)
    assert null.evidence["current"]["null_rate"] == pytest.approx(cur["debt_ratio"].isna().mean())
    for outcome in outcomes.values():
        table = outcome.metadata["worst_features"]
        assert table.startswith("| feature |") and len(table.splitlines()) <= 2 + D.WORST_FEATURES_SHOWN
        assert outcome.metadata["profile_version"] == profile.version
    assert "`age`" in outcomes["feature_drift"].metadata["worst_features"].splitlines()[2]


def test_new_category_and_null_spike_are_data_quality_findings(profile: ReferenceProfile) -> None:
    cur = make_rows(30_000, np.random.default_rng(24), new_category=0.1)
    cur.loc[:99, "region"] = None
    outcomes = D.drift_checks(D.compute_drift(profile, cur, DriftThresholds()), DriftThresholds())
    quality = {(f.subject, f.metric): f.severity for f in raised(outcomes[2].findings)}
    assert quality == {("region", "unseen_share"): "critical"}
    assert [f.subject for f in raised(outcomes[1].findings)] == ["region"]


def test_judged_subjects_report_their_value_for_hysteresis(profile: ReferenceProfile) -> None:
    cur = make_rows(5000, np.random.default_rng(21))
    drift = D.compute_drift(profile, cur, DriftThresholds())
    outcomes = {o.check_name: o for o in D.drift_checks(drift, DriftThresholds())}
    features = set(drift["feature"])
    for name, outcome in outcomes.items():
        ok = [f for f in outcome.findings if f.severity == "ok"]
        assert outcome.passed and outcome.status == "passed", name
        assert {f.subject for f in ok} == features - {f.subject for f in raised(outcome.findings)}, name
        assert all(f.value is not None and f.threshold is not None and f.value < f.threshold for f in ok)
