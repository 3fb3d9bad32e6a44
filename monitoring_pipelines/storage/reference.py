"""A model's reference in the warehouse: which version is current, what it was built from, read and write.

The reference is rebuilt only when what it is built from changed: the model's config and the files
(or database rows) of its reference window, including the labels and outcomes of that window that
have arrived so far. `input_fingerprint` hashes exactly that, cheaply (file names, sizes, mtimes; or
row counts and latest timestamps of a SQL source), so the CLI, the sensor and the asset can skip a
7M-row rebuild without reading a row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.core.profiles import (
    PROFILE_FORMAT,
    ReferenceProfile,
    profile_from_rows,
    profile_to_rows,
)
from monitoring_pipelines.schema import columns_of
from monitoring_pipelines.storage.snapshot import Snapshot, label_window
from monitoring_pipelines.storage.sources import (
    FileSource,
    SqlSource,
    folder_window,
    load_files,
    required_columns,
    source_for,
)
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines.validation.suite import DayValidation, validate

BASELINE_COLUMNS = columns_of("reference_baselines")


class MissingReferenceError(RuntimeError):
    """Drift and bands need the model's reference profile first."""


def reference_path(config: MonitoringConfig, model: ModelConfig) -> Path | None:
    if not model.reference.path:
        return None
    return (config.config_path.parent if config.config_path else config.data_dir) / model.reference.path


