"""The static dashboard: an index and one page per model, written under the data directory.

Static files because the people who must read them (risk officers, product owners) should not need
Dagster, DuckDB or a server: the folder opens from disk, from a file share or as an attachment.
Charts are Altair (Vega-Lite) specs with their rows embedded; the Vega runtime is copied once into
`assets/` beside the pages, so nothing is fetched from the network.

Data comes from a few DuckDB queries per model (aggregations in SQL); this module turns the rows into
plain-language views (what is wrong, since when, what is being done) and the Jinja2 templates in
`templates/` turn the views into HTML with autoescaping, so no value from the data can become markup.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import jinja2
import pandas as pd
from markupsafe import Markup

from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.core.baselines import band_limits
from monitoring_pipelines.core.formatting import fmt, is_missing
from monitoring_pipelines.core.stats import z_value
from monitoring_pipelines.dashboard import charts
from monitoring_pipelines.oncall import alert_ids, evidence_words
from monitoring_pipelines.schema import ALL
from monitoring_pipelines.storage.warehouse import Warehouse, qualified

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
ASSETS = (
    "vega.min.js",
    "vega-lite.min.js",
    "vega-embed.min.js",
    "vega.LICENSE",
    "vega-lite.LICENSE",
    "vega-embed.LICENSE",
    "dashboard.css",
)
SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")

HISTORY_DAYS = 90  # days of history drawn, counted back from the model's last day with data
STALE_AFTER_DAYS = 2  # data older than this (in days before today) turns a model amber
SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
CLOSED_BACKLOG = ("resolved", "closed", "done", "wont_fix", "won't fix", "duplicate")
RECENT_CLOSED_BACKLOG = 20
MEASURED = "measured (from labels)"
ESTIMATED = "estimated (labels not in yet)"
# An estimate is drawn for a day only while fewer than this share of its predictions have labels: from
# then on the measured value, with its own interval, is the better number for that day.
ESTIMATE_UNTIL_LABELLED = 0.5
OUTCOME_WIDTH = 1020  # px: the business-outcome chart spans the page
# Quality metrics per task in the order they are shown; the first one present is the model's headline
# metric (the index card's "Model quality"). The others of the task go under "More quality metrics".
TASK_QUALITY_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("auc", "accuracy", "log_loss", "brier"),
    "regression": ("mae", "rmse", "bias", "r2"),
    "multiclass_classification": ("accuracy", "macro_f1", "weighted_f1", "log_loss"),
}
QUALITY_METRICS = TASK_QUALITY_METRICS["binary_classification"]
# The metric shown beside the headline on the quality card (multiclass: accuracy hides a small class failing).
SECOND_QUALITY_METRIC: dict[str, str] = {"multiclass_classification": "macro_f1"}
# Which way is better; None: a change either way is the news (bias, the labels' own distribution).
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "auc": True, "accuracy": True, "recall": True, "precision": True, "f1": True, "log_loss": False,
    "brier": False, "ece": False, "mae": False, "rmse": False, "median_ae": False, "mape": False,
    "smape": False, "r2": True, "bias": None, "label_mean": None, "macro_f1": True, "weighted_f1": True,
    "label_share": None,
}  # fmt: skip
# Chart panel titles; `precision:<class>` and the other per-class names go through `metric_title`.
METRIC_NAMES = {
    "auc": "AUC (ranking quality)",
    "accuracy": "accuracy",
    "log_loss": "log loss (lower is better)",
    "brier": "Brier score (lower is better)",
    "mae": "mean absolute error (label's unit; lower is better)",
    "rmse": "root mean squared error (label's unit; lower is better)",
    "median_ae": "median absolute error (lower is better)",
    "mape": "mean absolute percentage error (lower is better)",
    "smape": "symmetric MAPE (lower is better)",
    "r2": "R² (share of the variance explained)",
    "bias": "bias: mean of predicted − observed (0 is unbiased)",
    "label_mean": "mean observed value (labels)",
    "macro_f1": "macro F1 (every class counts the same)",
    "weighted_f1": "weighted F1 (classes weighted by size)",
}
CLASS_METRIC_NAMES = {
    "precision": "precision of {}",
    "recall": "recall of {}",
    "label_share": "share of {} in labels",
}
# Metric names in a sentence ("prediction quality (AUC) fell below ...").
METRIC_WORDS = {
    "auc": "AUC", "log_loss": "log loss", "brier": "Brier score", "ece": "calibration error",
    "mae": "mean absolute error", "rmse": "root mean squared error", "median_ae": "median absolute error",
    "mape": "mean absolute percentage error", "smape": "symmetric mean absolute percentage error",
    "r2": "R²", "bias": "bias (mean of predicted − observed)", "label_mean": "mean observed value",
    "macro_f1": "macro F1", "weighted_f1": "weighted F1",
}  # fmt: skip
CLASS_METRIC_WORDS = {"precision": "precision on class {}", "recall": "recall on class {}",
                      "label_share": "share of class {} among the labels"}  # fmt: skip
# What "the day's scores fell outside the reference range" means per task (untrusted estimates).
ESTIMATE_INPUTS = {
    "binary_classification": "scores",
    "regression": "predicted values",
    "multiclass_classification": "class probabilities",
}
# Numbers as the pages show them: 4 significant digits ("+" when sign=True), whole numbers below 1e9 with
# thousands separators, "–" when missing, ∞ for infinity. Plain text: the templates escape it.
_number = partial(fmt, infinity=("∞", "−∞"), grouping=True)

HealthStatus = Literal["green", "amber", "red"]
STATUS_LABEL: dict[str, str] = {"green": "Healthy", "amber": "Needs attention", "red": "Action needed"}
VERDICTS: dict[str, str] = {  # core.shadow verdicts in words
    "promote": "Promote: the shadow is better",
    "do_not_promote": "Do not promote",
    "keep_collecting": "Keep collecting: not sure yet",
}

# Plain-language names for what a check watches, matched on words in check_name/metric (first hit wins).
TOPICS: tuple[tuple[tuple[str, ...], str], ...] = (
    # before "drift": target drift is about the labels, not the inputs
    (("target_drift", "label_mean", "label_share"), "The observed outcomes have changed"),
    (
        ("subgroup", "fair", "parity", "disparity", "equalized", "segment", "differential"),
        "A group of people is treated differently",
    ),
    (("shadow", "promot"), "Shadow model comparison"),
    (("latency", "serving", "error_rate", "errors"), "Slow or failing responses"),
    (("outcome",), "Business outcome changed"),
    (("drift", "psi", "wasserstein"), "Input data has changed"),
    (
        ("perf", "auc", "calibrat", "accuracy", "brier", "log_loss", "ece", "estimated", "mae", "rmse", "f1"),
        "Prediction quality dropped",
    ),
    (("fresh", "stale", "late", "missing_partition"), "Data is late"),
    (
        (
            "valid",
            "quality",
            "schema",
            "null",
            "volume",
            "quarantin",
            "expect",
            "unseen",
            "range",
            "snapshot",
        ),
        "Data quality problem",
    ),
)
# The model's own outputs, as drift_scores names them, per task: in sentences and as drift chart rows.
SPECIAL_INPUTS = {"__score__": "the model's scores", "__prediction_rate__": "the share of positive decisions"}
TASK_SPECIAL_INPUTS: dict[str, dict[str, str]] = {
    "binary_classification": SPECIAL_INPUTS,
    "regression": {"__score__": "the model's predicted values"},
    "multiclass_classification": {
        "__score__": "the model's confidence in its predicted class",
        "__predicted_class__": "the mix of predicted classes",
    },
}
SPECIAL_INPUT_LABELS: dict[str, dict[str, str]] = {
    "binary_classification": {
        "__score__": "model score (prediction drift)",
        "__prediction_rate__": "positive-decision rate",
    },
    "regression": {"__score__": "predicted value (prediction drift)"},
    "multiclass_classification": {
        "__score__": "class confidence (prediction drift)",
        "__predicted_class__": "predicted classes (prediction drift)",
    },
}
# Drift statistics drawn, in this order, with their titles (core.drift.STATISTIC_ORDER). Test
# statistics (ks, chi2) and descriptive ones (mean, std) are not drawn: their verdicts still count
# in the overview and they stay in drift_scores for analysts.
DRIFT_CHARTS: dict[str, str] = {
    "psi": "PSI (population stability index)",
    "js": "Jensen–Shannon distance",
    "wasserstein_norm": "Wasserstein distance (in reference spreads)",
    "null_rate_change": "Change in the share of missing values",
    "out_of_range_share": "Share of values outside the reference range",
    "unseen_share": "Share of categories never seen in the reference",
}
DRIFT_NOT_DRAWN = ("ks", "chi2", "mean", "std")
# Whole-pair shadow metrics drawn as shadow − champion (core.shadow).
SHADOW_METRICS = (
    "auc",
    "accuracy",
    "log_loss",
    "brier",
    "recall",
    "precision",
    "positive_rate",
    "mean_score",
    "mae",
    "rmse",
)  # and multiclass `recall:<class>`
# Per-segment fairness summaries (segment_value = '__all__', core.fairness) and what to call them.
FAIRNESS_SUMMARIES: dict[str, str] = {
    "demographic_parity_difference": "positive-rate gap (demographic parity)",
    "equalized_odds_difference": "error-rate gap (equalized odds)",
    "demographic_parity_ratio": "lowest to highest positive rate (four-fifths line)",
}
# Regression / multiclass fairness rows per group (core.task_subgroups), drawn as the worst group per segment.
WORST_GROUP_SUMMARIES: dict[str, str] = {
    "mae_ratio": "highest error ratio of a group to the rest (MAE)",
    "accuracy_shortfall": "largest accuracy shortfall of a group to the rest",
}


@dataclass(frozen=True)
class DashboardResult:
    """Where the site was written and how many charts it holds (the asset's metadata)."""

    index_path: Path
    model_pages: dict[str, Path]
    charts: int


@dataclass(frozen=True)
class AlertView:
    """One unresolved alert as a page shows it: plain words first, the statistics for the details."""

    alert_id: str
    severity: str
    status: str
    since: dt.date | None
    last_seen: dt.date | None
    words: str
    technical: str
    message: str
    evidence: list[str]


@dataclass(frozen=True)
class IncidentView:
    """Unresolved alerts of a model that started together (alerts.incident_id): one problem to act on."""

    incident_id: str
    severity: str
    since: dt.date | None
    last_seen: dt.date | None
    summary: str
    root_cause: str | None
    alerts: list[AlertView]
    item: dict[str, str] | None
    acknowledged: bool

    @property
    def standing(self) -> bool:
        """An info-only incident: a finding for review (a standing fairness gap, a shadow verdict)."""
        return self.severity == "info"


@dataclass(frozen=True)
class ModelHealth:
    """The plain-language verdict on one model: colour, a one-line headline and what is wrong since when."""

    model_name: str
    status: HealthStatus
    headline: str
    since: dt.date | None
    problems: list[str]
    open_counts: dict[str, int]
    last_data: dt.date | None
    freshness_days: int | None
    last_run_at: str | None
    last_run_id: str | None
    incidents: list[IncidentView] = field(default_factory=list)

    @property
    def label(self) -> str:
        return STATUS_LABEL[self.status]

    @property
    def sentence(self) -> str:
        """The index's answer to "what is wrong, since when, what is being done", badge word first."""
        return f"{self.label}: {self.headline}"

    @property
    def findings(self) -> list[IncidentView]:
        return [i for i in self.incidents if i.standing]

    @property
    def problems_open(self) -> list[IncidentView]:
        return [i for i in self.incidents if not i.standing]


@dataclass(frozen=True)
class ChartRef:
    """A chart's place on a page: the container id and the id of its spec's <script> element."""

    element_id: str
    spec_id: str


@dataclass
class _Page:
    """Specs collected while a page's views are built, embedded at its end by the template."""

    prefix: str = "chart"
    specs: list[dict[str, Any]] = field(default_factory=list)

    def chart(self, figure: charts.Figure | None) -> ChartRef | None:
        if figure is None:
            return None
        self.specs.append(figure.to_spec())
        n = len(self.specs)
        return ChartRef(f"{self.prefix}-{n}", f"spec-{n}")


# ---------------------------------------------------------------------------------------------- templates


def script_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> element: `<`, `>` and `&` as \\u escapes, so no value
    (a category `</script>`, a comment opener) can end the element or start markup inside it."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def template_environment() -> jinja2.Environment:
    """The dashboard's Jinja2 environment: autoescaping on for every template, undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["script_json"] = script_json
    env.filters["num"] = lambda v, sign=False: _number(v, sign=sign)
    env.filters["long_date"] = _long_date
    env.filters["short_date"] = _short_date
    env.filters["pct"] = _percent
    env.filters["freshness"] = _freshness
    env.filters["capitalize_first"] = _cap
    env.filters["ago"] = _ago
    return env


# ---------------------------------------------------------------------------------------------- entry point


def render_dashboard(
    warehouse: Warehouse,
    config: MonitoringConfig,
    out_dir: Path,
    now: dt.datetime | None = None,
    *,
    history_days: int = HISTORY_DAYS,
    stale_after_days: int = STALE_AFTER_DAYS,
) -> DashboardResult:
    """Write `index.html`, `<model>.html` for every configured model and `assets/` under `out_dir`.

    `now` fixes "today" (freshness, "N days ago") and the generated-at line; the same warehouse and
    `now` give byte-identical files.
    """
    now = now or dt.datetime.now(dt.UTC)
    now = now.astimezone(dt.UTC) if now.tzinfo else now.replace(tzinfo=dt.UTC)
    today = now.date()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _copy_assets(out_dir / "assets")
    env = template_environment()

    names = config.model_names
    status = _status_by_model(warehouse, names)
    alerts = _active_alerts(warehouse, names)
    items = _item_refs(warehouse, names)
    health = {
        name: assess_health(
            name,
            status.get(name, {}),
            alerts[alerts["model_name"] == name],
            today,
            stale_after_days,
            items=items[items["model_name"] == name],
            task=config.model(name).task,
        )
        for name in names
    }
    common = {
        "generated": f"Generated {now:%Y-%m-%d %H:%M} UTC",
        "as_of": f"As of {today.isoformat()} (UTC): freshness and “days ago” count from this day.",
        "today": today,
        "scripts": SCRIPTS,
    }

    pages: dict[str, Path] = {}
    index_page = _Page(prefix="index-chart")
    cards = []
    total_charts = 0
    for model in config.models:
        h = health[model.name]
        last = h.last_data or today
        start = last - dt.timedelta(days=history_days - 1)
        frames = _model_frames(warehouse, model, start)
        page = _Page()
        view = _model_view(model, h, frames, page, today, history_days)
        path = out_dir / f"{model.name}.html"
        html = env.get_template("model.html").render(
            **common, title=f"{model.name}: model monitoring", heading=model.name, crumbs=True,
            specs=page.specs, m=view,
        )  # fmt: skip
        _write(path, html)
        pages[model.name] = path
        total_charts += len(page.specs)
        cards.append(_index_card(model, h, view, frames, index_page))

    tally = {s: sum(1 for h in health.values() if h.status == s) for s in ("red", "amber", "green")}
    summary = ", ".join(f"{n} {STATUS_LABEL[s].lower()}" for s, n in tally.items() if n)
    index = out_dir / "index.html"
    _write(
        index,
        env.get_template("index.html").render(
            **common, title="Model monitoring", heading="Model monitoring", crumbs=False,
            specs=index_page.specs, cards=cards, summary=f"{_plural(len(config.models), 'model')}: {summary}.",
        ),
    )  # fmt: skip
    total_charts += len(index_page.specs)
    return DashboardResult(index_path=index, model_pages=pages, charts=total_charts)


# ---------------------------------------------------------------------------------------------- health


def assess_health(
    model_name: str,
    status: dict[str, Any],
    alerts: pd.DataFrame,
    today: dt.date,
    stale_after_days: int = STALE_AFTER_DAYS,
    items: pd.DataFrame | None = None,
    task: str = "binary_classification",
) -> ModelHealth:
    """Green / amber / red from the model's unresolved alerts, grouped by incident, and how fresh its data is.

    Red: an unresolved critical incident. Amber: an unresolved warning, no data yet, or the last day
    with data more than `stale_after_days` before `today`. Green otherwise: info-only incidents (a
    standing fairness finding, a shadow verdict) are findings for review and never change the colour.
    The headline names the worst incident in words, its first day (the incident's, not the day a
    standing finding was first seen), how many alerts it holds and its backlog item.
    """
    counts = {sev: int(status.get(sev) or 0) for sev in SEVERITIES}
    last_data = _as_date(status.get("last_data"))
    freshness = (today - last_data).days if last_data else None
    stale = last_data is None or (freshness is not None and freshness > stale_after_days)
    incidents = group_incidents(alerts, items, task)
    acting = [i for i in incidents if not i.standing]

    problems = [f"{_cap(i.summary)} {_since_words(i.since, today, lead='since ')}." for i in acting]
    if last_data is None:
        problems.append("No monitoring data has reached the warehouse for this model yet.")
    elif stale:
        problems.append(
            f"No new data for {freshness} days: the last day with data is {_long_date(last_data)}."
        )

    state: HealthStatus
    since: dt.date | None = None
    if acting:
        lead = acting[0]  # worst severity, then oldest
        state = "red" if lead.severity == "critical" else "amber"
        since = lead.since
        headline = _incident_sentence(lead, today)
        others = len(acting) - 1
        if others:
            headline += f" Also {_plural(others, 'other open problem')}."
        if stale:
            headline += " No data yet." if last_data is None else f" No new data for {freshness} days."
    elif stale:
        state = "amber"
        if last_data is None:
            headline = "No data yet: no monitoring data has reached the warehouse for this model."
        else:
            since = last_data + dt.timedelta(days=1)
            headline = f"No new data for {freshness} days: the last day with data is {_long_date(last_data)}."
    else:
        state = "green"
        headline = (
            f"No open problems; data up to {_long_date(last_data)}." if last_data else "No open problems."
        )
    findings = len(incidents) - len(acting)
    if findings:
        headline += f" {_plural(findings, 'finding')} for review (not an incident)."
    return ModelHealth(
        model_name=model_name,
        status=state,
        headline=headline,
        since=since,
        problems=problems,
        open_counts=counts,
        last_data=last_data,
        freshness_days=freshness,
        last_run_at=_text_or_none(status.get("last_run_at")),
        last_run_id=_text_or_none(status.get("last_run_id")),
        incidents=incidents,
    )


def _incident_sentence(incident: IncidentView, today: dt.date) -> str:
    """'The income input's distribution changed on 6 Jul 2026 (46 days ago); 3 alerts; backlog item X open.'"""
    parts = [f"{_cap(incident.summary)} {_since_words(incident.since, today, lead='on ')}"]
    parts.append(_plural(len(incident.alerts), "alert"))
    if incident.item:
        parts.append(f"backlog item {incident.item['item_id']} {incident.item['status'].replace('_', ' ')}")
    else:
        parts.append("no backlog item yet")
    text = "; ".join(parts) + "."
    if incident.acknowledged:
        text += " Someone is on it (acknowledged)."
    return text


def group_incidents(
    alerts: pd.DataFrame, items: pd.DataFrame | None = None, task: str = "binary_classification"
) -> list[IncidentView]:
    """Unresolved alerts grouped by `incident_id` (an alert without one is its own incident), worst and
    oldest first, each with the backlog item that tracks any of its alerts; `task` is the model's (words)."""
    if alerts.empty:
        return []
    frame = alerts.copy()
    for column in ("incident_id", "root_cause", "evidence", "message", "metric", "subject", "status"):
        if column not in frame.columns:
            frame[column] = None
    if "alert_id" not in frame.columns:
        frame["alert_id"] = [f"alert-{i}" for i in range(len(frame))]
    for column in ("since", "last_seen"):
        if column not in frame.columns:
            frame[column] = None
    frame["incident_key"] = [
        _text_or_none(i) or str(a) for i, a in zip(frame["incident_id"], frame["alert_id"], strict=True)
    ]
    item_of: dict[str, dict[str, str]] = {}
    if items is not None and not items.empty:
        for item in items.to_dict("records"):
            for alert_id in alert_ids(item):
                item_of.setdefault(str(alert_id), {k: str(item[k]) for k in ("item_id", "status", "title")})

    views = []
    for key, rows in frame.groupby("incident_key", sort=False):
        records = sorted(
            rows.to_dict("records"),
            key=lambda r: (SEVERITY_RANK.get(str(r["severity"]), 3), str(r.get("since") or "")),
        )
        alert_views = [_alert_view(r, task) for r in records]
        lead = records[0]
        days = [d for d in (_as_date(r.get("since")) for r in records) if d]
        lasts = [d for d in (_as_date(r.get("last_seen")) for r in records) if d]
        item = next((item_of[a.alert_id] for a in alert_views if a.alert_id in item_of), None)
        views.append(
            IncidentView(
                incident_id=str(key),
                severity=str(lead["severity"]),
                since=min(days, default=None),
                last_seen=max(lasts, default=None),
                summary=plain_problem(lead, task),
                root_cause=_text_or_none(lead.get("root_cause")),
                alerts=alert_views,
                item=item,
                acknowledged=all(str(r.get("status")) == "acknowledged" for r in records),
            )
        )
    views.sort(key=lambda v: (SEVERITY_RANK.get(v.severity, 3), v.since or dt.date.max, v.incident_id))
    return views


def _alert_view(row: dict[str, Any], task: str = "binary_classification") -> AlertView:
    metric = _text_or_none(row.get("metric"))
    technical = str(row.get("check_name") or "")
    if metric:
        technical += f" · {metric} {_number(row.get('value'))}"
        if not is_missing(row.get("threshold")):
            technical += f" (threshold {_number(row.get('threshold'))})"
    return AlertView(
        alert_id=str(row.get("alert_id")),
        severity=str(row.get("severity")),
        status=str(row.get("status") or "open"),
        since=_as_date(row.get("since")),
        last_seen=_as_date(row.get("last_seen")),
        words=_cap(plain_problem(row, task)),
        technical=technical,
        message=_text_or_none(row.get("message")) or "",
        evidence=evidence_words(_text_or_none(row.get("evidence"))),
    )


def plain_topic(check_name: str, metric: str | None = None) -> str:
    """What a check is about in words a non-specialist knows, e.g. 'Input data has changed'."""
    words = f"{check_name} {metric or ''}".lower()
    for keys, topic in TOPICS:
        if any(k in words for k in keys):
            return topic
    return check_name.replace("_", " ").capitalize()


def _split_metric(metric: str) -> tuple[str, str | None]:
    """`recall:billing` -> ("recall", "billing"); `auc` -> ("auc", None)."""
    base, _, cls = metric.partition(":")
    return base, (cls or None)


def higher_is_better(metric: str) -> bool | None:
    """Which way the metric is better (None: a change either way, or not known)."""
    return HIGHER_IS_BETTER.get(_split_metric(metric)[0])


def metric_title(metric: str) -> str:
    """A chart panel's title: 'mean absolute error (label's unit; lower is better)', 'recall of billing'."""
    base, cls = _split_metric(metric)
    if cls is not None and base in CLASS_METRIC_NAMES:
        return CLASS_METRIC_NAMES[base].format(cls)
    return METRIC_NAMES.get(metric, metric)


def metric_words(metric: str) -> str:
    """A metric inside a sentence: 'mean absolute error', 'recall on class billing'."""
    base, cls = _split_metric(metric)
    if cls is not None and base in CLASS_METRIC_WORDS:
        return CLASS_METRIC_WORDS[base].format(cls)
    return METRIC_WORDS.get(metric, metric.replace("_", " "))


def plain_problem(row: dict[str, Any], task: str = "binary_classification") -> str:
    """One alert in words, lower-case first ('the income input's distribution changed'): the subject named
    as people know it, no statistic names (they go to the details). `task` names the model's own outputs
    (`__score__` is a predicted value for regression) and which way its quality metrics are better."""
    check = str(row.get("check_name") or "")
    metric = (_text_or_none(row.get("metric")) or "").lower()
    subject = _text_or_none(row.get("subject")) or ""
    special = TASK_SPECIAL_INPUTS.get(task, SPECIAL_INPUTS)
    thing = special.get(subject, f"the {subject} input" if subject and subject != "model" else "an input")
    words = f"{check} {metric}"
    if check in ("snapshot_usable",) or "valid" in check:
        return "the day's prediction log could not be used as delivered"
    if "null" in metric:
        plural = subject in special and thing.endswith("s")
        return f"{thing} {'are' if plural else 'is'} missing more often than usual".replace(
            "the model's scores are", "the scores are"
        )
    if "unseen" in metric:
        return f"{thing} has values never seen in the reference period"
    if "out_of_range" in metric or "range" in check:
        return f"{thing} has values outside the reference range"
    topic = plain_topic(check, metric)
    if topic == "The observed outcomes have changed":
        name = metric or subject
        return f"the {metric_words(name)} (observed outcomes) moved out of its usual range"
    if topic == "Input data has changed":
        if subject in special:
            return f"{special[subject]} shifted away from the reference period"
        return f"{thing}'s distribution changed"
    if topic == "A group of people is treated differently":
        group = subject.replace("=", " = ", 1) if subject else "a group"
        if "differential" in check:
            return f"prediction quality fell faster for {group} than for everyone else"
        return f"the group {group} is treated differently from the others"
    if topic == "Slow or failing responses":
        return "requests are failing more often" if "error" in words else "responses are slower than agreed"
    if topic == "Business outcome changed":
        name = (metric or subject).removeprefix("outcome:")
        return f"the business outcome '{name}' left its usual range"
    if topic == "Prediction quality dropped":
        if not metric:
            return "prediction quality fell below its usual range"
        higher = higher_is_better(metric)
        if higher is None:  # bias: either way is a change
            return f"the {metric_words(metric)} moved out of its usual range"
        if higher is False and task != "binary_classification":  # an error grew
            return f"the {metric_words(metric)} rose above its usual range (worse predictions)"
        return f"prediction quality ({metric_words(metric)}) fell below its usual range"
    if topic == "Shadow model comparison":
        return f"shadow model {subject}: see its comparison with the live model" if subject else topic.lower()
    if topic == "Data quality problem":
        return f"a data quality problem with {thing.removeprefix('the ')}"
    return topic[:1].lower() + topic[1:]


# ---------------------------------------------------------------------------------------------- queries


def _query(warehouse: Warehouse, sql: str, params: Sequence[Any], columns: Iterable[str]) -> pd.DataFrame:
    """Run a read; an empty result (or a warehouse with no schema yet) comes back with its columns."""
    frame = warehouse.query(sql, list(params))
    if frame.empty:
        return pd.DataFrame(columns=list(columns))
    return frame


def _t(table: str) -> str:
    return qualified(table)


def _in_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 WHEN 'info' THEN 2 ELSE 3 END"


def _status_by_model(warehouse: Warehouse, names: list[str]) -> dict[str, dict[str, Any]]:
    """Last day with data, last run and unresolved alert counts per model: one query for all models."""
    sql = f"""
        WITH days AS (
            SELECT model_name, max(partition_date) AS d FROM {_t("prediction_snapshots")} GROUP BY model_name
            UNION ALL SELECT model_name, max(partition_date) FROM {_t("serving_metrics")} GROUP BY model_name
            UNION ALL SELECT model_name, max(partition_date) FROM {_t("drift_scores")} GROUP BY model_name
            UNION ALL SELECT model_name, max(partition_date) FROM {_t("performance_metrics")} GROUP BY model_name
        ),
        last_data AS (SELECT model_name, max(d) AS last_data FROM days GROUP BY model_name),
        runs AS (
            SELECT model_name,
                   strftime(timezone('UTC', max(evaluated_at)), '%Y-%m-%d %H:%M UTC') AS last_run_at,
                   arg_max(run_id, evaluated_at) AS last_run_id
            FROM {_t("check_results")} GROUP BY model_name
        ),
        open_alerts AS (
            SELECT model_name,
                   count(*) FILTER (WHERE severity = 'critical') AS critical,
                   count(*) FILTER (WHERE severity = 'warning') AS warning,
                   count(*) FILTER (WHERE severity = 'info') AS info
            FROM {_t("alerts")} WHERE status <> 'resolved' GROUP BY model_name
        )
        SELECT m.model_name, CAST(l.last_data AS VARCHAR) AS last_data, r.last_run_at, r.last_run_id,
               coalesce(a.critical, 0) AS critical, coalesce(a.warning, 0) AS warning,
               coalesce(a.info, 0) AS info
        FROM (SELECT unnest(?::VARCHAR[]) AS model_name) AS m
        LEFT JOIN last_data AS l USING (model_name)
        LEFT JOIN runs AS r USING (model_name)
        LEFT JOIN open_alerts AS a USING (model_name)
        ORDER BY m.model_name
    """
    frame = _query(warehouse, sql, [names], ["model_name"])
    return {row["model_name"]: row for row in frame.to_dict("records")}


ALERT_COLUMNS = [
    "alert_id", "model_name", "day", "since", "last_seen", "check_name", "metric", "subject", "severity",
    "value", "threshold", "message", "status", "evidence", "consecutive_days", "incident_id", "root_cause",
]  # fmt: skip


def _active_alerts(warehouse: Warehouse, names: list[str]) -> pd.DataFrame:
    """Unresolved (open or acknowledged) alerts, worst and oldest first."""
    sql = f"""
        SELECT alert_id, model_name, CAST(partition_date AS VARCHAR) AS day,
               CAST(coalesce(first_seen_date, partition_date) AS VARCHAR) AS since,
               CAST(coalesce(last_seen_date, partition_date) AS VARCHAR) AS last_seen,
               check_name, metric, subject, severity, value, threshold, message, status,
               CAST(evidence AS VARCHAR) AS evidence, consecutive_days, incident_id, root_cause
        FROM {_t("alerts")}
        WHERE status <> 'resolved' AND list_contains(?::VARCHAR[], model_name)
        ORDER BY model_name, {SEVERITY_ORDER}, since, check_name, subject, alert_id
    """
    return _query(warehouse, sql, [names], ALERT_COLUMNS)


def _item_refs(warehouse: Warehouse, names: list[str]) -> pd.DataFrame:
    """Backlog items not closed, with the alerts they track (to name an incident's item)."""
    closed = _in_list(CLOSED_BACKLOG)
    sql = f"""
        SELECT model_name, item_id, status, title, alert_ids
        FROM {_t("backlog_items")}
        WHERE list_contains(?::VARCHAR[], model_name) AND lower(status) NOT IN ({closed})
        ORDER BY model_name, created_at, item_id
    """
    return _query(warehouse, sql, [names], ["model_name", "item_id", "status", "title", "alert_ids"])


BAND_COLUMNS = ["metric", "band_low", "band_high", "band_k"]


def _bands(warehouse: Warehouse, model: ModelConfig) -> pd.DataFrame:
    """The reference period's usual range of each measured metric and outcome, from the model's newest
    reference version: mean ± k·σ as the check that judges it draws it (core.baselines.band_limits, the
    prediction interval for the window's day count)."""
    k_perf, k_out = model.thresholds.performance.band_k, model.thresholds.outcomes.band_k
    sql = f"""
        WITH newest AS (
            SELECT profile_version FROM {_t("reference_profiles")} WHERE model_name = ?
            GROUP BY profile_version ORDER BY max(created_at) DESC NULLS LAST, profile_version LIMIT 1
        )
        SELECT metric, domain, mean, std, n_days
        FROM {_t("reference_baselines")}
        WHERE model_name = ? AND domain IN ('performance', 'outcome') AND NOT coalesce(estimated, false)
          AND std IS NOT NULL AND isfinite(std)
          AND (profile_version IN (SELECT profile_version FROM newest)
               OR NOT EXISTS (SELECT 1 FROM newest))
        QUALIFY row_number() OVER (PARTITION BY metric ORDER BY profile_version) = 1
        ORDER BY metric
    """
    raw = _query(warehouse, sql, [model.name, model.name], ["metric", "domain", "mean", "std", "n_days"])
    rows = list(raw.itertuples(index=False))
    ks = [k_out if r.domain == "outcome" else k_perf for r in rows]
    limits = [band_limits(r.mean, r.std, k, r.n_days) for r, k in zip(rows, ks, strict=True)]
    return pd.DataFrame(
        {
            "metric": raw["metric"].tolist(),
            "band_low": [low for low, _ in limits],
            "band_high": [high for _, high in limits],
            # the checks' k: a day's 95 % interval is widened to ± k standard errors before it may clear the middle
            "band_k": ks,
        },
        columns=BAND_COLUMNS,
    )


def _model_frames(warehouse: Warehouse, model: ModelConfig, start: dt.date) -> dict[str, pd.DataFrame]:
    """Everything a model page draws, each frame already shaped for its chart or table."""
    day = "CAST(partition_date AS VARCHAR) AS day"
    window = "model_name = ? AND partition_date >= ?"
    p = [model.name, start]
    frames: dict[str, pd.DataFrame] = {}
    labels = SPECIAL_INPUT_LABELS.get(model.task, SPECIAL_INPUT_LABELS["binary_classification"])
    feature_label = (
        "CASE feature "
        + " ".join(f"WHEN {_in_list([k])} THEN {_in_list([v])}" for k, v in labels.items())
        + " ELSE feature END AS feature_label"
    )
    frames["drift"] = _query(
        warehouse,
        f"""
        SELECT {day}, statistic, {feature_label},
               value, threshold, coalesce(drifted, false) AS drifted, p_value, n_current
        FROM {_t("drift_scores")} WHERE {window} AND statistic NOT IN ({_in_list(DRIFT_NOT_DRAWN)})
        ORDER BY statistic, feature, partition_date
        """,
        p,
        ["day", "statistic", "feature_label", "value", "threshold", "drifted", "p_value", "n_current"],
    )
    drawn = _in_list(list(DRIFT_CHARTS))
    frames["drift_overview"] = _query(
        warehouse,
        f"""
        SELECT {day}, {feature_label},
               max(value / threshold) FILTER (WHERE statistic IN ({drawn}) AND threshold > 0) AS worst_ratio,
               first(statistic ORDER BY value / threshold DESC NULLS LAST)
                   FILTER (WHERE statistic IN ({drawn}) AND threshold > 0) AS worst_statistic,
               coalesce(bool_or(drifted), false) AS drifted,
               string_agg(DISTINCT statistic, ', ' ORDER BY statistic) FILTER (WHERE drifted) AS drifted_by
        FROM {_t("drift_scores")} WHERE {window}
        GROUP BY partition_date, feature
        ORDER BY feature, partition_date
        """,
        p,
        ["day", "feature_label", "worst_ratio", "worst_statistic", "drifted", "drifted_by"],
    )
    bands = _bands(warehouse, model)
    perf_columns = ["day", "metric", "kind", "value", "ci_low", "ci_high", "n", "labelled_fraction", "trusted",
                    "note"]  # fmt: skip
    # Measured rows; estimated rows only while a day is mostly unlabelled (ESTIMATE_UNTIL_LABELLED), the
    # untrusted ones kept with their note so the chart can mark them instead of drawing them as values.
    perf = _query(
        warehouse,
        f"""
        WITH rows AS (
            SELECT partition_date, metric, estimated, value, ci_low, ci_high, n, labelled_fraction, trusted,
                   estimate_note,
                   max(CASE WHEN NOT estimated THEN labelled_fraction END)
                       OVER (PARTITION BY partition_date, metric) AS measured_fraction
            FROM {_t("performance_metrics")} WHERE {window} AND metric NOT LIKE 'outcome:%'
        )
        SELECT {day}, metric,
               CASE WHEN estimated THEN '{ESTIMATED}' ELSE '{MEASURED}' END AS kind,
               value, ci_low, ci_high, n, labelled_fraction,
               CASE WHEN estimated THEN coalesce(trusted, true) ELSE true END AS trusted,
               CASE WHEN estimated AND trusted IS FALSE THEN estimate_note END AS note
        FROM rows
        WHERE NOT estimated OR coalesce(measured_fraction, 0) < ?
        ORDER BY metric, kind, partition_date
        """,
        [*p, ESTIMATE_UNTIL_LABELLED],
        perf_columns,
    )
    frames["performance"] = _with_band(perf, bands, measured_only=True)
    outcomes = _query(
        warehouse,
        f"""
        SELECT {day}, metric, CASE WHEN estimated THEN 'estimated' ELSE 'measured' END AS kind,
               value, ci_low, ci_high, n, labelled_fraction
        FROM {_t("performance_metrics")} WHERE {window} AND metric LIKE 'outcome:%'
        ORDER BY metric, kind, partition_date
        """,
        p,
        ["day", "metric", "kind", "value", "ci_low", "ci_high", "n", "labelled_fraction"],
    )
    outcomes = _with_band(outcomes, bands, measured_only=False)
    frames["outcomes"] = outcomes.assign(metric=outcomes["metric"].astype(str).str.removeprefix("outcome:"))
    frames["subgroups"] = _query(
        warehouse,
        f"""
        SELECT {day}, segment, segment_value, metric, value, ci_low, ci_high, n, gap
        FROM {_t("subgroup_metrics")}
        WHERE {window} AND segment <> '{ALL}' AND segment_value <> '{ALL}'
        ORDER BY segment, metric, segment_value, partition_date
        """,
        p,
        ["day", "segment", "segment_value", "metric", "value", "ci_low", "ci_high", "n", "gap"],
    )
    frames["gaps"] = _query(
        warehouse,
        f"""
        SELECT {day}, segment, metric, max(abs(gap)) AS largest_gap,
               first(segment_value ORDER BY abs(gap) DESC, segment_value) AS worst_value
        FROM {_t("subgroup_metrics")}
        WHERE {window} AND segment <> '{ALL}' AND segment_value <> '{ALL}' AND gap IS NOT NULL
        GROUP BY partition_date, segment, metric
        ORDER BY segment, metric, partition_date
        """,
        p,
        ["day", "segment", "metric", "largest_gap", "worst_value"],
    )
    t = model.thresholds.subgroups
    labels = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FAIRNESS_SUMMARIES.items())
    worst_labels = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in WORST_GROUP_SUMMARIES.items())
    frames["fairness"] = _query(
        warehouse,
        f"""
        SELECT {day}, segment, CASE metric {labels} END AS metric, value, ci_low, ci_high, n,
               CASE metric WHEN 'demographic_parity_difference' THEN ?
                           WHEN 'equalized_odds_difference' THEN ?
                           WHEN 'demographic_parity_ratio' THEN ? END AS threshold
        FROM {_t("subgroup_metrics")}
        WHERE {window} AND segment_value = '{ALL}' AND metric IN ({_in_list(list(FAIRNESS_SUMMARIES))})
        UNION ALL
        -- regression / multiclass: a group against the rest of its segment, the worst group per segment-day
        SELECT {day}, segment, CASE metric {worst_labels} END AS metric,
               max(value) AS value, arg_max(ci_low, value) AS ci_low, arg_max(ci_high, value) AS ci_high,
               arg_max(n, value) AS n,
               CASE metric WHEN 'mae_ratio' THEN ? WHEN 'accuracy_shortfall' THEN ? END AS threshold
        FROM {_t("subgroup_metrics")}
        WHERE {window} AND segment <> '{ALL}' AND segment_value <> '{ALL}'
          AND metric IN ({_in_list(list(WORST_GROUP_SUMMARIES))})
        GROUP BY partition_date, segment, metric
        ORDER BY metric, segment, day
        """,
        [t.parity_gap, t.equalized_odds_gap, t.disparity_low, *p, t.disparity_high, t.parity_gap, *p],
        ["day", "segment", "metric", "value", "ci_low", "ci_high", "n", "threshold"],
    )
    frames["shadow"] = _query(
        warehouse,
        f"""
        SELECT {day}, metric, 'shadow ' || shadow_version || ' minus champion ' || champion_version AS pair,
               delta, ci_low, ci_high, champion_value, shadow_value, p_value, n
        FROM {_t("shadow_comparisons")}
        WHERE {window} AND segment = '{ALL}' AND delta IS NOT NULL
          AND (metric IN ({_in_list(SHADOW_METRICS)}) OR metric LIKE 'recall:%')
        ORDER BY metric, pair, partition_date
        """,
        p,
        [
            "day",
            "metric",
            "pair",
            "delta",
            "ci_low",
            "ci_high",
            "champion_value",
            "shadow_value",
            "p_value",
            "n",
        ],
    )
    frames["recommendations"] = _query(
        warehouse,
        f"""
        SELECT {day}, champion_version, shadow_version, verdict, primary_metric, delta, ci_low, ci_high,
               p_value, days_pooled, days_needed, CAST(harmed_segments AS VARCHAR) AS harmed_segments,
               CAST(slo_breaches AS VARCHAR) AS slo_breaches, CAST(reasons AS VARCHAR) AS reasons
        FROM {_t("shadow_recommendations")} WHERE {window}
        QUALIFY row_number() OVER (PARTITION BY champion_version, shadow_version ORDER BY partition_date DESC) = 1
        ORDER BY shadow_version, champion_version
        """,
        p,
        ["day", "champion_version", "shadow_version", "verdict", "primary_metric", "delta", "ci_low", "ci_high",
         "p_value", "days_pooled", "days_needed", "harmed_segments", "slo_breaches", "reasons"],
    )  # fmt: skip
    frames["serving"] = _query(
        warehouse,
        f"""
        SELECT {day}, role,
               max(latency_p50_ms) AS p50, max(latency_p95_ms) AS p95, max(latency_p99_ms) AS p99,
               sum(requests) AS requests,
               coalesce(sum(errors), round(sum(error_rate * requests))) AS errors,
               coalesce(sum(errors), sum(error_rate * requests)) / nullif(sum(requests), 0) AS error_rate
        FROM {_t("serving_metrics")} WHERE {window} AND role <> '{ALL}'
        GROUP BY partition_date, role
        ORDER BY role, partition_date
        """,
        p,
        ["day", "role", "p50", "p95", "p99", "requests", "errors", "error_rate"],
    )
    frames["confusion"] = (
        _confusion_frame(warehouse, model, start)
        if model.is_multiclass
        else pd.DataFrame(columns=CONFUSION_COLUMNS)
    )
    closed = _in_list(CLOSED_BACKLOG)
    # "Since" is the incident's first failing day: the earliest first_seen_date of the item's alerts,
    # else its first failing partition (`YYYY-MM-DD|model`); "recorded" is the day the item was written.
    frames["backlog"] = _query(
        warehouse,
        f"""
        WITH firsts AS (
            SELECT b.item_id, min(a.first_seen_date) AS first_seen
            FROM {_t("backlog_items")} AS b, unnest(b.alert_ids) AS u(alert_id)
            JOIN {_t("alerts")} AS a ON a.alert_id = u.alert_id
            WHERE b.model_name = ? GROUP BY b.item_id
        )
        SELECT b.item_id, title, severity, status,
               CAST(coalesce(f.first_seen, TRY_CAST(substr(list_min(partitions), 1, 10) AS DATE)) AS VARCHAR)
                   AS since,
               strftime(timezone('UTC', created_at), '%Y-%m-%d') AS recorded,
               strftime(timezone('UTC', resolved_at), '%Y-%m-%d') AS resolved,
               coalesce(len(alert_ids), 0) AS alerts,
               substr(list_min(partitions), 1, 10) AS first_day, substr(list_max(partitions), 1, 10) AS last_day,
               external_ref, count(*) OVER (PARTITION BY status) AS status_count
        FROM {_t("backlog_items")} AS b LEFT JOIN firsts AS f USING (item_id)
        WHERE b.model_name = ?
        QUALIFY lower(status) NOT IN ({closed})
             OR row_number() OVER (PARTITION BY lower(status) IN ({closed})
                                   ORDER BY coalesce(resolved_at, updated_at, created_at) DESC, b.item_id)
                <= {RECENT_CLOSED_BACKLOG}
        ORDER BY lower(status) IN ({closed}), {SEVERITY_ORDER}, since DESC NULLS LAST, b.item_id
        """,
        [model.name, model.name],
        ["item_id", "title", "severity", "status", "since", "recorded", "resolved", "alerts", "first_day",
         "last_day", "external_ref", "status_count"],
    )  # fmt: skip
    return frames


