"""The notification outbox: written before sending, marked delivered only after a send succeeded.

The alerting layer `enqueue`s one row per (notification, channel) into `monitoring.notifications`
with a deterministic id; `deliver_pending` (the sensor, and `monitoring-pipelines deliver` by hand)
sends what is due and records each outcome in its own short transaction. No connection to DuckDB is
held across a send: the warehouse file lock would otherwise be held for network timeouts.

Each channel is served by its own thread, in queue order, so a slow or failing channel cannot hold
the others' sends; every send ends within the channels' deadline (`channels.base.SEND_DEADLINE_S`),
and a send without a complete answer by then counts as "channel down". Delivery is at least once:
a row is marked delivered only after its send succeeded, so a send whose outcome is unknown (cut by
the deadline, or a crash before the write) stays pending and is sent again, with the same id.

Policy (the reasons are in docs/alerting-channels.md):
- success -> `delivered` at once, so a later run never sends it again;
- retryable failure -> `attempts + 1`, next try after base * 2^(attempts - 1) seconds, capped;
- a failure that says the channel itself is down (no connection, timeout, no complete answer within
  the send deadline, 429, SMTP 421) ends the run for that channel: an outage costs one request per
  channel per run, not one per notification;
- a channel's first success in a run also sends its notifications still waiting out a backoff,
  so a backlog drains as soon as the channel is back, not up to a backoff later;
- `failed` after `max_attempts` retryable failures only if the channel has delivered something
  since the notification was queued (the channel works, this notification does not); an outage
  alone never gives a notification up, however long it lasts;
- non-retryable failure (HTTP 4xx except 429, SMTP 5xx) -> `failed` at once, error recorded;
- rows sharing a dedup_key go out in queue order: a resolve never overtakes its trigger;
- channel not configured -> stays `pending`, `last_error` names the missing variable; setting it
  drains the backlog on the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import filelock
import pandas as pd

from monitoring_pipelines.channels import CHANNEL_NAMES, Channel, DeliveryError, channel_from_env
from monitoring_pipelines.channels.message import NOTIFICATION_KINDS, to_json_bytes
from monitoring_pipelines.channels.redaction import env_secrets, scrub
from monitoring_pipelines.storage.warehouse import TABLES, Warehouse, qualified

log = logging.getLogger(__name__)

OUTBOX = qualified("notifications")
OUTBOX_COLUMNS: tuple[str, ...] = tuple(TABLES["notifications"])
STATUSES = ("pending", "delivered", "failed")
# Longest wait between two tries of one notification: bounds how late a recovered channel is
# noticed when every queued notification is waiting out a backoff.
RETRY_CAP_SECONDS = 3600.0
# How long a second `deliver_pending` (CLI while the sensor runs) waits for the first to finish;
# below Dagster's 60 s sensor evaluation timeout. Read at each call.
DELIVERY_LOCK_TIMEOUT_S = 30.0
NOT_CONFIGURED = "channel not configured"
MAX_ERRORS_REPORTED = 10

_SQL_TYPES = {c: t.replace(" NOT NULL", "") for c, t in TABLES["notifications"].items()}
_FROM_PAYLOAD = ("kind", "severity", "model_name", "dedup_key", "alert_ids")


@dataclass(frozen=True)
class DeliveryStats:
    """What one `deliver_pending` run did.

    delivered: sent and marked delivered. retried: failed retryably, still pending with a later
    next_attempt_at. failed: given up (error recorded in the row). skipped_unconfigured: pending rows
    of channels whose environment variables are missing. deferred: due but not tried, because their
    channel went down earlier in the run or an older row with the same dedup_key is still pending.
    pending_left: pending rows after the run (all channels; rows enqueued during the run are not
    counted). errors: the distinct redacted errors of the run (at most 10).
    """

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    skipped_unconfigured: int = 0
    pending_left: int = 0
    deferred: int = 0
    errors: tuple[str, ...] = field(default=())


class DeliveryBusy(TimeoutError):
    """Another delivery run holds the outbox for longer than we were willing to wait.

    Not an error of this run: the other run sends what is due. `holder` says who holds it.
    """

    def __init__(self, holder: str, waited_s: float) -> None:
        super().__init__(f"delivery already running (held by {holder}); waited {waited_s:g}s")
        self.holder = holder
        self.waited_s = waited_s


def make_notification_id(*parts: Any) -> str:
    """A deterministic id from the parts that make a notification unique (e.g. channel, kind,
    dedup_key, partition_date), so re-running the alerting step enqueues nothing new."""
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return "ntf_" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def retry_delay_seconds(attempts: int, base_seconds: float, cap_seconds: float = RETRY_CAP_SECONDS) -> float:
    """Wait after the `attempts`-th failed try: base * 2^(attempts - 1), at most `cap_seconds`.

    Deterministic (no jitter): delivery runs one at a time, minutes apart, and a down channel sees
    one request per run, so there is no thundering herd to spread out.
    """
    if attempts < 1:
        return 0.0
    exponent = min(attempts - 1, 62)
    return float(min(base_seconds * 2.0**exponent, cap_seconds))


# --------------------------------------------------------------------------- enqueue


def enqueue(warehouse: Warehouse, rows: pd.DataFrame, now: dt.datetime | None = None) -> int:
    """Insert the rows whose notification_id is not in the outbox yet; return how many were new.

    `rows` needs notification_id, channel and payload (a dict or JSON text in the notification
    shape); kind, severity, model_name, dedup_key and alert_ids are taken from the payload when
    absent; status defaults to pending, attempts to 0, created_at to `now`. Ids already present,
    whatever their status, are left alone: enqueueing is idempotent, so a re-run never re-sends.
    """
    if rows is None or rows.empty:
        return 0
    frame = _normalize(rows, _utc(now))
    with warehouse.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_outbox_incoming", frame)
            new = f"NOT EXISTS (SELECT 1 FROM {OUTBOX} o WHERE o.notification_id = i.notification_id)"
            count = con.execute(f"SELECT count(*) FROM _outbox_incoming i WHERE {new}").fetchone()
            cols = ", ".join(f'"{c}"' for c in frame.columns)
            casts = ", ".join(f'CAST(i."{c}" AS {_SQL_TYPES[c]})' for c in frame.columns)
            con.execute(f"INSERT INTO {OUTBOX} ({cols}) SELECT {casts} FROM _outbox_incoming i WHERE {new}")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_outbox_incoming")
    return int(count[0]) if count else 0


def _normalize(rows: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    unknown = [c for c in rows.columns if c not in OUTBOX_COLUMNS]
    if unknown:
        raise ValueError(f"columns {unknown} are not in the notifications table")
    missing = [c for c in ("notification_id", "channel", "payload") if c not in rows.columns]
    if missing:
        raise ValueError(f"notification rows need columns {missing}")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw in rows.to_dict("records"):
        row = {c: (None if _missing(raw.get(c)) else raw.get(c)) for c in OUTBOX_COLUMNS}
        notification_id = str(row["notification_id"] or "")
        if not notification_id:
            raise ValueError("notification_id must not be empty")
        if notification_id in seen:
            continue
        seen.add(notification_id)
        payload = row["payload"]
        if isinstance(payload, str | bytes):
            payload = json.loads(payload)
        if not isinstance(payload, Mapping):
            raise ValueError(f"notification {notification_id}: payload must be a JSON object")
        for key in _FROM_PAYLOAD:
            if row[key] is None:
                row[key] = payload.get(key)
        if row["channel"] not in CHANNEL_NAMES:
            raise ValueError(f"notification {notification_id}: unknown channel {row['channel']!r}")
        if row["kind"] not in NOTIFICATION_KINDS:
            raise ValueError(f"notification {notification_id}: kind must be one of {NOTIFICATION_KINDS}")
        row["status"] = row["status"] or "pending"
        if row["status"] not in STATUSES:
            raise ValueError(f"notification {notification_id}: status must be one of {STATUSES}")
        row.update(
            notification_id=notification_id,
            payload=to_json_bytes(payload).decode("utf-8"),
            alert_ids=[str(a) for a in (row["alert_ids"] or [])],
            attempts=int(row["attempts"] or 0),
            created_at=_utc(row["created_at"]) if row["created_at"] is not None else now,
        )
        records.append(row)
    # Columns nobody set are all-None; the CAST in the INSERT gives them the table's type.
    return pd.DataFrame.from_records(records, columns=list(OUTBOX_COLUMNS))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | dict) or (hasattr(value, "__len__") and not isinstance(value, str)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- deliver


def deliver_pending(
    warehouse: Warehouse,
    now: dt.datetime | None = None,
    environ: Mapping[str, str] | None = None,
    max_attempts: int = 8,
    retry_base_seconds: float = 60.0,
    limit: int = 500,
    retry_cap_seconds: float = RETRY_CAP_SECONDS,
    lock_timeout_s: float | None = None,
) -> DeliveryStats:
    """Send every due pending notification; the sensor and `monitoring-pipelines deliver` call this.

    `now` is the run's clock (due checks, backoff, delivered_at; default: the current UTC time).
    `environ` supplies channel settings (default os.environ, read now). `limit` caps the sends per
    channel per run. Channels are sent to in parallel, so a run takes about as long as its slowest
    channel; a channel that is down costs at most one send deadline. Runs are serialized by a lock
    file next to the warehouse, so the sensor and a hand-run `deliver` never send the same row
    twice. Raises `DeliveryBusy` when another run holds the lock for longer than `lock_timeout_s`
    (default `DELIVERY_LOCK_TIMEOUT_S`).
    """
    clock = _utc(now)
    env = os.environ if environ is None else environ
    policy = _Policy(max_attempts, retry_base_seconds, retry_cap_seconds, env_secrets(env))
    tally = _Tally()
    wait_s = DELIVERY_LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
    with _delivery_lock(warehouse, wait_s):
        channels, batches, pending_before = _start_run(warehouse, env, clock, limit, tally)
        _deliver_channels(warehouse, channels, batches, clock, policy, limit, tally)
    stats = DeliveryStats(
        delivered=tally.delivered,
        retried=tally.retried,
        failed=tally.failed,
        skipped_unconfigured=tally.skipped_unconfigured,
        pending_left=max(pending_before - tally.delivered - tally.failed, 0),
        deferred=tally.deferred,
        errors=tuple(tally.errors),
    )
    log.info("outbox delivery: %s", {k: v for k, v in asdict(stats).items() if k != "errors"})
    return stats


@dataclass(frozen=True)
class _Policy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float
    secrets: list[str]


@dataclass
class _Tally:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    skipped_unconfigured: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, error: str) -> None:
        if error not in self.errors and len(self.errors) < MAX_ERRORS_REPORTED:
            self.errors.append(error)

    def add(self, other: _Tally) -> None:
        """Fold in a channel thread's tally."""
        self.delivered += other.delivered
        self.retried += other.retried
        self.failed += other.failed
        self.skipped_unconfigured += other.skipped_unconfigured
        self.deferred += other.deferred
        for error in other.errors:
            self.note(error)


