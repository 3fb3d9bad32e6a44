"""The Great Expectations suite built from a model's config, and the valid/quarantine split.

Each rule is declared once, as a GX 1.x expectation (its meaning) together with the SQL predicate
that finds the rows breaking it. A model-day is checked in one vectorized DuckDB pass: the row rules
run as SQL over the day's raw rows, every breaking row is quarantined with the names of the rules it
broke, and `validation_results` counts come from the same flags, so the results and the quarantine
cannot disagree. GX itself validates the day's table-level expectations (row count) on the cleaned
batch, with result_format SUMMARY. `monitoring_pipelines_tests/validation/test_rules_match_gx.py`
runs GX's own row-level evaluation (result_format COMPLETE) on adversarial frames and checks that
the SQL flags exactly the rows GX flags, with the same counts: the SQL is GX's semantics, compiled
(`test_task_rules.py` does the same for regression and multiclass models, whose rules follow their
task: a finite predicted value; a declared class, probabilities in [0, 1] summing to 1).

Why not GX on every row: GX's pandas engine needs the whole day as a DataFrame and per-row index
lists to quarantine, minutes and gigabytes at a million rows. Whole-day problems (a missing required
column, no rows, an unreadable file) are not row rules: they make the day unusable and fail the
blocking check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from monitoring_pipelines.config import ModelConfig
from monitoring_pipelines.core.findings import CheckResult, CheckSpec, Finding
from monitoring_pipelines.schema import ERROR, OK, ROLES, STATUSES
from monitoring_pipelines.storage.sources import (
    BOOKKEEPING_COLUMNS,
    ORDER_COLUMN,
    OUTSIDE_WINDOW,
    READ_REASON_COLUMN,
    SCORES_MAP,
    TS_COLUMN,
    missing_required,
    required_columns,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

FINITE = 1.7976931348623157e308
PARTIAL_UNEXPECTED = 20  # failing values kept in `details`, as GX's partial_unexpected_list
QUARANTINE_CRITICAL_SHARE = 0.10  # above this share of a day's rows quarantined, the day's data is suspect
DAY_USABLE = "day is usable"
# validation_results row of neighbouring days' files left out of the day (a warning, not blocking)
NEIGHBOUR_FILES = "neighbour files usable"

CHECKS = (
    CheckSpec(
        "snapshot_usable",
        "critical",
        "Blocking: the day's log exists, is readable, has rows and every required column. "
        "When it fails, nothing downstream runs for the model-day.",
        blocking=True,
    ),
    CheckSpec(
        "validation",
        "warning",
        "Row-level expectations (GX semantics, one SQL pass): failing rows are quarantined with the "
        f"reason; warning when any row is rejected, critical above {QUARANTINE_CRITICAL_SHARE:.0%} of the day.",
    ),
)


@dataclass(frozen=True)
class Rule:
    """One expectation: its name in reasons and results, the GX expectation it is, and for row rules
    the SQL over the typed day that is TRUE on a breaking row.

    `condition` restricts the rows the rule looks at (GX's row_condition); `missing_is_unexpected` is
    True for not-null rules (their unexpected rows are the missing ones), otherwise nulls are skipped,
    as GX does. The GX object is built on first use: importing GX costs seconds, and a day's row rules
    run as SQL."""

    name: str
    column: str | None
    row_level: bool
    blocking: bool
    gx_class: str
    gx_kwargs: dict[str, Any] = field(default_factory=dict)
    unexpected: str = ""
    condition: str = ""
    missing_is_unexpected: bool = False
    # SQL of the values shown for a failing row of a rule without a column (default: the column)
    sample: str = ""

    @cached_property
    def expectation(self) -> Any:
        import great_expectations as gx

        return getattr(gx.expectations, self.gx_class)(**self.gx_kwargs)


@dataclass
class DayValidation:
    """What validating a model-day found. The rows themselves stay in the model-day's database
    (`storage.snapshot.Snapshot`); this is the small part: counts, results, problems."""

    results: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # files of neighbouring days left out, and why
    partition_date: dt.date | None = None
    read_rows: int = 0
    valid_rows: int = 0
    quarantined_rows: int = 0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.problems


_GX_LOCK = threading.Lock()
_GX_STATE: dict[str, Any] = {}


def _gx() -> tuple[Any, Any]:
    """One ephemeral GX context per process: building it costs ~0.3 s, validating a day far less."""
    with _GX_LOCK:
        if "batch_definition" not in _GX_STATE:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            asset = context.data_sources.add_pandas("monitoring_predictions").add_dataframe_asset("day")
            _GX_STATE["context"] = context
            _GX_STATE["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole_day")
        return _GX_STATE["context"], _GX_STATE["batch_definition"]


def _helper_start() -> None:
    """The GX helper yields the CPU to the run (its DuckDB threads) and loads GX in the time left over:
    it has until the day's rows are checked, seconds later."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    _gx()


def release_gx_helper() -> None:
    """End the GX helper process now. It holds nothing to clean up, so it leaves with os._exit: an orderly
    exit of a process with GX and pandas loaded would cost the caller most of a second at its own exit."""
    with _LOADER_LOCK:
        helper = _GX_STATE.pop("helper", None)
    if helper is not None:
        helper.submit(os._exit, 0)
        helper.shutdown(wait=True, cancel_futures=True)


_LOADER_LOCK = threading.Lock()  # guards starting a loader only; _GX_LOCK is held during the import


def expect_validations(count: int) -> None:
    """This process will validate `count` more batches: the GX helper exits right after the last one,
    so its memory is back before the day's metrics need it (a 10M-row day needs every hundred MB)."""
    _GX_STATE["left"] = count


def _validated_one() -> None:
    left = _GX_STATE.get("left")
    if left is None:
        return
    _GX_STATE["left"] = left - 1
    if left <= 1:
        threading.Thread(target=release_gx_helper, name="gx-release", daemon=True).start()


def preload_gx(helper_process: bool = False) -> None:
    """Get Great Expectations ready while the day is read and checked; its import costs seconds of Python.

    With `helper_process` (the Dagster runs ask for it on a machine with a second core) GX is imported
    and run in a spawned helper process, which loads it on the other core without taking this process's
    GIL; otherwise (the default, safe for scripts without a `__main__` guard) it is imported in a
    background thread, which overlaps with DuckDB's GIL-free work only. A CLI worker that validates many
    days uses the thread (one import per worker, many days per import)."""
    with _LOADER_LOCK:
        if "loader" in _GX_STATE or "helper" in _GX_STATE:
            return
        if (
            helper_process
            and (os.cpu_count() or 1) > 1
            and os.environ.get("MONITORING_GX_HELPER", "1") != "0"
        ):
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            helper = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_helper_start)
            helper.submit(int)  # start the process (and its GX import) now
            _GX_STATE["helper"] = helper
            return
        _GX_STATE["loader"] = loader = threading.Thread(target=_gx, name="gx-import", daemon=True)
    loader.start()


