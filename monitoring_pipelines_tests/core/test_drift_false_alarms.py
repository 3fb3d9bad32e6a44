"""The promise of the drift monitor: quiet on ordinary days, loud on the first day of a real shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import DriftThresholds
from monitoring_pipelines.core import drift as D
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines_tests.core.test_drift import make_model, make_rows

FIXED = pd.DataFrame(columns=["feature", "statistic", "mean", "std", "n_days"])  # no adaptive bands


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return D.fit_reference_profile(make_rows(150_000, np.random.default_rng(100), days=28), make_model())


def alerts(drift: pd.DataFrame, thresholds: DriftThresholds) -> list[str]:
    return [
        f"{o.check_name}:{f.subject}:{f.metric}={f.value}"
        for o in D.drift_checks(drift, thresholds)
        for f in o.findings
        if f.severity in ("warning", "critical")
    ]


@pytest.mark.parametrize("rows_per_day", [100_000, 2_000])
def test_quiet_days_raise_no_alert(profile: ReferenceProfile, rows_per_day: int) -> None:
    """60 days drawn from the reference distribution: no finding from any check.

    Judged with the fixed (configured) thresholds only: adaptive thresholds can only raise a
    threshold, so a day quiet under the fixed ones is quiet under the adaptive ones too.
    """
    thresholds = make_model().thresholds.drift
    rng = np.random.default_rng(rows_per_day)
    raised = []
    for day in range(60):
        day_rows = make_rows(rows_per_day, rng, as_category=True)
        drift = D.compute_drift(profile, day_rows, thresholds, variability=FIXED)
        assert not drift["drifted"].any(), drift[drift["drifted"]]
        raised += [f"day {day}: {a}" for a in alerts(drift, thresholds)]
    assert raised == []


def test_adaptive_thresholds_are_never_below_the_fixed_ones(profile: ReferenceProfile) -> None:
    thresholds = make_model().thresholds.drift
    day = make_rows(5_000, np.random.default_rng(101))
    adaptive = D.compute_drift(profile, day, thresholds)
    fixed = D.compute_drift(profile, day, thresholds, variability=FIXED)
    assert profile.has_variability
    judged = adaptive["threshold"].notna()
    assert (adaptive.loc[judged, "threshold"] >= fixed.loc[judged, "threshold"]).all()


@pytest.mark.parametrize(
    ("change", "check", "subject", "severity"),
    [
        ({"shift": 0.3}, "feature_drift", "age", "warning"),
        ({"new_category": 0.1}, "critical_drift", "region", "critical"),
        ({"new_category": 0.1}, "data_quality", "region", "critical"),
        ({"null_spike": 0.3}, "data_quality", "debt_ratio", "critical"),
    ],
)
def test_first_day_of_a_real_shift_alerts(
    profile: ReferenceProfile, change: dict, check: str, subject: str, severity: str
) -> None:
    thresholds = make_model().thresholds.drift  # defaults, adaptive bands from the reference on
    drift = D.compute_drift(profile, make_rows(100_000, np.random.default_rng(102), **change), thresholds)
    outcome = next(o for o in D.drift_checks(drift, thresholds) if o.check_name == check)
    assert not outcome.passed
    assert (subject, severity) in {(f.subject, f.severity) for f in outcome.findings}