def _start_run(
    warehouse: Warehouse, env: Mapping[str, str], now: dt.datetime, limit: int, tally: _Tally
) -> tuple[list[Channel], dict[str, list[dict[str, Any]]], int]:
    """One short connection: settle rows of unknown channels, mark unconfigured ones, read the due rows
    of the others. Returns the channels to send to (oldest backlog first), their rows, and how many
    rows were pending."""
    with warehouse.connect() as con:
        per_channel = con.execute(
            f"SELECT channel, count(*) FROM {OUTBOX} WHERE status = 'pending' "
            "GROUP BY channel ORDER BY min(created_at), channel"
        ).fetchall()
        channels: list[Channel] = []
        for name, count in per_channel:
            if name not in CHANNEL_NAMES:
                _mark_channel(con, name, "failed", f"unknown channel {name!r}")
                tally.failed += count
                tally.note(f"unknown channel {name!r}")
                continue
            channel = channel_from_env(name, env)
            problem = _problem(channel)
            if problem is None:
                channels.append(channel)
                continue
            error = f"{NOT_CONFIGURED}: {problem}" if problem else NOT_CONFIGURED
            _mark_channel(con, name, "pending", error)
            tally.skipped_unconfigured += count
            tally.note(f"{name}: {error}")
        batches = _read_due(con, [c.name for c in channels], now, limit)
    pending = sum(count for _, count in per_channel) - tally.failed
    return channels, batches, pending


