"""Backlog items from alerts: one item per incident, its lineage, and its lifecycle."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import pytest

from monitoring_pipelines.config import AlertingConfig
from monitoring_pipelines.core import alerts as core_alerts
from monitoring_pipelines.core import backlog as core
from monitoring_pipelines_tests.core.test_alerts import INCIDENT, MODEL, ROUTES, Store, day, scenario

UI = "http://dagster.example:3000"


class Tracker(Store):
    """Alerts and items as the warehouse keeps them, refreshed each night like the two assets."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, dict[str, Any]] = {}

    def items_frame(self) -> pd.DataFrame:
        return core.items_frame(self.items.values())

    def backlog(self, history: pd.DataFrame, n: int) -> core.BacklogDecision:
        findings = core_alerts.finding_rows(history)  # the service passes every day it has
        decision = core.build_items(self.frame(), findings, self.items_frame(), UI, now=_at(n))
        for rec in core.normalize_items(decision.items):
            self.items[rec["item_id"]] = rec
        return decision

    def nights(self, history: pd.DataFrame, config: AlertingConfig, days: range) -> None:
        for n in days:
            seen = history[history["partition_date"] <= day(n)]  # night n knows days up to n
            self.run(seen, n, config)
            self.backlog(seen, n)


def _at(n: int, hour: int = 3) -> pd.Timestamp:
    """Wall clock of night n's run (the morning after the partition day)."""
    return pd.Timestamp(day(n) + dt.timedelta(days=1), tz="UTC") + pd.Timedelta(hours=hour)


@pytest.fixture
def config() -> AlertingConfig:
    return AlertingConfig(routes=ROUTES, warning_persist_days=2, resolve_after_days=3, escalate_after_days=5)


def test_one_incident_makes_one_item_whose_lineage_names_the_failing_partitions(config):
    history = scenario(INCIDENT)
    t = Tracker()
    t.nights(history, config, range(1, 31))
    (item,) = t.items.values()
    (alert,) = t.alerts.values()
    assert item["alert_ids"] == [alert["alert_id"]]
    assert item["partitions"] == [f"{day(n).isoformat()}|{MODEL}" for n in range(10, 20)]
    assert item["run_ids"] == [f"run-{n:02d}" for n in range(10, 20)]
    assert item["asset_keys"] == ["drift_scores"]
    assert item["status"] == "resolved" and item["severity"] == "critical"
    assert item["reported_by"] == "monitoring" and item["dedup_key"] == alert["dedup_key"]
    assert item["evidence"]["onset_date"] == day(10).isoformat()
    assert item["evidence"]["latest"]["evidence"] == {"bins": [19]}
    assert item["links"]["run"] == f"{UI}/runs/run-19"
    assert (
        item["links"]["asset"]
        == f"{UI}/assets/drift_scores?view=partitions&partition=2026-06-19%7Ccredit_default"
    )
    assert item["links"]["check"] == f"{UI}/assets/drift_scores?view=checks&checkDetail=feature_drift"


def test_item_opens_when_the_alert_passes_noise_control_and_resolves_with_it(config):
    history = scenario(INCIDENT)
    t = Tracker()
    t.nights(history, config, range(1, 11))
    assert t.items == {}  # day 10: one failing day of a warning is not news yet
    t.nights(history, config, range(11, 12))
    assert [i["status"] for i in t.items.values()] == ["open"]
    t.nights(history, config, range(12, 22))
    assert [i["status"] for i in t.items.values()] == ["open"]  # two passing days: not resolved yet
    t.nights(history, config, range(22, 23))
    (item,) = t.items.values()
    assert item["status"] == "resolved" and item["resolved_at"] == _at(22)


def test_warning_blip_opens_no_item(config):
    t = Tracker()
    t.nights(scenario({12: {"income": "warning"}}), config, range(1, 31))
    assert len(t.alerts) == 1 and t.items == {}


def test_rerunning_the_backlog_changes_nothing(config):
    history = scenario(INCIDENT)
    t = Tracker()
    t.nights(history, config, range(1, 31))
    before = {k: dict(v) for k, v in t.items.items()}
    for n in (12, 19, 30):
        assert t.backlog(history, n).items.empty
    assert t.items == before


def test_failure_that_returns_after_resolution_opens_a_new_item(config):
    # resolved on day 22; back on day 30, after the 7-day re-open window: a new incident
    incident = {**INCIDENT, **{n: {"income": "warning"} for n in (30, 31)}}
    t = Tracker()
    t.nights(scenario(incident, days=31), config, range(1, 32))
    items = sorted(t.items.values(), key=lambda i: i["created_at"])
    assert [i["status"] for i in items] == ["resolved", "open"]
    assert items[1]["partitions"] == [f"{day(30).isoformat()}|{MODEL}", f"{day(31).isoformat()}|{MODEL}"]


def test_failure_that_returns_within_the_reopen_window_reopens_its_item(config):
    # resolved on day 22, failing again on day 28: the same alert re-opens, and its item with it
    incident = {**INCIDENT, **{n: {"income": "warning"} for n in (28, 29)}}
    t = Tracker()
    t.nights(scenario(incident), config, range(1, 28))
    assert [i["status"] for i in t.items.values()] == ["resolved"]
    t.nights(scenario(incident), config, range(28, 31))
    (item,) = t.items.values()
    (alert,) = t.alerts.values()
    assert item["status"] == "open" and item["resolved_at"] is None
    assert alert["status"] == "open" and alert["reopened"] == 1
    assert item["partitions"][-2:] == [f"{day(28).isoformat()}|{MODEL}", f"{day(29).isoformat()}|{MODEL}"]


