"""fairness_gap on realistic traffic: a standing disparity is reported once (info) and never pages, an
emerging one is flagged on its first day, the four-fifths ratio is taken to the most-favoured group with
a Katz interval (checked against statsmodels and by coverage), and an owner's absolute limit pages.

The traffic: 8 000 scored requests a weekday (30 % fewer on weekends), 25 % positives with labels, a
28-day reference window, then the days judged against it (docs/fairness.md, `fairness_gap`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import proportion

from monitoring_pipelines.config import AlertingConfig, SubgroupThresholds
from monitoring_pipelines.core import alerts, fairness
from monitoring_pipelines.core.baselines import summarize_days
from monitoring_pipelines.core.findings import CheckResult

START = dt.date(2026, 6, 1)  # a Monday
REFERENCE_DAYS = 28
REQUESTS = 8000
WEEKEND = 0.7
PREVALENCE = 0.25
TPR, FPR = 0.60, 0.20  # a fully favoured group: positive rate 0.25·0.6 + 0.75·0.2 = 0.30
FULL_RATE = PREVALENCE * TPR + (1 - PREVALENCE) * FPR
REGIONS = {"a": 0.45, "b": 0.30, "c": 0.15, "d": 0.10}  # region d: 800 rows a weekday
CHANNELS = {"web": 0.65, "app": 0.35}


def traffic_day(
    rng: np.random.Generator,
    day: int,
    region_ratio: Mapping[str, float] | None = None,
    channel_ratio: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One model-day: every group decides with the same TPR/FPR scaled by its ratio (so its positive
    rate is `ratio` × the favoured rate, and its recall and fpr fall with it); labels all in."""
    date = START + dt.timedelta(days=day)
    n = int(rng.poisson(REQUESTS * (WEEKEND if date.weekday() >= 5 else 1.0)))
    region = rng.choice(list(REGIONS), size=n, p=list(REGIONS.values()))
    channel = rng.choice(list(CHANNELS), size=n, p=list(CHANNELS.values()))
    scale = np.ones(n)
    for column, ratios in ((region, region_ratio or {}), (channel, channel_ratio or {})):
        for value, ratio in ratios.items():
            scale[column == value] *= ratio
    y = (rng.random(n) < PREVALENCE).astype(float)
    prediction = (rng.random(n) < np.where(y == 1, TPR, FPR) * scale).astype(int)
    score = 1 / (1 + np.exp(-(-1.5 + 1.2 * prediction + 0.8 * y + rng.normal(size=n))))
    return pd.DataFrame(
        {"region": region, "channel": channel, "score": score, "prediction": prediction, "label": y}
    )


SEGMENTS = ["region", "channel"]


