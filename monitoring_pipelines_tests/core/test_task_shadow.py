"""Shadow comparison of regression and multiclass models (core.shadow with task=...): the paired statistics
against scipy / scikit-learn / statsmodels, and the promotion rule on generated pairs (a shadow with lower
error is promoted over the pooled window, one worse for a segment is harm, an equal one keeps collecting)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import log_loss, mean_absolute_error, recall_score, root_mean_squared_error
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from monitoring_pipelines.config import ServingThresholds, ShadowThresholds
from monitoring_pipelines.core import shadow
from monitoring_pipelines.core.shadow import COVERAGE_COLUMNS, PrimaryDelta
from monitoring_pipelines.schema import ALL

START = dt.date(2026, 6, 1)
REGIONS = {"a": 0.45, "b": 0.30, "c": 0.15, "d": 0.10}
CLASSES = ["billing", "tech", "sales", "other"]
SERVING = ServingThresholds()
REGRESSION = {"task": "regression"}
MULTICLASS = {"task": "multiclass_classification", "classes": CLASSES}


def pairs(
    champion_score: np.ndarray,
    shadow_score: np.ndarray,
    label: np.ndarray,
    region: np.ndarray,
    champion_prediction: np.ndarray | None = None,
    shadow_prediction: np.ndarray | None = None,
    day: dt.date = START,
    extra: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs and coverage as Snapshot.shadow_pairs gives them (every request scored by both sides)."""
    n = len(label)
    none = np.full(n, np.nan)
    frame = pd.DataFrame(
        {
            "request_id": [f"{day:%Y%m%d}-{i}" for i in range(n)],
            "partition_date": pd.Timestamp(day),
            "champion_version": "v1",
            "shadow_version": "v2",
            "champion_score": champion_score,
            "champion_prediction": none if champion_prediction is None else champion_prediction.astype(float),
            "champion_status": "ok",
            "champion_latency_ms": 20.0,
            "region": region,
            "shadow_score": shadow_score,
            "shadow_prediction": none if shadow_prediction is None else shadow_prediction.astype(float),
            "shadow_status": "ok",
            "shadow_latency_ms": 25.0,
            "label": label,
            **(extra or {}),
        }
    )
    coverage = pd.DataFrame(
        [
            {
                "champion_version": "v1",
                "shadow_version": "v2",
                "champion_requests": n,
                "shadow_requests": n,
                "paired": n,
                "champion_only": 0,
                "shadow_only": 0,
                "duplicate_rows": 0,
                "coverage": 1.0,
            }
        ],
        columns=COVERAGE_COLUMNS,
    )
    return frame, coverage


