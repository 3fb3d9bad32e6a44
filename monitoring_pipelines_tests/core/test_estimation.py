"""CBPE: on calibrated scores the estimates equal the average realized metrics, and the intervals
cover the realized metric about as often as they claim."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring_pipelines.core.estimation import ESTIMATED_METRICS, METRIC_COLUMNS, estimate_metrics
from monitoring_pipelines.core.performance import binary_metrics


def realized_metrics(y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of many label draws at once (rows of `y`), written independently of the package."""
    y = y.astype(float)
    positive = pred == 1
    tp = y[:, positive].sum(axis=1)
    fn = y[:, ~positive].sum(axis=1)
    fp = positive.sum() - tp
    n1 = y.sum(axis=1)
    ranks = stats.rankdata(score)
    return {
        "accuracy": (y == pred).mean(axis=1),
        "precision": tp / positive.sum(),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "auc": (y @ ranks - n1 * (n1 + 1) / 2) / (n1 * (score.size - n1)),
        "log_loss": -(y * np.log(score) + (1 - y) * np.log1p(-score)).mean(axis=1),
        "brier": ((score - y) ** 2).mean(axis=1),
        "positive_rate": np.full(y.shape[0], positive.mean()),
    }


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_cbpe_recovers_realized_metrics_on_calibrated_scores(threshold: float) -> None:
    rng = np.random.default_rng(7)
    n, draws = 2000, 400
    score = rng.beta(2.0, 3.0, size=n)
    pred = (score >= threshold).astype(int)
    y = rng.random((draws, n)) < score  # each row: one day's labels if the scores are calibrated
    realized = realized_metrics(y, score, pred)
    estimate = estimate_metrics(score, pred).set_index("metric")
    for metric, values in realized.items():
        est = estimate.loc[metric]
        spread = values.std()
        assert abs(values.mean() - est["value"]) <= 0.2 * spread + 1e-12, metric
        if metric == "positive_rate":
            continue  # known without labels; its interval is the Wilson sampling interval
        covered = np.mean((values >= est["ci_low"]) & (values <= est["ci_high"]))
        assert 0.91 <= covered <= 0.985, (metric, covered)
    # the independent realized metrics agree with binary_metrics on one draw
    one = binary_metrics(y[0].astype(int), score, pred).set_index("metric")
    for metric, values in realized.items():
        assert one.loc[metric, "value"] == pytest.approx(values[0], abs=1e-12), metric


def test_estimated_auc_equals_its_pairwise_definition() -> None:
    """E[U] / E[n1 n0] over distinct pairs: sum_{i!=j} s_i (1 - s_j) H(s_i - s_j) / sum_{i!=j} s_i (1 - s_j)."""
    rng = np.random.default_rng(1)
    s = np.round(rng.random(60), 1)  # with ties
    weight = s[:, None] * (1 - s[None, :])
    step = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    np.fill_diagonal(weight, 0.0)
    expected = (weight * step).sum() / weight.sum()
    est = estimate_metrics(s, (s >= 0.5).astype(int)).set_index("metric")
    assert est.loc["auc", "value"] == pytest.approx(expected, abs=1e-14)


def test_expected_confusion_counts_small_case() -> None:
    s = np.array([0.9, 0.6, 0.3, 0.2])
    pred = np.array([1, 1, 0, 0])
    est = estimate_metrics(s, pred).set_index("metric")
    e_tp, e_fn = 1.5, 0.5
    assert est.loc["accuracy", "value"] == pytest.approx((1.5 + 1.5) / 4)
    assert est.loc["precision", "value"] == pytest.approx(e_tp / 2)
    assert est.loc["recall", "value"] == pytest.approx(e_tp / (e_tp + e_fn))
    assert est.loc["f1", "value"] == pytest.approx(2 * e_tp / (e_tp + 2 + e_fn))
    assert est.loc["brier", "value"] == pytest.approx(np.mean(s * (1 - s)))
    assert est.loc["log_loss", "value"] == pytest.approx(np.mean(stats.entropy(np.vstack([s, 1 - s]))))
    assert est.loc["positive_rate", "value"] == pytest.approx(0.5)


def test_less_separable_scores_lower_the_estimates() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=3000)
    sharp, flat = 1 / (1 + np.exp(-2.0 * x)), 1 / (1 + np.exp(-0.5 * x))
    a = estimate_metrics(sharp, (sharp >= 0.5).astype(int)).set_index("metric")["value"]
    b = estimate_metrics(flat, (flat >= 0.5).astype(int)).set_index("metric")["value"]
    assert b["auc"] < a["auc"] - 0.1 and b["accuracy"] < a["accuracy"] and b["log_loss"] > a["log_loss"]


def test_edge_cases() -> None:
    empty = estimate_metrics(np.array([]), np.array([]))
    assert list(empty.columns) == METRIC_COLUMNS and list(empty["metric"]) == list(ESTIMATED_METRICS)
    assert empty["value"].isna().all() and (empty["n"] == 0).all()

    constant = estimate_metrics(np.full(100, 0.3), np.zeros(100)).set_index("metric")
    assert constant.loc["auc", "value"] == pytest.approx(0.5)
    assert math.isnan(constant.loc["precision", "value"])  # no predicted positives
    assert constant.loc["auc", "ci_high"] - constant.loc["auc", "ci_low"] == pytest.approx(0.0, abs=1e-9)

    certain = estimate_metrics(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1])).set_index("metric")
    assert certain.loc["accuracy", "value"] == 1.0 and certain.loc["log_loss", "value"] < 1e-12

    dirty = estimate_metrics(pd.Series([0.2, np.nan, 0.8, 0.6]), pd.Series([0, 1, np.nan, 1]))
    assert (dirty["n"] == 2).all()


def test_estimation_does_not_import_performance() -> None:
    """performance imports estimation; the reverse would be an import cycle."""
    code = (
        "import sys, monitoring_pipelines.core.estimation; "
        "sys.exit('monitoring_pipelines.core.performance' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
