"""Subgroup metrics and their checks: definitions against hand/scipy values, and the two checks'
behaviour on synthetic days (a small group degrading is caught, quiet days stay quiet)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring_pipelines.config import ModelConfig, SubgroupThresholds
from monitoring_pipelines.core import fairness
from monitoring_pipelines.core.baselines import summarize_days
from monitoring_pipelines.core.performance import attach_labels, binary_metrics
from monitoring_pipelines.storage.snapshot import Snapshot

SEGMENTS = ["region", "sex"]
INTERSECTIONS = [["region", "sex"]]
REGIONS = np.array(["a", "b", "c", "d"])
REGION_SHARES = [0.50, 0.30, 0.14, 0.06]  # region d: the 6 % group
MU_GOOD = math.sqrt(2) * stats.norm.ppf(0.80)  # binormal separation giving AUC 0.80
MU_BAD = math.sqrt(2) * stats.norm.ppf(0.60)  # ... and AUC 0.60


def synthetic_day(
    rng: np.random.Generator, n: int = 8000, degrade: str | None = None, separation_all: float = MU_GOOD
) -> pd.DataFrame:
    """A champion day: 25 % positives, logit = -1.6 + mu·y + N(0, 1); `degrade` drops one region's AUC to 0.6."""
    region = rng.choice(REGIONS, size=n, p=REGION_SHARES)
    sex = rng.choice(["F", "M"], size=n)
    y = (rng.random(n) < 0.25).astype(float)
    mu = np.full(n, separation_all)
    if degrade is not None:
        mu[region == degrade] = MU_BAD
    score = 1 / (1 + np.exp(-(-1.6 + mu * y + rng.normal(size=n))))
    return pd.DataFrame(
        {"region": region, "sex": sex, "score": score, "prediction": (score > 0.3).astype(int), "label": y}
    )


def metric(rows: pd.DataFrame, segment: str, value: str, name: str) -> pd.Series:
    found = rows[(rows["segment"] == segment) & (rows["segment_value"] == value) & (rows["metric"] == name)]
    assert len(found) == 1, (segment, value, name)
    return found.iloc[0]


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


# --------------------------------------------------------------------------- definitions


@pytest.fixture
def small_day() -> pd.DataFrame:
    # group A: 8 rows (2 unlabelled), group B: 4 rows, all labelled.
    return pd.DataFrame(
        {
            "grp": ["A"] * 8 + ["B"] * 4,
            "sex": ["F", "M"] * 6,
            "score": [0.9, 0.8, 0.7, 0.4, 0.35, 0.2, 0.6, 0.1, 0.7, 0.3, 0.6, 0.2],
            "prediction": [1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0],
            "label": [1, 0, 1, 1, 0, 0, np.nan, np.nan, 1, 0, 0, 1],
        }
    )


def test_value_metrics_match_hand_computation(small_day: pd.DataFrame) -> None:
    rows = fairness.subgroup_metrics(small_day, ["grp"], min_n=1)
    # group A labelled rows: scores .9 .8 .7 .4 .35 .2, labels 1 0 1 1 0 0, predictions 1 1 1 0 0 0
    assert metric(rows, "grp", "A", "positive_rate")["value"] == pytest.approx(4 / 8)  # unlabelled rows count
    assert metric(rows, "grp", "A", "positive_rate")["n"] == 8
    assert metric(rows, "grp", "A", "label_rate")["value"] == pytest.approx(3 / 6)
    recall = metric(rows, "grp", "A", "recall")
    assert recall["value"] == pytest.approx(2 / 3) and recall["n"] == 3
    assert (recall["ci_low"], recall["ci_high"]) == pytest.approx(wilson(2, 3))
    fpr = metric(rows, "grp", "A", "fpr")
    assert fpr["value"] == pytest.approx(1 / 3)
    assert (fpr["ci_low"], fpr["ci_high"]) == pytest.approx(wilson(1, 3))
    precision = metric(rows, "grp", "A", "precision")
    assert precision["value"] == pytest.approx(2 / 3) and precision["n"] == 3
    # AUC: positives .9 .7 .4 vs negatives .8 .35 .2 -> 7 of 9 pairs ordered correctly
    auc = metric(rows, "grp", "A", "auc")
    u = stats.mannwhitneyu([0.9, 0.7, 0.4], [0.8, 0.35, 0.2]).statistic
    assert auc["value"] == pytest.approx(7 / 9) == pytest.approx(u / 9)
    assert auc["ci_low"] < auc["value"] < auc["ci_high"]
    gap = metric(rows, "grp", "A", "calibration_gap")
    resid = np.array([0.9, 0.8, 0.7, 0.4, 0.35, 0.2]) - np.array([1, 0, 1, 1, 0, 0])
    half = stats.norm.ppf(0.975) * resid.std(ddof=1) / math.sqrt(6)
    assert gap["value"] == pytest.approx(resid.mean())
    assert (gap["ci_low"], gap["ci_high"]) == pytest.approx((resid.mean() - half, resid.mean() + half))
    assert metric(rows, "grp", "A", "auc")["labelled"] == 6 and metric(rows, "grp", "A", "auc")["rows"] == 8


