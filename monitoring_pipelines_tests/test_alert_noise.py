"""Issue #16's headline: on quiet data, on-call hears nothing; a real incident is still told on its first day.

Ninety days of three models at realistic volume (weekday traffic, ~30 % less on Saturday and Sunday;
labels for about half the rows, fewer at weekends), with age bands of different sizes and base rates.
The check results are made the way the checks decide them, without running the pipeline:

- `serving_slo`: the real `core.serving.serving_checks` on each day's error counts and p99 latency;
- `feature_drift`: 30 features whose PSI is sampling noise, and the rare false positive a warning check
  makes (0.1 % of feature-days) - single days that must never reach anyone;
- `differential_degradation`: each age band's AUC against its reference band, judged as
  `core.fairness` does (drop beyond band_k spreads plus the margin), reported with its value (`ok`),
  as `not enough data` when the band has fewer than min_n labels, and judging nothing on the few days
  the labels hardly came in (`evaluated: 0`).

Each result goes through `defs.checks.check_rows` (what the warehouse holds) and every night through
`core.alerts.evaluate`, as the `alerts` asset does. Goal (issue #16): at most 1 warning per 30 model-days,
no critical alert, no notification; and the age 65+ degradation of the demo is announced on its first
day and stays open through the label-thin days that follow, without paging twice.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import AlertingConfig, ServingThresholds, SubgroupThresholds
from monitoring_pipelines.core import alerts as core
from monitoring_pipelines.core.findings import CheckResult, Finding, not_enough_data, observed
from monitoring_pipelines.core.serving import serving_checks
from monitoring_pipelines.defs.checks import check_rows

START = dt.date(2026, 3, 2)  # a Monday
DAYS = 90
ROUTES = {"critical": ["pagerduty", "slack"], "warning": ["slack"], "info": []}
MODELS = {"credit_default": 20_000, "churn_propensity": 8_000, "fraud_score": 50_000}  # weekday requests
WEEKEND_FACTOR = 0.7
LABEL_SHARE = 0.5  # rows whose label is in when the day is checked (weekends: 0.3)
LABEL_DROUGHT_DAYS = (17, 44, 71)  # the labelling feed stalled: 0.2 % of the labels arrived
LABELS_NOT_IN_YET = 5  # the last days of the range: labels come 2-7 days after the request
FEATURES = 30
FALSE_POSITIVE_RATE = 0.001  # per feature-day
# age band -> (share of rows, base rate of the label, reference AUC)
AGE_BANDS = {
    "18-25": (0.12, 0.22, 0.78),
    "26-40": (0.38, 0.12, 0.80),
    "41-64": (0.40, 0.08, 0.81),
    "65+": (0.10, 0.15, 0.76),
}
REFERENCE_LABELLED = 0.5  # the reference days' labelled share, which sets the bands' spread
SUBGROUPS = SubgroupThresholds()
INCIDENT_DAY = 60  # in the incident run: the 65+ band's AUC falls by 0.2 from this day on


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


def volume(model: str, n: int) -> int:
    return int(MODELS[model] * (WEEKEND_FACTOR if day(n).weekday() >= 5 else 1.0))


def auc_se(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982) standard error of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return math.sqrt(max(var, 0.0))


def drift_result(rng: np.random.Generator, n: int) -> CheckResult:
    findings = [
        Finding(
            "feature_drift", "warning", "psi", f"x{i:02d}", 0.12, 0.1, f"x{i:02d}: psi = 0.12 (threshold 0.1)"
        )
        for i in range(FEATURES)
        if rng.random() < FALSE_POSITIVE_RATE
    ]
    return CheckResult("feature_drift", findings, {"n_current": n})


def serving_result(rng: np.random.Generator, model: str, n: int) -> CheckResult:
    requests = volume(model, n)
    weekday_peak = 1.15 if day(n).weekday() == 0 else 1.0
    rows = []
    for role, version, share in (("champion", "v3", 1.0), ("shadow", "v4", 1.0)):
        count = int(requests * share)
        errors = int(rng.binomial(count, 0.002))
        p99 = float(rng.lognormal(math.log(260 * weekday_peak), 0.08))
        rows.append(
            {
                "role": role,
                "model_version": version,
                "latency_p50_ms": p99 / 4,
                "latency_p95_ms": p99 / 1.5,
                "latency_p99_ms": p99,
                "requests": count,
                "peak_requests_per_hour": count // 12,
                "error_rate": errors / count,
                "errors": errors,
            }
        )
    (result,) = serving_checks(pd.DataFrame(rows), ServingThresholds())
    return result


def degradation_result(rng: np.random.Generator, model: str, n: int, incident: bool) -> CheckResult:
    """`differential_degradation` as core.fairness decides it, reporting every band: a finding, its `ok`
    value, or not enough data (and `evaluated: 0` when no band had enough labels)."""
    if n in LABEL_DROUGHT_DAYS or n > DAYS - LABELS_NOT_IN_YET:
        labelled_share = 0.002
    else:
        labelled_share = 0.3 if day(n).weekday() >= 5 else LABEL_SHARE
    labelled_day = rng.binomial(volume(model, n), labelled_share)
    entries: list[Finding] = []
    small = judged = 0
    for band, (share, rate, reference) in AGE_BANDS.items():
        subject = f"age_band={band}"
        labelled = int(rng.binomial(labelled_day, share))
        if labelled < SUBGROUPS.min_n:
            small += 1
            entries.append(
                not_enough_data("differential_degradation", subject, "auc", labelled, SUBGROUPS.min_n)
            )
            continue
        judged += 1
        ref_volume = MODELS[model] * REFERENCE_LABELLED * share
        band_std = auc_se(reference, ref_volume * rate, ref_volume * (1 - rate))
        se = auc_se(reference, labelled * rate, labelled * (1 - rate))
        truth = reference - (0.2 if incident and band == "65+" and n >= INCIDENT_DAY else 0.0)
        value = float(rng.normal(truth, se))
        spread = math.sqrt(band_std**2 + se**2)
        limit = reference - SUBGROUPS.band_k * spread - SUBGROUPS.degradation_margin
        if value < limit:
            entries.append(
                Finding(
                    "differential_degradation",
                    "critical",
                    "auc",
                    subject,
                    value,
                    limit,
                    f"auc of {subject} is {value:.3f} against its reference {reference:.3f}",
                    {"reference_mean": reference, "labelled": labelled},
                )
            )
        else:
            entries.append(observed("differential_degradation", subject, "auc", value, limit))
    return CheckResult(
        "differential_degradation",
        entries,
        {"evaluated": judged, "below_min_n": small, "no_reference": 0, "min_n": SUBGROUPS.min_n},
    )


def check_history(model: str, seed: int, incident: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for n in range(1, DAYS + 1):
        requests = volume(model, n)
        for asset, result in (
            ("drift_scores", drift_result(rng, requests)),
            ("serving_metrics", serving_result(rng, model, n)),
            ("subgroup_metrics", degradation_result(rng, model, n, incident)),
        ):
            frames.append(check_rows(asset, [result], model, day(n), f"run-{model}-{n}"))
    return pd.concat(frames, ignore_index=True)


def nightly(history: pd.DataFrame, model: str, config: AlertingConfig) -> tuple[dict, dict]:
    """Every night as the alerts asset runs it: the days up to that night, the stored alerts, the outbox."""
    alerts: dict[str, dict] = {}
    outbox: dict[str, dict] = {}
    for n in range(1, DAYS + 1):
        decision = core.evaluate(
            history[history["partition_date"] <= day(n)],
            pd.DataFrame(list(alerts.values()), columns=core.ALERT_COLUMNS),
            config,
            "risk-ml",
            day(n),
            now=pd.Timestamp(day(n + 1), tz="UTC"),
        )
        for rec in core.records(decision.notifications):
            outbox.setdefault(rec["notification_id"], rec)
        for rec in core.records(decision.alerts):
            alerts[rec["alert_id"]] = rec
    return alerts, outbox


@pytest.fixture(scope="module")
def config() -> AlertingConfig:
    return AlertingConfig(routes=ROUTES)


def test_ninety_quiet_days_of_three_models_tell_on_call_nothing(config):
    detected = critical = model_days = 0
    sent: Counter = Counter()
    for seed, model in enumerate(MODELS):
        history = check_history(model, seed)
        unknown_days = history[history["severity"] == "unknown"]
        assert len(unknown_days) == len(LABEL_DROUGHT_DAYS) + LABELS_NOT_IN_YET  # judged nothing: unknown
        alerts, outbox = nightly(history, model, config)
        model_days += DAYS
        detected += sum(1 for a in alerts.values() if a["detected_date"] is not None)
        critical += sum(1 for a in alerts.values() if a["severity"] == "critical")
        sent += Counter((r["channel"], r["kind"]) for r in outbox.values())
        assert all(a["failing_days"] == 1 for a in alerts.values())  # only one-day blips were raised
    assert sent == Counter()
    assert critical == 0
    assert detected <= model_days / 30


def test_a_real_degradation_is_told_on_its_first_day_and_stays_one_open_alert(config):
    history = check_history("credit_default", 0, incident=True)
    alerts, outbox = nightly(history, "credit_default", config)
    (alert,) = [a for a in alerts.values() if a["check_name"] == "differential_degradation"]
    assert alert["subject"] == "age_band=65+" and alert["first_seen_date"] == day(INCIDENT_DAY)
    assert alert["status"] == "open" and alert["reopened"] == 0  # the label-thin days did not resolve it
    after = history[
        (history["check_name"] == "differential_degradation")
        & (history["partition_date"] >= day(INCIDENT_DAY))
    ]
    band = [next(f for f in json.loads(cell) if f["subject"] == "age_band=65+") for cell in after["findings"]]
    assert Counter(f["severity"] for f in band)["unknown"] >= 6  # too few labels on those days to judge
    pages = [r for r in outbox.values() if r["channel"] == "pagerduty"]
    assert [(p["kind"], p["created_at"]) for p in pages] == [
        ("trigger", pd.Timestamp(day(INCIDENT_DAY + 1), tz="UTC"))
    ]
