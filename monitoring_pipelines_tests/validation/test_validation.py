from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines.validation.suite import DAY_USABLE, validation_checks
from monitoring_pipelines_tests.conftest import synthetic_day

DAY = dt.date(2026, 6, 10)


@pytest.fixture
def model(write_config, config_dict):
    return load_config(write_config(config_dict)).model("credit_default")


@pytest.fixture
def validate(model):
    """Validate a raw frame like a source read; yields (valid rows, quarantine, DayValidation)."""
    opened: list[Snapshot] = []

    def run(raw: pd.DataFrame, files=("f.parquet",), read_problems=()):
        snap, validation = Snapshot.from_frame(
            model, raw, DAY, files=list(files), read_problems=list(read_problems)
        )
        opened.append(snap)
        return snap.frame(), snap.quarantine_frame(), validation

    yield run
    for snap in opened:
        snap.close()


def _reasons(quarantined: pd.DataFrame) -> dict[str, str]:
    return dict(zip(quarantined["prediction_id"], quarantined["reason"], strict=True))


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("score", 1.7, "score in [0, 1]"),
        ("score", np.nan, "score not null for ok rows"),
        ("prediction", 2, "prediction in {0, 1}"),
        ("role", "canary", "role in set"),
        ("status", "weird", "status in set"),
        ("model_name", "other_model", "model_name matches"),
        ("income", np.inf, "income finite"),
        ("latency_ms", -3.0, "latency_ms >= 0"),
        ("request_id", None, "request_id not null"),
        ("ts", None, "ts not null"),
    ],
)
def test_each_rule_quarantines_the_offending_row_only(validate, column, value, reason):
    raw = synthetic_day(DAY, 300)
    raw[column] = raw[column].astype(object)
    raw.loc[7, column] = value
    valid, quarantined, outcome = validate(raw, ["f.parquet"])
    assert outcome.usable
    assert _reasons(quarantined) == {raw.loc[7, "prediction_id"]: reason}
    assert len(valid) + len(quarantined) == len(raw)
    assert (outcome.read_rows, outcome.valid_rows, outcome.quarantined_rows) == (300, 299, 1)
    assert outcome.quarantine_by_reason == {reason: 1}
    failed = outcome.results.loc[~outcome.results["success"], "expectation"].tolist()
    assert failed == [reason]
    row = outcome.results.set_index("expectation").loc[reason]
    assert row["unexpected_count"] == 1 and not row["blocking"]
    assert raw.loc[7, "prediction_id"] not in set(valid["prediction_id"])


def test_error_rows_need_no_score(validate):
    raw = synthetic_day(DAY, 100)
    raw.loc[:4, "status"] = "error"
    raw.loc[:4, ["score", "prediction"]] = np.nan
    valid, quarantined, outcome = validate(raw, ["f"])
    assert quarantined.empty and len(valid) == 100
    assert outcome.quarantined_rows == 0 and outcome.valid_rows == 100
    errors = valid[valid["status"] == "error"]
    assert len(errors) == 5 and errors["score"].isna().all() and errors["prediction"].isna().all()


def test_roles_and_statuses_are_lower_cased_and_a_missing_status_is_ok(validate):
    raw = synthetic_day(DAY, 20)
    raw["status"] = raw["status"].astype(object)
    raw.loc[0, "role"] = "CHAMPION"
    raw.loc[1, "role"] = "Shadow"
    raw.loc[2, "status"] = "OK"
    raw.loc[3, "status"] = None
    raw.loc[4, ["status", "score", "prediction"]] = ["ERROR", np.nan, np.nan]
    valid, quarantined, _ = validate(raw, ["f"])
    assert quarantined.empty
    by_id = valid.set_index("prediction_id")
    ids = raw["prediction_id"]
    assert by_id.loc[ids[0], "role"] == "champion" and by_id.loc[ids[1], "role"] == "shadow"
    assert by_id.loc[ids[2], "status"] == "ok" and by_id.loc[ids[3], "status"] == "ok"
    assert by_id.loc[ids[4], "status"] == "error"


