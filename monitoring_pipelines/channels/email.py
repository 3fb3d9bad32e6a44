"""Email over SMTP: a plain-text body with a simple HTML alternative, one message per notification.

The Message-ID is derived from the notification id, so the rare resend after a crash carries the
same id and mail systems that drop duplicate Message-IDs show it once. SMTP 4xx replies and
connection trouble are retryable, 5xx replies (bad recipient, failed login) are not. The whole
exchange has a wall-clock deadline (`base.SEND_DEADLINE_S`), like the HTTP channels.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from monitoring_pipelines.channels import deadline
from monitoring_pipelines.channels.base import DeliveryError
from monitoring_pipelines.channels.message import (
    alert_line,
    detail_fields,
    headline,
    link_items,
    reference_line,
    truncate,
)
from monitoring_pipelines.channels.redaction import scrub

# Per socket operation; the whole exchange is bounded by base.SEND_DEADLINE_S.
SMTP_TIMEOUT_S = 15.0
SUBJECT_CHARS = 200
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def _text_body(notification: Mapping[str, Any]) -> str:
    lines = [headline(notification), ""]
    if notification.get("message"):
        lines += [str(notification["message"]), ""]
    fields = detail_fields(notification)
    if fields:
        width = max(len(label) for label, _ in fields)
        lines += [f"{label + ':':<{width + 1}} {value}" for label, value in fields] + [""]
    alerts = notification.get("alerts") or []
    if alerts:
        lines += [f"Alerts ({len(alerts)}):"] + [f"- {alert_line(a)}" for a in alerts] + [""]
    for text, href in link_items(notification):
        lines.append(f"{text}: {href}")
    lines += [
        "",
        reference_line(notification),
    ]
    return "\n".join(lines).strip() + "\n"


def _html_body(notification: Mapping[str, Any]) -> str:
    e = html.escape
    parts = [f"<h2>{e(headline(notification))}</h2>"]
    if notification.get("message"):
        parts.append(f"<p>{e(str(notification['message']))}</p>")
    fields = detail_fields(notification)
    if fields:
        rows = "".join(
            f'<tr><th align="left" style="padding-right:1em">{e(label)}</th><td>{e(value)}</td></tr>'
            for label, value in fields
        )
        parts.append(f"<table>{rows}</table>")
    alerts = notification.get("alerts") or []
    if alerts:
        items = "".join(f"<li>{e(alert_line(a))}</li>" for a in alerts)
        parts.append(f"<p>Alerts ({len(alerts)}):</p><ul>{items}</ul>")
    links = link_items(notification)
    if links:
        parts.append(
            "<p>" + " · ".join(f'<a href="{e(href)}">{e(text)}</a>' for text, href in links) + "</p>"
        )
    footer = reference_line(notification)
    parts.append(f'<p style="color:#777;font-size:small">{e(footer)}</p>')
    return "<html><body>" + "".join(parts) + "</body></html>\n"


def email_message(notification: Mapping[str, Any], sender: str, recipients: list[str]) -> EmailMessage:
    """The message for one notification; Message-ID fixed by the notification id."""
    # RFC 5322's hard limit; the default 78 folds "[CRITICAL] ..." subjects into a leading-space value.
    msg = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    msg["Subject"] = truncate(" ".join(headline(notification).split()), SUBJECT_CHARS)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    notification_id = str(notification.get("notification_id") or "")
    if notification_id:
        digest = hashlib.sha256(notification_id.encode()).hexdigest()[:40]
        msg["Message-ID"] = f"<{digest}@monitoring-pipelines>"
        msg["X-Monitoring-Notification-Id"] = notification_id
    msg.set_content(_text_body(notification))
    msg.add_alternative(_html_body(notification), subtype="html")
    return msg


def _parse_bool(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(word)


class _WatchedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose socket the current send deadline can shut down."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        deadline.watch(sock)
        return sock


@dataclass(frozen=True)
class EmailChannel:
    """Sends through MONITORING_SMTP_HOST from MONITORING_EMAIL_FROM to MONITORING_EMAIL_TO."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    name: str = "email"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmailChannel:
        """Settings from the environment; STARTTLS defaults to on whenever a login is configured,
        so a password is never sent in clear text unless MONITORING_SMTP_STARTTLS=false says so."""
        env = os.environ if environ is None else environ
        errors: list[str] = []
        user = env.get("MONITORING_SMTP_USER") or None
        try:
            starttls = _parse_bool(env.get("MONITORING_SMTP_STARTTLS"))
        except ValueError:
            errors.append("MONITORING_SMTP_STARTTLS is not true/false")
            starttls = None
        if starttls is None:
            starttls = user is not None
        port: int | None = 587 if starttls else 25
        raw_port = env.get("MONITORING_SMTP_PORT")
        if raw_port:
            try:
                port = int(raw_port)
                if not 0 < port < 65536:
                    raise ValueError(raw_port)
            except ValueError:
                errors.append("MONITORING_SMTP_PORT is not a port number")
                port = None
        recipients = tuple(a.strip() for a in (env.get("MONITORING_EMAIL_TO") or "").split(",") if a.strip())
        return cls(
            host=env.get("MONITORING_SMTP_HOST") or None,
            port=port,
            user=user,
            password=env.get("MONITORING_SMTP_PASSWORD") or None,
            starttls=starttls,
            sender=env.get("MONITORING_EMAIL_FROM") or None,
            recipients=recipients,
            errors=tuple(errors),
        )

    def problem(self) -> str | None:
        if self.errors:
            return "; ".join(self.errors)
        for variable, value in (
            ("MONITORING_SMTP_HOST", self.host),
            ("MONITORING_EMAIL_FROM", self.sender),
            ("MONITORING_EMAIL_TO", self.recipients),
        ):
            if not value:
                return f"{variable} is not set"
        bad = [a for a in self.recipients if "@" not in a]
        if bad or "@" not in (self.sender or ""):
            return "MONITORING_EMAIL_FROM / MONITORING_EMAIL_TO hold an address without @"
        if self.password and not self.user:
            return "MONITORING_SMTP_PASSWORD is set without MONITORING_SMTP_USER"
        return None

    def configured(self) -> bool:
        return self.problem() is None

    def send(self, notification: dict[str, Any]) -> None:
        if not self.configured() or self.host is None or self.port is None or self.sender is None:
            raise DeliveryError("email: channel not configured", True, channel_down=True)
        msg = email_message(notification, self.sender, list(self.recipients))
        where = f"smtp://{self.host}:{self.port}"
        try:
            with deadline.SendDeadline() as budget:
                try:
                    self._exchange(msg, self.host, self.port, min(SMTP_TIMEOUT_S, budget.seconds))
                except (smtplib.SMTPException, OSError):
                    if budget.expired:
                        message = f"email: no complete answer from {where} within {budget.seconds:g}s"
                        raise DeliveryError(message, True, channel_down=True) from None
                    raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            retryable = any(400 <= code < 500 for code in codes)
            raise DeliveryError(
                f"email: every recipient refused by {where} (SMTP {codes})", retryable
            ) from None
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            reply = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            reply = scrub(" ".join(truncate(reply, 200).split()), [self.password])
            # 421 "service not available" and a refused greeting: the server, not the message, is the problem.
            down = exc.smtp_code == 421 or isinstance(exc, smtplib.SMTPConnectError)
            message = f"email: SMTP {exc.smtp_code} from {where}: {reply}"
            raise DeliveryError(message, 400 <= exc.smtp_code < 500, channel_down=down) from None
        except smtplib.SMTPServerDisconnected:
            raise DeliveryError(f"email: {where} closed the connection", True, channel_down=True) from None
        except smtplib.SMTPNotSupportedError:
            message = f"email: {where} does not support STARTTLS or AUTH as configured"
            raise DeliveryError(message, False) from None
        except smtplib.SMTPException as exc:
            message = f"email: SMTP error from {where} ({type(exc).__name__})"
            raise DeliveryError(message, True) from None
        except ssl.SSLError as exc:
            message = f"email: TLS with {where} failed ({exc.reason or type(exc).__name__})"
            raise DeliveryError(message, True, channel_down=True) from None
        except OSError as exc:
            message = f"email: could not connect to {where} ({type(exc).__name__})"
            raise DeliveryError(message, True, channel_down=True) from None

    def _exchange(self, msg: EmailMessage, host: str, port: int, timeout: float) -> None:
        """One SMTP session: greet, STARTTLS and login as configured, send."""
        with _WatchedSMTP(host, port, timeout=timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg, from_addr=self.sender, to_addrs=list(self.recipients))
            # Some recipients refused while others accepted: the message went out, and a resend
            # would duplicate it for the others, so this counts as delivered.
