"""Serving health per model-day: latency percentiles, traffic and error rate, checked against SLOs.

Computed per (role, model_version), plus one model-wide row (role = model_version = "all") so the
table keeps its one-row-per-model-day reading; sum `requests` over the non-"all" rows only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring_pipelines.config import ServingThresholds
from monitoring_pipelines.core.findings import SEVERITY_RANK, CheckResult, Finding, Severity
from monitoring_pipelines.core.formatting import markdown_table
from monitoring_pipelines.core.stats import to_float_array, wilson_interval

ALL = "all"
SERVING_COLUMNS = [
    "role",
    "model_version",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "requests",
    "peak_requests_per_hour",
    "error_rate",
    "errors",
]
QUANTILES = {"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


def serving_metrics(day: pd.DataFrame) -> pd.DataFrame:
    """Serving metrics of every row of a model-day (both roles, `ok` and `error`), one row per
    (role, model_version) and one model-wide row ("all", "all").

    latency_p50/p95/p99_ms: percentiles (linear interpolation, as numpy) of latency_ms over the rows that
    logged one, errors included (a slow failure is still slow); nan when none did.
    requests: rows; errors: rows with status == "error" (a missing status means ok); error_rate = errors /
    requests. peak_requests_per_hour: the largest count in one UTC clock hour of `ts` (nan without ts).
    """
    frame = pd.DataFrame(
        {
            "role": _text(day, "role", "champion"),
            "model_version": _text(day, "model_version", "unknown"),
            "latency": _column(day, "latency_ms"),
            "error": _text(day, "status", "ok") == "error",
            "hour": _utc_hour(day),
        }
    )
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in SERVING_COLUMNS})
    both = pd.concat([frame, frame.assign(role=ALL, model_version=ALL)], ignore_index=True)
    keys = ["role", "model_version"]
    grouped = both.groupby(keys, sort=True)
    latency = grouped["latency"].quantile(list(QUANTILES.values())).unstack()
    latency.columns = list(QUANTILES)
    out = pd.DataFrame({"requests": grouped.size(), "errors": grouped["error"].sum()})
    out = out.join(latency)
    hourly = both.dropna(subset=["hour"]).groupby([*keys, "hour"]).size()
    out["peak_requests_per_hour"] = hourly.groupby(level=keys).max() if len(hourly) else np.nan
    out["error_rate"] = out["errors"] / out["requests"]
    out = out.reset_index()
    out["_all"] = out["role"] == ALL
    out = out.sort_values(["_all", "role", "model_version"], kind="stable").drop(columns="_all")
    out = out.reset_index(drop=True)
    return out[SERVING_COLUMNS].astype(
        {"requests": "int64", "errors": "int64", "peak_requests_per_hour": float}
    )


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
        checks = (
            ("latency_p99_ms", thresholds.p99_latency_warning_ms, thresholds.p99_latency_critical_ms, "ms"),
            ("error_rate", thresholds.error_rate_warning, thresholds.error_rate_critical, ""),
        )
        for metric, warning, critical, unit in checks:
            value = float(row[metric])
            requests = int(row["requests"])
            if not np.isfinite(value) or requests == 0:
                continue
            if metric == "latency_p99_ms" and requests < thresholds.min_n:
                continue  # a p99 of a few dozen requests is its slowest request, not a percentile
            # An error-rate breach must be more than sampling noise: the rate's 95 % Wilson lower bound
            # has to clear the SLO (3 errors in 255 requests is 1.2 % but says nothing about a 1 % SLO).
            judged = value if unit else float(wilson_interval(int(row["errors"]), requests)[0])
            if judged > critical:
                severity: Severity = "critical"
                limit = critical
            elif judged > warning:
                severity, limit = "warning", warning
            else:
                continue
            if SEVERITY_RANK[severity] > SEVERITY_RANK[cap]:
                severity = cap
            status = severity if SEVERITY_RANK[severity] > SEVERITY_RANK.get(status, -1) else status
            shown = (
                f"{value:.4g} ms" if unit else f"{value:.2%} ({int(row['errors'])} of {int(row['requests'])})"
            )
            findings.append(
                Finding(
                    check_name="serving_slo",
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
        table.append(
            {
                "subject": subject,
                "requests": int(row["requests"]),
                "p99_ms": float(row["latency_p99_ms"]),
                "error_rate": float(row["error_rate"]),
                "status": status,
            }
        )
    findings.sort(key=lambda f: -SEVERITY_RANK[f.severity])
    return [
        CheckResult(
            check_name="serving_slo",
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


def _text(day: pd.DataFrame, column: str, default: str) -> np.ndarray:
    if column not in day:
        return np.full(len(day), default, dtype=object)
    return day[column].astype("string").fillna(default).str.strip().to_numpy(dtype=object)


def _column(day: pd.DataFrame, column: str) -> np.ndarray:
    if column not in day:
        return np.full(len(day), np.nan)
    return to_float_array(day[column])


def _utc_hour(day: pd.DataFrame) -> np.ndarray:
    """The UTC clock hour of each row's ts as naive datetime64 (NaT when missing or unparsable)."""
    if "ts" not in day:
        return np.full(len(day), np.datetime64("NaT"), dtype="datetime64[ns]")
    ts = pd.to_datetime(day["ts"], utc=True, errors="coerce")
    return ts.dt.tz_convert(None).dt.floor("h").to_numpy(dtype="datetime64[ns]")


def _dtype(column: str) -> str:
    if column in ("role", "model_version"):
        return "object"
    return "int64" if column in ("requests", "errors") else "float64"
