"""The static dashboard: an index and one page per model, written under the data directory.

Static files because the people who must read them (risk officers, product owners) should not need
Dagster, DuckDB or a server: the folder opens from disk, from a file share or as an attachment.
Charts are Altair (Vega-Lite) specs with their rows embedded; the Vega runtime is copied once into
`assets/` beside the pages, so nothing is fetched from the network.

Data comes from a few DuckDB queries per model (aggregations in SQL); every section shows
"no data yet" instead of failing when its table is still empty.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from monitoring_pipelines.config import ModelConfig, MonitoringConfig
from monitoring_pipelines.core.formatting import fmt, is_missing
from monitoring_pipelines.dashboard import charts
from monitoring_pipelines.schema import ALL
from monitoring_pipelines.storage.warehouse import Warehouse, qualified

STATIC_DIR = Path(__file__).resolve().parent / "static"
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
# Rows of shadow_comparisons / subgroup_metrics that describe the whole population, not a segment.
CLOSED_BACKLOG = ("resolved", "closed", "done", "wont_fix", "won't fix", "duplicate")
RECENT_CLOSED_BACKLOG = 20
MEASURED = "measured (from labels)"
ESTIMATED = "estimated (labels not in yet)"
# Numbers as the pages show them: 4 significant digits ("+" when sign=True), whole numbers below 1e9 with
# thousands separators, "–" when missing, ∞ for infinity. Plain text, to be HTML-escaped by the caller.
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
    (
        ("subgroup", "fair", "parity", "disparity", "equalized", "segment", "differential"),
        "A group of people is treated differently",
    ),
    (("shadow", "promot"), "Shadow model comparison"),
    (("latency", "serving", "error_rate", "errors"), "Slow or failing responses"),
    (("outcome",), "Business outcome changed"),
    (("drift", "psi", "wasserstein"), "Input data has changed"),
    (
        ("perf", "auc", "calibrat", "accuracy", "brier", "log_loss", "ece", "estimated"),
        "Prediction quality dropped",
    ),
    (("fresh", "stale", "late", "missing_partition"), "Data is late"),
    (
        ("valid", "quality", "schema", "null", "volume", "quarantin", "expect", "unseen", "range"),
        "Data quality problem",
    ),
)
# Drift statistics drawn, in this order, with their titles (core.drift.STATISTIC_ORDER). Test
# statistics (ks, chi2) and descriptive ones (mean, std) are not drawn: their verdicts still count
# in the "drifted today" line and they stay in drift_scores for analysts.
DRIFT_CHARTS: dict[str, str] = {
    "psi": "PSI (population stability index)",
    "js": "Jensen–Shannon distance",
    "wasserstein_norm": "Wasserstein distance (in reference spreads)",
    "null_rate_change": "Change in the share of missing values",
    "out_of_range_share": "Share of values outside the reference range",
    "unseen_share": "Share of categories never seen in the reference",
}
DRIFT_NOT_DRAWN = ("ks", "chi2", "mean", "std")
# Whole-pair shadow metrics drawn as shadow − champion (core.shadow); pair statistics and serving
# rows of shadow_comparisons are left to the table.
SHADOW_METRICS = (
    "auc",
    "accuracy",
    "log_loss",
    "brier",
    "recall",
    "precision",
    "positive_rate",
    "mean_score",
)
# Per-segment fairness summaries (segment_value = '__all__', core.fairness) and what to call them.
FAIRNESS_SUMMARIES: dict[str, str] = {
    "demographic_parity_difference": "positive-rate gap (demographic parity)",
    "equalized_odds_difference": "error-rate gap (equalized odds)",
    "demographic_parity_ratio": "lowest to highest positive rate (four-fifths line)",
}


@dataclass(frozen=True)
class DashboardResult:
    """Where the site was written and how many charts it holds (the asset's metadata)."""

    index_path: Path
    model_pages: dict[str, Path]
    charts: int


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

    @property
    def label(self) -> str:
        return STATUS_LABEL[self.status]


@dataclass
class _Page:
    """Specs collected while a page's HTML is assembled, embedded at its end."""

    specs: list[dict[str, Any]] = field(default_factory=list)

    def chart(self, figure: charts.Figure | None, empty: str) -> str:
        if figure is None:
            return _empty(empty)
        self.specs.append(figure.to_spec())
        return f'<div class="chart" id="chart-{len(self.specs)}" data-spec="spec-{len(self.specs)}"></div>'


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

    names = config.model_names
    status = _status_by_model(warehouse, names)
    alerts = _active_alerts(warehouse, names)
    health = {
        name: assess_health(
            name, status.get(name, {}), alerts[alerts["model_name"] == name], today, stale_after_days
        )
        for name in names
    }
    generated = f"Generated {now:%Y-%m-%d %H:%M} UTC"
    as_of = f"As of {today.isoformat()} (UTC): freshness and “days ago” count from this day."

    pages: dict[str, Path] = {}
    total_charts = 0
    for model in config.models:
        page = _Page()
        body = _model_body(
            warehouse,
            model,
            health[model.name],
            alerts[alerts["model_name"] == model.name],
            page,
            today,
            history_days,
        )
        path = out_dir / f"{model.name}.html"
        _write(
            path,
            _document(
                f"{model.name}: model monitoring", model.name, body, page, generated, as_of, crumbs=True
            ),
        )
        pages[model.name] = path
        total_charts += len(page.specs)

    index = out_dir / "index.html"
    _write(
        index,
        _document(
            "Model monitoring", "Model monitoring", _index_body(config, health), _Page(), generated, as_of
        ),
    )
    return DashboardResult(index_path=index, model_pages=pages, charts=total_charts)


# ---------------------------------------------------------------------------------------------- health


def assess_health(
    model_name: str,
    status: dict[str, Any],
    alerts: pd.DataFrame,
    today: dt.date,
    stale_after_days: int = STALE_AFTER_DAYS,
) -> ModelHealth:
    """Green / amber / red from the model's unresolved alerts and how fresh its data is.

    Red: an unresolved critical alert. Amber: an unresolved warning, no data yet, or the last day
    with data more than `stale_after_days` before `today`. Green otherwise; info alerts never
    change the colour. `since` is the first day the worst problem was seen.
    """
    counts = {sev: int(status.get(sev) or 0) for sev in SEVERITIES}
    last_data = _as_date(status.get("last_data"))
    freshness = (today - last_data).days if last_data else None
    stale = last_data is None or (freshness is not None and freshness > stale_after_days)

    problems = [_describe_alert(row, today) for row in alerts.to_dict("records") if row["severity"] != "info"]
    if last_data is None:
        problems.append("No monitoring data has reached the warehouse for this model yet.")
    elif stale:
        problems.append(
            f"No new data for {freshness} days: the last day with data is {_long_date(last_data)}."
        )

    def first_seen(severity: str) -> dt.date | None:
        days = [_as_date(d) for d in alerts.loc[alerts["severity"] == severity, "since"]]
        return min((d for d in days if d), default=None)

    if counts["critical"]:
        since = first_seen("critical")
        headline = f"{_plural(counts['critical'], 'critical problem')} {_since_words(since, today)}."
        state: HealthStatus = "red"
    elif counts["warning"] or stale:
        since = first_seen("warning")
        parts = []
        if counts["warning"]:
            parts.append(f"{_plural(counts['warning'], 'warning')} {_since_words(since, today)}")
        if last_data is None:
            parts.append("no data yet")
        elif stale:
            stale_since = last_data + dt.timedelta(days=1)
            since = min(since, stale_since) if since else stale_since
            parts.append(f"no new data for {freshness} days")
        text = "; ".join(parts)
        headline = text[:1].upper() + text[1:] + "."
        state = "amber"
    else:
        since = None
        headline = (
            f"No open problems; data up to {_long_date(last_data)}." if last_data else "No open problems."
        )
        state = "green"
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
    )