CONFUSION_COLUMNS = ["day", "observed_class", "predicted_class", "n", "row_share", "labelled_fraction"]
# The confusion matrix drawn is the latest day at least this labelled (a day still filling up has counts
# of the early labels only); the latest day with a matrix when none is.
CONFUSION_LABELLED = 0.9


def _confusion_frame(warehouse: Warehouse, model: ModelConfig, start: dt.date) -> pd.DataFrame:
    """The multiclass model's confusion matrix (table confusion_matrix) of its latest labelled day, each
    cell with its share of the observed class's rows (the diagonal is that class's recall)."""
    sql = f"""
        WITH days AS (
            SELECT partition_date FROM {_t("confusion_matrix")}
            WHERE model_name = ? AND partition_date >= ? GROUP BY partition_date HAVING sum(n) > 0
        ),
        labelled AS (
            SELECT partition_date, max(labelled_fraction) AS labelled_fraction
            FROM {_t("performance_metrics")}
            WHERE model_name = ? AND partition_date >= ? AND metric = 'accuracy' AND NOT estimated
            GROUP BY partition_date
        ),
        chosen AS (
            SELECT d.partition_date, l.labelled_fraction FROM days AS d LEFT JOIN labelled AS l USING (partition_date)
            ORDER BY coalesce(l.labelled_fraction, 1.0) >= ? DESC, d.partition_date DESC LIMIT 1
        )
        SELECT CAST(c.partition_date AS VARCHAR) AS day, observed_class, predicted_class, n,
               n / nullif(sum(n) OVER (PARTITION BY observed_class), 0) AS row_share,
               chosen.labelled_fraction
        FROM {_t("confusion_matrix")} AS c JOIN chosen USING (partition_date)
        WHERE c.model_name = ?
        ORDER BY observed_class, predicted_class
    """
    params = [model.name, start, model.name, start, CONFUSION_LABELLED, model.name]
    return _query(warehouse, sql, params, CONFUSION_COLUMNS)


