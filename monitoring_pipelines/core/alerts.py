"""Check history -> alert states, incidents and notification decisions (dedup, hysteresis, escalation,
re-opening, resolution, grouping).

Pure: the state of every alert is a function of the `check_results` history of one model up to a
partition date plus the human actions kept in the `alerts` table (acknowledged_at, a person's
resolution). Ids are hashes of what identifies the thing (dedup key + episode start, model + incident
start [+ kind, severity, channel]), so re-running a day or backfilling out of order never duplicates an
alert or a message.

Vocabulary (docs/alerting.md says the same):
- dedup key: model + check (asset.check_name) + subject. One open alert per dedup key at a time.
- episode: the failing days of one dedup key from its first failure until it resolves; one alert row.
  A failure within `reopen_within_days` of an automatic resolution re-opens the same episode.
- day levels of a subject: critical / warning / info (what was found), pass (judged, nothing found, or
  an `ok` value), unknown (too little data to judge, or the model-day was blocked at its root): an
  unknown day neither fails nor passes.
- incident: the alerts of a model whose episodes started within `incident_window_days` of the first
  one; named after its lead alert (the root cause); announced, resolved and tracked as one.
- announce level: the highest severity that has passed noise control (criticals at once, warnings after
  `warning_persist_days` consecutive failing days, info at once); an incident announces its members' highest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote

import pandas as pd

from monitoring_pipelines.config import AlertingConfig
from monitoring_pipelines.core.findings import OK, SEVERITY_RANK, UNKNOWN
from monitoring_pipelines.core.formatting import fmt
from monitoring_pipelines.core.profiles import PREDICTION_FEATURES
from monitoring_pipelines.core.routing import route_channels
from monitoring_pipelines.schema import columns_of

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
PASS = -1  # level of a day on which the check ran and found nothing (or an `ok` value) for the subject
UNKNOWN_LEVEL = -2  # the subject could not be judged that day: neither a failing nor a passing day
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
    """critical 2, warning 1, info 0; `unknown` UNKNOWN_LEVEL; anything else (`ok`, None) PASS."""
    if severity == UNKNOWN:
        return UNKNOWN_LEVEL
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
HISTORY_COLUMNS = [
    "model_name",
    "partition_date",
    "asset",
    "check_name",
    "passed",
    "severity",
    "findings",
    "run_id",
]
# The checks about the model-day's data itself. When one fails at its root level (the log is unusable, or
# more than the critical share of rows was quarantined), the day's other checks judged broken data: their
# findings are suppressed (listed in the root alert's evidence) and the day is unknown for them.
ROOT_CHECKS: dict[str, int] = {"snapshot_usable": 1, "validation": 2}  # check -> level that blocks the day
SUPPRESSED_SHOWN = 20
_ENTRY_LEVELS = {**SEVERITY_RANK, OK: PASS, UNKNOWN: UNKNOWN_LEVEL}


def normalize_history(history: pd.DataFrame) -> pd.DataFrame:
    """check_results rows with `partition_date` as `datetime.date` (readers differ)."""
    if history is None or history.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    frame = history.copy()
    frame["partition_date"] = [as_date(v) for v in frame["partition_date"]]
    return frame


@dataclass(frozen=True)
class ScreenedHistory:
    """check_results rows that judged their model-day, with their findings parsed.

    Left out: rows of a check that could not judge the day (severity `unknown`), and rows of a model-day
    blocked at its root (`ROOT_CHECKS`) other than the root checks themselves; the failing findings of
    those go to `suppressed`, by (model, day)."""

    rows: list[dict[str, Any]]
    suppressed: dict[tuple[str, dt.date], list[dict[str, Any]]]


def screen_history(history: pd.DataFrame) -> ScreenedHistory:
    rows = []
    for rec in records(normalize_history(history)):
        rec["findings"] = _findings_of(rec.get("findings"))
        rec["run_id"] = None if is_missing(rec.get("run_id")) else rec["run_id"]
        rows.append(rec)
    blocked = {(r["model_name"], r["partition_date"]) for r in rows if _blocks_day(r)}
    kept: list[dict[str, Any]] = []
    suppressed: dict[tuple[str, dt.date], list[dict[str, Any]]] = defaultdict(list)
    for rec in rows:
        slot = (rec["model_name"], rec["partition_date"])
        if slot in blocked and rec["check_name"] not in ROOT_CHECKS:
            suppressed[slot] += [
                {
                    "check": f"{rec['asset']}.{rec['check_name']}",
                    "subject": str(f.get("subject") or "model"),
                    "severity": f.get("severity"),
                    "message": f.get("message") or "",
                }
                for f in _with_fallback(rec)
                if level_of(f.get("severity")) >= 1
            ]
        elif rec.get("severity") == UNKNOWN and not _failing(rec["findings"]):
            continue  # the check judged nothing: not a checked day
        else:
            kept.append(rec)
    return ScreenedHistory(kept, dict(suppressed))


def _findings_of(value: Any) -> list[dict[str, Any]]:
    """A check_results row's findings as fresh dicts. The JSON text is parsed once per process: a range
    run evaluates every day against the whole history, which would otherwise parse each row once per day."""
    if isinstance(value, str):
        return [dict(f) for f in _parse_findings(value)]
    found = as_json(value) or []
    return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []


@lru_cache(maxsize=65_536)
def _parse_findings(text: str) -> tuple[dict[str, Any], ...]:
    found = as_json(text) or []
    return tuple(f for f in found if isinstance(f, dict)) if isinstance(found, list) else ()


def _failing(findings: list[dict[str, Any]]) -> bool:
    return any(level_of(f.get("severity")) >= 1 for f in findings)


def _blocks_day(rec: Mapping[str, Any]) -> bool:
    need = ROOT_CHECKS.get(rec["check_name"])
    if need is None:
        return False
    levels = [level_of(f.get("severity")) for f in rec["findings"]]
    if not _truthy(rec.get("passed")) and not any(lv >= 1 for lv in levels):
        levels.append(max(level_of(rec.get("severity")), 1))
    return max(levels, default=PASS) >= need


def _with_fallback(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The row's findings; a check that failed without saying why gets one finding about `model`, so no
    failure goes unalerted."""
    findings = list(rec["findings"])
    if not _truthy(rec.get("passed")) and not _failing(findings) and rec.get("severity") != UNKNOWN:
        severity = rec.get("severity") if level_of(rec.get("severity")) >= 1 else "warning"
        findings.append(
            {
                "check_name": rec["check_name"],
                "severity": severity,
                "metric": rec["check_name"],
                "subject": "model",
                "value": None,
                "threshold": None,
                "message": f"check {rec['check_name']} failed without a finding",
                "evidence": {},
            }
        )
    return findings