def regression_pairs(
    rng: np.random.Generator,
    n: int,
    shadow_sd: float = 3.6,
    shadow_sd_in: dict[str, float] | None = None,
    day: dt.date = START,
    labelled: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Delivery minutes: the champion errs with sd 4, the shadow with `shadow_sd` (per region overrides)."""
    region = rng.choice(list(REGIONS), size=n, p=list(REGIONS.values()))
    y = rng.normal(35, 8, n)
    sd = np.full(n, shadow_sd)
    for value, s in (shadow_sd_in or {}).items():
        sd[region == value] = s
    common = rng.normal(0, 1, n)  # the two models share part of their error: pairing pays off
    champion = y + 4 * (0.6 * common + 0.8 * rng.normal(0, 1, n))
    shadow_ = y + sd * (0.6 * common + 0.8 * rng.normal(0, 1, n))
    label = np.where(rng.random(n) < labelled, y, np.nan)
    return pairs(champion, shadow_, label, region, day=day)


def pooled(days: list[tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.concat([d[0] for d in days], ignore_index=True), shadow.merge_coverage([d[1] for d in days])


# --------------------------------------------------------------------------- regression


def test_regression_rows_match_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    frame, coverage = regression_pairs(rng, 3000, labelled=0.8)
    t = ShadowThresholds(primary_metric="mae")
    out = shadow.shadow_comparisons(frame, coverage, ["region"], t, **REGRESSION)
    whole = out[out["segment"] == ALL].set_index("metric")
    lab = frame[frame["label"].notna()]
    y, c, s = (lab[k].to_numpy() for k in ("label", "champion_score", "shadow_score"))
    abs_c, abs_s = np.abs(c - y), np.abs(s - y)
    mae = whole.loc["mae"]
    assert mae[["champion_value", "shadow_value"]].tolist() == pytest.approx(
        [mean_absolute_error(y, c), mean_absolute_error(y, s)]
    )
    assert mae["delta"] == pytest.approx(mean_absolute_error(y, s) - mean_absolute_error(y, c))
    assert mae["delta"] < 0 and mae["n"] == len(lab)
    p_t = stats.ttest_rel(abs_s, abs_c).pvalue
    p_w = stats.wilcoxon(abs_s - abs_c).pvalue
    assert mae["p_value"] == pytest.approx(max(p_t, p_w))  # both tests must reject
    se = (abs_s - abs_c).std(ddof=1) / np.sqrt(len(lab))
    assert mae["ci_low"] < mae["delta"] < mae["ci_high"]
    assert mae["ci_high"] - mae["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)  # bootstrap ≈ normal
    rmse = whole.loc["rmse"]
    assert rmse[["champion_value", "shadow_value"]].tolist() == pytest.approx(
        [root_mean_squared_error(y, c), root_mean_squared_error(y, s)]
    )
    assert rmse["p_value"] == pytest.approx(stats.ttest_rel((s - y) ** 2, (c - y) ** 2).pvalue)
    assert rmse["ci_low"] < rmse["delta"] < rmse["ci_high"] < 0
    # label-free rows use every pair
    all_c, all_s = frame["champion_score"].to_numpy(), frame["shadow_score"].to_numpy()
    mean = whole.loc["mean_score"]
    assert mean["delta"] == pytest.approx(all_s.mean() - all_c.mean())
    assert mean["p_value"] == pytest.approx(stats.ttest_rel(all_s, all_c).pvalue)
    assert whole.loc["score_spearman", "value"] == pytest.approx(stats.spearmanr(all_c, all_s).statistic)
    assert whole.loc["mean_score", "n"] == len(frame)
    # every region has its own rows; a re-run gives the same numbers (seeded bootstrap)
    assert set(out.loc[out["segment"] == "region", "segment_value"]) == set(REGIONS)
    again = shadow.shadow_comparisons(frame, coverage, ["region"], t, **REGRESSION)
    pd.testing.assert_frame_equal(out, again)
    # a regression model has no 0/1 decision: no binary rows
    assert not {"auc", "accuracy", "agreement_rate", "positive_rate"} & set(out["metric"])


def test_regression_better_shadow_is_promoted_over_the_window():
    """A shadow erring with sd 3.6 instead of 4 (MAE 10 % lower) is promoted on the pooled window_days;
    one as good as the champion keeps collecting."""
    t = ShadowThresholds(primary_metric="mae", window_days=7)
    rng = np.random.default_rng(1)
    days = [regression_pairs(rng, 1500, day=START + dt.timedelta(days=k)) for k in range(t.window_days)]
    [rec] = shadow.pooled_recommendations(*pooled(days), ["region"], t, SERVING, **REGRESSION)
    assert rec.verdict == "promote" and rec.metric == "mae" and rec.days == 7
    assert rec.delta < 0 and rec.ci_high < -t.min_improvement * rec.champion_value
    assert not rec.harmed_segments
    results = {r.check_name: r for r in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], t)}
    assert [f.severity for f in results["shadow_promotion"].findings] == ["info"]
    assert results["shadow_promotion"].findings[0].message.startswith("promote")

    same = [
        regression_pairs(rng, 1500, shadow_sd=4.0, day=START + dt.timedelta(days=k))
        for k in range(t.window_days)
    ]
    [rec] = shadow.pooled_recommendations(*pooled(same), ["region"], t, SERVING, **REGRESSION)
    assert rec.verdict == "keep_collecting"


def test_regression_shadow_worse_in_one_segment_is_harm():
    """Better on average, but region d's errors grow from sd 4 to 6 under the shadow: shadow_harm for
    region=d, not promoted."""
    t = ShadowThresholds(primary_metric="mae", window_days=7)
    rng = np.random.default_rng(2)
    days = [
        regression_pairs(rng, 1500, shadow_sd_in={"d": 6.0}, day=START + dt.timedelta(days=k))
        for k in range(t.window_days)
    ]
    [rec] = shadow.pooled_recommendations(*pooled(days), ["region"], t, SERVING, **REGRESSION)
    assert rec.verdict == "do_not_promote"
    assert [(h["segment"], h["segment_value"]) for h in rec.harmed_segments] == [("region", "d")]
    harm = {r.check_name: r for r in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], t)}
    [finding] = harm["shadow_harm"].findings
    assert finding.severity == "warning" and finding.subject == "v2:region=d" and finding.metric == "mae"
    h = rec.harmed_segments[0]
    assert finding.threshold == pytest.approx(t.segment_tolerance * h["champion_value"])
    assert h["ci_low"] > finding.threshold and "of the champion's value" in finding.message


def test_error_margins_are_fractions_of_the_champions_value():
    """For mae the promotion margin is relative: a CI ending 0.04 below a champion MAE of 10 (0.4 %) does
    not clear min_improvement 0.005; one ending 0.06 below (0.6 %) does. AUC keeps its absolute margin."""
    t = ShadowThresholds(primary_metric="mae", min_improvement=0.005)
    near = PrimaryDelta(
        champion_value=10.0, shadow_value=9.9, delta=-0.1, ci_low=-0.16, ci_high=-0.04, p_value=0.001
    )
    far = PrimaryDelta(
        champion_value=10.0, shadow_value=9.9, delta=-0.1, ci_low=-0.16, ci_high=-0.06, p_value=0.001
    )
    assert not shadow._significance(near, False, t, relative=True).clears_margin
    assert shadow._significance(far, False, t, relative=True).clears_margin
    assert shadow._significance(near, False, t).clears_margin  # what an absolute margin would say
    assert shadow.higher_is_better("recall:tech") and not shadow.higher_is_better("mae")


# --------------------------------------------------------------------------- multiclass


def multiclass_pairs(
    rng: np.random.Generator,
    n: int,
    champion_recall: float = 0.75,
    shadow_recall: float = 0.75,
    shadow_recall_in: dict[str, float] | None = None,
    day: dt.date = START,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ticket routing: each side routes a ticket right with its recall (both right more often together
    than by chance: a shared difficulty), else to a random wrong class."""
    region = rng.choice(list(REGIONS), size=n, p=list(REGIONS.values()))
    y = rng.choice(len(CLASSES), size=n, p=[0.3, 0.3, 0.25, 0.15])
    easy = rng.random(n)
    recall_s = np.full(n, shadow_recall)
    for value, r in (shadow_recall_in or {}).items():
        recall_s[region == value] = r
    noise = rng.random(n)
    right_c = np.where(rng.random(n) < 0.5, easy, noise) < champion_recall
    right_s = np.where(rng.random(n) < 0.5, easy, rng.random(n)) < recall_s

    def routed(right: np.ndarray) -> np.ndarray:
        return np.where(right, y, (y + rng.integers(1, len(CLASSES), n)) % len(CLASSES))

    cp, sp = routed(right_c), routed(right_s)
    return pairs(rng.uniform(0.3, 1, n), rng.uniform(0.3, 1, n), y.astype(float), region, cp, sp, day)


def test_multiclass_rows_match_statsmodels_and_sklearn():
    rng = np.random.default_rng(3)
    frame, coverage = multiclass_pairs(rng, 4000, 0.70, 0.74)
    frame.loc[:299, "label"] = np.nan  # not landed yet
    out = shadow.shadow_comparisons(
        frame, coverage, ["region"], ShadowThresholds(primary_metric="accuracy"), **MULTICLASS
    )
    whole = out[out["segment"] == ALL].set_index("metric")
    agree = int((frame["champion_prediction"] == frame["shadow_prediction"]).sum())
    assert whole.loc["agreement_rate", "value"] == pytest.approx(agree / len(frame))
    low, high = proportion_confint(agree, len(frame), alpha=0.05, method="wilson")
    assert whole.loc["agreement_rate", ["ci_low", "ci_high"]].tolist() == pytest.approx([low, high])

    lab = frame[frame["label"].notna()]
    y, c, s = (lab[k].to_numpy().astype(int) for k in ("label", "champion_prediction", "shadow_prediction"))
    rc, rs = c == y, s == y
    table = [[int(np.sum(rc & rs)), int(np.sum(rc & ~rs))], [int(np.sum(~rc & rs)), int(np.sum(~rc & ~rs))]]
    acc = whole.loc["accuracy"]
    assert acc[["champion_value", "shadow_value"]].tolist() == pytest.approx([rc.mean(), rs.mean()])
    assert acc["delta"] == pytest.approx(rs.mean() - rc.mean()) and acc["n"] == len(lab)
    assert acc["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    recall_c = recall_score(y, c, labels=range(len(CLASSES)), average=None)
    recall_s = recall_score(y, s, labels=range(len(CLASSES)), average=None)
    for j, name in enumerate(CLASSES):
        row = whole.loc[f"recall:{name}"]
        of = y == j
        assert row[["champion_value", "shadow_value"]].tolist() == pytest.approx([recall_c[j], recall_s[j]])
        assert row["delta"] == pytest.approx(recall_s[j] - recall_c[j]) and row["n"] == of.sum()
        sub = [
            [int(np.sum(of & rc & rs)), int(np.sum(of & rc & ~rs))],
            [int(np.sum(of & ~rc & rs)), int(np.sum(of & ~rc & ~rs))],
        ]
        assert row["p_value"] == pytest.approx(mcnemar(sub, exact=True).pvalue)
    # no probabilities paired: no log loss; per region rows of every metric
    assert "log_loss" not in set(out["metric"])
    region_d = out[(out["segment"] == "region") & (out["segment_value"] == "d")]
    assert {"accuracy", "agreement_rate", "recall:tech"} <= set(region_d["metric"])


def test_multiclass_log_loss_when_probabilities_are_paired():
    rng = np.random.default_rng(4)
    n = 1500
    y = rng.integers(0, len(CLASSES), n)
    probs = {side: rng.dirichlet(np.ones(len(CLASSES)), n) for side in ("champion", "shadow")}
    extra = {f"{side}_score__{c}": probs[side][:, j] for side in probs for j, c in enumerate(CLASSES)}
    cp, sp = probs["champion"].argmax(axis=1), probs["shadow"].argmax(axis=1)
    frame, coverage = pairs(
        probs["champion"].max(axis=1),
        probs["shadow"].max(axis=1),
        y.astype(float),
        rng.choice(list(REGIONS), n),
        cp,
        sp,
        extra=extra,
    )
    out = shadow.shadow_comparisons(
        frame, coverage, [], ShadowThresholds(primary_metric="log_loss"), **MULTICLASS
    )
    row = out.set_index("metric").loc["log_loss"]
    labels = range(len(CLASSES))
    assert row["champion_value"] == pytest.approx(log_loss(y, probs["champion"], labels=labels))
    assert row["shadow_value"] == pytest.approx(log_loss(y, probs["shadow"], labels=labels))


def test_multiclass_promotion_and_segment_harm():
    """A shadow routing 80 % right against the champion's 75 % is promoted over the window; one that is
    better elsewhere but routes region d's tickets 55 % right is harm there."""
    t = ShadowThresholds(primary_metric="accuracy", window_days=7)
    rng = np.random.default_rng(5)
    better = [multiclass_pairs(rng, 1500, 0.75, 0.80, day=START + dt.timedelta(days=k)) for k in range(7)]
    [rec] = shadow.pooled_recommendations(*pooled(better), ["region"], t, SERVING, **MULTICLASS)
    assert rec.verdict == "promote" and rec.metric == "accuracy" and rec.delta > 0.03
    harmful = [
        multiclass_pairs(rng, 1500, 0.75, 0.80, {"d": 0.55}, day=START + dt.timedelta(days=k))
        for k in range(7)
    ]
    [rec] = shadow.pooled_recommendations(*pooled(harmful), ["region"], t, SERVING, **MULTICLASS)
    assert rec.verdict == "do_not_promote"
    assert [h["segment_value"] for h in rec.harmed_segments] == ["d"]
    [finding] = {
        r.check_name: r for r in shadow.shadow_checks(pd.DataFrame(columns=shadow.COLUMNS), [rec], t)
    }["shadow_harm"].findings
    assert finding.subject == "v2:region=d" and finding.threshold == -t.segment_tolerance