def _deliver_channels(
    warehouse: Warehouse,
    channels: list[Channel],
    batches: Mapping[str, list[dict[str, Any]]],
    now: dt.datetime,
    policy: _Policy,
    limit: int,
    tally: _Tally,
) -> None:
    """Serve each channel in its own thread, so a slow or failing one holds up nobody else.

    Each thread sends its channel's rows one at a time in queue order and records every outcome
    itself, in its own short connection (`Warehouse.connect` serializes them). The threads are
    joined without a timeout: every send ends within the channels' deadline, and the run, with its
    lock, ends only after every outcome is recorded, so no send outlives the run that made it and
    none is recorded twice. An error of one thread (the warehouse, say) is raised once all are done.
    """
    tallies = {channel.name: _Tally() for channel in channels}
    raised: list[BaseException] = []

    def serve(channel: Channel) -> None:
        try:
            rows = batches.get(channel.name, [])
            _deliver_channel(warehouse, channel, rows, now, policy, limit, tallies[channel.name])
        except BaseException as exc:  # re-raised in the calling thread below
            raised.append(exc)

    threads = [
        threading.Thread(target=serve, args=(channel,), name=f"deliver-{channel.name}", daemon=True)
        for channel in channels
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for channel in channels:  # in run order, so `errors` does not depend on thread timing
        tally.add(tallies[channel.name])
    if raised:
        raise raised[0]


def _deliver_channel(
    warehouse: Warehouse,
    channel: Channel,
    due_rows: list[dict[str, Any]],
    now: dt.datetime,
    policy: _Policy,
    limit: int,
    tally: _Tally,
) -> None:
    """Send a channel's due rows oldest first, then (after a success) its backlog.

    Stops at the first failure that says the channel is down. A row whose dedup_key has an older
    row still pending waits for it (a resolve never overtakes its trigger).
    """
    rows, budget, any_success = due_rows, limit, False
    held: set[str] = set()  # dedup_keys with an older row not delivered in this run
    for phase in ("due", "backlog"):
        for i, row in enumerate(rows):
            key = row.get("dedup_key")
            if row.get("blocked") or (key is not None and key in held):
                if key is not None:
                    held.add(key)
                tally.deferred += 1
                continue
            outcome, channel_down = _attempt(warehouse, channel, row, now, policy, tally)
            budget -= 1
            if outcome == "retried" and key is not None:
                held.add(key)
            if channel_down:
                tally.deferred += len(rows) - i - 1
                return
            any_success = any_success or outcome == "delivered"
        if phase == "backlog" or not any_success or budget <= 0:
            return
        # The channel works again: what waits out a backoff need not wait any longer.
        rows = _read_backlog(warehouse, channel.name, now, budget)


def _attempt(
    warehouse: Warehouse,
    channel: Channel,
    row: dict[str, Any],
    now: dt.datetime,
    policy: _Policy,
    tally: _Tally,
) -> tuple[str, bool]:
    """Send one row (no connection open) and record the outcome.

    Returns ('delivered' | 'retried' | 'failed', whether the channel looks down).
    """
    try:
        channel.send(_notification(row))
    except DeliveryError as exc:
        error, retryable, channel_down = scrub(exc.message, policy.secrets), exc.retryable, exc.channel_down
    except Exception as exc:  # a bug in a channel must not stop the others or lose the row
        error = scrub(f"{channel.name}: unexpected {type(exc).__name__}: {exc}", policy.secrets)[:500]
        retryable, channel_down = True, False
    else:
        with warehouse.connect() as con:
            _update(
                con,
                row["notification_id"],
                status="delivered",
                attempts=row["attempts"] + 1,
                delivered_at=now,
                next_attempt_at=None,
            )
        tally.delivered += 1
        return "delivered", False

    attempts = row["attempts"] + 1
    tally.note(error)
    with warehouse.connect() as con:
        give_up = not retryable or (attempts >= policy.max_attempts and _channel_delivered_since(con, row))
        if give_up:
            _update(
                con,
                row["notification_id"],
                status="failed",
                attempts=attempts,
                last_error=error,
                next_attempt_at=None,
            )
        else:
            delay = retry_delay_seconds(attempts, policy.base_seconds, policy.cap_seconds)
            retry_at = now + dt.timedelta(seconds=delay)
            _update(
                con,
                row["notification_id"],
                status="pending",
                attempts=attempts,
                last_error=error,
                next_attempt_at=retry_at,
            )
    if give_up:
        tally.failed += 1
        log.error(
            "notification %s via %s given up after %d attempt(s): %s",
            row["notification_id"],
            channel.name,
            attempts,
            error,
        )
        return "failed", channel_down
    tally.retried += 1
    log.warning(
        "notification %s via %s failed (attempt %d), next try at %s: %s",
        row["notification_id"],
        channel.name,
        attempts,
        retry_at.isoformat(),
        error,
    )
    return "retried", channel_down


def _notification(row: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as the channel sees it: the stored JSON plus its notification_id."""
    payload = row["payload"]
    notification = json.loads(payload) if isinstance(payload, str) else dict(payload or {})
    for key in _FROM_PAYLOAD:
        if notification.get(key) is None and row.get(key) is not None:
            notification[key] = list(row[key]) if key == "alert_ids" else row[key]
    notification["notification_id"] = row["notification_id"]
    return notification


def _problem(channel: Channel) -> str | None:
    """None when the channel can send, else why not ('' when the channel does not say)."""
    describe = getattr(channel, "problem", None)
    if callable(describe):
        return describe()
    return None if channel.configured() else ""


# --------------------------------------------------------------------------- SQL


_READ_COLUMNS = (
    "notification_id",
    "channel",
    "kind",
    "severity",
    "model_name",
    "dedup_key",
    "alert_ids",
    "payload",
    "attempts",
    "created_at",
)
_ORDER = "created_at NULLS FIRST, notification_id"


def _read_due(
    con: duckdb.DuckDBPyConnection, channels: list[str], now: dt.datetime, limit: int
) -> dict[str, list[dict[str, Any]]]:
    """Up to `limit` due pending rows per channel, oldest first (a per-channel limit, so one channel's
    backlog cannot starve the others). `blocked` marks rows whose dedup_key has an older pending row
    that is waiting out a backoff: they must not overtake it."""
    if not channels or limit <= 0:
        return {}
    cols = ", ".join(f"n.{c}" for c in _READ_COLUMNS)
    marks = ", ".join("?" for _ in channels)
    older_waiting = (
        f"EXISTS (SELECT 1 FROM {OUTBOX} o WHERE o.status = 'pending' AND o.channel = n.channel "
        "AND o.dedup_key = n.dedup_key AND o.next_attempt_at > ? "
        "AND (coalesce(o.created_at, '-infinity'::TIMESTAMPTZ) < coalesce(n.created_at, '-infinity'::TIMESTAMPTZ) "
        "OR (o.created_at IS NOT DISTINCT FROM n.created_at AND o.notification_id < n.notification_id)))"
    )
    fetched = con.execute(
        f"SELECT * EXCLUDE (rn) FROM (SELECT {cols}, {older_waiting} AS blocked, "
        f"row_number() OVER (PARTITION BY n.channel ORDER BY n.{_ORDER.replace(', ', ', n.')}) AS rn "
        f"FROM {OUTBOX} n WHERE n.status = 'pending' AND n.channel IN ({marks}) "
        "AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= ?)) WHERE rn <= ? ORDER BY channel, rn",
        [now, *channels, now, int(limit)],
    ).fetchall()
    batches: dict[str, list[dict[str, Any]]] = {}
    for values in fetched:
        row = dict(zip((*_READ_COLUMNS, "blocked"), values, strict=True))
        batches.setdefault(row["channel"], []).append(row)
    return batches


def _read_backlog(warehouse: Warehouse, channel: str, now: dt.datetime, limit: int) -> list[dict[str, Any]]:
    """Pending rows of a channel still waiting out a backoff, oldest first."""
    with warehouse.connect() as con:
        fetched = con.execute(
            f"SELECT {', '.join(_READ_COLUMNS)} FROM {OUTBOX} WHERE status = 'pending' AND channel = ? "
            f"AND next_attempt_at > ? ORDER BY {_ORDER} LIMIT ?",
            [channel, now, int(limit)],
        ).fetchall()
    return [dict(zip(_READ_COLUMNS, values, strict=True)) for values in fetched]


def _mark_channel(con: duckdb.DuckDBPyConnection, channel: str, status: str, error: str) -> None:
    """Set status and last_error on every pending row of a channel (unconfigured or unknown).

    Rows already saying exactly this are not rewritten: an unconfigured channel is seen every run.
    """
    con.execute(
        f"UPDATE {OUTBOX} SET status = ?, last_error = ? WHERE status = 'pending' AND channel = ? "
        "AND NOT (? = 'pending' AND last_error IS NOT DISTINCT FROM ?)",
        [status, error, channel, status, error],
    )


def _update(con: duckdb.DuckDBPyConnection, notification_id: str, **values: Any) -> None:
    """One row's outcome (a single statement, so atomic); only a still-pending row changes."""
    assignments = ", ".join(f'"{c}" = ?' for c in values)
    con.execute(
        f"UPDATE {OUTBOX} SET {assignments} WHERE notification_id = ? AND status = 'pending'",
        [*values.values(), notification_id],
    )


def _channel_delivered_since(con: duckdb.DuckDBPyConnection, row: Mapping[str, Any]) -> bool:
    """Has the row's channel delivered anything since the row was queued? Then the channel works and
    this notification is what fails, so it may be given up; otherwise the channel is down and it waits."""
    created = row.get("created_at")
    found = con.execute(
        f"SELECT count(*) FROM {OUTBOX} WHERE channel = ? AND status = 'delivered' AND notification_id <> ? "
        "AND (CAST(? AS TIMESTAMPTZ) IS NULL OR delivered_at >= CAST(? AS TIMESTAMPTZ))",
        [row["channel"], row["notification_id"], created, created],
    ).fetchone()
    return bool(found and found[0])


@contextlib.contextmanager
def _delivery_lock(warehouse: Warehouse, timeout_s: float) -> Iterator[None]:
    """One delivery run at a time per warehouse: two runs reading the same pending rows would both send.

    The holder writes who it is to `<warehouse>.deliver.holder` (a separate file: a waiting
    `filelock` truncates the lock file), so a run that gives up waiting can say who holds the lock.
    """
    path = warehouse.path.with_name(warehouse.path.name + ".deliver.lock")
    holder = warehouse.path.with_name(warehouse.path.name + ".deliver.holder")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, timeout=timeout_s)
    try:
        lock.acquire(poll_interval=0.1)
    except filelock.Timeout:
        raise DeliveryBusy(_read_holder(holder), timeout_s) from None
    try:
        with contextlib.suppress(OSError):  # who holds it is a courtesy; the lock is what counts
            holder.write_text(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    }
                )
            )
        yield
    finally:
        with contextlib.suppress(OSError):
            holder.unlink(missing_ok=True)
        lock.release()