def test_item_a_person_reopened_collects_the_next_failure_and_stays_open(config):
    incident = {**INCIDENT, **{n: {"income": "warning"} for n in (30, 31)}}
    history = scenario(incident, days=31)
    t = Tracker()
    t.nights(history, config, range(1, 23))
    (item,) = t.items.values()
    item.update(status="open", resolved_at=None, updated_at=_at(22, hour=9))  # `items reopen`
    t.nights(history, config, range(23, 30))
    assert [i["status"] for i in t.items.values()] == ["open"]  # no news: the re-open sticks
    t.nights(history, config, range(30, 32))
    (item,) = t.items.values()
    assert len(item["alert_ids"]) == 2 and item["status"] == "open"


def test_acknowledging_an_alert_moves_its_open_item_in_progress(config):
    history = scenario(INCIDENT)
    t = Tracker()
    t.nights(history, config, range(1, 12))
    (aid,) = t.alerts
    t.alerts[aid] = core_alerts.acknowledge(core_alerts.normalize_alerts(t.frame())[0], _at(11, hour=8))
    t.backlog(history, 11)
    assert [i["status"] for i in t.items.values()] == ["in_progress"]


def test_item_a_person_opened_for_a_dedup_key_collects_the_alert(config):
    history = scenario(INCIDENT)
    t = Tracker()
    key = core_alerts.dedup_key(MODEL, "drift_scores", "feature_drift", "income")
    mine = core.new_item(
        model_name=MODEL,
        title="Income looks off",
        severity="warning",
        reported_by="user",
        now=_at(5),
        dedup_key=key,
    )
    t.items[mine["item_id"]] = mine
    t.nights(history, config, range(1, 15))
    (item,) = t.items.values()
    assert item["item_id"] == mine["item_id"] and item["title"] == "Income looks off"
    assert item["reported_by"] == "user" and len(item["alert_ids"]) == 1 and item["severity"] == "critical"


def test_new_item_rejects_an_unknown_severity():
    with pytest.raises(ValueError):
        core.new_item(model_name=MODEL, title="x", severity="urgent", reported_by="user", now=_at(1))


def test_backlog_markdown_lists_open_work_first_and_names_the_partitions(config):
    t = Tracker()
    t.nights(scenario({**INCIDENT, **{n: {"age": "critical"} for n in (28, 29, 30)}}), config, range(1, 31))
    text = core.render_backlog_markdown(t.items_frame(), generated_at=pd.Timestamp("2026-07-01", tz="UTC"))
    assert text.index("## Open") < text.index("## Resolved")
    assert "2026-06-10 → 2026-06-19" in text and "2026-06-28 → 2026-06-30" in text
    assert "| item | status | severity | model | title | partitions | tracker |" in text


def test_items_frame_round_trips_lists_and_json():
    item = core.new_item(
        model_name=MODEL,
        title="t",
        severity="info",
        reported_by="user",
        now=_at(1),
        description="seen in support tickets",
    )
    (back,) = core.normalize_items(core.items_frame([item]))
    assert back["alert_ids"] == [] and back["evidence"] == {"description": "seen in support tickets"}
    assert json.loads(core.items_frame([item])["links"].iloc[0]) == {}


def test_date_ranges_are_compact():
    days = [dt.date(2026, 6, d) for d in (1, 2, 3, 5, 7, 8)]
    assert core.date_ranges(days) == "2026-06-01 → 2026-06-03, 2026-06-05, 2026-06-07 → 2026-06-08"


def test_one_incident_of_several_alerts_is_one_item_listing_them(config):
    from monitoring_pipelines_tests.core.test_alerts import UNIT_BUG, unit_bug_history

    history = unit_bug_history()
    t = Tracker()
    t.nights(history, config, range(30, UNIT_BUG + 1))
    (item,) = t.items.values()
    assert sorted(item["alert_ids"]) == sorted(t.alerts) and len(item["alert_ids"]) == 7
    assert item["severity"] == "critical" and item["status"] == "open"
    assert item["title"] == (
        "credit_default: income mean 4,415,944 vs reference 44,384, ×100 (7 alerts since 2026-07-05)"
    )
    assert item["dedup_key"] == "credit_default/drift_scores.critical_drift/income"
    assert item["asset_keys"] == ["drift_scores", "subgroup_metrics"]
    incident = item["evidence"]["incident"]
    assert incident["root_cause"].startswith("income mean") and len(incident["alerts"]) == 7
    text = core.render_item_markdown(item)
    assert "**root cause**: income mean 4,415,944" in text and "fairness_gap on age_band=65+" in text


def test_a_standing_finding_for_review_is_one_item_and_pages_nobody(config):
    """A fairness gap the model already had in its reference period: info, `review: true` -> one item."""
    from monitoring_pipelines_tests.core.test_alerts import check_row

    def standing(n: int, review: bool) -> dict:
        row = check_row(n, {"age_band=65+": "info"}, asset="subgroup_metrics", check="fairness_gap")
        found = json.loads(row["findings"])
        for f in found:
            f["evidence"] = {"kind": "standing", "review": review}
        row["findings"] = json.dumps(found)
        return row

    for review, items in ((True, 1), (False, 0)):
        history = pd.DataFrame([standing(n, review) for n in range(1, 31)])
        t = Tracker()
        t.nights(history, config, range(1, 31))
        assert len(t.items) == items
        assert t.outbox == {} or all(n["severity"] == "info" for n in t.outbox.values())
        if items:
            (item,) = t.items.values()
            assert item["severity"] == "info" and item["status"] == "open"
            assert item["partitions"][0].startswith(day(1).isoformat())
