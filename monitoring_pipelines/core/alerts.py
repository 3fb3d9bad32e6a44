"""Check history -> alert states and notification decisions (dedup, hysteresis, escalation, resolution).

Pure: the state of every alert is a function of the `check_results` history of one model up to a
partition date plus the human actions kept in the `alerts` table (acknowledged_at, a resolution by a
person). Ids are hashes of what identifies the thing (dedup key + episode start [+ kind, severity,
channel]), so re-running a day or backfilling out of order never duplicates an alert or a message.

Vocabulary (docs/alerting.md says the same):
- dedup key: model + check (asset.check_name) + subject. One open alert per dedup key at a time.
- episode: the failing days of one dedup key from its first failure until it resolves; one alert row.
- announce level: the highest severity that has passed noise control in the episode (criticals at
  once, warnings after `warning_persist_days` consecutive failing days, info at once).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

import pandas as pd

from monitoring_pipelines.config import AlertingConfig
from monitoring_pipelines.core.findings import SEVERITY_RANK
from monitoring_pipelines.core.routing import route_channels
from monitoring_pipelines.schema import columns_of

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
PASS = -1  # level of a day on which the check ran and found nothing for the subject
DEFAULT_NOTIFY_MAX_AGE_DAYS = 2
AUTO_RESOLVERS = frozenset({"auto", "superseded"})

ALERT_COLUMNS: list[str] = columns_of("alerts")  # declared once, in monitoring_pipelines.schema
DATE_COLUMNS = (
    "partition_date",
    "first_seen_date",
    "last_seen_date",
    "detected_date",
    "escalated_date",
    "resolved_date",
)
TIMESTAMP_COLUMNS = ("created_at", "updated_at", "acknowledged_at", "resolved_at", "notified_at")
# Columns whose change means the alert changed (timestamps of bookkeeping excluded).
CONTENT_COLUMNS = [c for c in ALERT_COLUMNS if c not in ("created_at", "updated_at")]

NOTIFICATION_COLUMNS = columns_of("notifications")


# --------------------------------------------------------------------------- small helpers


def stable_id(prefix: str, *parts: object) -> str:
    """A short deterministic id: the same parts give the same id in every run and process."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]
    return f"{prefix}_{digest}"


def dedup_key(model_name: str, asset: str, check_name: str, subject: str) -> str:
    """model + check + subject; the check is named with its asset, as Dagster identifies it."""
    return f"{model_name}/{asset}.{check_name}/{subject}"


def alert_id_for(key: str, start: dt.date) -> str:
    return stable_id("alr", key, start.isoformat())


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def as_date(value: Any) -> dt.date | None:
    """A DATE cell as `datetime.date` whatever the reader returned (Timestamp, date, ISO string, NaT)."""
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def as_timestamp(value: Any) -> pd.Timestamp | None:
    if is_missing(value):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def as_float(value: Any) -> float | None:
    if is_missing(value):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def as_list(value: Any) -> list[Any]:
    """A LIST cell (numpy array, list, JSON text or NULL) as a Python list."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return list(parsed) if isinstance(parsed, list) else [parsed]
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):
        return list(value)
    return [] if is_missing(value) else [value]


def as_json(value: Any) -> Any:
    """A JSON cell (text or already parsed) as Python data; NULL -> None."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return None if is_missing(value) else value