def _read_holder(path: Path) -> str:
    """'pid 123 on host-a since 2026-07-14T06:00:00+00:00' from the holder file, or a plain phrase
    (the holder has not written it yet, or cannot)."""
    try:
        info = json.loads(path.read_text())
        return f"pid {int(info['pid'])} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another delivery run"


# --------------------------------------------------------------------------- summary


def outbox_summary(warehouse: Warehouse) -> pd.DataFrame:
    """Rows per channel and status, with the oldest row and the latest error of undelivered ones."""
    sql = f"""
        SELECT channel, status, count(*) AS notifications,
               min(created_at) AS oldest_created_at,
               max(attempts) AS max_attempts,
               min(next_attempt_at) AS next_attempt_at,
               CASE WHEN status = 'delivered' THEN NULL
                    ELSE arg_max(last_error, coalesce(next_attempt_at, created_at))
                         FILTER (WHERE last_error IS NOT NULL) END AS last_error
        FROM {OUTBOX} GROUP BY channel, status ORDER BY channel, status
    """
    frame = warehouse.query(sql)
    if frame.empty:
        columns = [
            "channel",
            "status",
            "notifications",
            "oldest_created_at",
            "max_attempts",
            "next_attempt_at",
            "last_error",
        ]
        return pd.DataFrame(columns=columns)
    return frame