def input_fingerprint(config: MonitoringConfig, model: ModelConfig, today: dt.date | None = None) -> str:
    """What the reference is built from: the model's config (all of it but the owner) and the state of its
    reference window's predictions, labels and outcomes in the source."""
    start, end = model.reference.start, model.reference.end
    arrived_from, arrived_to = label_window(model, start, end, today)
    source = source_for(config, model)
    path = reference_path(config, model)
    if path is not None:
        stat = path.stat() if path.exists() else None
        predictions = repr((str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None))
    elif isinstance(source, FileSource):
        # every folder the window reads: its own and the neighbours its early and late rows may sit in
        predictions = source.fingerprint(model, "predictions", *folder_window(model, start, end))
    else:
        predictions = _sql_fingerprint(source, "predictions_table", "ts", start, end)
    if isinstance(source, FileSource):
        labels = source.fingerprint(model, "labels", arrived_from, arrived_to)
        outcomes = source.fingerprint(model, "outcomes", start, arrived_to)
    else:
        labels = _sql_fingerprint(source, "labels_table", "label_ts", arrived_from, arrived_to)
        outcomes = _sql_fingerprint(source, "outcomes_table", "ts", start, arrived_to)
    payload = {
        "format": PROFILE_FORMAT,
        "model": model.model_dump(mode="json", exclude={"owner"}),
        "predictions": predictions,
        "labels": labels,
        "outcomes": outcomes,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _sql_fingerprint(source: SqlSource, table_attr: str, ts: str, start: dt.date, end: dt.date) -> str:
    table = getattr(source, table_attr)
    if not table:
        return ""
    stmt = (
        sa.select(sa.func.count().label("n"), sa.func.max(sa.column(ts)).label("last"))
        .select_from(source._table(table))  # noqa: SLF001 - the source's own table clause
        .where(sa.column(ts) >= sa.bindparam("lo", dt.datetime.combine(start, dt.time())))
        .where(sa.column(ts) < sa.bindparam("hi", dt.datetime.combine(end + dt.timedelta(days=2), dt.time())))
    )
    try:
        with source.engine.connect() as con:
            row = con.execute(stmt).one()
    except sa.exc.SQLAlchemyError as exc:
        return f"unreachable: {type(exc).__name__}"
    return f"{row.n}|{row.last}"


# --------------------------------------------------------------------------- reading


def stored_reference(warehouse: Warehouse, model_name: str) -> tuple[str | None, str | None]:
    """(profile_version, input_fingerprint) of the model's newest reference, (None, None) without one."""
    frame = warehouse.query(
        "SELECT profile_version, input_fingerprint FROM monitoring.reference_profiles WHERE model_name = ? "
        "ORDER BY created_at DESC LIMIT 1",
        [model_name],
    )
    if frame.empty:
        return None, None
    fingerprint = frame["input_fingerprint"].iloc[0]
    return str(frame["profile_version"].iloc[0]), (None if pd.isna(fingerprint) else str(fingerprint))


_PROFILES: dict[tuple[str, str, str], ReferenceProfile] = {}
_PROFILES_LOCK = threading.Lock()


def latest_profile(warehouse: Warehouse, model_name: str) -> ReferenceProfile:
    """The model's current profile. A version is immutable, so it is parsed once per process."""
    version, _ = stored_reference(warehouse, model_name)
    if version is None:
        raise MissingReferenceError(
            f"no reference profile for model {model_name!r}: materialize reference_profiles "
            f"(partition {model_name}) first; `monitoring-pipelines run` and the register_models sensor do it"
        )
    key = (str(warehouse.path), model_name, version)
    with _PROFILES_LOCK:
        if key not in _PROFILES:
            rows = warehouse.table(
                "reference_profiles", "model_name = ? AND profile_version = ?", [model_name, version]
            )
            _PROFILES[key] = profile_from_rows(rows)
        return _PROFILES[key]


def latest_baselines(warehouse: Warehouse, model_name: str) -> pd.DataFrame:
    version, _ = stored_reference(warehouse, model_name)
    if version is None:
        return pd.DataFrame(columns=BASELINE_COLUMNS)
    return reference_bands(warehouse, model_name, version)


def reference_bands(warehouse: Warehouse, model_name: str, version: str) -> pd.DataFrame:
    """The `reference_baselines` rows of one profile version."""
    return warehouse.table(
        "reference_baselines", "model_name = ? AND profile_version = ?", [model_name, version]
    )


# --------------------------------------------------------------------------- building and writing


def reference_snapshot(config: MonitoringConfig, model: ModelConfig) -> tuple[Snapshot, DayValidation]:
    """The reference window's rows, validated by the same rules as a live day (a baseline built on rows
    we would quarantine today would make tomorrow's drift meaningless). Raises MissingReferenceError
    when the window cannot be used."""
    start, end = model.reference.start, model.reference.end
    path = reference_path(config, model)
    if path is None:
        snap, validation, _ = Snapshot.from_source(config, model, start, end)
    else:
        snap = Snapshot.open(model, start, end, size_hint_bytes=path.stat().st_size if path.exists() else 0)
        # one file outside the folder layout: no neighbours and no lateness window, every column required
        read = (
            load_files(snap.con, [path], [], start, end, None, required_columns(model))
            if path.exists()
            else None
        )
        problems = [f"reference file {path} does not exist"] if read is None else read.problems
        validation = validate(
            snap.con,
            read.relation if read else "",
            read.columns if read else [],
            model,
            start,
            [str(path)],
            problems,
        )
        snap._define_day(validated=validation.usable)  # noqa: SLF001 - same module family
    if not validation.usable:
        snap.close()
        raise MissingReferenceError(
            f"reference window {start}..{end} of {model.name} is unusable: {'; '.join(validation.problems)}"
        )
    return snap, validation


def write_reference(
    warehouse: Warehouse, profile: ReferenceProfile, baselines: pd.DataFrame, fingerprint: str
) -> None:
    """Replace the rows of this profile version (profile + bands) in one transaction."""
    rows = profile_to_rows(profile).assign(
        created_at=pd.Timestamp.now(tz="UTC"), input_fingerprint=fingerprint
    )
    where = "model_name = ? AND profile_version = ?"
    warehouse.replace_many(
        [
            ("reference_profiles", rows, where, [profile.model_name, profile.version]),
            (
                "reference_baselines",
                baselines.reindex(columns=BASELINE_COLUMNS),
                where,
                [profile.model_name, profile.version],
            ),
        ]
    )


def record_fingerprint(warehouse: Warehouse, model_name: str, version: str, fingerprint: str) -> None:
    """The inputs changed but gave the same profile: remember them, so the next check skips the rebuild."""
    warehouse.execute(
        "UPDATE monitoring.reference_profiles SET input_fingerprint = ?, created_at = ? "
        "WHERE model_name = ? AND profile_version = ?",
        [fingerprint, pd.Timestamp.now(tz="UTC"), model_name, version],
    )
