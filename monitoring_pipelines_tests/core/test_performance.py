"""Performance metrics equal their references (hand-computed, closed forms, scikit-learn when installed),
and the checks flag a real drop, not a noisy day."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring_pipelines.config import ModelConfig, PerformanceThresholds
from monitoring_pipelines.core.baselines import band_limits, summarize_days
from monitoring_pipelines.core.performance import (
    HIGHER_IS_BETTER,
    METRICS,
    PERFORMANCE_COLUMNS,
    PERFORMANCE_TABLE_COLUMNS,
    _ece_bootstrap,
    _ece_normal_bootstrap,
    attach_labels,
    binary_metrics,
    compare_to_band,
    daily_performance,
    expected_calibration_error,
    judge_metrics,
    performance_checks,
    table_rows,
)
from monitoring_pipelines.core.stats import wilson_interval
from monitoring_pipelines.storage.snapshot import Snapshot

Z95 = 1.959963984540054


def calibrated_sample(n: int, seed: int, sharpness: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = 1.0 / (1.0 + np.exp(-sharpness * rng.normal(size=n)))
    y = (rng.random(n) < score).astype(int)
    return y, score, (score >= 0.5).astype(int)


def value(frame: pd.DataFrame, metric: str, column: str = "value") -> float:
    return float(frame.loc[frame["metric"] == metric, column].iloc[0])


# --------------------------------------------------------------------------- calibration error


def test_ece_hand_computed() -> None:
    """Bins of width .5: bin 0 holds scores .1, .2 (labels 0, 1): |1 - .3| = .7;
    bin 1 holds .6, .8, 1.0 (labels 1, 1, 0): |2 - 2.4| = .4; ECE = (.7 + .4) / 5."""
    y = np.array([0, 1, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.6, 0.8, 1.0])
    assert expected_calibration_error(y, s, bins=2) == pytest.approx(1.1 / 5)


def test_ece_is_small_for_calibrated_and_large_for_overconfident_scores() -> None:
    y, s, _ = calibrated_sample(20_000, seed=2)
    assert expected_calibration_error(y, s) < 0.02
    overconfident = np.clip((s - 0.5) * 3 + 0.5, 0, 1)
    assert expected_calibration_error(y, overconfident) > 0.1


def test_ece_bootstrap_paths_agree_on_the_spread() -> None:
    y, s, _ = calibrated_sample(20_000, seed=4, sharpness=2.5)
    s = np.clip(s + 0.03, 0, 1)  # miscalibrated, so the per-bin sums are away from 0
    idx = np.clip(np.floor(s * 10), 0, 9).astype(int)
    rng = np.random.default_rng(0)
    exact = _ece_bootstrap(idx, y - s, 10, 300, rng)
    normal = _ece_normal_bootstrap(idx, y - s, 10, 3000, rng)
    assert exact.std() == pytest.approx(normal.std(), rel=0.2)
    assert exact.mean() == pytest.approx(normal.mean(), rel=0.05)


# --------------------------------------------------------------------------- all metrics


def test_binary_metrics_hand_computed_small_case() -> None:
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.2, 0.6, 0.4, 0.7, 0.1, 0.8, 0.3])
    p = (s >= 0.5).astype(int)  # TP = 3 (.9, .6, .8), FP = 1 (.7), FN = 1 (.4), TN = 3
    out = binary_metrics(y, s, p)
    assert list(out["metric"]) == list(METRICS)
    assert (out["n"] == 8).all()
    assert value(out, "accuracy") == pytest.approx(6 / 8)
    assert value(out, "precision") == pytest.approx(3 / 4)
    assert value(out, "recall") == pytest.approx(3 / 4)
    assert value(out, "f1") == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert value(out, "positive_rate") == pytest.approx(4 / 8)
    assert value(out, "auc") == pytest.approx(14 / 16)  # misordered pairs: (.4, .7) and (.6, .7)
    expected_ll = -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert value(out, "log_loss") == pytest.approx(expected_ll, abs=1e-15)
    assert value(out, "brier") == pytest.approx(np.mean((s - y) ** 2), abs=1e-15)
    low, high = wilson_interval(6, 8)
    assert value(out, "accuracy", "ci_low") == pytest.approx(float(low))
    assert value(out, "accuracy", "ci_high") == pytest.approx(float(high))
    losses = (s - y) ** 2
    half = Z95 * losses.std(ddof=1) / math.sqrt(8)
    assert value(out, "brier", "ci_low") == pytest.approx(max(0.0, losses.mean() - half))
    assert value(out, "brier", "ci_high") == pytest.approx(losses.mean() + half)


def test_binary_metrics_equal_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    y, s, p = calibrated_sample(3000, seed=5)
    p = (s >= 0.4).astype(int)
    s = np.round(s, 3)  # ties
    out = binary_metrics(y, s, p)
    references = {
        "auc": skm.roc_auc_score(y, s),
        "log_loss": skm.log_loss(y, s),
        "brier": skm.brier_score_loss(y, s),
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(y, p),
        "recall": skm.recall_score(y, p),
        "f1": skm.f1_score(y, p),
    }
    for metric, reference in references.items():
        assert value(out, metric) == pytest.approx(reference, abs=1e-12), metric


def test_f1_delta_interval_matches_multinomial_simulation() -> None:
    tp, fp, fn, tn = 300, 120, 80, 500
    n = tp + fp + fn + tn
    y = np.repeat([1, 0, 1, 0], [tp, fp, fn, tn])
    pred = np.repeat([1, 1, 0, 0], [tp, fp, fn, tn])
    out = binary_metrics(y, np.full(n, 0.5), pred)
    se_delta = (value(out, "f1", "ci_high") - value(out, "f1", "ci_low")) / (2 * Z95)
    draws = np.random.default_rng(0).multinomial(n, np.array([tp, fp, fn, tn]) / n, size=20_000)
    f1 = 2 * draws[:, 0] / (2 * draws[:, 0] + draws[:, 1] + draws[:, 2])
    assert se_delta == pytest.approx(f1.std(), rel=0.05)


def test_binary_metrics_intervals_contain_their_values() -> None:
    y, s, p = calibrated_sample(2000, seed=6)
    out = binary_metrics(y, s, p)
    assert (out["ci_low"] <= out["value"]).all() and (out["value"] <= out["ci_high"]).all()


def test_binary_metrics_edge_cases() -> None:
    empty = binary_metrics(np.array([]), np.array([]), np.array([]))
    assert empty["value"].isna().all() and (empty["n"] == 0).all()

    one_class = binary_metrics(np.zeros(50), np.linspace(0.01, 0.99, 50), np.zeros(50))
    assert math.isnan(value(one_class, "auc"))
    assert math.isnan(value(one_class, "recall"))  # no positives
    assert math.isnan(value(one_class, "precision"))  # no predicted positives
    assert math.isnan(value(one_class, "f1"))
    assert value(one_class, "accuracy") == 1.0 and np.isfinite(value(one_class, "log_loss"))

    dirty = binary_metrics(
        np.array([1, 0, 1, np.nan, 2]), np.array([0.8, np.nan, 0.3, 0.5, 0.5]), np.array([1, 0, 0, 1, 1])
    )
    assert (dirty["n"] == 2).all()

    extreme = binary_metrics(np.array([1, 0]), np.array([0.0, 1.0]), np.array([0, 1]))
    assert np.isfinite(value(extreme, "log_loss"))  # clipped, not infinite


# --------------------------------------------------------------------------- daily rows


def make_day(n: int, seed: int, sharpness: float = 1.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    y, s, p = calibrated_sample(n, seed, sharpness)
    ids = [f"d{seed}-{i}" for i in range(n)]
    day = pd.DataFrame({"request_id": ids, "score": s, "prediction": p})
    labels = pd.DataFrame({"request_id": ids, "label": y, "label_ts": pd.Timestamp("2026-06-10", tz="UTC")})
    return day, labels


def test_daily_performance_latest_label_wins_and_counts_fraction() -> None:
    day = pd.DataFrame(
        {"request_id": ["a", "b", "c", "d"], "score": [0.9, 0.2, 0.7, np.nan], "prediction": [1, 0, 1, 1]}
    )
    labels = pd.DataFrame(
        {
            "request_id": ["a", "a", "b"],
            "label": [0, 1, 0],
            "label_ts": pd.to_datetime(["2026-06-03", "2026-06-02", "2026-06-02"], utc=True),
        }
    )
    out = daily_performance(day, labels)
    assert list(out.columns) == PERFORMANCE_TABLE_COLUMNS
    assert list(out.columns[: len(PERFORMANCE_COLUMNS)]) == PERFORMANCE_COLUMNS  # the rows outcomes share
    measured = out[~out["estimated"]]
    assert measured["trusted"].isna().all() and measured["estimate_note"].isna().all()  # describe estimates
    assert (measured["n"] == 2).all()  # a and b labelled; c not; d dropped (NaN score)
    assert value(measured, "accuracy") == pytest.approx(0.5)  # a's latest label is 0, predicted 1
    assert np.allclose(out["labelled_fraction"], 2 / 3)
    assert out.attrs["dropped_scores"] == 1 and out.attrs["labelled"] == 2
    assert "auc" not in set(measured["metric"])  # one class among the labelled rows: not computable
    assert (out[out["estimated"]]["n"] == 3).all()


def test_table_rows_leave_the_estimate_columns_null_on_outcome_rows() -> None:
    day, labels = make_day(300, seed=3)
    metrics = daily_performance(day, labels)
    outcome = pd.DataFrame(
        {
            "metric": ["outcome:repaid"],
            "value": [0.5],
            "ci_low": [0.4],
            "ci_high": [0.6],
            "n": [100],
            "labelled_fraction": [1.0],
            "estimated": [False],
        }
    )
    rows = table_rows(metrics, outcome)
    assert list(rows.columns) == PERFORMANCE_TABLE_COLUMNS and len(rows) == len(metrics) + 1
    assert rows["trusted"].dtype == "boolean" and pd.isna(rows["trusted"].iloc[-1])
    assert rows.loc[rows["estimated"], "trusted"].all()


def test_daily_performance_without_labels_has_only_estimated_rows() -> None:
    day, _ = make_day(500, seed=1)
    out = daily_performance(day, pd.DataFrame(columns=["request_id", "label", "label_ts"]))
    assert out["estimated"].all() and len(out) > 0
    assert (out["labelled_fraction"] == 0).all()


def test_daily_performance_empty_day_still_writes_estimated_rows() -> None:
    day = pd.DataFrame(columns=["request_id", "score", "prediction"])
    out = daily_performance(day, pd.DataFrame(columns=["request_id", "label", "label_ts"]))
    assert out["estimated"].all() and (out["n"] == 0).all() and out["value"].isna().all()


def test_daily_performance_measured_rows_equal_binary_metrics() -> None:
    day, labels = make_day(800, seed=2)
    out = daily_performance(day, labels, PerformanceThresholds(ece_bins=15))
    direct = binary_metrics(labels["label"], day["score"], day["prediction"], ece_bins=15)
    measured = out[~out["estimated"]].set_index("metric")
    for metric in METRICS:
        assert measured.loc[metric, "value"] == pytest.approx(value(direct, metric), abs=1e-15)


# --------------------------------------------------------------------------- the snapshot's scored rows

START = dt.date(2026, 6, 1)
MODEL = ModelConfig(
    name="scored_model",
    features={"numeric": ["x"]},
    reference={"start": "2026-05-01", "end": "2026-05-28"},
)


def logged_day(n: int, seed: int) -> pd.DataFrame:
    """Raw rows of a day: the champion's `ok` rows (one request logged twice), shadow rows of the same
    requests and failed champion requests without a score."""
    y, s, p = calibrated_sample(n, seed)
    s = np.round(s, 3)  # ties
    ids = [f"q{i}" for i in range(n)]
    champion = pd.DataFrame(
        {"request_id": ids, "role": "champion", "status": "ok", "score": s, "prediction": p}
    )
    twice = champion.iloc[:1].assign(score=0.5, prediction=1)
    shadow = champion.assign(role="shadow", score=np.clip(s + 0.05, 0, 1))
    failed = pd.DataFrame(
        {"request_id": [f"e{i}" for i in range(20)], "role": "champion", "status": "error", "score": np.nan}
    )
    day = pd.concat([champion, twice, shadow, failed], ignore_index=True)
    rows = len(day)
    return day.assign(
        prediction_id=[f"p{i}" for i in range(rows)],
        model_name=MODEL.name,
        model_version="v1",
        ts=pd.Timestamp(START, tz="UTC") + pd.to_timedelta(np.arange(rows), unit="s"),
        x=1.0,
    )


def adversarial_labels(day: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Labels with corrections (the later label_ts wins), undated labels (older than dated ones), labels
    that are not 0/1 (dropped), labels of failed requests and of requests the day does not have; no two
    labels of one request share a label_ts."""
    rng = np.random.default_rng(seed)
    stamp = pd.Timestamp("2026-06-09", tz="UTC")
    rows = []
    for k, rid in enumerate([*day["request_id"].unique(), "unknown-1", "unknown-2"]):
        if rng.random() < 0.3:
            continue
        for j in range(rng.choice([1, 1, 2, 3])):
            label = rng.choice(np.array([0.0, 1.0, 1.0, 2.0, -1.0, np.nan]))
            when = pd.NaT if j == 0 and rng.random() < 0.2 else stamp + pd.Timedelta(minutes=10 * k + j)
            rows.append((rid, label, when))
    frame = pd.DataFrame(rows, columns=["request_id", "label", "label_ts"])
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def both_paths(day: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """daily_performance of the snapshot's scored rows (labels joined in DuckDB) and of the champion's
    `ok` rows as a frame with the labels joined by request_id, in the same row order (the order feeds
    the seeded bootstraps)."""
    snap, validation = Snapshot.from_frame(MODEL, day, START)
    with snap:
        assert validation.quarantined_rows == 0
        snap.set_labels(labels)
        scored = snap.scored()
        order = snap.scored(["prediction_id"])["prediction_id"]
    frame = day[(day["role"] == "champion") & (day["status"] == "ok")]
    frame = frame.set_index("prediction_id").loc[order].reset_index()
    return daily_performance(scored), daily_performance(frame, labels)


@pytest.mark.parametrize("seed", range(3))
def test_snapshot_scored_rows_give_the_same_daily_performance(seed: int) -> None:
    day = logged_day(3000, seed)
    labels = adversarial_labels(day, seed)
    from_snapshot, from_frame = both_paths(day, labels)
    pd.testing.assert_frame_equal(from_snapshot, from_frame, rtol=1e-12)
    for key in ("rows", "scored", "dropped_scores", "labelled"):
        assert from_snapshot.attrs[key] == from_frame.attrs[key], key
    assert from_frame.attrs["rows"] == 3001 and from_frame.attrs["invalid_labels"] > 0
    assert 0 < from_frame.attrs["labelled"] < 3001
    assert (~from_snapshot["estimated"]).sum() == len(METRICS)


def test_snapshot_label_ties_resolve_like_the_frame_path() -> None:
    """Two labels of one request with the same label_ts (a correction in the same batch): the frame path
    keeps the later row (input order breaks ties, core.performance._latest_labels); the SQL must agree."""
    day = logged_day(400, seed=7)
    stamp = pd.Timestamp("2026-06-09", tz="UTC")
    ids = day.loc[day["role"] == "champion", "request_id"].iloc[1:301].tolist()
    first = pd.DataFrame({"request_id": ids, "label": [0.0, 1.0] * 150, "label_ts": stamp})
    corrected = first.assign(label=1.0 - first["label"])
    labels = pd.concat([first, corrected], ignore_index=True)
    attached, _ = attach_labels(pd.DataFrame({"request_id": ids}), labels)
    assert attached["label"].tolist() == corrected["label"].tolist()  # the later row of each tie
    snap, _ = Snapshot.from_frame(MODEL, day, START)
    with snap:
        snap.set_labels(labels)
        got = snap.scored(["request_id"]).set_index("request_id")["label"]
    assert got.loc[ids].tolist() == corrected["label"].tolist()
    from_snapshot, from_frame = both_paths(day, labels)
    pd.testing.assert_frame_equal(from_snapshot, from_frame, rtol=1e-12)


# --------------------------------------------------------------------------- checks


@pytest.fixture(scope="module")
def reference_bands() -> pd.DataFrame:
    daily = [daily_performance(*make_day(2000, seed=seed)) for seed in range(10, 30)]
    return summarize_days(pd.concat(daily, ignore_index=True), ["metric", "estimated"])


def findings_by_check(outcomes: list) -> dict[str, list]:
    """What each check raised; `ok` entries (a judged metric's value, for hysteresis) are left out."""
    return {o.check_name: [f for f in o.findings if f.severity != "ok"] for o in outcomes}


def test_judged_metrics_report_their_values_for_hysteresis(reference_bands: pd.DataFrame) -> None:
    day, labels = make_day(2000, seed=99)
    outcomes = {
        o.check_name: o
        for o in performance_checks(daily_performance(day, labels), reference_bands, PerformanceThresholds())
    }
    degradation = [f for f in outcomes["performance_degradation"].findings if f.severity == "ok"]
    assert len(degradation) == 1 and degradation[0].subject == "model"
    drops = [f for f in outcomes["performance_critical_drop"].findings if f.severity == "ok"]
    assert drops and all(
        f.subject == f.metric and f.value is not None and f.threshold is not None for f in drops
    )


def test_ordinary_day_raises_no_finding(reference_bands: pd.DataFrame) -> None:
    day, labels = make_day(2000, seed=99)
    outcomes = performance_checks(daily_performance(day, labels), reference_bands, PerformanceThresholds())
    assert [o.check_name for o in outcomes] == ["performance_degradation", "performance_critical_drop"]
    assert all(o.passed for o in outcomes)
    assert "| auc |" in outcomes[0].metadata["summary"]


def test_score_degradation_is_seen_on_day_one_from_estimates(reference_bands: pd.DataFrame) -> None:
    day, _ = make_day(2000, seed=100, sharpness=0.5)  # scores collapse towards 0.5, no label yet
    today = daily_performance(day, pd.DataFrame(columns=["request_id", "label", "label_ts"]))
    found = findings_by_check(performance_checks(today, reference_bands, PerformanceThresholds()))
    warned = {f.metric for f in found["performance_degradation"]}
    assert {"auc", "accuracy", "log_loss", "brier"} <= warned
    critical = found["performance_critical_drop"]
    assert [f.subject for f in critical] == ["auc"]
    finding = critical[0]
    assert finding.evidence["estimated"] is True and "min_n" in finding.evidence["basis"]
    assert finding.threshold == pytest.approx(finding.evidence["band_mean"] - 0.05)
    assert "auc" in finding.message and "CI" in finding.message and "band" in finding.message


def test_measured_rows_are_used_once_enough_labels_arrived(reference_bands: pd.DataFrame) -> None:
    y, s, p = calibrated_sample(2000, seed=101)
    flipped = np.where(np.random.default_rng(0).random(2000) < 0.25, 1 - y, y)  # labels disagree: worse model
    ids = [f"x{i}" for i in range(2000)]
    day = pd.DataFrame({"request_id": ids, "score": s, "prediction": p})
    labels = pd.DataFrame(
        {"request_id": ids, "label": flipped, "label_ts": pd.Timestamp("2026-06-20", tz="UTC")}
    )
    thresholds = PerformanceThresholds()
    found = findings_by_check(performance_checks(daily_performance(day, labels), reference_bands, thresholds))
    auc = next(f for f in found["performance_degradation"] if f.metric == "auc")
    assert auc.evidence["estimated"] is False and auc.evidence["n"] == 2000
    # the scores alone look healthy: with few labels the estimate is used and stays quiet
    few = labels.iloc[:150]
    found = findings_by_check(performance_checks(daily_performance(day, few), reference_bands, thresholds))
    assert not found["performance_degradation"]


def test_loss_metrics_are_worse_when_higher() -> None:
    bands = pd.DataFrame(
        {
            "metric": ["log_loss", "auc"],
            "estimated": [False, False],
            "mean": [0.5, 0.8],
            "std": [0.01, 0.01],
            "n_days": [28, 28],
        }
    )

    def today(log_loss: float, auc: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "metric": ["log_loss", "auc"],
                "value": [log_loss, auc],
                "ci_low": [log_loss - 0.005, auc - 0.005],
                "ci_high": [log_loss + 0.005, auc + 0.005],
                "n": [5000, 5000],
                "labelled_fraction": [1.0, 1.0],
                "estimated": [False, False],
            }
        )

    thresholds = PerformanceThresholds()
    worse = findings_by_check(performance_checks(today(0.6, 0.8), bands, thresholds))
    assert [f.metric for f in worse["performance_degradation"]] == ["log_loss"]
    better = findings_by_check(performance_checks(today(0.4, 0.9), bands, thresholds))
    assert not better["performance_degradation"] and not better["performance_critical_drop"]
    # critical_drops override: log_loss 0.05 worse than its mean is critical when configured
    strict = PerformanceThresholds(critical_drops={"log_loss": 0.05})
    crit = findings_by_check(performance_checks(today(0.6, 0.8), bands, strict))["performance_critical_drop"]
    assert [(f.metric, f.threshold) for f in crit] == [("log_loss", pytest.approx(0.55))]


