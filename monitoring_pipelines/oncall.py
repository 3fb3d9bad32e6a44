"""What on-call reads in the terminal: alerts and backlog items as short tables, one alert or item in words.

Pure formatting over rows of `monitoring.alerts` and `monitoring.backlog_items` (as `load_alerts` /
`load_items` return them); the CLI prints the text or, with `--json`, the records of `records()`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from monitoring_pipelines.core.alerts import asset_url, check_url, run_url
from monitoring_pipelines.core.formatting import fmt, is_missing

# What to do next, per check: the first look that tells a real incident from a data or pipeline problem.
NEXT_STEPS: dict[str, str] = {
    "snapshot_usable": "The day could not be read. Open the named file or table; fix or re-deliver it, then "
    "re-run the partition (`monitoring-pipelines run --start D --end D --model M`).",
    "validation": "Rows broke the data contract. Query monitoring.quarantined_predictions for the day and reason "
    "(docs/analysts.md) and ask the logging owner whether the producer changed.",
    "critical_drift": "An input moved far from the reference. Compare its current and reference summaries below; "
    "a jump by a power of ten is usually a unit or logging bug, a gradual move a population change. Check "
    "whether scores moved with it (__score__).",
    "feature_drift": "An input drifted. If scores and performance hold, note it on the backlog item; if it keeps "
    "growing, plan a reference refresh or a retrain.",
    "data_quality": "Nulls, unseen categories or out-of-range values rose. Look at the upstream feature pipeline "
    "for the day (a join or a new category), then decide: fix upstream or accept into the reference.",
    "performance_degradation": "Quality left its reference band. With labels: check whether one segment "
    "explains it (subgroup_metrics); without labels the value is an estimate: wait for labels before acting "
    "on it alone.",
    "performance_critical_drop": "Quality fell far below the reference. Confirm on labelled rows, check recent "
    "deploys and input drift for the same days, and consider a rollback or the shadow if it is ahead.",
    "fairness_gap": "A group's outcomes moved away from the most-favoured group's against the reference. Bring in "
    "the fairness reviewer; see subgroup_metrics for the group's n and interval.",
    "differential_degradation": "One segment's quality fell faster than the rest. Check that segment's recent "
    "data and labels; it may need its own threshold review or a retrain with more of its data.",
    "serving_slo": "Latency or errors broke the SLO. This is the serving side: page the service owner with the "
    "run link; compare champion and shadow rows.",
    "shadow_promotion": "The shadow model is measured against the champion on the same requests. Read the "
    "verdict and its interval before proposing a promotion.",
    "target_drift": "The labels moved (mean observed value or class shares) out of their reference band. Check "
    "whether quality moved on the same days; a real change in the world may call for a reference refresh or a "
    "retrain, a sudden one for a look at the labelling pipeline.",
    "business_outcome": "A business outcome left its band. Check whether model quality moved on the same days "
    "before blaming the model.",
}
GENERIC_NEXT_STEP = "Open the asset's partition page (link below) and read the check's metadata."
SKIPPED_EVIDENCE = {"profile_version", "kind", "current", "reference"}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: dates as ISO text, NaN/NaT as null, JSON text columns parsed."""
    out = []
    for row in frame.to_dict("records"):
        out.append({key: _plain(key, value) for key, value in row.items()})
    return out


