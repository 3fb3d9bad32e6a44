"""Serving metrics per role:version and their SLO checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import ServingThresholds
from monitoring_pipelines.core.serving import SERVING_COLUMNS, serving_checks, serving_metrics

DAY = pd.Timestamp("2026-06-01", tz="UTC")


def traffic(
    n: int, role: str, version: str, latency_scale: float, error_rate: float, seed: int
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "role": role,
            "model_version": version,
            "latency_ms": rng.gamma(2.0, latency_scale, n),
            "status": np.where(rng.random(n) < error_rate, "error", "ok"),
            "ts": DAY + pd.to_timedelta(rng.uniform(0, 86_400, n), unit="s"),
        }
    )


def row(metrics: pd.DataFrame, role: str) -> pd.Series:
    return metrics.loc[metrics["role"] == role].iloc[0]


def test_serving_metrics_per_role_version_and_model_wide() -> None:
    champion = traffic(2000, "champion", "v3", 50.0, 0.02, seed=1)
    shadow = traffic(1000, "shadow", "v4", 80.0, 0.0, seed=2)
    day = pd.concat([champion, shadow], ignore_index=True)
    metrics = serving_metrics(day)
    assert list(metrics.columns) == SERVING_COLUMNS
    assert list(zip(metrics["role"], metrics["model_version"], strict=True)) == [
        ("champion", "v3"),
        ("shadow", "v4"),
        ("all", "all"),
    ]
    champ = row(metrics, "champion")
    latency = champion["latency_ms"].to_numpy()
    for column, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
        assert champ[column] == pytest.approx(np.percentile(latency, q), rel=1e-12)
    errors = int((champion["status"] == "error").sum())
    assert champ["requests"] == 2000 and champ["errors"] == errors
    assert champ["error_rate"] == pytest.approx(errors / 2000)
    hourly = champion["ts"].dt.floor("h").value_counts().max()
    assert champ["peak_requests_per_hour"] == hourly
    everything = row(metrics, "all")
    assert everything["requests"] == 3000
    assert everything["latency_p99_ms"] == pytest.approx(np.percentile(day["latency_ms"], 99), rel=1e-12)


def test_missing_optional_columns_and_empty_day() -> None:
    bare = pd.DataFrame(
        {"request_id": ["a", "b"], "role": ["champion", "champion"], "model_version": ["v1", "v1"]}
    )
    metrics = serving_metrics(bare)
    champ = row(metrics, "champion")
    assert champ["requests"] == 2 and champ["errors"] == 0 and champ["error_rate"] == 0.0
    assert math.isnan(champ["latency_p99_ms"]) and math.isnan(champ["peak_requests_per_hour"])
    empty = serving_metrics(bare.iloc[:0])
    assert empty.empty and list(empty.columns) == SERVING_COLUMNS
    assert serving_checks(empty, ServingThresholds())[0].passed


def test_healthy_serving_passes() -> None:
    metrics = serving_metrics(traffic(3000, "champion", "v3", 40.0, 0.001, seed=3))
    outcome = serving_checks(metrics, ServingThresholds())[0]
    assert outcome.check_name == "serving_slo" and outcome.passed
    assert "champion:v3" in outcome.metadata["summary"]


def test_slo_breaches_are_warning_then_critical() -> None:
    thresholds = ServingThresholds()
    slow = serving_metrics(
        traffic(3000, "champion", "v3", 100.0, 0.02, seed=4)
    )  # gamma(2, 100): p99 ~ 660 ms
    assert 500 < float(row(slow, "champion")["latency_p99_ms"]) < 1000
    outcome = serving_checks(slow, thresholds)[0]
    by_metric = {f.metric: f for f in outcome.findings}
    assert by_metric["latency_p99_ms"].severity == "warning"
    assert by_metric["latency_p99_ms"].threshold == 500.0
    assert by_metric["error_rate"].severity == "warning"
    assert {f.subject for f in outcome.findings} == {"champion:v3"}
    assert "error_rate" in by_metric["error_rate"].message and "SLO" in by_metric["error_rate"].message

    failing = serving_metrics(traffic(3000, "champion", "v3", 10.0, 0.10, seed=5))
    finding = serving_checks(failing, thresholds)[0].findings[0]
    assert (finding.metric, finding.severity, finding.threshold) == ("error_rate", "critical", 0.05)


def test_shadow_breaches_are_capped_at_warning_and_model_row_is_not_checked() -> None:
    day = pd.concat(
        [traffic(2000, "champion", "v3", 10.0, 0.0, seed=6), traffic(2000, "shadow", "v4", 10.0, 0.2, seed=7)]
    )
    outcome = serving_checks(serving_metrics(day), ServingThresholds())[0]
    assert [(f.subject, f.metric, f.severity) for f in outcome.findings] == [
        ("shadow:v4", "error_rate", "warning")
    ]


def test_findings_are_ordered_critical_first() -> None:
    metrics = pd.DataFrame(
        {
            "role": ["champion"],
            "model_version": ["v1"],
            "latency_p50_ms": [100.0],
            "latency_p95_ms": [500.0],
            "latency_p99_ms": [700.0],
            "requests": [1000],
            "peak_requests_per_hour": [80.0],
            "error_rate": [0.2],
            "errors": [200],
        }
    )
    severities = [f.severity for f in serving_checks(metrics, ServingThresholds())[0].findings]
    assert severities == ["critical", "warning"]


def test_small_days_do_not_breach_on_sampling_noise() -> None:
    thresholds = ServingThresholds()
    # 3 errors in 255 requests is 1.2 %, above a 1 % SLO by point estimate, but its Wilson lower bound
    # (about 0.4 %) is not: no error-rate finding (the slow p99 still is one). 60 errors in 1000 (6 %)
    # has a lower bound of about 4.7 %: a warning, not critical; 90 in 1000 is critical.
    few = pd.DataFrame(
        [
            {
                "role": "champion",
                "model_version": "v1",
                "requests": 255,
                "errors": 3,
                "error_rate": 3 / 255,
                "latency_p99_ms": 5000.0,
            }
        ]
    )
    assert {f.metric for f in serving_checks(few, thresholds)[0].findings} == {"latency_p99_ms"}
    tiny = few.assign(requests=40, errors=0, error_rate=0.0)
    assert serving_checks(tiny, thresholds)[0].passed  # a p99 of 40 requests is not judged
    six = few.assign(requests=1000, errors=60, error_rate=0.06, latency_p99_ms=100.0)
    assert [f.severity for f in serving_checks(six, thresholds)[0].findings] == ["warning"]
    nine = six.assign(errors=90, error_rate=0.09)
    assert [f.severity for f in serving_checks(nine, thresholds)[0].findings] == ["critical"]