@dataclass(frozen=True)
class OutboxStatus:
    """What waits in the outbox, for the people watching the sensor and the runs.

    waiting_for_settings: pending rows of channels without their settings, per channel with what is
    missing (`channel_problems`); they go out on the first tick after the settings are there.
    retrying: pending rows that failed a send and wait out a backoff; `next_retry_at` is the earliest.
    due: pending rows to be sent on the next tick. failed: rows given up (error in `last_error`).
    oldest_waiting: the queue time of the oldest pending row.
    """

    waiting_for_settings: int = 0
    channel_problems: tuple[str, ...] = ()
    retrying: int = 0
    next_retry_at: dt.datetime | None = None
    due: int = 0
    failed: int = 0
    oldest_waiting: dt.datetime | None = None

    @property
    def waiting(self) -> int:
        return self.waiting_for_settings + self.retrying + self.due

    def describe(self) -> str:
        """The outbox in one line, the problem first: "47 notifications waiting for channel settings
        since 2026-07-01 09:00 UTC (webhook: MONITORING_WEBHOOK_URL is not set); 2 failed for good"."""
        parts = []
        if self.waiting_for_settings:
            since = f" since {_when(self.oldest_waiting)}" if self.oldest_waiting else ""
            problems = f" ({'; '.join(self.channel_problems)})" if self.channel_problems else ""
            parts.append(f"{_count(self.waiting_for_settings)} waiting for channel settings{since}{problems}")
        if self.retrying:
            parts.append(
                f"{_count(self.retrying)} to retry after a failed send, next retry {_when(self.next_retry_at)}"
            )
        if self.due:
            parts.append(f"{_count(self.due)} due on the next tick")
        if self.failed:
            parts.append(f"{_count(self.failed)} failed for good (error in notifications.last_error)")
        return "; ".join(parts) or "nothing waiting"