def _plain(key: str, value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(key, v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return _plain(key, value.tolist())
    if not isinstance(value, str | list | dict) and is_missing(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if key in ("evidence", "links") and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if hasattr(value, "item"):
        return value.item()
    return value


def alert_ids(item: dict[str, Any]) -> list[str]:
    """An item's alert ids as a list (DuckDB's VARCHAR[] reaches pandas as an array; None when empty)."""
    ids = item.get("alert_ids")
    return [] if ids is None else [str(i) for i in ids]


def _day(value: Any) -> dt.date | None:
    return None if is_missing(value) else pd.Timestamp(value).date()


def days_open(alert: dict[str, Any], today: dt.date) -> int | None:
    """Calendar days from the first failing day to today (to the resolving day once resolved)."""
    first = _day(alert.get("first_seen_date"))
    if first is None:
        return None
    last = _day(alert.get("resolved_date")) if alert.get("status") == "resolved" else None
    return ((last or today) - first).days


def one_line(alert: dict[str, Any]) -> str:
    """`check on subject: metric value (threshold t)`: what failed, in one line."""
    what = str(alert.get("check_name") or "")
    if not is_missing(alert.get("subject")) and alert.get("subject"):
        what += f" on {alert['subject']}"
    metric = alert.get("metric")
    if is_missing(alert.get("value")) and alert.get("message"):
        return f"{what}: {' '.join(str(alert['message']).split())}"  # an unusable day: the message names the file
    if not is_missing(metric) and metric:
        what += f": {metric} {fmt(alert.get('value'), missing='n/a')}"
        if not is_missing(alert.get("threshold")):
            what += f" (threshold {fmt(alert.get('threshold'))})"
    return what


def alert_link(alert: dict[str, Any], ui_base_url: str) -> str:
    """The asset's page at the alert's latest failing model-day."""
    day = _day(alert.get("last_seen_date")) or _day(alert.get("partition_date"))
    return asset_url(ui_base_url, str(alert.get("asset") or ""), str(alert.get("model_name")), day)


def alerts_table(frame: pd.DataFrame, today: dt.date, ui_base_url: str) -> str:
    """One line per alert: id, model, severity, status, first seen, days open, what failed, link."""
    if frame.empty:
        return "no alerts"
    rows = [
        {
            "ID": a["alert_id"],
            "MODEL": a["model_name"],
            "SEVERITY": a["severity"],
            "STATUS": a["status"],
            "FIRST SEEN": str(_day(a.get("first_seen_date")) or ""),
            "DAYS": "" if (days := days_open(a, today)) is None else str(days),
            "WHAT": one_line(a),
            "LINK": alert_link(a, ui_base_url) if a.get("asset") else "",
        }
        for a in frame.to_dict("records")
    ]
    return _columns(rows)


def items_table(frame: pd.DataFrame) -> str:
    """One line per backlog item, titles in full."""
    if frame.empty:
        return "no backlog items"
    rows = [
        {
            "ID": i["item_id"],
            "STATUS": i["status"],
            "SEVERITY": i["severity"],
            "MODEL": i["model_name"],
            "SINCE": str(incident_since(i) or ""),
            "OPENED": str(_day(i.get("created_at")) or ""),
            "TITLE": i["title"],
        }
        for i in frame.to_dict("records")
    ]
    return _columns(rows)


def _partition_days(item: dict[str, Any]) -> list[dt.date]:
    """The days of an item's failing `YYYY-MM-DD|model` partitions, sorted."""
    parts = _plain("partitions", item.get("partitions")) or []
    return sorted({dt.date.fromisoformat(str(p)[:10]) for p in parts})


def incident_since(item: dict[str, Any]) -> dt.date | None:
    """The first failing day behind an item: the incident's date, not the day the item was written."""
    days = _partition_days(item)
    return days[0] if days else None


def day_ranges(days: list[dt.date]) -> str:
    """`2026-10-22 .. 2026-11-30 (40 days), 2026-12-03`: consecutive days folded into ranges."""
    spans: list[list[dt.date]] = []
    for day in days:
        if spans and (day - spans[-1][1]).days == 1:
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(str(a) if a == b else f"{a} .. {b} ({(b - a).days + 1} days)" for a, b in spans)


def _columns(rows: list[dict[str, str]]) -> str:
    """Left-aligned columns, the last one unpadded (titles and links are not cut)."""
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers[:-1]}
    lines = []
    for row in [dict(zip(headers, headers, strict=True)), *rows]:
        cells = [str(row[h]).ljust(widths[h]) for h in headers[:-1]] + [str(row[headers[-1]])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def evidence_words(evidence: Any) -> list[str]:
    """The evidence as sentences: reference → now for each summary both sides have, then the rest."""
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            return [evidence]
    if not isinstance(evidence, dict):
        return [] if is_missing(evidence) else [str(evidence)]
    lines = []
    ref, cur = evidence.get("reference"), evidence.get("current")
    if isinstance(ref, dict) and isinstance(cur, dict):
        for key in [k for k in cur if k in ref]:
            before, after = ref[key], cur[key]
            change = ""
            if (
                isinstance(before, int | float)
                and isinstance(after, int | float)
                and before
                and after != before
            ):
                ratio = after / before
                change = (
                    f" (×{fmt(ratio)})" if ratio >= 2 or ratio <= 0.5 else f" ({_signed(after - before)})"
                )
            lines.append(f"{key.replace('_', ' ')}: reference {_num(before)} → now {_num(after)}{change}")
    if "n_current" in evidence and "n_reference" in evidence:
        lines.append(
            f"rows compared: {_num(evidence['n_current'])} now vs {_num(evidence['n_reference'])} in the reference"
        )
    for key, value in evidence.items():
        if key in SKIPPED_EVIDENCE or key.startswith("n_") or isinstance(value, dict | list):
            continue
        lines.append(f"{key.replace('_', ' ')}: {fmt(value) if isinstance(value, int | float) else value}")
    return lines


def _num(value: Any) -> str:
    """Large values as whole numbers with separators (44,384, not 4.438e+04), the rest as `fmt` does."""
    if isinstance(value, int | float) and not is_missing(value) and abs(value) >= 1000:
        return f"{round(value):,}"
    return fmt(value)


def _signed(delta: float) -> str:
    """A change in words from its sign, never "fell -0.1"."""
    return f"up {fmt(abs(delta))}" if delta > 0 else f"down {fmt(abs(delta))}"


def alert_detail(
    alert: dict[str, Any],
    item: dict[str, Any] | None,
    today: dt.date,
    ui_base_url: str,
    incident: pd.DataFrame | None = None,
) -> str:
    """One alert for on-call: what failed, since when, the evidence in words, what to do, the other alerts
    of its incident, links."""
    first, last = _day(alert.get("first_seen_date")), _day(alert.get("last_seen_date"))
    opened = days_open(alert, today)
    lines = [
        f"{alert['alert_id']} · {alert['severity']} · {alert['status']} · {alert['model_name']}",
        f"What: {one_line(alert)}",
    ]
    if not is_missing(alert.get("message")) and alert.get("message"):
        lines.append(f"      {alert['message']}")
    since = f"Since: {first}" + (f" ({opened} days ago)" if opened is not None else "")
    if not is_missing(alert.get("failing_days")):
        since += f", failing on {int(alert['failing_days'])} day(s)"
    lines.append(since + (f", last failing day {last}" if last else ""))
    if alert.get("status") == "resolved":
        lines.append(f"Resolved: {_day(alert.get('resolved_date'))} by {alert.get('resolved_by') or 'auto'}")
    words = evidence_words(alert.get("evidence"))
    if words:
        lines.append("Evidence:")
        lines += [f"  - {w}" for w in words]
    lines.append("What to do next: " + NEXT_STEPS.get(str(alert.get("check_name")), GENERIC_NEXT_STEP))
    others = incident[incident["alert_id"] != alert["alert_id"]] if incident is not None else None
    cause = alert.get("root_cause")
    if isinstance(cause, str) and cause:
        lines.append(f"Incident {alert.get('incident_id')}: root cause {cause}")
    if others is not None and len(others):
        lines.append(f"Other alerts of this incident ({len(others)}):")
        lines += [
            f"  {a['alert_id']} {a['severity']} {a['status']}: {one_line(a)}"
            for a in others.to_dict("records")
        ]
    if item:
        lines.append(f"Backlog item: {item['item_id']} ({item['status']}): {item['title']}")
    lines.append("Links:")
    if alert.get("asset"):
        lines.append(f"  model-day: {alert_link(alert, ui_base_url)}")
        lines.append(f"  check:     {check_url(ui_base_url, str(alert['asset']), str(alert['check_name']))}")
    if run_url(ui_base_url, alert.get("run_id")):
        lines.append(f"  run:       {run_url(ui_base_url, alert.get('run_id'))}")
    return "\n".join(lines)


def item_detail(item: dict[str, Any], alerts: pd.DataFrame) -> str:
    """One backlog item: status, where it came from, its alerts and partitions, links."""
    since = incident_since(item)
    lines = [
        f"{item['item_id']} · {item['severity']} · {item['status']} · {item['model_name']}",
        f"Title: {item['title']}",
        (f"Since: {since} (first failing day); " if since else "")
        + f"opened {_day(item.get('created_at'))} by {item.get('reported_by') or 'monitoring'}",
    ]
    if not is_missing(item.get("resolved_at")):
        lines.append(f"Resolved: {_day(item.get('resolved_at'))}")
    if not is_missing(item.get("external_ref")) and item.get("external_ref"):
        lines.append(f"Tracker: {item['external_ref']}")
    if len(alerts):
        lines.append("Alerts:")
        for a in alerts.to_dict("records"):
            lines.append(f"  {a['alert_id']} {a['severity']} {a['status']} since {_day(a.get('first_seen_date'))}: "
                         f"{one_line(a)}")  # fmt: skip
    if days := _partition_days(item):
        lines.append("Failing days: " + day_ranges(days))
    links = _plain("links", item.get("links"))
    if isinstance(links, dict):
        lines.append("Links:")
        for key in ("asset", "check"):
            if links.get(key):
                lines.append(f"  {key}: {links[key]}")
    return "\n".join(lines)