def metrics(day: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return fairness.subgroup_and_overall_metrics(day, SEGMENTS)


def reference_bands(days: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The subgroup and overall bands of a reference window, as core.baselines builds them."""
    rows = [metrics(day) for day in days]
    return {
        "bands": summarize_days(pd.concat([r[0] for r in rows]), ["segment", "segment_value", "metric"]),
        "overall_bands": summarize_days(pd.concat([r[1] for r in rows]), ["metric"]),
    }


def check(day: pd.DataFrame, reference: dict[str, pd.DataFrame], t: SubgroupThresholds) -> list[CheckResult]:
    today, overall = metrics(day)
    return fairness.subgroup_checks(today, reference["bands"], overall, reference["overall_bands"], t)


DEFAULTS = SubgroupThresholds()


def run_days(
    seed: int, days: int, t: SubgroupThresholds = DEFAULTS, **ratios_from_day: object
) -> dict[int, list[CheckResult]]:
    """Reference days 0..27 and judged days 28..days-1 of one process; `ratios_from_day` =
    region_ratio / channel_ratio: (first day, ratios) switching a group's ratio from that day on."""
    rng = np.random.default_rng(seed)
    base = {key: value[2] for key, value in ratios_from_day.items()}  # type: ignore[index]

    def ratios(day: int) -> dict[str, Mapping[str, float]]:
        out = dict(base)
        for key, (first, after, _) in ratios_from_day.items():  # type: ignore[misc]
            if day >= first:
                out[key] = after
        return out

    reference = reference_bands([traffic_day(rng, d, **ratios(d)) for d in range(REFERENCE_DAYS)])
    return {d: check(traffic_day(rng, d, **ratios(d)), reference, t) for d in range(REFERENCE_DAYS, days)}


def gap_findings(results: list[CheckResult]) -> set[tuple[str, str, str]]:
    return {
        (f.severity, f.subject, f.metric)
        for r in results
        if r.check_name == fairness.FAIRNESS_GAP
        for f in r.findings
    }


def check_history(outcomes: dict[int, list[CheckResult]]) -> pd.DataFrame:
    """The `check_results` rows alerting reads, one per check and day."""
    rows = []
    for day, results in outcomes.items():
        for r in results:
            rows.append(
                {
                    "model_name": "fair",
                    "partition_date": START + dt.timedelta(days=day),
                    "asset": "subgroup_metrics",
                    "check_name": r.check_name,
                    "passed": r.passed,
                    "severity": r.severity,
                    "findings": json.dumps([f.to_dict() for f in r.findings]),
                    "run_id": f"run-{day}",
                    "evaluated_at": pd.Timestamp("2026-09-01", tz="UTC"),
                }
            )
    return pd.DataFrame(rows)


def nightly_alerts(outcomes: dict[int, list[CheckResult]]) -> tuple[dict[str, dict], list[dict]]:
    """Alerting run every night over the history so far (info routed nowhere, the default): alerts, outbox."""
    config = AlertingConfig(routes={"critical": ["pagerduty"], "warning": ["slack"], "info": []})
    history = check_history(outcomes)
    table: dict[str, dict] = {}
    outbox: dict[str, dict] = {}
    for day in sorted(outcomes):
        as_of = START + dt.timedelta(days=day)
        decision = alerts.evaluate(
            history[history["partition_date"] <= as_of],
            pd.DataFrame(list(table.values()), columns=alerts.ALERT_COLUMNS),
            config,
            "owner",
            as_of,
            now=pd.Timestamp(as_of + dt.timedelta(days=1), tz="UTC"),
        )
        for rec in alerts.records(decision.alerts):
            table[rec["alert_id"]] = rec
        for rec in alerts.records(decision.notifications):
            outbox.setdefault(rec["notification_id"], rec)
    return table, list(outbox.values())


# --------------------------------------------------------------------------- (a) a standing disparity

STANDING = {"region_ratio": (0, {"d": 0.6}, {"d": 0.6})}  # region d at 0.6 of the others, every day


@pytest.fixture(scope="module")
def standing_days() -> dict[int, list[CheckResult]]:
    return run_days(seed=11, days=REFERENCE_DAYS + 60, **STANDING)


def test_a_standing_disparity_is_one_info_finding_every_quiet_day_and_never_pages(standing_days) -> None:
    expected = {
        ("info", "region=d", "disparate_impact_ratio"),
        ("info", "region=__all__", "demographic_parity_difference"),  # 0.30 - 0.18 = 0.12 > 0.1
        ("info", "region=__all__", "equalized_odds_difference"),  # its recall is 0.36 against 0.60
    }
    assert len(standing_days) == 60
    for day, results in standing_days.items():
        assert gap_findings(results) == expected, day
        assert all(r.passed for r in results), day  # no warning or critical, either check
    finding = next(f for f in standing_days[40][0].findings if f.subject == "region=d")
    assert finding.evidence["kind"] == "standing"
    assert finding.evidence["reference_value"] == pytest.approx(0.6, abs=0.03)
    assert finding.value == finding.evidence["today_value"]
    assert "standing gap, not a change" in finding.message

    table, outbox = nightly_alerts(standing_days)
    assert outbox == []  # no notification at all
    assert {(a["severity"], a["subject"]) for a in table.values()} == {
        ("info", "region=d"),
        ("info", "region=__all__"),
    }  # one alert per subject for the whole 60 days: reported once, no flapping, no escalation
    assert all(a["status"] == "open" and a["escalated_date"] is None for a in table.values())


# --------------------------------------------------------------------------- (b) an emerging disparity


@pytest.mark.parametrize(
    ("ratios", "subject"),
    [
        ({"region_ratio": (40, {"d": 0.6}, {"d": 0.95})}, "region=d"),  # a 10 % group
        # the majority channel: its ratio to the overall rate stays at 0.81, inside the old band
        ({"channel_ratio": (40, {"web": 0.6}, {"web": 0.95})}, "channel=web"),
    ],
)
def test_an_emerging_disparity_is_flagged_on_its_first_day(ratios, subject) -> None:
    days = run_days(seed=5, days=45, **ratios)
    flagged = {day: {f for f in gap_findings(results) if f[0] != "info"} for day, results in days.items()}
    assert all(flagged[d] == set() for d in range(REFERENCE_DAYS, 40))
    assert ("warning", subject, "disparate_impact_ratio") in flagged[40]
    finding = next(f for f in days[40][0].findings if f.subject == subject and f.severity == "warning")
    assert finding.evidence["kind"] == "emerging"
    assert finding.evidence["reference_mean"] == pytest.approx(0.95, abs=0.05)
    assert finding.value == pytest.approx(0.6, abs=0.08)
    assert finding.evidence["favoured_group"] != subject.split("=")[1]


# --------------------------------------------------------------------------- (c) the four-fifths ratio


def test_four_fifths_ratio_is_to_the_most_favoured_group_with_the_statsmodels_katz_interval() -> None:
    day = traffic_day(np.random.default_rng(3), 0, region_ratio={"c": 0.7, "d": 0.5})
    rows, _ = metrics(day)
    rates = rows[(rows["segment"] == "region") & (rows["metric"] == "positive_rate")].set_index(
        "segment_value"
    )
    top = rates["value"].idxmax()
    assert top in ("a", "b")
    x = (rates["value"] * rates["rows"]).round().astype(int)
    ratios = rows[(rows["segment"] == "region") & (rows["metric"] == "disparate_impact_ratio")].set_index(
        "segment_value"
    )
    assert set(ratios.index) == set(REGIONS)
    assert ratios.loc[top, "value"] == 1.0 and np.isnan(ratios.loc[top, "ci_low"])
    for value in set(REGIONS) - {top}:
        r = ratios.loc[value]
        assert r["value"] == pytest.approx(rates.loc[value, "value"] / rates.loc[top, "value"])
        low, high = proportion.confint_proportions_2indep(
            x[value], rates.loc[value, "rows"], x[top], rates.loc[top, "rows"], compare="ratio", method="log"
        )
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high), rel=1e-9)
        assert r["n"] == rates.loc[value, "rows"]
    lowest = rates["value"].idxmin()
    summary = rows[(rows["segment_value"] == "__all__") & (rows["metric"] == "demographic_parity_ratio")]
    summary = summary[summary["segment"] == "region"].iloc[0]
    assert (summary["value"], summary["ci_low"], summary["ci_high"]) == pytest.approx(
        tuple(ratios.loc[lowest, ["value", "ci_low", "ci_high"]])
    )
    assert not rows["metric"].isin(["disparity_ratio_min", "disparity_ratio_max"]).any()