def outbox_status(warehouse: Warehouse, now: dt.datetime | None = None) -> OutboxStatus:
    """The outbox's pending and failed rows, counted in one query (see `OutboxStatus`)."""
    clock = _utc(now)
    unconfigured = f"starts_with(coalesce(last_error, ''), '{NOT_CONFIGURED}')"
    counts = warehouse.query(
        f"""
        SELECT
            count(*) FILTER (WHERE status = 'pending' AND {unconfigured}) AS waiting_for_settings,
            count(*) FILTER (WHERE status = 'pending' AND NOT {unconfigured} AND next_attempt_at > ?)
                AS retrying,
            min(next_attempt_at) FILTER (WHERE status = 'pending' AND NOT {unconfigured}
                AND next_attempt_at > ?) AS next_retry_at,
            count(*) FILTER (WHERE status = 'pending' AND NOT {unconfigured}
                AND (next_attempt_at IS NULL OR next_attempt_at <= ?)) AS due,
            count(*) FILTER (WHERE status = 'failed') AS failed,
            min(created_at) FILTER (WHERE status = 'pending') AS oldest_waiting
        FROM {OUTBOX}
        """,
        [clock, clock, clock],
    ).iloc[0]
    problems = warehouse.query(
        f"SELECT channel, any_value(last_error) AS problem, count(*) AS n FROM {OUTBOX} "
        f"WHERE status = 'pending' AND {unconfigured} GROUP BY channel ORDER BY channel"
    )
    return OutboxStatus(
        waiting_for_settings=int(counts["waiting_for_settings"]),
        channel_problems=tuple(
            f"{r.channel}: {str(r.problem).removeprefix(NOT_CONFIGURED).lstrip(': ') or NOT_CONFIGURED}"
            for r in problems.itertuples()
        ),
        retrying=int(counts["retrying"]),
        next_retry_at=_optional_time(counts["next_retry_at"]),
        due=int(counts["due"]),
        failed=int(counts["failed"]),
        oldest_waiting=_optional_time(counts["oldest_waiting"]),
    )


def _count(n: int) -> str:
    return f"{n} notification{'' if n == 1 else 's'}"


def _when(value: dt.datetime | None) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M UTC") if value is not None else "unknown"


def _optional_time(value: Any) -> dt.datetime | None:
    return None if value is None or pd.isna(value) else _utc(value)


def _utc(value: Any) -> dt.datetime:
    """Aware UTC datetime; naive values are taken as UTC, None as the current time."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
