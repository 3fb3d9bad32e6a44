"""The YAML config (contract §2) as typed, validated objects.

Every number a user may want to change lives here with its documented default
(see docs/configuration.md); core modules receive these objects and never read files.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitoring_pipelines.intraday_config import GapsConfig, IntradayConfig

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "data" / "demo_config.yaml"  # written by `simulate` for its dates

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
RESERVED_COLUMNS = frozenset(
    {
        "prediction_id",
        "request_id",
        "model_name",
        "model_version",
        "role",
        "ts",
        "score",
        "prediction",
        "latency_ms",
        "status",
        "partition_date",
        "label",
        "label_ts",
        "predicted_class",  # multiclass: the predicted class as logged (prediction holds its index)
        "scores",  # multiclass: the per-class probabilities as one map column
    }
)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key."""


def check_identifier(value: str, what: str) -> str:
    """Names from config end up as SQL identifiers and partition keys: keep them boring."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a safe identifier (letters, digits and _, not starting with a digit)"
        )
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- thresholds


class DriftOverride(StrictModel):
    """Per-feature override: any field left out falls back to the model's drift thresholds."""

    psi_warning: float | None = None
    psi_critical: float | None = None
    wasserstein: float | None = None
    js: float | None = None
    adaptive: bool | None = None
    min_n: int | None = None
    null_rate_warning: float | None = None
    null_rate_critical: float | None = None
    unseen_warning: float | None = None
    unseen_critical: float | None = None
    out_of_range_warning: float | None = None
    out_of_range_critical: float | None = None
    enabled: bool | None = None