def run_table_expectations(
    specs: list[tuple[str, str, dict[str, Any]]], valid_rows: int, suite_name: str
) -> list[tuple[str, bool, dict[str, Any]]]:
    """GX validates table-level expectations (name, GX class, kwargs) on a batch of `valid_rows` rows
    (result_format SUMMARY): (name, success, details) per expectation. Runs in this process or in the
    helper; GX metric errors do not raise, so `exception_info` is turned into a failure."""
    import great_expectations as gx

    context, batch_definition = _gx()
    suite = gx.ExpectationSuite(name=suite_name)
    for name, gx_class, kwargs in specs:
        expectation = getattr(gx.expectations, gx_class)(**kwargs)
        expectation.meta = {"rule": name}
        suite.add_expectation(expectation)
    with _GX_LOCK:
        suite = context.suites.add_or_update(suite)
        batch = batch_definition.get_batch(
            batch_parameters={"dataframe": pd.DataFrame(index=pd.RangeIndex(valid_rows))}
        )
        report = batch.validate(suite, result_format={"result_format": "SUMMARY"})
    out = []
    for result in report.results:
        info = result.exception_info or {}
        raised = bool(info.get("raised_exception")) if isinstance(info, dict) else False
        if raised:
            out.append(
                (result.expectation_config.meta["rule"], False, {"exception": info.get("exception_message")})
            )
        else:
            observed = result.result.get("observed_value")
            details = {"observed_value": observed} if observed is not None else {}
            out.append((result.expectation_config.meta["rule"], bool(result.success), details))
    return out


def _q(name: str) -> str:
    return f'"{name}"'


