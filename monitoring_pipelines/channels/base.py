"""The contract between the outbox (delivery.py) and a channel: the `Channel` protocol,
`DeliveryError`, the one exception a send may raise, and `SEND_DEADLINE_S`, the time a send may take."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

# Wall-clock budget of one send (connect, request, answer), in seconds. Per-operation socket timeouts
# alone let a receiver trickling a byte every few seconds hold a send forever; a send still unanswered
# when this runs out fails as "channel down". Read at each send (tests lower it).
SEND_DEADLINE_S = 20.0


class DeliveryError(Exception):
    """A send that did not succeed.

    `retryable`: the same notification may succeed later (service down, 5xx, 429, SMTP 4xx), as
    opposed to never as sent (4xx other than 429, SMTP 5xx, bad settings).
    `channel_down`: nothing else will get through right now either (connection refused, timeout,
    429, SMTP 421), so the outbox stops using the channel for the rest of the run.
    The message never contains secrets.
    """

    def __init__(self, message: str, retryable: bool, channel_down: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.channel_down = channel_down and retryable


@runtime_checkable
class Channel(Protocol):
    """What the outbox needs from a channel."""

    name: str

    def configured(self) -> bool:
        """True when every required environment variable is set (and valid)."""
        ...

    def problem(self) -> str | None:
        """Why the channel is not configured (names the variable, never its value); None when it is."""
        ...

    def send(self, notification: dict[str, Any]) -> None:
        """Deliver one notification or raise `DeliveryError`, within `SEND_DEADLINE_S` seconds."""
        ...
