"""The Great Expectations suite built from a model's config, and the valid/quarantine split.

GX (Core 1.x, in-process on the pandas frame) is the one rule engine: each row-level expectation's
unexpected rows become quarantine rows with the expectation as the reason, so the rules in
`validation_results` and the reasons in `quarantined_predictions` can never disagree.
Whole-day problems (a missing required column, no rows, an unreadable file) are not row rules:
they make the day unusable and fail the blocking check.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring_pipelines.config import ModelConfig
from monitoring_pipelines.core.findings import CheckResult, Finding
from monitoring_pipelines.storage.sources import REQUIRED_COLUMNS

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

ROLES = ("champion", "shadow")
STATUSES = ("ok", "error")
FINITE = 1.7976931348623157e308
BASE_COLUMNS = [
    "prediction_id",
    "request_id",
    "model_version",
    "role",
    "ts",
    "score",
    "prediction",
    "latency_ms",
    "status",
]


@dataclass(frozen=True)
class Rule:
    """One expectation plus how to name it in reasons and results."""

    name: str
    column: str | None
    row_level: bool
    blocking: bool
    expectation: Any


@dataclass
class DayValidation:
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    results: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    read_rows: int = 0

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


def build_rules(model: ModelConfig, expected_rows: tuple[int, int] | None = None) -> list[Rule]:
    """The suite for a model: the contract's row rules plus the day's row-count bounds."""
    import great_expectations as gx

    E = gx.expectations
    ok = {"row_condition": 'status=="ok"', "condition_parser": "pandas"}
    rules: list[Rule] = []
    for col in ("prediction_id", "request_id", "model_version", "role", "ts"):
        rules.append(Rule(f"{col} not null", col, True, False, E.ExpectColumnValuesToNotBeNull(column=col)))
    rules += [
        Rule(
            "prediction_id unique",
            "prediction_id",
            True,
            False,
            E.ExpectColumnValuesToBeUnique(column="prediction_id"),
        ),
        Rule(
            "model_name matches",
            "model_name",
            True,
            False,
            E.ExpectColumnValuesToBeInSet(column="model_name", value_set=[model.name]),
        ),
        Rule(
            "role in set",
            "role",
            True,
            False,
            E.ExpectColumnValuesToBeInSet(column="role", value_set=list(ROLES)),
        ),
        Rule(
            "status in set",
            "status",
            True,
            False,
            E.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        ),
        Rule(
            "score not null for ok rows",
            "score",
            True,
            False,
            E.ExpectColumnValuesToNotBeNull(column="score", **ok),
        ),
        Rule(
            "score in [0, 1]",
            "score",
            True,
            False,
            E.ExpectColumnValuesToBeBetween(column="score", min_value=0.0, max_value=1.0, **ok),
        ),
        Rule(
            "prediction not null for ok rows",
            "prediction",
            True,
            False,
            E.ExpectColumnValuesToNotBeNull(column="prediction", **ok),
        ),
        Rule(
            "prediction in {0, 1}",
            "prediction",
            True,
            False,
            E.ExpectColumnValuesToBeInSet(column="prediction", value_set=[0, 1], **ok),
        ),
        Rule(
            "latency_ms >= 0",
            "latency_ms",
            True,
            False,
            E.ExpectColumnValuesToBeBetween(column="latency_ms", min_value=0.0, max_value=FINITE),
        ),
    ]
    for col in model.features.numeric:
        rules.append(
            Rule(
                f"{col} finite",
                col,
                True,
                False,
                E.ExpectColumnValuesToBeBetween(column=col, min_value=-FINITE, max_value=FINITE),
            )
        )
    lo, hi = expected_rows or model.expected_rows or (1, None)
    rules.append(
        Rule(
            "row count within bounds",
            None,
            False,
            False,
            E.ExpectTableRowCountToBeBetween(min_value=lo, max_value=hi),
        )
    )
    return rules


def _coerce(raw: pd.DataFrame, model: ModelConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Typed columns plus a per-row reason for values that are not of their declared type."""
    frame = raw.copy()
    reasons = pd.Series("", index=frame.index, dtype="object")
    if "status" not in frame.columns:
        frame["status"] = "ok"
    frame["status"] = frame["status"].astype("string").fillna("ok").str.lower()
    if "latency_ms" not in frame.columns:
        frame["latency_ms"] = np.nan
    for col in ("score", "prediction", "latency_ms", *model.features.numeric):
        original = frame[col]
        as_number = pd.to_numeric(original, errors="coerce")
        if not pd.api.types.is_numeric_dtype(original):
            bad = as_number.isna() & original.notna() & (original.astype("string").str.strip() != "")
            reasons = reasons.where(~bad, reasons + f"{col} is not a number; ")
        frame[col] = as_number.astype("float64")
    for col in ("prediction_id", "request_id", "model_name", "model_version", "role", *model.string_columns):
        frame[col] = frame[col].astype("string")
    frame["role"] = frame["role"].str.lower()
    return frame, reasons