def test_ratio_interval_excludes_a_value_exactly_when_the_statsmodels_log_test_rejects_it() -> None:
    x1, n1, x2, n2 = 70, 400, 240, 900
    _, low, high = fairness.ratio_interval(x1, n1, x2, n2)
    for r0 in np.linspace(0.4, 1.0, 61):
        p = proportion.test_proportions_2indep(x1, n1, x2, n2, value=r0, compare="ratio", method="log").pvalue
        assert (p < 0.05) == (not low <= r0 <= high), r0


def test_ratio_interval_with_a_zero_count_uses_the_adjusted_counts() -> None:
    ratio, low, high = fairness.ratio_interval(np.array([0, 5]), 300, np.array([40, 0]), 500)
    _, upper = proportion.confint_proportions_2indep(0, 300, 40, 500, compare="ratio", method="log-adjusted")
    assert (ratio[0], low[0], high[0]) == pytest.approx((0.0, 0.0, upper))
    assert np.isnan(ratio[1]) and np.isnan(low[1]) and np.isnan(high[1])  # nothing to compare with


@pytest.mark.parametrize(("p1", "n1", "p2", "n2"), [(0.18, 480, 0.30, 3600), (0.06, 250, 0.10, 250)])
def test_ratio_interval_covers_the_true_ratio_95_percent_of_the_time(p1, n1, p2, n2) -> None:
    rng = np.random.default_rng(2026)
    draws = 4000
    x1, x2 = rng.binomial(n1, p1, draws), rng.binomial(n2, p2, draws)
    _, low, high = fairness.ratio_interval(x1, n1, x2, n2)
    coverage = float(np.mean((low <= p1 / p2) & (p1 / p2 <= high)))
    se = math.sqrt(0.95 * 0.05 / draws)  # 0.0034: the simulation's own error
    assert abs(coverage - 0.95) < 4 * se, coverage


