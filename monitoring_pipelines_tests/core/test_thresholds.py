"""Threshold overrides (per model, per feature), adaptive thresholds, Benjamini-Hochberg."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring_pipelines.config import DriftOverride, DriftThresholds
from monitoring_pipelines.core import drift as D
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines.core.thresholds import (
    MIN_ADAPTIVE_DAYS,
    adaptive_threshold,
    benjamini_hochberg,
    resolve_threshold,
    threshold_table,
)
from monitoring_pipelines_tests.core.test_drift import make_model, make_rows

EFFECTS = ("psi", "js", "wasserstein_norm")


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return D.build_reference_profile(make_rows(60_000, np.random.default_rng(200)), make_model())


@pytest.fixture(scope="module")
def shifted_day() -> pd.DataFrame:
    return make_rows(50_000, np.random.default_rng(201), shift=0.3)  # age moves by 0.3 sigma


def drifted(drift: pd.DataFrame) -> set[str]:
    return set(drift.loc[drift["drifted"] & drift["statistic"].isin(EFFECTS), "feature"])


def bands(feature: str, mean: float, std: float, n_days: int = 20, statistics=EFFECTS) -> pd.DataFrame:
    return pd.DataFrame(
        [{"feature": feature, "statistic": s, "mean": mean, "std": std, "n_days": n_days} for s in statistics]
    )


def test_defaults_are_the_documented_ones() -> None:
    t = DriftThresholds()
    assert (t.psi_warning, t.psi_critical, t.wasserstein, t.js, t.min_n) == (0.1, 0.25, 0.1, 0.1, 500)
    r = resolve_threshold(t, "age", "psi")
    assert (r.warning, r.critical, r.source) == (0.1, 0.25, "default")
    assert np.isnan(resolve_threshold(t, "age", "js").critical)
    with pytest.raises(KeyError):
        resolve_threshold(t, "age", "ks")


def test_per_model_override_takes_effect(profile: ReferenceProfile, shifted_day: pd.DataFrame) -> None:
    assert "age" in drifted(D.compute_drift(profile, shifted_day, DriftThresholds()))
    lax = DriftThresholds(psi_warning=0.5, psi_critical=0.6, wasserstein=0.5, js=0.5)
    assert drifted(D.compute_drift(profile, shifted_day, lax)) == set()


def test_model_config_thresholds_reach_the_decision(
    profile: ReferenceProfile, shifted_day: pd.DataFrame
) -> None:
    model = make_model(features={"age": {"wasserstein": 0.5, "js": 0.5}})
    drift = D.compute_drift(profile, shifted_day, model.thresholds.drift)
    assert "age" not in drifted(drift)
    age = drift[(drift["feature"] == "age") & (drift["statistic"] == "js")].iloc[0]
    assert (age["threshold"], age["threshold_source"]) == (0.5, "override")


def test_per_feature_override_applies_to_that_feature_only(profile: ReferenceProfile) -> None:
    day = make_rows(50_000, np.random.default_rng(202))
    day["age"] = day["age"] + 0.3 * profile.features["age"].std
    day["debt_ratio"] = day["debt_ratio"] + 0.3 * profile.features["debt_ratio"].std
    thresholds = DriftThresholds(features={"age": DriftOverride(wasserstein=0.5, js=0.5)})
    flagged = drifted(D.compute_drift(profile, day, thresholds))
    assert "age" not in flagged and "debt_ratio" in flagged
    stricter = DriftThresholds(features={"age": DriftOverride(psi_warning=0.01, psi_critical=0.05)})
    age_psi = D.compute_drift(profile, day, stricter).query("feature == 'age' and statistic == 'psi'").iloc[0]
    assert age_psi["severity"] == "critical"


def test_disabled_feature_is_not_scored(profile: ReferenceProfile, shifted_day: pd.DataFrame) -> None:
    drift = D.compute_drift(
        profile, shifted_day, DriftThresholds(features={"age": DriftOverride(enabled=False)})
    )
    assert "age" not in set(drift["feature"])


def test_adaptive_threshold_is_mean_plus_sigma_std_never_below_configured() -> None:
    assert adaptive_threshold(0.1, 0.05, 0.02, 3.0) == pytest.approx(0.11)
    assert adaptive_threshold(0.1, 0.01, 0.01, 3.0) == 0.1
    assert adaptive_threshold(0.1, np.nan, 0.01, 3.0) == 0.1
    t = DriftThresholds(band_k=2.0)
    r = resolve_threshold(t, "age", "psi", {"mean": 0.2, "std": 0.05, "n_days": 28})
    assert (r.warning, r.critical, r.source) == (pytest.approx(0.3), pytest.approx(0.3), "adaptive")
    quiet = resolve_threshold(t, "age", "psi", {"mean": 0.001, "std": 0.001, "n_days": 28})
    assert (quiet.warning, quiet.source) == (0.1, "default")


def test_adaptive_thresholds_take_effect_for_a_noisy_feature(
    profile: ReferenceProfile, shifted_day: pd.DataFrame
) -> None:
    noisy = bands("age", mean=0.15, std=0.1)  # age moves a lot on ordinary reference days
    drift = D.compute_drift(profile, shifted_day, DriftThresholds(), variability=noisy)
    assert "age" not in drifted(drift)
    rows = drift[(drift["feature"] == "age") & drift["statistic"].isin(EFFECTS)]
    assert set(rows["threshold_source"]) == {"adaptive"}
    assert rows["threshold"].to_numpy() == pytest.approx([0.45, 0.45, 0.45])


def test_adaptive_can_be_switched_off_per_model_and_per_feature(
    profile: ReferenceProfile, shifted_day: pd.DataFrame
) -> None:
    noisy = bands("age", mean=0.15, std=0.1)
    off = DriftThresholds(adaptive=False)
    assert "age" in drifted(D.compute_drift(profile, shifted_day, off, variability=noisy))
    off_for_age = DriftThresholds(features={"age": DriftOverride(adaptive=False)})
    assert "age" in drifted(D.compute_drift(profile, shifted_day, off_for_age, variability=noisy))


def test_adaptive_needs_enough_reference_days(profile: ReferenceProfile, shifted_day: pd.DataFrame) -> None:
    few = bands("age", mean=0.15, std=0.1, n_days=MIN_ADAPTIVE_DAYS - 1)
    drift = D.compute_drift(profile, shifted_day, DriftThresholds(), variability=few)
    assert "age" in drifted(drift)


def test_reference_variability_drives_adaptive_thresholds_end_to_end() -> None:
    """A feature that swings by +-0.4 sigma from one reference day to the next gets a threshold
    above those swings, so a 0.3-sigma day is ordinary for it; a steady feature keeps the default."""
    rng = np.random.default_rng(203)
    days = []
    for d in range(28):
        rows = make_rows(4_000, rng, shift=0.4 if d % 2 else -0.4)
        rows["partition_date"] = dt.date(2026, 1, 1) + dt.timedelta(days=d)
        days.append(rows)
    reference = pd.concat(days, ignore_index=True)
    model = make_model()
    profile = D.fit_reference_profile(reference, model)
    variability = profile.variability_frame()
    assert set(variability.columns) == {"feature", "statistic", "mean", "std", "n_days"}
    assert (variability["n_days"] == 28).all()
    assert {"psi", "js", "wasserstein_norm", "null_rate_change", "ks"} <= set(variability["statistic"])
    day = make_rows(50_000, rng, shift=0.3)
    adaptive = D.compute_drift(profile, day, model.thresholds.drift)
    fixed = D.compute_drift(profile, day, DriftThresholds(adaptive=False))
    age = adaptive[(adaptive["feature"] == "age") & (adaptive["statistic"] == "wasserstein_norm")].iloc[0]
    assert age["threshold_source"] == "adaptive" and age["threshold"] > 0.3
    assert "age" not in drifted(adaptive) and "age" in drifted(fixed)
    steady = adaptive[(adaptive["feature"] == "income") & (adaptive["statistic"] == "wasserstein_norm")].iloc[
        0
    ]
    assert (steady["threshold"], steady["threshold_source"]) == (0.1, "default")
    recomputed = D.reference_variability(profile, reference, "partition_date", model.thresholds.drift)
    pd.testing.assert_frame_equal(
        recomputed.sort_values(["feature", "statistic"]).reset_index(drop=True),
        variability.sort_values(["feature", "statistic"]).reset_index(drop=True),
        check_dtype=False,
    )


def test_threshold_table_lists_every_feature_and_statistic() -> None:
    t = DriftThresholds(features={"age": DriftOverride(js=0.3, enabled=False)})
    table = threshold_table(t, ["age", "income"], bands("income", 0.3, 0.1))
    assert len(table) == 2 * 6
    age_js = table[(table["feature"] == "age") & (table["statistic"] == "js")].iloc[0]
    assert (age_js["threshold"], age_js["threshold_source"], age_js["enabled"]) == (0.3, "override", False)
    income_psi = table[(table["feature"] == "income") & (table["statistic"] == "psi")].iloc[0]
    assert income_psi["threshold"] == pytest.approx(0.6) and income_psi[
        "threshold_critical"
    ] == pytest.approx(0.6)


def test_benjamini_hochberg_matches_scipy_and_leaves_nan_out() -> None:
    rng = np.random.default_rng(204)
    p = rng.uniform(0, 0.2, 30)
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    out = benjamini_hochberg(with_nan)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], stats.false_discovery_control([0.01, 0.04, 0.03]))
    assert benjamini_hochberg([]).size == 0
