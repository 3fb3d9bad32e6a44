"""Estimates on-call can trust: a day whose scores left the reference's range gets untrusted estimates
that neither pass nor fail the performance checks, and a metric without a reference band says so
instead of passing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from monitoring_pipelines.config import PerformanceThresholds
from monitoring_pipelines.core.baselines import summarize_days
from monitoring_pipelines.core.estimation import MAX_OUTSIDE_SUPPORT, SUPPORT_TAIL, ScoreSupport
from monitoring_pipelines.core.performance import daily_performance, estimation_inputs, performance_checks
from monitoring_pipelines.core.profiles import SCORE_FEATURE, ReferenceProfile, profile_numeric

NO_LABELS = pd.DataFrame(columns=["request_id", "label", "label_ts"])


def logits(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(-0.8, 1.2, n)


def scored_day(z: np.ndarray, score: np.ndarray, rng: np.random.Generator, labelled: bool = True):
    """A day of the model: labels drawn from the true P(y = 1) = sigmoid(z), decisions at 0.5."""
    ids = [f"r{i}" for i in range(z.size)]
    day = pd.DataFrame({"request_id": ids, "score": score, "prediction": (score >= 0.5).astype(int)})
    if not labelled:
        return day, NO_LABELS
    y = (rng.random(z.size) < expit(z)).astype(int)
    return day, pd.DataFrame(
        {"request_id": ids, "label": y, "label_ts": pd.Timestamp("2026-06-20", tz="UTC")}
    )


@pytest.fixture(scope="module")
def reference() -> tuple[ReferenceProfile, pd.DataFrame]:
    """A calibrated model's reference: its score profile and the bands of 20 labelled days."""
    rng = np.random.default_rng(1)
    days, scores = [], []
    for _ in range(20):
        z = logits(2000, rng)
        scores.append(expit(z))
        days.append(daily_performance(*scored_day(z, expit(z), rng)))
    score_profile = profile_numeric(SCORE_FEATURE, "score", np.concatenate(scores), bins=10)
    profile = ReferenceProfile("m", "v1", None, None, {SCORE_FEATURE: score_profile}, 40_000, 10, 20)
    return profile, summarize_days(pd.concat(days, ignore_index=True), ["metric", "estimated"])


def judge(day: pd.DataFrame, labels: pd.DataFrame, reference, **kwargs):
    profile, bands = reference
    calibration, support = estimation_inputs(profile)
    today = daily_performance(day, labels, calibration=calibration, support=support)
    return today, performance_checks(today, bands, PerformanceThresholds(**kwargs))


def test_the_support_is_the_reference_score_quantile_range() -> None:
    rng = np.random.default_rng(2)
    exact = np.round(expit(logits(50_000, rng)), 3)  # at most 1001 values: the sketch is the data
    prof = profile_numeric(SCORE_FEATURE, "score", exact, bins=10)
    assert prof.sketch.exact
    support = ScoreSupport.from_weighted(prof.sketch.values, prof.sketch.counts)
    assert support.low == np.quantile(exact, SUPPORT_TAIL, method="inverted_cdf")
    assert support.high == np.quantile(exact, 1 - SUPPORT_TAIL, method="inverted_cdf")
    continuous = expit(logits(200_000, rng))  # the sketch summarises 200 000 values in 4096 points
    prof = profile_numeric(SCORE_FEATURE, "score", continuous, bins=10)
    support = ScoreSupport.from_weighted(prof.sketch.values, prof.sketch.counts)
    assert support.outside_share(continuous) <= 2 * SUPPORT_TAIL + 2 / 4096
    assert ScoreSupport.from_weighted(np.empty(0), np.empty(0)) is None


def test_an_ordinary_day_is_trusted_and_judged(reference) -> None:
    rng = np.random.default_rng(3)
    z = logits(2000, rng)
    today, outcomes = judge(*scored_day(z, expit(z), rng, labelled=False), reference)
    estimated = today[today["estimated"]]
    assert estimated["trusted"].all() and today.attrs["outside_support"] < 0.01
    assert [o.status for o in outcomes] == ["passed", "passed"]


