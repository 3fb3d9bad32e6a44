"""Alerts -> backlog items with lineage, and the item's lifecycle (open -> in_progress -> resolved).

Pure. One item tracks one incident (the alerts of a model that started together, `incident_id`) once
one of its alerts passed noise control (warning or critical), so a finding that repeats day after day,
or one cause that trips seven checks, updates one item instead of filing several. An alert that re-opens
re-opens its item. A failure that comes back after its item resolved (and after the alert's re-open
window) opens a new item, unless a person re-opened the old one (or opened an item for that dedup key by
hand): then it joins that item. Each item carries where it came from: alert ids, asset keys, the failing
partitions, the runs that saw them, the check's evidence, the incident's root cause and Dagster UI links.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd

from monitoring_pipelines.core.alerts import (
    SEVERITIES,
    as_date,
    as_json,
    as_list,
    as_timestamp,
    asset_url,
    check_url,
    is_missing,
    json_text,
    lead_row,
    level_of,
    normalize_alerts,
    partition_key_str,
    records,
    run_url,
    stable_id,
)
from monitoring_pipelines.core.formatting import code_span, fmt, markdown_table
from monitoring_pipelines.schema import columns_of

ITEM_STATUSES = ("open", "in_progress", "resolved")
ITEM_COLUMNS = columns_of("backlog_items")
LIST_COLUMNS = ("alert_ids", "asset_keys", "partitions", "run_ids")
JSON_COLUMNS = ("evidence", "links")
TIMESTAMP_COLUMNS = ("created_at", "updated_at", "resolved_at")
RUNS_SHOWN = 10  # runs listed in Markdown (the table keeps all)

# A finding's value or threshold: 4 significant digits, '–' when missing, infinities as Python prints them.
_number = partial(fmt, digits=4, infinity=("inf", "-inf"))


def normalize_items(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    """`backlog_items` rows as Python values: lists, parsed JSON, UTC timestamps, None for NULL."""
    if frame is None or frame.empty:
        return []
    rows = []
    for rec in records(frame.reindex(columns=ITEM_COLUMNS)):
        out: dict[str, Any] = {}
        for col, value in rec.items():
            if col in LIST_COLUMNS:
                out[col] = [str(v) for v in as_list(value)]
            elif col in JSON_COLUMNS:
                out[col] = as_json(value) or {}
            elif col in TIMESTAMP_COLUMNS:
                out[col] = as_timestamp(value)
            else:
                out[col] = None if is_missing(value) else value
        rows.append(out)
    return rows


def items_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows ready for the warehouse: JSON columns as text, list columns as lists."""
    out = []
    for row in rows:
        rec = {c: row.get(c) for c in ITEM_COLUMNS}
        for col in JSON_COLUMNS:
            rec[col] = json_text(rec[col] or {})
        for col in LIST_COLUMNS:
            rec[col] = list(rec[col] or [])
        out.append(rec)
    return pd.DataFrame(out, columns=ITEM_COLUMNS)


