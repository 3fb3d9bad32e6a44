"""Each channel's message as a real server on 127.0.0.1 receives it, and how failures are classified."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from monitoring_pipelines import config
from monitoring_pipelines.channels import CHANNEL_NAMES, REGISTRY, DeliveryError, channel_from_env
from monitoring_pipelines.channels import base as contract
from monitoring_pipelines.channels.email import EmailChannel
from monitoring_pipelines.channels.http import post_json
from monitoring_pipelines.channels.pagerduty import PagerDutyChannel
from monitoring_pipelines.channels.redaction import redact_url
from monitoring_pipelines.channels.slack import SlackChannel
from monitoring_pipelines.channels.webhook import WebhookChannel
from monitoring_pipelines_tests.receivers import HttpReceiver, SmtpServer, TricklingReceiver, free_port

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
SLACK_PATH = "/services/T000SECRET/B000SECRET/XXXXsecretXXXX"


def trigger(**overrides: object) -> dict:
    notification = {
        "notification_id": "ntf_0001",
        "kind": "trigger",
        "title": "credit_default: PSI drift on income",
        "severity": "critical",
        "model_name": "credit_default",
        "partition_date": "2026-07-14",
        "dedup_key": "credit_default|drift|income",
        "alert_ids": ["alert-1"],
        "check_name": "drift",
        "subject": "income",
        "metric": "psi",
        "value": 0.4123456,
        "threshold": 0.25,
        "message": "PSI 0.41 > 0.25 for 3 days <escalated> & rising",
        "links": {
            "run": "http://127.0.0.1:3000/runs/abc",
            "asset": "http://127.0.0.1:3000/assets/drift_scores",
        },
    }
    notification.update(overrides)
    return notification


def digest() -> dict:
    alerts = [
        {
            "model_name": "churn_propensity",
            "check_name": "serving",
            "subject": "model",
            "metric": f"latency_p99_ms_{i}",
            "value": 612.0 + i,
            "threshold": 500.0,
            "message": "p99 latency above the warning level",
        }
        for i in range(3)
    ]
    return trigger(
        notification_id="ntf_digest",
        kind="digest",
        title="3 warnings for churn_propensity on 2026-07-14",
        severity="warning",
        model_name="churn_propensity",
        dedup_key="digest|churn_propensity|2026-07-14",
        alerts=alerts,
        check_name=None,
        subject=None,
        metric=None,
        value=None,
        threshold=None,
    )


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as r:
        yield r


# --------------------------------------------------------------------------- webhook


def test_webhook_posts_documented_json_with_idempotency_key(receiver: HttpReceiver) -> None:
    channel = channel_from_env("webhook", {"MONITORING_WEBHOOK_URL": receiver.url("/hooks/monitoring")})
    assert channel.configured()
    channel.send(trigger())

    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hooks/monitoring"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "ntf_0001"
    assert request.headers["X-Monitoring-Notification-Id"] == "ntf_0001"
    body = request.json()
    assert body["schema_version"] == 1
    assert body["notification_id"] == "ntf_0001"
    for key in (
        "kind",
        "title",
        "severity",
        "model_name",
        "partition_date",
        "dedup_key",
        "alert_ids",
        "check_name",
        "subject",
        "metric",
        "value",
        "threshold",
        "message",
        "links",
    ):
        assert body[key] == trigger()[key], key
    assert "X-Monitoring-Signature" not in request.headers


def test_webhook_signs_the_body_when_a_secret_is_set(receiver: HttpReceiver) -> None:
    env = {"MONITORING_WEBHOOK_URL": receiver.url(), "MONITORING_WEBHOOK_SECRET": "s3cret-signing-key"}
    channel_from_env("webhook", env).send(trigger(value=float("nan")))

    [request] = receiver.requests
    expected = hmac.new(b"s3cret-signing-key", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Monitoring-Signature"] == f"sha256={expected}"
    assert request.json()["value"] is None  # NaN is not JSON: sent as null


# --------------------------------------------------------------------------- Slack


def test_slack_message_has_fallback_text_and_blocks(receiver: HttpReceiver) -> None:
    channel_from_env("slack", {"MONITORING_SLACK_WEBHOOK_URL": receiver.url(SLACK_PATH)}).send(trigger())

    [request] = receiver.requests
    assert request.path == SLACK_PATH
    body = request.json()
    assert "[CRITICAL] credit_default: PSI drift on income" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types[0] == "header" and "section" in types and "actions" in types and types[-1] == "context"
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    message = body["blocks"][1]["text"]
    assert message["type"] == "mrkdwn"
    assert "&lt;escalated&gt; &amp; rising" in message["text"]  # mrkdwn control characters escaped
    fields = next(b for b in body["blocks"] if b.get("fields"))["fields"]
    assert {"type": "mrkdwn", "text": "*Value*\n0.4123"} in fields
    buttons = next(b for b in body["blocks"] if b["type"] == "actions")["elements"]
    assert [b["url"] for b in buttons] == [
        "http://127.0.0.1:3000/runs/abc",
        "http://127.0.0.1:3000/assets/drift_scores",
    ]


def test_slack_digest_lists_every_alert_and_resolve_says_resolved(receiver: HttpReceiver) -> None:
    channel = SlackChannel(url=receiver.url(SLACK_PATH))
    channel.send(digest())
    channel.send(trigger(kind="resolve", notification_id="ntf_0002"))

    digest_body, resolve_body = (r.json() for r in receiver.requests)
    sections = " ".join(
        b["text"]["text"] for b in digest_body["blocks"] if b["type"] == "section" and "text" in b
    )
    for i in range(3):
        assert f"latency_p99_ms_{i}" in sections
    assert digest_body["text"].startswith(":warning: [WARNING digest: 3 alerts]")
    assert resolve_body["text"].startswith(":white_check_mark: [RESOLVED]")


def test_digest_without_dedup_key_or_links_renders_on_every_channel(receiver: HttpReceiver) -> None:
    # The alerting step's digests carry dedup_key None and links set to None.
    note = {**digest(), "dedup_key": None, "links": {"run": None, "asset": None}, "owner": "growth-ml"}
    receiver.status = 202
    env = {
        "MONITORING_WEBHOOK_URL": receiver.url("/hook"),
        "MONITORING_SLACK_WEBHOOK_URL": receiver.url("/slack"),
        "MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "MONITORING_PAGERDUTY_EVENTS_URL": receiver.url("/pd"),
    }
    with SmtpServer() as server:
        for name in CHANNEL_NAMES:
            channel_from_env(name, {**env, **smtp_env(server)}).send(note)
    hook, slack, pd_event = (r.json() for r in receiver.requests)

    assert hook["dedup_key"] is None and hook["notification_id"] == "ntf_digest"
    assert "actions" not in [b["type"] for b in slack["blocks"]]
    assert "None" not in json.dumps(slack)
    assert pd_event["dedup_key"] == "ntf_digest" and pd_event["payload"]["group"] == "growth-ml"
    assert (
        pd_event["payload"]["class"] == "digest" and len(pd_event["payload"]["custom_details"]["alerts"]) == 3
    )
    assert "links" not in pd_event
    [mail] = server.messages
    assert "None" not in mail.body("plain") and "latency_p99_ms_0" in mail.body("html")


# --------------------------------------------------------------------------- PagerDuty


def test_pagerduty_trigger_and_resolve_share_the_dedup_key(receiver: HttpReceiver) -> None:
    receiver.status, receiver.body = 202, b'{"status":"success","message":"Event processed"}'
    env = {
        "MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "MONITORING_PAGERDUTY_EVENTS_URL": receiver.url("/v2/enqueue"),
    }
    channel = channel_from_env("pagerduty", env)
    channel.send(trigger(message="x" * 5000, title="y" * 2000))
    channel.send(trigger(kind="resolve", notification_id="ntf_0002"))

    triggered, resolved = (r.json() for r in receiver.requests)
    assert all(r.path == "/v2/enqueue" for r in receiver.requests)
    assert triggered["routing_key"] == ROUTING_KEY
    assert triggered["event_action"] == "trigger"
    assert triggered["dedup_key"] == "credit_default|drift|income"
    payload = triggered["payload"]
    assert len(payload["summary"]) <= 1024
    assert payload["severity"] == "critical"
    assert payload["source"] and payload["component"] == "credit_default" and payload["class"] == "drift"
    assert payload["group"]
    assert payload["custom_details"]["metric"] == "psi" and payload["custom_details"]["value"] == 0.4123456
    assert triggered["links"][0] == {"href": "http://127.0.0.1:3000/runs/abc", "text": "Dagster run"}
    assert resolved == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": triggered["dedup_key"],
    }


def test_pagerduty_needs_a_routing_key_and_defaults_to_the_public_endpoint() -> None:
    assert not channel_from_env("pagerduty", {}).configured()
    channel = channel_from_env("pagerduty", {"MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY})
    assert isinstance(channel, PagerDutyChannel)
    assert channel.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert ROUTING_KEY not in repr(channel)


# --------------------------------------------------------------------------- email


def smtp_env(server: SmtpServer, **extra: str) -> dict[str, str]:
    return {
        "MONITORING_SMTP_HOST": "127.0.0.1",
        "MONITORING_SMTP_PORT": str(server.port),
        "MONITORING_SMTP_STARTTLS": "false",
        "MONITORING_EMAIL_FROM": "monitoring@example.com",
        "MONITORING_EMAIL_TO": "risk-ml@example.com, oncall@example.com",
        **extra,
    }


def test_email_arrives_with_subject_text_and_html() -> None:
    with SmtpServer() as server:
        channel_from_env("email", smtp_env(server)).send(trigger())

    [mail] = server.messages
    assert mail.mail_from == "monitoring@example.com"
    assert mail.rcpt_tos == ["risk-ml@example.com", "oncall@example.com"]
    assert mail.subject == "[CRITICAL] credit_default: PSI drift on income"
    text = mail.body("plain")
    assert "PSI 0.41 > 0.25" in text and "Value:" in text and "http://127.0.0.1:3000/runs/abc" in text
    assert "&lt;escalated&gt;" in mail.body("html")
    assert mail.message["X-Monitoring-Notification-Id"] == "ntf_0001"
    assert mail.message["Message-ID"].endswith("@monitoring-pipelines>")


def test_email_logs_in_and_digest_lists_alerts() -> None:
    with SmtpServer(users={"alerts": "smtp-pass-123"}) as server:
        env = smtp_env(server, MONITORING_SMTP_USER="alerts", MONITORING_SMTP_PASSWORD="smtp-pass-123")
        channel_from_env("email", env).send(digest())
        with pytest.raises(DeliveryError) as wrong:
            channel_from_env("email", {**env, "MONITORING_SMTP_PASSWORD": "wrong-pass-456"}).send(digest())

    [mail] = server.messages
    assert mail.login == "alerts"
    assert mail.subject.startswith("[WARNING digest: 3 alerts]")
    assert "latency_p99_ms_2" in mail.body("plain")
    assert not wrong.value.retryable  # 535 authentication failed is permanent
    assert "wrong-pass-456" not in wrong.value.message


def test_email_smtp_4xx_is_retryable_and_5xx_is_not() -> None:
    with SmtpServer() as server:
        channel = channel_from_env("email", smtp_env(server))
        server.fail_next(1, "451 4.3.0 Try again later")
        with pytest.raises(DeliveryError) as temporary:
            channel.send(trigger())
        server.fail_next(1, "554 5.6.0 Message rejected")
        with pytest.raises(DeliveryError) as permanent:
            channel.send(trigger())
    assert temporary.value.retryable and "451" in temporary.value.message
    assert not permanent.value.retryable and "554" in permanent.value.message


def test_email_to_a_closed_port_is_retryable() -> None:
    env = {
        "MONITORING_SMTP_HOST": "127.0.0.1",
        "MONITORING_SMTP_PORT": str(free_port()),
        "MONITORING_EMAIL_FROM": "a@example.com",
        "MONITORING_EMAIL_TO": "b@example.com",
    }
    with pytest.raises(DeliveryError) as err:
        channel_from_env("email", env).send(trigger())
    assert err.value.retryable


def test_email_starttls_defaults_on_when_a_login_is_set() -> None:
    base = {
        "MONITORING_SMTP_HOST": "smtp.example.com",
        "MONITORING_EMAIL_FROM": "a@example.com",
        "MONITORING_EMAIL_TO": "b@example.com",
    }
    assert EmailChannel.from_env(base).starttls is False
    with_login = EmailChannel.from_env(
        {**base, "MONITORING_SMTP_USER": "u", "MONITORING_SMTP_PASSWORD": "pw-secret"}
    )
    assert with_login.starttls is True and with_login.port == 587
    assert "pw-secret" not in repr(with_login)
    assert EmailChannel.from_env({**base, "MONITORING_SMTP_STARTTLS": "maybe"}).problem() == (
        "MONITORING_SMTP_STARTTLS is not true/false"
    )


# --------------------------------------------------------------------------- send deadline

DEADLINE_S = 1.0  # channels.base.SEND_DEADLINE_S in these tests
SLACK_S = 1.5  # what a send may take beyond it on a busy machine


def timed_send(send: Callable[[], None]) -> tuple[BaseException | None, float]:
    """Run `send` in a thread and return what it raised and how long it took; fail when it is still
    running after the deadline and the slack (rather than hang the suite)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            send()
        except BaseException as exc:
            raised.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=DEADLINE_S + SLACK_S)
    took = time.monotonic() - started
    assert not thread.is_alive(), f"the send was still running after {took:.1f}s"
    return (raised[0] if raised else None), took


