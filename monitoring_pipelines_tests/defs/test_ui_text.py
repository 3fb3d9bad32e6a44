"""What the Dagster UI shows of a check result: which model-day it judged, what failed on it, markdown
that renders names literally, and numbers only for what varies from one model-day to the next."""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import MetadataValue

from monitoring_pipelines.core import drift
from monitoring_pipelines.core.findings import CheckResult, Finding, observed
from monitoring_pipelines.core.formatting import escape_prose
from monitoring_pipelines.defs.checks import CHECKS_TAG, check_specs, outcome, to_check_result
from monitoring_pipelines.defs.drift import _summary
from monitoring_pipelines.defs.partitions import Partitions

DAY = dt.date(2026, 7, 6)


def _finding(check: str, severity: str, subject: str, metric: str, value: float, line: float) -> Finding:
    return Finding(check, severity, metric, subject, value, line, f"{subject}: {metric} = {value}")


def test_a_failed_check_result_names_its_model_day_and_the_failing_subjects():
    result = CheckResult(
        drift.CRITICAL_DRIFT,
        [
            _finding(drift.CRITICAL_DRIFT, "critical", "__score__", "psi", 0.41, 0.25),
            _finding(drift.CRITICAL_DRIFT, "critical", "income", "psi", 8.3, 0.25),
            observed(drift.CRITICAL_DRIFT, "age", "psi", 0.01, 0.25),
        ],
        description="PSI at or beyond psi_critical on a feature.",
    )
    ui = to_check_result("drift_scores", result, "credit_default", DAY)
    assert ui.description == (
        r"credit_default 2026-07-06: failed (critical) on \_\_score\_\_, income. \_\_score\_\_: psi = 0.41; "
        "income: psi = 8.3. PSI at or beyond psi_critical on a feature."
    )
    assert ui.metadata["model"] == MetadataValue.text("credit_default")
    assert ui.metadata["partition_date"] == MetadataValue.text("2026-07-06")
    assert ui.metadata["failed_subjects"] == MetadataValue.text("__score__, income")  # text: not rendered


def test_a_passed_or_unjudged_result_says_so_for_its_model_day():
    passed = CheckResult(drift.FEATURE_DRIFT, [observed(drift.FEATURE_DRIFT, "age", "js", 0.01, 0.1)])
    assert to_check_result("drift_scores", passed, "churn_propensity", DAY).description == (
        "churn_propensity 2026-07-06: passed"
    )
    unjudged = CheckResult(
        "performance_degradation", [], unknown="not enough data: n=12 labelled rows, needs 200"
    )
    ui = to_check_result("performance_metrics", unjudged, "credit_default", DAY)
    assert ui.description == "credit_default 2026-07-06: not enough data: n=12 labelled rows, needs 200"


def test_settings_become_one_text_entry_and_only_per_day_values_stay_numbers():
    result = CheckResult(
        "differential_degradation",
        [],
        metadata={
            "evaluated": 14,
            "below_min_n": 2,
            "min_n": 200,
            "band_k": 3.0,
            "degradation_margin": 0.02,
            "metrics": ["auc", "tpr"],
            "worst_features": "| feature |\n|---|\n| `__score__` |",
        },
    )
    meta = to_check_result("subgroup_metrics", result, "credit_default", DAY).metadata
    assert meta["evaluated"].value == 14 and meta["below_min_n"].value == 2  # vary per model-day: plotted
    assert not {"min_n", "band_k", "degradation_margin", "metrics"} & set(meta)  # constants: no plots
    assert meta["settings"] == MetadataValue.text(
        "min_n = 200, band_k = 3, degradation_margin = 0.02, metrics = [auc, tpr]"
    )
    assert meta["worst_features"] == MetadataValue.md("| feature |\n|---|\n| `__score__` |")


def test_checks_are_partitioned_like_the_asset_and_their_descriptions_escaped():
    parts = Partitions.for_start(dt.date(2026, 6, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the "preview" warning is silenced where the specs are built
        specs = {s.name: s for s in check_specs("drift_scores", drift.CHECKS, parts.model_day)}
    assert all(s.partitions_def is parts.model_day for s in specs.values())
    described = specs[drift.CRITICAL_DRIFT].description
    assert r"(\_\_score\_\_)" in described and "(__score__)" not in described


def test_prose_escaping_keeps_words_readable_and_names_literal():
    assert escape_prose("__score__ and __prediction_rate__ on credit_default") == (
        r"\_\_score\_\_ and \_\_prediction_rate\_\_ on credit_default"
    )
    assert escape_prose("role '__all__'\n*a* | [b] <c> `d` \\") == (
        "role '\\_\\_all\\_\\_'\n\\*a\\* \\| \\[b\\] \\<c\\> \\`d\\` \\\\"
    )


def test_the_materialization_says_which_checks_failed_on_the_model_day():
    failed = CheckResult(
        drift.DATA_QUALITY,
        [_finding(drift.DATA_QUALITY, "critical", "income", "out_of_range_share", 1.0, 0.05)],
    )
    fine = CheckResult(drift.FEATURE_DRIFT, [])
    unjudged = CheckResult(drift.CRITICAL_DRIFT, [], unknown="not enough data: n=12 rows, needs 100")
    metadata, tags = outcome([failed, fine, unjudged])
    assert tags == {CHECKS_TAG: "failed"}
    assert metadata["checks_failed"] == 1
    assert metadata["failed_checks"] == MetadataValue.text(
        "data_quality (critical): income; critical_drift: not enough data: n=12 rows, needs 100"
    )
    assert outcome([fine])[1] == {CHECKS_TAG: "passed"} and outcome([fine, unjudged])[1] == {
        CHECKS_TAG: "unknown"
    }


def test_the_drift_summary_takes_each_features_severity_from_the_finding_its_alert_comes_from():
    """The scores table showed the statistic with the largest value (JS, "warning") beside an alert that
    was critical by PSI; the summary is built from the check findings instead."""
    results = [
        CheckResult(
            drift.FEATURE_DRIFT,
            [
                _finding(drift.FEATURE_DRIFT, "warning", "age", "js", 0.2, 0.1),
                observed(drift.FEATURE_DRIFT, "region", "js", 0.01, 0.1),
            ],
        ),
        CheckResult(
            drift.CRITICAL_DRIFT,
            [
                _finding(drift.CRITICAL_DRIFT, "critical", "income", "psi", 0.3, 0.25),
                observed(drift.CRITICAL_DRIFT, "age", "psi", 0.12, 0.25),
            ],
        ),
        CheckResult(
            drift.DATA_QUALITY,
            [_finding(drift.DATA_QUALITY, "warning", "__prediction_rate__", "null_rate_change", 0.06, 0.05)],
        ),
    ]
    lines = _summary(results).splitlines()
    assert lines[0] == "| feature | drift: statistic value / line | data quality |"
    assert lines[2:] == [
        "| `income` | critical: psi 0.3 / 0.25 | – |",
        "| `age` | warning: js 0.2 / 0.1 | – |",
        r"| `__prediction_rate__` | – | warning: null\_rate\_change 0.06 / 0.05 |",
        "| `region` | ok: js 0.01 / 0.1 | – |",
    ]
