"""The row rules of regression and multiclass models are GX expectations compiled to SQL, like the
binary ones (test_rules_match_gx.py): GX itself evaluates each declared expectation on the typed rows
of adversarial days and must flag exactly the rows the SQL flags, with the same counts, and the
quarantine must agree. Column rules run on GX's pandas engine; `scores sum to 1` is an
UnexpectedRowsExpectation (a SQL query: GX has no row-wise sum with a tolerance), which GX runs on a
SQL datasource (SQLite) holding the same typed rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines.validation import suite
from monitoring_pipelines.validation.suite import build_rules

DAY = dt.date(2026, 6, 10)
CLASSES = ["billing", "tech", "sales", "account"]
PROBS = [f"score__{c}" for c in CLASSES]
TAG = "row_tag"

COMMON = [
    "prediction_id not null",
    "request_id not null",
    "model_version not null",
    "role not null",
    "ts not null",
    "prediction_id unique",
    "model_name matches",
    "role in set",
    "status in set",
]
REGRESSION_RULES = [
    *COMMON,
    "score not null for ok rows",
    "score finite",
    "latency_ms >= 0",
    "distance_km finite",
]
MULTICLASS_RULES = [
    *COMMON,
    "prediction not null for ok rows",
    "prediction in classes",
    *(f"{c} in [0, 1]" for c in PROBS),
    "scores sum to 1",
    "latency_ms >= 0",
    "length finite",
]


@pytest.fixture
def models(write_config, config_dict):
    reference = config_dict["models"][0]["reference"]
    config_dict["models"] += [
        {
            "name": "delivery_time",
            "task": "regression",
            "features": {"numeric": ["distance_km"]},
            "reference": reference,
        },
        {
            "name": "ticket_router",
            "task": "multiclass_classification",
            "classes": CLASSES,
            "features": {"numeric": ["length"]},
            "reference": reference,
        },
    ]
    config = load_config(write_config(config_dict))
    return {"regression": config.model("delivery_time"), "multiclass": config.model("ticket_router")}


@pytest.fixture(scope="module")
def gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _day(model: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "prediction_id": [f"{model}-{i}" for i in range(n)],
            "request_id": [f"r{i}" for i in range(n)],
            "model_name": model,
            "model_version": "v1",
            "role": "champion",
            "ts": pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "latency_ms": rng.gamma(4, 10, n),
            "status": "ok",
        }
    )


REGRESSION_EDITS: list[dict[str, Any]] = [
    {"score": None},  # 0
    {"score": np.nan},
    {"score": np.inf},
    {"score": -np.inf},
    {"score": 1.7976931348623157e308},  # the largest finite values are finite
    {"score": -1.7976931348623157e308},  # 5
    {"score": "abc"},
    {"score": " 12.5 "},
    {"status": "error", "score": None},
    {"status": "error", "score": np.inf},
    {"prediction": "yes"},  # 10: a logged decision that is not a number
    {"prediction": 0.5},
    {"prediction": None},
    {"status": "weird", "score": np.inf},
    {"distance_km": np.inf},
    {"latency_ms": -1.0},  # 15
    {"prediction_id": "regression-17"},
    {},
    {"score": ""},
    {"role": "canary", "score": -5.0},
]


def regression_frame() -> pd.DataFrame:
    n = 24
    rng = np.random.default_rng(5)
    raw = _day("delivery_time", n, 5).assign(
        score=rng.normal(30, 10, n), prediction=rng.integers(0, 2, n), distance_km=rng.gamma(2, 3, n)
    )
    return _edit(raw, REGRESSION_EDITS)


MULTICLASS_EDITS: list[dict[str, Any]] = [
    {"prediction": None},  # 0
    {"prediction": "refunds"},
    {"prediction": "Tech"},
    {"prediction": ""},
    {"prediction": 3},
    {"score__billing": np.nan},  # 5
    {"score__billing": np.inf, "score__tech": -np.inf},
    {"score__sales": 1.5},
    {"score__sales": -0.5},
    {"score__billing": 1.0, "score__tech": 0.0, "score__sales": 0.0, "score__account": 0.0},  # boundaries
    {"score__billing": 0.5, "score__tech": 0.3, "score__sales": 0.2, "score__account": 0.009},  # 10: within
    {"score__billing": 0.5, "score__tech": 0.3, "score__sales": 0.2, "score__account": 0.011},  # beyond
    {"score__billing": 0.5, "score__tech": 0.3, "score__sales": 0.2, "score__account": -0.009},
    {"score__tech": "abc"},
    {"score__tech": " 0.25 "},
    {"status": "error", "prediction": None, **dict.fromkeys(PROBS, None)},  # 15: not looked at
    {"status": "error", "prediction": "refunds", "score__tech": 7.0},
    {"status": "ERROR", "score__sales": np.nan},
    {"status": "weird", "prediction": "refunds", "score__sales": 2.0},
    {"score__billing": 1.2, "score__tech": -0.2, "score__sales": 0.0, "score__account": 0.0},
    {**dict.fromkeys(PROBS, None)},  # 20
    {"score__account": ""},
    {"prediction_id": "ticket_router-23"},
    {},
    {"latency_ms": -1.0},
    {"length": np.inf},  # 25
]


def multiclass_frame() -> pd.DataFrame:
    n = 28
    rng = np.random.default_rng(6)
    proba = rng.dirichlet([2, 1, 1, 0.5], n)
    raw = _day("ticket_router", n, 6).assign(
        prediction=np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)], length=rng.gamma(3, 50, n)
    )
    for j, column in enumerate(PROBS):
        raw[column] = proba[:, j]
    return _edit(raw, MULTICLASS_EDITS)


def _edit(raw: pd.DataFrame, edits: list[dict[str, Any]]) -> pd.DataFrame:
    raw = raw.astype(object)
    for row, edit in enumerate(edits):
        for column, value in edit.items():
            raw.at[row, column] = value
    return raw


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda col: col.map(_as_text)).astype(object)


def _json_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """The probabilities as one JSON object text column (a CSV's `scores`); a missing one is left out."""
    out = _text(frame).drop(columns=PROBS)
    out["scores"] = [
        json.dumps({c: v for c, v in zip(CLASSES, row, strict=True) if v is not None})
        for row in _text(frame)[PROBS].itertuples(index=False)
    ]
    return out


FRAMES = {
    "regression-mixed": ("regression", regression_frame),
    "regression-text": ("regression", lambda: _text(regression_frame())),
    "multiclass-mixed": ("multiclass", multiclass_frame),
    "multiclass-text": ("multiclass", lambda: _text(multiclass_frame())),
    "multiclass-json": ("multiclass", lambda: _json_scores(multiclass_frame())),
}


def _gx_sql_unexpected(context, typed: pd.DataFrame, rule, path) -> tuple[set[int], int]:
    """GX's own run of an UnexpectedRowsExpectation on a SQLite table of the typed rows."""
    url = f"sqlite:///{path}"
    typed.reset_index(names="__order").to_sql(
        "typed", sa.create_engine(url), index=False, if_exists="replace"
    )
    name = f"sql_{path.stem}"
    source = context.data_sources.add_or_update_sqlite(name, connection_string=url)
    asset = source.add_table_asset("typed", table_name="typed")
    batch = asset.add_batch_definition_whole_table("all").get_batch()
    outcome = batch.validate(rule.expectation, result_format="COMPLETE")
    assert not outcome.exception_info.get("raised_exception"), outcome.exception_info
    rows = outcome.result["details"]["unexpected_rows"]
    return {int(r["__order"]) for r in rows}, int(outcome.result["observed_value"])


@pytest.mark.parametrize("frame_name", list(FRAMES))
def test_sql_rules_flag_exactly_what_gx_flags(models, gx_context, frame_name, tmp_path):
    task, build = FRAMES[frame_name]
    model = models[task]
    raw = build()
    raw[TAG] = np.arange(len(raw))
    rules = [r for r in build_rules(model) if r.row_level]
    assert [r.name for r in rules] == (REGRESSION_RULES if task == "regression" else MULTICLASS_RULES)

    snap, validation = Snapshot.from_frame(model, raw, DAY, files=[f"{frame_name}.csv"])
    try:
        assert validation.usable, validation.problems
        con = snap.con
        columns = [r.column for r in rules if r.column] + ["status", *model.probability_columns]
        typed = con.sql(
            f"SELECT __order, {', '.join(dict.fromkeys(columns))} FROM checked ORDER BY __order"
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
        pandas_batch = (
            gx_context.data_sources.add_or_update_pandas(f"typed_{frame_name}")
            .add_dataframe_asset("day")
            .add_batch_definition_whole_dataframe("whole_day")
            .get_batch(batch_parameters={"dataframe": typed})
        )
        gx_unexpected: dict[str, set[int]] = {}
        for i, rule in enumerate(rules):
            ours = results.loc[rule.name]
            if rule.gx_class == "UnexpectedRowsExpectation":
                expected_rows, count = _gx_sql_unexpected(
                    gx_context, typed, rule, tmp_path / f"{frame_name}.db"
                )
                assert int(ours["unexpected_count"]) == count, rule.name
            else:
                outcome = pandas_batch.validate(rule.expectation, result_format="COMPLETE")
                assert not outcome.exception_info.get("raised_exception"), (rule.name, outcome.exception_info)
                result = outcome.result
                expected_rows = {int(k) for k in result.get("unexpected_index_list") or []}
                assert int(ours["unexpected_count"]) == result["unexpected_count"], rule.name
                assert int(ours["element_count"]) == result["element_count"], rule.name
                percent = result.get("unexpected_percent")
                assert (percent is None and pd.isna(ours["unexpected_percent"])) or math.isclose(
                    float(ours["unexpected_percent"]), float(percent), rel_tol=1e-12
                ), rule.name
            gx_unexpected[rule.name] = expected_rows
            flagged = {int(k) for k in flags.index[flags[f"r{i}"]]}
            assert flagged == expected_rows, (
                f"{rule.name}: SQL flags {sorted(flagged - expected_rows)} that GX does not, "
                f"GX flags {sorted(expected_rows - flagged)} that SQL does not"
            )
            assert bool(ours["success"]) == (not expected_rows), rule.name

        # the quarantine agrees with the rules, row by row
        reasons = {
            int(json.loads(r.raw)[TAG]): set(r.reason.split("; "))
            for r in snap.quarantine_frame().itertuples()
        }
        for rule in rules:
            quarantined = {row for row, names in reasons.items() if rule.name in names}
            expected = set(gx_unexpected[rule.name])
            if rule.name == "prediction_id unique":
                ids = typed.loc[sorted(expected), "prediction_id"]
                expected -= set(ids.groupby(ids).apply(lambda s: s.index.min()))
            assert quarantined == expected, (rule.name, sorted(quarantined ^ expected))
        assert validation.valid_rows == len(snap.frame()) == len(raw) - len(reasons)
    finally:
        snap.close()


def test_every_task_rule_is_broken_by_the_adversarial_days(models):
    """A guard on the frames: each rule of the tasks has unexpected rows, so the comparison is not
    vacuous (the rules every task shares are broken by test_rules_match_gx.py's frames)."""
    for task, frame, names in (
        ("regression", regression_frame(), REGRESSION_RULES),
        ("multiclass", multiclass_frame(), MULTICLASS_RULES),
        ("multiclass", _json_scores(multiclass_frame()), MULTICLASS_RULES),
    ):
        snap, validation = Snapshot.from_frame(models[task], frame, DAY)
        try:
            results = validation.results
            failed = set(results.loc[results["unexpected_count"].fillna(0) > 0, "expectation"])
            task_rules = set(names) - set(COMMON)  # the shared rules are the binary test's
            assert task_rules <= failed, (task, sorted(task_rules - failed))
        finally:
            snap.close()


def test_typed_values_of_the_tasks(models):
    """What the rules see: a multiclass class as logged and its index, the derived top probability, a
    regression model's optional decision; text that is not a number is its own quarantine reason."""
    snap, validation = Snapshot.from_frame(models["multiclass"], multiclass_frame(), DAY)
    try:
        typed = snap.con.sql("SELECT * FROM checked ORDER BY __order").df()
        assert typed.loc[1, "predicted_class"] == "refunds" and pd.isna(typed.loc[1, "prediction"])
        assert typed.loc[4, "predicted_class"] == "3"
        assert typed.loc[14, "score__tech"] == 0.25
        index = typed["prediction"]
        ok = index.notna()
        top = typed.loc[ok, PROBS].to_numpy()[np.arange(ok.sum()), index[ok].astype(int)]
        np.testing.assert_array_equal(typed.loc[ok, "score"].to_numpy(), top)
        assert validation.quarantine_by_reason.get("score__tech is not a number") == 1
    finally:
        snap.close()
    snap, validation = Snapshot.from_frame(models["regression"], regression_frame(), DAY)
    try:
        assert validation.quarantine_by_reason.get("prediction is not a number") == 1
        assert validation.quarantine_by_reason.get("score is not a number") == 1
        day = snap.frame().set_index("prediction_id")
        assert pd.isna(day.loc["delivery_time-11", "prediction"])  # 0.5 is no decision: kept, as NULL
        assert day.loc["delivery_time-7", "score"] == 12.5
    finally:
        snap.close()