def _sql_text(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def build_rules(model: ModelConfig, expected_rows: tuple[int, int] | None = None) -> list[Rule]:
    """The suite for a model: the contract's row rules plus the day's row-count bounds."""
    ok = {"row_condition": f'status=="{OK}"', "condition_parser": "pandas"}
    is_ok = f"status = '{OK}'"
    rules: list[Rule] = []
    for col in ("prediction_id", "request_id", "model_version", "role", "ts"):
        rules.append(
            Rule(
                f"{col} not null",
                col,
                True,
                False,
                "ExpectColumnValuesToNotBeNull",
                dict(column=col),
                unexpected=f"{_q(col)} IS NULL",
                missing_is_unexpected=True,
            )
        )
    rules += [
        Rule(
            "prediction_id unique",
            "prediction_id",
            True,
            False,
            "ExpectColumnValuesToBeUnique",
            dict(column="prediction_id"),
            unexpected="prediction_id IS NOT NULL AND __duplicates > 1",
        ),
        Rule(
            "model_name matches",
            "model_name",
            True,
            False,
            "ExpectColumnValuesToBeInSet",
            dict(column="model_name", value_set=[model.name]),
            unexpected=f"model_name IS NOT NULL AND model_name <> {_sql_text([model.name])}",
        ),
        Rule(
            "role in set",
            "role",
            True,
            False,
            "ExpectColumnValuesToBeInSet",
            dict(column="role", value_set=list(ROLES)),
            unexpected=f"role IS NOT NULL AND role NOT IN ({_sql_text(ROLES)})",
        ),
        Rule(
            "status in set",
            "status",
            True,
            False,
            "ExpectColumnValuesToBeInSet",
            dict(column="status", value_set=list(STATUSES)),
            unexpected=f"status IS NOT NULL AND status NOT IN ({_sql_text(STATUSES)})",
        ),
    ]
    if model.is_regression:
        rules += _regression_rules(ok, is_ok)
    elif model.is_multiclass:
        rules += _multiclass_rules(model, ok, is_ok)
    else:
        rules += _binary_rules(ok, is_ok)
    rules += [
        Rule(
            "latency_ms >= 0",
            "latency_ms",
            True,
            False,
            "ExpectColumnValuesToBeBetween",
            dict(column="latency_ms", min_value=0.0, max_value=FINITE),
            unexpected=f"latency_ms IS NOT NULL AND NOT (latency_ms >= 0 AND latency_ms <= {FINITE!r})",
        ),
    ]
    for col in model.features.numeric:
        rules.append(
            Rule(
                f"{col} finite",
                col,
                True,
                False,
                "ExpectColumnValuesToBeBetween",
                dict(column=col, min_value=-FINITE, max_value=FINITE),
                unexpected=f"{_q(col)} IS NOT NULL AND NOT ({_q(col)} >= {-FINITE!r} AND {_q(col)} <= {FINITE!r})",
            )
        )
    lo, hi = expected_rows or model.expected_rows or (1, None)
    rules.append(
        Rule(
            "row count within bounds",
            None,
            False,
            False,
            "ExpectTableRowCountToBeBetween",
            dict(min_value=lo, max_value=hi),
        )
    )
    return rules


def _score_not_null(ok: dict[str, str], is_ok: str) -> Rule:
    return Rule(
        "score not null for ok rows",
        "score",
        True,
        False,
        "ExpectColumnValuesToNotBeNull",
        dict(column="score", **ok),
        unexpected="score IS NULL",
        condition=is_ok,
        missing_is_unexpected=True,
    )


def _binary_rules(ok: dict[str, str], is_ok: str) -> list[Rule]:
    """score is the positive class's probability, prediction the 0/1 decision."""
    return [
        _score_not_null(ok, is_ok),
        Rule(
            "score in [0, 1]",
            "score",
            True,
            False,
            "ExpectColumnValuesToBeBetween",
            dict(column="score", min_value=0.0, max_value=1.0, **ok),
            unexpected="score IS NOT NULL AND NOT (score >= 0 AND score <= 1)",
            condition=is_ok,
        ),
        Rule(
            "prediction not null for ok rows",
            "prediction",
            True,
            False,
            "ExpectColumnValuesToNotBeNull",
            dict(column="prediction", **ok),
            unexpected="prediction IS NULL",
            condition=is_ok,
            missing_is_unexpected=True,
        ),
        Rule(
            "prediction in {0, 1}",
            "prediction",
            True,
            False,
            "ExpectColumnValuesToBeInSet",
            dict(column="prediction", value_set=[0, 1], **ok),
            unexpected="prediction IS NOT NULL AND prediction NOT IN (0, 1)",
            condition=is_ok,
        ),
    ]


def _regression_rules(ok: dict[str, str], is_ok: str) -> list[Rule]:
    """score is the predicted value: any finite number. A logged decision (`prediction`) is optional and
    has no rule beyond being a number."""
    return [
        _score_not_null(ok, is_ok),
        Rule(
            "score finite",
            "score",
            True,
            False,
            "ExpectColumnValuesToBeBetween",
            dict(column="score", min_value=-FINITE, max_value=FINITE, **ok),
            unexpected=f"score IS NOT NULL AND NOT (score >= {-FINITE!r} AND score <= {FINITE!r})",
            condition=is_ok,
        ),
    ]


PROBABILITY_SUM_TOLERANCE = 0.01  # a row's class probabilities must sum to 1 within this (rounding in logs)


def probability_sum_sql(model: ModelConfig) -> str:
    """SQL (DuckDB and any SQL engine GX runs on) TRUE when a row's class probabilities do not sum to 1
    within the tolerance, a probability being missing included (NULL sum)."""
    total = " + ".join(_q(c) for c in model.probability_columns)
    return f"NOT coalesce(abs({total} - 1) <= {PROBABILITY_SUM_TOLERANCE!r}, false)"


def _multiclass_rules(model: ModelConfig, ok: dict[str, str], is_ok: str) -> list[Rule]:
    """prediction is the class (checked as `predicted_class`, the text as logged), each score__<class> a
    probability and the row's probabilities a distribution. `score` is derived (the predicted class's
    probability), so it has no rule of its own."""
    classes = list(model.classes)
    rules = [
        Rule(
            "prediction not null for ok rows",
            "predicted_class",
            True,
            False,
            "ExpectColumnValuesToNotBeNull",
            dict(column="predicted_class", **ok),
            unexpected="predicted_class IS NULL",
            condition=is_ok,
            missing_is_unexpected=True,
        ),
        Rule(
            "prediction in classes",
            "predicted_class",
            True,
            False,
            "ExpectColumnValuesToBeInSet",
            dict(column="predicted_class", value_set=classes, **ok),
            unexpected=f"predicted_class IS NOT NULL AND predicted_class NOT IN ({_sql_text(classes)})",
            condition=is_ok,
        ),
    ]
    for col in model.probability_columns:
        rules.append(
            Rule(
                f"{col} in [0, 1]",
                col,
                True,
                False,
                "ExpectColumnValuesToBeBetween",
                dict(column=col, min_value=0.0, max_value=1.0, **ok),
                unexpected=f"{_q(col)} IS NOT NULL AND NOT ({_q(col)} >= 0 AND {_q(col)} <= 1)",
                condition=is_ok,
            )
        )
    breaks = probability_sum_sql(model)
    rules.append(
        Rule(
            "scores sum to 1",
            None,
            True,
            False,
            "UnexpectedRowsExpectation",
            dict(
                unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {is_ok} AND {breaks}",
                description=f"the class probabilities of an ok row sum to 1 within {PROBABILITY_SUM_TOLERANCE}",
            ),
            unexpected=breaks,
            condition=is_ok,
            missing_is_unexpected=True,
            sample="[" + ", ".join(_q(c) for c in model.probability_columns) + "]",
        )
    )
    return rules


# --------------------------------------------------------------------------- the SQL pass

NUMERIC_TYPES = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "DECIMAL",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "BOOLEAN",
)


