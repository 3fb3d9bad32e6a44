"""Business outcomes joined by request_id, stored as `outcome:<name>` rows, checked against their band."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import OutcomeThresholds
from monitoring_pipelines.core.outcomes import daily_outcomes, outcome_checks
from monitoring_pipelines.core.performance import PERFORMANCE_COLUMNS
from monitoring_pipelines.core.stats import wilson_interval

Z95 = 1.959963984540054


def day_of(n: int) -> pd.DataFrame:
    ids = [f"r{i}" for i in range(n)]
    # both roles score every request: the outcome belongs to the request, counted once
    return pd.DataFrame({"request_id": ids * 2, "role": ["champion"] * n + ["shadow"] * n})


def by_metric(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("metric")


def test_binary_outcome_rate_with_wilson_interval_and_fraction() -> None:
    day = day_of(10)
    outcomes = pd.DataFrame(
        {
            "request_id": ["r0", "r1", "r2", "r3", "r0", "elsewhere"],
            "outcome": ["repaid"] * 6,
            "value": [0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
            "ts": pd.to_datetime(
                ["2026-06-02", "2026-06-02", "2026-06-02", "2026-06-02", "2026-06-05", "2026-06-02"]
            ),
        }
    )
    out = daily_outcomes(day, outcomes, ["repaid"])
    assert list(out.columns) == PERFORMANCE_COLUMNS
    row = by_metric(out).loc["outcome:repaid"]
    # r0's latest value is 1; 'elsewhere' is not one of the day's requests
    assert row["n"] == 4 and row["value"] == pytest.approx(3 / 4)
    low, high = wilson_interval(3, 4)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((float(low), float(high)))
    assert row["labelled_fraction"] == pytest.approx(4 / 10)
    assert not row["estimated"]


def test_continuous_outcome_uses_normal_interval() -> None:
    values = np.array([12.0, 30.5, 7.25, 19.0, 44.0])
    outcomes = pd.DataFrame({"request_id": [f"r{i}" for i in range(5)], "outcome": "spend", "value": values})
    row = by_metric(daily_outcomes(day_of(5), outcomes, ["spend"])).loc["outcome:spend"]
    half = Z95 * values.std(ddof=1) / math.sqrt(5)
    assert row["value"] == pytest.approx(values.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((values.mean() - half, values.mean() + half))


def test_configured_outcome_without_data_is_a_gap_not_a_missing_row() -> None:
    out = daily_outcomes(
        day_of(3), pd.DataFrame(columns=["request_id", "outcome", "value", "ts"]), ["renewed"]
    )
    row = by_metric(out).loc["outcome:renewed"]
    assert row["n"] == 0 and math.isnan(row["value"]) and row["labelled_fraction"] == 0.0
    empty_day = daily_outcomes(
        day_of(0), pd.DataFrame(columns=["request_id", "outcome", "value"]), ["renewed"]
    )
    assert math.isnan(by_metric(empty_day).loc["outcome:renewed", "labelled_fraction"])


def test_unconfigured_outcomes_are_ignored() -> None:
    outcomes = pd.DataFrame(
        {"request_id": ["r0", "r1"], "outcome": ["clicked", "other"], "value": [1.0, 1.0]}
    )
    out = daily_outcomes(day_of(2), outcomes, ["clicked"])
    assert list(out["metric"]) == ["outcome:clicked"] and out["n"].tolist() == [1]


def bands(mean: float, std: float, n_days: int = 28) -> pd.DataFrame:
    return pd.DataFrame(
        {"metric": ["outcome:repaid"], "estimated": [False], "mean": [mean], "std": [std], "n_days": [n_days]}
    )


def today(value: float, n: int, half: float = 0.01) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "metric": ["outcome:repaid"],
            "value": [value],
            "ci_low": [value - half],
            "ci_high": [value + half],
            "n": [n],
            "labelled_fraction": [0.8],
            "estimated": [False],
        }
    )


def test_outcome_outside_band_warns_either_side() -> None:
    thresholds = OutcomeThresholds()
    for value in (0.80, 0.98):
        [outcome] = outcome_checks(today(value, 2000), bands(0.9, 0.01), thresholds)
        assert outcome.check_name == "business_outcome" and not outcome.passed
        [finding] = outcome.findings
        assert finding.severity == "warning" and finding.subject == "outcome:repaid"
        assert finding.evidence["n"] == 2000 and finding.evidence["band"] == pytest.approx([0.87, 0.93])
        assert "outcome:repaid" in finding.message and "band" in finding.message and "CI" in finding.message


def test_outcome_inside_band_or_small_or_without_spread_passes() -> None:
    thresholds = OutcomeThresholds()
    assert outcome_checks(today(0.91, 2000), bands(0.9, 0.01), thresholds)[0].passed
    small = outcome_checks(today(0.5, 50), bands(0.9, 0.01), thresholds)[0]
    assert small.passed and "min\\_n" in small.metadata["summary"]  # markdown-escaped
    one_day = outcome_checks(today(0.5, 2000), bands(0.9, float("nan"), n_days=1), thresholds)[0]
    assert one_day.passed and "spread" in one_day.metadata["summary"]
    assert outcome_checks(today(0.5, 2000), pd.DataFrame(), thresholds)[0].passed