def finding_rows(history: pd.DataFrame | ScreenedHistory, min_level: int = UNKNOWN_LEVEL) -> pd.DataFrame:
    """One row per (dedup key, partition day): the day's worst entry for that subject.

    Levels: critical 2, warning 1, info 0, `ok` PASS (a judged value, for hysteresis), `unknown`
    UNKNOWN_LEVEL; entries below `min_level` are left out (the backlog's lineage needs no `ok` values,
    which are most of the entries). A root check's finding on a blocked day carries the suppressed
    findings in its evidence (`suppressed`, `suppressed_count`).
    """
    screened = history if isinstance(history, ScreenedHistory) else screen_history(history)
    best: dict[tuple[str, dt.date], dict[str, Any]] = {}
    counts: dict[tuple[str, dt.date], int] = defaultdict(int)
    for row in screened.rows:
        notes = screened.suppressed.get((row["model_name"], row["partition_date"]))
        for finding in _with_fallback(row):
            level = _ENTRY_LEVELS.get(str(finding.get("severity")))
            if level is None or level < min_level:
                continue
            subject = str(finding.get("subject") or "model")
            key = dedup_key(row["model_name"], row["asset"], row["check_name"], subject)
            slot = (key, row["partition_date"])
            counts[slot] += 1
            if slot in best and best[slot]["level"] >= level:
                continue
            evidence = finding.get("evidence") or {}
            if notes and level >= 1 and row["check_name"] in ROOT_CHECKS:
                evidence = {
                    **evidence,
                    "suppressed": notes[:SUPPRESSED_SHOWN],
                    "suppressed_count": len(notes),
                }
            best[slot] = {
                "model_name": row["model_name"],
                "partition_date": row["partition_date"],
                "asset": row["asset"],
                "check_name": row["check_name"],
                "run_id": row["run_id"],
                "dedup_key": key,
                "subject": subject,
                "severity": SEVERITIES[level] if level >= 0 else finding.get("severity"),
                "level": level,
                "metric": finding.get("metric") or row["check_name"],
                "value": as_float(finding.get("value")),
                "threshold": as_float(finding.get("threshold")),
                "message": finding.get("message") or "",
                "evidence": evidence,
            }
    rows = [{**rec, "n_findings": counts[slot]} for slot, rec in best.items()]
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame.sort_values(["dedup_key", "partition_date"], kind="stable").reset_index(drop=True)