@pytest.mark.parametrize(
    "bug",
    [lambda z: expit(10 * z), lambda z: np.full(z.size, 0.001)],
    ids=["scores_pushed_to_0_and_1", "scores_below_the_range"],
)
def test_an_untrusted_estimate_neither_passes_nor_fails_the_checks(reference, bug) -> None:
    """A unit bug moves the scores out of the reference's range: the estimate reads as a near-perfect
    model (AUC 0.99) or a broken one. Either way the checks do not decide on it: the day is unknown."""
    rng = np.random.default_rng(4)
    z = logits(2000, rng)
    today, outcomes = judge(*scored_day(z, bug(z), rng, labelled=False), reference)
    estimated = today[today["estimated"]]
    assert not estimated["trusted"].any() and today.attrs["outside_support"] > MAX_OUTSIDE_SUPPORT
    assert estimated["estimate_note"].str.startswith("untrusted: ").all()
    assert "outside the reference's score range" in estimated["estimate_note"].iloc[0]
    degradation, critical = outcomes
    for outcome in outcomes:
        assert outcome.status == "unknown" and outcome.unknown.startswith("not judged: ")
        assert {f.severity for f in outcome.findings} == {"unknown"}
    assert [f.subject for f in degradation.findings] == ["model"]  # the subject degradations alert on
    assert [f.subject for f in critical.findings] == ["auc"]
    assert "unknown: untrusted estimate" in degradation.metadata["summary"]
    # without the trust flag the same rows pass or fail the day: what on-call used to get
    bare = performance_checks(today.drop(columns=["trusted"]), reference[1], PerformanceThresholds())
    assert all(o.status in ("passed", "failed") for o in bare)


def test_the_day_looking_better_is_what_untrusted_estimates_used_to_say(reference) -> None:
    rng = np.random.default_rng(5)
    z = logits(2000, rng)
    today, outcomes = judge(*scored_day(z, expit(10 * z), rng, labelled=False), reference)
    auc = today[today["estimated"]].set_index("metric").loc["auc", "value"]
    band = reference[1].set_index(["metric", "estimated"]).loc[("auc", True)]
    assert auc > 0.97 and auc > band["mean"] + 5 * band["std"]  # "the model improved"
    assert outcomes[0].status == "unknown"


def test_labels_still_fail_a_day_whose_estimate_is_untrusted(reference) -> None:
    """Measured rows are trusted: enough labels showing a real drop fail the day whatever the estimate."""
    rng = np.random.default_rng(6)
    z = logits(2000, rng)
    day, labels = scored_day(z, expit(10 * z), rng)
    labels["label"] = np.where(rng.random(len(labels)) < 0.3, 1 - labels["label"], labels["label"])
    today, outcomes = judge(day, labels, reference)
    assert not today[today["estimated"]]["trusted"].any()
    assert today[~today["estimated"]]["trusted"].isna().all()
    degradation = outcomes[0]
    assert degradation.status == "failed"
    auc = next(f for f in degradation.findings if f.metric == "auc")
    assert auc.severity == "warning" and auc.evidence["estimated"] is False


def test_scores_collapsing_inside_the_reference_range_stay_trusted_and_are_flagged(reference) -> None:
    """What CBPE is for: a shift of the scores towards 0.5 is not a reason to distrust the estimate."""
    rng = np.random.default_rng(7)
    z = logits(2000, rng)
    today, outcomes = judge(*scored_day(z, expit(0.4 * z), rng, labelled=False), reference)
    assert today[today["estimated"]]["trusted"].all()
    degraded = {f.metric for f in outcomes[0].findings if f.severity == "warning"}
    assert {"auc", "accuracy"} <= degraded and outcomes[0].status == "failed"


def test_labels_without_a_measured_band_warn_instead_of_passing(reference) -> None:
    """The reference was built before its labels landed: it has estimated bands only. A day with enough
    labels cannot be judged on them; the check says so (its own subject) and judges the estimates."""
    profile, bands = reference
    estimated_only = bands[bands["estimated"].astype(bool)]
    rng = np.random.default_rng(8)
    z = logits(2000, rng)
    calibration, support = estimation_inputs(profile)
    today = daily_performance(*scored_day(z, expit(z), rng), calibration=calibration, support=support)
    degradation, critical = performance_checks(today, estimated_only, PerformanceThresholds())
    assert degradation.status == "failed"
    [finding] = degradation.findings
    assert (finding.subject, finding.severity) == ("reference_band", "warning")
    assert set(finding.evidence["no_measured_band"]) >= {"auc", "accuracy", "brier", "ece"}
    assert "before the reference window's labels landed" in finding.message
    assert "estimated (no measured reference band" in degradation.metadata["summary"]
    assert critical.status == "passed"
    # with the measured bands the same day is judged on its labels and passes
    assert [o.status for o in performance_checks(today, bands, PerformanceThresholds())] == ["passed"] * 2


def test_a_profile_without_calibration_or_score_gives_raw_and_unchecked_estimates() -> None:
    empty = ReferenceProfile("m", "v0", None, None, {}, 0, 10, 20)
    calibration, support = estimation_inputs(empty)
    assert not calibration.applied and support is None
    assert "carries no calibration" in calibration.note
