"""Regression and multiclass model-days through the performance pipeline (core.performance per task,
core.baselines.reference_baselines, core.profiles): metrics against scikit-learn, the reference estimator
stored and read back, quiet days quiet, shifted days caught (measured, estimated before labels, target drift)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from sklearn import metrics as skm

from monitoring_pipelines.config import ModelConfig
from monitoring_pipelines.core import profiles as P
from monitoring_pipelines.core.baselines import FrameReference, reference_baselines
from monitoring_pipelines.core.drift import compute_drift, drift_checks
from monitoring_pipelines.core.multiclass import MulticlassCalibration
from monitoring_pipelines.core.performance import (
    PERFORMANCE_CRITICAL_DROP,
    PERFORMANCE_DEGRADATION,
    TARGET_DRIFT,
    confusion_matrix_rows,
    daily_performance,
    estimation_inputs,
    metric_direction,
    performance_checks,
    target_drift_check,
    task_metrics,
)
from monitoring_pipelines.core.regression import ErrorProfile

START = dt.date(2026, 1, 1)
REFERENCE_DAYS = 10
CLASSES = ["billing", "tech", "sales", "other"]
PRIOR_LOGITS = np.array([0.4, 0.2, 0.0, -0.3])


def regression_model() -> ModelConfig:
    return ModelConfig(
        name="delivery",
        task="regression",
        features={"numeric": ["distance"], "categorical": ["zone"]},
        reference={
            "start": START.isoformat(),
            "end": (START + dt.timedelta(days=REFERENCE_DAYS - 1)).isoformat(),
        },
    )


def multiclass_model() -> ModelConfig:
    return ModelConfig(
        name="routing",
        task="multiclass_classification",
        classes=CLASSES,
        features={"numeric": ["length"], "categorical": ["channel"]},
        reference={
            "start": START.isoformat(),
            "end": (START + dt.timedelta(days=REFERENCE_DAYS - 1)).isoformat(),
        },
    )


def regression_day(
    n: int, rng: np.random.Generator, *, shift: float = 0.0, noise: float = 1.0, labelled: float = 1.0
) -> pd.DataFrame:
    """Snapshot rows of a regression model: the prediction is the conditional mean, the error grows with
    the distance from the middle (so traffic moving outwards raises the expected error: DLE sees it)."""
    x = rng.normal(shift, 1.0, n)
    predicted = 30.0 + 6.0 * x
    observed = predicted + rng.normal(0.0, noise * (1.0 + np.abs(x)), n)
    label = np.where(rng.random(n) < labelled, observed, np.nan)
    return pd.DataFrame(
        {
            "score": predicted,
            "prediction": np.nan,
            "label": label,
            "distance": x,
            "zone": rng.choice(["a", "b"], n),
        }
    )


def multiclass_day(
    n: int,
    rng: np.random.Generator,
    *,
    scale: float = 2.0,
    prior: np.ndarray = PRIOR_LOGITS,
    swap_tech: float = 0.0,
    labelled: float = 1.0,
) -> pd.DataFrame:
    """Snapshot rows of a multiclass model in the snapshot's representation (prediction and label as class
    indices, score the top-label probability, predicted_class, score__<class>). The logged probabilities are
    the true ones (a calibrated model); `swap_tech` of the rows whose true class is tech are logged with the
    tech and other probabilities swapped (the model lost part of that class: its recall drops)."""
    k = len(CLASSES)
    true = softmax(prior + rng.normal(0.0, scale, (n, k)), axis=1)
    label = (rng.random((n, 1)) > np.cumsum(true, axis=1)).sum(axis=1).clip(0, k - 1)
    logged = true.copy()
    swap = (label == 1) & (rng.random(n) < swap_tech)
    logged[swap, 1], logged[swap, 3] = true[swap, 3], true[swap, 1]
    predicted = logged.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "score": logged.max(axis=1),
            "prediction": predicted.astype(float),
            "label": np.where(rng.random(n) < labelled, label.astype(float), np.nan),
            "predicted_class": np.asarray(CLASSES, dtype=object)[predicted],
            "length": rng.gamma(3.0, 50.0, n),
            "channel": rng.choice(["mail", "chat"], n),
        }
    )
    for i, c in enumerate(CLASSES):
        frame[f"score__{c}"] = logged[:, i]
    return frame


def reference_of(model: ModelConfig, make_day, seed: int, n: int = 1500):
    rng = np.random.default_rng(seed)
    frames = [
        make_day(n, rng).assign(partition_date=START + dt.timedelta(days=i)) for i in range(REFERENCE_DAYS)
    ]
    reference = FrameReference(pd.concat(frames, ignore_index=True))
    profile = P.build_reference_profile(reference.columns(), model)
    profile, baselines = reference_baselines(model, profile, reference)
    profile, baselines = P.with_version_of(profile, baselines)
    return profile, baselines[baselines["domain"] == "performance"].reset_index(drop=True)


@pytest.fixture(scope="module")
def regression_reference():
    return reference_of(regression_model(), regression_day, seed=3)


@pytest.fixture(scope="module")
def multiclass_reference():
    return reference_of(multiclass_model(), multiclass_day, seed=4)


def _value(frame: pd.DataFrame, metric: str, estimated: bool = False) -> float:
    row = frame[(frame["metric"] == metric) & (frame["estimated"] == estimated)]
    assert len(row) == 1, f"{metric} estimated={estimated}: {len(row)} rows"
    return float(row["value"].iloc[0])


def _status(results) -> dict[str, str]:
    return {r.check_name: r.status for r in results}


def _checks(model: ModelConfig, profile, bands, day: pd.DataFrame):
    estimator, support = estimation_inputs(profile)
    today = daily_performance(
        day, thresholds=model.thresholds.performance, calibration=estimator, support=support, model=model
    )
    results = performance_checks(today, bands, model.thresholds.performance, task_metrics(model))
    results.append(target_drift_check(today, bands, model.thresholds.performance, task_metrics(model)))
    return today, results


def _failed_metrics(results, check: str) -> set[str]:
    result = next(r for r in results if r.check_name == check)
    return {f.metric for f in result.findings if f.severity in ("warning", "critical")}


# --------------------------------------------------------------------------- the daily rows against sklearn


def test_regression_rows_match_sklearn() -> None:
    day = regression_day(3000, np.random.default_rng(1), labelled=0.7)
    rows = daily_performance(day, model=regression_model())
    labelled = day.dropna(subset=["label"])
    y, p = labelled["label"].to_numpy(), labelled["score"].to_numpy()
    assert _value(rows, "mae") == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert _value(rows, "rmse") == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert _value(rows, "median_ae") == pytest.approx(skm.median_absolute_error(y, p), rel=1e-12)
    assert _value(rows, "mape") == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-9)
    assert _value(rows, "r2") == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert _value(rows, "bias") == pytest.approx(np.mean(p - y), rel=1e-12)
    assert _value(rows, "label_mean") == pytest.approx(y.mean(), rel=1e-12)
    mean_row = rows[rows["metric"] == "label_mean"].iloc[0]
    assert mean_row["ci_low"] < y.mean() < mean_row["ci_high"] and mean_row["n"] == len(y)
    assert rows["labelled_fraction"].iloc[0] == pytest.approx(len(y) / len(day))
    # no error profile, no estimate: the rows say measured only, and why in attrs
    assert not rows["estimated"].any() and "no estimate" in rows.attrs["estimate_note"]


def test_multiclass_rows_match_sklearn() -> None:
    day = multiclass_day(4000, np.random.default_rng(2), labelled=0.8)
    model = multiclass_model()
    rows = daily_performance(day, model=model)
    labelled = day.dropna(subset=["label"])
    y, p = labelled["label"].astype(int).to_numpy(), labelled["prediction"].astype(int).to_numpy()
    proba = labelled[model.probability_columns].to_numpy()
    k = range(len(CLASSES))
    assert _value(rows, "accuracy") == pytest.approx(skm.accuracy_score(y, p), rel=1e-12)
    assert _value(rows, "macro_f1") == pytest.approx(skm.f1_score(y, p, average="macro"), rel=1e-12)
    assert _value(rows, "weighted_f1") == pytest.approx(skm.f1_score(y, p, average="weighted"), rel=1e-12)
    assert _value(rows, "log_loss") == pytest.approx(skm.log_loss(y, proba, labels=list(k)), rel=1e-9)
    precision = skm.precision_score(y, p, average=None, labels=list(k))
    recall = skm.recall_score(y, p, average=None, labels=list(k))
    for i, c in enumerate(CLASSES):
        assert _value(rows, f"precision:{c}") == pytest.approx(precision[i], rel=1e-12)
        assert _value(rows, f"recall:{c}") == pytest.approx(recall[i], rel=1e-12)
        assert _value(rows, f"label_share:{c}") == pytest.approx(np.mean(y == i), rel=1e-12)
    assert rows["labelled_fraction"].iloc[0] == pytest.approx(len(y) / len(day))
    # estimated rows over every scored row (raw probabilities without a reference calibration)
    estimated = rows[rows["estimated"]]
    assert set(estimated["metric"]) >= {"accuracy", "macro_f1", "recall:tech"}
    assert (estimated["n"][estimated["metric"] == "accuracy"] == len(day)).all()
    assert estimated["trusted"].all()

    confusion = confusion_matrix_rows(day, CLASSES)
    wide = confusion.pivot(index="observed_class", columns="predicted_class", values="n")
    expected = skm.confusion_matrix(y, p, labels=list(k))
    np.testing.assert_array_equal(wide.loc[CLASSES, CLASSES].to_numpy(), expected)
    assert len(confusion) == len(CLASSES) ** 2
    assert confusion_matrix_rows(day.assign(label=np.nan), CLASSES).empty


def test_metric_directions_per_task() -> None:
    assert metric_direction("mae") == "lower_is_better" and metric_direction("r2") == "higher_is_better"
    assert metric_direction("bias") == "two_sided" and metric_direction("label_mean") == "two_sided"
    assert metric_direction("recall:tech") == "higher_is_better"
    assert metric_direction("log_loss") == "lower_is_better"
    assert metric_direction("label_share:tech") == "two_sided"
    assert "label_mean" not in task_metrics(regression_model()).checked
    assert "recall:other" in task_metrics(multiclass_model()).checked


# --------------------------------------------------------------------------- the reference estimator


def test_the_reference_estimator_is_stored_and_read_back(regression_reference, multiclass_reference) -> None:
    for (profile, bands), kind in (
        (regression_reference, ErrorProfile),
        (multiclass_reference, MulticlassCalibration),
    ):
        assert isinstance(profile.estimator, kind)
        back = P.profile_from_rows(P.profile_to_rows(profile))
        assert back.version == profile.version
        assert isinstance(back.estimator, kind)
        assert P.estimator_to_json(back.estimator) == P.estimator_to_json(profile.estimator)
        # bands of the task's metrics, measured and estimated, label rows included
        assert {(m, e) for m, e in zip(bands["metric"], bands["estimated"], strict=True)} >= (
            {("mae", False), ("mae", True), ("label_mean", False)}
            if kind is ErrorProfile
            else {("accuracy", False), ("accuracy", True), ("label_share:tech", False), ("recall:tech", True)}
        )
    # the estimator enters the version: the same profile without it is another reference
    profile, _ = regression_reference
    assert profile.with_estimator(None).version != profile.with_estimator(profile.estimator).version


def test_reference_days_are_estimated_out_of_sample() -> None:
    """Cross-fitted: a reference day's estimated rows use an estimator fitted without that day's labels."""
    from monitoring_pipelines.core.baselines import reference_estimator

    rng = np.random.default_rng(9)
    days = {START + dt.timedelta(days=i): regression_day(800, rng) for i in range(6)}
    full, by_day = reference_estimator(regression_model(), days)
    assert isinstance(full, ErrorProfile) and full.n == 6 * 800
    assert set(by_day) == set(days)
    # 5 folds of 6 days (day i in fold i mod 5): fitted without the day's fold, 2 days for fold 0, else 1
    held_out_days = {day: 2 if i % 5 == 0 else 1 for i, day in enumerate(days)}
    assert {day: est.n for day, est in by_day.items()} == {d: (6 - h) * 800 for d, h in held_out_days.items()}
    held = list(by_day.values())
    assert len({id(e) for e in held}) == 5


# --------------------------------------------------------------------------- the checks


def test_quiet_regression_and_multiclass_days_raise_nothing(
    regression_reference, multiclass_reference
) -> None:
    for model, make_day, (profile, bands), seed in (
        (regression_model(), regression_day, regression_reference, 11),
        (multiclass_model(), multiclass_day, multiclass_reference, 12),
    ):
        for labelled in (1.0, 0.0):  # a labelled day and a day before its labels
            day = make_day(1500, np.random.default_rng(seed), labelled=labelled)
            today, results = _checks(model, profile, bands, day)
            assert today["estimated"].any()
            assert _status(results) == {
                PERFORMANCE_DEGRADATION: "passed",
                PERFORMANCE_CRITICAL_DROP: "passed",
                # before its labels the day's labels cannot be looked at: unknown, so an open alert stays open
                TARGET_DRIFT: "passed" if labelled else "unknown",
            }, (
                model.task,
                labelled,
                [f.message for r in results for f in r.findings if f.severity == "warning"],
            )
            target = next(r for r in results if r.check_name == TARGET_DRIFT)
            if labelled:  # judged, not skipped: the label rows were held to their bands
                assert {f.severity for f in target.findings} == {"ok"}
            else:
                assert "not enough data: n=0 labelled rows" in target.unknown_reason


def test_target_drift_passes_for_binary_models() -> None:
    """A binary day has no label rows: nothing to judge, and nothing to wait for."""
    from monitoring_pipelines.config import PerformanceThresholds

    rng = np.random.default_rng(5)
    score = rng.random(500)
    day = pd.DataFrame(
        {"score": score, "prediction": (score > 0.5) * 1.0, "label": (rng.random(500) < score) * 1.0}
    )
    result = target_drift_check(daily_performance(day), pd.DataFrame(), PerformanceThresholds())
    assert result.status == "passed" and not result.findings


def test_regression_errors_up_40_percent_fail_on_measured_rows(regression_reference) -> None:
    model = regression_model()
    profile, bands = regression_reference
    day = regression_day(1500, np.random.default_rng(21), noise=1.4)
    today, results = _checks(model, profile, bands, day)
    assert _value(today, "mae") / bands.set_index(["metric", "estimated"]).loc[("mae", False), "mean"] > 1.3
    assert {"mae", "rmse"} <= _failed_metrics(results, PERFORMANCE_DEGRADATION)
    degradation = next(r for r in results if r.check_name == PERFORMANCE_DEGRADATION)
    assert all(f.evidence["estimated"] is False for f in degradation.findings if f.metric in ("mae", "rmse"))
    # 40 % above the reference mean: beyond error_critical_increase (25 % of the mean)
    assert {"mae", "rmse"} <= _failed_metrics(results, PERFORMANCE_CRITICAL_DROP)


def test_multiclass_class_losing_recall_fails_on_measured_rows(multiclass_reference) -> None:
    model = multiclass_model()
    profile, bands = multiclass_reference
    day = multiclass_day(1500, np.random.default_rng(22), swap_tech=0.6)
    today, results = _checks(model, profile, bands, day)
    failed = _failed_metrics(results, PERFORMANCE_DEGRADATION)
    assert "recall:tech" in failed
    assert "recall:billing" not in failed and "recall:sales" not in failed
    assert _status(results)[TARGET_DRIFT] == "passed"  # the labels did not move, the model did


def test_estimates_move_before_labels_on_a_covariate_shift(
    regression_reference, multiclass_reference
) -> None:
    """Traffic moving towards the predictions the model errs on: the label-free estimates fail the day
    before any label has landed (measured rows absent)."""
    for model, day, (profile, bands), metric in (
        (
            regression_model(),
            regression_day(1500, np.random.default_rng(31), shift=0.9, labelled=0.0),
            regression_reference,
            "mae",
        ),
        (
            multiclass_model(),
            multiclass_day(1500, np.random.default_rng(32), scale=1.2, labelled=0.0),
            multiclass_reference,
            "accuracy",
        ),
    ):
        today, results = _checks(model, profile, bands, day)
        assert not (~today["estimated"]).any()
        assert today["trusted"].all(), today.attrs["estimate_note"]
        assert metric in _failed_metrics(results, PERFORMANCE_DEGRADATION), model.task


def test_target_drift_fires_on_a_label_shift(regression_reference, multiclass_reference) -> None:
    shifted_regression = regression_day(1500, np.random.default_rng(41))
    shifted_regression["label"] += 3.0  # the outcome moved, the model did not follow
    shifted_multiclass = multiclass_day(1500, np.random.default_rng(42), prior=PRIOR_LOGITS + [1.5, 0, 0, 0])
    for model, day, (profile, bands), moved in (
        (regression_model(), shifted_regression, regression_reference, {"label_mean"}),
        (multiclass_model(), shifted_multiclass, multiclass_reference, {"label_share:billing"}),
    ):
        _, results = _checks(model, profile, bands, day)
        target = next(r for r in results if r.check_name == TARGET_DRIFT)
        assert target.status == "failed"
        assert moved <= _failed_metrics(results, TARGET_DRIFT)
        assert {f.subject for f in target.findings} == {"model"}


# --------------------------------------------------------------------------- drift features per task


def test_drift_features_per_task(regression_reference, multiclass_reference) -> None:
    regression_profile, _ = regression_reference
    multiclass_profile, _ = multiclass_reference
    assert P.PREDICTION_FEATURE not in regression_profile.features
    assert regression_profile.features[P.SCORE_FEATURE].mean == pytest.approx(
        30.0, abs=0.5
    )  # predicted value
    assert P.PREDICTION_FEATURE not in multiclass_profile.features
    classes = multiclass_profile.features[P.PREDICTED_CLASS_FEATURE]
    assert classes.column == "predicted_class" and set(classes.categories) == set(CLASSES)
    assert 0.25 < multiclass_profile.features[P.SCORE_FEATURE].mean < 1.0  # top-label probability

    model = multiclass_model()
    quiet = compute_drift(
        multiclass_profile, multiclass_day(3000, np.random.default_rng(51)), model.thresholds.drift
    )
    moved = compute_drift(
        multiclass_profile,
        multiclass_day(3000, np.random.default_rng(52), prior=PRIOR_LOGITS + [1.5, 0, 0, 0]),
        model.thresholds.drift,
    )
    assert not quiet.loc[quiet["feature"] == P.PREDICTED_CLASS_FEATURE, "drifted"].any()
    flagged = moved[(moved["feature"] == P.PREDICTED_CLASS_FEATURE) & moved["drifted"]]
    assert (flagged["severity"] == "critical").any()  # prediction drift is critical, as __prediction_rate__'s
    results = drift_checks(moved, model.thresholds.drift)
    assert any(
        f.subject == P.PREDICTED_CLASS_FEATURE
        for r in results
        for f in r.findings
        if f.severity == "critical"
    )


def test_target_drift_on_a_day_without_rows_is_unknown_not_an_error() -> None:
    """A model-day with no scored rows gives an empty metrics frame (string metric column): the check
    must say it could not judge, not fail on the empty column's dtype (pandas 3 keeps `str` after map)."""
    from monitoring_pipelines.config import PerformanceThresholds
    from monitoring_pipelines.core.performance import PERFORMANCE_TABLE_COLUMNS, task_metrics

    empty = pd.DataFrame(
        {c: pd.Series([], dtype="str" if c == "metric" else "float") for c in PERFORMANCE_TABLE_COLUMNS}
    )
    empty["estimated"] = empty["estimated"].astype(bool)
    result = target_drift_check(
        empty, pd.DataFrame(), PerformanceThresholds(), task_metrics(regression_model())
    )
    assert result.status == "unknown" and "n=0 labelled rows" in result.unknown_reason


def test_a_regression_day_nobody_could_judge_is_unknown_not_passed() -> None:
    """Reference built before any label landed (no DLE profile, no band) and no label on the day: there
    is nothing to judge quality on. The checks must say so; a silent pass would resolve an open quality
    alert on a day nobody looked at (binary models always have their score-based CBPE to judge)."""
    model = regression_model()
    profile, bands = reference_of(model, lambda n, rng: regression_day(n, rng, labelled=0.0), seed=5)
    assert bands.empty or not bands["estimated"].any()
    today, results = _checks(
        model, profile, bands, regression_day(1500, np.random.default_rng(6), labelled=0.0)
    )
    by_name = {r.check_name: r for r in results}
    for name in ("performance_degradation", "performance_critical_drop", "target_drift"):
        assert by_name[name].status == "unknown", (name, by_name[name].findings)
    assert "n=0 labelled rows" in by_name["performance_degradation"].unknown_reason
    assert "no label-free estimate" in by_name["performance_degradation"].unknown_reason
