"""Subgroup metrics and checks of regression and multiclass models (core.task_subgroups through
core.fairness): the numbers against pandas / scikit-learn / statsmodels on generated data, and the checks
on generated traffic with a 28-day reference window: a standing error gap is info, a group whose error
grows while the rest holds is flagged, quiet days stay quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, mean_absolute_error, recall_score
from statsmodels.stats.proportion import proportion_confint

from monitoring_pipelines.config import SubgroupThresholds
from monitoring_pipelines.core import fairness
from monitoring_pipelines.core.baselines import summarize_days
from monitoring_pipelines.core.findings import CheckResult

REGIONS = {"a": 0.45, "b": 0.30, "c": 0.15, "d": 0.10}
CHANNELS = {"web": 0.65, "app": 0.35}
SEGMENTS = ["region", "channel"]
CLASSES = ["billing", "tech", "sales", "other"]
Z = stats.norm.ppf(0.975)


def regression_day(
    rng: np.random.Generator, n: int, error_scale: dict[str, float] | None = None
) -> pd.DataFrame:
    """Delivery minutes: observed ~ N(35, 8), predicted = observed + N(0, 4 × the region's scale)."""
    region = rng.choice(list(REGIONS), size=n, p=list(REGIONS.values()))
    channel = rng.choice(list(CHANNELS), size=n, p=list(CHANNELS.values()))
    scale = np.ones(n)
    for value, factor in (error_scale or {}).items():
        scale[region == value] = factor
    observed = rng.normal(35, 8, n)
    predicted = observed + rng.normal(0, 4, n) * scale
    return pd.DataFrame(
        {"score": predicted, "prediction": np.nan, "label": observed, "region": region, "channel": channel}
    )


def multiclass_day(
    rng: np.random.Generator, n: int, recall: float = 0.8, degraded: tuple[str, str, float] | None = None
) -> pd.DataFrame:
    """Ticket routing: the right class with probability `recall` (for `degraded` = (region, class,
    recall) that region's tickets of that class with its own), else a uniformly drawn wrong class."""
    region = rng.choice(list(REGIONS), size=n, p=list(REGIONS.values()))
    observed = rng.choice(len(CLASSES), size=n, p=[0.3, 0.3, 0.25, 0.15])
    hit = np.full(n, recall)
    if degraded is not None:
        where = (region == degraded[0]) & (observed == CLASSES.index(degraded[1]))
        hit[where] = degraded[2]
    right = rng.random(n) < hit
    wrong = (observed + rng.integers(1, len(CLASSES), n)) % len(CLASSES)
    predicted = np.where(right, observed, wrong)
    return pd.DataFrame(
        {
            "score": rng.uniform(0.4, 1.0, n),
            "prediction": predicted.astype(float),
            "label": observed.astype(float),
            "region": region,
        }
    )


# --------------------------------------------------------------------------- the numbers


def test_regression_mae_and_bias_per_group_match_pandas_and_sklearn():
    rng = np.random.default_rng(1)
    day = regression_day(rng, 3000, {"d": 1.5})
    day.loc[rng.random(len(day)) < 0.2, "label"] = np.nan  # labels still landing
    day.loc[:40, "channel"] = None  # a missing segment value is a group of its own
    today, overall = fairness.subgroup_and_overall_metrics(
        day, SEGMENTS, [["region", "channel"]], min_n=150, task="regression"
    )
    labelled = day[day["label"].notna()].assign(channel=lambda f: f["channel"].fillna("__missing__"))
    labelled = labelled.assign(**{"region*channel": labelled["region"] + "|" + labelled["channel"]})
    checked = 0
    for segment in ["region", "channel", "region*channel"]:
        for value, g in labelled.groupby(segment):
            rows = today[(today["segment"] == segment) & (today["segment_value"] == value)].set_index(
                "metric"
            )
            error = g["score"] - g["label"]
            mae = mean_absolute_error(g["label"], g["score"])
            assert rows.loc["mae", "value"] == pytest.approx(mae, rel=1e-12)
            half = Z * error.abs().std(ddof=1) / np.sqrt(len(g))
            assert rows.loc["mae", ["ci_low", "ci_high"]].tolist() == pytest.approx(
                [max(mae - half, 0.0), mae + half], rel=1e-9
            )
            assert rows.loc["bias", "value"] == pytest.approx(error.mean(), rel=1e-9, abs=1e-12)
            half = Z * error.std(ddof=1) / np.sqrt(len(g))
            assert rows.loc["bias", "ci_high"] - rows.loc["bias", "ci_low"] == pytest.approx(
                2 * half, rel=1e-9
            )
            all_rows = int(
                (day.assign(channel=day["channel"].fillna("__missing__")).pipe(_key, segment) == value).sum()
            )
            assert rows.loc["mae", ["n", "labelled", "rows"]].tolist() == [len(g), len(g), all_rows]
            if len(g) >= 150:  # the ratio to the rest of the segment
                rest = labelled[labelled[segment] != value]
                ratio = mae / mean_absolute_error(rest["label"], rest["score"])
                assert rows.loc["mae_ratio", "value"] == pytest.approx(ratio, rel=1e-9)
                assert rows.loc["mae_ratio", "ci_low"] < ratio < rows.loc["mae_ratio", "ci_high"]
            else:
                assert "mae_ratio" not in rows.index
            checked += 1
    assert checked >= 4 + 3 + 8
    whole = overall.set_index("metric")
    assert whole.loc["mae", "value"] == pytest.approx(
        mean_absolute_error(labelled["label"], labelled["score"])
    )
    assert whole.loc["bias", "value"] == pytest.approx((labelled["score"] - labelled["label"]).mean())
    assert set(overall["metric"]) == {"mae", "bias"}
    # the region with 1.5× the error stands out against the rest
    d = today[(today["segment"] == "region") & (today["segment_value"] == "d")].set_index("metric")
    assert d.loc["mae_ratio", "ci_low"] > 1.2


def _key(frame: pd.DataFrame, segment: str) -> pd.Series:
    if segment == "region*channel":
        return frame["region"] + "|" + frame["channel"]
    return frame[segment]


def test_mae_ratio_interval_covers_the_true_ratio():
    """The delta-method interval of the MAE ratio holds its 95 % over repeated days (normal errors:
    the true MAE is σ·sqrt(2/π), so the true ratio of region d to the rest is its error scale)."""
    rng = np.random.default_rng(7)
    covered = 0
    runs = 300
    for _ in range(runs):
        day = regression_day(rng, 2500, {"d": 1.3})
        today, _ = fairness.subgroup_and_overall_metrics(day, ["region"], min_n=100, task="regression")
        row = today[(today["segment_value"] == "d") & (today["metric"] == "mae_ratio")].iloc[0]
        covered += row["ci_low"] <= 1.3 <= row["ci_high"]
    assert 0.92 <= covered / runs <= 0.98


def test_multiclass_accuracy_and_recall_per_group_match_sklearn():
    rng = np.random.default_rng(2)
    day = multiclass_day(rng, 6000, degraded=("d", "tech", 0.4))
    day.loc[rng.random(len(day)) < 0.1, "label"] = np.nan
    min_n = 150
    today, overall = fairness.subgroup_and_overall_metrics(
        day, ["region"], min_n=min_n, task="multiclass_classification", classes=CLASSES
    )
    labelled = day[day["label"].notna()]
    for value, g in labelled.groupby("region"):
        rows = today[(today["segment"] == "region") & (today["segment_value"] == value)].set_index("metric")
        y, p = g["label"].astype(int), g["prediction"].astype(int)
        correct = int((y == p).sum())
        assert rows.loc["accuracy", "value"] == pytest.approx(accuracy_score(y, p))
        low, high = proportion_confint(correct, len(g), alpha=0.05, method="wilson")
        assert rows.loc["accuracy", ["ci_low", "ci_high"]].tolist() == pytest.approx([low, high], rel=1e-9)
        recalls = recall_score(y, p, labels=range(len(CLASSES)), average=None, zero_division=np.nan)
        counts = np.bincount(y, minlength=len(CLASSES))
        for j, name in enumerate(CLASSES):
            if counts[j] >= min_n:
                assert rows.loc[f"recall:{name}", "value"] == pytest.approx(recalls[j])
                hits = int(((y == j) & (p == j)).sum())
                low, high = proportion_confint(hits, counts[j], alpha=0.05, method="wilson")
                assert rows.loc[f"recall:{name}", ["ci_low", "ci_high"]].tolist() == pytest.approx(
                    [low, high]
                )
                assert rows.loc[f"recall:{name}", "n"] == counts[j]
            else:  # too few tickets of that class in the group to say anything
                assert f"recall:{name}" not in rows.index
        rest = labelled[labelled["region"] != value]
        shortfall = accuracy_score(
            rest["label"].astype(int), rest["prediction"].astype(int)
        ) - accuracy_score(y, p)
        assert rows.loc["accuracy_shortfall", "value"] == pytest.approx(shortfall)
    d = today[(today["segment_value"] == "d")].set_index("metric")
    assert "recall:other" not in d.index  # region d has ~80 labelled `other` tickets
    assert d.loc["recall:tech", "ci_high"] < 0.55
    whole = overall.set_index("metric")
    y, p = labelled["label"].astype(int), labelled["prediction"].astype(int)
    assert whole.loc["accuracy", "value"] == pytest.approx(accuracy_score(y, p))
    expected = recall_score(y, p, labels=range(len(CLASSES)), average=None)
    assert [whole.loc[f"recall:{c}", "value"] for c in CLASSES] == pytest.approx(expected)


# --------------------------------------------------------------------------- the checks

REQUESTS = 6000
REFERENCE_DAYS = 28


def _bands(days: list[pd.DataFrame], task: str, classes=(), min_n: int = 200) -> dict[str, pd.DataFrame]:
    """The subgroup and overall bands of a reference window, as core.baselines builds them."""
    rows = [
        fairness.subgroup_and_overall_metrics(
            day, SEGMENTS if task == "regression" else ["region"], min_n=min_n, task=task, classes=classes
        )
        for day in days
    ]
    return {
        "bands": summarize_days(pd.concat([r[0] for r in rows]), ["segment", "segment_value", "metric"]),
        "overall_bands": summarize_days(pd.concat([r[1] for r in rows]), ["metric"]),
    }


def _check(
    day: pd.DataFrame, ref: dict, task: str, t: SubgroupThresholds, classes=()
) -> dict[str, CheckResult]:
    segments = SEGMENTS if task == "regression" else ["region"]
    today, overall = fairness.subgroup_and_overall_metrics(
        day, segments, min_n=t.min_n, task=task, classes=classes
    )
    results = fairness.subgroup_checks(today, ref["bands"], overall, ref["overall_bands"], t, task=task)
    return {r.check_name: r for r in results}


def _alerting(result: CheckResult) -> list:
    return [f for f in result.findings if f.severity in ("warning", "critical")]


@pytest.fixture(scope="module")
def standing_reference() -> dict:
    rng = np.random.default_rng(11)
    days = [regression_day(rng, REQUESTS, {"d": 1.3}) for _ in range(REFERENCE_DAYS)]
    return {"rng": rng, "ref": _bands(days, "regression")}


def test_standing_regression_error_gap_is_info_not_warning(standing_reference):
    """Region d always errs 30 % more than the rest, in the reference window too: a standing gap, reported
    for review (info) on every day, never a warning; nothing else alerts."""
    t = SubgroupThresholds()
    rng, ref = standing_reference["rng"], standing_reference["ref"]
    for _ in range(5):
        results = _check(regression_day(rng, REQUESTS, {"d": 1.3}), ref, "regression", t)
        gaps = results["fairness_gap"].findings
        standing = [f for f in gaps if f.subject == "region=d" and f.severity == "info"]
        assert len(standing) == 1 and standing[0].metric == "mae_ratio"
        assert standing[0].evidence["kind"] == "standing"
        assert standing[0].evidence["reference_ci"][0] > t.disparity_high
        assert "for the rest of region" in standing[0].message
        assert not _alerting(results["fairness_gap"]) and not _alerting(results["differential_degradation"])


def test_regression_group_error_growing_raises_differential_degradation(standing_reference):
    """Region d's errors grow 50 % beyond its standing level while the others hold: its MAE rose more than
    the overall's by more than band_k spreads + the margin, relative to its own reference, and its ratio
    to the rest grew beyond the reference band: differential_degradation and a fairness_gap warning."""
    t = SubgroupThresholds()
    rng, ref = standing_reference["rng"], standing_reference["ref"]
    results = _check(regression_day(rng, REQUESTS, {"d": 1.3 * 1.5}), ref, "regression", t)
    degraded = _alerting(results["differential_degradation"])
    assert [(f.subject, f.metric, f.severity) for f in degraded] == [("region=d", "mae", "critical")]
    evidence = degraded[0].evidence
    assert evidence["relative_to_reference"] and 0.35 < evidence["segment_drop"] < 0.65
    assert evidence["overall_drop"] < 0.1
    assert degraded[0].value > degraded[0].threshold > evidence["reference_mean"]
    assert "%" in degraded[0].message
    gaps = _alerting(results["fairness_gap"])
    assert [(f.subject, f.metric, f.severity, f.evidence["kind"]) for f in gaps] == [
        ("region=d", "mae_ratio", "warning", "emerging")
    ]


def test_regression_quiet_days_do_not_alert():
    """Thirty days like the reference (no group worse than the rest): no warning, no critical."""
    rng = np.random.default_rng(5)
    ref = _bands([regression_day(rng, REQUESTS) for _ in range(REFERENCE_DAYS)], "regression")
    t = SubgroupThresholds()
    alerts = 0
    for _ in range(30):
        results = _check(regression_day(rng, REQUESTS), ref, "regression", t)
        alerts += len(_alerting(results["fairness_gap"])) + len(
            _alerting(results["differential_degradation"])
        )
        assert not results["fairness_gap"].findings  # no gap at all, standing or new
    assert alerts == 0


def test_multiclass_class_degrading_in_one_region_is_flagged_and_quiet_days_are_not():
    """Tech tickets of region d are routed right 80 % of the time in the reference, 50 % today: recall:tech
    of region d fell against its band while the overall barely moved (differential_degradation); thirty
    ordinary days raise nothing."""
    rng = np.random.default_rng(3)
    n = 10_000  # region d: ~1000 tickets, ~300 of them tech
    t = SubgroupThresholds()
    ref = _bands(
        [multiclass_day(rng, n) for _ in range(REFERENCE_DAYS)], "multiclass_classification", CLASSES
    )
    kw = {"task": "multiclass_classification", "t": t, "classes": CLASSES}
    results = _check(multiclass_day(rng, n, degraded=("d", "tech", 0.5)), ref, **kw)
    degraded = _alerting(results["differential_degradation"])
    assert {f.subject for f in degraded} == {"region=d"}
    assert (
        "recall:tech" in {f.metric for f in degraded} <= {"recall:tech", "accuracy"}
    )  # d's accuracy fell too
    tech = next(f for f in degraded if f.metric == "recall:tech")
    assert tech.value < 0.6 and tech.evidence["overall_drop"] < 0.05
    assert "recall:tech" in results["differential_degradation"].metadata["metrics"]
    quiet = 0
    for _ in range(30):
        results = _check(multiclass_day(rng, n), ref, **kw)
        quiet += len(_alerting(results["differential_degradation"])) + len(_alerting(results["fairness_gap"]))
    assert quiet == 0


def test_multiclass_accuracy_shortfall_standing_and_emerging():
    """Region d's tickets are routed worse than the rest's by 0.15 all along: standing (info). When the rest
    of the regions keep their accuracy and d falls a further 0.2, its shortfall is a new gap (warning)."""
    rng = np.random.default_rng(4)
    t = SubgroupThresholds()

    def day(d_recall: float) -> pd.DataFrame:
        frame = multiclass_day(rng, REQUESTS)
        d = (frame["region"] == "d").to_numpy()
        redo = multiclass_day(rng, int(d.sum()), recall=d_recall)
        frame.loc[d, ["prediction", "label"]] = redo[["prediction", "label"]].to_numpy()
        return frame

    ref = _bands([day(0.65) for _ in range(REFERENCE_DAYS)], "multiclass_classification", CLASSES)
    kw = {"task": "multiclass_classification", "t": t, "classes": CLASSES}
    results = _check(day(0.65), ref, **kw)
    gaps = [f for f in results["fairness_gap"].findings if f.subject == "region=d"]
    assert [(f.metric, f.severity, f.evidence["kind"]) for f in gaps] == [
        ("accuracy_shortfall", "info", "standing")
    ]
    results = _check(day(0.45), ref, **kw)
    gaps = _alerting(results["fairness_gap"])
    assert [(f.subject, f.metric, f.severity) for f in gaps] == [
        ("region=d", "accuracy_shortfall", "warning")
    ]


def test_owner_limits_page_on_a_standing_task_gap(standing_reference):
    """The owner's own hard limits make a standing gap page: region d's MAE is 30 % over the rest's all
    along (info by default); with `absolute_max_mae_ratio: 1.15` its ratio interval lies above the limit:
    critical. A limit the interval does not clear (1.4) leaves it standing. The same for a multiclass
    shortfall of 0.15 against `absolute_max_accuracy_shortfall`."""
    rng, ref = standing_reference["rng"], standing_reference["ref"]
    day = regression_day(rng, REQUESTS, {"d": 1.3})
    for limit, expected in ((1.15, ("critical", "absolute_limit")), (1.4, ("info", "standing"))):
        t = SubgroupThresholds(absolute_max_mae_ratio=limit)
        [gap] = [
            f for f in _check(day, ref, "regression", t)["fairness_gap"].findings if f.subject == "region=d"
        ]
        assert (gap.severity, gap.evidence["kind"]) == expected
        if expected[0] == "critical":
            assert gap.metric == "mae_ratio" and "absolute_max_mae_ratio" in gap.message
    mc = np.random.default_rng(4)

    def shortfall_day() -> pd.DataFrame:
        frame = multiclass_day(mc, REQUESTS)
        d = (frame["region"] == "d").to_numpy()
        redo = multiclass_day(mc, int(d.sum()), recall=0.65)
        frame.loc[d, ["prediction", "label"]] = redo[["prediction", "label"]].to_numpy()
        return frame

    mc_ref = _bands([shortfall_day() for _ in range(REFERENCE_DAYS)], "multiclass_classification", CLASSES)
    t = SubgroupThresholds(absolute_max_accuracy_shortfall=0.05)
    results = _check(shortfall_day(), mc_ref, "multiclass_classification", t, CLASSES)
    assert [(f.subject, f.metric, f.severity) for f in _alerting(results["fairness_gap"])] == [
        ("region=d", "accuracy_shortfall", "critical")
    ]


def test_owner_limits_are_validated():
    with pytest.raises(ValueError, match="absolute_max_mae_ratio"):
        SubgroupThresholds(absolute_max_mae_ratio=0.9)  # a ratio limit below 1 would page every group
    with pytest.raises(ValueError, match="absolute_max_accuracy_shortfall"):
        SubgroupThresholds(absolute_max_accuracy_shortfall=1.5)