def whole_day_problems(columns: list[str], model: ModelConfig, files: list[str]) -> list[str]:
    """A missing required column makes the whole day unusable (the file is named). A file source checks
    each file itself (storage.sources.load_files); this catches a table or frame without one."""
    where = _where(files)
    missing = missing_required(required_columns(model), columns)
    if missing:
        return [f"missing required column(s) {missing} in {where}"]
    return []


def _where(files: list[str]) -> str:
    return ", ".join(files[:3]) + (f" (+{len(files) - 3} more)" if len(files) > 3 else "") or "<no files>"


def _numeric(column: str, kind: str, present: bool) -> tuple[str, str | None]:
    """(typed value, type-problem predicate) of a column that must be a number. NaN counts as missing,
    as in pandas; text that does not parse as a finite-or-infinite number is 'not a number'."""
    if not present:
        return "CAST(NULL AS DOUBLE)", None
    return _as_number(_q(column), kind)


def _as_number(c: str, kind: str) -> tuple[str, str | None]:
    """_numeric of any SQL expression `c` of DuckDB type `kind`."""
    if kind.split("(")[0] in NUMERIC_TYPES:
        return f"CASE WHEN isnan(CAST({c} AS DOUBLE)) THEN NULL ELSE CAST({c} AS DOUBLE) END", None
    text = f"trim(CAST({c} AS VARCHAR))"
    parsed = f"TRY_CAST({text} AS DOUBLE)"
    value = f"CASE WHEN isnan({parsed}) THEN NULL ELSE {parsed} END"
    bad = f"{c} IS NOT NULL AND {text} <> '' AND ({parsed} IS NULL OR isnan({parsed}))"
    return value, bad


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _probability_sources(model: ModelConfig, types: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Per `score__<class>` column: (SQL expression, its DuckDB type) of the raw probability. From the
    columns when every one is there, else from the `scores` map: a MAP or STRUCT (Parquet) keyed by class,
    or a JSON object as text (CSV, a database's JSON column). A class the map lacks is NULL (missing:
    the row's probabilities then do not sum to 1, see probability_sum_sql)."""
    columns = model.probability_columns
    if SCORES_MAP not in types:
        return {c: (_q(c), str(types[c]).upper()) if c in types else ("NULL", "DOUBLE") for c in columns}
    from_map = _map_sources(model, types)
    # A day read over several files may have both forms (read by name, one file with the columns, one with
    # the map): each row takes its value from the form it has.
    out: dict[str, tuple[str, str]] = {}
    for col in columns:
        if col not in types:
            out[col] = from_map[col]
            continue
        own, own_kind = _q(col), str(types[col]).upper()
        expr, kind = from_map[col]
        if expr == "NULL":
            out[col] = (own, own_kind)
        elif own_kind.split("(")[0] in NUMERIC_TYPES and kind.split("(")[0] in NUMERIC_TYPES:
            out[col] = (f"coalesce(CAST({own} AS DOUBLE), CAST({expr} AS DOUBLE))", "DOUBLE")
        else:
            out[col] = (f"coalesce(CAST({own} AS VARCHAR), CAST({expr} AS VARCHAR))", "VARCHAR")
    return out


def _map_sources(model: ModelConfig, types: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Per `score__<class>` column: the expression reading it from the `scores` map and its type."""
    columns = model.probability_columns
    kind = types[SCORES_MAP]
    name = str(kind).upper()
    scores = _q(SCORES_MAP)
    out: dict[str, tuple[str, str]] = {}
    if name.startswith("MAP("):
        (_, key), (_, value) = kind.children
        if str(key).upper() != "VARCHAR":
            scores = f"CAST({scores} AS MAP(VARCHAR, {value}))"
        for cls, col in zip(model.classes, columns, strict=True):
            out[col] = (f"{scores}[{_lit(cls)}]", str(value).upper())
    elif name.startswith("STRUCT("):
        fields = {str(n): str(t).upper() for n, t in kind.children}
        for cls, col in zip(model.classes, columns, strict=True):
            out[col] = (
                (f"struct_extract({scores}, {_lit(cls)})", fields[cls])
                if cls in fields
                else ("NULL", "DOUBLE")
            )
    else:  # JSON text; text that is not JSON gives no probabilities
        text = f"CAST({scores} AS VARCHAR)"
        obj = f"CASE WHEN json_valid({text}) THEN {text} END"
        # one extraction of every class (a list; DuckDB computes the shared expression once per row)
        paths = "[" + ", ".join(_lit('$."' + cls + '"') for cls in model.classes) + "]"
        for i, col in enumerate(columns):
            out[col] = (f"json_extract_string({obj}, {paths})[{i + 1}]", "VARCHAR")
    return out


def check_rows(
    con: duckdb.DuckDBPyConnection, raw: str, model: ModelConfig, rules: list[Rule], table: str = "checked"
) -> list[tuple[str, str]]:
    """Create `table`: every raw row typed, with the row rules' flags packed in bit masks (`rule_flag(i)`
    reads rule i: one BIGINT per 63 rules instead of a column per rule, a wide day's snapshot stays
    small), one flag per type problem (`__type_<column>`), the quarantine `reason` (NULL for a valid
    row) and, for a rejected row only, the row as read as JSON (`raw`). One pass over the raw rows, plus
    a narrow one (ids) for duplicates and, when rows were rejected, one that picks their original values."""
    rel = con.sql(f"SELECT * FROM {raw} LIMIT 0")
    raw_types = {n: str(t).upper() for n, t in zip(rel.columns, rel.types, strict=True)}
    duck_types = dict(zip(rel.columns, rel.types, strict=True))
    present = set(raw_types)
    cols: list[str] = [ORDER_COLUMN]  # the file a row came from is __order's high bits (storage.sources)
    for name in ("prediction_id", "request_id", "model_name", "model_version"):
        cols.append(f"CAST({_q(name)} AS VARCHAR) AS {name}")
    cols.append("lower(CAST(role AS VARCHAR)) AS role")
    cols.append(f"{TS_COLUMN} AS ts")
    read_reason = READ_REASON_COLUMN in present  # a reason the source found (storage.sources.OUTSIDE_WINDOW)
    if read_reason:
        cols.append(READ_REASON_COLUMN)
    # Stored, not derived in the day view: per-day queries of a multi-day (reference) snapshot then skip
    # row groups by their min/max date instead of recomputing every row's date on every query.
    cols.append(f"CAST(timezone('UTC', {TS_COLUMN}) AS DATE) AS partition_date")
    cols.append(
        f"coalesce(lower(CAST(status AS VARCHAR)), '{OK}') AS status"
        if "status" in present
        else f"'{OK}' AS status"
    )
    type_checks: list[tuple[str, str]] = []
    numeric = ["latency_ms", *model.features.numeric]
    derived = ""  # multiclass: the typed rows' score, derived from their class and probabilities
    if model.is_multiclass:
        # prediction is the class as logged (kept as predicted_class) and becomes its index in `classes`
        # (NULL for a class not declared: `prediction in classes` quarantines the row)
        logged = (
            f"CAST({_q('prediction')} AS VARCHAR)" if "prediction" in present else "CAST(NULL AS VARCHAR)"
        )
        index = " ".join(f"WHEN {_lit(c)} THEN {float(i)!r}" for i, c in enumerate(model.classes))
        cols.append(f"{logged} AS predicted_class")
        cols.append(f"CAST(CASE {logged} {index} END AS DOUBLE) AS prediction")
        for col, (expr, kind) in _probability_sources(model, duck_types).items():
            value, bad = ("CAST(NULL AS DOUBLE)", None) if expr == "NULL" else _as_number(expr, kind)
            cols.append(f"{value} AS {_q(col)}")
            if bad:
                type_checks.append((col, bad))
                cols.append(f"({bad}) AS {_q('__type_' + col)}")
        top = " ".join(f"WHEN {float(i)!r} THEN {_q(c)}" for i, c in enumerate(model.probability_columns))
        derived = f", CASE prediction {top} END AS score"
    else:
        numeric = ["score", "prediction", *numeric]
    for name in numeric:
        value, bad = _numeric(name, raw_types.get(name, ""), name in present)
        cols.append(f"{value} AS {_q(name)}")
        if bad:
            type_checks.append((name, bad))
            cols.append(f"({bad}) AS {_q('__type_' + name)}")
    for name in model.string_columns:
        cols.append(f"CAST({_q(name)} AS VARCHAR) AS {_q(name)}")

    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __duplicates AS SELECT CAST(prediction_id AS VARCHAR) AS prediction_id, "
        f"count(*) AS __duplicates, min({ORDER_COLUMN}) AS __first_order FROM {raw} "
        "WHERE prediction_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
    )
    row_rules = [r for r in rules if r.row_level]
    flags = []
    for i, rule in enumerate(row_rules):
        predicate = f"({rule.condition}) AND ({rule.unexpected})" if rule.condition else rule.unexpected
        flags.append(f"coalesce({predicate}, false) AS __rule_{i}")
    reasons = [READ_REASON_COLUMN] if read_reason else []
    reasons += [f"CASE WHEN {_q('__type_' + n)} THEN '{n}{NOT_A_NUMBER}' END" for n, _ in type_checks]
    for i, rule in enumerate(row_rules):
        if rule.name == "prediction_id unique":
            # The first occurrence of an id is kept; later ones are quarantined.
            reasons.append(f"CASE WHEN __rule_{i} AND {ORDER_COLUMN} > __first_order THEN '{rule.name}' END")
        else:
            reasons.append(f"CASE WHEN __rule_{i} THEN '{rule.name.replace(chr(39), chr(39) * 2)}' END")
    # The reason text is built only for rows some rule flagged: joining dozens of NULLs into an empty
    # string on every valid row was most of the cost of checking a day.
    flagged_by = [f"__rule_{i}" for i in range(len(row_rules))] + [_q("__type_" + n) for n, _ in type_checks]
    flagged_by += [f"{READ_REASON_COLUMN} IS NOT NULL"] if read_reason else []
    any_flag = " OR ".join(flagged_by) or "false"
    helpers = ["__first_order", *(f"__rule_{i}" for i in range(len(row_rules)))]
    helpers += [READ_REASON_COLUMN] if read_reason else []
    typed = f"SELECT {', '.join(cols)} FROM {raw}"
    if derived:
        typed = f"SELECT *{derived} FROM ({typed})"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table} AS
        WITH typed AS ({typed}),
        flagged AS (
            SELECT t.*, coalesce(d.__duplicates, 1) AS __duplicates, d.__first_order, {", ".join(flags)}
            FROM typed t LEFT JOIN __duplicates d USING (prediction_id)
        )
        SELECT * EXCLUDE ({", ".join(helpers)}),
               {_packed_flags(len(row_rules))}
               CASE WHEN {any_flag} THEN nullif(concat_ws('; ', {", ".join(reasons) or "NULL"}), '') END AS reason,
               CAST(NULL AS VARCHAR) AS raw
        FROM flagged
        """
    )
    rejected = con.execute(f"SELECT count(*) FROM {table} WHERE reason IS NOT NULL").fetchall()[0][0]
    if rejected:
        originals = [c for c in raw_types if c not in BOOKKEEPING_COLUMNS]
        packed = f"struct_pack({', '.join(f'{_ident(c)} := {_ident(c)}' for c in originals)})"
        con.execute(
            f"""
            UPDATE {table} SET raw = j.raw
            FROM (
                SELECT {ORDER_COLUMN} AS o, CAST(to_json({packed}) AS VARCHAR) AS raw FROM {raw}
                WHERE {ORDER_COLUMN} IN (SELECT {ORDER_COLUMN} FROM {table} WHERE reason IS NOT NULL)
            ) j
            WHERE {table}.{ORDER_COLUMN} = j.o
            """
        )
    return type_checks


NOT_A_NUMBER = " is not a number"  # quarantine reason suffix of a numeric column's unparsable text
FLAG_BITS = 63  # rule flags per BIGINT mask (the sign bit is left alone)


def _packed_flags(n_rules: int) -> str:
    """`__flags_<k>` columns: bit j of mask k is rule k*FLAG_BITS + j (trailing comma included)."""
    out = []
    for k in range(0, n_rules, FLAG_BITS):
        bits = " | ".join(
            f"(CAST(__rule_{i} AS BIGINT) << {i - k})" for i in range(k, min(k + FLAG_BITS, n_rules))
        )
        out.append(f"({bits}) AS __flags_{k // FLAG_BITS}, ")
    return "".join(out)


def rule_flag(i: int) -> str:
    """SQL: did row rule i flag the row (see check_rows)."""
    return f"((__flags_{i // FLAG_BITS} >> {i % FLAG_BITS}) & 1 = 1)"


def rule_results(
    con: duckdb.DuckDBPyConnection, table: str, rules: list[Rule], model: ModelConfig, partition_date: dt.date
) -> pd.DataFrame:
    """validation_results rows of the row rules, from the flags of `table` (GX's counting conventions:
    element_count = rows the rule looks at; unexpected_percent over the non-missing ones, except for
    not-null rules where missing values are the unexpected ones)."""
    row_rules = [r for r in rules if r.row_level]
    # One hash aggregate over the few distinct patterns of (conditions, nulls, flags); the counts of every
    # rule are sums over those patterns.
    conditions = sorted({r.condition for r in row_rules if r.condition})
    columns = sorted({r.column for r in row_rules if r.column})
    keys = [f"coalesce({c}, false) AS c{i}" for i, c in enumerate(conditions)]
    keys += [f"{_q(c)} IS NULL AS n{i}" for i, c in enumerate(columns)]
    keys += [f"__flags_{k} AS f{k}" for k in range((len(row_rules) + FLAG_BITS - 1) // FLAG_BITS)]
    patterns = con.execute(f"SELECT {', '.join(keys)}, count(*) AS rows FROM {table} GROUP BY ALL").df()
    rows = []
    for i, rule in enumerate(row_rules):
        looked_at = (
            patterns[f"c{conditions.index(rule.condition)}"].astype(bool)
            if rule.condition
            else pd.Series(True, index=patterns.index)
        )
        missing_rows = (
            patterns[f"n{columns.index(rule.column)}"].astype(bool)
            if rule.column
            else pd.Series(False, index=patterns.index)
        )
        element = int(patterns.loc[looked_at, "rows"].sum())
        missing = int(patterns.loc[looked_at & missing_rows, "rows"].sum())
        flagged = (patterns[f"f{i // FLAG_BITS}"].to_numpy(dtype=np.int64) >> (i % FLAG_BITS)) & 1
        unexpected = int(patterns.loc[flagged == 1, "rows"].sum())
        denominator = element if rule.missing_is_unexpected else element - missing
        percent = 100.0 * unexpected / denominator if denominator else None
        details: dict[str, Any] = {}
        if unexpected:
            sample = con.execute(
                f"SELECT {rule.sample or _q(str(rule.column))} FROM {table} WHERE {rule_flag(i)} ORDER BY {ORDER_COLUMN} "
                f"LIMIT {PARTIAL_UNEXPECTED}"
            ).fetchall()
            details["partial_unexpected_list"] = [_jsonable(v[0]) for v in sample]
        rows.append(
            {
                "model_name": model.name,
                "partition_date": partition_date,
                "expectation": rule.name,
                "column_name": rule.column,
                "success": unexpected == 0,
                "unexpected_count": unexpected,
                "element_count": element,
                "unexpected_percent": percent,
                "blocking": rule.blocking,
                "details": json.dumps(details, default=str),
            }
        )
    return pd.DataFrame(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def table_results(
    rules: list[Rule], valid_rows: int, model: ModelConfig, partition_date: dt.date
) -> pd.DataFrame:
    """GX validates the table-level expectations on the cleaned batch (result_format SUMMARY). The
    batch holds the columns those expectations read; the row count reads none, so GX gets the day's
    valid row count without a copy of its values."""
    table_rules = [r for r in rules if not r.row_level]
    if not table_rules:
        return pd.DataFrame()
    specs = [(r.name, r.gx_class, r.gx_kwargs) for r in table_rules]
    suite_name = f"predictions_{model.name}_table"
    helper = _GX_STATE.get("helper")
    if helper is not None:
        try:
            results = helper.submit(run_table_expectations, specs, valid_rows, suite_name).result()
            _validated_one()
        except Exception:  # noqa: BLE001 - a broken helper must not lose the day's validation
            _GX_STATE.pop("helper", None)
            results = run_table_expectations(specs, valid_rows, suite_name)
    else:
        results = run_table_expectations(specs, valid_rows, suite_name)
    by_name = {r.name: r for r in table_rules}
    return pd.DataFrame(
        [
            {
                "model_name": model.name,
                "partition_date": partition_date,
                "expectation": name,
                "column_name": by_name[name].column,
                "success": success,
                "unexpected_count": None,
                "element_count": valid_rows,
                "unexpected_percent": None,
                "blocking": by_name[name].blocking,
                "details": json.dumps(details, default=str),
            }
            for name, success, details in results
        ]
    )


def problem_results(model: ModelConfig, partition_date: dt.date, problems: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model_name": model.name,
                "partition_date": partition_date,
                "expectation": DAY_USABLE,
                "column_name": None,
                "success": False,
                "unexpected_count": None,
                "element_count": 0,
                "unexpected_percent": None,
                "blocking": True,
                "details": json.dumps({"problem": p}),
            }
            for p in problems
        ]
    )


def warning_results(model: ModelConfig, partition_date: dt.date, warnings: list[str]) -> pd.DataFrame:
    """The validation_results row of the neighbouring days' files left out of the day (none without)."""
    if not warnings:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "model_name": model.name,
                "partition_date": partition_date,
                "expectation": NEIGHBOUR_FILES,
                "column_name": None,
                "success": False,
                "unexpected_count": len(warnings),
                "element_count": None,
                "unexpected_percent": None,
                "blocking": False,
                "details": json.dumps({"skipped": warnings}),
            }
        ]
    )