# ---------------------------------------------------------------------------------------------- views


def _with_band(frame: pd.DataFrame, bands: pd.DataFrame, measured_only: bool) -> pd.DataFrame:
    """The metric's usual range as `band_low`/`band_high` on its rows (on measured rows only when asked)."""
    out = (
        frame.merge(bands, on="metric", how="left")
        if not frame.empty
        else frame.assign(**{c: [] for c in BAND_COLUMNS[1:]})
    )
    if measured_only and not out.empty:
        estimated = out["kind"] != MEASURED
        out.loc[estimated, BAND_COLUMNS[1:]] = None
    return out


def _model_view(
    model: ModelConfig,
    health: ModelHealth,
    f: dict[str, pd.DataFrame],
    page: _Page,
    today: dt.date,
    history_days: int,
) -> dict[str, Any]:
    """Everything model.html shows, as plain values and chart references."""
    last = health.last_data
    quality, outcome = _latest_quality(f["performance"], model.task), _latest_outcome(f["outcomes"])
    perf = f["performance"]
    present = set(perf["metric"])
    headline_metrics = [m for m in _quality_metrics(model.task) if m in present]
    # multiclass: per-class recall has its own panel group; the rest (precision, label shares) goes below
    recall_metrics = sorted(m for m in present if model.is_multiclass and m.startswith("recall:"))
    other_metrics = sorted(present - set(headline_metrics) - set(recall_metrics))
    untrusted = perf[perf["trusted"].astype("boolean").eq(False).fillna(False)] if not perf.empty else perf
    return {
        "model": model,
        "health": health,
        "window": f"Charts show the {history_days} days up to {_long_date(last)}." if last else "",
        "quality": quality,
        "outcome": outcome,
        "performance": {
            "chart": page.chart(
                _performance_chart(perf[perf["metric"].isin(headline_metrics)], columns=2, task=model.task)
            ),
            "more": page.chart(
                _performance_chart(perf[perf["metric"].isin(other_metrics)], columns=3, task=model.task)
            ),
            "more_names": [metric_title(m) for m in other_metrics],
            "untrusted_days": sorted({str(d)[:10] for d in untrusted["day"]}),
            "untrusted_note": _text_or_none(untrusted["note"].iloc[-1]) if len(untrusted) else None,
            "untrusted_inputs": ESTIMATE_INPUTS.get(model.task, "scores"),
            "label_delay_days": model.label_delay_days,
            "band_k": model.thresholds.performance.band_k,
            "task": model.task,
        },
        "classes": _classes_view(model, perf[perf["metric"].isin(recall_metrics)], f["confusion"], page),
        "outcomes": _outcome_view(model, f["outcomes"], page),
        "drift": _drift_view(f["drift"], f["drift_overview"], page),
        "subgroups": _subgroup_view(f["subgroups"], f["gaps"], f["fairness"], page),
        "shadow": _shadow_view(f["shadow"], f["recommendations"], page),
        "serving": _serving_view(model, f["serving"], page),
        "backlog": _backlog_view(f["backlog"]),
    }


