from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import load_config
from monitoring_pipelines.validation.suite import validate_day, validation_checks
from monitoring_pipelines_tests.conftest import synthetic_day

DAY = dt.date(2026, 6, 10)


@pytest.fixture
def model(write_config, config_dict):
    return load_config(write_config(config_dict)).model("credit_default")


def _reasons(outcome) -> dict[str, str]:
    return dict(zip(outcome.quarantined["prediction_id"], outcome.quarantined["reason"], strict=True))


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
def test_each_rule_quarantines_the_offending_row_only(model, column, value, reason):
    raw = synthetic_day(DAY, 300)
    raw[column] = raw[column].astype(object)
    raw.loc[7, column] = value
    outcome = validate_day(raw, model, DAY, ["f.parquet"])
    assert outcome.usable
    assert _reasons(outcome) == {raw.loc[7, "prediction_id"]: reason}
    assert len(outcome.valid) + len(outcome.quarantined) == len(raw)
    failed = outcome.results.loc[~outcome.results["success"], "expectation"].tolist()
    assert failed == [reason]


def test_error_rows_need_no_score(model):
    raw = synthetic_day(DAY, 100)
    raw.loc[:4, "status"] = "error"
    raw.loc[:4, ["score", "prediction"]] = np.nan
    outcome = validate_day(raw, model, DAY, ["f"])
    assert outcome.quarantined.empty and len(outcome.valid) == 100


def test_duplicate_prediction_id_keeps_first_occurrence(model):
    raw = synthetic_day(DAY, 100)
    raw.loc[10, "prediction_id"] = raw.loc[3, "prediction_id"]
    outcome = validate_day(raw, model, DAY, ["f"])
    assert len(outcome.quarantined) == 1
    assert outcome.quarantined.iloc[0]["reason"] == "prediction_id unique"
    kept = outcome.valid.set_index("prediction_id").loc[raw.loc[3, "prediction_id"]]
    assert kept["score"] == pytest.approx(raw.loc[3, "score"])


def test_non_numeric_feature_is_quarantined_not_nulled(model):
    raw = synthetic_day(DAY, 50)
    raw["income"] = raw["income"].astype(object)
    raw.loc[5, "income"] = "lots"
    raw.loc[6, "income"] = None  # a null is data (null-rate drift), not a bad row
    outcome = validate_day(raw, model, DAY, ["f"])
    assert _reasons(outcome) == {raw.loc[5, "prediction_id"]: "income is not a number"}
    assert outcome.quarantined.iloc[0]["raw"].count("lots") == 1


def test_missing_required_column_makes_the_day_unusable(model):
    raw = synthetic_day(DAY, 50).drop(columns=["score"])
    outcome = validate_day(raw, model, DAY, ["/data/x.parquet"])
    assert not outcome.usable
    assert "score" in outcome.problems[0] and "/data/x.parquet" in outcome.problems[0]
    usable, _ = validation_checks(outcome, model)
    assert not usable.passed and usable.severity == "critical"


def test_empty_day_is_unusable(model):
    outcome = validate_day(pd.DataFrame(), model, DAY, [], ["no prediction files for credit_default in /x"])
    assert not outcome.usable and "no prediction files" in outcome.problems[0]


def test_quarantine_share_sets_severity(model):
    raw = synthetic_day(DAY, 100)
    raw.loc[:2, "score"] = 3.0
    _, validation = validation_checks(validate_day(raw, model, DAY, ["f"]), model)
    assert not validation.passed and validation.severity == "warning"
    raw.loc[:20, "score"] = 3.0
    _, validation = validation_checks(validate_day(raw, model, DAY, ["f"]), model)
    assert validation.severity == "critical"


def test_clean_day_passes_every_expectation(model):
    outcome = validate_day(synthetic_day(DAY, 200), model, DAY, ["f"])
    assert outcome.results["success"].all()
    assert all(o.passed for o in validation_checks(outcome, model))