def test_auc_matches_scikit_learn(small_day: pd.DataFrame) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rows = fairness.subgroup_metrics(small_day, ["grp"], min_n=1)
    b = small_day[small_day["grp"] == "B"]
    assert metric(rows, "grp", "B", "auc")["value"] == pytest.approx(
        metrics.roc_auc_score(b["label"], b["score"])
    )


def test_gap_and_ratio_are_relative_to_the_whole_day(small_day: pd.DataFrame) -> None:
    rows = fairness.subgroup_metrics(small_day, ["grp"], min_n=1)
    overall = fairness.overall_metrics(small_day).set_index("metric")
    assert overall.loc["positive_rate", "value"] == pytest.approx(6 / 12)
    b = metric(rows, "grp", "B", "positive_rate")
    assert b["value"] == pytest.approx(2 / 4)
    assert b["gap"] == pytest.approx(0.0) and b["ratio"] == pytest.approx(1.0)
    a_recall = metric(rows, "grp", "A", "recall")
    assert a_recall["gap"] == pytest.approx(2 / 3 - overall.loc["recall", "value"])


def test_overall_metrics_agree_with_performance_definitions() -> None:
    day = synthetic_day(np.random.default_rng(3), n=3000)
    ours = fairness.overall_metrics(day).set_index("metric")
    theirs = binary_metrics(day["label"], day["score"], day["prediction"]).set_index("metric")
    for name in ("auc", "recall", "precision", "positive_rate"):
        assert ours.loc[name, "value"] == pytest.approx(theirs.loc[name, "value"])
        assert ours.loc[name, "ci_low"] == pytest.approx(theirs.loc[name, "ci_low"])


def test_one_pass_gives_the_same_subgroup_and_overall_rows_as_separate_calls() -> None:
    day = synthetic_day(np.random.default_rng(4), n=3000)
    day.loc[day.index[::7], "score"] = np.nan  # rows without a usable score are dropped by both
    groups, overall = fairness.subgroup_and_overall_metrics(day, ["region", "sex"], [["region", "sex"]])
    pd.testing.assert_frame_equal(
        groups, fairness.subgroup_metrics(day, ["region", "sex"], [["region", "sex"]])
    )
    pd.testing.assert_frame_equal(overall, fairness.overall_metrics(day))


def test_intersections_have_stable_names_and_missing_values_are_kept() -> None:
    day = pd.DataFrame(
        {
            "age_band": ["65+", "65+", "18-34", None],
            "sex": ["F", "M", "F", "F"],
            "score": [0.2, 0.4, 0.6, 0.8],
            "prediction": [0, 0, 1, 1],
            "label": [0, 1, 1, 1],
        }
    )
    rows = fairness.subgroup_metrics(day, ["age_band", "sex"], [["age_band", "sex"]], min_n=1)
    inter = rows[rows["segment"] == "age_band*sex"]
    assert set(inter["segment_value"]) == {"65+|F", "65+|M", "18-34|F", "__missing__|F", "__all__"}
    assert "__missing__" in set(rows.loc[rows["segment"] == "age_band", "segment_value"])


