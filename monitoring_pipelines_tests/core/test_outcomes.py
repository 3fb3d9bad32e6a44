"""Business outcomes joined by request_id, stored as `outcome:<name>` rows, checked against their band;
the snapshot's SQL totals against the pandas ones."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import ModelConfig, OutcomeThresholds
from monitoring_pipelines.core.outcomes import (
    TOTAL_COLUMNS,
    daily_outcomes,
    outcome_checks,
    outcome_rows,
    outcome_totals,
)
from monitoring_pipelines.core.performance import PERFORMANCE_COLUMNS
from monitoring_pipelines.core.stats import wilson_interval
from monitoring_pipelines.schema import CHAMPION, OK
from monitoring_pipelines.storage.snapshot import Snapshot

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


# --------------------------------------------------------------------------- the snapshot's SQL totals

START = dt.date(2026, 6, 1)
NAMES = ["repaid", "spend", "renewed"]
MODEL = ModelConfig(
    name="outcomes_model",
    features={"numeric": ["x"]},
    reference={"start": "2026-05-01", "end": "2026-05-28"},
    outcomes=NAMES,
)


def logged_day() -> pd.DataFrame:
    """Raw rows: champion `ok` rows of r0..r59 (r0 logged twice), shadow rows of r0..r39 and of the
    shadow-only r100..r109, failed champion requests r200..r209."""
    parts = [
        ("champion", "ok", [f"r{i}" for i in range(60)] + ["r0"]),
        ("shadow", "ok", [f"r{i}" for i in range(40)] + [f"r{i}" for i in range(100, 110)]),
        ("champion", "error", [f"r{i}" for i in range(200, 210)]),
    ]
    frames = [
        pd.DataFrame({"request_id": ids, "role": role, "status": status}) for role, status, ids in parts
    ]
    day = pd.concat(frames, ignore_index=True)
    n = len(day)
    error = (day["status"] == "error").to_numpy()
    return day.assign(
        prediction_id=[f"p{i}" for i in range(n)],
        model_name=MODEL.name,
        model_version="v1",
        ts=pd.Timestamp(START, tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"),
        score=np.where(error, np.nan, 0.3),
        prediction=np.where(error, np.nan, 0.0),
        x=1.0,
    )


def adversarial_outcomes(seed: int) -> pd.DataFrame:
    """Outcomes with corrections (the latest ts wins), a later non-finite value (dropped, so the earlier
    finite one stands), values without ts (older than any dated one), outcomes of shadow-only and failed
    requests and of requests the day does not have, an outcome name that is not configured, and a
    continuous outcome. No two values of one request and name share a ts."""
    rng = np.random.default_rng(seed)
    stamp = pd.Timestamp("2026-06-05", tz="UTC")
    rows = []
    ids = [f"r{i}" for i in (*range(60), *range(100, 110), *range(200, 210))] + ["elsewhere", "gone"]
    for k, rid in enumerate(ids):
        for name in ("repaid", "spend", "clicked"):
            if rng.random() < 0.3:
                continue
            for j in range(rng.choice([1, 1, 2, 3])):
                if name == "spend":
                    value = float(np.round(rng.gamma(2.0, 20.0), 2))
                else:
                    value = float(rng.integers(0, 2))
                if j and rng.random() < 0.2:
                    value = rng.choice([np.inf, -np.inf, np.nan])
                when = pd.NaT if j == 0 and rng.random() < 0.2 else stamp + pd.Timedelta(minutes=10 * k + j)
                rows.append((rid, name, value, when))
    frame = pd.DataFrame(rows, columns=["request_id", "outcome", "value", "ts"])
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def sql_totals(day: pd.DataFrame, outcomes: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, int]:
    snap, validation = Snapshot.from_frame(MODEL, day, START)
    with snap:
        assert validation.quarantined_rows == 0
        snap.set_outcomes(outcomes)
        return snap.outcome_totals(names)


def champion_rows(day: pd.DataFrame) -> pd.DataFrame:
    """The rows the pipeline's outcomes are counted over: the champion's served (`ok`) requests."""
    return day[(day["role"] == CHAMPION) & (day["status"] == OK)]


def by_outcome(totals: pd.DataFrame) -> pd.DataFrame:
    return totals.sort_values("outcome").reset_index(drop=True).astype({"n": "int64", "binary": bool})


@pytest.mark.parametrize("seed", range(5))
def test_snapshot_outcome_totals_equal_the_pandas_totals(seed: int) -> None:
    day, outcomes = logged_day(), adversarial_outcomes(seed)
    got, requests = sql_totals(day, outcomes, NAMES)
    expected, expected_requests = outcome_totals(champion_rows(day), outcomes, NAMES)
    assert requests == expected_requests == 60  # r0 once; shadow-only and failed requests are not served
    assert list(got.columns) == TOTAL_COLUMNS
    pd.testing.assert_frame_equal(by_outcome(got), by_outcome(expected), check_dtype=False, rtol=1e-12)
    assert set(got["outcome"]) == {"repaid", "spend"}  # 'renewed' has no data, 'clicked' is not asked for
    pd.testing.assert_frame_equal(
        outcome_rows(got, requests, NAMES), outcome_rows(expected, expected_requests, NAMES), rtol=1e-12
    )
    assert by_outcome(got)["binary"].tolist() == [True, False]


def test_snapshot_outcome_totals_without_outcomes_or_names() -> None:
    day = logged_day()
    snap, _ = Snapshot.from_frame(MODEL, day, START)
    with snap:
        totals, requests = snap.outcome_totals(NAMES)  # no outcomes attached yet
        assert totals.empty and requests == 60
        snap.set_outcomes(adversarial_outcomes(0))
        totals, requests = snap.outcome_totals([])
        assert totals.empty and requests == 60
    rows = outcome_rows(totals, requests, NAMES)
    pd.testing.assert_frame_equal(rows, daily_outcomes(champion_rows(day), None, NAMES))
    assert rows["n"].tolist() == [0, 0, 0] and rows["labelled_fraction"].tolist() == [0.0, 0.0, 0.0]


def test_snapshot_outcome_ties_resolve_like_the_pandas_totals() -> None:
    """Two values of one request and outcome recorded at the same ts (a correction written in the same
    batch): the pandas totals keep the later row, as for every other duplicate; the SQL must agree."""
    day = logged_day()
    stamp = pd.Timestamp("2026-06-05", tz="UTC")
    outcomes = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2", "r2", "r3", "r3"],
            "outcome": "repaid",
            "value": [0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            "ts": [stamp, stamp, pd.NaT, pd.NaT, stamp, stamp],
        }
    )
    got, _ = sql_totals(day, outcomes, NAMES)
    expected, _ = outcome_totals(champion_rows(day), outcomes, NAMES)
    assert expected["total"].tolist() == [2.0]  # r1 -> 1, r2 -> 1, r3 -> 0
    pd.testing.assert_frame_equal(by_outcome(got), by_outcome(expected), check_dtype=False)


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
        k_28 = 3.3615  # t_27 at Φ(3) times sqrt(1 + 1/28): the band of 28 reference days
        band = [0.9 - k_28 * 0.01, 0.9 + k_28 * 0.01]
        assert finding.evidence["n"] == 2000 and finding.evidence["band"] == pytest.approx(band, abs=1e-5)
        assert "outcome:repaid" in finding.message and "band" in finding.message and "CI" in finding.message


def test_outcome_inside_band_or_small_or_without_spread_passes() -> None:
    thresholds = OutcomeThresholds()
    assert outcome_checks(today(0.91, 2000), bands(0.9, 0.01), thresholds)[0].passed
    small = outcome_checks(today(0.5, 50), bands(0.9, 0.01), thresholds)[0]
    assert small.passed and "min\\_n" in small.metadata["summary"]  # markdown-escaped
    one_day = outcome_checks(today(0.5, 2000), bands(0.9, float("nan"), n_days=1), thresholds)[0]
    assert one_day.passed and "spread" in one_day.metadata["summary"]
    assert outcome_checks(today(0.5, 2000), pd.DataFrame(), thresholds)[0].passed