def new_item(
    *,
    model_name: str,
    title: str,
    severity: str,
    reported_by: str,
    now: pd.Timestamp,
    dedup_key: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """An item a person reports (reported_by 'user'): the KPIs count it as not detected by monitoring
    first unless an alert for the same dedup key was raised before it."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    return {
        "item_id": stable_id("itm", model_name, title, now.isoformat()),
        "title": title,
        "severity": severity,
        "model_name": model_name,
        "status": "open",
        "dedup_key": dedup_key,
        "alert_ids": [],
        "asset_keys": [],
        "partitions": [],
        "run_ids": [],
        "evidence": {"description": description} if description else {},
        "links": {},
        "reported_by": reported_by,
        "created_at": now,
        "updated_at": now,
        "resolved_at": None,
        "external_ref": None,
    }


@dataclass(frozen=True)
class BacklogDecision:
    items: pd.DataFrame  # rows to upsert by item_id (only those that changed)
    current: pd.DataFrame  # every item of the model after the change


def build_items(
    alerts: pd.DataFrame,
    findings: pd.DataFrame,
    existing: pd.DataFrame | None,
    ui_base_url: str,
    now: pd.Timestamp | None = None,
) -> BacklogDecision:
    """Open or update the items of one model from its alerts and check findings.

    `alerts`: the model's alerts rows (an incident's warning/critical alerts are tracked together once one
    of them has a `detected_date`). `findings`: `core.alerts.finding_rows` of the model's
    check history (the failing days give the item's partitions and runs). `existing`: the model's
    backlog_items rows. Status moves automatically only forward and only on news: an item resolves
    when its last alert resolves after the item last changed (so a person's re-open sticks), and an
    open item goes in_progress when one of its alerts is acknowledged.
    """
    now = as_timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    rows = [a for a in normalize_alerts(alerts) if a["resolved_by"] != "superseded"]
    failing = [a for a in rows if level_of(a["severity"]) >= 1]
    # A standing finding (info, evidence `review: true`, e.g. a fairness gap the model already had in its
    # reference period) pages nobody but is work for a person: it gets an item from its first day.
    review = [a for a in rows if level_of(a["severity"]) == 0 and for_review(a)]
    # An incident is tracked once one of its alerts passed noise control; then all of them are.
    detected = {a["incident_id"] or a["alert_id"] for a in failing if a["detected_date"] is not None}
    detected |= {a["incident_id"] or a["alert_id"] for a in review}
    eligible = [a for a in failing + review if (a["incident_id"] or a["alert_id"]) in detected]
    eligible.sort(key=lambda a: (a["first_seen_date"], a["alert_id"]))
    by_alert = {a["alert_id"]: a for a in eligible}
    old = {r["item_id"]: r for r in normalize_items(existing)}
    items = {iid: {**r, "alert_ids": [a for a in r["alert_ids"] if a in by_alert]} for iid, r in old.items()}

    for item in items.values():  # news about alerts already tracked
        _advance(item, [by_alert[a] for a in item["alert_ids"]], now)
    member = {aid: iid for iid, item in items.items() for aid in item["alert_ids"]}
    for alert in eligible:
        if alert["alert_id"] in member:
            continue
        target = _incident_item_for(items, member, by_alert, alert) or _open_item_for(items, alert)
        if target is None:
            target = {
                "item_id": stable_id("itm", alert["alert_id"]),
                "title": _title([alert]),
                "severity": alert["severity"],
                "model_name": alert["model_name"],
                "status": "open",
                "dedup_key": alert["dedup_key"],
                "alert_ids": [],
                "evidence": {},
                "links": {},
                "reported_by": "monitoring",
                "created_at": now,
                "updated_at": None,
                "resolved_at": None,
                "external_ref": None,
            }
            items[target["item_id"]] = target
        target["alert_ids"].append(alert["alert_id"])
        member[alert["alert_id"]] = target["item_id"]
        _advance(target, [by_alert[a] for a in target["alert_ids"]], now)

    changed = []
    for iid, item in items.items():
        tracked = [by_alert[a] for a in item["alert_ids"]]
        if tracked:
            item.update(_lineage(tracked, findings, ui_base_url, item.get("links") or {}))
            item["severity"] = SEVERITIES[max(level_of(a["severity"]) for a in tracked)]
            if item.get("reported_by") == "monitoring":
                item["title"] = _title(tracked)
                item["dedup_key"] = lead_row(tracked)["dedup_key"]
        prev = old.get(iid)
        if prev is None or not _same(item, prev):
            item["created_at"] = (prev or {}).get("created_at") or item.get("created_at") or now
            item["updated_at"] = now
            changed.append(item)
    return BacklogDecision(items=items_frame(changed), current=items_frame(items.values()))


def for_review(alert: Mapping[str, Any]) -> bool:
    """An info alert whose finding asks for a person's review (`evidence.review`)."""
    evidence = as_json(alert.get("evidence"))
    return isinstance(evidence, Mapping) and evidence.get("review") is True


def _incident_item_for(
    items: Mapping[str, dict[str, Any]],
    member: Mapping[str, str],
    by_alert: Mapping[str, Mapping[str, Any]],
    alert: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The unresolved item already tracking another alert of the same incident."""
    incident = alert.get("incident_id")
    if not incident:
        return None
    for aid, iid in member.items():
        if by_alert[aid].get("incident_id") == incident and items[iid]["status"] != "resolved":
            return items[iid]
    return None


def _open_item_for(items: Mapping[str, dict[str, Any]], alert: Mapping[str, Any]) -> dict[str, Any] | None:
    """An unresolved item for the same dedup key: a person's item or one a person re-opened."""
    candidates = [
        i for i in items.values() if i["status"] != "resolved" and i.get("dedup_key") == alert["dedup_key"]
    ]
    candidates.sort(key=lambda i: (i.get("created_at") or pd.Timestamp.min.tz_localize("UTC"), i["item_id"]))
    return candidates[-1] if candidates else None


def _advance(item: dict[str, Any], alerts: list[dict[str, Any]], now: pd.Timestamp) -> None:
    """Automatic status moves, only for news since the item last changed: forward, or back to open when
    one of its alerts re-opened after the item resolved (the same incident, back within days)."""
    if not alerts:
        return
    since = item.get("updated_at")
    if item["status"] == "resolved":
        reopened = [
            a["updated_at"] for a in alerts if a["status"] != "resolved" and a["updated_at"] is not None
        ]
        if reopened and (since is None or max(reopened) > since):
            item["status"], item["resolved_at"] = "open", None
        return
    resolved = [a["resolved_at"] for a in alerts if a["status"] == "resolved"]
    if len(resolved) == len(alerts):
        latest = max((t for t in resolved if t is not None), default=None)
        if since is None or (latest is not None and latest > since):
            item["status"], item["resolved_at"] = "resolved", now
            return
    acked = [a["acknowledged_at"] for a in alerts if a["acknowledged_at"] is not None]
    if item["status"] == "open" and acked and (since is None or max(acked) > since):
        item["status"] = "in_progress"


def _title(alerts: list[dict[str, Any]]) -> str:
    """One alert: what fails. An incident: its root cause and size."""
    lead = lead_row(alerts)
    if len(alerts) == 1 or not lead.get("root_cause"):
        return f"{lead['model_name']}: {lead['check_name']} failing for {lead['subject']} ({lead['metric']})"
    since = min(a["first_seen_date"] for a in alerts if a["first_seen_date"])
    return f"{lead['model_name']}: {lead['root_cause']} ({len(alerts)} alerts since {since.isoformat()})"


def _lineage(
    alerts: list[dict[str, Any]], findings: pd.DataFrame, ui_base_url: str, links: Mapping[str, Any]
) -> dict[str, Any]:
    """Where the item came from: partitions and runs of the failing days, evidence, UI links."""
    days: list[dict[str, Any]] = []
    if findings is not None and len(findings):
        for alert in alerts:
            start, end = alert["first_seen_date"], alert["last_seen_date"] or alert["first_seen_date"]
            floor = 0 if for_review(alert) else 1  # a standing finding's days are its info days
            rows = findings[(findings["dedup_key"] == alert["dedup_key"]) & (findings["level"] >= floor)]
            for rec in records(rows):
                day = as_date(rec["partition_date"])
                if day is not None and start <= day <= end:
                    days.append({**rec, "partition_date": day})
    days.sort(key=lambda r: r["partition_date"])
    model = alerts[0]["model_name"]
    partitions = list(dict.fromkeys(partition_key_str(model, r["partition_date"]) for r in days))
    run_ids = list(dict.fromkeys(r["run_id"] for r in days if not is_missing(r["run_id"])))
    latest_alert = max(alerts, key=lambda a: (a["last_seen_date"] or a["first_seen_date"], a["alert_id"]))
    latest = days[-1] if days else None
    worst = max(days, key=lambda r: (r["level"], r["partition_date"])) if days else None
    asset = latest_alert["asset"]
    latest_day = latest["partition_date"] if latest else latest_alert["last_seen_date"]
    evidence = {
        "dedup_key": latest_alert["dedup_key"],
        "check_name": latest_alert["check_name"],
        "asset": asset,
        "subject": latest_alert["subject"],
        "metric": latest_alert["metric"],
        "onset_date": days[0]["partition_date"].isoformat()
        if days
        else _iso(latest_alert["first_seen_date"]),
        "last_failing_date": _iso(latest_day),
        "failing_days": len(partitions),
        "latest": _day_summary(latest) if latest else _alert_summary(latest_alert),
        "worst": _day_summary(worst) if worst else _alert_summary(latest_alert),
    }
    if len(alerts) > 1 or alerts[0].get("incident_id"):
        lead = lead_row(alerts)
        evidence["incident"] = {
            "incident_id": lead.get("incident_id"),
            "root_cause": lead.get("root_cause"),
            "lead": lead["dedup_key"],
            "alerts": [
                {
                    "alert_id": a["alert_id"],
                    "dedup_key": a["dedup_key"],
                    "check_name": a["check_name"],
                    "subject": a["subject"],
                    "severity": a["severity"],
                    "status": a["status"],
                    "first_seen_date": _iso(a["first_seen_date"]),
                    "reopened": a.get("reopened") or 0,
                }
                for a in alerts
            ],
        }
    new_links = {
        **{k: v for k, v in links.items() if k == "external"},
        "run": run_url(ui_base_url, latest["run_id"] if latest else latest_alert["run_id"]),
        "asset": asset_url(ui_base_url, asset, model, latest_day) if asset and latest_day else None,
        "check": check_url(ui_base_url, asset, latest_alert["check_name"]) if asset else None,
        "runs": {r: run_url(ui_base_url, r) for r in run_ids},
        "partitions": {
            partition_key_str(model, r["partition_date"]): asset_url(
                ui_base_url, r["asset"], model, r["partition_date"]
            )
            for r in days
        },
    }
    return {
        "alert_ids": [a["alert_id"] for a in alerts],
        "asset_keys": sorted({a["asset"] for a in alerts if a["asset"]}),
        "partitions": partitions,
        "run_ids": run_ids,
        "evidence": evidence,
        "links": new_links,
    }


def _day_summary(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "partition_date": rec["partition_date"].isoformat(),
        "severity": rec["severity"],
        "metric": rec["metric"],
        "value": rec["value"],
        "threshold": rec["threshold"],
        "message": rec["message"],
        "run_id": rec["run_id"],
        "evidence": rec["evidence"],
    }


def _alert_summary(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "partition_date": _iso(alert["last_seen_date"]),
        "severity": alert["severity"],
        "metric": alert["metric"],
        "value": alert["value"],
        "threshold": alert["threshold"],
        "message": alert["message"],
        "run_id": alert["run_id"],
        "evidence": as_json(alert["evidence"]) or {},
    }


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    for col in ITEM_COLUMNS:
        if col in ("created_at", "updated_at"):
            continue
        x, y = a.get(col), b.get(col)
        if col in JSON_COLUMNS:
            x, y = as_json(json_text(x or {})), as_json(json_text(y or {}))
        elif col in LIST_COLUMNS:
            x, y = list(x or []), list(y or [])
        if is_missing(x) and is_missing(y):
            continue
        if x != y:
            return False
    return True


# --------------------------------------------------------------------------- rendering


def render_item_markdown(item: Mapping[str, Any]) -> str:
    """One item as Markdown: the body of a tracker issue and a section of backlog.md."""
    evidence = as_json(item.get("evidence")) or {}
    links = as_json(item.get("links")) or {}
    lines = [
        f"- **status**: {item['status']} · **severity**: {item['severity']} · **model**: {item['model_name']}"
        f" · **reported by**: {item.get('reported_by') or 'monitoring'}",
    ]
    if evidence.get("check_name"):
        lines.append(
            f"- **check**: `{evidence.get('asset')}.{evidence['check_name']}` on `{evidence.get('subject')}`"
            f" (metric `{evidence.get('metric')}`)"
        )
    if evidence.get("onset_date"):
        lines.append(
            f"- **failing**: {evidence.get('failing_days')} day(s), {evidence['onset_date']} → "
            f"{evidence.get('last_failing_date')}"
        )
    latest = evidence.get("latest") or {}
    if latest:
        lines.append(
            f"- **latest**: {latest.get('message') or ''} (value {_number(latest.get('value'))}, "
            f"threshold {_number(latest.get('threshold'))}, {latest.get('partition_date')})"
        )
    incident = evidence.get("incident") or {}
    if len(incident.get("alerts") or []) > 1:
        lines.append(f"- **root cause**: {incident.get('root_cause') or '–'}")
        lines.append(
            f"- **incident** ({len(incident['alerts'])} alerts): "
            + "; ".join(
                f"{a['check_name']} on {a['subject']} ({a['severity']}, {a['status']})"
                for a in incident["alerts"]
            )
        )
    if evidence.get("description"):
        lines.append(f"- **description**: {evidence['description']}")
    if item.get("external_ref"):
        lines.append(f"- **tracker**: {item['external_ref']}")
    lines.append(f"- **alerts**: {', '.join(as_list(item.get('alert_ids'))) or '–'}")
    lines.append(f"- **assets**: {', '.join(as_list(item.get('asset_keys'))) or '–'}")
    partitions = as_list(item.get("partitions"))
    if partitions:
        models = sorted({str(p).split("|")[-1] for p in partitions})
        days = [as_date(str(p).split("|")[0]) for p in partitions]
        lines.append(
            f"- **partitions** ({len(partitions)} of {', '.join(models)}): "
            f"{date_ranges([d for d in days if d is not None])}"
        )
    runs = links.get("runs") or {}
    run_ids = as_list(item.get("run_ids"))
    if run_ids:
        shown = [f"[{r[:8]}]({runs[r]})" if r in runs else r for r in run_ids[-RUNS_SHOWN:]]
        more = f" (and {len(run_ids) - RUNS_SHOWN} earlier)" if len(run_ids) > RUNS_SHOWN else ""
        lines.append(f"- **runs**: {', '.join(shown)}{more}")
    for label in ("check", "asset", "run"):
        if links.get(label):
            lines.append(f"- **{label} page**: {links[label]}")
    return "\n".join(lines)


def date_ranges(days: list[dt.date]) -> str:
    """Days as compact ranges: `2026-06-10 → 2026-06-14, 2026-06-16`."""
    spans: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if spans and (day - spans[-1][1]).days == 1:
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(a.isoformat() if a == b else f"{a.isoformat()} → {b.isoformat()}" for a, b in spans)


def render_backlog_markdown(items: pd.DataFrame, generated_at: pd.Timestamp | None = None) -> str:
    """backlog.md: every item, open work first, readable in any text editor."""
    rows = normalize_items(items)
    generated_at = generated_at or pd.Timestamp.now(tz="UTC")
    order = {s: i for i, s in enumerate(("open", "in_progress", "resolved"))}
    rows.sort(
        key=lambda r: (
            order.get(r["status"], 9),
            -level_of(r["severity"]),
            r["model_name"],
            -(r["created_at"].value if r["created_at"] is not None else 0),
        )
    )
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ITEM_STATUSES}
    out = [
        "# Model monitoring backlog",
        "",
        f"Generated {generated_at:%Y-%m-%d %H:%M} UTC by the `backlog_items` asset. "
        f"{counts['open']} open, {counts['in_progress']} in progress, {counts['resolved']} resolved.",
        "Change an item with `monitoring-pipelines items in-progress|resolve|reopen ID`.",
        "",
    ]
    table = []
    for r in rows:
        parts = r["partitions"]
        span = f"{parts[0].split('|')[0]} → {parts[-1].split('|')[0]} ({len(parts)})" if parts else "–"
        table.append(
            (
                code_span(r["item_id"]),
                r["status"],
                r["severity"],
                r["model_name"],
                r["title"],
                span,
                r["external_ref"] or "–",
            )
        )
    columns = ["item", "status", "severity", "model", "title", "partitions", "tracker"]
    # item is a code span and tracker a link or issue reference: markdown already, not escaped
    out.append(markdown_table(table, columns, formatters=str, markdown=("item", "tracker")))
    for status in ITEM_STATUSES:
        section = [r for r in rows if r["status"] == status]
        if not section:
            continue
        out += ["", f"## {status.replace('_', ' ').capitalize()}", ""]
        for r in section:
            out += [f"### {r['title']}", "", f"`{r['item_id']}`", "", render_item_markdown(r), ""]
    return "\n".join(out).rstrip() + "\n"