class DriftThresholds(StrictModel):
    psi_warning: float = Field(0.1, gt=0)
    psi_critical: float = Field(0.25, gt=0)
    wasserstein: float = Field(0.1, gt=0)
    js: float = Field(0.1, gt=0)
    fdr_alpha: float = Field(0.05, gt=0, lt=1)
    min_n: int = Field(500, ge=1)
    adaptive: bool = True
    band_k: float = Field(3.0, ge=0)
    null_rate_warning: float = Field(0.05, ge=0, le=1)
    null_rate_critical: float = Field(0.20, ge=0, le=1)
    unseen_warning: float = Field(0.01, ge=0, le=1)
    unseen_critical: float = Field(0.05, ge=0, le=1)
    out_of_range_warning: float = Field(0.01, ge=0, le=1)
    out_of_range_critical: float = Field(0.05, ge=0, le=1)
    bins: int = Field(10, ge=2, le=100)
    top_k: int = Field(20, ge=1, le=1000)
    features: dict[str, DriftOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        if self.psi_critical < self.psi_warning:
            raise ValueError("psi_critical must be >= psi_warning")
        return self

    def for_feature(self, feature: str) -> DriftThresholds:
        """The thresholds that apply to one feature, overrides merged in."""
        override = self.features.get(feature)
        if override is None:
            return self
        changes = {k: v for k, v in override.model_dump().items() if v is not None and k != "enabled"}
        return self.model_copy(update=changes)

    def feature_enabled(self, feature: str) -> bool:
        override = self.features.get(feature)
        return override is None or override.enabled is not False


class PerformanceThresholds(StrictModel):
    band_k: float = Field(3.0, gt=0)
    auc_critical_drop: float = Field(0.05, gt=0)
    # multiclass: accuracy this far below its reference mean is critical (same scale as the AUC's drop)
    accuracy_critical_drop: float = Field(0.05, gt=0)
    # regression: mae / rmse this share above their reference mean is critical (errors are in the label's
    # unit, so an absolute default cannot fit every model; `critical_drops` takes absolute ones)
    error_critical_increase: float = Field(0.25, gt=0)
    min_n: int = Field(200, ge=1)
    ece_bins: int = Field(10, ge=2)
    critical_drops: dict[str, float] = Field(default_factory=dict)


class SubgroupThresholds(StrictModel):
    """Subgroup and fairness checks (docs/fairness.md). `disparity_low`, `parity_gap` and
    `equalized_odds_gap` are the lines a group must cross for `fairness_gap` to look at it: a group
    beyond its line in the reference window too is a standing finding (info), one that moved there
    beyond its reference band a warning. The `absolute_*` limits are the owner's own hard limits
    (unset: none); a group whose interval lies beyond one is critical, standing or not."""

    min_n: int = Field(200, ge=1)
    disparity_low: float = Field(0.8, gt=0, le=1)
    # regression: the line of a segment value's mae_ratio (its MAE over the rest's), the four-fifths rule
    # mirrored; binary ratios are to the most-favoured group (<= 1) and use disparity_low
    disparity_high: float = Field(1.25, ge=1)
    parity_gap: float = Field(0.1, gt=0)
    equalized_odds_gap: float = Field(0.1, gt=0)
    band_k: float = Field(3.0, gt=0)
    degradation_margin: float = Field(0.02, ge=0)
    absolute_min_ratio: float | None = Field(None, gt=0, le=1)
    absolute_max_parity_difference: float | None = Field(None, gt=0, le=1)
    absolute_max_equalized_odds_difference: float | None = Field(None, gt=0, le=1)
    absolute_max_mae_ratio: float | None = Field(None, gt=1)  # regression
    absolute_max_accuracy_shortfall: float | None = Field(None, gt=0, le=1)  # multiclass


class ShadowThresholds(StrictModel):
    # default per task: auc (binary), mae (regression), accuracy (multiclass); see ModelConfig._task_defaults
    primary_metric: Literal["auc", "log_loss", "brier", "accuracy", "mae", "rmse"] = "auc"
    window_days: int = Field(7, ge=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    segment_tolerance: float = Field(0.02, ge=0)
    min_improvement: float = Field(0.005, ge=0)
    min_coverage: float = Field(0.95, ge=0, le=1)
    min_n: int = Field(200, ge=1)
    bootstrap_samples: int = Field(1000, ge=100)


class ServingThresholds(StrictModel):
    p99_latency_warning_ms: float = Field(500.0, gt=0)
    p99_latency_critical_ms: float = Field(1000.0, gt=0)
    error_rate_warning: float = Field(0.01, ge=0, le=1)
    error_rate_critical: float = Field(0.05, ge=0, le=1)
    min_n: int = Field(100, ge=1)


class OutcomeThresholds(StrictModel):
    band_k: float = Field(3.0, gt=0)
    min_n: int = Field(100, ge=1)


class Thresholds(StrictModel):
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    performance: PerformanceThresholds = Field(default_factory=PerformanceThresholds)
    subgroups: SubgroupThresholds = Field(default_factory=SubgroupThresholds)
    shadow: ShadowThresholds = Field(default_factory=ShadowThresholds)
    serving: ServingThresholds = Field(default_factory=ServingThresholds)
    outcomes: OutcomeThresholds = Field(default_factory=OutcomeThresholds)


# --------------------------------------------------------------------------- models


class Features(StrictModel):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @field_validator("numeric", "categorical")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            check_identifier(name, "feature")
            if name in RESERVED_COLUMNS or name.startswith("score__"):
                raise ValueError(f"feature {name!r} clashes with a reserved column of the prediction log")
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"feature {name!r} is listed twice")
            seen.add(name)
        return names

    @model_validator(mode="after")
    def _disjoint(self) -> Features:
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"feature {sorted(both)[0]!r} is listed twice (numeric and categorical)")
        if not self.numeric and not self.categorical:
            raise ValueError("a model needs at least one feature")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class ReferenceWindow(StrictModel):
    start: dt.date
    end: dt.date
    path: str | None = None  # optional reference file (same schema as the prediction log)

    @model_validator(mode="after")
    def _order(self) -> ReferenceWindow:
        if self.end < self.start:
            raise ValueError(f"reference window ends ({self.end}) before it starts ({self.start})")
        return self


class SqlSource(StrictModel):
    """Predictions (and optionally labels/outcomes) served by a SQL database."""

    url: str  # may reference an env var as ${NAME}
    predictions_table: str
    labels_table: str | None = None
    outcomes_table: str | None = None
    chunk_rows: int = Field(200_000, ge=1000)

    @field_validator("predictions_table", "labels_table", "outcomes_table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        if value is None:
            return value
        for part in value.split("."):
            check_identifier(part, "table")
        return value


TASKS: tuple[str, ...] = ("binary_classification", "regression", "multiclass_classification")
Task = Literal["binary_classification", "regression", "multiclass_classification"]
PROBABILITY_PREFIX = "score__"  # multiclass: column `score__<class>` holds the probability of <class>
# The shadow primary metrics each task can be compared on, the first one its default.
SHADOW_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("auc", "log_loss", "brier", "accuracy"),
    "regression": ("mae", "rmse"),
    # log_loss would need both sides' per-class probabilities in the shadow pairs (not carried yet)
    "multiclass_classification": ("accuracy",),
}