def test_snapshot_scored_rows_give_the_same_subgroup_metrics() -> None:
    """The subgroups asset reads the snapshot's scored rows (labels joined in DuckDB, segments as text);
    they give the rows the champion's `ok` rows with their labels give as a frame."""
    rng = np.random.default_rng(12)
    day = synthetic_day(rng, n=4000)
    n = len(day)
    day["sex"] = np.where(rng.random(n) < 0.05, None, day["sex"])  # missing segment values
    labelled = rng.random(n) < 0.7
    start = dt.date(2026, 6, 1)
    raw = day.drop(columns="label").assign(
        prediction_id=[f"p{i}" for i in range(n)],
        request_id=[f"r{i}" for i in range(n)],
        model_name="fair",
        model_version="v1",
        role="champion",
        status="ok",
        ts=pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
    )
    failed = raw.iloc[:50].assign(
        prediction_id=lambda f: "e" + f["prediction_id"], request_id=lambda f: "e" + f["request_id"]
    )
    failed = failed.assign(status="error", score=np.nan, prediction=np.nan)
    shadow = raw.iloc[:500].assign(prediction_id=lambda f: "s" + f["prediction_id"], role="shadow")
    labels = pd.DataFrame({"request_id": raw["request_id"], "label": day["label"]})[labelled]
    labels = pd.concat([labels, pd.DataFrame({"request_id": ["e1", "nowhere"], "label": [1.0, 0.0]})])
    model = ModelConfig(
        name="fair",
        features={"categorical": ["region"]},
        segments=SEGMENTS,
        segment_intersections=INTERSECTIONS,
        reference={"start": "2026-05-01", "end": "2026-05-28"},
    )
    snap, validation = Snapshot.from_frame(model, pd.concat([raw, failed, shadow], ignore_index=True), start)
    with snap:
        assert validation.quarantined_rows == 0
        snap.set_labels(labels)
        scored = snap.scored(SEGMENTS)
        order = snap.scored(["prediction_id"])["prediction_id"]
    frame, _ = attach_labels(raw.set_index("prediction_id").loc[order].reset_index(), labels)
    from_snapshot = fairness.subgroup_metrics(scored, SEGMENTS, INTERSECTIONS)
    from_frame = fairness.subgroup_metrics(frame, SEGMENTS, INTERSECTIONS)
    pd.testing.assert_frame_equal(from_snapshot, from_frame, rtol=1e-12)
    assert "__missing__" in set(from_snapshot.loc[from_snapshot["segment"] == "sex", "segment_value"])
    assert metric(from_snapshot, "region", "a", "auc")["labelled"] == int(
        labelled[day["region"] == "a"].sum()
    )


def test_segment_summaries_use_values_with_enough_rows() -> None:
    rng = np.random.default_rng(0)
    n = [400, 400, 50]
    rates = [0.5, 0.3, 0.0]
    day = pd.DataFrame(
        {
            "grp": np.repeat(["x", "y", "tiny"], n),
            "score": rng.random(sum(n)),
            "prediction": np.concatenate(
                [(rng.random(k) < r).astype(int) for k, r in zip(n, rates, strict=True)]
            ),
            "label": (rng.random(sum(n)) < 0.3).astype(float),
        }
    )
    rows = fairness.subgroup_metrics(day, ["grp"], min_n=100)
    x, y = metric(rows, "grp", "x", "positive_rate"), metric(rows, "grp", "y", "positive_rate")
    dpd = metric(rows, "grp", "__all__", "demographic_parity_difference")
    assert dpd["value"] == pytest.approx(x["value"] - y["value"])  # 'tiny' (rate 0) left out
    low = x["value"] - y["value"] - math.hypot(x["value"] - x["ci_low"], y["ci_high"] - y["value"])
    high = x["value"] - y["value"] + math.hypot(x["ci_high"] - x["value"], y["value"] - y["ci_low"])
    assert (dpd["ci_low"], dpd["ci_high"]) == pytest.approx((low, high))  # Newcombe hybrid score
    assert dpd["n"] == 800
    eod = metric(rows, "grp", "__all__", "equalized_odds_difference")
    gaps = [
        abs(metric(rows, "grp", "x", m)["value"] - metric(rows, "grp", "y", m)["value"])
        for m in ("recall", "fpr")
    ]
    assert eod["value"] == pytest.approx(max(gaps))
    assert metric(rows, "grp", "__all__", "demographic_parity_ratio")["value"] == pytest.approx(
        y["value"] / x["value"]
    )
    # four-fifths ratios: to the most-favoured value (x), only for values with min_n rows
    assert metric(rows, "grp", "y", "disparate_impact_ratio")["value"] == pytest.approx(
        y["value"] / x["value"]
    )
    assert metric(rows, "grp", "x", "disparate_impact_ratio")["value"] == 1.0
    assert rows[(rows["segment_value"] == "tiny") & (rows["metric"] == "disparate_impact_ratio")].empty


