"""A check result as the UI and the warehouse see it: passed, failed, or unknown (not enough data)."""

from __future__ import annotations

import datetime as dt
import json

from dagster import AssetCheckSeverity

from monitoring_pipelines.core.findings import CheckResult, Finding, not_enough_data, observed
from monitoring_pipelines.defs.checks import check_rows, to_check_result

DAY = dt.date(2026, 7, 1)
# What `differential_degradation` reported on a day whose groups all had too few labels ("Passed, evaluated 0").
NOTHING_JUDGED = CheckResult(
    "differential_degradation",
    [],
    metadata={"evaluated": 0, "below_min_n": 12, "no_reference": 0, "min_n": 200},
    description="A segment value's metric fell against its own reference band.",
)


def test_a_check_that_judged_nothing_is_unknown_not_passed():
    assert NOTHING_JUDGED.passed and NOTHING_JUDGED.status == "unknown"  # nothing failed, nothing checked
    ui = to_check_result("subgroup_metrics", NOTHING_JUDGED, "m", DAY)
    assert ui.passed is False and ui.severity == AssetCheckSeverity.WARN
    assert ui.description.startswith(
        "m 2026-07-01: not enough data: n=0 subjects judged (12 below min_n), needs 200 rows"
    )
    assert ui.metadata["status"].value == "unknown"
    (row,) = check_rows("subgroup_metrics", [NOTHING_JUDGED], "m", DAY, "run-1").to_dict("records")
    assert row["passed"] is False and row["severity"] == "unknown"


def test_a_check_can_say_it_could_not_judge():
    result = CheckResult(
        "performance_degradation", [], unknown="not enough data: n=12 labelled rows, needs 200"
    )
    ui = to_check_result("performance_metrics", result, "m", DAY)
    assert not ui.passed and ui.description == "m 2026-07-01: not enough data: n=12 labelled rows, needs 200"


def test_subjects_without_enough_data_are_listed_and_ok_values_kept_for_alerting_only():
    small = not_enough_data("differential_degradation", "age_band=65+", "auc", 40, 200, "labelled rows")
    assert small.message == "not enough data: n=40 labelled rows, needs 200"
    fine = observed("differential_degradation", "age_band=18-25", "auc", 0.81, 0.74)
    result = CheckResult("differential_degradation", [small, fine], metadata={"evaluated": 1})
    assert result.status == "passed" and result.severity is None  # one group judged, and fine
    ui = to_check_result("subgroup_metrics", result, "m", DAY)
    assert ui.passed and ui.metadata["failed_subjects"].value == "none"
    assert "age_band=65+: not enough data: n=40" in ui.metadata["unknown_subjects"].value
    assert [f["subject"] for f in ui.metadata["findings"].value] == ["age_band=65+"]
    (row,) = check_rows("subgroup_metrics", [result], "m", DAY, "run-1").to_dict("records")
    assert row["passed"] is True and [f["severity"] for f in json.loads(row["findings"])] == ["unknown", "ok"]


def test_a_failing_check_stays_failed_whatever_else_it_could_not_judge():
    bad = Finding("differential_degradation", "critical", "auc", "age_band=41-64", 0.6, 0.7, "fell")
    small = not_enough_data("differential_degradation", "age_band=65+", "auc", 40, 200)
    result = CheckResult(
        "differential_degradation", [bad, small], metadata={"evaluated": 0, "below_min_n": 1}
    )
    assert result.status == "failed" and result.severity == "critical"
    assert to_check_result("subgroup_metrics", result, "m", DAY).severity == AssetCheckSeverity.ERROR