def plain_topic(check_name: str, metric: str | None = None) -> str:
    """What a check is about in words a non-specialist knows, e.g. 'Input data has changed'."""
    words = f"{check_name} {metric or ''}".lower()
    for keys, topic in TOPICS:
        if any(k in words for k in keys):
            return topic
    return check_name.replace("_", " ").capitalize()


def _describe_alert(row: dict[str, Any], today: dt.date) -> str:
    topic = plain_topic(str(row.get("check_name") or ""), _text_or_none(row.get("metric")))
    subject = _text_or_none(row.get("subject"))
    about = f" ({subject})" if subject and subject != "model" else ""
    what = _text_or_none(row.get("message")) or (
        f"{row.get('metric')} is {_number(row.get('value'))} against a threshold of {_number(row.get('threshold'))}"
    )
    since = _as_date(row.get("since"))
    ack = " Someone is on it (acknowledged)." if row.get("status") == "acknowledged" else ""
    return f"{topic}{about}: {what.rstrip('.')}. First seen {_since_words(since, today, lead='')}.{ack}"


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
    "value", "threshold", "message", "status", "evidence", "consecutive_days",
]  # fmt: skip


def _active_alerts(warehouse: Warehouse, names: list[str]) -> pd.DataFrame:
    """Unresolved (open or acknowledged) alerts, worst and oldest first."""
    sql = f"""
        SELECT alert_id, model_name, CAST(partition_date AS VARCHAR) AS day,
               CAST(coalesce(first_seen_date, partition_date) AS VARCHAR) AS since,
               CAST(coalesce(last_seen_date, partition_date) AS VARCHAR) AS last_seen,
               check_name, metric, subject, severity, value, threshold, message, status,
               CAST(evidence AS VARCHAR) AS evidence, consecutive_days
        FROM {_t("alerts")}
        WHERE status <> 'resolved' AND list_contains(?::VARCHAR[], model_name)
        ORDER BY model_name, {SEVERITY_ORDER}, since, check_name, subject, alert_id
    """
    return _query(warehouse, sql, [names], ALERT_COLUMNS)


