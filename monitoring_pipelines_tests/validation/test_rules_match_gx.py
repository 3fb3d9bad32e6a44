"""The row rules are GX expectations compiled to SQL: prove the SQL flags exactly what GX flags.

`validation/suite.py` declares every row rule as a Great Expectations 1.x expectation and runs it as a
SQL predicate over the typed day (table `checked`, rule i's flag read by `suite.rule_flag(i)`). Here GX itself
(ephemeral context, pandas datasource, result_format COMPLETE) evaluates each declared expectation on
the same typed values, on frames built to break every rule in every way we could think of, and:

(a) the rows GX lists in `unexpected_index_list` are exactly the rows whose SQL flag is true (the frame
    GX sees is indexed by `__order`, the row's position in the validated frame);
(b) `unexpected_count`, `element_count` and `unexpected_percent` in `DayValidation.results` are GX's;
(c) the quarantine agrees with the results: the rows quarantined with a rule's name in their reason
    are the rule's unexpected rows, except `prediction_id unique`, whose first occurrence stays valid.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines.validation import suite
from monitoring_pipelines.validation.suite import build_rules
from monitoring_pipelines_tests.conftest import synthetic_day

DAY = dt.date(2026, 6, 10)
UNIQUE = "prediction_id unique"
TAG = "row_tag"  # an extra raw column: the row's position, carried into the quarantine's raw JSON

ROW_RULES = [
    "prediction_id not null",
    "request_id not null",
    "model_version not null",
    "role not null",
    "ts not null",
    UNIQUE,
    "model_name matches",
    "role in set",
    "status in set",
    "score not null for ok rows",
    "score in [0, 1]",
    "prediction not null for ok rows",
    "prediction in {0, 1}",
    "latency_ms >= 0",
    "income finite",
    "debt_ratio finite",
    "utilization finite",
    "age finite",
    "num_accounts finite",
]

# (row, {column: raw value}): every row rule broken, alone and together, on ok and error rows.
EDITS: list[dict[str, Any]] = [
    {"prediction_id": None},  # 0
    {"request_id": None},
    {"model_version": None},
    {"role": None},
    {"ts": None},
    {"model_name": None},  # 5: not a row rule of its own; GX's in-set skips nulls
    {"status": None},  # null status is `ok`
    {"score": None},
    {"prediction": None},
    {"score": np.nan},
    {"prediction": np.nan},  # 10
    {"latency_ms": np.nan},
    {"income": np.nan},
    {"score": np.inf},
    {"score": -np.inf},
    {"income": np.inf},  # 15
    {"income": -np.inf},
    {"latency_ms": np.inf},
    {"age": -np.inf},
    {"score": "abc"},
    {"prediction": "yes"},  # 20
    {"latency_ms": "fast"},
    {"income": "lots"},
    {"score": " 0.25 "},
    {"income": "nan"},
    {"score": 1.5},  # 25
    {"score": -0.1},
    {"status": "error", "score": 1.5, "prediction": 2},
    {"status": "error", "score": -0.1, "prediction": 0.5},
    {"prediction": 2},
    {"prediction": 0.5},  # 30
    {"status": "error", "score": None, "prediction": None},
    {"role": "canary"},
    {"role": "CHAMPION"},
    {"role": "Shadow"},
    {"role": "SHADOW "},  # 35
    {"status": "ERROR", "score": None, "prediction": None},
    {"status": "weird"},
    {"status": "OK"},
    {"status": "WEIRD", "score": 5.0, "prediction": 7},
    {"model_name": "other_model"},  # 40
    {"model_name": "CREDIT_DEFAULT"},
    {},  # 42: its id is duplicated by 43
    {"prediction_id": "dup-pair"},
    {"prediction_id": "dup-triple"},
    {"prediction_id": "dup-triple"},  # 45
    {"prediction_id": "dup-triple"},
    {"prediction_id": None},
    {"prediction_id": None},
    {"latency_ms": -1.0},
    {"latency_ms": 0.0, "score": 0.0, "prediction": -0.0},  # 50: boundaries are valid
    {"status": "error", "latency_ms": -5.0, "score": None, "prediction": None},
    {"status": ""},
    {"ts": "not a time"},
    {"score": ""},
    {"score": "1", "prediction": "1"},  # 55
    {"latency_ms": "1e3", "score": 1.0},
    {"role": "x", "score": 7.0, "income": "zz", "prediction_id": "dup-of-9"},
    {"debt_ratio": np.nan, "utilization": np.inf, "num_accounts": -1e309},
    {"age": 1.7976931348623157e308, "num_accounts": -1.7976931348623157e308},
    {"debt_ratio": -np.inf},  # 60
    {"status": "error", "score": 0.3, "prediction": 1},
]
N_ROWS = 64


@pytest.fixture
def model(write_config, config_dict):
    return load_config(write_config(config_dict)).model("credit_default")


@pytest.fixture(scope="module")
def gx_batch_definition():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("reference_semantics").add_dataframe_asset("typed_day")
    return asset.add_batch_definition_whole_dataframe("whole_day")


def _adversarial() -> pd.DataFrame:
    raw = synthetic_day(DAY, N_ROWS, seed=11).astype(object)
    raw.loc[43, "prediction_id"] = raw.loc[42, "prediction_id"]
    for row, edit in enumerate(EDITS):
        for column, value in edit.items():
            raw.at[row, column] = value
    raw.loc[57, "prediction_id"] = raw.loc[9, "prediction_id"]  # a duplicate of a row quarantined anyway
    return raw


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def frame_mixed() -> pd.DataFrame:
    """Typed columns where the values allow (numbers in numeric columns stay numeric)."""
    raw = _adversarial()
    for column in ("age", "debt_ratio", "utilization", "num_accounts"):  # only numbers: DOUBLE columns
        raw[column] = raw[column].astype(float)
    return raw


def frame_text() -> pd.DataFrame:
    """Every value as text, as a CSV source delivers it."""
    return _adversarial().apply(lambda col: col.map(_as_text)).astype(object)


def frame_no_ok_rows() -> pd.DataFrame:
    """Only error rows (the ok-row rules see no rows), no latency and no num_accounts at all."""
    raw = synthetic_day(DAY, 30, seed=12).astype(object)
    raw["status"] = ["error", "ERROR", "Error"] * 10
    raw["score"] = [None, 1.5, -1.0] * 10
    raw["prediction"] = [None, 2, 0.5] * 10
    raw["latency_ms"] = None
    raw["num_accounts"] = np.nan
    raw.loc[3, "prediction_id"] = raw.loc[4, "prediction_id"]
    return raw


FRAMES = {"mixed": frame_mixed, "text": frame_text, "no_ok_rows": frame_no_ok_rows}


def _raised(info: Any) -> list[str]:
    """GX reports metric errors in `exception_info` instead of raising."""
    if not isinstance(info, dict):
        return []
    if "raised_exception" in info:
        return [str(info.get("exception_message"))] if info["raised_exception"] else []
    return [m for value in info.values() for m in _raised(value)]


def _lower(value: Any, missing: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return str(value).lower()


def _same_percent(a: Any, b: Any) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("frame_name", list(FRAMES))
def test_sql_rules_flag_exactly_what_gx_flags(model, gx_batch_definition, frame_name):
    raw = FRAMES[frame_name]()
    raw[TAG] = np.arange(len(raw))
    rules = [r for r in build_rules(model) if r.row_level]
    assert [r.name for r in rules] == ROW_RULES

    snap, validation = Snapshot.from_frame(model, raw, DAY, files=[f"{frame_name}.parquet"])
    try:
        assert validation.usable, validation.problems
        con = snap.con
        gx_columns = list(dict.fromkeys(r.column for r in rules)) + ["status"]
        # The typed values the rules run on, as GX sees them: indexed by the row's position.
        typed = con.sql(
            f"SELECT __order, {', '.join(dict.fromkeys(gx_columns))} FROM checked ORDER BY __order"
        ).df()
        assert typed["__order"].tolist() == list(range(len(raw)))
        typed = typed.set_index("__order")
        typed.index.name = None
        flags = (
            con.sql(
                f"SELECT __order, {', '.join(f'{suite.rule_flag(i)} AS r{i}' for i in range(len(rules)))} "
                "FROM checked ORDER BY __order"
            )
            .df()
            .set_index("__order")
        )
        results = validation.results.set_index("expectation")

        # the type conversion GX must see: lower-cased role and status, a null status is ok, NaN missing
        assert typed["status"].tolist() == [_lower(s, "ok") for s in raw["status"]]
        assert [_lower(r, None) for r in typed["role"]] == [_lower(r, None) for r in raw["role"]]
        for column in ("score", "prediction", "latency_ms", *model.features.numeric):
            assert str(typed[column].dtype) == "float64", column

        batch = gx_batch_definition.get_batch(batch_parameters={"dataframe": typed})
        gx_unexpected: dict[str, set[int]] = {}
        for i, rule in enumerate(rules):
            outcome = batch.validate(rule.expectation, result_format="COMPLETE")
            assert not _raised(outcome.exception_info), (rule.name, outcome.exception_info)
            result = outcome.result
            expected_rows = {int(k) for k in result.get("unexpected_index_list") or []}
            gx_unexpected[rule.name] = expected_rows
            flagged = {int(k) for k in flags.index[flags[f"r{i}"]]}
            assert flagged == expected_rows, (
                f"{rule.name}: SQL flags {sorted(flagged - expected_rows)} that GX does not, "
                f"GX flags {sorted(expected_rows - flagged)} that SQL does not"
            )
            ours = results.loc[rule.name]
            assert int(ours["unexpected_count"]) == result["unexpected_count"], rule.name
            assert int(ours["element_count"]) == result["element_count"], rule.name
            assert _same_percent(ours["unexpected_percent"], result.get("unexpected_percent")), (
                rule.name,
                ours["unexpected_percent"],
                result.get("unexpected_percent"),
            )
            assert bool(ours["success"]) == bool(outcome.success), rule.name

        # (c) quarantine = validation, row by row (the raw JSON carries the row's position)
        quarantine = snap.quarantine_frame()
        reasons = {int(json.loads(r.raw)[TAG]): set(r.reason.split("; ")) for r in quarantine.itertuples()}
        assert len(reasons) == len(quarantine) == validation.quarantined_rows
        assert validation.valid_rows == len(raw) - validation.quarantined_rows == len(snap.frame())
        for rule in rules:
            quarantined = {row for row, names in reasons.items() if rule.name in names}
            expected = set(gx_unexpected[rule.name])
            if rule.name == UNIQUE:
                ids = typed.loc[sorted(expected), "prediction_id"]
                expected -= set(ids.groupby(ids).apply(lambda s: s.index.min()))
            assert quarantined == expected, (rule.name, sorted(quarantined ^ expected))
            assert validation.quarantine_by_reason.get(rule.name, 0) == len(expected), rule.name
        # every quarantined row broke a rule or held a value that is not a number, and nothing else is
        type_problems = {
            row for row, names in reasons.items() if any(n.endswith(" is not a number") for n in names)
        }
        rule_rows = set().union(*(gx_unexpected[r.name] for r in rules if r.name != UNIQUE))
        unique_rows = {row for row, names in reasons.items() if UNIQUE in names}
        assert set(reasons) == rule_rows | unique_rows | type_problems
        assert all(names for names in reasons.values())
        valid_tags = set(con.sql("SELECT __order FROM checked WHERE reason IS NULL").df()["__order"])
        assert valid_tags.isdisjoint(reasons) and valid_tags | set(reasons) == set(range(len(raw)))
    finally:
        snap.close()


def test_the_adversarial_frame_breaks_every_rule(model):
    """A guard on the frames themselves: each row rule has unexpected rows, so (a)-(c) are not vacuous."""
    snap, validation = Snapshot.from_frame(model, frame_mixed(), DAY)
    try:
        failed = set(
            validation.results.loc[validation.results["unexpected_count"].fillna(0) > 0, "expectation"]
        )
        assert set(ROW_RULES) <= failed, sorted(set(ROW_RULES) - failed)
        reasons = validation.quarantine_by_reason
        for column in ("score", "prediction", "latency_ms", "income"):
            assert reasons.get(f"{column} is not a number", 0) > 0, column
    finally:
        snap.close()


def test_values_that_are_not_numbers_are_exactly_the_unparsable_text(model):
    raw = frame_mixed()
    raw[TAG] = np.arange(len(raw))
    snap, _ = Snapshot.from_frame(model, raw, DAY)
    try:
        found: dict[str, set[int]] = {}
        for r in snap.quarantine_frame().itertuples():
            for name in r.reason.split("; "):
                if name.endswith(" is not a number"):
                    found.setdefault(name.removesuffix(" is not a number"), set()).add(
                        int(json.loads(r.raw)[TAG])
                    )
        # text that parses (" 0.25 ", "1", "1e3") is a number; "", NaN and None are missing, not bad
        assert found == {"score": {19}, "prediction": {20}, "latency_ms": {21}, "income": {22, 24, 57}}
    finally:
        snap.close()