class ModelConfig(StrictModel):
    name: str
    task: Task = "binary_classification"
    # multiclass_classification: the classes, in order (at least 2, each a safe identifier: it names the
    # column score__<class>); a logged or observed class outside them is a data-quality finding
    classes: list[str] = Field(default_factory=list)
    features: Features
    segments: list[str] = Field(default_factory=list)
    segment_intersections: list[list[str]] = Field(default_factory=list)
    label_delay_days: int = Field(7, ge=0, le=365)
    # days after its own a prediction row may still be logged: day D reads the folders D..D+late_days
    late_days: int = Field(2, ge=0, le=30)
    reference: ReferenceWindow
    outcomes: list[str] = Field(default_factory=list)
    owner: str = "unassigned"
    source: Literal["files", "sql"] = "files"
    sql: SqlSource | None = None
    expected_rows: tuple[int, int] | None = None  # per-day row count bounds for validation
    thresholds: Thresholds = Field(default_factory=Thresholds)
    intraday: IntradayConfig | None = None  # opt-in intraday watch (docs/intraday.md)
    gaps: GapsConfig = Field(default_factory=GapsConfig)  # alerts for monitoring gaps

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_identifier(value, "model name")

    @field_validator("segments")
    @classmethod
    def _segments(cls, names: list[str]) -> list[str]:
        for name in names:
            check_identifier(name, "segment")
            if name in RESERVED_COLUMNS:
                raise ValueError(f"segment {name!r} clashes with a reserved column of the prediction log")
        if len(set(names)) != len(names):
            raise ValueError("a segment is listed twice")
        return names

    @field_validator("outcomes")
    @classmethod
    def _outcomes(cls, names: list[str]) -> list[str]:
        for name in names:
            check_identifier(name, "outcome")
        return names

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """The shadow comparison's primary metric defaults to the task's own (auc means nothing for a
        regression model)."""
        if not isinstance(raw, dict) or raw.get("task") not in SHADOW_METRICS:
            return raw
        default = SHADOW_METRICS[raw["task"]][0]
        thresholds = dict(raw.get("thresholds") or {})
        shadow = dict(thresholds.get("shadow") or {})
        if "primary_metric" not in shadow and default != "auc":
            shadow["primary_metric"] = default
            thresholds["shadow"] = shadow
            return {**raw, "thresholds": thresholds}
        return raw

    @field_validator("classes")
    @classmethod
    def _classes(cls, names: list[str]) -> list[str]:
        for name in names:
            check_identifier(name, "class")
        if len(set(names)) != len(names):
            raise ValueError("a class is listed twice")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.task == "multiclass_classification" and len(self.classes) < 2:
            raise ValueError("task multiclass_classification needs classes: [at least two class names]")
        if self.intraday is not None and self.task != "binary_classification":
            raise ValueError(
                f"intraday looks are for binary_classification models, not {self.task} (docs/intraday.md)"
            )
        if self.task != "multiclass_classification" and self.classes:
            raise ValueError(f"classes are for task multiclass_classification, not {self.task}")
        if self.thresholds.shadow.primary_metric not in SHADOW_METRICS[self.task]:
            raise ValueError(
                f"thresholds.shadow.primary_metric {self.thresholds.shadow.primary_metric!r} does not apply "
                f"to task {self.task} (one of {list(SHADOW_METRICS[self.task])})"
            )
        for combo in self.segment_intersections:
            if len(combo) < 2:
                raise ValueError("segment_intersections entries list at least two segments")
            for name in combo:
                if name not in self.segments:
                    raise ValueError(f"segment_intersections names {name!r}, which is not in segments")
        numeric_segments = set(self.segments) & set(self.features.numeric)
        if numeric_segments:
            raise ValueError(
                f"segment {sorted(numeric_segments)[0]!r} is a numeric feature; segments are strings"
            )
        if self.source == "sql" and self.sql is None:
            raise ValueError("source: sql needs a sql: block (url, predictions_table)")
        for feature in self.thresholds.drift.features:
            outputs = ("__score__", "__predicted_class__" if self.is_multiclass else "__prediction_rate__")
            if feature not in self.features.all and feature not in outputs:
                raise ValueError(f"thresholds.drift.features names {feature!r}, which is not a feature")
        if self.expected_rows and self.expected_rows[0] > self.expected_rows[1]:
            raise ValueError("expected_rows is [min, max]")
        return self

    @property
    def is_binary(self) -> bool:
        return self.task == "binary_classification"

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def is_multiclass(self) -> bool:
        return self.task == "multiclass_classification"

    @property
    def probability_columns(self) -> list[str]:
        """multiclass: `score__<class>` per class, in `classes` order; empty for the other tasks."""
        return [f"{PROBABILITY_PREFIX}{c}" for c in self.classes]

    @property
    def input_columns(self) -> list[str]:
        """Feature and segment columns in log order, each once (a segment may also be a feature)."""
        return list(dict.fromkeys([*self.features.all, *self.segments]))

    @property
    def string_columns(self) -> list[str]:
        return list(dict.fromkeys([*self.features.categorical, *self.segments]))