def json_text(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, column by column (much faster than `to_dict("records")` row by row in pandas 3)."""
    if frame is None or frame.empty:
        return []
    columns = [str(c) for c in frame.columns]
    values = [frame[c].tolist() for c in frame.columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def level_of(severity: str | None) -> int:
    return SEVERITY_RANK.get(str(severity), PASS) if severity else PASS


def partition_key_str(model_name: str, day: dt.date) -> str:
    """The string Dagster shows for a date×model key (dimensions sorted by name, joined by '|')."""
    return f"{day.isoformat()}|{model_name}"


def run_url(ui_base_url: str, run_id: str | None) -> str | None:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}" if run_id else None


def asset_url(ui_base_url: str, asset: str, model_name: str | None = None, day: dt.date | None = None) -> str:
    """The Dagster UI asset page (1.13 shape: /assets/<key path>?view=partitions&partition=<key>)."""
    path = "/".join(quote(part, safe="") for part in asset.split("/"))
    url = f"{ui_base_url.rstrip('/')}/assets/{path}"
    if model_name and day:
        return f"{url}?view=partitions&partition={quote(partition_key_str(model_name, day), safe='')}"
    return url


def check_url(ui_base_url: str, asset: str, check_name: str) -> str:
    """The asset check's page in the Dagster UI (evaluation history of the check)."""
    return f"{asset_url(ui_base_url, asset)}?view=checks&checkDetail={quote(check_name, safe='')}"


# --------------------------------------------------------------------------- history -> findings


FINDING_COLUMNS = [
    "model_name",
    "partition_date",
    "asset",
    "check_name",
    "run_id",
    "dedup_key",
    "subject",
    "severity",
    "level",
    "metric",
    "value",
    "threshold",
    "message",
    "evidence",
    "n_findings",
]


def normalize_history(history: pd.DataFrame) -> pd.DataFrame:
    """check_results rows with `partition_date` as `datetime.date` (readers differ)."""
    if history is None or history.empty:
        return pd.DataFrame(
            columns=[
                "model_name",
                "partition_date",
                "asset",
                "check_name",
                "passed",
                "severity",
                "findings",
                "run_id",
            ]
        )
    frame = history.copy()
    frame["partition_date"] = [as_date(v) for v in frame["partition_date"]]
    return frame


def finding_rows(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (dedup key, partition day): the day's worst finding for that subject.

    A check that failed without saying why (no warning/critical finding) becomes one finding about
    subject `model`, so no failure goes unalerted.
    """
    history = normalize_history(history)
    best: dict[tuple[str, dt.date], dict[str, Any]] = {}
    counts: dict[tuple[str, dt.date], int] = defaultdict(int)
    for row in map(_Row, records(history)):
        findings = as_json(row.findings) or []
        if not isinstance(findings, list):
            findings = []
        failing = any(level_of(f.get("severity")) >= 1 for f in findings if isinstance(f, dict))
        if not _truthy(row.passed) and not failing:
            severity = row.severity if level_of(row.severity) >= 1 else "warning"
            findings = [
                *findings,
                {
                    "check_name": row.check_name,
                    "severity": severity,
                    "metric": row.check_name,
                    "subject": "model",
                    "value": None,
                    "threshold": None,
                    "message": f"check {row.check_name} failed without a finding",
                    "evidence": {},
                },
            ]
        for finding in findings:
            if not isinstance(finding, dict) or level_of(finding.get("severity")) < 0:
                continue
            subject = str(finding.get("subject") or "model")
            key = dedup_key(row.model_name, row.asset, row.check_name, subject)
            slot = (key, row.partition_date)
            counts[slot] += 1
            level = level_of(finding.get("severity"))
            if slot in best and best[slot]["level"] >= level:
                continue
            best[slot] = {
                "model_name": row.model_name,
                "partition_date": row.partition_date,
                "asset": row.asset,
                "check_name": row.check_name,
                "run_id": None if is_missing(row.run_id) else row.run_id,
                "dedup_key": key,
                "subject": subject,
                "severity": SEVERITIES[level],
                "level": level,
                "metric": finding.get("metric") or row.check_name,
                "value": as_float(finding.get("value")),
                "threshold": as_float(finding.get("threshold")),
                "message": finding.get("message") or "",
                "evidence": finding.get("evidence") or {},
            }
    rows = [{**rec, "n_findings": counts[slot]} for slot, rec in best.items()]
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame.sort_values(["dedup_key", "partition_date"], kind="stable").reset_index(drop=True)


class _Row(dict):
    """Attribute access to a record's columns."""

    __getattr__ = dict.get


def _truthy(value: Any) -> bool:
    return False if is_missing(value) else bool(value)


def _evaluated_days(history: pd.DataFrame) -> dict[tuple[str, str], list[tuple[dt.date, str | None]]]:
    """(asset, check) -> sorted (day, run_id) on which the check ran: the days that can pass or fail."""
    days: dict[tuple[str, str], dict[dt.date, str | None]] = defaultdict(dict)
    for row in map(_Row, records(history)):
        days[(row.asset, row.check_name)][row.partition_date] = None if is_missing(row.run_id) else row.run_id
    return {k: sorted(v.items()) for k, v in days.items()}


# --------------------------------------------------------------------------- episodes


@dataclass
class Episode:
    """The running state of one alert while its days are replayed in date order."""

    key: str
    model_name: str
    asset: str
    check_name: str
    subject: str
    start: dt.date
    kind: str  # "fail" (warning/critical seen) or "info"
    initial_severity: str
    human_cut: dt.date | None = None
    max_level: int = PASS
    escalated_level: int = PASS
    streak: int = 0  # consecutive failing days (days the check ran)
    passing: int = 0  # consecutive passing days
    failing_days: int = 0
    announce: int = PASS
    last_seen: dt.date | None = None
    last_evaluated: dt.date | None = None
    detected: dt.date | None = None
    escalated: dt.date | None = None
    resolved: dt.date | None = None
    closed_by_user: bool = False
    latest: dict[str, Any] = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        return alert_id_for(self.key, self.start)

    @property
    def level(self) -> int:
        return 0 if self.kind == "info" else max(self.max_level, self.escalated_level)

    @property
    def severity(self) -> str:
        return SEVERITIES[self.level]

    def observe(
        self, day: dt.date, level: int, finding: dict[str, Any] | None, config: AlertingConfig
    ) -> None:
        """Fold one evaluated day into the episode (see the module docstring for the rules)."""
        self.last_evaluated = day
        if level >= 1:
            if self.kind == "info":  # an informational subject now fails: same alert, worse severity
                self.kind, self.streak = "fail", 0
            self.streak += 1
            self.passing = 0
            self.failing_days += 1
            self.last_seen = day
            self.latest = finding or self.latest
            self.max_level = max(self.max_level, level)
            if self.escalated is None and self.streak >= config.escalate_after_days and self.level < 2:
                self.escalated, self.escalated_level = day, self.level + 1
            if self.level == 2 or self.streak >= config.warning_persist_days:
                self.announce = max(self.announce, self.level)
                self.detected = self.detected or day
        elif level == 0 and self.kind == "info":
            self.passing = 0
            self.last_seen = day
            self.latest = finding or self.latest
            self.announce = max(self.announce, 0)
        else:  # passed (an info finding does not fail a check, so it counts as passing here)
            self.streak = 0
            self.passing += 1
            if self.passing >= config.resolve_after_days:
                self.resolved = day


def replay(
    findings: pd.DataFrame,
    evaluated: Mapping[tuple[str, str], list[tuple[dt.date, str | None]]],
    config: AlertingConfig,
    human_cuts: Mapping[str, dt.date] | None = None,
) -> list[Episode]:
    """All episodes of every dedup key in `findings`, replaying each check's evaluated days in order.

    `human_cuts` maps alert ids a person resolved to the last day their resolution covers: a failure
    after that day starts a new episode (new alert id) instead of silently continuing the old one.
    """
    human_cuts = human_cuts or {}
    episodes: list[Episode] = []
    for key, group in findings.groupby("dedup_key", sort=True):
        first = group.iloc[0]
        by_day = {r["partition_date"]: r for r in records(group)}
        current: Episode | None = None
        for day, run_id in evaluated.get((first["asset"], first["check_name"]), []):
            found = by_day.get(day)
            level = int(found["level"]) if found is not None else PASS
            if current is not None and current.human_cut is not None and day > current.human_cut:
                current.closed_by_user = True
                episodes.append(current)
                current = None
            if current is None:
                if level == PASS:
                    continue
                current = Episode(
                    key=str(key),
                    model_name=first["model_name"],
                    asset=first["asset"],
                    check_name=first["check_name"],
                    subject=first["subject"],
                    start=day,
                    kind="fail" if level >= 1 else "info",
                    initial_severity=SEVERITIES[level],
                )
                current.human_cut = human_cuts.get(current.alert_id)
            if found is not None and is_missing(found["run_id"]):
                found = {**found, "run_id": run_id}
            current.observe(day, level, found, config)
            if current.resolved is not None:
                episodes.append(current)
                current = None
        if current is not None:
            episodes.append(current)
    return episodes


# --------------------------------------------------------------------------- alert rows


def normalize_alerts(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    """`alerts` rows as plain Python values (dates, UTC timestamps, None for NULL), every column present."""
    if frame is None or frame.empty:
        return []
    rows = []
    for rec in records(frame.reindex(columns=ALERT_COLUMNS)):
        out: dict[str, Any] = {}
        for col, value in rec.items():
            if col in DATE_COLUMNS:
                out[col] = as_date(value)
            elif col in TIMESTAMP_COLUMNS:
                out[col] = as_timestamp(value)
            elif col in ("value", "threshold"):
                out[col] = as_float(value)
            elif col in ("consecutive_days", "passing_days", "failing_days"):
                out[col] = None if is_missing(value) else int(value)
            elif col == "notified":
                out[col] = _truthy(value)
            elif col == "evidence":
                out[col] = json_text(as_json(value) or {})
            else:
                out[col] = None if is_missing(value) else value
        rows.append(out)
    return rows


def alerts_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows in table column order; empty frames keep the columns so writers and readers agree."""
    return pd.DataFrame(list(rows), columns=ALERT_COLUMNS)


def is_human_resolved(row: Mapping[str, Any]) -> bool:
    return row.get("status") == "resolved" and (row.get("resolved_by") or "user") not in AUTO_RESOLVERS


def human_cut(row: Mapping[str, Any]) -> dt.date | None:
    return row.get("resolved_date") or row.get("last_seen_date") or row.get("partition_date")


def _episode_row(ep: Episode) -> dict[str, Any]:
    latest = ep.latest
    resolved = ep.resolved is not None
    return {
        "alert_id": ep.alert_id,
        "model_name": ep.model_name,
        "partition_date": ep.resolved if resolved else ep.last_evaluated,
        "first_seen_date": ep.start,
        "last_seen_date": ep.last_seen,
        "check_name": ep.check_name,
        "asset": ep.asset,
        "metric": latest.get("metric"),
        "subject": ep.subject,
        "severity": ep.severity,
        "initial_severity": ep.initial_severity,
        "value": as_float(latest.get("value")),
        "threshold": as_float(latest.get("threshold")),
        "message": latest.get("message"),
        "status": "resolved" if resolved else "open",
        "dedup_key": ep.key,
        "run_id": latest.get("run_id"),
        "consecutive_days": ep.streak,
        "passing_days": ep.passing,
        "notified": False,
        "evidence": json_text(latest.get("evidence") or {}),
        "created_at": None,
        "updated_at": None,
        "acknowledged_at": None,
        "resolved_at": None,
        "detected_date": ep.detected,
        "escalated_date": ep.escalated,
        "resolved_date": ep.resolved,
        "resolved_by": "auto" if resolved else None,
        "notified_severity": None,
        "notified_at": None,
        "failing_days": ep.failing_days,
    }


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    for col in CONTENT_COLUMNS:
        x, y = a.get(col), b.get(col)
        if col == "evidence":
            x, y = as_json(x), as_json(y)
        if is_missing(x) and is_missing(y):
            continue
        if col in ("value", "threshold") and x is not None and y is not None:
            if not math.isclose(float(x), float(y), rel_tol=1e-12, abs_tol=0.0):
                return False
            continue
        if x != y:
            return False
    return True


# --------------------------------------------------------------------------- notifications


def notification_row(
    *,
    kind: str,
    channel: str,
    severity: str,
    model_name: str,
    key: str | None,
    alert_ids: list[str],
    payload: dict[str, Any],
    now: pd.Timestamp,
    id_parts: tuple[object, ...],
) -> dict[str, Any]:
    """One outbox row, pending; the id is a hash of what the message is about, so enqueueing it twice
    (re-run, backfill, CLI and asset both resolving) sends it once."""
    return {
        "notification_id": stable_id("ntf", kind, channel, *id_parts),
        "channel": channel,
        "kind": kind,
        "severity": severity,
        "model_name": model_name,
        "dedup_key": key,
        "alert_ids": list(alert_ids),
        "payload": json_text(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
    }


def alert_payload(
    row: Mapping[str, Any], kind: str, ui_base_url: str, severity: str | None = None, owner: str | None = None
) -> dict[str, Any]:
    """The message body channels render (shape in docs/alerting.md). The title carries no severity or
    RESOLVED prefix: channels add those from `severity` and `kind`."""
    severity = severity or row["severity"]
    day = row.get("last_seen_date") or row.get("partition_date")
    subject = f"{row['check_name']} on {row['subject']}"
    title = f"{row['model_name']}: {subject}"
    if (
        kind != "resolve"
        and row.get("escalated_date")
        and severity == row["severity"] != row.get("initial_severity")
    ):
        title += f" (escalated: failing for {row.get('consecutive_days')} days)"
    return {
        "kind": kind,
        "title": title,
        "severity": severity,
        "model_name": row["model_name"],
        "owner": owner,
        "partition_date": day.isoformat() if day else None,
        "dedup_key": row["dedup_key"],
        "alert_ids": [row["alert_id"]],
        "check_name": row["check_name"],
        "asset": row.get("asset"),
        "subject": row["subject"],
        "metric": row.get("metric"),
        "value": as_float(row.get("value")),
        "threshold": as_float(row.get("threshold")),
        "message": row.get("message"),
        "first_seen_date": _iso(row.get("first_seen_date")),
        "consecutive_days": row.get("consecutive_days"),
        "status": row.get("status"),
        "links": alert_links(row, ui_base_url),
        "alerts": [],
    }


def alert_links(row: Mapping[str, Any], ui_base_url: str) -> dict[str, str | None]:
    day = row.get("last_seen_date") or row.get("partition_date")
    asset = row.get("asset")
    return {
        "run": run_url(ui_base_url, row.get("run_id")),
        "asset": asset_url(ui_base_url, asset, row["model_name"], day) if asset else None,
        "check": check_url(ui_base_url, asset, row["check_name"]) if asset else None,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def resolve_notifications(
    row: Mapping[str, Any], config: AlertingConfig, owner: str, now: pd.Timestamp
) -> list[dict[str, Any]]:
    """A resolved alert that paged (announced at critical) closes the page on every critical channel;
    warnings resolve quietly (their backlog item shows it)."""
    if row.get("notified_severity") != "critical" or not row.get("notified"):
        return []
    payload = alert_payload(row, "resolve", config.ui_base_url, severity="critical", owner=owner)
    return [
        notification_row(
            kind="resolve",
            channel=channel,
            severity="critical",
            model_name=row["model_name"],
            key=row["dedup_key"],
            alert_ids=[row["alert_id"]],
            payload=payload,
            now=now,
            id_parts=(row["alert_id"],),
        )
        for channel in route_channels(config, "critical", owner)
    ]


def _digest(
    model_name: str,
    owner: str,
    as_of: dt.date,
    channel: str,
    rows: list[DigestLine],
    config: AlertingConfig,
    now: pd.Timestamp,
) -> dict[str, Any]:
    severity = SEVERITIES[max(level_of(sev) for _, sev in rows)]
    entries = [
        {**alert_payload(r, "trigger", config.ui_base_url, severity=sev, owner=owner), "kind": "digest_entry"}
        for r, sev in rows
    ]
    counts: dict[str, int] = defaultdict(int)
    for _, sev in rows:
        counts[sev] += 1
    summary = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items(), key=lambda kv: -level_of(kv[0])))
    payload = {
        "kind": "digest",
        "title": f"{model_name}: {summary} on {as_of.isoformat()}",
        "severity": severity,
        "model_name": model_name,
        "owner": owner,
        "partition_date": as_of.isoformat(),
        "dedup_key": None,
        "alert_ids": [r["alert_id"] for r, _ in rows],
        "check_name": None,
        "subject": None,
        "metric": None,
        "value": None,
        "threshold": None,
        "message": f"{len(entries)} alert(s) of {model_name} passed noise control on {as_of.isoformat()}",
        "links": {"run": None, "asset": None},
        "alerts": entries,
    }
    return notification_row(
        kind="digest",
        channel=channel,
        severity=severity,
        model_name=model_name,
        key=None,
        alert_ids=payload["alert_ids"],
        payload=payload,
        now=now,
        id_parts=(model_name, as_of.isoformat()),
    )


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class AlertDecision:
    """What one evaluation changes: alert rows to upsert by alert_id, outbox rows to enqueue, and
    every alert of the model after the change (for reporting)."""

    alerts: pd.DataFrame
    notifications: pd.DataFrame
    current: pd.DataFrame
    fresh: bool = True


@dataclass(frozen=True)
class EvaluationContext:
    """The fixed inputs of one `evaluate` call that every step needs: who is told, as of which day and
    when, and whether `as_of` is fresh enough for anything to be sent at all."""

    config: AlertingConfig
    owner: str
    as_of: dt.date
    now: pd.Timestamp
    fresh: bool


class DigestLine(NamedTuple):
    """One alert in a channel's digest, at the severity it is announced at."""

    row: dict[str, Any]
    severity: str


@dataclass
class PendingChanges:
    """What an evaluation has decided so far, in the order it is written: upserted alert rows, outbox
    rows, and the digest lines per channel (sent as one message per channel once all episodes are seen)."""

    upserts: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    digests: dict[str, list[DigestLine]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class Announcement:
    """An open alert newly passing noise control at `severity`: a trigger of its own on each channel, or
    (`digest`: warnings and info while digest_warnings is on) a line in each channel's digest."""

    severity: str
    channels: tuple[str, ...]
    digest: bool


# Bookkeeping of the stored row that replaying the history cannot know, so a re-evaluation keeps it.
_KEPT_COLUMNS = ("created_at", "acknowledged_at", "notified", "notified_severity", "notified_at")


def evaluate(
    history: pd.DataFrame,
    existing: pd.DataFrame | None,
    config: AlertingConfig,
    owner: str,
    as_of: dt.date,
    now: pd.Timestamp | None = None,
    notify_max_age_days: int | None = None,
) -> AlertDecision:
    """Alert states of one model as of partition day `as_of`, merged with what the table holds.

    `history` is the model's check_results (rows after `as_of` are ignored for the state; the newest day
    present decides whether `as_of` is fresh enough to notify). `existing` is the model's alerts rows;
    human actions in it are kept (acknowledged_at, a person's resolution), and a row already updated
    by a later partition is left alone, so re-running an old day never rolls state back.
    """
    now = as_timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    hist, fresh = _history_as_of(history, as_of, _notify_max_age(config, notify_max_age_days))
    ctx = EvaluationContext(config=config, owner=owner, as_of=as_of, now=now, fresh=fresh)
    old = {r["alert_id"]: r for r in normalize_alerts(existing)}
    episodes = replay(finding_rows(hist), _evaluated_days(hist), config, _human_cuts(old))
    changes = PendingChanges()
    for ep in episodes:
        _evaluate_episode(ep, old.get(ep.alert_id), ctx, changes)
    _enqueue_digests(_model_name(hist, old), ctx, changes)
    _supersede(old, {ep.alert_id for ep in episodes}, ctx, changes)
    return _decision(old, changes, fresh)


def _notify_max_age(config: AlertingConfig, override: int | None) -> int:
    if override is not None:
        return override
    return int(getattr(config, "notify_max_age_days", DEFAULT_NOTIFY_MAX_AGE_DAYS))


def _history_as_of(history: pd.DataFrame, as_of: dt.date, max_age: int) -> tuple[pd.DataFrame, bool]:
    """The history up to `as_of`, and whether `as_of` is within `max_age` days of the newest day present:
    only a fresh day sends messages, so backfilling old days never pages anyone about the past."""
    hist = normalize_history(history)
    newest = max(hist["partition_date"], default=as_of)
    fresh = as_of >= newest - dt.timedelta(days=max_age)
    return hist[hist["partition_date"] <= as_of], fresh


def _human_cuts(old: Mapping[str, Mapping[str, Any]]) -> dict[str, dt.date]:
    """Alert id -> last day a person's resolution covers (see `replay`)."""
    return {aid: cut for aid, r in old.items() if is_human_resolved(r) and (cut := human_cut(r))}


def _evaluate_episode(
    ep: Episode, prev: dict[str, Any] | None, ctx: EvaluationContext, changes: PendingChanges
) -> None:
    """One replayed episode: its row merged with the stored one, the messages its change calls for
    (a resolve when it newly resolved, else an announcement), and the row upserted if it changed."""
    row = _merge_episode(ep, prev, ctx.now)
    if row is None:
        return
    if row["status"] == "resolved":
        if not prev or prev["status"] != "resolved":
            changes.outbox += resolve_notifications(row, ctx.config, ctx.owner, ctx.now)
    elif (announcement := _announcement(ep, row, ctx)) is not None:
        _announce(ep, row, announcement, ctx, changes)
    _stamp(row, prev, ctx.now, changes.upserts)


def _merge_episode(ep: Episode, prev: dict[str, Any] | None, now: pd.Timestamp) -> dict[str, Any] | None:
    """The episode's alert row keeping what only the table knows (human actions, what was notified).

    None when the stored row wins: a person resolved it (final for the episode), or a later partition
    already moved it on (re-running an old day must not roll it back).
    """
    if ep.closed_by_user or (prev and is_human_resolved(prev)):
        return None
    row = _episode_row(ep)
    if (
        prev
        and prev["partition_date"]
        and row["partition_date"]
        and prev["partition_date"] > row["partition_date"]
    ):
        return None
    if prev:
        for col in _KEPT_COLUMNS:
            row[col] = prev[col]
        if row["status"] == "resolved":
            row["resolved_at"] = prev["resolved_at"] if prev["status"] == "resolved" else None
    if row["status"] == "open" and row["acknowledged_at"] is not None:
        row["status"] = "acknowledged"
    if row["status"] == "resolved":
        row["resolved_at"] = row["resolved_at"] or now
    return row


def _announcement(ep: Episode, row: Mapping[str, Any], ctx: EvaluationContext) -> Announcement | None:
    """What to announce for an open episode, if anything: only on a fresh day and only a level above what
    was already announced, so a re-run or a backfill never sends the same thing twice."""
    if not ctx.fresh or ep.announce <= level_of(row["notified_severity"]):
        return None
    severity = SEVERITIES[ep.announce]
    channels = tuple(route_channels(ctx.config, severity, ctx.owner))
    return Announcement(severity, channels, digest=severity != "critical" and ctx.config.digest_warnings)


def _announce(
    ep: Episode,
    row: dict[str, Any],
    announcement: Announcement,
    ctx: EvaluationContext,
    changes: PendingChanges,
) -> None:
    """Queue the announcement and record it on the row, which is what keeps it from being sent again."""
    severity = announcement.severity
    if announcement.digest:
        for channel in announcement.channels:
            changes.digests[channel].append(DigestLine(row, severity))
    else:
        payload = alert_payload(row, "trigger", ctx.config.ui_base_url, severity=severity, owner=ctx.owner)
        changes.outbox += [
            notification_row(
                kind="trigger",
                channel=channel,
                severity=severity,
                model_name=ep.model_name,
                key=ep.key,
                alert_ids=[ep.alert_id],
                payload=payload,
                now=ctx.now,
                id_parts=(ep.alert_id, severity),
            )
            for channel in announcement.channels
        ]
    row["notified_severity"] = severity
    if announcement.channels:
        row["notified"] = True
        row["notified_at"] = row["notified_at"] or ctx.now


def _enqueue_digests(model_name: str, ctx: EvaluationContext, changes: PendingChanges) -> None:
    """One digest per channel for the warnings announced in this evaluation (channels in name order)."""
    for channel, lines in sorted(changes.digests.items()):
        changes.outbox.append(_digest(model_name, ctx.owner, ctx.as_of, channel, lines, ctx.config, ctx.now))


def _supersede(
    old: Mapping[str, dict[str, Any]], seen: set[str], ctx: EvaluationContext, changes: PendingChanges
) -> None:
    """Resolve stored alerts the history up to `as_of` no longer produces (a day re-run with corrected
    inputs), closing a page they raised. Human resolutions and alerts of later days are left alone."""
    for aid, prev in old.items():
        if aid in seen or is_human_resolved(prev) or prev.get("resolved_by") == "superseded":
            continue
        if prev["partition_date"] is not None and prev["partition_date"] <= ctx.as_of:
            row = {
                **prev,
                "status": "resolved",
                "resolved_by": "superseded",
                "resolved_at": prev["resolved_at"] or ctx.now,
                "resolved_date": ctx.as_of,
            }
            if prev["status"] != "resolved":
                changes.outbox += resolve_notifications(row, ctx.config, ctx.owner, ctx.now)
            _stamp(row, prev, ctx.now, changes.upserts)


def _decision(old: Mapping[str, dict[str, Any]], changes: PendingChanges, fresh: bool) -> AlertDecision:
    """The frames to write, and every alert of the model after the change (stored order, then new ones)."""
    changed = {r["alert_id"]: r for r in changes.upserts}
    current = [changed.get(aid, r) for aid, r in old.items()] + [
        r for aid, r in changed.items() if aid not in old
    ]
    return AlertDecision(
        alerts=alerts_frame(changes.upserts),
        notifications=pd.DataFrame(changes.outbox, columns=NOTIFICATION_COLUMNS),
        current=alerts_frame(current),
        fresh=fresh,
    )


def _stamp(
    row: dict[str, Any], prev: dict[str, Any] | None, now: pd.Timestamp, out: list[dict[str, Any]]
) -> None:
    """Keep bookkeeping timestamps still when nothing changed, so a re-run writes nothing new."""
    if prev is not None and _same(row, prev):
        return
    row["created_at"] = (prev or {}).get("created_at") or now
    row["updated_at"] = now
    out.append(row)


def _model_name(history: pd.DataFrame, old: Mapping[str, Mapping[str, Any]]) -> str:
    if len(history):
        return str(history["model_name"].iloc[0])
    return str(next(iter(old.values()))["model_name"]) if old else ""


# --------------------------------------------------------------------------- human actions


def acknowledge(row: Mapping[str, Any], now: pd.Timestamp) -> dict[str, Any]:
    """A person has seen the alert: it stays open (and can still resolve or escalate) but is marked."""
    out = dict(row)
    out["acknowledged_at"] = out.get("acknowledged_at") or now
    if out.get("status") == "open":
        out["status"] = "acknowledged"
    out["updated_at"] = now
    return out


def resolve_by_person(row: Mapping[str, Any], now: pd.Timestamp, by: str = "user") -> dict[str, Any]:
    """A person closes the alert: final for this episode; a later failure opens a new alert."""
    out = dict(row)
    if out.get("status") == "resolved" and is_human_resolved(out):
        return out
    out.update(
        status="resolved",
        resolved_by=by or "user",
        resolved_at=now,
        updated_at=now,
        resolved_date=out.get("partition_date") or out.get("last_seen_date"),
    )
    return out