@pytest.mark.parametrize("interval_s", [0.3, 0.02], ids=["mid-status-line", "mid-headers-after-200"])
def test_http_receiver_trickling_an_answer_is_cut_off_at_the_deadline_as_channel_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, interval_s: float
) -> None:
    # At 0.02 s a byte, "HTTP/1.1 200 OK" is complete before the deadline: a cut 200 is still no answer.
    monkeypatch.setattr(contract, "SEND_DEADLINE_S", DEADLINE_S, raising=False)
    caplog.set_level(logging.DEBUG)
    with TricklingReceiver(interval_s=interval_s) as slow:
        error, took = timed_send(lambda: SlackChannel(url=slow.url(SLACK_PATH)).send(trigger()))
    assert took >= DEADLINE_S - 0.05
    assert isinstance(error, DeliveryError) and error.retryable and error.channel_down
    assert error.message == f"slack: no complete answer from http://127.0.0.1:{slow.port} within 1s"
    assert "SECRET" not in caplog.text  # urllib3 warns about the cut headers, naming the URL


def test_smtp_server_trickling_its_greeting_is_cut_off_at_the_deadline_as_channel_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(contract, "SEND_DEADLINE_S", DEADLINE_S, raising=False)
    with TricklingReceiver(interval_s=0.3, answer=TricklingReceiver.SMTP_ANSWER, read_request=False) as slow:
        env = {
            "MONITORING_SMTP_HOST": "127.0.0.1",
            "MONITORING_SMTP_PORT": str(slow.port),
            "MONITORING_EMAIL_FROM": "a@example.com",
            "MONITORING_EMAIL_TO": "b@example.com",
        }
        error, took = timed_send(lambda: channel_from_env("email", env).send(trigger()))
    assert took >= DEADLINE_S - 0.05
    assert isinstance(error, DeliveryError) and error.retryable and error.channel_down
    assert error.message == f"email: no complete answer from smtp://127.0.0.1:{slow.port} within 1s"