def _quality_metrics(task: str) -> tuple[str, ...]:
    return TASK_QUALITY_METRICS.get(task, QUALITY_METRICS)


def _classes_view(
    model: ModelConfig, recall: pd.DataFrame, confusion: pd.DataFrame, page: _Page
) -> dict[str, Any] | None:
    """Multiclass only: per-class recall over time and the latest labelled day's confusion matrix, as a
    heat map and as a table (the table reads without JavaScript)."""
    if not model.is_multiclass:
        return None
    classes = list(model.classes)
    matrix: dict[str, Any] | None = None
    if not confusion.empty:
        seen = set(confusion["observed_class"]) | set(confusion["predicted_class"])
        order = classes + sorted(str(c) for c in seen - set(classes))
        counts = confusion.pivot_table(
            index="observed_class", columns="predicted_class", values="n", aggfunc="sum", fill_value=0
        ).reindex(index=order, columns=order, fill_value=0)
        shares = counts.div(counts.sum(axis=1).where(lambda t: t > 0), axis=0)
        total = int(counts.to_numpy().sum())
        correct = int(sum(counts.at[c, c] for c in order))
        labelled = confusion["labelled_fraction"].iloc[0]
        matrix = {
            "day": _as_date(confusion["day"].iloc[0]),
            "classes": order,
            "rows": [
                {
                    "observed": c,
                    "total": _number(int(counts.loc[c].sum())),
                    "cells": [
                        {
                            "n": _number(int(counts.at[c, d])),
                            "share": _percent(shares.at[c, d]),
                            "diagonal": c == d,
                            "shade": _shade(shares.at[c, d]),
                        }
                        for d in order
                    ],
                }
                for c in order
            ],
            "total": _number(total),
            "accuracy": _percent(correct / total) if total else "–",
            "labelled": None if is_missing(labelled) else _percent(labelled),
            "chart": page.chart(charts.confusion_chart(confusion, order)),
        }
    recall_chart = None
    if not recall.empty:
        frame = recall.assign(metric=recall["metric"].astype(str).str.partition(":")[2])
        recall_chart = page.chart(
            charts.metric_band_chart(
                frame, "metric", order=(MEASURED, ESTIMATED), columns=4, width=220, height=110,
                facet_order=[c for c in classes if c in set(frame["metric"])], y_title="recall",
            )
        )  # fmt: skip
    return {"classes": classes, "matrix": matrix, "recall": recall_chart}