# --------------------------------------------------------------------------- fairness_gap


def _no_bands() -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.DataFrame(columns=["segment", "segment_value", "metric", "mean", "std", "n_days"]),
        pd.DataFrame(columns=["metric", "mean", "std", "n_days"]),
    )


def test_without_a_reference_a_four_fifths_breach_is_for_review_only_and_small_groups_are_left_out() -> None:
    rng = np.random.default_rng(1)
    sizes = {"x": 2000, "y": 2000, "small": 150}
    rates = {"x": 0.40, "y": 0.20, "small": 0.02}
    day = pd.DataFrame(
        {
            "grp": np.repeat(list(sizes), list(sizes.values())),
            "score": rng.random(sum(sizes.values())),
            "prediction": np.concatenate([(rng.random(k) < rates[g]).astype(int) for g, k in sizes.items()]),
            "label": np.nan,  # no labels needed for parity
        }
    )
    thresholds = SubgroupThresholds()
    rows = fairness.subgroup_metrics(day, ["grp"], min_n=thresholds.min_n)
    bands, overall_bands = _no_bands()
    outcome = {
        o.check_name: o
        for o in fairness.subgroup_checks(
            rows, bands, fairness.overall_metrics(day), overall_bands, thresholds
        )
    }
    subjects = {f.subject: f for f in outcome["fairness_gap"].findings}
    # y: half of the most-favoured x's rate; x itself is the reference; small: 150 rows < min_n
    assert set(subjects) == {"grp=y", "grp=__all__"}
    assert all(f.severity == "info" and f.evidence["kind"] == "no_reference" for f in subjects.values())
    assert outcome["fairness_gap"].passed  # nothing to tell a new gap from an old one: nobody is paged
    assert subjects["grp=y"].metric == "disparate_impact_ratio" and subjects["grp=y"].value < 0.8
    assert subjects["grp=y"].evidence["favoured_group"] == "x"
    assert subjects["grp=__all__"].metric == "demographic_parity_difference"
    assert outcome["fairness_gap"].metadata["values_below_min_n"] == 1
    assert outcome["fairness_gap"].metadata["favoured_groups"] == {"grp": "x"}
    assert outcome["differential_degradation"].findings == []


# --------------------------------------------------------------------------- differential degradation


@pytest.fixture(scope="module")
def reference() -> dict[str, pd.DataFrame]:
    """Bands from 20 reference days of the quiet process, plus the generator state to continue it."""
    rng = np.random.default_rng(2024)
    sub, overall = [], []
    for _ in range(20):
        day = synthetic_day(rng)
        sub.append(fairness.subgroup_metrics(day, SEGMENTS, INTERSECTIONS))
        overall.append(fairness.overall_metrics(day))
    return {
        "bands": summarize_days(pd.concat(sub), ["segment", "segment_value", "metric"]),
        "overall_bands": summarize_days(pd.concat(overall), ["metric"]),
    }


def raised(findings: list) -> list:
    """What a check raised; `ok` entries only record a judged subject's value (for hysteresis)."""
    return [f for f in findings if f.severity in ("critical", "warning", "info")]