def test_a_send_answered_in_time_is_not_touched_by_its_deadline(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contract, "SEND_DEADLINE_S", DEADLINE_S, raising=False)
    receiver.delay_s = DEADLINE_S / 2
    error, _ = timed_send(lambda: WebhookChannel(url=receiver.url("/hook")).send(trigger()))
    assert error is None and len(receiver.delivered) == 1


# --------------------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize(
    ("status", "retryable"), [(503, True), (500, True), (429, True), (400, False), (404, False)]
)
def test_http_status_decides_whether_to_retry(receiver: HttpReceiver, status: int, retryable: bool) -> None:
    receiver.status, receiver.body = status, b"nope"
    with pytest.raises(DeliveryError) as err:
        WebhookChannel(url=receiver.url("/t0ken/path")).send(trigger())
    assert err.value.retryable is retryable
    assert f"HTTP {status} from http://127.0.0.1:{receiver.port}" in err.value.message


def test_errors_never_contain_the_secret_url_or_key(receiver: HttpReceiver) -> None:
    # A receiver that echoes the request back must not leak it into the stored error.
    receiver.responder = lambda request: (400, request.body + request.path.encode())
    env = {
        "MONITORING_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "MONITORING_PAGERDUTY_EVENTS_URL": receiver.url("/v2/enqueue"),
    }
    with pytest.raises(DeliveryError) as pd_err:
        channel_from_env("pagerduty", env).send(trigger())
    with pytest.raises(DeliveryError) as slack_err:
        SlackChannel(url=receiver.url(SLACK_PATH)).send(trigger())
    refused_url = f"http://user:pw-in-url@127.0.0.1:{free_port()}{SLACK_PATH}?token=abcdefgh"
    with pytest.raises(DeliveryError) as refused:
        post_json("slack", refused_url, {"text": "x"})

    assert ROUTING_KEY not in pd_err.value.message and "***" in pd_err.value.message
    assert SLACK_PATH not in slack_err.value.message and "SECRET" not in slack_err.value.message
    assert refused.value.retryable
    assert (
        refused.value.message
        == f"slack: could not connect to http://127.0.0.1:{refused_url.split(':')[3].split('/')[0]}"
    )
    for secret in ("pw-in-url", "SECRET", "abcdefgh"):
        assert secret not in refused.value.message