def _shade(share: Any) -> str:
    """A table cell's background class from its share of the observed class (0-4, 4 darkest)."""
    if is_missing(share):
        return "0"
    return str(min(int(float(share) * 5), 4))


def _performance_chart(
    frame: pd.DataFrame, columns: int, task: str = "binary_classification"
) -> charts.Figure | None:
    if frame.empty:
        return None
    present = list(dict.fromkeys(frame["metric"]))
    headline = [q for q in _quality_metrics(task) if q in present]
    order = [metric_title(m) for m in [*headline, *sorted(present)]]
    frame = frame.assign(metric=frame["metric"].map(metric_title))
    return charts.metric_band_chart(
        frame, "metric", order=(MEASURED, ESTIMATED), columns=columns, width=500 if columns == 2 else 320,
        height=150 if columns == 2 else 110, facet_order=list(dict.fromkeys(order)),
    )  # fmt: skip


def _latest(rows: pd.DataFrame) -> Any:
    """The latest row of a metric, preferring days at least 90% labelled (a day still filling up has a
    wide interval and would read as a change)."""
    complete = rows[rows["labelled_fraction"].fillna(1.0) >= 0.9]
    return (complete if not complete.empty else rows).iloc[-1]


def _latest_quality(perf: pd.DataFrame, task: str = "binary_classification") -> dict[str, Any] | None:
    """The headline quality metric's latest measured value against its usual range, in words (multiclass:
    with macro F1 beside accuracy, as `also`)."""
    measured = perf[perf["kind"] == MEASURED] if not perf.empty else perf

    def judge(metric: str) -> dict[str, Any] | None:
        rows = measured[measured["metric"] == metric].dropna(subset=["value"])
        if rows.empty:
            return None
        judged = _judged(metric_title(metric), _latest(rows), higher_is_better(metric), percent=False)
        return {**judged, "metric": metric}

    for metric in _quality_metrics(task):
        headline = judge(metric)
        if headline is None:
            continue
        second = SECOND_QUALITY_METRIC.get(task)
        extra = judge(second) if second and second != metric else None
        if extra is not None:
            headline["also"] = f"{extra['name']}: {extra['value']}, {extra['verdict']}" + (
                f" ({extra['range']})" if extra["range"] else ""
            )
            headline["also_state"] = extra["state"]
        return headline
    return None