def _truthy(value: Any) -> bool:
    return False if is_missing(value) else bool(value)


def _evaluated_days(screened: ScreenedHistory) -> dict[tuple[str, str], list[tuple[dt.date, str | None]]]:
    """(asset, check) -> sorted (day, run_id) on which the check judged the day: the days that can pass
    or fail (a day the check could not judge, or a blocked day, is not one)."""
    days: dict[tuple[str, str], dict[dt.date, str | None]] = defaultdict(dict)
    for row in screened.rows:
        days[(row["asset"], row["check_name"])][row["partition_date"]] = row["run_id"]
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
    passing: int = 0  # consecutive clear days (passing, and the value back inside by the margin)
    failing_days: int = 0
    announce: int = PASS
    last_seen: dt.date | None = None
    last_evaluated: dt.date | None = None
    detected: dt.date | None = None
    escalated: dt.date | None = None
    resolved: dt.date | None = None
    closed_by_user: bool = False
    reopened: int = 0
    direction: int = 0  # +1: higher values are worse, -1: lower are worse, 0: not known
    first: dict[str, Any] = field(default_factory=dict)
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
        """Fold one judged day into the episode (see the module docstring for the rules)."""
        self.last_evaluated = day
        self.first = self.first or (finding if finding is not None and level >= 0 else {})
        if level >= 1:
            if self.kind == "info":  # an informational subject now fails: same alert, worse severity
                self.kind, self.streak = "fail", 0
            self.streak += 1
            self.passing = 0
            self.failing_days += 1
            self.last_seen = day
            self.latest = finding or self.latest
            self.direction = finding_direction(self.latest) or self.direction
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
            if not self.clear(finding, config.resolve_margin):
                self.passing = 0  # back under the threshold, not yet by the margin: hold
                return
            self.passing += 1
            if self.passing >= config.resolve_after_days:
                self.resolved = day

    def clear(self, observed: Mapping[str, Any] | None, margin: float) -> bool:
        """Is a passing day's value (an `ok` or info entry for the alert's metric) back inside the
        threshold by `margin`? A day without a value for the metric counts as clear (the check said it
        passed and gave nothing more); so does every day of an alert whose direction is not known."""
        if self.kind == "info" or not self.direction or not observed:
            return True
        value = as_float(observed.get("value"))
        if value is None or observed.get("metric") != self.latest.get("metric"):
            return True
        threshold = as_float(observed.get("threshold"))
        threshold = as_float(self.latest.get("threshold")) if threshold is None else threshold
        if threshold is None:
            return True
        return value_clear(value, threshold, self.direction, margin, reference_value(self.latest))

    def reopen(self, day: dt.date) -> None:
        """The same incident again: the alert is open once more, with its history and announcements."""
        self.resolved = None
        self.reopened += 1
        self.passing = self.streak = 0


