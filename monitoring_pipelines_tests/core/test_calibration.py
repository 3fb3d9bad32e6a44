"""CBPE on miscalibrated scores: the reference's labels calibrate the scores first (isotonic regression,
cross-fitted over reference days), and the estimates then land on the realized metrics, which the raw
scores miss by 0.1 AUC and more. Realized metrics are scikit-learn's."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from monitoring_pipelines.core.estimation import (
    MIN_CALIBRATION_LABELS,
    Calibration,
    estimate_metrics,
    fit_calibration,
    reference_calibration,
)
from monitoring_pipelines.core.performance import daily_performance
from monitoring_pipelines_tests.core.test_estimation import realized_metrics

START = dt.date(2026, 5, 1)
THRESHOLD = 0.3  # score >= THRESHOLD -> decision 1
TOLERANCE = 0.025  # |estimate - realized| after calibration (measured: <= 0.019 over 30 seeds)
RAW_ERROR = 0.07  # the raw scores' estimates miss by more than this


def miscalibrated(n: int, k: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True P(y = 1) = sigmoid(z); the model outputs sigmoid(k·z): overconfident for k > 1, under for k < 1."""
    z = rng.normal(-0.8, 1.6, n)
    y = (rng.random(n) < expit(z)).astype(int)
    return expit(k * z), y


def reference_days(k: float, rng: np.random.Generator, days: int = 10, rows: int = 2000) -> dict:
    out = {}
    for i in range(days):
        score, y = miscalibrated(rows, k, rng)
        out[START + dt.timedelta(days=i)] = pd.DataFrame({"score": score, "label": y.astype(float)})
    return out


def realized(y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "auc": roc_auc_score(y, score),
        "precision": precision_score(y, pred),
        "recall": recall_score(y, pred),
        "accuracy": accuracy_score(y, pred),
        "f1": f1_score(y, pred),
    }


@pytest.mark.parametrize(
    ("k", "raw_misses"),
    [
        (2.5, ["auc", "precision", "recall", "accuracy", "f1"]),  # overconfident: everything reads too good
        (0.4, ["auc", "recall"]),  # underconfident: AUC reads 0.67 for 0.83
    ],
    ids=["overconfident", "underconfident"],
)
def test_calibrated_estimates_land_on_the_realized_metrics_of_miscalibrated_scores(
    k: float, raw_misses: list[str]
) -> None:
    rng = np.random.default_rng(16)
    calibration = reference_calibration(reference_days(k, rng)).calibration
    assert calibration.applied and "isotonic on 20,000 reference labels" in calibration.note

    score, y = miscalibrated(20_000, k, rng)  # a live day; its labels arrive later
    pred = (score >= THRESHOLD).astype(int)
    day = pd.DataFrame({"score": score, "prediction": pred})
    truth = realized(y, score, pred)

    calibrated = daily_performance(day, calibration=calibration).set_index("metric")
    raw = daily_performance(day).set_index("metric")
    for metric, value in truth.items():
        error = calibrated.loc[metric, "value"] - value
        assert abs(error) <= TOLERANCE, (metric, value, calibrated.loc[metric, "value"])
    for metric in raw_misses:
        assert abs(raw.loc[metric, "value"] - truth[metric]) > RAW_ERROR, (metric, truth[metric])
    assert calibrated["estimate_note"].str.contains("isotonic").all()
    assert raw["estimate_note"].str.contains("raw scores").all()


def test_isotonic_calibration_equals_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    score = np.round(rng.random(4000), 3)  # ties
    y = (rng.random(4000) < score**2).astype(int)
    ours = fit_calibration(score, y)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(score, y)
    grid = np.linspace(0.0, 1.0, 5001)
    np.testing.assert_allclose(ours.apply(grid), theirs.predict(grid), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.x, theirs.X_thresholds_, rtol=0, atol=0)
    assert ours.n_labels == 4000 and ours.n_positive == int(y.sum())