def _latest_outcome(outcomes: pd.DataFrame) -> dict[str, Any] | None:
    measured = (
        outcomes[outcomes["kind"] == "measured"].dropna(subset=["value"]) if not outcomes.empty else outcomes
    )
    if measured.empty:
        return None
    metric = sorted(set(measured["metric"]))[0]
    rows = measured[measured["metric"] == metric]
    rate = _is_rate(rows)
    judged = _judged(f"{metric} rate" if rate else metric, _latest(rows), None, percent=rate)
    return {**judged, "metric": metric}


def _judged(name: str, row: Any, higher_is_better: bool | None, percent: bool) -> dict[str, Any]:
    """'AUC 0.771 on 14 Aug 2026: within its usual range (0.75 to 0.79)' as parts for the templates.

    Outside the range only as the checks judge it (core.performance.compare_to_band): beyond the band and
    with the day's interval, widened from 95 % to ± `band_k` standard errors, excluding the band's middle,
    so one small day does not read as a change.
    """
    value, low, high = row["value"], row.get("band_low"), row.get("band_high")
    ci_low, ci_high = row.get("ci_low"), row.get("ci_high")
    show = _percent if percent else (lambda v: _number(v))
    if is_missing(low) or is_missing(high):
        verdict, state = "no usual range known yet", "unknown"
    else:
        middle = (low + high) / 2
        k = row.get("band_k")
        stretch = 1.0 if is_missing(k) else float(k) / z_value(0.95)
        interval_reaches = (
            not is_missing(ci_low)
            and not is_missing(ci_high)
            and value - (value - ci_low) * stretch <= middle <= value + (ci_high - value) * stretch
        )
        if low <= value <= high:
            verdict, state = "within its usual range", "ok"
        elif interval_reaches:
            verdict, state = "not clearly outside its usual range", "ok"
        else:
            above = value > high
            worse = higher_is_better is not None and (above != higher_is_better)
            verdict = ("above" if above else "below") + " its usual range"
            state = "bad" if worse else "watch"
    return {
        "name": name,
        "value": show(value),
        "day": _as_date(row["day"]),
        "verdict": verdict,
        "state": state,
        "range": None if state == "unknown" else f"{show(low)} to {show(high)}",
    }


