"""Alert channels behind one small interface, configured only from environment variables.

A channel turns one notification (the outbox `payload` plus its `notification_id`) into one
message on one service. It keeps no state and writes nothing: the outbox in `delivery.py`
decides when to send and records what happened. Settings are read from the environment each
time a channel is built (once per delivery run), so secrets never pass through the config file,
the warehouse or Dagster run storage, and rotating one needs no restart.

Every failure is a `DeliveryError` whose message is safe to store and log (see redaction.py).
Modules: base.py (the `Channel` protocol, `DeliveryError`, `SEND_DEADLINE_S`), deadline.py (the
wall-clock deadline of one send), http.py (`post_json`), message.py (wording, JSON), redaction.py
(secrets), and one module per channel. This file is the registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from monitoring_pipelines.channels.base import Channel, DeliveryError
from monitoring_pipelines.channels.email import EmailChannel
from monitoring_pipelines.channels.pagerduty import PagerDutyChannel
from monitoring_pipelines.channels.slack import SlackChannel
from monitoring_pipelines.channels.webhook import WebhookChannel
from monitoring_pipelines.config import CHANNEL_NAMES

__all__ = ["CHANNEL_NAMES", "REGISTRY", "Channel", "DeliveryError", "channel_from_env"]

# Channel name -> builds the channel from environment variables. One entry per config.CHANNEL_NAMES.
REGISTRY: dict[str, Callable[[Mapping[str, str]], Channel]] = {
    "webhook": WebhookChannel.from_env,
    "slack": SlackChannel.from_env,
    "pagerduty": PagerDutyChannel.from_env,
    "email": EmailChannel.from_env,
}
if tuple(REGISTRY) != CHANNEL_NAMES:
    raise ImportError(
        f"channel registry {list(REGISTRY)} does not match config.CHANNEL_NAMES {CHANNEL_NAMES}"
    )


def channel_from_env(name: str, environ: Mapping[str, str] | None = None) -> Channel:
    """The channel called `name`, its settings read from `environ` (default: os.environ) now."""
    if name not in REGISTRY:
        raise ValueError(f"unknown alert channel {name!r} (known: {list(CHANNEL_NAMES)})")
    return REGISTRY[name](os.environ if environ is None else environ)