def test_wide_interval_blocks_a_warning() -> None:
    bands = pd.DataFrame(
        {"metric": ["auc"], "estimated": [False], "mean": [0.8], "std": [0.005], "n_days": [28]}
    )
    today = pd.DataFrame(
        {
            "metric": ["auc"],
            "value": [0.76],
            "ci_low": [0.70],
            "ci_high": [0.82],
            "n": [300],
            "labelled_fraction": [0.1],
            "estimated": [False],
        }
    )
    outcomes = performance_checks(today, bands, PerformanceThresholds())
    assert all(o.passed for o in outcomes)


def test_no_band_warns_instead_of_passing() -> None:
    """A reference without bands (here: none at all) cannot judge the day: one warning says so, about its
    own subject, and no metric is reported as degraded."""
    day, labels = make_day(500, seed=5, sharpness=0.3)
    outcomes = performance_checks(daily_performance(day, labels), pd.DataFrame(), PerformanceThresholds())
    degradation, critical = outcomes
    assert [(f.subject, f.severity) for f in degradation.findings] == [("reference_band", "warning")]
    assert "no measured band" in degradation.findings[0].message
    assert critical.passed and not critical.findings
    assert "no measured reference band" in degradation.metadata["summary"]


def test_empty_day_and_missing_bands_pass_quietly() -> None:
    outcomes = performance_checks(pd.DataFrame(), pd.DataFrame(), PerformanceThresholds())
    assert [o.passed for o in outcomes] == [True, True]