def test_too_few_labels_leave_the_scores_raw_and_say_so() -> None:
    rng = np.random.default_rng(4)
    days = reference_days(2.5, rng, days=3, rows=(MIN_CALIBRATION_LABELS - 1) // 3)
    for frame in days.values():
        frame.loc[frame.index[::2], "label"] = np.nan  # unlabelled rows do not count
    result = reference_calibration(days)
    assert not result.calibration.applied and result.by_day == {}
    assert "calibrating needs 500" in result.calibration.note
    score, _ = miscalibrated(1000, 2.5, rng)
    day = pd.DataFrame({"score": score, "prediction": (score >= THRESHOLD).astype(int)})
    out = daily_performance(day, calibration=result.calibration)
    assert out["estimate_note"].str.startswith("raw scores: the reference has").all()
    pd.testing.assert_frame_equal(
        out.drop(columns="estimate_note"), daily_performance(day).drop(columns="estimate_note")
    )


def test_labels_of_a_single_day_cannot_be_cross_fitted() -> None:
    days = reference_days(2.5, np.random.default_rng(5), days=2)
    first = next(iter(days))
    days[first] = days[first].assign(label=np.nan)
    result = reference_calibration(days)
    assert not result.calibration.applied and "all of one day" in result.calibration.note


def test_calibrated_scores_are_left_raw() -> None:
    """Isotonic regression on well calibrated scores only adds noise: the held-out Brier score says so."""
    result = reference_calibration(reference_days(1.0, np.random.default_rng(6)))
    assert not result.calibration.applied
    assert "does not help" in result.calibration.note and "held-out Brier" in result.calibration.note


def test_reference_days_are_estimated_with_maps_fitted_without_them() -> None:
    days = reference_days(2.5, np.random.default_rng(7), days=7)
    quiet = START + dt.timedelta(days=30)
    days[quiet] = days[START].assign(label=np.nan)  # a reference day whose labels never came
    result = reference_calibration(days, folds=3)
    labelled = list(days)[:7]
    per_fold = [sum(len(days[d]) for d in labelled[f::3]) for f in range(3)]
    for i, day in enumerate(labelled):
        fitted = result.for_day(day)
        assert fitted.applied and fitted.n_labels == 14_000 - per_fold[i % 3]  # its fold's labels left out
        assert [result.for_day(other) is fitted for other in labelled] == [j % 3 == i % 3 for j in range(7)]
    assert (
        result.for_day(quiet) is result.calibration
    )  # no label of it was used: the full map is out of sample
    assert result.calibration.n_labels == 14_000


# --------------------------------------------------------------------------- the estimator with p != score


def squared() -> Calibration:
    """A known monotone map, P(y = 1) = score², so the probabilities differ from the scores."""
    grid = np.linspace(0.0, 1.0, 201)
    return Calibration(grid, grid**2, 0, 0, "test map")


def test_calibrated_auc_equals_its_pairwise_definition() -> None:
    """Σ_{i≠j} p_i (1 - p_j) H(s_i - s_j) / Σ_{i≠j} p_i (1 - p_j): labels from p, ranking by the score s."""
    rng = np.random.default_rng(8)
    s = np.round(rng.random(80), 1)  # ties
    p = squared().apply(s)
    weight = p[:, None] * (1 - p[None, :])
    step = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    np.fill_diagonal(weight, 0.0)
    expected = (weight * step).sum() / weight.sum()
    est = estimate_metrics(s, (s >= 0.5).astype(int), calibration=squared()).set_index("metric")
    assert est.loc["auc", "value"] == pytest.approx(expected, abs=1e-14)


def test_calibrated_expectations_equal_enumerating_every_label_vector() -> None:
    """Accuracy, precision, log loss and Brier are means of per-row terms: their expectation over all 2^n
    label vectors, weighted by their probability under p = calibration(s), is exact. Losses are the scores'."""
    s = np.array([0.2, 0.3, 0.6, 0.9, 0.75])
    pred = np.array([0, 0, 1, 1, 1])
    calibration = Calibration(np.sort(s), np.array([0.05, 0.2, 0.45, 0.6, 0.85]), 0, 0, "")
    p = calibration.apply(s)
    expected = dict.fromkeys(("accuracy", "precision", "log_loss", "brier"), 0.0)
    for labels in itertools.product((0, 1), repeat=s.size):
        y = np.array(labels)
        weight = np.prod(np.where(y == 1, p, 1 - p))
        expected["accuracy"] += weight * np.mean(y == pred)
        expected["precision"] += weight * y[pred == 1].mean()
        expected["log_loss"] += weight * -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))
        expected["brier"] += weight * np.mean((s - y) ** 2)
    est = estimate_metrics(s, pred, calibration=calibration).set_index("metric")
    for metric, value in expected.items():
        assert est.loc[metric, "value"] == pytest.approx(value, abs=1e-12), metric


def test_calibrated_cbpe_recovers_realized_metrics_and_covers_them() -> None:
    """As the calibrated-scores test of test_estimation, with labels drawn from p = score² instead of score:
    the estimates equal the mean realized metric of the scores and the intervals cover it ~95 % of the time."""
    rng = np.random.default_rng(9)
    n, draws = 2000, 400
    score = rng.beta(3.0, 2.0, size=n)
    pred = (score >= 0.6).astype(int)
    y = rng.random((draws, n)) < squared().apply(score)
    values = realized_metrics(y, score, pred)
    estimate = estimate_metrics(score, pred, calibration=squared()).set_index("metric")
    for metric, draws_of_metric in values.items():
        est = estimate.loc[metric]
        assert abs(draws_of_metric.mean() - est["value"]) <= 0.2 * draws_of_metric.std() + 1e-12, metric
        if metric == "positive_rate":
            continue
        covered = np.mean((draws_of_metric >= est["ci_low"]) & (draws_of_metric <= est["ci_high"]))
        assert 0.91 <= covered <= 0.985, (metric, covered)
