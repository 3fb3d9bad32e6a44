"""Multiclass metrics against scikit-learn, the long-form confusion matrix, and one-vs-rest CBPE."""

import numpy as np
import pytest
from sklearn import metrics as skm

from monitoring_pipelines.core.multiclass import (
    confusion_long,
    estimate_multiclass_metrics,
    fit_multiclass_calibration,
    multiclass_metric_names,
    multiclass_metrics,
)

CLASSES = ["billing", "tech", "sales", "other"]


def _world(n: int, seed: int, sharpen: float = 1.0):
    """True class probabilities, labels drawn from them, and the model's logged probabilities: the true ones
    raised to `sharpen` and renormalized (> 1: an over-confident model)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(CLASSES))) * 1.5 + np.array([0.8, 0.3, 0.0, -0.5])
    true = np.exp(logits)
    true /= true.sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(true, axis=1)).sum(axis=1)
    logged = true**sharpen
    logged /= logged.sum(axis=1, keepdims=True)
    names = np.asarray(CLASSES, dtype=object)
    return names[labels], names[logged.argmax(axis=1)], logged


def test_metrics_match_sklearn():
    y, pred, proba = _world(8_000, 0)
    got = multiclass_metrics(y, pred, CLASSES, proba).set_index("metric")
    assert list(got.index) == multiclass_metric_names(CLASSES)
    assert got.loc["accuracy", "value"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got.loc["macro_f1", "value"] == pytest.approx(
        skm.f1_score(y, pred, average="macro", labels=CLASSES)
    )
    assert got.loc["weighted_f1", "value"] == pytest.approx(
        skm.f1_score(y, pred, average="weighted", labels=CLASSES)
    )
    order = np.argsort(CLASSES)  # scikit-learn takes the probability columns in sorted label order
    assert got.loc["log_loss", "value"] == pytest.approx(
        skm.log_loss(y, proba[:, order], labels=sorted(CLASSES))
    )
    precision, recall, _, support = skm.precision_recall_fscore_support(y, pred, labels=CLASSES)
    for i, c in enumerate(CLASSES):
        assert got.loc[f"precision:{c}", "value"] == pytest.approx(precision[i])
        assert got.loc[f"recall:{c}", "value"] == pytest.approx(recall[i])
        assert got.loc[f"recall:{c}", "n"] == support[i]
    assert (got["ci_low"] < got["value"]).all() and (got["value"] < got["ci_high"]).all()


def test_unseen_classes_are_counted_not_scored():
    y, pred, _ = _world(1_000, 1)
    y[:7] = "refunds"
    pred[10:13] = None
    got = multiclass_metrics(y, pred, CLASSES)
    assert got.attrs == {"unseen_observed": 7, "unseen_predicted": 3}
    assert got.set_index("metric").loc["accuracy", "n"] == 990
    assert "log_loss" not in set(got["metric"])


def test_confusion_long_equals_sklearn_and_lists_every_pair():
    y, pred, _ = _world(3_000, 2)
    long = confusion_long(y, pred, CLASSES)
    assert len(long) == len(CLASSES) ** 2
    wide = long.pivot(index="observed_class", columns="predicted_class", values="n").loc[CLASSES, CLASSES]
    np.testing.assert_array_equal(wide.to_numpy(), skm.confusion_matrix(y, pred, labels=CLASSES))


def test_macro_f1_interval_covers_the_population_value():
    y_pop, pred_pop, _ = _world(300_000, 3)
    truth = skm.f1_score(y_pop, pred_pop, average="macro", labels=CLASSES)
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(150):
        idx = rng.integers(0, y_pop.size, 1_000)
        row = multiclass_metrics(y_pop[idx], pred_pop[idx], CLASSES).set_index("metric").loc["macro_f1"]
        hits += row.ci_low <= truth <= row.ci_high
    assert 0.9 <= hits / 150 <= 0.99


@pytest.mark.parametrize("n", [5_000, 60_000])  # exact label draws, and their normal approximation
def test_calibrated_cbpe_lands_on_the_realized_metrics(n):
    """An over-confident model: raw probabilities promise more accuracy than it has; after one-vs-rest
    calibration on a reference the estimate's interval holds the realized accuracy and macro F1."""
    y_ref, pred_ref, proba_ref = _world(40_000, 5, sharpen=2.5)
    calibration = fit_multiclass_calibration(proba_ref, y_ref, pred_ref, CLASSES)
    assert "4 of 4 predicted classes" in calibration.note
    y, pred, proba = _world(n, 9, sharpen=2.5)
    realized = multiclass_metrics(y, pred, CLASSES).set_index("metric")
    raw = estimate_multiclass_metrics(proba, pred, CLASSES).set_index("metric")
    est = estimate_multiclass_metrics(proba, pred, CLASSES, calibration).set_index("metric")
    assert raw.loc["accuracy", "ci_low"] > realized.loc["accuracy", "value"]  # over-confident, uncalibrated
    # The oracle: the same metrics expected from the true class probabilities (sharpen 1, same rows).
    oracle = estimate_multiclass_metrics(_world(n, 9)[2], pred, CLASSES).set_index("metric")
    for metric in ("accuracy", "macro_f1", "weighted_f1", *(f"precision:{c}" for c in CLASSES)):
        assert est.loc[metric, "value"] == pytest.approx(oracle.loc[metric, "value"], abs=0.006), metric
        assert est.loc[metric, "ci_low"] <= realized.loc[metric, "value"] <= est.loc[metric, "ci_high"], (
            metric
        )
    for c in CLASSES:  # recall rests on how the rest of a row's probability is shared: close, not exact
        assert est.loc[f"recall:{c}", "value"] == pytest.approx(oracle.loc[f"recall:{c}", "value"], abs=0.01)
    again = type(calibration).from_json(calibration.to_json())
    assert estimate_multiclass_metrics(proba, pred, CLASSES, again).equals(est.reset_index())


def test_class_indices_are_taken_as_they_are_and_match_the_names() -> None:
    """The snapshot holds class indices; the metrics take them without a round trip through the names."""
    import pandas as pd

    from monitoring_pipelines.core.multiclass import encode, multiclass_metrics

    classes = ["a", "b", "c"]
    assert encode(np.array([0, 1.0, 2, 3, -1, np.nan, 1.5]), classes).tolist() == [0, 1, 2, -1, -1, -1, -1]
    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    names = np.asarray(classes, dtype=object)
    by_index = multiclass_metrics(y.astype(float), p, classes)
    by_name = multiclass_metrics(names[y], names[p], classes)
    pd.testing.assert_frame_equal(by_index, by_name)