def test_compare_to_band_directions() -> None:
    assert compare_to_band(0.7, 0.68, 0.72, 0.8, 0.01, 3, "higher_is_better")[0]
    assert not compare_to_band(0.7, 0.68, 0.72, 0.8, 0.01, 3, "lower_is_better")[0]
    assert compare_to_band(0.9, 0.88, 0.92, 0.8, 0.01, 3, "two_sided")[0]
    assert not compare_to_band(0.7, 0.68, 0.72, 0.8, float("nan"), 3, "higher_is_better")[0]
    assert set(HIGHER_IS_BETTER) == set(METRICS)


def test_a_small_day_inside_its_band_is_not_a_critical_drop() -> None:
    # n=279: AUC 0.70 vs a reference mean of 0.774 is more than the 0.05 critical drop and its CI
    # excludes the mean, but the reference band (σ 0.033 on days this size) says such days happen.
    bands = pd.DataFrame(
        {"metric": ["auc"], "estimated": [False], "mean": [0.774], "std": [0.0331], "n_days": [28]}
    )
    today = pd.DataFrame(
        {
            "metric": ["auc"],
            "value": [0.7012],
            "ci_low": [0.6256],
            "ci_high": [0.7673],
            "n": [279],
            "labelled_fraction": [1.0],
            "estimated": [False],
        }
    )
    outcomes = performance_checks(today, bands, PerformanceThresholds())
    assert all(o.passed for o in outcomes)
    far = today.assign(value=0.62, ci_low=0.55, ci_high=0.69)
    found = findings_by_check(performance_checks(far, bands, PerformanceThresholds()))
    assert [f.metric for f in found["performance_critical_drop"]] == ["auc"]