# The alert channels, declared once: routes are checked against this and channels/ registers
# one implementation per name.
CHANNEL_NAMES: tuple[str, ...] = ("webhook", "slack", "pagerduty", "email")


class AlertingConfig(StrictModel):
    routes: dict[Literal["critical", "warning", "info"], list[str]] = Field(
        default_factory=lambda: {"critical": [], "warning": [], "info": []}
    )
    owner_routes: dict[str, dict[Literal["critical", "warning", "info"], list[str]]] = Field(
        default_factory=dict
    )
    warning_persist_days: int = Field(2, ge=1)
    resolve_after_days: int = Field(3, ge=1)
    escalate_after_days: int = Field(5, ge=1)
    # Noise control against flapping and alert storms (docs/alerting.md): an auto-resolved alert failing again
    # within `reopen_within_days` of its resolution re-opens (0: never); resolving needs the value back inside
    # its threshold by `resolve_margin` (a share of the threshold's distance from the reference value);
    # alerts of a model starting within `incident_window_days` of each other are one incident.
    reopen_within_days: int = Field(7, ge=0)
    resolve_margin: float = Field(0.1, ge=0, lt=1)
    incident_window_days: int = Field(1, ge=0)
    digest_warnings: bool = True
    notify_max_age_days: int = Field(2, ge=0)
    max_attempts: int = Field(8, ge=1)
    retry_base_seconds: float = Field(60.0, ge=0)
    ui_base_url: str = "http://127.0.0.1:3000"

    @field_validator("routes", "owner_routes")
    @classmethod
    def _channels(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = set(CHANNEL_NAMES)

        def check(routes: dict[str, list[str]]) -> None:
            for channels in routes.values():
                for channel in channels:
                    if channel not in known:
                        raise ValueError(f"unknown alert channel {channel!r} (known: {sorted(known)})")

        if value and all(isinstance(v, list) for v in value.values()):
            check(value)
        else:
            for routes in value.values():
                check(routes)
        return value


LAKE_PREFIX = "ducklake:"  # `warehouse: ducklake:postgres:...` selects a DuckLake (storage/warehouse.py)


class ExecutionConfig(StrictModel):
    """How a run's steps execute (defs/execution.py). The default runs them one after another in the run's
    process, sharing the model-day; the others spread steps over processes or hosts, which only pays off
    with a warehouse that takes concurrent writers (a DuckLake: docs/scaling.md)."""

    executor: Literal["in_process", "multiprocess", "celery"] = "in_process"
    max_concurrent: int | None = Field(None, ge=1, description="multiprocess: steps at once (default: cores)")
    broker: str | None = Field(None, description="celery: broker URL (default env DAGSTER_CELERY_BROKER_URL)")
    backend: str | None = Field(None, description="celery: result backend URL (default: the broker)")


class MonitoringConfig(StrictModel):
    data_dir: Path
    # a DuckDB file, or a DuckLake catalog (`ducklake:postgres:dbname=... host=...`) kept as written
    warehouse: Path | str
    # where a DuckLake keeps its Parquet files: a directory (relative to the config file) or s3://bucket/prefix
    warehouse_data_path: str | None = None
    # `data_dir: s3://bucket/prefix`: the inputs are read there (storage/sources.py ObjectStoreSource) and
    # `data_dir` becomes the config file's folder, where the local outputs go (dashboard, backlog.md)
    input_url: str | None = None
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    models: list[ModelConfig]
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    partitions_start: dt.date | None = None
    config_path: Path | None = None

    @model_validator(mode="after")
    def _lake(self) -> MonitoringConfig:
        if self.warehouse_data_path and not str(self.warehouse).startswith(LAKE_PREFIX):
            raise ValueError("warehouse_data_path is for a DuckLake warehouse (warehouse: ducklake:...)")
        return self

    @model_validator(mode="after")
    def _unique(self) -> MonitoringConfig:
        names = [m.name for m in self.models]
        if not names:
            raise ValueError("models: at least one model is needed")
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"model {sorted(dupes)[0]!r} is listed twice")
        kinds: dict[str, tuple[str, str]] = {}
        for model in self.models:
            for col in model.features.numeric:
                kinds.setdefault(col, ("numeric", model.name))
            for col in model.string_columns:
                kinds.setdefault(col, ("string", model.name))
            for col in model.features.numeric:
                if kinds[col][0] != "numeric":
                    raise ValueError(
                        f"column {col!r} is numeric in model {model.name!r} but a string in {kinds[col][1]!r}"
                    )
        return self

    def model(self, name: str) -> ModelConfig:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"model {name!r} is not in the config (known: {[m.name for m in self.models]})")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def start_date(self) -> dt.date:
        """First day a partition may exist for: the earliest reference start unless set."""
        if self.partitions_start:
            return self.partitions_start
        return min(m.reference.start for m in self.models)

    @property
    def numeric_columns(self) -> list[str]:
        return list(dict.fromkeys(c for m in self.models for c in m.features.numeric))

    @property
    def string_columns(self) -> list[str]:
        return list(dict.fromkeys(c for m in self.models for c in m.string_columns))