def finding_direction(finding: Mapping[str, Any]) -> int:
    """+1 when higher values of the finding's metric are worse, -1 when lower are, 0 when unknown.

    Said by the finding (`evidence.direction`: `higher_is_worse` / `lower_is_worse`, or
    `evidence.higher_is_better`), else read from the failing finding itself: its value lies beyond its
    threshold on the worse side (PSI 0.4 > 0.25: higher is worse; AUC 0.71 < band 0.78: lower is worse).
    """
    evidence = finding.get("evidence") or {}
    if isinstance(evidence, Mapping):
        said = evidence.get("direction")
        if said in ("higher_is_worse", "lower_is_worse"):
            return 1 if said == "higher_is_worse" else -1
        if isinstance(evidence.get("higher_is_better"), bool):
            return -1 if evidence["higher_is_better"] else 1
    value, threshold = as_float(finding.get("value")), as_float(finding.get("threshold"))
    if value is None or threshold is None or value == threshold:
        return 0
    return 1 if value > threshold else -1


def reference_value(finding: Mapping[str, Any]) -> float:
    """The metric's value when nothing is wrong, from the finding's evidence (`reference_value`,
    `band_mean`, `reference_mean`); 0 otherwise (PSI, error rates, shares)."""
    evidence = finding.get("evidence") or {}
    if isinstance(evidence, Mapping):
        for name in ("reference_value", "band_mean", "reference_mean"):
            value = as_float(evidence.get(name))
            if value is not None:
                return value
    return 0.0


def value_clear(
    value: float, threshold: float, direction: int, margin: float, reference: float = 0.0
) -> bool:
    """Hysteresis: `value` is inside `threshold` by `margin` × the threshold's distance from `reference`
    (with reference 0: threshold × (1 − margin) when higher is worse, e.g. PSI ≤ 0.225 for 0.25)."""
    scale = abs(threshold - reference) or abs(threshold)
    if direction > 0:
        return value <= threshold - margin * scale
    return value >= threshold + margin * scale


def replay(
    findings: pd.DataFrame,
    evaluated: Mapping[tuple[str, str], list[tuple[dt.date, str | None]]],
    config: AlertingConfig,
    human_cuts: Mapping[str, dt.date] | None = None,
) -> list[Episode]:
    """All episodes of every dedup key in `findings`, replaying each check's judged days in order.

    `human_cuts` maps alert ids a person resolved to the last day their resolution covers: a failure
    after that day starts a new episode (new alert id) instead of silently continuing the old one.
    A failure within `reopen_within_days` of an automatic resolution re-opens that episode instead.
    """
    human_cuts = human_cuts or {}
    episodes: list[Episode] = []
    for key, group in findings.groupby("dedup_key", sort=True):
        if group["level"].max() < 0:
            continue  # only passing or unknown entries: nothing to alert about
        first = group.iloc[0]
        by_day = {r["partition_date"]: r for r in records(group)}
        current: Episode | None = None
        closed: Episode | None = None  # the last episode that resolved by itself
        for day, run_id in evaluated.get((first["asset"], first["check_name"]), []):
            found = by_day.get(day)
            level = int(found["level"]) if found is not None else PASS
            if level == UNKNOWN_LEVEL:
                continue  # not judged today: neither failing nor passing
            if current is not None and current.human_cut is not None and day > current.human_cut:
                current.closed_by_user = True
                current = None
            if current is None:
                if level < 0:
                    continue
                if closed is not None and _reopens(closed, day, config):
                    current = closed
                    current.reopen(day)
                else:
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
                    episodes.append(current)
                closed = None
            if found is not None and is_missing(found["run_id"]):
                found = {**found, "run_id": run_id}
            current.observe(day, level, found, config)
            if current.resolved is not None:
                closed, current = current, None
    return episodes


def _reopens(closed: Episode, day: dt.date, config: AlertingConfig) -> bool:
    """A failure on `day` re-opens the episode that resolved by itself at most `reopen_within_days`
    before (a person's resolution is final: that failure is a new episode)."""
    return (
        config.reopen_within_days > 0
        and closed.resolved is not None
        and closed.human_cut is None
        and (day - closed.resolved).days <= config.reopen_within_days
    )


# --------------------------------------------------------------------------- incidents


# Where a check sits on the way from the data to the decision: an incident is named after the most
# upstream of its first, worst alerts (docs/alerting.md, "Incidents").
_INPUT_DRIFT = ("critical_drift", "feature_drift")
_INPUT_QUALITY = ("data_quality",)