def run_checks(day: pd.DataFrame, reference: dict[str, pd.DataFrame]) -> dict[str, object]:
    rows = fairness.subgroup_metrics(day, SEGMENTS, INTERSECTIONS)
    outcomes = fairness.subgroup_checks(
        rows,
        reference["bands"],
        fairness.overall_metrics(day),
        reference["overall_bands"],
        SubgroupThresholds(),
    )
    return {o.check_name: o for o in outcomes}


def test_small_group_auc_drop_fires_differential_degradation(reference: dict[str, pd.DataFrame]) -> None:
    day = synthetic_day(np.random.default_rng(99), degrade="d")
    overall_auc = fairness.overall_metrics(day).set_index("metric").loc["auc", "value"]
    reference_auc = reference["overall_bands"].set_index("metric").loc["auc", "mean"]
    assert abs(reference_auc - overall_auc) < 0.02  # the average looks fine ...
    d = fairness.subgroup_metrics(day, ["region"], [])
    assert metric(d, "region", "d", "auc")["value"] < 0.68  # ... while region d (6 %) lost ~0.2 AUC

    outcome = run_checks(day, reference)["differential_degradation"]
    found = {(f.subject, f.metric): f for f in raised(outcome.findings)}
    assert ("region=d", "auc") in found
    finding = found[("region=d", "auc")]
    assert finding.check_name == "differential_degradation" and finding.severity == "critical"
    assert finding.evidence["segment_drop"] > 0.15 and finding.evidence["overall_drop"] < 0.02
    assert finding.evidence["labelled"] >= 200 and len(finding.evidence["ci"]) == 2
    assert finding.evidence["reference_mean"] > 0.75
    assert "region=d" in finding.message and "auc" in finding.message
    # nothing else than region d (alone or in an intersection) is blamed
    assert all(f.subject.startswith(("region=d", "region*sex=d|")) for f in raised(outcome.findings))
    # the change words follow the sign of the move ("fpr rose 0.1", never "fell -0.1")
    for f in raised(outcome.findings):
        word = "rose" if f.value > f.evidence["reference_mean"] else "fell"
        assert f"it {word} " in f.message and "fell -" not in f.message and "rose -" not in f.message


def test_sixty_quiet_days_fire_nothing(reference: dict[str, pd.DataFrame]) -> None:
    rng = np.random.default_rng(7)
    fired = []
    for i in range(60):
        for outcome in run_checks(synthetic_day(rng), reference).values():
            fired += [(i, f.check_name, f.subject, f.metric) for f in raised(outcome.findings)]
    assert fired == []


def test_a_drop_shared_by_everyone_is_not_differential(reference: dict[str, pd.DataFrame]) -> None:
    day = synthetic_day(np.random.default_rng(5), separation_all=MU_BAD)  # every group at AUC 0.6
    outcome = run_checks(day, reference)["differential_degradation"]
    assert [f for f in raised(outcome.findings) if f.metric == "auc"] == []


def test_groups_below_min_n_are_reported_but_never_alert(reference: dict[str, pd.DataFrame]) -> None:
    day = synthetic_day(np.random.default_rng(11), n=2500, degrade="d")  # region d: ~150 rows
    rows = fairness.subgroup_metrics(day, SEGMENTS, INTERSECTIONS)
    d_auc = metric(rows, "region", "d", "auc")
    assert d_auc["labelled"] < 200 and d_auc["ci_high"] - d_auc["ci_low"] > 0.1
    outcome = run_checks(day, reference)["differential_degradation"]
    assert not any(f.subject.startswith(("region=d", "region*sex=d")) for f in outcome.findings)
    assert outcome.metadata["below_min_n"] > 0


def test_judged_segment_values_report_their_closest_metric_for_hysteresis(
    reference: dict[str, pd.DataFrame],
) -> None:
    outcome = run_checks(synthetic_day(np.random.default_rng(7)), reference)["differential_degradation"]
    ok = [f for f in outcome.findings if f.severity == "ok"]
    assert outcome.passed and ok
    assert len({f.subject for f in ok}) == len(ok)  # one per segment value
    for f in ok:  # inside its line: higher-is-better metrics above it, the others below
        assert f.value is not None and f.threshold is not None and f.value != f.threshold