def validate(
    con: duckdb.DuckDBPyConnection,
    raw: str,
    columns: list[str],
    model: ModelConfig,
    partition_date: dt.date,
    files: list[str],
    read_problems: list[str] | None = None,
    table: str = "checked",
    warnings: list[str] | None = None,
) -> DayValidation:
    """Validate the raw rows of `raw` (a relation of `con`) into `table` (see check_rows) and return the
    results. A day with a read problem, a missing column or no rows is unusable: `table` is then empty.
    `warnings`: files of neighbouring days the source left out (a validation_results row, a warning)."""
    warnings = list(warnings or [])
    skipped = warning_results(model, partition_date, warnings)
    problems = list(read_problems or []) or whole_day_problems(columns, model, files)
    if not problems:
        rules = build_rules(model)
        preload_gx()  # the table-level expectations need GX at the end of this day's checks
        check_rows(con, raw, model, rules, table)
        read_rows = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        if read_rows == 0:
            problems = [f"no rows for {model.name} in {_where(files)}"]
    if problems:
        results = pd.concat(
            [frame for frame in (problem_results(model, partition_date, problems), skipped) if len(frame)],
            ignore_index=True,
        )
        return DayValidation(
            results=results, problems=problems, warnings=warnings, partition_date=partition_date
        )
    quarantined = int(con.execute(f"SELECT count(*) FROM {table} WHERE reason IS NOT NULL").fetchall()[0][0])
    by_reason: dict[str, int] = {}
    if quarantined:
        pairs = con.execute(
            f"SELECT trim(part), count(*) FROM (SELECT unnest(string_split(reason, ';')) AS part FROM {table} "
            "WHERE reason IS NOT NULL) GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        by_reason = {str(k): int(v) for k, v in pairs}
    valid = read_rows - quarantined
    results = pd.concat(
        [
            frame
            for frame in (
                rule_results(con, table, rules, model, partition_date),
                table_results(rules, valid, model, partition_date),
                skipped,
            )
            if len(frame)
        ],
        ignore_index=True,
    )
    return DayValidation(
        results=results,
        warnings=warnings,
        partition_date=partition_date,
        read_rows=read_rows,
        valid_rows=valid,
        quarantined_rows=quarantined,
        quarantine_by_reason=by_reason,
    )


def results_markdown(results: pd.DataFrame) -> str:
    if results.empty:
        return "no expectations evaluated"
    lines = ["| expectation | column | success | unexpected |", "|---|---|---|---|"]
    for r in results.itertuples():
        count = "" if pd.isna(r.unexpected_count) else int(r.unexpected_count)
        lines.append(f"| {r.expectation} | {r.column_name or ''} | {'✅' if r.success else '❌'} | {count} |")
    return "\n".join(lines)


def validation_checks(validation: DayValidation, model: ModelConfig) -> list[CheckResult]:
    """`snapshot_usable` (blocking: the day cannot be monitored) and `validation` (rows quarantined
    or expectations failed: a warning, critical when more than 10 % of the day is rejected)."""
    day = f" {validation.partition_date}" if validation.partition_date else ""
    # One finding for all of the day's problems, each naming its file: one root alert. It has no value
    # and no threshold (none applies), so alerts show its message, which says what to fix.
    problems = validation.problems
    usable = CheckResult(
        check_name="snapshot_usable",
        findings=[
            Finding(
                "snapshot_usable",
                "critical",
                "day_usable",
                "model",
                None,
                None,
                f"{model.name}{day} is not monitored, its prediction log is unusable: {'; '.join(problems)}",
                {"problems": problems},
            )
        ]
        if problems
        else [],
        metadata={"read_rows": validation.read_rows},
        description="; ".join(problems) or "the day's prediction log is readable and complete",
    )
    findings: list[Finding] = []
    if validation.usable and validation.read_rows:
        share = validation.quarantined_rows / validation.read_rows
        severity = "critical" if share > QUARANTINE_CRITICAL_SHARE else "warning"
        for r in validation.results.itertuples():
            if r.success or r.blocking or r.expectation == NEIGHBOUR_FILES:
                continue
            count = None if pd.isna(r.unexpected_count) else int(r.unexpected_count)
            findings.append(
                Finding(
                    "validation",
                    severity if count else "warning",
                    "unexpected_count",
                    r.expectation,
                    None if count is None else float(count),
                    0.0,
                    f"{model.name}: expectation '{r.expectation}' failed"
                    + (
                        f" on {count} of {validation.read_rows} rows (quarantined)"
                        if count
                        else f" ({r.details})"
                    ),
                    {
                        "expectation": r.expectation,
                        "column": r.column_name,
                        "unexpected_count": count,
                        "read_rows": validation.read_rows,
                        "quarantined_share": round(share, 6),
                    },
                )
            )
        # A value that is not a number, or a ts outside its folder's lateness window, is a quarantine
        # reason without a rule (docs/data-contract.md): it gets a finding of its own, or such rows would
        # be quarantined unreported.
        for reason, count in validation.quarantine_by_reason.items():
            if not (reason.endswith(NOT_A_NUMBER) or reason == OUTSIDE_WINDOW):
                continue
            findings.append(
                Finding(
                    "validation",
                    severity,
                    "unexpected_count",
                    reason,
                    float(count),
                    0.0,
                    f"{model.name}: {reason} on {count} of {validation.read_rows} rows (quarantined)",
                    {
                        "reason": reason,
                        "unexpected_count": count,
                        "read_rows": validation.read_rows,
                        "quarantined_share": round(share, 6),
                    },
                )
            )
    if validation.usable and validation.warnings:
        # A file of a neighbouring day that could not be used was left out of this day: a warning, as the
        # day's late or early rows in it are missing; its own day is blocked by it. (On a blocked day the
        # day's own problem is the one alert.)
        findings.append(
            Finding(
                "validation",
                "warning",
                "skipped_files",
                NEIGHBOUR_FILES,
                float(len(validation.warnings)),
                0.0,
                f"{model.name}{day}: {len(validation.warnings)} file(s) of neighbouring days left out: "
                + "; ".join(validation.warnings),
                {"skipped": validation.warnings},
            )
        )
    result = CheckResult(
        check_name="validation",
        findings=findings,
        metadata={"validation_md": results_markdown(validation.results)},
        description=f"{validation.quarantined_rows} of {validation.read_rows} rows quarantined",
    )
    return [usable, result]


__all__ = [
    "CHECKS",
    "DAY_USABLE",
    "NEIGHBOUR_FILES",
    "DayValidation",
    "ERROR",
    "Rule",
    "build_rules",
    "check_rows",
    "problem_results",
    "results_markdown",
    "validate",
    "validation_checks",
]
