"""What a notification says: the wording every human-readable channel shares, and strict JSON.

Pure string building: no IO, no settings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

NOTIFICATION_KINDS: tuple[str, ...] = ("trigger", "resolve", "digest")
SEVERITY_LABEL = {"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"}


# --------------------------------------------------------------------------- JSON


def to_json_bytes(obj: Any) -> bytes:
    """Strict JSON (NaN and infinities become null, dates ISO strings) as UTF-8 bytes."""
    return json.dumps(_jsonable(obj), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return _jsonable(obj.tolist())
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return str(obj)


# --------------------------------------------------------------------------- wording


def headline(notification: Mapping[str, Any]) -> str:
    """One line for subjects and fallbacks, e.g. `[CRITICAL] credit_default: PSI drift on income`."""
    kind = notification.get("kind", "trigger")
    title = notification.get("title") or f"{notification.get('model_name', '?')}: monitoring alert"
    if kind == "resolve":
        return f"[RESOLVED] {title}"
    label = SEVERITY_LABEL.get(
        str(notification.get("severity")), str(notification.get("severity", "")).upper()
    )
    if kind == "digest":
        n = len(notification.get("alerts") or [])
        return f"[{label} digest: {n} alert{'s' if n != 1 else ''}] {title}"
    return f"[{label}] {title}"


def format_value(value: Any) -> str:
    """Numbers in 4 significant digits; missing values as an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def detail_fields(notification: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The label/value pairs every human-readable channel shows, in a fixed order, empties left out."""
    fields = [
        ("Model", notification.get("model_name")),
        ("Partition date", notification.get("partition_date")),
        ("Check", notification.get("check_name")),
        ("Subject", notification.get("subject")),
        ("Metric", notification.get("metric")),
        ("Value", notification.get("value")),
        ("Threshold", notification.get("threshold")),
        ("Severity", notification.get("severity")),
        ("Incident", incident_text(notification)),
    ]
    out = []
    for label, value in fields:
        if value is None or value == "":
            continue
        out.append((label, format_value(value) if label in ("Value", "Threshold") else str(value)))
    return out


def incident_text(notification: Mapping[str, Any]) -> str | None:
    """`7 alerts since 2026-07-06; root cause: income mean 4,415,944 vs reference 44,384, ×100` for a
    notification about an incident of several alerts; None for a single alert."""
    incident = notification.get("incident")
    if not isinstance(incident, Mapping) or (incident.get("alerts") or 0) < 2:
        return None
    text = f"{incident['alerts']} alerts since {incident.get('first_seen_date') or '?'}"
    return f"{text}; root cause: {incident['root_cause']}" if incident.get("root_cause") else text


def alert_line(alert: Mapping[str, Any]) -> str:
    """One alert (or incident) of a digest on one line."""
    parts = [str(alert.get("model_name") or "?"), str(alert.get("check_name") or "?")]
    size = (alert.get("incident") or {}).get("alerts") if isinstance(alert.get("incident"), Mapping) else None
    if size and size > 1:
        parts[0] += f" (incident of {size} alerts)"
    if alert.get("subject"):
        parts.append(str(alert["subject"]))
    line = " / ".join(parts)
    if alert.get("metric") is not None and alert.get("value") is not None:  # an unusable day has no value
        line += (
            f": {alert['metric']} = {format_value(alert.get('value'))}"
            f" (threshold {format_value(alert.get('threshold'))})"
        )
    if alert.get("message"):
        line += f" — {alert['message']}"
    return line


def link_items(notification: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(text, href) of the notification's http(s) links, `run` and `asset` first."""
    links = notification.get("links") or {}
    if not isinstance(links, Mapping):
        return []
    names = {"run": "Dagster run", "asset": "Asset in Dagster"}
    ordered = [k for k in names if k in links] + sorted(str(k) for k in links if k not in names)
    return [
        (names.get(key, str(key).replace("_", " ").capitalize()), str(links[key]))
        for key in ordered
        if isinstance(links[key], str) and links[key].startswith(("http://", "https://"))
    ]


def reference_line(notification: Mapping[str, Any], code: str = "") -> str:
    """`dedup key … · notification …`, parts that are missing left out; `code` wraps each value."""
    parts = [
        f"{label} {code}{notification[key]}{code}"
        for label, key in (("dedup key", "dedup_key"), ("notification", "notification_id"))
        if notification.get(key)
    ]
    return " · ".join(parts)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