def layer(check_name: str, subject: str) -> int:
    """0 the day's data (snapshot_usable, validation), 1 an input's distribution, 2 an input's quality,
    3 the model's output (score, decision rate), 4 what follows from it (performance, groups, serving...)."""
    if check_name in ROOT_CHECKS:
        return 0
    if check_name in _INPUT_DRIFT + _INPUT_QUALITY:
        if subject in PREDICTION_FEATURES:
            return 3
        return 1 if check_name in _INPUT_DRIFT else 2
    return 4


def lead_order(initial_severity: Any, start: Any, check_name: Any, subject: Any, key: Any) -> tuple:
    """Sort key of an incident's alerts, lead first: worst first severity, earliest start, most upstream,
    then dedup key. Built from columns every alert row has, so the service finds the same lead."""
    return (-level_of(initial_severity), start or dt.date.max, layer(str(check_name), str(subject)), str(key))


@dataclass
class Incident:
    """Alerts of one model that started together: announced, resolved and tracked as one."""

    incident_id: str
    members: list[Episode]

    @property
    def lead(self) -> Episode:
        return min(
            self.members,
            key=lambda e: lead_order(e.initial_severity, e.start, e.check_name, e.subject, e.key),
        )

    @property
    def start(self) -> dt.date:
        return min(e.start for e in self.members)

    @property
    def generation(self) -> int:
        """How often its alerts re-opened: part of message ids, so a re-opened incident can be told again."""
        return sum(e.reopened for e in self.members)

    @property
    def root_cause(self) -> str:
        lead = self.lead
        return root_cause_line(lead.check_name, lead.subject, lead.first or lead.latest)


def group_incidents(episodes: Iterable[Episode], window_days: int) -> list[Incident]:
    """Failing episodes of a model starting within `window_days` of an incident's first one join it
    (anchored on the first start, so a slow chain of unrelated alerts does not become one incident).
    An info-only episode is an incident of its own."""
    incidents: list[Incident] = []
    current: Incident | None = None
    for ep in sorted(episodes, key=lambda e: (e.model_name, e.start, e.key)):
        if ep.kind == "info":
            incidents.append(Incident(stable_id("inc", ep.model_name, ep.start.isoformat(), ep.key), [ep]))
            continue
        if (
            current is not None
            and current.members[0].model_name == ep.model_name
            and (ep.start - current.start).days <= window_days
        ):
            current.members.append(ep)
            continue
        current = Incident(stable_id("inc", ep.model_name, ep.start.isoformat()), [ep])
        incidents.append(current)
    return incidents


def root_cause_line(check_name: str, subject: str, finding: Mapping[str, Any]) -> str:
    """The lead alert's before and after, in words: from drift evidence the means ("income mean
    4,415,944 vs reference 44,384, ×100"), else the metric against its threshold."""
    evidence = finding.get("evidence") or {}
    current = reference = None
    if isinstance(evidence, Mapping):
        current = as_float((evidence.get("current") or {}).get("mean"))
        reference = as_float((evidence.get("reference") or {}).get("mean"))
    if current is not None and reference is not None:
        return f"{subject} mean {_number(current)} vs reference {_number(reference)}{_ratio_text(current, reference)}"
    metric = finding.get("metric") or check_name
    value, threshold = as_float(finding.get("value")), as_float(finding.get("threshold"))
    if value is None:
        return f"{check_name} on {subject}: {finding.get('message') or 'failed'}"
    limit = f" vs threshold {_number(threshold)}" if threshold is not None else ""
    return f"{check_name} on {subject}: {metric} {_number(value)}{limit}"


def _number(value: float | None) -> str:
    if value is not None and abs(value) >= 1000:
        return f"{value:,.0f}"
    return fmt(value, 4)