def test_judgements_carry_the_decision_and_its_numbers() -> None:
    bands = pd.DataFrame(
        {
            "metric": ["auc", "log_loss"],
            "estimated": [False, False],
            "mean": [0.774, 0.5],
            "std": [0.0331, 0.01],
        }
    ).assign(n_days=28)
    today = pd.DataFrame(
        {
            "metric": ["auc", "log_loss"],
            "value": [0.62, 0.49],
            "ci_low": [0.55, 0.48],
            "ci_high": [0.69, 0.50],
            "n": [279, 279],
            "labelled_fraction": [1.0, 1.0],
            "estimated": [False, False],
        }
    )
    judged = judge_metrics(today, bands, PerformanceThresholds(min_n=100))
    assert list(judged) == [m for m in METRICS if m != "positive_rate"]
    auc, log_loss = judged["auc"], judged["log_loss"]
    assert auc is not None and auc.degraded and auc.critical and auc.basis == "measured on 279 labelled rows"
    assert auc.worse_by == pytest.approx(0.154) and auc.critical_limit == pytest.approx(0.724)
    # the prediction interval for a new day from 28 reference days: t_27 at Φ(3), times sqrt(1 + 1/28)
    k_28 = stats.t.ppf(stats.norm.cdf(3), 27) * math.sqrt(1 + 1 / 28)
    assert auc.band_limit == pytest.approx(0.774 - k_28 * 0.0331) and auc.band_k == pytest.approx(k_28)
    assert log_loss is not None and not log_loss.degraded and not log_loss.critical  # lower is better
    assert judged["brier"] is None  # no row and no band


