"""Alert decisions from check history: dedup, hysteresis, escalation, resolution, routing, idempotence."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from typing import Any

import pandas as pd
import pytest

from monitoring_pipelines.config import AlertingConfig
from monitoring_pipelines.core import alerts as core

START = dt.date(2026, 6, 1)
MODEL = "credit_default"
ROUTES = {"critical": ["pagerduty", "slack"], "warning": ["slack"], "info": []}


def day(n: int) -> dt.date:
    """Day n of the scenario (1-based)."""
    return START + dt.timedelta(days=n - 1)


def check_row(
    n: int,
    findings: dict[str, str] | None = None,
    asset: str = "drift_scores",
    check: str = "feature_drift",
    value: float = 0.3,
) -> dict[str, Any]:
    """One check_results row: `findings` maps subject -> severity."""
    found = [
        {
            "check_name": check,
            "severity": sev,
            "metric": "psi",
            "subject": subject,
            "value": value + n / 100,
            "threshold": 0.2,
            "message": f"{subject} drifted",
            "evidence": {"bins": [n]},
        }
        for subject, sev in (findings or {}).items()
    ]
    return {
        "model_name": MODEL,
        "partition_date": day(n),
        "asset": asset,
        "check_name": check,
        "passed": not any(f["severity"] in ("warning", "critical") for f in found),
        "severity": max((f["severity"] for f in found), key=core.level_of, default=None),
        "findings": json.dumps(found),
        "run_id": f"run-{n:02d}",
        "evaluated_at": pd.Timestamp("2026-07-01", tz="UTC"),
    }


def scenario(incident: dict[int, dict[str, str]], days: int = 30) -> pd.DataFrame:
    """`days` days of two checks; `incident` maps day -> drift findings that day."""
    rows = []
    for n in range(1, days + 1):
        rows.append(check_row(n, incident.get(n)))
        rows.append(check_row(n, None, asset="serving_metrics", check="latency_within_limits"))
    return pd.DataFrame(rows)


class Store:
    """The alerts table and the outbox as the service keeps them (upsert by id, enqueue if new)."""

    def __init__(self) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}
        self.outbox: dict[str, dict[str, Any]] = {}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.alerts.values()), columns=core.ALERT_COLUMNS)

    def run(
        self, history: pd.DataFrame, n: int, config: AlertingConfig, owner: str = "risk-ml"
    ) -> core.AlertDecision:
        decision = core.evaluate(
            history,
            self.frame(),
            config,
            owner,
            day(n),
            now=pd.Timestamp(day(n) + dt.timedelta(days=1), tz="UTC"),
        )
        for rec in core.records(decision.notifications):
            self.outbox.setdefault(rec["notification_id"], rec)
        for rec in core.records(decision.alerts):
            self.alerts[rec["alert_id"]] = rec
        return decision

    def nightly(self, history: pd.DataFrame, config: AlertingConfig, days: range) -> None:
        """Live operation: each night sees only the days up to it."""
        for n in days:
            self.run(history[history["partition_date"] <= day(n)], n, config)

    def sent(self) -> Counter:
        return Counter((r["channel"], r["kind"]) for r in self.outbox.values())


@pytest.fixture
def config() -> AlertingConfig:
    return AlertingConfig(routes=ROUTES, warning_persist_days=2, resolve_after_days=3, escalate_after_days=5)


INCIDENT = {n: {"income": "warning"} for n in range(10, 20)}  # days 10..19, then passing


def test_thirty_days_one_incident_send_one_message_per_route_escalate_and_resolve(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 31))

    assert store.sent() == Counter(
        {
            ("slack", "digest"): 1,  # the warning, once it persisted 2 days
            ("pagerduty", "trigger"): 1,
            ("slack", "trigger"): 1,  # escalated to critical after 5 days
            ("pagerduty", "resolve"): 1,
            ("slack", "resolve"): 1,  # the page closes when the check passes 3 days
        }
    )
    (alert,) = store.alerts.values()
    assert alert["severity"] == "critical" and alert["initial_severity"] == "warning"
    assert alert["status"] == "resolved" and alert["resolved_by"] == "auto"
    assert (alert["first_seen_date"], alert["last_seen_date"]) == (day(10), day(19))
    assert alert["detected_date"] == day(11) and alert["escalated_date"] == day(14)
    assert alert["resolved_date"] == day(22) and alert["failing_days"] == 10
    assert alert["dedup_key"] == "credit_default/drift_scores.feature_drift/income"
    by_kind = {(r["channel"], r["kind"]): json.loads(r["payload"]) for r in store.outbox.values()}
    digest = by_kind[("slack", "digest")]
    assert digest["partition_date"] == day(11).isoformat() and digest["alert_ids"] == [alert["alert_id"]]
    page = by_kind[("pagerduty", "trigger")]
    assert page["severity"] == "critical" and page["dedup_key"] == alert["dedup_key"]
    assert page["links"]["run"] == "http://127.0.0.1:3000/runs/run-14"
    assert page["links"]["asset"] == (
        "http://127.0.0.1:3000/assets/drift_scores?view=partitions&partition=2026-06-14%7Ccredit_default"
    )
    assert by_kind[("pagerduty", "resolve")]["dedup_key"] == alert["dedup_key"]


def test_rerunning_any_day_changes_nothing(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 31))
    before_alerts, before_outbox = dict(store.alerts), dict(store.outbox)
    for n in [*range(1, 31), 14, 22, 11]:
        decision = store.run(history, n, config)
        assert decision.alerts.empty, f"re-running day {n} rewrote alerts"
        assert decision.notifications.empty, f"re-running day {n} produced notifications"
    assert store.alerts == before_alerts and store.outbox == before_outbox


def test_rerunning_the_latest_day_mid_incident_is_a_no_op(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 15))
    again = store.run(history[history["partition_date"] <= day(14)], 14, config)
    assert again.alerts.empty and again.notifications.empty


def test_out_of_order_backfill_gives_the_same_alerts_and_no_stale_pages(config):
    history = scenario(INCIDENT)
    live = Store()
    live.nightly(history, config, range(1, 31))
    backfill = Store()
    order = list(range(1, 31))
    random.Random(3).shuffle(order)
    for n in order:
        backfill.run(history, n, config)
    assert set(backfill.alerts) == set(live.alerts)
    keep = [
        "alert_id",
        "severity",
        "status",
        "first_seen_date",
        "last_seen_date",
        "resolved_date",
        "detected_date",
    ]
    assert [{k: a[k] for k in keep} for a in backfill.alerts.values()] == [
        {k: a[k] for k in keep} for a in live.alerts.values()
    ]
    assert backfill.outbox == {}  # the incident ended long before the newest day: nobody is paged for it


def test_open_incident_found_by_a_backfill_is_sent_once_at_its_latest_severity(config):
    history = scenario({n: {"income": "warning"} for n in range(10, 31)})
    store = Store()
    for n in range(1, 31):  # every day of history is already there: only days 28-30 are fresh
        store.run(history, n, config)
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})


def test_one_day_warning_blip_raises_an_alert_but_no_message(config):
    store = Store()
    store.nightly(scenario({12: {"income": "warning"}}), config, range(1, 31))
    (alert,) = store.alerts.values()
    assert alert["status"] == "resolved" and alert["detected_date"] is None and not alert["notified"]
    assert store.outbox == {}


def test_critical_notifies_on_its_first_day(config):
    store = Store()
    history = scenario({5: {"age": "critical"}})
    store.nightly(history, config, range(1, 6))
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})
    payload = json.loads(next(iter(store.outbox.values()))["payload"])
    assert payload["kind"] == "trigger" and payload["partition_date"] == day(5).isoformat()


def test_gap_shorter_than_resolve_after_days_keeps_one_alert(config):
    incident = {n: {"income": "warning"} for n in (10, 11, 13, 14)}  # day 12 passes
    store = Store()
    store.nightly(scenario(incident), config, range(1, 31))
    assert len(store.alerts) == 1
    assert store.sent()[("slack", "digest")] == 1


def test_days_without_an_evaluation_neither_pass_nor_break_a_streak(config):
    history = scenario({n: {"income": "warning"} for n in (10, 12)})
    history = history[~((history["asset"] == "drift_scores") & (history["partition_date"] == day(11)))]
    store = Store()
    store.nightly(history, config, range(1, 16))
    (alert,) = store.alerts.values()
    assert alert["detected_date"] == day(12)  # 10 and 12 are consecutive evaluations


def test_warnings_of_one_night_share_one_digest_per_channel(config):
    incident = {n: {"income": "warning", "age": "warning", "debt_ratio": "warning"} for n in (10, 11)}
    store = Store()
    store.nightly(scenario(incident), config, range(1, 31))
    digests = [r for r in store.outbox.values() if r["kind"] == "digest"]
    assert len(digests) == 1 and len(digests[0]["alert_ids"]) == 3
    assert len(json.loads(digests[0]["payload"])["alerts"]) == 3


def test_without_digest_each_warning_is_its_own_message():
    config = AlertingConfig(routes=ROUTES, digest_warnings=False)
    store = Store()
    store.nightly(
        scenario({n: {"income": "warning", "age": "warning"} for n in (10, 11)}), config, range(1, 13)
    )
    assert store.sent() == Counter({("slack", "trigger"): 2})


def test_owner_routes_replace_the_default_route_of_the_severities_they_list():
    config = AlertingConfig(routes=ROUTES, owner_routes={"risk-ml": {"critical": ["email"]}})
    store = Store()
    incident = {3: {"income": "critical", "age": "warning"}, 4: {"age": "warning"}}
    store.nightly(scenario(incident), config, range(1, 5))
    assert store.sent() == Counter({("email", "trigger"): 1, ("slack", "digest"): 1})


def test_acknowledged_alert_keeps_its_ack_and_still_resolves(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 13))
    (aid,) = store.alerts
    ack = core.acknowledge(
        core.normalize_alerts(store.frame())[0], pd.Timestamp("2026-06-13 09:00", tz="UTC")
    )
    store.alerts[aid] = ack
    store.nightly(history, config, range(13, 31))
    alert = store.alerts[aid]
    assert alert["acknowledged_at"] == pd.Timestamp("2026-06-13 09:00", tz="UTC")
    assert alert["status"] == "resolved"


def test_human_resolved_alert_that_fails_again_starts_a_new_episode(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 13))
    (aid,) = store.alerts
    row = core.resolve_by_person(
        core.normalize_alerts(store.frame())[0], pd.Timestamp("2026-06-13", tz="UTC")
    )
    assert (
        core.resolve_notifications(row, config, "risk-ml", pd.Timestamp("2026-06-13", tz="UTC")) == []
    )  # warning only
    store.alerts[aid] = row
    store.nightly(history, config, range(13, 31))
    first, second = sorted(store.alerts.values(), key=lambda a: a["first_seen_date"])
    assert first["alert_id"] == aid and first["resolved_by"] == "user" and first["last_seen_date"] == day(12)
    assert second["first_seen_date"] == day(13) and second["alert_id"] != aid
    assert second["status"] == "resolved" and second["resolved_by"] == "auto"


def test_resolving_a_paged_alert_by_hand_closes_the_page(config):
    history = scenario({n: {"income": "critical"} for n in range(5, 9)})
    store = Store()
    store.nightly(history, config, range(1, 7))
    row = core.resolve_by_person(
        core.normalize_alerts(store.frame())[0], pd.Timestamp("2026-06-07", tz="UTC")
    )
    notes = core.resolve_notifications(row, config, "risk-ml", pd.Timestamp("2026-06-07", tz="UTC"))
    assert sorted(n["channel"] for n in notes) == ["pagerduty", "slack"]
    assert {n["kind"] for n in notes} == {"resolve"} and notes[0]["dedup_key"] == row["dedup_key"]


def test_info_findings_become_info_alerts_that_never_escalate(config):
    incident = {n: {"v2": "info"} for n in range(3, 20)}
    history = pd.DataFrame(
        [check_row(n, incident.get(n), asset="shadow_comparisons", check="promotion") for n in range(1, 25)]
    )
    store = Store()
    store.nightly(history, config, range(1, 25))
    (alert,) = store.alerts.values()
    assert alert["severity"] == "info" and alert["escalated_date"] is None and alert["status"] == "resolved"
    assert store.outbox == {}  # info routes are empty


def test_failed_check_without_findings_still_alerts(config):
    row = check_row(4)
    row.update(passed=False, severity="critical", findings="[]")
    decision = core.evaluate(pd.DataFrame([row]), None, config, "risk-ml", day(4))
    (alert,) = core.records(decision.alerts)
    assert alert["subject"] == "model" and alert["severity"] == "critical"


def test_rerun_with_corrected_inputs_withdraws_the_alert(config):
    store = Store()
    history = scenario({5: {"income": "warning"}})
    store.nightly(history, config, range(1, 6))
    corrected = scenario({})
    store.run(corrected, 5, config)
    (alert,) = store.alerts.values()
    assert alert["status"] == "resolved" and alert["resolved_by"] == "superseded"


def test_ids_are_deterministic(config):
    history = scenario(INCIDENT)
    a, b = Store(), Store()
    a.nightly(history, config, range(1, 31))
    b.nightly(history, config, range(1, 31))
    assert set(a.alerts) == set(b.alerts) and set(a.outbox) == set(b.outbox)
    assert next(iter(a.alerts)) == core.alert_id_for(
        "credit_default/drift_scores.feature_drift/income", day(10)
    )


def test_finding_rows_keep_the_worst_finding_per_subject_and_day():
    row = check_row(1, {"income": "warning"})
    found = json.loads(row["findings"])
    found.append({**found[0], "severity": "critical", "metric": "js", "message": "worse"})
    row["findings"] = json.dumps(found)
    (rec,) = core.finding_rows(pd.DataFrame([row])).to_dict("records")
    assert rec["severity"] == "critical" and rec["metric"] == "js" and rec["n_findings"] == 2


def test_ui_urls_follow_the_dagster_ui_shape():
    assert core.run_url("http://ui:3000/", "abc") == "http://ui:3000/runs/abc"
    assert core.asset_url("http://ui:3000", "drift_scores", "m", dt.date(2026, 6, 2)) == (
        "http://ui:3000/assets/drift_scores?view=partitions&partition=2026-06-02%7Cm"
    )
    assert core.check_url("http://ui:3000", "drift_scores", "feature_drift") == (
        "http://ui:3000/assets/drift_scores?view=checks&checkDetail=feature_drift"
    )


def test_withdrawn_alert_that_paged_closes_its_page(config):
    store = Store()
    store.nightly(scenario({5: {"income": "critical"}}), config, range(1, 6))
    store.run(scenario({}), 5, config)
    assert store.sent() == Counter(
        {
            ("pagerduty", "trigger"): 1,
            ("slack", "trigger"): 1,
            ("pagerduty", "resolve"): 1,
            ("slack", "resolve"): 1,
        }
    )
