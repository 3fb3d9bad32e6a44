"""What the backlog export (alerting_service.export_to_tracker) needs from an issue tracker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class TrackerError(RuntimeError):
    """A tracker request that failed; the message never contains the token."""


class TrackerClient(Protocol):
    def create_issue(self, title: str, body: str, labels: Sequence[str]) -> dict[str, Any]: ...

    def set_state(self, number: int, state: str) -> dict[str, Any]: ...