def _is_rate(frame: pd.DataFrame) -> bool:
    values = frame["value"].dropna()
    return bool(len(values)) and bool(((values >= 0) & (values <= 1)).all())


def _outcome_view(model: ModelConfig, frame: pd.DataFrame, page: _Page) -> dict[str, Any]:
    names = list(model.outcomes)
    rate = _is_rate(frame) if not frame.empty else False
    unit = "share of requests with the outcome (%)" if rate else "mean value per request"
    chart = None
    if not frame.empty:
        chart = page.chart(
            charts.metric_band_chart(
                frame, "metric" if frame["metric"].nunique() > 1 else None, order=("measured",),
                columns=1, width=OUTCOME_WIDTH, height=200, percent=rate, y_title=unit,
            )
        )  # fmt: skip
    return {"names": names, "chart": chart, "unit": unit, "band_k": model.thresholds.outcomes.band_k}


def _drift_view(frame: pd.DataFrame, overview: pd.DataFrame, page: _Page) -> dict[str, Any]:
    view: dict[str, Any] = {
        "empty": frame.empty and overview.empty,
        "summary": "",
        "overview": None,
        "details": [],
    }
    if view["empty"]:
        return view
    last_day = overview["day"].max()
    drifted = sorted(
        overview.loc[
            (overview["day"] == last_day) & overview["drifted"].astype(bool), "feature_label"
        ].unique()
    )
    view["summary"] = (
        f"On {_long_date(_as_date(last_day))}, {_plural(len(drifted), 'input')} had changed: {', '.join(drifted)}."
        if drifted
        else f"On {_long_date(_as_date(last_day))}, no input had changed."
    )
    view["overview"] = page.chart(charts.drift_overview_chart(overview))
    # PSI always (it covers numeric and categorical inputs alike); the other statistics only when they
    # flagged something in the window, so a quiet month stays a short page.
    flagged = set(frame.loc[frame["drifted"].astype(bool), "statistic"])
    present = set(frame["statistic"])
    ordered = [s for s in DRIFT_CHARTS if s in present] + sorted(present - set(DRIFT_CHARTS))
    for i, statistic in enumerate(ordered):
        if i == 0 or statistic in flagged:
            rows = frame[frame["statistic"] == statistic]
            view["details"].append(
                {
                    "title": DRIFT_CHARTS.get(statistic, statistic),
                    "chart": page.chart(charts.drift_chart(rows, statistic)),
                }
            )
    return view