def whole_day_problems(raw: pd.DataFrame, model: ModelConfig, files: list[str]) -> list[str]:
    where = ", ".join(files[:3]) + (f" (+{len(files) - 3} more)" if len(files) > 3 else "") or "<no files>"
    if raw.empty:
        return [f"no rows for {model.name} in {where}"]
    needed = [*REQUIRED_COLUMNS, "score", "prediction", *model.input_columns]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        return [f"missing required column(s) {missing} in {where}"]
    return []


def validate_day(
    raw: pd.DataFrame,
    model: ModelConfig,
    partition_date: dt.date,
    files: list[str],
    read_problems: list[str] | None = None,
) -> DayValidation:
    """Split a day's raw rows into valid snapshot rows and quarantined rows, with GX results."""
    problems = list(read_problems or [])
    if not problems:
        problems = whole_day_problems(raw, model, files)
    read_rows = len(raw)
    if problems:
        return DayValidation(
            valid=pd.DataFrame(),
            quarantined=pd.DataFrame(),
            results=_problem_results(model, partition_date, problems),
            problems=problems,
            read_rows=read_rows,
        )
    raw = raw.reset_index(drop=True)
    frame, type_reasons = _coerce(raw, model)
    rules = build_rules(model)
    results, row_reasons = _run_suite(frame, rules, model, partition_date)
    # Unique prediction_id: the first occurrence of an id is kept, later ones are quarantined.
    dup_rule = "prediction_id unique"
    first = ~frame["prediction_id"].duplicated(keep="first")
    row_reasons = row_reasons.where(
        ~(first & row_reasons.str.contains(dup_rule, regex=False)),
        row_reasons.str.replace(f"{dup_rule}; ", "", regex=False),
    )
    reasons = (type_reasons + row_reasons).str.strip().str.rstrip(";")
    bad = reasons != ""
    columns = [
        "prediction_id",
        "request_id",
        "model_version",
        "role",
        "ts",
        "score",
        "prediction",
        "latency_ms",
        "status",
        *model.input_columns,
    ]
    if "source_file" in frame.columns:
        columns.append("source_file")
    valid = frame.loc[~bad, columns].copy()
    valid["prediction"] = valid["prediction"].astype("Int64").astype("Int32")
    quarantined = frame.loc[bad, [c for c in columns if c not in model.input_columns]].copy()
    quarantined["reason"] = reasons[bad]
    raw_rows = raw.loc[bad].drop(columns=["source_file"], errors="ignore")
    quarantined["raw"] = (
        raw_rows.apply(lambda r: json.dumps(r.to_dict(), default=str), axis=1) if bad.any() else []
    )
    return DayValidation(
        valid=valid.reset_index(drop=True),
        quarantined=quarantined.reset_index(drop=True),
        results=results,
        problems=[],
        read_rows=read_rows,
    )


