"""Serving health per model-day checked against SLOs.

The metrics (latency percentiles, traffic, error rate per role and version, plus one model-wide row
with role = model_version = `__all__`) are aggregated in DuckDB over the model-day's rows
(storage.snapshot.Snapshot.serving); this module judges them. Sum `requests` over the non-`__all__`
rows only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring_pipelines.config import ServingThresholds
from monitoring_pipelines.core.findings import (
    SEVERITY_RANK,
    CheckResult,
    CheckSpec,
    Finding,
    Severity,
    observed,
)
from monitoring_pipelines.core.formatting import markdown_table
from monitoring_pipelines.core.stats import wilson_interval
from monitoring_pipelines.schema import ALL, result_columns

SERVING_SLO = "serving_slo"


def _check_specs(t: ServingThresholds = ServingThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008
    return (
        CheckSpec(
            SERVING_SLO,
            "critical",
            f"p99 latency (warning above {t.p99_latency_warning_ms:g} ms, critical above "
            f"{t.p99_latency_critical_ms:g} ms, judged from {t.min_n} requests) and error rate (warning above "
            f"{t.error_rate_warning:.0%}, critical above {t.error_rate_critical:.0%}, judged by its 95 % Wilson "
            "lower bound) per role and version; a shadow's breach is at most a warning since it serves no user.",
        ),
    )


CHECKS = _check_specs()
SERVING_COLUMNS = result_columns("serving_metrics")


def slo_value(metric: str, value: float, errors: int, requests: int, min_n: int) -> float | None:
    """What an SLO holds `metric` to, or None when it cannot be judged: the error rate by its 95 % Wilson
    lower bound, so a breach is more than sampling noise (3 errors in 255 requests is 1.2 % but says
    nothing about a 1 % SLO); p99 latency as is, from `min_n` requests (a p99 of a few dozen requests is
    its slowest request, not a percentile). `serving_slo` and the shadow's promotion rule both use it."""
    if not np.isfinite(value) or requests <= 0:
        return None
    if metric == "error_rate":
        return float(wilson_interval(int(errors), int(requests))[0])
    return value if requests >= min_n else None


def serving_checks(metrics: pd.DataFrame, thresholds: ServingThresholds) -> list[CheckResult]:
    """`serving_slo`: p99 latency and error rate of each role:version against the SLOs.

    Above the warning level -> warning, above the critical level -> critical (strictly greater). The
    error rate is judged by its 95 % Wilson lower bound, so a breach is more than sampling noise; p99
    latency only with at least `min_n` requests.
    A shadow serves no user, so its breaches are capped at warning: they matter for its promotion,
    not for anyone's pager. The model-wide "all" row is not checked (it repeats its parts).
    Findings are ordered critical first: latency and error rate of one role:version share a subject.
    """
    findings: list[Finding] = []
    table: list[dict[str, Any]] = []
    parts = metrics[metrics["role"] != ALL] if len(metrics) else metrics
    for row in parts.to_dict("records"):  # one per role:version, not per request
        subject = f"{row['role']}:{row['model_version']}"
        cap: Severity = "warning" if row["role"] == "shadow" else "critical"
        status = "ok"
        closest: tuple[float, str, float, float] | None = None  # the judged SLO nearest its line
        checks = (
            ("latency_p99_ms", thresholds.p99_latency_warning_ms, thresholds.p99_latency_critical_ms, "ms"),
            ("error_rate", thresholds.error_rate_warning, thresholds.error_rate_critical, ""),
        )
        for metric, warning, critical, unit in checks:
            value = float(row[metric])
            judged = slo_value(metric, value, int(row["errors"]), int(row["requests"]), thresholds.min_n)
            if judged is None:
                continue
            if judged > critical:
                severity: Severity = "critical"
                limit = critical
            elif judged > warning:
                severity, limit = "warning", warning
            else:
                ratio = judged / warning if warning > 0 else 0.0
                if closest is None or ratio > closest[0]:
                    closest = (ratio, metric, judged, warning)
                continue
            if SEVERITY_RANK[severity] > SEVERITY_RANK[cap]:
                severity = cap
            status = severity if SEVERITY_RANK[severity] > SEVERITY_RANK.get(status, -1) else status
            shown = (
                f"{value:.4g} ms" if unit else f"{value:.2%} ({int(row['errors'])} of {int(row['requests'])})"
            )
            findings.append(
                Finding(
                    check_name=SERVING_SLO,
                    severity=severity,
                    metric=metric,
                    subject=subject,
                    value=value,
                    threshold=limit,
                    message=(
                        f"{subject} {metric} {shown} is above the {'critical' if limit == critical else 'warning'} "
                        f"SLO {_show(limit, unit)} (warning {_show(warning, unit)}, critical {_show(critical, unit)}"
                        f"{'; shadow: capped at warning' if cap == 'warning' and value > critical else ''})"
                    ),
                    evidence={
                        "n": int(row["requests"]),
                        "errors": int(row["errors"]),
                        "role": str(row["role"]),
                        "model_version": str(row["model_version"]),
                        "warning_slo": warning,
                        "critical_slo": critical,
                        "estimated": False,
                    },
                )
            )
        if status == "ok" and closest is not None:
            # judged and within its SLOs: the value lets alerting resolve only with a margin (hysteresis)
            findings.append(observed(SERVING_SLO, subject, closest[1], closest[2], closest[3]))
        table.append(
            {
                "subject": subject,
                "requests": int(row["requests"]),
                "p99_ms": float(row["latency_p99_ms"]),
                "error_rate": float(row["error_rate"]),
                "status": status,
            }
        )
    findings.sort(key=lambda f: -SEVERITY_RANK.get(f.severity, -1))
    return [
        CheckResult(
            check_name=SERVING_SLO,
            findings=findings,
            metadata={
                "summary": markdown_table(table, ["subject", "requests", "p99_ms", "error_rate", "status"])
            },
            description=(
                f"p99 latency <= {thresholds.p99_latency_warning_ms:g} ms and error rate <= "
                f"{thresholds.error_rate_warning:.2%} per role:version"
            ),
        )
    ]


def _show(value: float, unit: str) -> str:
    return f"{value:g} ms" if unit else f"{value:.2%}"
