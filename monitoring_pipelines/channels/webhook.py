"""Generic JSON webhook: the notification as documented, for receivers we do not know.

Body: `{"schema_version": 1, "notification_id": ..., <every field of the notification>}`.
Headers: `Idempotency-Key` and `X-Monitoring-Notification-Id` carry the notification id so a
receiver can drop the rare resend (see docs/alerting-channels.md); with
MONITORING_WEBHOOK_SECRET set, `X-Monitoring-Signature: sha256=<hex HMAC of the body>` lets it
check the sender.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring_pipelines.channels.base import DeliveryError
from monitoring_pipelines.channels.http import post_json
from monitoring_pipelines.channels.message import to_json_bytes
from monitoring_pipelines.channels.redaction import url_problem

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs each notification to MONITORING_WEBHOOK_URL."""

    url: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    name: str = "webhook"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookChannel:
        env = os.environ if environ is None else environ
        return cls(
            url=env.get("MONITORING_WEBHOOK_URL") or None,
            secret=env.get("MONITORING_WEBHOOK_SECRET") or None,
        )

    def problem(self) -> str | None:
        return url_problem("MONITORING_WEBHOOK_URL", self.url)

    def configured(self) -> bool:
        return self.problem() is None

    def body(self, notification: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON document a receiver gets."""
        return {
            "schema_version": SCHEMA_VERSION,
            "notification_id": notification.get("notification_id"),
            **{k: v for k, v in notification.items() if k != "notification_id"},
        }

    def send(self, notification: dict[str, Any]) -> None:
        if self.url is None:
            raise DeliveryError("webhook: channel not configured", True, channel_down=True)
        data = to_json_bytes(self.body(notification))
        notification_id = str(notification.get("notification_id") or "")
        headers = {
            "Idempotency-Key": notification_id,
            "X-Monitoring-Notification-Id": notification_id,
            "X-Monitoring-Event": str(notification.get("kind", "trigger")),
        }
        if self.secret:
            digest = hmac.new(self.secret.encode(), data, hashlib.sha256).hexdigest()
            headers["X-Monitoring-Signature"] = f"sha256={digest}"
        post_json(self.name, self.url, data, headers, secrets=[self.secret])