def test_duplicate_prediction_id_keeps_first_occurrence(validate):
    raw = synthetic_day(DAY, 100)
    raw.loc[10, "prediction_id"] = raw.loc[3, "prediction_id"]
    valid, quarantined, outcome = validate(raw, ["f"])
    assert len(quarantined) == 1
    assert quarantined.iloc[0]["reason"] == "prediction_id unique"
    assert quarantined.iloc[0]["score"] == pytest.approx(raw.loc[10, "score"])
    kept = valid.set_index("prediction_id").loc[raw.loc[3, "prediction_id"]]
    assert kept["score"] == pytest.approx(raw.loc[3, "score"])
    # GX counts every occurrence of a duplicated id as unexpected; only later ones are quarantined
    unique = outcome.results.set_index("expectation").loc["prediction_id unique"]
    assert unique["unexpected_count"] == 2 and not unique["success"]


def test_non_numeric_feature_is_quarantined_not_nulled(validate, model):
    raw = synthetic_day(DAY, 50)
    raw["income"] = raw["income"].astype(object)
    raw.loc[5, "income"] = "lots"
    raw.loc[6, "income"] = None  # a null is data (null-rate drift), not a bad row
    valid, quarantined, outcome = validate(raw, ["f"])
    # no expectation covers unparsable text, so the validation check reports the reason itself
    _, check = validation_checks(outcome, model)
    assert not check.passed
    assert [(f.subject, f.value) for f in check.findings] == [("income is not a number", 1.0)]
    assert _reasons(quarantined) == {raw.loc[5, "prediction_id"]: "income is not a number"}
    assert quarantined.iloc[0]["raw"].count("lots") == 1
    assert json.loads(quarantined.iloc[0]["raw"])["income"] == "lots"
    assert pd.isna(valid.set_index("prediction_id").loc[raw.loc[6, "prediction_id"], "income"])


def test_missing_required_column_makes_the_day_unusable(validate, model):
    raw = synthetic_day(DAY, 50).drop(columns=["score"])
    valid, quarantined, outcome = validate(raw, ["/data/x.parquet"])
    assert not outcome.usable
    assert "score" in outcome.problems[0] and "/data/x.parquet" in outcome.problems[0]
    assert valid.empty and quarantined.empty
    assert outcome.results["expectation"].tolist() == [DAY_USABLE]
    assert outcome.results["blocking"].all() and not outcome.results["success"].any()
    usable, _ = validation_checks(outcome, model)
    assert not usable.passed and usable.severity == "critical"


def test_empty_day_is_unusable(validate, model):
    valid, _, outcome = validate(pd.DataFrame(), [], ["no prediction files for credit_default in /x"])
    assert not outcome.usable and "no prediction files" in outcome.problems[0]
    assert valid.empty
    usable, _ = validation_checks(outcome, model)
    assert not usable.passed and usable.severity == "critical"


def test_day_without_rows_is_unusable(validate):
    raw = synthetic_day(DAY, 5).head(0)
    _, _, outcome = validate(raw, ["/data/empty.parquet"])
    assert not outcome.usable and "/data/empty.parquet" in outcome.problems[0]


def test_read_problem_makes_the_day_unusable_even_with_rows(validate, model):
    raw = synthetic_day(DAY, 50)
    valid, _, outcome = validate(raw, ["/d/a.parquet"], ["/d/b.parquet: unreadable (truncated)"])
    assert not outcome.usable and outcome.problems == ["/d/b.parquet: unreadable (truncated)"]
    assert valid.empty
    usable, _ = validation_checks(outcome, model)
    assert not usable.passed


def test_quarantine_share_sets_severity(validate, model):
    raw = synthetic_day(DAY, 100)
    raw.loc[:2, "score"] = 3.0
    _, _, outcome = validate(raw, ["f"])
    _, validation = validation_checks(outcome, model)
    assert not validation.passed and validation.severity == "warning"
    raw.loc[:20, "score"] = 3.0
    _, _, outcome = validate(raw, ["f"])
    _, validation = validation_checks(outcome, model)
    assert validation.severity == "critical"


def test_clean_day_passes_every_expectation(validate, model):
    valid, quarantined, outcome = validate(synthetic_day(DAY, 200), ["f"])
    assert outcome.results["success"].all()
    assert all(o.passed for o in validation_checks(outcome, model))
    assert len(valid) == 200 and quarantined.empty
    assert (valid["partition_date"].dt.date == DAY).all()