# --------------------------------------------------------------------------- (d) absolute limits


def test_an_absolute_limit_the_owner_configured_pages_even_for_a_standing_gap() -> None:
    t = SubgroupThresholds(absolute_min_ratio=0.75, absolute_max_parity_difference=0.05)
    days = run_days(seed=11, days=REFERENCE_DAYS + 10, t=t, **STANDING)
    for day, results in days.items():
        found = gap_findings(results)
        assert ("critical", "region=d", "disparate_impact_ratio") in found, day
        assert ("critical", "region=__all__", "demographic_parity_difference") in found, day
    finding = next(f for f in days[30][0].findings if f.subject == "region=d")
    assert finding.evidence["kind"] == "absolute_limit" and finding.threshold == 0.75
    assert "absolute_min_ratio" in finding.message

    table, outbox = nightly_alerts(days)
    assert Counter((n["kind"], n["channel"]) for n in outbox) == Counter({("trigger", "pagerduty"): 1})
    (page,) = outbox  # the first night pages once for both subjects; the nine nights after, nothing
    assert set(json.loads(page["payload"])["alert_ids"]) == set(table)
    assert {(a["subject"], a["severity"]) for a in table.values()} == {
        ("region=d", "critical"),
        ("region=__all__", "critical"),
    }


def test_absolute_limits_are_unset_by_default_and_validated() -> None:
    t = SubgroupThresholds()
    assert (t.absolute_min_ratio, t.absolute_max_parity_difference) == (None, None)
    assert t.absolute_max_equalized_odds_difference is None
    with pytest.raises(ValueError, match="absolute_min_ratio"):
        SubgroupThresholds(absolute_min_ratio=1.5)


# --------------------------------------------------------------------------- the decision rule


RATIO, PARITY = "disparate_impact_ratio", "demographic_parity_difference"


@pytest.mark.parametrize(
    ("rule", "today", "band", "level", "limits", "kind"),
    [
        # a ratio of 0.6 that the reference had too: standing
        (RATIO, (0.60, 0.52, 0.69), (0.61, 0.05, 28), (0.57, 0.64), {}, "standing"),
        # ... that fell from 0.95: emerging
        (RATIO, (0.60, 0.52, 0.69), (0.95, 0.05, 28), (0.93, 0.97), {}, "emerging"),
        # ... beyond the band but the interval still holds the reference mean: not yet
        (RATIO, (0.70, 0.50, 0.96), (0.95, 0.03, 28), (0.93, 0.97), {}, None),
        # ... below the band but above the four-fifths line: no fairness finding
        (RATIO, (0.82, 0.78, 0.86), (0.97, 0.02, 28), (0.96, 0.98), {}, None),
        # an owner's limit: critical whatever the reference says
        (RATIO, (0.60, 0.52, 0.69), (0.61, 0.05, 28), (0.57, 0.64), {"absolute_min_ratio": 0.7}, "absolute_limit"),
        # no band (two reference days): only the interval, and only for review
        (PARITY, (0.18, 0.13, 0.23), (0.18, 0.01, 2), (np.nan, np.nan), {}, "no_reference"),
        # a parity difference of 0.18 from the first day: standing
        (PARITY, (0.18, 0.13, 0.23), (0.18, 0.02, 28), (0.17, 0.19), {}, "standing"),
        # ... growing to 0.35: emerging
        (PARITY, (0.35, 0.30, 0.40), (0.18, 0.02, 28), (0.17, 0.19), {}, "emerging"),
        # a daily max - min inflated by noise, the window's own level small: nothing
        (PARITY, (0.13, 0.03, 0.23), (0.13, 0.03, 28), (0.00, 0.05), {}, None),
    ],
)  # fmt: skip
def test_judge_gap_tells_standing_from_emerging(rule, today, band, level, limits, kind) -> None:
    t = SubgroupThresholds(**limits)
    assert fairness.judge_gap(fairness.GAP_RULES[rule], t, today, band, level) == kind


def test_a_group_missing_today_can_still_be_standing() -> None:
    nan = (np.nan, np.nan, np.nan)
    ratio = fairness.GAP_RULES[RATIO]
    assert fairness.judge_gap(ratio, SubgroupThresholds(), nan, (0.6, 0.05, 28), (0.57, 0.64)) == "standing"
    assert fairness.judge_gap(ratio, SubgroupThresholds(), nan, (0.9, 0.05, 28), (0.87, 0.93)) is None
