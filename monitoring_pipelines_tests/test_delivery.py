"""The outbox against real servers on 127.0.0.1: retries, outages, give-ups and exactly-once delivery.

Time is simulated by passing `now` to deliver_pending, never by sleeping; only the send deadline
tests measure wall time, with the deadline lowered to DEADLINE_S.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from monitoring_pipelines import delivery
from monitoring_pipelines.channels import base
from monitoring_pipelines.cli import main
from monitoring_pipelines.delivery import (
    DeliveryStats,
    deliver_pending,
    enqueue,
    make_notification_id,
    outbox_status,
    outbox_summary,
    retry_delay_seconds,
)
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.receivers import HttpReceiver, SmtpServer, TricklingReceiver, free_port

T0 = dt.datetime(2026, 7, 14, 6, 0, tzinfo=dt.UTC)
DEADLINE_S = 2.0  # the send deadline in the tests that meet a trickling receiver
SLACK_S = 2.0  # what a run may take beyond it (thread start, DuckDB writes) on a busy machine
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
HOOK_PATH = "/hooks/T0PSECRET-path-4711"


def payload(i: int, kind: str = "trigger", severity: str = "critical") -> dict:
    return {
        "kind": kind,
        "title": f"credit_default: drift on feature_{i}",
        "severity": severity,
        "model_name": "credit_default",
        "partition_date": "2026-07-14",
        "dedup_key": f"credit_default|drift|feature_{i}",
        "alert_ids": [f"alert-{i}"],
        "check_name": "drift",
        "subject": f"feature_{i}",
        "metric": "psi",
        "value": 0.3 + i / 100,
        "threshold": 0.25,
        "message": f"PSI above 0.25 on feature_{i}",
        "links": {"run": "http://127.0.0.1:3000/runs/r1"},
    }


def rows(
    channel: str, n: int, start: int = 0, created_at: dt.datetime = T0, kind: str = "trigger"
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "notification_id": make_notification_id(channel, kind, f"feature_{i}", "2026-07-14"),
                "channel": channel,
                "payload": payload(i, kind),
                "created_at": created_at + dt.timedelta(seconds=i),
            }
            for i in range(start, start + n)
        ]
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as r:
        yield r


def outbox(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.table("notifications").set_index("notification_id")


def received_ids(receiver: HttpReceiver, path: str = HOOK_PATH) -> Counter:
    """How often each notification reached the webhook at `path` (answered 2xx)."""
    return Counter(r.headers["Idempotency-Key"] for r in receiver.delivered if r.path == path)


# --------------------------------------------------------------------------- enqueue


def test_enqueue_is_idempotent_and_fills_columns_from_the_payload(warehouse: Warehouse) -> None:
    assert enqueue(warehouse, rows("webhook", 3)) == 3
    assert enqueue(warehouse, rows("webhook", 3)) == 0  # a re-run of the alerting step adds nothing
    assert enqueue(warehouse, pd.concat([rows("webhook", 4), rows("webhook", 4)])) == 1

    table = outbox(warehouse)
    assert len(table) == 4
    first = table.loc[make_notification_id("webhook", "trigger", "feature_0", "2026-07-14")]
    assert (first.status, first.attempts, first.kind, first.severity) == ("pending", 0, "trigger", "critical")
    assert first.dedup_key == "credit_default|drift|feature_0" and list(first.alert_ids) == ["alert-0"]


def test_enqueue_rejects_unknown_channels_and_kinds(warehouse: Warehouse) -> None:
    bad_channel = rows("webhook", 1).assign(channel="fax")
    with pytest.raises(ValueError, match="unknown channel"):
        enqueue(warehouse, bad_channel)
    bad_kind = rows("webhook", 1).assign(payload=[{**payload(0), "kind": "page"}])
    with pytest.raises(ValueError, match="kind"):
        enqueue(warehouse, bad_kind)


# --------------------------------------------------------------------------- delivery


def test_delivered_once_and_never_again(warehouse: Warehouse, receiver: HttpReceiver) -> None:
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
    enqueue(warehouse, rows("webhook", 3))

    stats = deliver_pending(warehouse, now=T0, environ=env)
    assert stats == DeliveryStats(delivered=3, pending_left=0)
    for k in range(1, 4):
        assert deliver_pending(warehouse, now=T0 + dt.timedelta(hours=k), environ=env).delivered == 0
    enqueue(warehouse, rows("webhook", 3))  # the alerting step runs again: nothing new
    assert deliver_pending(warehouse, now=T0 + dt.timedelta(days=1), environ=env).delivered == 0

    assert len(receiver.requests) == 3
    assert set(received_ids(receiver).values()) == {1}
    table = outbox(warehouse)
    assert set(table.status) == {"delivered"} and set(table.attempts) == {1}
    assert (table.delivered_at == T0).all()


def test_receiver_failing_twice_gets_it_exactly_once_after_backoff(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
    enqueue(warehouse, rows("webhook", 1))
    [notification_id] = outbox(warehouse).index
    receiver.fail_next(2, status=503)

    first = deliver_pending(warehouse, now=T0, environ=env, retry_base_seconds=60)
    assert (first.retried, first.delivered, first.pending_left) == (1, 0, 1)
    row = outbox(warehouse).loc[notification_id]
    assert row.attempts == 1 and row.next_attempt_at == T0 + dt.timedelta(seconds=60)
    assert row.last_error == f"webhook: HTTP 503 from http://127.0.0.1:{receiver.port}: service unavailable"

    # Not due yet: nothing is sent before the backoff has passed.
    assert deliver_pending(warehouse, now=T0 + dt.timedelta(seconds=30), environ=env) == DeliveryStats(
        pending_left=1
    )
    assert len(receiver.requests) == 1

    second = deliver_pending(warehouse, now=T0 + dt.timedelta(seconds=60), environ=env, retry_base_seconds=60)
    assert second.retried == 1
    assert outbox(warehouse).loc[notification_id].next_attempt_at == T0 + dt.timedelta(seconds=60 + 120)

    third = deliver_pending(warehouse, now=T0 + dt.timedelta(seconds=180), environ=env, retry_base_seconds=60)
    assert (third.delivered, third.pending_left) == (1, 0)
    for minutes in (10, 60, 600):
        deliver_pending(warehouse, now=T0 + dt.timedelta(minutes=minutes), environ=env)

    assert [r.status for r in receiver.requests] == [503, 503, 200]
    assert received_ids(receiver) == Counter({notification_id: 1})
    row = outbox(warehouse).loc[notification_id]
    assert (row.status, row.attempts) == ("delivered", 3)


def test_channels_down_for_a_night_lose_nothing_and_drain_once_back(warehouse: Warehouse) -> None:
    http_port, smtp_port = free_port(), free_port()  # nothing listening: connection refused all night
    env = {
        "MONITORING_WEBHOOK_URL": f"http://127.0.0.1:{http_port}{HOOK_PATH}",
        "MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "MONITORING_PAGERDUTY_EVENTS_URL": f"http://127.0.0.1:{http_port}/v2/enqueue",
        "MONITORING_SMTP_HOST": "127.0.0.1",
        "MONITORING_SMTP_PORT": str(smtp_port),
        "MONITORING_SMTP_STARTTLS": "false",
        "MONITORING_EMAIL_FROM": "monitoring@example.com",
        "MONITORING_EMAIL_TO": "oncall@example.com",
    }
    enqueue(warehouse, pd.concat([rows("webhook", 4), rows("pagerduty", 3), rows("email", 2)]))
    night = [T0 + dt.timedelta(minutes=45 * k) for k in range(16)]  # a run every 45 minutes for 12 hours
    for k, now in enumerate(night):
        if k == 8:  # new alerts keep arriving during the outage
            enqueue(
                warehouse,
                pd.concat(
                    [rows("webhook", 2, start=10, created_at=now), rows("email", 1, start=10, created_at=now)]
                ),
            )
        stats = deliver_pending(warehouse, now=now, environ=env, max_attempts=4)
        assert stats.delivered == 0 and stats.failed == 0
        assert stats.retried <= 3  # one probe per channel per run, the rest deferred

    table = outbox(warehouse)
    assert set(table.status) == {"pending"} and len(table) == 12
    assert table.attempts.max() > 4  # past max_attempts, yet not given up: the channel was down
    assert "could not connect to http://127.0.0.1" in " ".join(table.last_error.dropna())

    with HttpReceiver(port=http_port, status=202) as receiver, SmtpServer(port=smtp_port) as smtp:
        morning = night[-1] + dt.timedelta(minutes=45)
        stats = deliver_pending(warehouse, now=morning, environ=env, max_attempts=4)
        assert (stats.delivered, stats.failed, stats.pending_left) == (12, 0, 0)
        for k in range(1, 6):
            assert deliver_pending(warehouse, now=morning + dt.timedelta(hours=k), environ=env).delivered == 0

    webhook_ids = received_ids(receiver)
    pagerduty_keys = Counter(r.json()["dedup_key"] for r in receiver.delivered if r.path == "/v2/enqueue")
    assert webhook_ids == Counter({i: 1 for i in table[table.channel == "webhook"].index})
    assert set(pagerduty_keys.values()) == {1} and len(pagerduty_keys) == 3
    assert Counter(m.message["X-Monitoring-Notification-Id"] for m in smtp.messages) == Counter(
        {i: 1 for i in table[table.channel == "email"].index}
    )
    assert set(outbox(warehouse).status) == {"delivered"}


def test_notification_failing_while_its_channel_works_is_given_up(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
    enqueue(warehouse, rows("webhook", 3))
    poison = make_notification_id("webhook", "trigger", "feature_0", "2026-07-14")
    receiver.responder = lambda r: (500, b"boom") if r.headers.get("Idempotency-Key") == poison else None

    runs = [
        deliver_pending(warehouse, now=T0 + dt.timedelta(hours=k), environ=env, max_attempts=3)
        for k in range(6)
    ]

    table = outbox(warehouse)
    assert table.loc[poison].status == "failed" and table.loc[poison].attempts == 3
    assert table.loc[poison].last_error == f"webhook: HTTP 500 from http://127.0.0.1:{receiver.port}: boom"
    assert (table.drop(poison).status == "delivered").all()
    assert sum(s.failed for s in runs) == 1 and sum(s.delivered for s in runs) == 2
    assert Counter(r.headers["Idempotency-Key"] for r in receiver.requests)[poison] == 3
    assert set(received_ids(receiver).values()) == {1}


def test_rejected_request_fails_at_once_with_a_redacted_error(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    # A receiver echoing the request back: the routing key must still not reach the table.
    receiver.responder = lambda r: (400, b'{"status":"invalid event","echo":' + r.body + b"}")
    env = {
        "MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "MONITORING_PAGERDUTY_EVENTS_URL": receiver.url("/v2/enqueue"),
        "MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH),
    }
    enqueue(warehouse, pd.concat([rows("pagerduty", 1), rows("webhook", 1)]))

    stats = deliver_pending(warehouse, now=T0, environ=env)
    assert (stats.failed, stats.retried, stats.delivered, stats.pending_left) == (2, 0, 0, 0)
    assert any("HTTP 400" in e for e in stats.errors)
    assert deliver_pending(warehouse, now=T0 + dt.timedelta(hours=1), environ=env).failed == 0
    assert len(receiver.requests) == 2  # never retried

    table = outbox(warehouse)
    assert set(table.status) == {"failed"}
    assert all(
        e.startswith(("pagerduty: HTTP 400 from http://127.0.0.1:", "webhook: HTTP 400"))
        for e in table.last_error
    )
    dump = table.to_json() + outbox_summary(warehouse).to_json() + " ".join(stats.errors)
    for secret in (ROUTING_KEY, HOOK_PATH, "T0PSECRET"):
        assert secret not in dump
    assert ROUTING_KEY.encode() not in Path(warehouse.path).read_bytes()


def test_resolve_never_overtakes_its_pending_trigger(warehouse: Warehouse, receiver: HttpReceiver) -> None:
    receiver.status = 202
    env = {"MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "MONITORING_PAGERDUTY_EVENTS_URL": receiver.url()}
    enqueue(warehouse, rows("pagerduty", 1))
    receiver.fail_next(1, status=502)
    assert deliver_pending(warehouse, now=T0, environ=env).retried == 1

    # The alert resolves while its trigger waits out the backoff: the resolve must wait too.
    enqueue(warehouse, rows("pagerduty", 1, created_at=T0 + dt.timedelta(seconds=30), kind="resolve"))
    held = deliver_pending(warehouse, now=T0 + dt.timedelta(seconds=40), environ=env)
    assert (held.delivered, held.deferred, held.pending_left) == (0, 1, 2)

    deliver_pending(warehouse, now=T0 + dt.timedelta(minutes=2), environ=env)
    actions = [(r.json()["event_action"], r.json()["dedup_key"]) for r in receiver.delivered]
    assert actions == [
        ("trigger", "credit_default|drift|feature_0"),
        ("resolve", "credit_default|drift|feature_0"),
    ]
    assert set(outbox(warehouse).status) == {"delivered"}


def test_rate_limited_channel_is_left_alone_for_the_rest_of_the_run(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
    enqueue(warehouse, rows("webhook", 5))
    receiver.fail_next(1, status=429, body=b"slow down")

    stats = deliver_pending(warehouse, now=T0, environ=env)
    assert (stats.retried, stats.deferred, stats.delivered) == (1, 4, 0)
    assert len(receiver.requests) == 1

    stats = deliver_pending(warehouse, now=T0 + dt.timedelta(minutes=5), environ=env)
    assert (stats.delivered, stats.pending_left) == (5, 0)
    assert set(received_ids(receiver).values()) == {1}


def test_a_resend_after_a_crash_carries_the_same_idempotency_key(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
    enqueue(warehouse, rows("webhook", 1))
    deliver_pending(warehouse, now=T0, environ=env)
    # A crash between the send and its bookkeeping leaves the row pending (the one duplicate window).
    warehouse.execute("UPDATE monitoring.notifications SET status = 'pending', delivered_at = NULL")
    deliver_pending(warehouse, now=T0 + dt.timedelta(minutes=5), environ=env)

    first, second = receiver.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body  # same document: the receiver can drop the second


def test_unconfigured_channel_keeps_its_backlog_until_configured(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    enqueue(warehouse, pd.concat([rows("slack", 2), rows("webhook", 1)]))
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}

    stats = deliver_pending(warehouse, now=T0, environ=env)
    assert (stats.delivered, stats.skipped_unconfigured, stats.pending_left) == (1, 2, 2)
    slack = outbox(warehouse).query("channel == 'slack'")
    assert set(slack.status) == {"pending"} and set(slack.attempts) == {0}
    assert set(slack.last_error) == {"channel not configured: MONITORING_SLACK_WEBHOOK_URL is not set"}

    env["MONITORING_SLACK_WEBHOOK_URL"] = receiver.url("/services/T/B/slack-secret")
    stats = deliver_pending(warehouse, now=T0 + dt.timedelta(days=3), environ=env)
    assert (stats.delivered, stats.skipped_unconfigured, stats.pending_left) == (2, 0, 0)
    slack_bodies = [r.json() for r in receiver.delivered if r.path.startswith("/services/")]
    assert len(slack_bodies) == 2 and all("blocks" in b for b in slack_bodies)


def test_concurrent_runs_never_send_the_same_notification_twice(warehouse: Warehouse) -> None:
    with HttpReceiver(delay_s=0.05) as receiver:
        env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
        enqueue(warehouse, rows("webhook", 8))
        results: list[DeliveryStats] = []
        threads = [
            threading.Thread(target=lambda: results.append(deliver_pending(warehouse, now=T0, environ=env)))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert sum(s.delivered for s in results) == 8
    assert len(receiver.requests) == 8 and set(received_ids(receiver).values()) == {1}


def test_a_trickling_receiver_costs_one_deadline_and_holds_up_no_other_channel(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "SEND_DEADLINE_S", DEADLINE_S, raising=False)
    # The webhook's row is the oldest, so it would be sent first if channels went one after another.
    enqueue(warehouse, pd.concat([rows("webhook", 2), rows("pagerduty", 3, created_at=T0 + dt.timedelta(1))]))
    with TricklingReceiver(interval_s=1.0) as slow, HttpReceiver(status=202) as healthy:
        env = {
            "MONITORING_WEBHOOK_URL": slow.url(HOOK_PATH),
            "MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "MONITORING_PAGERDUTY_EVENTS_URL": healthy.url("/v2/enqueue"),
        }
        results: list[DeliveryStats] = []
        started = time.monotonic()
        run = threading.Thread(
            target=lambda: results.append(deliver_pending(warehouse, now=T0, environ=env)), daemon=True
        )
        run.start()
        run.join(timeout=DEADLINE_S + SLACK_S)
        took = time.monotonic() - started

        assert not run.is_alive(), f"deliver_pending still running after {took:.1f}s"
        assert took >= DEADLINE_S - 0.1  # the trickling send was given its whole deadline
        # Every PagerDuty event arrived, in queue order, before the webhook's deadline ran out.
        [slow_since] = slow.accepted_at
        assert [r.json()["dedup_key"] for r in healthy.delivered] == [
            f"credit_default|drift|feature_{i}" for i in range(3)
        ]
        assert all(r.received_at < slow_since + DEADLINE_S for r in healthy.delivered)
        # The trickling connection was closed by the sender, not left open in the background.
        while not slow.closed_at and time.monotonic() < started + DEADLINE_S + 3 * slow.interval_s + SLACK_S:
            time.sleep(0.05)
        assert len(slow.closed_at) == 1 and len(slow.requests) == 1  # one try, the other row deferred

    cut_off = f"webhook: no complete answer from http://127.0.0.1:{slow.port} within {DEADLINE_S:g}s"
    assert results == [DeliveryStats(delivered=3, retried=1, deferred=1, pending_left=2, errors=(cut_off,))]
    table = outbox(warehouse)
    hooks = table[table.channel == "webhook"].sort_values("created_at")
    assert set(hooks.status) == {"pending"} and list(hooks.attempts) == [1, 0]
    assert hooks.iloc[0].next_attempt_at == T0 + dt.timedelta(seconds=60)  # retried like a timeout
    assert hooks.iloc[0].last_error == cut_off
    assert set(table[table.channel == "pagerduty"].status) == {"delivered"}


def test_a_second_deliver_says_delivery_is_already_running(
    warehouse: Warehouse,
    tmp_path: Path,
    config_dict: dict,
    write_config,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dagster import build_sensor_context

    from monitoring_pipelines.defs.alerting import deliver_notifications
    from monitoring_pipelines.defs.resources import MonitoringResource

    config_dict["warehouse"] = str(warehouse.path)
    config = str(write_config(config_dict))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))  # main() exports both; restored after
    monkeypatch.setenv("MONITORING_CONFIG", config)
    for variable in (
        "MONITORING_WEBHOOK_URL",
        "MONITORING_SLACK_WEBHOOK_URL",
        "MONITORING_PAGERDUTY_ROUTING_KEY",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(base, "SEND_DEADLINE_S", DEADLINE_S, raising=False)
    monkeypatch.setattr(delivery, "DELIVERY_LOCK_TIMEOUT_S", 0.2)
    enqueue(warehouse, rows("webhook", 1))

    with TricklingReceiver() as slow:
        env = {"MONITORING_WEBHOOK_URL": slow.url(HOOK_PATH)}
        first = threading.Thread(
            target=deliver_pending, args=(warehouse,), kwargs={"now": T0, "environ": env}, daemon=True
        )
        first.start()
        assert slow.accepted.wait(timeout=10)  # the first run is sending: it holds the outbox

        code = main(["--config", config, "deliver"])
        err = capsys.readouterr().err
        resources = {"monitoring": MonitoringResource(config_path=config)}
        with build_sensor_context(resources=resources) as context:
            skipped = deliver_notifications(context)
        first.join(timeout=DEADLINE_S + SLACK_S)
        assert not first.is_alive()

    assert code == 75  # EX_TEMPFAIL, documented in docs/operating.md
    assert err.startswith(f"delivery already running (held by pid {os.getpid()} on ")
    assert "Traceback" not in err and "DeliveryBusy" not in err
    assert skipped.skip_message.startswith(f"outbox: delivery already running (held by pid {os.getpid()} on ")
    assert main(["--config", config, "deliver"]) == 0  # free again: the next run goes ahead


def test_outbox_summary_counts_by_channel_and_status(warehouse: Warehouse, receiver: HttpReceiver) -> None:
    assert outbox_summary(warehouse).empty
    enqueue(warehouse, pd.concat([rows("webhook", 2), rows("email", 1)]))
    deliver_pending(warehouse, now=T0, environ={"MONITORING_WEBHOOK_URL": receiver.url()})

    summary = outbox_summary(warehouse).set_index(["channel", "status"])
    assert summary.loc[("webhook", "delivered"), "notifications"] == 2
    assert summary.loc[("email", "pending"), "notifications"] == 1
    assert summary.loc[("email", "pending"), "last_error"].startswith("channel not configured")


def test_outbox_status_says_what_waits_for_settings_what_retries_when_and_what_failed(
    warehouse: Warehouse, receiver: HttpReceiver
) -> None:
    assert outbox_status(warehouse, now=T0).describe() == "nothing waiting"
    enqueue(warehouse, pd.concat([rows("slack", 2), rows("webhook", 2)]))
    env = {"MONITORING_WEBHOOK_URL": receiver.url(HOOK_PATH)}
    receiver.fail_next(1, status=503)  # the first webhook row retries
    receiver.fail_next(1, status=400)  # the second is rejected for good
    stats = deliver_pending(warehouse, now=T0, environ=env, retry_base_seconds=60)
    assert (stats.retried, stats.failed, stats.skipped_unconfigured) == (1, 1, 2)

    status = outbox_status(warehouse, now=T0 + dt.timedelta(seconds=1))
    assert (status.waiting_for_settings, status.retrying, status.due, status.failed) == (2, 1, 0, 1)
    assert status.next_retry_at == T0 + dt.timedelta(seconds=60)
    assert status.oldest_waiting == T0
    assert status.describe() == (
        "2 notifications waiting for channel settings since 2026-07-14 06:00 UTC "
        "(slack: MONITORING_SLACK_WEBHOOK_URL is not set); "
        "1 notification to retry after a failed send, next retry 2026-07-14 06:01 UTC; "
        "1 notification failed for good (error in notifications.last_error)"
    )
    # once the backoff has passed, the retry is due on the next tick
    later = outbox_status(warehouse, now=T0 + dt.timedelta(minutes=5))
    assert (later.retrying, later.due, later.next_retry_at) == (0, 1, None)


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [retry_delay_seconds(a, 60) for a in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert retry_delay_seconds(20, 60) == 3600
    assert retry_delay_seconds(500, 60, cap_seconds=6 * 3600) == 6 * 3600