def _run_suite(
    frame: pd.DataFrame, rules: list[Rule], model: ModelConfig, partition_date: dt.date
) -> tuple[pd.DataFrame, pd.Series]:
    import great_expectations as gx

    context, batch_definition = _gx()
    suite = gx.ExpectationSuite(name=f"predictions_{model.name}")
    by_name = {rule.name: rule for rule in rules}
    for rule in rules:
        rule.expectation.meta = {"rule": rule.name}
        suite.add_expectation(rule.expectation)
    with _GX_LOCK:
        suite = context.suites.add_or_update(suite)
        gx_frame = frame.astype({c: "object" for c in frame.columns if str(frame[c].dtype) == "string"})
        batch = batch_definition.get_batch(batch_parameters={"dataframe": gx_frame})
        report = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    reasons = pd.Series("", index=frame.index, dtype="object")
    rows: list[dict[str, Any]] = []
    for result in report.results:
        rule = by_name[result.expectation_config.meta["rule"]]
        info = result.exception_info or {}
        raised = bool(info.get("raised_exception")) if isinstance(info, dict) else False
        if raised:  # GX does not raise on metric errors: surface them as a failed expectation
            success, unexpected, details = False, None, {"exception": info.get("exception_message")}
        else:
            success = bool(result.success)
            unexpected = result.result.get("unexpected_count")
            details = {
                k: result.result.get(k)
                for k in ("observed_value", "partial_unexpected_list")
                if result.result.get(k) is not None
            }
            if rule.row_level and not success:
                idx = result.result.get("unexpected_index_list") or []
                positions = [i if isinstance(i, (int, np.integer)) else i.get("index") for i in idx]
                hit = pd.Index(positions).intersection(frame.index)
                reasons.loc[hit] = reasons.loc[hit] + f"{rule.name}; "
        rows.append(
            {
                "model_name": model.name,
                "partition_date": partition_date,
                "expectation": rule.name,
                "column_name": rule.column,
                "success": success,
                "unexpected_count": None if unexpected is None else int(unexpected),
                "element_count": result.result.get("element_count", len(frame)),
                "unexpected_percent": result.result.get("unexpected_percent"),
                "blocking": rule.blocking,
                "details": json.dumps(details, default=str),
            }
        )
    return pd.DataFrame(rows), reasons


def _problem_results(model: ModelConfig, partition_date: dt.date, problems: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model_name": model.name,
                "partition_date": partition_date,
                "expectation": "day is usable",
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


def results_markdown(results: pd.DataFrame) -> str:
    if results.empty:
        return "no expectations evaluated"
    lines = ["| expectation | column | success | unexpected |", "|---|---|---|---|"]
    for r in results.itertuples():
        count = "" if pd.isna(r.unexpected_count) else int(r.unexpected_count)
        lines.append(f"| {r.expectation} | {r.column_name or ''} | {'✅' if r.success else '❌'} | {count} |")
    return "\n".join(lines)


QUARANTINE_CRITICAL_SHARE = 0.10  # above this share of a day's rows quarantined, the day's data is suspect


def validation_checks(outcome: DayValidation, model: ModelConfig) -> list[CheckResult]:
    """`snapshot_usable` (blocking: the day cannot be monitored) and `validation` (rows quarantined
    or expectations failed: a warning, critical when more than 10 % of the day is rejected)."""
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
                problem,
                {"problem": problem},
            )
            for problem in outcome.problems
        ],
        metadata={"read_rows": outcome.read_rows},
        description="; ".join(outcome.problems) or "the day's prediction log is readable and complete",
    )
    findings: list[Finding] = []
    if outcome.usable and outcome.read_rows:
        share = len(outcome.quarantined) / outcome.read_rows
        severity = "critical" if share > QUARANTINE_CRITICAL_SHARE else "warning"
        for r in outcome.results.itertuples():
            if r.success or r.blocking:
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
                        f" on {count} of {outcome.read_rows} rows (quarantined)"
                        if count
                        else f" ({r.details})"
                    ),
                    {
                        "expectation": r.expectation,
                        "column": r.column_name,
                        "unexpected_count": count,
                        "read_rows": outcome.read_rows,
                        "quarantined_share": round(share, 6),
                    },
                )
            )
    validation = CheckResult(
        check_name="validation",
        findings=findings,
        metadata={"validation_md": results_markdown(outcome.results)},
        description=f"{len(outcome.quarantined)} of {outcome.read_rows} rows quarantined",
    )
    return [usable, validation]