def _subgroup_view(
    frame: pd.DataFrame, gaps: pd.DataFrame, fairness: pd.DataFrame, page: _Page
) -> dict[str, Any]:
    return {
        "empty": frame.empty and fairness.empty,
        "fairness": page.chart(charts.fairness_chart(fairness)),
        "gaps": page.chart(charts.gap_chart(gaps)),
        "segments": [
            {"segment": str(segment), "chart": page.chart(charts.subgroup_chart(rows, str(segment)))}
            for segment, rows in frame.groupby("segment", sort=True)
        ],
    }


def _shadow_view(frame: pd.DataFrame, recommendations: pd.DataFrame, page: _Page) -> dict[str, Any]:
    recs = [
        {
            "pair": f"{r['shadow_version']} vs {r['champion_version']}",
            "verdict": VERDICTS.get(str(r["verdict"]), str(r["verdict"])),
            "metric": _text_or_none(r["primary_metric"]) or "–",
            "delta": _number(r["delta"], sign=True),
            "ci": f"{_number(r['ci_low'])} to {_number(r['ci_high'])}",
            "p_value": _number(r["p_value"]),
            "days_pooled": _number(r["days_pooled"]),
            "days_needed": _number(r["days_needed"]),
            "harm": _harm_text(r["harmed_segments"], r["slo_breaches"]),
            "reasons": _list_text(r["reasons"]),
            "day": str(r["day"]),
        }
        for r in recommendations.to_dict("records")
    ]
    return {"recommendations": recs, "chart": page.chart(charts.shadow_chart(frame))}


def _serving_view(model: ModelConfig, frame: pd.DataFrame, page: _Page) -> dict[str, Any]:
    t = model.thresholds.serving
    return {
        "t": t,
        "empty": frame.empty,
        "has_shadow": bool((frame["role"] == "shadow").any()) if not frame.empty else False,
        "latency": page.chart(
            charts.latency_chart(frame, t.p99_latency_warning_ms, t.p99_latency_critical_ms)
        ),
        "errors": page.chart(charts.error_rate_chart(frame, t.error_rate_warning, t.error_rate_critical)),
        "requests": page.chart(charts.requests_chart(frame)),
    }


def _backlog_view(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"rows": [], "summary": ""}
    counts = frame[["status", "status_count"]].drop_duplicates().sort_values("status")
    summary = ", ".join(
        f"{int(c)} {s}" for s, c in zip(counts["status"], counts["status_count"], strict=True)
    )
    items = [
        {
            "item_id": str(r["item_id"]),
            "title": str(r["title"]),
            "severity": str(r["severity"]),
            "status": str(r["status"]).replace("_", " "),
            "since": _as_date(r["since"]),
            "recorded": _text_or_none(r["recorded"]) or "–",
            "resolved": _text_or_none(r["resolved"]) or "–",
            "days": _day_range(r["first_day"], r["last_day"]),
            "alerts": _number(r["alerts"]),
            "tracker": _text_or_none(r["external_ref"]) or "–",
            "closed": str(r["status"]).lower() in CLOSED_BACKLOG,
        }
        for r in frame.to_dict("records")
    ]
    return {"rows": items, "summary": summary}


def _index_card(
    model: ModelConfig, health: ModelHealth, view: dict[str, Any], f: dict[str, pd.DataFrame], page: _Page
) -> dict[str, Any]:
    """One model on the index: the sentence, model quality beside the business outcome, small trend charts."""
    perf, outcomes = f["performance"], f["outcomes"]
    quality_chart = outcome_chart = None
    if view["quality"] is not None:
        metric = view["quality"]["metric"]
        rows = perf[(perf["metric"] == metric) & (perf["kind"] == MEASURED)]
        quality_chart = page.chart(
            charts.metric_band_chart(rows, None, order=(MEASURED,), width=380, height=90, legend=False)
        )
    if view["outcome"] is not None:
        rows = outcomes[(outcomes["metric"] == view["outcome"]["metric"]) & (outcomes["kind"] == "measured")]
        outcome_chart = page.chart(
            charts.metric_band_chart(
                rows, None, order=("measured",), width=380, height=90, percent=_is_rate(rows), legend=False
            )
        )
    return {
        "model": model,
        "health": health,
        "quality": view["quality"],
        "outcome": view["outcome"],
        "quality_chart": quality_chart,
        "outcome_chart": outcome_chart,
    }


# ---------------------------------------------------------------------------------------------- small helpers


def _parse_json(raw: Any) -> Any:
    text = _text_or_none(raw)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # written as plain text by an older version


def _list_text(raw: Any) -> str:
    """A JSON list of reasons (or plain text) as one sentence-like line."""
    data = _parse_json(raw)
    if data is None or data == []:
        return ""
    if isinstance(data, list):
        return "; ".join(str(item) for item in data)
    return str(data)


def _harm_text(harmed: Any, breaches: Any) -> str:
    """Groups the shadow serves worse and serving limits it breaks, from their JSON lists."""
    parts = []
    for h in _parse_json(harmed) or []:
        if isinstance(h, dict):
            where = f"{h.get('segment', '?')}={h.get('segment_value', '?')}"
            parts.append(f"{where}: {h.get('metric', '')} {_number(h.get('delta'), sign=True)}".strip())
        else:
            parts.append(str(h))
    for b in _parse_json(breaches) or []:
        if isinstance(b, dict):
            parts.append(
                f"{b.get('metric', '')} {_number(b.get('value'))} above {_number(b.get('threshold'))}"
            )
        else:
            parts.append(str(b))
    return "; ".join(parts) or "none"


def _text_or_none(value: Any) -> str | None:
    if is_missing(value):
        return None
    text = str(value)
    return text or None


def _as_date(value: Any) -> dt.date | None:
    if is_missing(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _long_date(day: dt.date | None) -> str:
    return f"{day.day} {day:%b %Y}" if day else "unknown"


def _short_date(day: dt.date | None) -> str:
    return f"{day.day} {day:%b}" if day else "–"


def _percent(value: Any) -> str:
    return "–" if is_missing(value) else f"{float(value):.1%}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ago(day: dt.date | None, today: dt.date) -> str:
    if day is None:
        return "start unknown"
    days = (today - day).days
    return "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"


def _since_words(since: dt.date | None, today: dt.date, lead: str = "since ") -> str:
    if since is None:
        return "(start unknown)"
    return f"{lead}{_long_date(since)} ({_ago(since, today)})"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _freshness(days: int | None) -> str:
    if days is None:
        return "no data yet"
    if days <= 0:
        return "up to date (today)"
    return f"{days} day" + ("" if days == 1 else "s") + " old"


def _day_range(first: Any, last: Any) -> str:
    a, b = _text_or_none(first), _text_or_none(last)
    if not a:
        return "–"
    return a if a == b or not b else f"{a} to {b}"


def _write(path: Path, text: str) -> None:
    """Write via a temporary file so a reader never sees half a page."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _copy_assets(target: Path) -> None:
    """Copy the Vega runtime and CSS beside the pages (only files whose content changed)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        source, dest = STATIC_DIR / name, target / name
        if dest.exists() and dest.read_bytes() == source.read_bytes():
            continue
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