def _ratio_text(current: float, reference: float) -> str:
    """The move in words: `, ×100` for a factor (a power of ten said as such: a unit change), `, +12%`
    for a smaller move."""
    if reference == 0 or current == 0 or (current > 0) != (reference > 0):
        return ""
    ratio = current / reference
    if 1 / 1.5 < ratio < 1.5:
        return f", {ratio - 1:+.0%}"
    power = math.log10(ratio)
    if abs(power - round(power)) < 0.05 and round(power) != 0:
        factor = 10.0 ** round(power)
        return f", ×{factor:,.0f}" if factor >= 1 else f", ÷{1 / factor:,.0f}"
    return f", ×{ratio:.2g}"


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
            elif col in ("consecutive_days", "passing_days", "failing_days", "reopened"):
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
        "incident_id": None,  # set by `evaluate` once the episodes are grouped
        "root_cause": None,
        "reopened": ep.reopened,
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
    warnings resolve quietly (their backlog item shows it). For one alert on its own (an alert stored
    before incidents, or withdrawn); an incident closes with `incident_resolve_notifications`."""
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


# --------------------------------------------------------------------------- incident messages


def lead_row(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The incident's lead among its alert rows (the same choice as `Incident.lead`)."""
    return min(
        rows,
        key=lambda r: lead_order(
            r.get("initial_severity") or r.get("severity"),
            r.get("first_seen_date"),
            r.get("check_name"),
            r.get("subject"),
            r.get("dedup_key"),
        ),
    )


def incident_payload(
    lead: Mapping[str, Any],
    members: list[Mapping[str, Any]],
    kind: str,
    ui_base_url: str,
    severity: str,
    owner: str | None,
) -> dict[str, Any]:
    """The message about an incident: the lead alert's payload (its dedup key, so PagerDuty pages and
    closes one incident; its links) naming every alert of the incident. An incident of one alert reads
    exactly as that alert."""
    payload = alert_payload(lead, kind, ui_base_url, severity=severity, owner=owner)
    members = sorted(members, key=lambda r: r["alert_id"] != lead["alert_id"])  # lead first
    payload["alert_ids"] = [r["alert_id"] for r in members]
    root = lead.get("root_cause") or ""
    payload["incident"] = {
        "incident_id": lead.get("incident_id"),
        "root_cause": root,
        "first_seen_date": _iso(
            min((r["first_seen_date"] for r in members if r.get("first_seen_date")), default=None)
        ),
        "alerts": len(members),
    }
    if len(members) > 1:
        since = payload["incident"]["first_seen_date"]
        payload["title"] = f"{lead['model_name']}: {len(members)} alerts since {since}: {root}"
        payload["message"] = f"Root cause: {root}. " + "; ".join(_member_text(r) for r in members)
        if kind != "digest_entry":
            payload["alerts"] = [alert_payload(r, "member", ui_base_url, owner=owner) for r in members]
    return payload


def _member_text(row: Mapping[str, Any]) -> str:
    value = (
        f" {row.get('metric')} {fmt(row.get('value'), 4)}" if as_float(row.get("value")) is not None else ""
    )
    return f"{row['check_name']} on {row['subject']}{value} ({row['severity']})"


def incident_resolve_notifications(
    rows: list[Mapping[str, Any]], config: AlertingConfig, owner: str, now: pd.Timestamp
) -> list[dict[str, Any]]:
    """Every alert of the incident has resolved: if it paged (announced at critical) since it last
    closed, one resolve per critical channel with the lead's dedup key; quiet otherwise."""
    if not rows or any(r.get("status") != "resolved" for r in rows):
        return []
    paged = max(level_of(r.get("notified_severity")) for r in rows) == 2
    if not paged or not any(r.get("notified") for r in rows):
        return []
    lead = lead_row(rows)
    payload = incident_payload(lead, rows, "resolve", config.ui_base_url, "critical", owner)
    generation = sum(int(r.get("reopened") or 0) for r in rows)
    return [
        notification_row(
            kind="resolve",
            channel=channel,
            severity="critical",
            model_name=lead["model_name"],
            key=lead["dedup_key"],
            alert_ids=payload["alert_ids"],
            payload=payload,
            now=now,
            id_parts=(lead.get("incident_id") or lead["alert_id"], *_generation(generation)),
        )
        for channel in route_channels(config, "critical", owner)
    ]


def _generation(n: int) -> tuple[str, ...]:
    return (f"reopened-{n}",) if n else ()