def test_debug_logging_does_not_reveal_webhook_paths(
    receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    SlackChannel(url=receiver.url(SLACK_PATH)).send(trigger())
    assert '"POST /*** HTTP/1.1" 200' in caplog.text
    assert "SECRET" not in caplog.text


def test_redact_url_keeps_scheme_and_host_only() -> None:
    assert redact_url("https://u:p@hooks.slack.com/services/T/B/X?x=1") == "https://hooks.slack.com"
    assert redact_url("http://127.0.0.1:8080/a/b") == "http://127.0.0.1:8080"


def test_channels_are_configured_only_by_their_variables() -> None:
    for name in CHANNEL_NAMES:
        assert not channel_from_env(name, {}).configured(), name
    bad = channel_from_env("webhook", {"MONITORING_WEBHOOK_URL": "hooks.example.com/abc-secret"})
    assert not bad.configured()
    assert "abc-secret" not in (bad.problem() or "")
    with pytest.raises(ValueError, match="unknown alert channel"):
        channel_from_env("carrier_pigeon", {})


def test_the_registry_has_one_channel_per_configured_name() -> None:
    # config.CHANNEL_NAMES is the one list of names: routes are validated against it and every
    # name must build a channel of that name.
    assert CHANNEL_NAMES is config.CHANNEL_NAMES
    assert tuple(REGISTRY) == config.CHANNEL_NAMES
    for name in config.CHANNEL_NAMES:
        assert channel_from_env(name, {}).name == name