# Keys renamed when every minimum sample size became `min_n` and every k·σ band `band_k` (0.2).
# A config that still uses an old name gets an error naming the new one (docs/configuration.md).
RENAMED_KEYS: dict[str, str] = {
    "min_rows": "min_n",
    "min_labelled": "min_n",
    "min_requests": "min_n",
    "min_segment_n": "min_n",
    "adaptive_sigma": "band_k",
}


def _format_errors(err: ValidationError, path: Path) -> str:
    lines = [f"invalid config {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            old = str(e["loc"][-1]) if e["loc"] else ""
            msg = (
                f"renamed to {RENAMED_KEYS[old]!r} (see 'Renamed keys' in docs/configuration.md)"
                if old in RENAMED_KEYS
                else "unknown key"
            )
        lines.append(f"  {loc or '<top>'}: {msg}")
    return "\n".join(lines)


def config_path_from_env(path: str | Path | None = None) -> Path:
    chosen = path or os.environ.get("MONITORING_CONFIG") or DEFAULT_CONFIG_PATH
    return Path(chosen).expanduser().resolve()


def load_config(path: str | Path | None = None) -> MonitoringConfig:
    """Read and validate the config; env vars MONITORING_DATA_DIR / MONITORING_WAREHOUSE override paths."""
    cfg_path = config_path_from_env(path)
    if not cfg_path.exists():
        hint = (
            "`make demo` (or `monitoring-pipelines simulate`) writes it with the demo traffic"
            if cfg_path == DEFAULT_CONFIG_PATH
            else "set --config or MONITORING_CONFIG"
        )
        raise ConfigError(f"config file {cfg_path} does not exist: {hint}")
    try:
        raw = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {cfg_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {cfg_path}: top level must be a mapping")
    return config_from_dict(raw, cfg_path)


def config_from_dict(raw: dict[str, Any], cfg_path: Path) -> MonitoringConfig:
    raw = dict(raw)
    base = cfg_path.parent
    for key, env in (("data_dir", "MONITORING_DATA_DIR"), ("warehouse", "MONITORING_WAREHOUSE")):
        if os.environ.get(env):
            raw[key] = os.environ[env]
    raw.setdefault("data_dir", ".")
    raw_given = set(raw)
    raw.setdefault("warehouse", str(Path(str(raw["data_dir"])) / "warehouse.duckdb"))
    if os.environ.get("MONITORING_WAREHOUSE_DATA_PATH"):
        raw["warehouse_data_path"] = os.environ["MONITORING_WAREHOUSE_DATA_PATH"]
    if str(raw["data_dir"]).startswith("s3://"):
        raw["input_url"] = str(raw["data_dir"])
        raw["data_dir"] = "."
        if not os.environ.get("MONITORING_WAREHOUSE") and "warehouse" not in raw_given:
            raw["warehouse"] = "warehouse.duckdb"
    for key in ("data_dir", "warehouse"):
        if key == "warehouse" and str(raw[key]).startswith(LAKE_PREFIX):
            raw[key] = str(raw[key])  # a catalog connection string, not a path
            continue
        p = Path(str(raw[key])).expanduser()
        raw[key] = p if p.is_absolute() else (base / p).resolve()
    lake_data = raw.get("warehouse_data_path")
    if lake_data and "://" not in str(lake_data):
        p = Path(str(lake_data)).expanduser()
        raw["warehouse_data_path"] = str(p if p.is_absolute() else (base / p).resolve())
    raw["config_path"] = cfg_path
    try:
        return MonitoringConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, cfg_path)) from None