def _digest(
    model_name: str,
    owner: str,
    as_of: dt.date,
    channel: str,
    lines: list[DigestLine],
    now: pd.Timestamp,
) -> dict[str, Any]:
    severity = SEVERITIES[max(level_of(line.severity) for line in lines)]
    entries = [{**line.entry, "kind": "digest_entry"} for line in lines]
    counts: dict[str, int] = defaultdict(int)
    for line in lines:
        counts[line.severity] += 1
    summary = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items(), key=lambda kv: -level_of(kv[0])))
    alert_ids = [aid for line in lines for aid in line.entry["alert_ids"]]
    payload = {
        "kind": "digest",
        "title": f"{model_name}: {summary} on {as_of.isoformat()}",
        "severity": severity,
        "model_name": model_name,
        "owner": owner,
        "partition_date": as_of.isoformat(),
        "dedup_key": None,
        "alert_ids": alert_ids,
        "check_name": None,
        "subject": None,
        "metric": None,
        "value": None,
        "threshold": None,
        "message": f"{len(entries)} incident(s) of {model_name} ({len(alert_ids)} alert(s)) passed noise "
        f"control on {as_of.isoformat()}",
        "links": {"run": None, "asset": None},
        "alerts": entries,
    }
    return notification_row(
        kind="digest",
        channel=channel,
        severity=severity,
        model_name=model_name,
        key=None,
        alert_ids=alert_ids,
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
    """One incident in a channel's digest, at the severity it is announced at."""

    entry: dict[str, Any]
    severity: str


@dataclass
class PendingChanges:
    """What an evaluation has decided so far, in the order it is written: upserted alert rows, outbox
    rows, and the digest lines per channel (sent as one message per channel once all incidents are seen)."""

    upserts: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    digests: dict[str, list[DigestLine]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class Announcement:
    """An open incident newly passing noise control at `severity`: a trigger of its own on each channel,
    or (`digest`: warnings and info while digest_warnings is on) a line in each channel's digest."""

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
    screened = screen_history(hist)
    episodes = replay(finding_rows(screened), _evaluated_days(screened), config, _human_cuts(old))
    changes = PendingChanges()
    rows: dict[str, dict[str, Any]] = {}
    for incident in group_incidents(episodes, config.incident_window_days):
        _evaluate_incident(incident, old, rows, ctx, changes)
    for aid, row in rows.items():
        _stamp(row, old.get(aid), now, changes.upserts)
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


def _evaluate_incident(
    incident: Incident,
    old: Mapping[str, dict[str, Any]],
    rows: dict[str, dict[str, Any]],
    ctx: EvaluationContext,
    changes: PendingChanges,
) -> None:
    """One incident: its alerts' rows merged with the stored ones, then what its change calls for: one
    resolve when its last alert resolved (if it paged), else one announcement when its highest level
    passed noise control above what was already announced for it."""
    root = incident.root_cause
    for ep in incident.members:
        row = _merge_episode(ep, old.get(ep.alert_id), ctx.now)
        if row is not None:
            row.update(incident_id=incident.incident_id, root_cause=root)
            rows[ep.alert_id] = row
    view = {ep.alert_id: rows.get(ep.alert_id) or old.get(ep.alert_id) for ep in incident.members}
    members = [r for r in view.values() if r is not None]
    if not members:
        return
    newly_resolved = [
        aid
        for aid, r in rows.items()
        if aid in view and r["status"] == "resolved" and (old.get(aid) or {}).get("status") != "resolved"
    ]
    if newly_resolved and all(r["status"] == "resolved" for r in members):
        notes = incident_resolve_notifications(members, ctx.config, ctx.owner, ctx.now)
        if notes:
            changes.outbox += notes
            for aid, r in view.items():  # the page closed: a re-opened incident is announced again
                if r is not None and (aid in rows or is_human_resolved(r)):
                    rows[aid] = {**r, "notified_severity": None}
        return
    live = [ep for ep in incident.members if (row := rows.get(ep.alert_id)) and row["status"] != "resolved"]
    if (announcement := _announcement(incident, live, members, ctx)) is not None:
        _announce(incident, [rows[ep.alert_id] for ep in live], view, announcement, ctx, changes)


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


def _announcement(
    incident: Incident, live: list[Episode], members: list[Mapping[str, Any]], ctx: EvaluationContext
) -> Announcement | None:
    """What to announce for an open incident, if anything: only on a fresh day and only a level above
    what was already announced for it, so a re-run, a backfill, a re-opening of an alert that was not
    said to be resolved, or a member joining at a level already announced never sends anything twice."""
    if not ctx.fresh or not live:
        return None
    level = max(ep.announce for ep in live)
    if level < 0 or level <= max(level_of(r.get("notified_severity")) for r in members):
        return None
    severity = SEVERITIES[level]
    channels = tuple(route_channels(ctx.config, severity, ctx.owner))
    return Announcement(severity, channels, digest=severity != "critical" and ctx.config.digest_warnings)


def _announce(
    incident: Incident,
    live_rows: list[dict[str, Any]],
    view: Mapping[str, Mapping[str, Any] | None],
    announcement: Announcement,
    ctx: EvaluationContext,
    changes: PendingChanges,
) -> None:
    """Queue the announcement and record it on the open alerts, which is what keeps it from being sent
    again (a member joining later at a level already announced is covered by it)."""
    severity = announcement.severity
    lead = {
        **(view.get(incident.lead.alert_id) or live_rows[0]),
        "incident_id": incident.incident_id,
        "root_cause": incident.root_cause,
    }
    payload = incident_payload(lead, live_rows, "trigger", ctx.config.ui_base_url, severity, ctx.owner)
    if announcement.digest:
        for channel in announcement.channels:
            changes.digests[channel].append(DigestLine(payload, severity))
    else:
        changes.outbox += [
            notification_row(
                kind="trigger",
                channel=channel,
                severity=severity,
                model_name=lead["model_name"],
                key=lead["dedup_key"],
                alert_ids=payload["alert_ids"],
                payload=payload,
                now=ctx.now,
                id_parts=(incident.incident_id, severity, *_generation(incident.generation)),
            )
            for channel in announcement.channels
        ]
    for row in live_rows:
        row["notified_severity"] = severity
        if announcement.channels:
            row["notified"] = True
            row["notified_at"] = row["notified_at"] or ctx.now


def _enqueue_digests(model_name: str, ctx: EvaluationContext, changes: PendingChanges) -> None:
    """One digest per channel for the warnings announced in this evaluation (channels in name order)."""
    for channel, lines in sorted(changes.digests.items()):
        changes.outbox.append(_digest(model_name, ctx.owner, ctx.as_of, channel, lines, ctx.now))


def _supersede(
    old: Mapping[str, dict[str, Any]], seen: set[str], ctx: EvaluationContext, changes: PendingChanges
) -> None:
    """Resolve stored alerts the history up to `as_of` no longer produces (a day re-run with corrected
    inputs, or an intraday finding the nightly run did not confirm), closing a page they raised. Human
    resolutions and alerts of later days are left alone. A member of an incident that stays open sends
    nothing (its incident's page is still right); the last one of a multi-alert incident closes the
    incident's page (the lead's key); an alert on its own closes its own."""
    withdrawn: list[tuple[dict[str, Any], dict[str, Any]]] = []
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
            withdrawn.append((row, prev))
    if not withdrawn:
        return
    after = {**old, **{r["alert_id"]: r for r in changes.upserts}, **{r["alert_id"]: r for r, _ in withdrawn}}
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in after.values():
        members[r.get("incident_id") or r["alert_id"]].append(r)
    closed: set[str] = set()
    for row, prev in withdrawn:
        if prev["status"] != "resolved":
            incident = row.get("incident_id") or row["alert_id"]
            group = members[incident]
            if len(group) == 1:
                changes.outbox += resolve_notifications(row, ctx.config, ctx.owner, ctx.now)
            elif incident not in closed and all(r["status"] == "resolved" for r in group):
                closed.add(incident)
                changes.outbox += incident_resolve_notifications(group, ctx.config, ctx.owner, ctx.now)
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
