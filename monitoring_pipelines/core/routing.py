"""Which channels a notification goes to: severity and model owner -> channel names.

Pure: reads only the `AlertingConfig` it is given, imports no channel code and does no IO, so
core/alerts.py can decide the routes without pulling in the HTTP and SMTP clients of channels/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitoring_pipelines.config import AlertingConfig


def route_channels(alerting: AlertingConfig, severity: str, owner: str | None = None) -> list[str]:
    """Channels a notification of `severity` for a model owned by `owner` goes to.

    An owner's route for a severity replaces the default route for that severity (so an owner
    can send its criticals to email only, or silence info with `[]`); severities the owner does
    not list fall back to `alerting.routes`. Order kept, duplicates dropped.
    """
    owner_routes = alerting.owner_routes.get(owner or "", {})
    chosen = owner_routes[severity] if severity in owner_routes else alerting.routes.get(severity, [])
    return list(dict.fromkeys(chosen))