def _model_frames(warehouse: Warehouse, model: ModelConfig, start: dt.date) -> dict[str, pd.DataFrame]:
    """Everything a model page draws, each frame already shaped for its chart or table."""
    day = "CAST(partition_date AS VARCHAR) AS day"
    window = "model_name = ? AND partition_date >= ?"
    p = [model.name, start]
    frames: dict[str, pd.DataFrame] = {}
    feature_label = """CASE feature WHEN '__score__' THEN 'model score (prediction drift)'
                                    WHEN '__prediction_rate__' THEN 'positive-decision rate'
                                    ELSE feature END AS feature_label"""
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
    metric_columns = ["day", "metric", "kind", "value", "ci_low", "ci_high", "n", "labelled_fraction"]
    frames["performance"] = _query(
        warehouse,
        f"""
        SELECT {day}, metric,
               CASE WHEN estimated THEN '{ESTIMATED}' ELSE '{MEASURED}' END AS kind,
               value, ci_low, ci_high, n, labelled_fraction
        FROM {_t("performance_metrics")}
        WHERE {window} AND metric NOT LIKE 'outcome:%' AND NOT (estimated AND trusted IS FALSE)
        ORDER BY metric, kind, partition_date
        """,
        p,
        metric_columns,
    )
    frames["withheld"] = _query(
        warehouse,
        f"""
        SELECT {day}, min(estimate_note) AS note FROM {_t("performance_metrics")}
        WHERE {window} AND estimated AND trusted IS FALSE GROUP BY partition_date ORDER BY partition_date
        """,
        p,
        ["day", "note"],
    )
    frames["outcomes"] = _query(
        warehouse,
        f"""
        SELECT {day}, substr(metric, 9) AS metric,
               CASE WHEN estimated THEN 'estimated' ELSE 'measured' END AS kind,
               value, ci_low, ci_high, n, labelled_fraction
        FROM {_t("performance_metrics")} WHERE {window} AND metric LIKE 'outcome:%'
        ORDER BY metric, kind, partition_date
        """,
        p,
        metric_columns,
    )
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
    frames["fairness"] = _query(
        warehouse,
        f"""
        SELECT {day}, segment, CASE metric {labels} END AS metric, value, ci_low, ci_high, n,
               CASE metric WHEN 'demographic_parity_difference' THEN ?
                           WHEN 'equalized_odds_difference' THEN ?
                           WHEN 'demographic_parity_ratio' THEN ? END AS threshold
        FROM {_t("subgroup_metrics")}
        WHERE {window} AND segment_value = '{ALL}' AND metric IN ({_in_list(list(FAIRNESS_SUMMARIES))})
        ORDER BY metric, segment, partition_date
        """,
        [t.parity_gap, t.equalized_odds_gap, t.disparity_low, *p],
        ["day", "segment", "metric", "value", "ci_low", "ci_high", "n", "threshold"],
    )
    frames["shadow"] = _query(
        warehouse,
        f"""
        SELECT {day}, metric, 'shadow ' || shadow_version || ' minus champion ' || champion_version AS pair,
               delta, ci_low, ci_high, champion_value, shadow_value, p_value, n
        FROM {_t("shadow_comparisons")}
        WHERE {window} AND segment = '{ALL}' AND metric IN ({_in_list(SHADOW_METRICS)}) AND delta IS NOT NULL
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
    closed = _in_list(CLOSED_BACKLOG)
    frames["backlog"] = _query(
        warehouse,
        f"""
        SELECT item_id, title, severity, status,
               strftime(timezone('UTC', created_at), '%Y-%m-%d') AS created,
               strftime(timezone('UTC', resolved_at), '%Y-%m-%d') AS resolved,
               coalesce(len(alert_ids), 0) AS alerts,
               list_min(partitions) AS first_day, list_max(partitions) AS last_day,
               external_ref, count(*) OVER (PARTITION BY status) AS status_count
        FROM {_t("backlog_items")} WHERE model_name = ?
        QUALIFY lower(status) NOT IN ({closed})
             OR row_number() OVER (PARTITION BY lower(status) IN ({closed})
                                   ORDER BY coalesce(resolved_at, updated_at, created_at) DESC, item_id)
                <= {RECENT_CLOSED_BACKLOG}
        ORDER BY lower(status) IN ({closed}), {SEVERITY_ORDER}, created_at DESC NULLS LAST, item_id
        """,
        [model.name],
        ["item_id", "title", "severity", "status", "created", "resolved", "alerts", "first_day", "last_day",
         "external_ref", "status_count"],
    )  # fmt: skip
    return frames


# ---------------------------------------------------------------------------------------------- pages


def _model_body(
    warehouse: Warehouse,
    model: ModelConfig,
    health: ModelHealth,
    alerts: pd.DataFrame,
    page: _Page,
    today: dt.date,
    history_days: int,
) -> str:
    last = health.last_data or today
    start = last - dt.timedelta(days=history_days - 1)
    f = _model_frames(warehouse, model, start)
    window = f"Charts show the {history_days} days up to {_long_date(last)}." if health.last_data else ""
    sections = [
        ("health", "Health", _health_section(model, health, alerts)),
        ("drift", "Input drift", _drift_section(f["drift"], f["drift_overview"], page, window)),
        ("performance", "Performance", _performance_section(model, f["performance"], f["withheld"], page)),
        ("subgroups", "Groups of people", _subgroup_section(f["subgroups"], f["gaps"], f["fairness"], page)),
        ("shadow", "Shadow vs champion", _shadow_section(f["shadow"], f["recommendations"], page)),
        ("serving", "Serving: speed and errors", _serving_section(model, f["serving"], page)),
        ("outcomes", "Business outcomes", _outcome_section(model, f["outcomes"], page)),
        ("backlog", "Backlog", _backlog_section(f["backlog"])),
    ]
    nav = "".join(f'<a href="#{sid}">{html.escape(title)}</a>' for sid, title, _ in sections)
    parts = [f'<nav class="sections">{nav}</nav>']
    parts += [
        f'<section id="{sid}"><h2>{html.escape(title)}</h2>{body}</section>' for sid, title, body in sections
    ]
    return "\n".join(parts)


def _health_box(health: ModelHealth) -> str:
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in health.problems[:12])
    more = len(health.problems) - 12
    if more > 0:
        problems += f"<li>… and {more} more, listed in the table below.</li>"
    return (
        f'<div class="health {health.status}">{_badge(health)}'
        f'<p class="headline">{html.escape(health.headline)}</p>'
        + (f"<ul>{problems}</ul>" if problems else "")
        + "</div>"
    )


def _facts(health: ModelHealth, owner: str) -> str:
    counts = health.open_counts
    items = [
        (
            "Open alerts",
            f"{counts['critical']} critical · {counts['warning']} warning · {counts['info']} info",
        ),
        ("Last day with data", health.last_data.isoformat() if health.last_data else "none yet"),
        ("Freshness", _freshness(health.freshness_days)),
        ("Last monitoring run", health.last_run_at or "no run recorded"),
        ("Owner", owner),
    ]
    return (
        '<dl class="facts">'
        + "".join(f"<div><dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd></div>" for k, v in items)
        + "</dl>"
    )


def _health_section(model: ModelConfig, health: ModelHealth, alerts: pd.DataFrame) -> str:
    table = _empty("No open alerts.")
    if not alerts.empty:
        rows = []
        for a in alerts.to_dict("records"):
            rows.append(
                (
                    f"sev-{a['severity']}",
                    [
                        html.escape(str(a["severity"])),
                        html.escape(str(a["model_name"])),
                        html.escape(plain_topic(str(a["check_name"]), _text_or_none(a["metric"])))
                        + f"<br><small>{html.escape(str(a['check_name']))}</small>",
                        html.escape(_text_or_none(a["since"]) or "–"),
                        html.escape(_text_or_none(a["last_seen"]) or "–"),
                        html.escape(_text_or_none(a["metric"]) or "–"),
                        html.escape(_text_or_none(a["subject"]) or "–"),
                        html.escape(_number(a["value"])),
                        html.escape(_number(a["threshold"])),
                        html.escape(_text_or_none(a["message"]) or ""),
                        _evidence(a["evidence"]),
                        html.escape(str(a["status"])),
                    ],
                )
            )
        headers = ["Severity", "Model", "Problem", "Since", "Last day", "Metric", "Subject", "Value", "Threshold",
                   "What was found", "Evidence", "Status"]  # fmt: skip
        table = _table(headers, rows, numeric={7, 8}, classes={10: "evidence"})
    return (
        _health_box(health)
        + _facts(health, model.owner)
        + "<h3>Open alerts</h3>"
        + '<p class="intro">Every alert not yet resolved, worst first. “Since” is the first day the problem was '
        "seen; “Last day” the latest day it was still present.</p>" + table
    )


def _drift_section(frame: pd.DataFrame, overview: pd.DataFrame, page: _Page, window: str) -> str:
    intro = _intro(
        "Are the inputs the model sees today like the ones it was built on? The overview has one row per "
        "input and one cell per day: the darker the cell, the closer its drift score came to the alert line "
        "(red: past it), and a black dot marks a day the input was flagged as drifted. Below, each panel is "
        "one input: the solid line is the day's drift score, the dashed line the alert threshold, red dots "
        f"the days flagged. {window}"
    )
    if frame.empty and overview.empty:
        return intro + _empty(
            "No data yet: drift scores appear once a day after the reference window is monitored."
        )
    last_day = overview["day"].max()
    drifted = sorted(
        overview.loc[
            (overview["day"] == last_day) & overview["drifted"].astype(bool), "feature_label"
        ].unique()
    )
    summary = (
        f"On {last_day}, {len(drifted)} input(s) drifted: {', '.join(drifted)}."
        if drifted
        else f"On {last_day}, no input was flagged as drifted."
    )
    parts = [
        intro,
        f"<p><strong>{html.escape(summary)}</strong></p>",
        "<h3>Overview: every input, every day</h3>",
        page.chart(charts.drift_overview_chart(overview), "No drift statistic with an alert line yet."),
    ]
    # PSI always (it covers numeric and categorical inputs alike); the other statistics only when
    # they flagged something in the window, so a quiet month stays a short page.
    flagged = set(frame.loc[frame["drifted"].astype(bool), "statistic"])
    present = set(frame["statistic"])
    ordered = [s for s in DRIFT_CHARTS if s in present] + sorted(present - set(DRIFT_CHARTS))
    drawn = [s for i, s in enumerate(ordered) if i == 0 or s in flagged]
    for statistic in drawn:
        parts.append(f"<h3>{html.escape(DRIFT_CHARTS.get(statistic, statistic))}</h3>")
        rows = frame[frame["statistic"] == statistic]
        parts.append(page.chart(charts.drift_chart(rows, statistic), "No data yet."))
    return "".join(parts)


def _performance_section(model: ModelConfig, frame: pd.DataFrame, withheld: pd.DataFrame, page: _Page) -> str:
    intro = _intro(
        "How good are the predictions? “Measured” uses the true outcomes (labels), which arrive about "
        f"{model.label_delay_days} days later; “estimated” is a label-free estimate for the days still "
        "waiting for labels. Shaded bands are 95% confidence intervals: the true value is very likely inside."
    )
    chart = page.chart(
        charts.metric_band_chart(frame, "metric", order=(MEASURED, ESTIMATED)),
        f"No data yet: measured performance appears once labels arrive (about {model.label_delay_days} days after a day).",
    )
    if withheld.empty:
        return intro + chart
    days = ", ".join(html.escape(str(d)[:10]) for d in withheld["day"])
    note = html.escape(str(withheld["note"].iloc[-1] or ""))
    return (
        intro
        + chart
        + f'<p class="note">Estimates not drawn for {days}: the scores fell outside the range seen in the '
        f"reference, so a label-free estimate cannot be trusted there (it tends to read as “the model "
        f"improved”). Measured values appear once labels arrive. <small>{note}</small></p>"
    )


def _subgroup_section(frame: pd.DataFrame, gaps: pd.DataFrame, fairness: pd.DataFrame, page: _Page) -> str:
    intro = _intro(
        "Does the model work equally well for every group of people? The fairness chart compares each "
        "way of grouping (segment) with its fairness line (four-fifths rule, parity gaps). A gap the model "
        "already had in its reference period is listed for review, not alerted; an alert means the gap "
        "grew against the reference. The gap chart shows, per day, the largest "
        "difference between any group and everyone; then one chart per segment, one line per group."
    )
    if frame.empty and fairness.empty:
        return intro + _empty("No data yet: group metrics appear once the configured segments are monitored.")
    parts = [intro]
    if not fairness.empty:
        parts += [
            "<h3>Fairness gaps against their fairness lines</h3>",
            page.chart(charts.fairness_chart(fairness), ""),
        ]
    parts += [
        "<h3>Largest gap between a group and everyone</h3>",
        page.chart(charts.gap_chart(gaps), "No gaps computed yet."),
    ]
    for segment, rows in frame.groupby("segment", sort=True):
        parts.append(f"<h3>By {html.escape(str(segment))}</h3>")
        parts.append(page.chart(charts.subgroup_chart(rows, str(segment)), "No data yet."))
    return "".join(parts)


def _shadow_section(frame: pd.DataFrame, recommendations: pd.DataFrame, page: _Page) -> str:
    intro = _intro(
        "A shadow model scores the same requests as the live (champion) model without its answers being "
        "used. Lines show shadow minus champion: for AUC and accuracy above zero means the shadow is better, "
        "for log loss and Brier score below zero does. When the shaded 95% band includes zero the "
        "difference may be chance."
    )
    parts = [intro]
    if not recommendations.empty:
        rows = [
            (
                "",
                [
                    html.escape(f"{r['shadow_version']} vs {r['champion_version']}"),
                    f"<strong>{html.escape(VERDICTS.get(str(r['verdict']), str(r['verdict'])))}</strong>",
                    html.escape(_text_or_none(r["primary_metric"]) or "–"),
                    html.escape(_number(r["delta"], sign=True)),
                    html.escape(f"{_number(r['ci_low'])} to {_number(r['ci_high'])}"),
                    html.escape(_number(r["p_value"])),
                    html.escape(_number(r["days_pooled"])),
                    html.escape(_number(r["days_needed"])),
                    html.escape(_harm_text(r["harmed_segments"], r["slo_breaches"])),
                    html.escape(_list_text(r["reasons"])),
                    html.escape(str(r["day"])),
                ],
            )
            for r in recommendations.to_dict("records")
        ]
        headers = ["Shadow vs champion", "Recommendation", "Metric", "Difference", "95% CI", "p-value", "Days pooled",
                   "Days needed", "Harm found", "Why", "As of"]  # fmt: skip
        parts += ["<h3>Latest recommendation</h3>", _table(headers, rows, numeric={3, 5, 6, 7})]
    parts.append("<h3>Difference per day</h3>")
    parts.append(page.chart(charts.shadow_chart(frame), "No data yet: no shadow model has scored requests."))
    return "".join(parts)


def _serving_section(model: ModelConfig, frame: pd.DataFrame, page: _Page) -> str:
    t = model.thresholds.serving
    intro = _intro(
        "How fast and reliable is the service? p99 is the time within which 99 of 100 requests were "
        f"answered; its alert lines are at {t.p99_latency_warning_ms:g} ms (warning) and "
        f"{t.p99_latency_critical_ms:g} ms (critical). Error-rate alert lines: {t.error_rate_warning:.1%} and "
        f"{t.error_rate_critical:.1%}."
    )
    if frame.empty:
        return intro + _empty("No data yet: serving metrics appear after the first monitored day.")
    return "".join(
        [
            intro,
            "<h3>Latency</h3>",
            _intro("Solid lines: the champion (served to users); dashed lines: the shadow.")
            if (frame["role"] == "shadow").any()
            else "",
            page.chart(
                charts.latency_chart(frame, t.p99_latency_warning_ms, t.p99_latency_critical_ms),
                "No data yet.",
            ),
            "<h3>Errors</h3>",
            page.chart(
                charts.error_rate_chart(frame, t.error_rate_warning, t.error_rate_critical), "No data yet."
            ),
            "<h3>Requests</h3>",
            page.chart(charts.requests_chart(frame), "No data yet."),
        ]
    )


def _outcome_section(model: ModelConfig, frame: pd.DataFrame, page: _Page) -> str:
    names = ", ".join(model.outcomes) or "none configured"
    intro = _intro(
        f"Business results linked to the model's decisions ({names}), per day with 95% confidence bands. "
        "They arrive later than predictions, so the latest days may be missing."
    )
    return intro + page.chart(
        charts.metric_band_chart(frame, "metric", color_title=""),
        "No data yet: no business outcomes recorded.",
    )


def _backlog_section(frame: pd.DataFrame) -> str:
    intro = _intro("Findings tracked as work items: every open item, and the most recently closed ones.")
    if frame.empty:
        return intro + _empty("No backlog items for this model.")
    counts = frame[["status", "status_count"]].drop_duplicates().sort_values("status")
    summary = ", ".join(
        f"{int(c)} {s}" for s, c in zip(counts["status"], counts["status_count"], strict=True)
    )
    rows = [
        (
            f"sev-{r['severity']}",
            [
                html.escape(str(r["item_id"])),
                html.escape(str(r["title"])),
                html.escape(str(r["severity"])),
                f"<strong>{html.escape(str(r['status']))}</strong>",
                html.escape(_text_or_none(r["created"]) or "–"),
                html.escape(_text_or_none(r["resolved"]) or "–"),
                html.escape(_day_range(r["first_day"], r["last_day"])),
                html.escape(_number(r["alerts"])),
                html.escape(_text_or_none(r["external_ref"]) or "–"),
            ],
        )
        for r in frame.to_dict("records")
    ]
    headers = [
        "Item",
        "Title",
        "Severity",
        "Status",
        "Opened",
        "Resolved",
        "Days affected",
        "Alerts",
        "Tracker",
    ]
    return intro + f"<p>By status: {html.escape(summary)}.</p>" + _table(headers, rows, numeric={7})


def _index_body(config: MonitoringConfig, health: dict[str, ModelHealth]) -> str:
    tally = {s: sum(1 for h in health.values() if h.status == s) for s in ("red", "amber", "green")}
    summary = ", ".join(f"{n} {STATUS_LABEL[s].lower()}" for s, n in tally.items() if n)
    rows = []
    for model in config.models:
        h = health[model.name]
        c = h.open_counts
        rows.append(
            (
                f"status-{h.status}",
                [
                    f'<a href="{html.escape(model.name)}.html"><strong>{html.escape(model.name)}</strong></a>',
                    _badge(h),
                    html.escape(h.headline),
                    html.escape(_number(c["critical"])),
                    html.escape(_number(c["warning"])),
                    html.escape(_number(c["info"])),
                    html.escape(h.last_data.isoformat() if h.last_data else "none yet"),
                    html.escape(_freshness(h.freshness_days)),
                    html.escape(h.last_run_at or "no run recorded"),
                    html.escape(model.owner),
                ],
            )
        )
    headers = ["Model", "Health", "What is wrong, since when", "Critical", "Warning", "Info", "Last day with data",
               "Freshness", "Last run", "Owner"]  # fmt: skip
    legend = (
        '<p class="legend-colors"><span class="badge green">Healthy</span> no open problems · '
        '<span class="badge amber">Needs attention</span> a warning, or data late or missing · '
        '<span class="badge red">Action needed</span> a critical problem. Open alerts count everything not yet '
        "resolved (open or acknowledged). Freshness is how many days ago the last day with data was.</p>"
    )
    return (
        f"<p><strong>{len(config.models)} model(s): {html.escape(summary)}.</strong></p>"
        + _table(headers, rows, numeric={3, 4, 5})
        + legend
    )


# ---------------------------------------------------------------------------------------------- HTML bits

ERROR_HOOK = """<script>
(function () {
  var box = document.getElementById("js-errors");
  var original = console.error;
  function report(message) {
    box.hidden = false;
    box.textContent += message + "\\n";
    document.body.setAttribute("data-js-errors", "true");
    original.call(console, "[dashboard] " + message);
  }
  window.dashboardReport = report;
  window.addEventListener("error", function (e) { report("Uncaught " + (e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) { report("Unhandled rejection: " + e.reason); });
  console.error = function () { report("console.error: " + Array.prototype.join.call(arguments, " ")); };
})();
</script>"""

EMBED = """<script>
(function () {
  var charts = document.querySelectorAll(".chart[data-spec]");
  var pending = charts.length;
  function done() { if (--pending === 0) { document.body.setAttribute("data-charts-done", "true"); } }
  if (pending === 0) { document.body.setAttribute("data-charts-done", "true"); }
  charts.forEach(function (el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute("data-spec")).textContent);
    vegaEmbed(el, spec, {renderer: "svg", actions: false})
      .then(function () { el.setAttribute("data-rendered", "true"); done(); })
      .catch(function (err) { window.dashboardReport("Chart " + el.id + " failed: " + err); done(); });
  });
})();
</script>"""


def _document(
    title: str, heading: str, body: str, page: _Page, generated: str, as_of: str, crumbs: bool = False
) -> str:
    crumb = '<div class="crumbs"><a href="index.html">← All models</a></div>' if crumbs else ""
    scripts = ""
    if page.specs:
        libs = "".join(f'<script src="assets/{name}"></script>' for name in SCRIPTS)
        specs = "".join(
            f'<script type="application/json" id="spec-{i}">{_json_for_script(spec)}</script>'
            for i, spec in enumerate(page.specs, start=1)
        )
        scripts = f"{libs}\n{specs}\n{EMBED}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="assets/dashboard.css">
</head>
<body>
<header class="top">{crumb}<h1>{html.escape(heading)}</h1><p class="as-of">{html.escape(as_of)}</p></header>
<main>
<pre id="js-errors" hidden></pre>
{ERROR_HOOK}
<noscript><p class="empty">Charts need JavaScript; the tables below work without it.</p></noscript>
{body}
<footer>{html.escape(generated)} · monitoring_pipelines dashboard · charts: Vega-Lite, drawn offline</footer>
</main>
{scripts}
</body>
</html>
"""


def _json_for_script(spec: dict[str, Any]) -> str:
    """JSON that cannot close its <script> element early."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table(
    headers: list[str],
    rows: list[tuple[str, list[str]]],
    numeric: set[int] | None = None,
    classes: dict[int, str] | None = None,
) -> str:
    """An HTML table from already-escaped cells; `numeric` columns are right-aligned."""
    numeric = numeric or set()
    classes = classes or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row_class, cells in rows:
        tds = []
        for i, cell in enumerate(cells):
            cls = " ".join(c for c in ("num" if i in numeric else "", classes.get(i, "")) if c)
            tds.append(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>")
        attr = f' class="{html.escape(row_class)}"' if row_class else ""
        body.append(f"<tr{attr}>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _badge(health: ModelHealth) -> str:
    return f'<span class="badge {health.status}" title="{health.status}">{html.escape(health.label)}</span>'


def _intro(text: str) -> str:
    return f'<p class="intro">{html.escape(text.strip())}</p>'


def _empty(text: str) -> str:
    return f'<p class="empty">{html.escape(text)}</p>'


def _evidence(raw: Any) -> str:
    """Evidence JSON as 'key: value' pairs, short enough for a table cell."""
    text = _text_or_none(raw)
    if not text:
        return "–"
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        # Plain facts only (numbers, words, short intervals): nested detail stays in the warehouse and
        # the Dagster UI, where it can be read in full.
        def plain(value: Any) -> str | None:
            if isinstance(value, bool) or value is None:
                return None if value is None else str(value).lower()
            if isinstance(value, float):
                return _number(value)
            if isinstance(value, (int, str)):
                return str(value)[:40]
            if (
                isinstance(value, list)
                and 0 < len(value) <= 2
                and all(isinstance(v, (int, float)) for v in value)
            ):
                return "[" + ", ".join(_number(float(v)) for v in value) + "]"
            return None

        pairs = [(k, plain(v)) for k, v in data.items()]
        text = "; ".join(f"{k}: {v}" for k, v in pairs if v is not None)
    elif not isinstance(data, str):
        text = json.dumps(data, ensure_ascii=False, default=str)
    if len(text) > 240:
        text = text[:237] + "…"
    return html.escape(text)


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


def _since_words(since: dt.date | None, today: dt.date, lead: str = "since ") -> str:
    if since is None:
        return "(start unknown)"
    days = (today - since).days
    ago = "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"
    return f"{lead}{_long_date(since)} ({ago})"


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