@pytest.mark.parametrize("n_days", [7, 28])
def test_band_from_few_reference_days_keeps_the_nominal_false_alarm_rate(n_days):
    """Ordinary days are as noisy as the reference days. With the band mean ± 3·s from the sample std of a
    short window, a new ordinary day falls outside far more often than Φ(−3) = 0.135 % per side; the
    prediction interval keeps it there (simulated: 40,000 windows, one new day each)."""
    rng = np.random.default_rng(5)
    windows = rng.normal(size=(40_000, n_days))
    new_day = rng.normal(size=40_000)
    mean, std = windows.mean(axis=1), windows.std(axis=1, ddof=1)
    naive = np.mean(new_day < mean - 3 * std)
    low = np.array([band_limits(m, s, 3.0, n_days)[0] for m, s in zip(mean[:4000], std[:4000], strict=True)])
    k = (mean[:4000] - low) / std[:4000]
    assert np.allclose(k, k[0])  # one multiplier per window length
    fixed = np.mean(new_day < mean - k[0] * std)
    assert naive > 1.8 * stats.norm.cdf(-3)  # 3·s is too narrow: 7 days ~1.4 %, 28 days ~0.29 %
    assert fixed == pytest.approx(stats.norm.cdf(-3), abs=0.0006)


def test_small_days_do_not_fail_more_often_than_the_band_promises():
    """Reference days of 2,000 labels, live days of 700 (a weekend): the small day's own noise is larger
    than the band's spread, so its interval must clear the mean at the band's k as well; at 95 % about
    2.5 % of ordinary small days failed per metric (simulated here: 20,000 ordinary small days)."""
    from monitoring_pipelines.core.performance import compare_to_band
    from monitoring_pipelines.core.stats import proportion_interval

    rng = np.random.default_rng(11)
    flagged = 0
    for _ in range(200):
        reference = rng.binomial(2000, 0.78, 28) / 2000
        mean, std = reference.mean(), reference.std(ddof=1)
        values, lows, highs = proportion_interval(rng.binomial(700, 0.78, 100), 700)
        flagged += sum(
            compare_to_band(v, lo, hi, mean, std, 3.0, "higher_is_better", 28)[0]
            for v, lo, hi in zip(values, lows, highs, strict=True)
        )
    assert flagged / 20_000 < 2 * stats.norm.cdf(-3)
    # a real drop on a small day still fails: 5 points below on 700 labels
    value, low, high = proportion_interval(int(0.73 * 700), 700)
    assert compare_to_band(float(value), float(low), float(high), 0.78, 0.009, 3.0, "higher_is_better", 28)[0]
