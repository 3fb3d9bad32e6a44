"""What a notification about an incident says on every channel: its size, root cause and alerts."""

from __future__ import annotations

import json

from monitoring_pipelines.channels.email import email_message
from monitoring_pipelines.channels.message import alert_line, detail_fields, headline
from monitoring_pipelines.channels.slack import slack_message
from monitoring_pipelines.config import AlertingConfig
from monitoring_pipelines.core import alerts as core
from monitoring_pipelines_tests.core.test_alerts import ROUTES, UNIT_BUG, Store, unit_bug_history

ROOT = "income mean 4,415,944 vs reference 44,384, ×100"


def incident_page() -> dict:
    store = Store()
    store.nightly(unit_bug_history(), AlertingConfig(routes=ROUTES), range(30, UNIT_BUG + 1))
    note = next(r for r in store.outbox.values() if r["channel"] == "slack")
    return {**json.loads(note["payload"]), "notification_id": note["notification_id"]}


def test_an_incident_notification_names_its_root_cause_and_its_alerts_everywhere():
    page = incident_page()
    assert headline(page) == f"[CRITICAL] credit_default: 7 alerts since 2026-07-05: {ROOT}"
    assert ("Incident", f"7 alerts since 2026-07-05; root cause: {ROOT}") in detail_fields(page)
    slack = json.dumps(slack_message(page), ensure_ascii=False)
    assert ROOT in slack and "fairness_gap on age_band=65+" in slack  # the message lists every alert
    mail = email_message(page, "monitoring@example.org", ["oncall@example.org"])
    body = mail.get_body(("plain",)).get_content()
    assert "Alerts (7):" in body and body.count("credit_default / ") == 7


def test_a_digest_line_of_an_incident_says_how_many_alerts_it_holds():
    line = alert_line({**incident_page(), "kind": "digest_entry"})
    assert line.startswith("credit_default (incident of 7 alerts) / critical_drift / income")


def test_a_single_alert_reads_as_before():
    row = {
        "alert_id": "alr_1",
        "model_name": "m",
        "check_name": "feature_drift",
        "subject": "income",
        "severity": "warning",
        "initial_severity": "warning",
        "dedup_key": "m/drift_scores.feature_drift/income",
        "first_seen_date": None,
    }
    payload = core.incident_payload(row, [row], "trigger", "http://ui", "warning", None)
    assert payload["title"] == "m: feature_drift on income" and payload["alerts"] == []
    assert all(label != "Incident" for label, _ in detail_fields(payload))


def test_an_unusable_day_is_described_by_its_message_not_empty_values():
    line = alert_line(
        {
            "model_name": "credit_default",
            "check_name": "snapshot_usable",
            "subject": "model",
            "metric": "day_usable",
            "value": None,
            "threshold": None,
            "message": "credit_default 2026-06-10 is not monitored: incoming/.../part-0.parquet: empty file, 0 bytes",
        }
    )
    assert "—" in line and "empty file, 0 bytes" in line
    assert "day_usable =" not in line and "threshold —" not in line
