"""The warehouse tables (contract §3), declared once.

Every table's columns, types and meaning live here and nowhere else: the warehouse creates and
migrates its tables from these declarations, core modules build their result frames from
``columns_of``, the dashboard and delivery select ``columns_of`` names, and the analysts' page
(docs/analysts.md) documents them. Pure: no IO, no DuckDB, no Dagster, so
``core`` may import it (``core`` must not import ``storage``, which does IO).

Also declared here: the words the tables share as values (roles, statuses, the all-rows group),
so the same word is used in every table and module.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- shared values

CHAMPION = "champion"  # role: the model version served to the user
SHADOW = "shadow"  # role: scored on the same request, not served
ROLES = (CHAMPION, SHADOW)
OK = "ok"  # status of a scored request
ERROR = "error"  # status of a failed request (no score)
STATUSES = (OK, ERROR)
ALL = "__all__"  # the all-rows group: segment summaries, serving's model-wide row, shadow's whole pair
MISSING = "__missing__"  # a segment value that was null
# The rows every champion metric is computed on; one definition for SQL and one for frames
# (core.profiles.champion_rows). Roles and statuses are lower-cased by validation, so no lower() here.
CHAMPION_OK_SQL = f"role = '{CHAMPION}' AND status = '{OK}'"

SCHEMA = "monitoring"
SCHEMA_VERSION = 5  # bump with a migration in storage/warehouse.py MIGRATIONS


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type
    doc: str = ""
    nullable: bool = True

    @property
    def ddl(self) -> str:
        return self.type if self.nullable else f"{self.type} NOT NULL"


@dataclass(frozen=True)
class Table:
    name: str
    grain: str  # "one row per ..."
    written_by: str
    columns: tuple[Column, ...]
    partitioned: bool = False  # rows of a model-day are replaced together (model_name, partition_date)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _c(name: str, type_: str, doc: str = "", nullable: bool = True) -> Column:
    return Column(name, type_, doc, nullable)


MODEL = _c("model_name", "VARCHAR", "the model (config `models[].name`)", nullable=False)
DAY = _c("partition_date", "DATE", "the UTC day of the predictions' `ts` (the partition)", nullable=False)
LOGGED = (
    _c("prediction_id", "VARCHAR", "as logged (contract §1): unique per row", nullable=False),
    _c(
        "request_id", "VARCHAR", "as logged: one live request, shared by champion and shadows", nullable=False
    ),
    _c("model_version", "VARCHAR", "as logged", nullable=False),
    _c("role", "VARCHAR", "`champion` or `shadow`", nullable=False),
    _c("ts", "TIMESTAMPTZ", "when the request was scored (UTC)", nullable=False),
    _c(
        "score",
        "DOUBLE",
        "binary: probability of the positive class; regression: the predicted value; multiclass: the "
        "probability of the predicted class (from `score__<class>`); NULL on error rows",
    ),
    _c(
        "prediction",
        "INTEGER",
        "binary: the decision, 0 or 1; regression: the logged decision if any, else NULL; multiclass: the "
        "0-based index of `predicted_class` in the config's `classes`; NULL on error rows",
    ),
    _c("latency_ms", "DOUBLE", "serving latency"),
    _c("status", "VARCHAR", "`ok` or `error`", nullable=False),
)
SOURCE_FILE = _c(
    "source_file",
    "VARCHAR",
    "where the row was read from: the path relative to `data_dir`, or "
    "`<driver>://<host>:<port>/<database>/<table>` for a SQL source (never credentials)",
)
METRIC_VALUE = (
    _c("value", "DOUBLE", "the metric"),
    _c("ci_low", "DOUBLE", "lower end of its 95 % interval"),
    _c("ci_high", "DOUBLE", "upper end of its 95 % interval"),
)

_TABLES: tuple[Table, ...] = (
    Table(
        "prediction_snapshots",
        "valid prediction row of a model-day (both roles, both statuses)",
        "prediction_snapshots",
        (
            MODEL,
            DAY,
            *LOGGED,
            SOURCE_FILE,
        ),
        partitioned=True,
    ),
    Table(
        "quarantined_predictions",
        "rejected input row of a model-day; valid + quarantined = rows read",
        "prediction_snapshots",
        (
            MODEL,
            DAY,
            _c(
                "prediction_id",
                "VARCHAR",
                "as read, after conversion (a value that was not a number is NULL)",
            ),
            _c("request_id", "VARCHAR", "as read"),
            _c("model_version", "VARCHAR", "as read"),
            _c("role", "VARCHAR", "as read, lower-cased"),
            _c("ts", "TIMESTAMPTZ", "as read, NULL when unparsable"),
            _c("score", "DOUBLE", "as read"),
            _c(
                "prediction",
                "DOUBLE",
                "as read (a rejected decision may be any number); multiclass: the class index, NULL for a "
                "class outside `classes` (`raw` has the class as logged)",
            ),
            _c("latency_ms", "DOUBLE", "as read"),
            _c("status", "VARCHAR", "as read, lower-cased"),
            _c("reason", "VARCHAR", "every rule the row broke, joined by `; `", nullable=False),
            SOURCE_FILE,
            _c("raw", "VARCHAR", "the row as read, as JSON, feature values included"),
        ),
        partitioned=True,
    ),
    Table(
        "quarantined_labels",
        "label row of a model-day's requests that was not used (a label that is not 0/1, not a finite "
        "number for regression, not a declared class for multiclass, or none)",
        "performance_metrics",
        (
            MODEL,
            _c("partition_date", "DATE", "the UTC day of the labelled request's prediction", nullable=False),
            _c("request_id", "VARCHAR", "as read"),
            _c("label", "VARCHAR", "as read, as text"),
            _c("label_ts", "VARCHAR", "as read, as text"),
            _c(
                "reason",
                "VARCHAR",
                "`label not null`, or per task `label in {0, 1}`, `label is a finite number`, `label in classes`",
                nullable=False,
            ),
            SOURCE_FILE,
        ),
        partitioned=True,
    ),
    Table(
        "validation_results",
        "expectation per model-day",
        "prediction_snapshots",
        (
            MODEL,
            DAY,
            _c(
                "expectation",
                "VARCHAR",
                "rule name, or `day is usable` for a whole-day problem",
                nullable=False,
            ),
            _c("column_name", "VARCHAR", "the column the rule checks (NULL for table-level rules)"),
            _c("success", "BOOLEAN", "whether the rule held", nullable=False),
            _c("unexpected_count", "BIGINT", "failing rows"),
            _c("element_count", "BIGINT", "rows checked"),
            _c("unexpected_percent", "DOUBLE", "failing rows in percent of the non-null values checked"),
            _c("blocking", "BOOLEAN", "true for whole-day problems, which stop the model-day"),
            _c("details", "VARCHAR", "JSON: observed value, sample of failing values, or the problem"),
        ),
        partitioned=True,
    ),
    Table(
        "reference_profiles",
        "profiled feature of a model's reference, per profile version",
        "reference_profiles",
        (
            MODEL,
            _c(
                "profile_version", "VARCHAR", "hash of the window, features, binning and data", nullable=False
            ),
            _c(
                "feature",
                "VARCHAR",
                "a feature, `__score__`, `__prediction_rate__` (binary) or `__predicted_class__` (multiclass)",
                nullable=False,
            ),
            _c("kind", "VARCHAR", "`numeric` or `categorical`", nullable=False),
            _c("profile", "JSON", "bins, counts, moments, categories, sketch (docs/drift.md)"),
            _c("n", "BIGINT", "reference rows"),
            _c("reference_start", "DATE", "first day of the reference window"),
            _c("reference_end", "DATE", "last day of the reference window"),
            _c("created_at", "TIMESTAMPTZ", "when the version was built"),
            _c("input_fingerprint", "VARCHAR", "what the version was built from (config + source files)"),
        ),
    ),
    Table(
        "reference_baselines",
        "daily statistic's reference band, per profile version",
        "reference_profiles",
        (
            MODEL,
            _c("profile_version", "VARCHAR", "the reference profile", nullable=False),
            _c(
                "domain",
                "VARCHAR",
                "`drift`, `performance`, `outcome`, `subgroup` or `overall`",
                nullable=False,
            ),
            _c("feature", "VARCHAR", "drift: the feature"),
            _c("statistic", "VARCHAR", "drift: the statistic"),
            _c("segment", "VARCHAR", "subgroup: the segment"),
            _c("segment_value", "VARCHAR", "subgroup: the value"),
            _c("metric", "VARCHAR", "performance, outcome, subgroup, overall: the metric"),
            _c("estimated", "BOOLEAN", "performance: estimated (true) or measured (false)"),
            _c("mean", "DOUBLE", "mean of the daily values over the reference days"),
            _c("std", "DOUBLE", "their sample standard deviation"),
            _c("n_days", "BIGINT", "reference days with a value"),
        ),
    ),
    Table(
        "drift_scores",
        "statistic × feature × model-day",
        "drift_scores",
        (
            MODEL,
            DAY,
            _c(
                "feature",
                "VARCHAR",
                "a feature, `__score__`, `__prediction_rate__` (binary) or `__predicted_class__` (multiclass)",
                nullable=False,
            ),
            _c("kind", "VARCHAR", "`numeric` or `categorical`"),
            _c(
                "statistic",
                "VARCHAR",
                "psi, js, wasserstein_norm, ks, chi2, null_rate_change, ...",
                nullable=False,
            ),
            _c("value", "DOUBLE", "the statistic on the day"),
            _c("reference_value", "DOUBLE", "the reference's value where one applies"),
            _c("p_value", "DOUBLE", "test p-value (ks, chi2 rows)"),
            _c("p_value_adjusted", "DOUBLE", "after Benjamini-Hochberg over the model's features"),
            _c("threshold", "DOUBLE", "warning threshold in effect"),
            _c("threshold_critical", "DOUBLE", "critical threshold in effect"),
            _c("threshold_source", "VARCHAR", "`default`, `override` or `adaptive`"),
            _c("drifted", "BOOLEAN", "the verdict for this statistic"),
            _c("severity", "VARCHAR", "`ok`, `warning` or `critical`"),
            _c("error_bound", "DOUBLE", "bound on the sketch error of ks / wasserstein_norm"),
            _c("n_reference", "BIGINT", "reference values compared"),
            _c("n_current", "BIGINT", "values of the day compared"),
            _c("profile_version", "VARCHAR", "the reference profile used"),
        ),
        partitioned=True,
    ),
    Table(
        "performance_metrics",
        "metric × measured/estimated × model-day",
        "performance_metrics",
        (
            MODEL,
            DAY,
            _c(
                "metric",
                "VARCHAR",
                "auc, log_loss, brier, accuracy, ..., or `outcome:<name>`",
                nullable=False,
            ),
            *METRIC_VALUE,
            _c("n", "BIGINT", "rows used"),
            _c("labelled_fraction", "DOUBLE", "labelled rows ÷ scored rows of the day"),
            _c("estimated", "BOOLEAN", "false = measured on labels, true = estimated (CBPE)", nullable=False),
            _c(
                "trusted",
                "BOOLEAN",
                "estimated rows: false when the day's scores lie outside the reference's score range, "
                "so the checks do not judge the estimate; NULL on measured and outcome rows",
            ),
            _c(
                "estimate_note",
                "VARCHAR",
                "estimated rows: why untrusted, and how the scores were calibrated (or why not); NULL otherwise",
            ),
        ),
        partitioned=True,
    ),
    Table(
        "confusion_matrix",
        "observed class × predicted class × model-day of a multiclass model, over the day's labelled rows",
        "performance_metrics",
        (
            MODEL,
            DAY,
            _c(
                "observed_class",
                "VARCHAR",
                "the class the label says (one of the model's `classes`)",
                nullable=False,
            ),
            _c(
                "predicted_class",
                "VARCHAR",
                "the class the model predicted (one of the model's `classes`)",
                nullable=False,
            ),
            _c(
                "n",
                "BIGINT",
                "labelled champion rows with this pair (every pair of declared classes has a row, zeros included)",
                nullable=False,
            ),
        ),
        partitioned=True,
    ),
    Table(
        "subgroup_metrics",
        "metric × segment value × model-day",
        "subgroup_metrics",
        (
            MODEL,
            DAY,
            _c("segment", "VARCHAR", "a segment or an intersection `a*b`", nullable=False),
            _c(
                "segment_value",
                "VARCHAR",
                "its value (`x|y` for intersections, `__all__` for summaries)",
                nullable=False,
            ),
            _c("metric", "VARCHAR", "positive_rate, recall, fpr, ..., or a segment summary", nullable=False),
            *METRIC_VALUE,
            _c("n", "BIGINT", "the metric's denominator"),
            _c("rows", "BIGINT", "the group's rows"),
            _c("labelled", "BIGINT", "the group's labelled rows"),
            _c("gap", "DOUBLE", "value − the whole day's value"),
            _c("ratio", "DOUBLE", "value ÷ the whole day's value"),
        ),
        partitioned=True,
    ),
    Table(
        "shadow_comparisons",
        "metric × segment value × champion/shadow pair × model-day",
        "shadow_comparisons",
        (
            MODEL,
            DAY,
            _c("champion_version", "VARCHAR", "the champion's model_version", nullable=False),
            _c("shadow_version", "VARCHAR", "the shadow's model_version", nullable=False),
            _c("segment", "VARCHAR", "a segment, or `__all__` for the whole pair", nullable=False),
            _c("segment_value", "VARCHAR", "its value, or `__all__`", nullable=False),
            _c("metric", "VARCHAR", "the compared metric or pair statistic", nullable=False),
            _c("champion_value", "DOUBLE", "the champion's value"),
            _c("shadow_value", "DOUBLE", "the shadow's value"),
            _c("delta", "DOUBLE", "shadow − champion"),
            _c("ci_low", "DOUBLE", "interval of the delta (or of value)"),
            _c("ci_high", "DOUBLE", "interval of the delta (or of value)"),
            _c("p_value", "DOUBLE", "paired test p-value"),
            _c("n", "BIGINT", "paired rows used"),
            _c(
                "value",
                "DOUBLE",
                "statistics of the pair itself: agreement, flip rates, coverage, correlation",
            ),
        ),
        partitioned=True,
    ),
    Table(
        "shadow_recommendations",
        "champion/shadow pair × model-day: the promotion verdict",
        "shadow_comparisons",
        (
            MODEL,
            DAY,
            _c("champion_version", "VARCHAR", "the champion's model_version", nullable=False),
            _c("shadow_version", "VARCHAR", "the shadow's model_version", nullable=False),
            _c("verdict", "VARCHAR", "`promote`, `do_not_promote` or `keep_collecting`", nullable=False),
            _c("primary_metric", "VARCHAR", "the metric the verdict is decided on"),
            _c("delta", "DOUBLE", "shadow − champion on the primary metric, pooled"),
            _c("ci_low", "DOUBLE", "interval of the delta"),
            _c("ci_high", "DOUBLE", "interval of the delta"),
            _c("p_value", "DOUBLE", "paired test p-value"),
            _c("days_pooled", "BIGINT", "labelled days pooled"),
            _c("days_needed", "DOUBLE", "more days needed at the observed effect"),
            _c("n", "BIGINT", "paired labelled rows"),
            _c("harmed_segments", "JSON", "segments significantly worse beyond tolerance"),
            _c("slo_breaches", "JSON", "the shadow's serving SLO breaches"),
            _c("reasons", "JSON", "why this verdict"),
        ),
        partitioned=True,
    ),
    Table(
        "serving_metrics",
        "role × version × model-day, plus a model-wide row (role = model_version = `__all__`)",
        "serving_metrics",
        (
            MODEL,
            DAY,
            _c(
                "role", "VARCHAR", "`champion`, `shadow`, or `__all__` for the model-wide row", nullable=False
            ),
            _c("model_version", "VARCHAR", "the version, or `__all__`", nullable=False),
            _c("latency_p50_ms", "DOUBLE", "median latency"),
            _c("latency_p95_ms", "DOUBLE", "95th percentile latency"),
            _c("latency_p99_ms", "DOUBLE", "99th percentile latency"),
            _c("requests", "BIGINT", "rows"),
            _c("peak_requests_per_hour", "BIGINT", "most rows in one UTC clock hour"),
            _c("error_rate", "DOUBLE", "errors ÷ requests"),
            _c("errors", "BIGINT", "rows with status `error`"),
        ),
        partitioned=True,
    ),
    Table(
        "check_results",
        "asset check × model-day: the same result the Dagster UI shows",
        "every asset with checks",
        (
            MODEL,
            DAY,
            _c("asset", "VARCHAR", "the checked asset", nullable=False),
            _c("check_name", "VARCHAR", "the check", nullable=False),
            _c(
                "passed",
                "BOOLEAN",
                "false when a warning or critical finding exists, or when the check could not judge the day",
                nullable=False,
            ),
            _c(
                "severity",
                "VARCHAR",
                "worst finding: `critical`, `warning`, `info`; `unknown` when the check could not judge the "
                "day (not enough data); NULL when it passed",
            ),
            _c("findings", "JSON", "list of findings: check_name, severity, metric, subject, value, ..."),
            _c("run_id", "VARCHAR", "the Dagster run"),
            _c("evaluated_at", "TIMESTAMPTZ", "wall clock"),
        ),
    ),
    Table(
        "intraday_results",
        "check × model-day × look: what a look at the day so far (or a monitoring-gap look) found",
        "intraday_today, monitoring_gaps",
        (
            MODEL,
            _c("partition_date", "DATE", "the UTC day looked at", nullable=False),
            _c(
                "look_at",
                "TIMESTAMPTZ",
                "the look's clock: it judged the rows logged up to this time",
                nullable=False,
            ),
            _c(
                "asset",
                "VARCHAR",
                "the check's asset: a nightly asset's name, or `intraday_today` / `monitoring_gaps`",
                nullable=False,
            ),
            _c(
                "check_name",
                "VARCHAR",
                "the check (the nightly check's name where there is one)",
                nullable=False,
            ),
            _c(
                "passed",
                "BOOLEAN",
                "false when a warning or critical finding exists, or the check could not judge",
                nullable=False,
            ),
            _c(
                "severity", "VARCHAR", "worst finding, `unknown` when it could not judge, NULL when it passed"
            ),
            _c(
                "findings",
                "JSON",
                "list of findings (as in `check_results`); evidence holds `first_bad_ts` and `window`",
            ),
            _c("rows_so_far", "BIGINT", "valid rows of the day up to `look_at`"),
            _c("data_until", "TIMESTAMPTZ", "latest `ts` among them"),
            _c("alpha", "DOUBLE", "the significance level of one test at this look (alpha spending)"),
            _c("run_id", "VARCHAR", "the Dagster run"),
            _c("evaluated_at", "TIMESTAMPTZ", "wall clock"),
        ),
    ),
    Table(
        "alerts",
        "alert episode: a dedup key from its first failing day until it resolves",
        "alerts",
        (
            _c("alert_id", "VARCHAR", "stable id (hash of dedup key and episode start)", nullable=False),
            MODEL,
            _c("partition_date", "DATE", "the day of the alert's latest state", nullable=False),
            _c("first_seen_date", "DATE", "first failing day"),
            _c("last_seen_date", "DATE", "latest failing day"),
            _c("check_name", "VARCHAR", "what failed", nullable=False),
            _c("asset", "VARCHAR", "the asset whose check failed"),
            _c("metric", "VARCHAR", "the metric of the latest finding"),
            _c("subject", "VARCHAR", "a feature, `segment=value`, a shadow version or `model`"),
            _c("severity", "VARCHAR", "current severity", nullable=False),
            _c("initial_severity", "VARCHAR", "first severity"),
            _c("value", "DOUBLE", "the latest finding's value"),
            _c("threshold", "DOUBLE", "the latest finding's threshold"),
            _c("message", "VARCHAR", "the latest finding's message"),
            _c("status", "VARCHAR", "`open`, `acknowledged` or `resolved`", nullable=False),
            _c("dedup_key", "VARCHAR", "`model/asset.check_name/subject`", nullable=False),
            _c("run_id", "VARCHAR", "the Dagster run that saw the latest failure"),
            _c("consecutive_days", "INTEGER", "current failing streak"),
            _c("passing_days", "INTEGER", "current passing streak"),
            _c("notified", "BOOLEAN", "whether a message went out"),
            _c("evidence", "JSON", "the latest finding's evidence"),
            _c("created_at", "TIMESTAMPTZ", "wall clock"),
            _c("updated_at", "TIMESTAMPTZ", "wall clock"),
            _c("acknowledged_at", "TIMESTAMPTZ", "wall clock"),
            _c("resolved_at", "TIMESTAMPTZ", "wall clock"),
            _c("detected_date", "DATE", "day the alert passed noise control at warning or above"),
            _c("escalated_date", "DATE", "day it escalated one level"),
            _c("resolved_date", "DATE", "day it resolved"),
            _c("resolved_by", "VARCHAR", "`auto`, `superseded`, `user` or a person's name"),
            _c(
                "notified_severity",
                "VARCHAR",
                "highest severity announced for its incident (cleared when the incident's resolve is sent)",
            ),
            _c("notified_at", "TIMESTAMPTZ", "wall clock of the first message enqueued"),
            _c("failing_days", "INTEGER", "failing days in the episode"),
            _c("incident_id", "VARCHAR", "the incident: alerts of the model that started together"),
            _c("root_cause", "VARCHAR", "the incident's root-cause line (its lead alert, before and after)"),
            _c("reopened", "INTEGER", "times it failed again within the re-open window after resolving"),
        ),
    ),
    Table(
        "notifications",
        "message to one channel (the outbox)",
        "alerts (queued), delivery (status)",
        (
            _c("notification_id", "VARCHAR", "stable id", nullable=False),
            _c("channel", "VARCHAR", "webhook, slack, pagerduty or email", nullable=False),
            _c("kind", "VARCHAR", "`trigger`, `resolve` or `digest`", nullable=False),
            _c("severity", "VARCHAR", "the alert's severity"),
            _c("model_name", "VARCHAR", "the model"),
            _c("dedup_key", "VARCHAR", "the dedup key of the alert (of an incident: of its lead alert)"),
            _c("alert_ids", "VARCHAR[]", "the alerts in the message"),
            _c("payload", "JSON", "what is sent"),
            _c("status", "VARCHAR", "`pending`, `delivered` or `failed`", nullable=False),
            _c("attempts", "INTEGER", "delivery attempts", nullable=False),
            _c("next_attempt_at", "TIMESTAMPTZ", "when the next attempt may run"),
            _c("last_error", "VARCHAR", "the last delivery error"),
            _c("created_at", "TIMESTAMPTZ", "wall clock"),
            _c("delivered_at", "TIMESTAMPTZ", "wall clock"),
        ),
    ),
    Table(
        "backlog_items",
        "tracked incident: alerts that started together and passed noise control, or an item a person opened",
        "backlog_items",
        (
            _c("item_id", "VARCHAR", "stable id", nullable=False),
            _c("title", "VARCHAR", "the item", nullable=False),
            _c("severity", "VARCHAR", "the item's severity", nullable=False),
            MODEL,
            _c("status", "VARCHAR", "`open`, `in_progress` or `resolved`", nullable=False),
            _c("dedup_key", "VARCHAR", "the dedup key of its (lead) alert"),
            _c("alert_ids", "VARCHAR[]", "the alerts it tracks (every alert of the incident)"),
            _c("asset_keys", "VARCHAR[]", "assets whose checks failed"),
            _c("partitions", "VARCHAR[]", "failing partitions as Dagster keys `YYYY-MM-DD|model`"),
            _c("run_ids", "VARCHAR[]", "the runs that recorded the failures"),
            _c("evidence", "JSON", "the check's evidence"),
            _c("links", "JSON", "Dagster UI links (and the tracker issue)"),
            _c("reported_by", "VARCHAR", "`monitoring`, or the person who opened it"),
            _c("created_at", "TIMESTAMPTZ", "wall clock"),
            _c("updated_at", "TIMESTAMPTZ", "wall clock"),
            _c("resolved_at", "TIMESTAMPTZ", "wall clock"),
            _c("external_ref", "VARCHAR", "the GitHub issue URL, when mirrored"),
        ),
    ),
    Table(
        "monitoring_kpis",
        "computation of the loop's KPIs (history)",
        "monitoring_kpis",
        (
            _c("computed_at", "TIMESTAMPTZ", "wall clock", nullable=False),
            _c("mean_time_to_detect_days", "DOUBLE", "incident start to alert, days"),
            _c(
                "mean_time_to_detect_minutes",
                "DOUBLE",
                "incident's first bad row (seen by the intraday watch) to the alert's creation, minutes",
            ),
            _c("mean_time_to_acknowledge_hours", "DOUBLE", "alert to acknowledgement, hours"),
            _c("mean_time_to_resolve_days", "DOUBLE", "alert to resolution, days"),
            _c("alerts_per_model_week", "DOUBLE", "the noise budget"),
            _c("detected_alerts_per_model_week", "DOUBLE", "alerts that passed noise control per model-week"),
            _c("share_alerts_acknowledged", "DOUBLE", "acknowledged ÷ notified alerts"),
            _c("share_findings_with_backlog_item", "DOUBLE", "findings tracked by an item"),
            _c(
                "share_incidents_detected_by_monitoring_first",
                "DOUBLE",
                "incidents monitoring found before a person",
            ),
            _c("alerts", "BIGINT", "alerts"),
            _c("open_alerts", "BIGINT", "open alerts"),
            _c("incidents", "BIGINT", "incidents"),
            _c("open_incidents", "BIGINT", "open incidents"),
            _c("model_weeks", "BIGINT", "model-weeks covered"),
        ),
    ),
    Table(
        "alert_volume_weekly",
        "model × ISO week: the noise budget",
        "monitoring_kpis",
        (
            MODEL,
            _c("week", "DATE", "Monday of the week", nullable=False),
            _c("alerts", "BIGINT", "alerts"),
            _c("detected", "BIGINT", "alerts that passed noise control"),
            _c("notified", "BIGINT", "alerts with a message"),
            _c("critical", "BIGINT", "critical alerts"),
            _c("warning", "BIGINT", "warning alerts"),
            _c("info", "BIGINT", "info alerts"),
        ),
    ),
    Table(
        "schema_version",
        "warehouse schema version applied (the newest row is the current one)",
        "the warehouse, when it creates or upgrades its tables",
        (
            _c("version", "INTEGER", "schema version", nullable=False),
            _c("applied_at", "TIMESTAMPTZ", "wall clock"),
            _c("description", "VARCHAR", "what the version changed"),
        ),
    ),
)

TABLE: dict[str, Table] = {t.name: t for t in _TABLES}
PARTITIONED_TABLES = frozenset(t.name for t in _TABLES if t.partitioned)
# name -> {column: DuckDB DDL type}; the view older code and the warehouse use.
TABLES: dict[str, dict[str, str]] = {t.name: {c.name: c.ddl for c in t.columns} for t in _TABLES}


def columns_of(table: str, *, without: tuple[str, ...] = ()) -> list[str]:
    """The column names of a table in declaration order, optionally without some (e.g. the model-day keys
    a core function does not know)."""
    return [c for c in TABLE[table].names if c not in without]


PARTITION_KEYS = ("model_name", "partition_date")


def result_columns(table: str) -> list[str]:
    """The columns a core function returns for a partitioned table: everything but the model-day keys,
    which the asset adds when it writes."""
    return columns_of(table, without=PARTITION_KEYS)
