"""Business outcomes per model-day (repaid, clicked, renewed, ...): the number the model exists to move.

Outcomes are joined to the day's requests by request_id and stored in performance_metrics as
metric `outcome:<name>`, so they share the table, the reference bands and the dashboard with the
model metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring_pipelines.config import OutcomeThresholds
from monitoring_pipelines.core.baselines import band_multiplier
from monitoring_pipelines.core.findings import CheckResult, CheckSpec, Finding
from monitoring_pipelines.core.formatting import json_float, markdown_table
from monitoring_pipelines.core.performance import PERFORMANCE_COLUMNS, compare_to_band
from monitoring_pipelines.core.stats import normal_mean_interval, to_float_array, wilson_interval

PREFIX = "outcome:"
BUSINESS_OUTCOME = "business_outcome"


def _check_specs(t: OutcomeThresholds = OutcomeThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008
    return (
        CheckSpec(
            BUSINESS_OUTCOME,
            "warning",
            f"A business outcome's rate or mean is outside its reference band (mean ± {t.band_k:g}·σ as a "
            "prediction interval for the window's day count, either "
            f"side) on at least {t.min_n} requests, with the day's interval excluding the reference mean.",
        ),
    )


CHECKS = _check_specs()


TOTAL_COLUMNS = ["outcome", "n", "mean", "sd", "total", "binary"]


def outcome_totals(
    day: pd.DataFrame, outcomes: pd.DataFrame | None, names: list[str]
) -> tuple[pd.DataFrame, int]:
    """Per outcome name over the day's requests: n, mean, sd (ddof=1), total and whether every value is
    0/1; and the number of distinct requests. For callers holding frames; the model-day snapshot
    computes the same in DuckDB (storage.snapshot.Snapshot.outcome_totals).

    `day`: the day's prediction rows (request_id; each request counted once whatever its roles).
    `outcomes`: request_id, outcome, value, ts; a request with several values for one outcome keeps the
    latest by ts; non-finite values are dropped.
    """
    requests = (
        pd.DataFrame({"request_id": day["request_id"].dropna().unique()}) if "request_id" in day else None
    )
    total = 0 if requests is None else len(requests)
    if outcomes is None or outcomes.empty or not names or requests is None:
        return pd.DataFrame(columns=TOTAL_COLUMNS), total
    kept = outcomes[outcomes["outcome"].isin(list(names))].merge(requests, on="request_id", how="inner")
    kept = kept.assign(value=to_float_array(kept["value"]))
    kept = kept[np.isfinite(kept["value"].to_numpy())]
    if "ts" in kept:
        kept = kept.assign(ts=pd.to_datetime(kept["ts"], utc=True, errors="coerce"))
        kept = kept.sort_values("ts", kind="stable", na_position="first")
    kept = kept.drop_duplicates(["request_id", "outcome"], keep="last")
    kept = kept.assign(binary=np.isin(kept["value"].to_numpy(dtype=float), (0.0, 1.0)))
    grouped = kept.groupby("outcome")
    totals = pd.DataFrame(
        {
            "n": grouped["value"].size(),
            "mean": grouped["value"].mean(),
            "sd": grouped["value"].std(ddof=1),
            "total": grouped["value"].sum(),
            "binary": grouped["binary"].all(),
        }
    ).reset_index()
    return totals[TOTAL_COLUMNS], total


def outcome_rows(
    totals: pd.DataFrame, requests: int, names: list[str], confidence: float = 0.95
) -> pd.DataFrame:
    """One performance_metrics row per configured outcome name from its totals (see outcome_totals).

    value = mean over the requests that have the outcome; n = their count; labelled_fraction = n / the
    day's distinct requests. Interval: Wilson when every value is 0 or 1 (a rate), else
    mean ± z·sd/sqrt(n) (n >= 2). A name with no outcome yet gets value nan and n = 0, so a broken
    outcome feed shows as a gap, not as a missing row. estimated is always False.
    """
    names = list(dict.fromkeys(names))
    stats = (
        totals.set_index("outcome").reindex(names)
        if len(totals)
        else pd.DataFrame(index=names, columns=TOTAL_COLUMNS[1:])
    )
    n = pd.to_numeric(stats["n"], errors="coerce").to_numpy(dtype=float, na_value=0.0)
    n = np.nan_to_num(n, nan=0.0)
    mean = pd.to_numeric(stats["mean"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    sd = pd.to_numeric(stats["sd"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    binary = stats["binary"].map(lambda v: v is True or v == 1).to_numpy(dtype=bool)
    total_values = pd.to_numeric(stats["total"], errors="coerce").to_numpy(dtype=float, na_value=0.0)
    successes = np.where(binary, np.nan_to_num(total_values, nan=0.0), 0.0)
    w_low, w_high = wilson_interval(successes, n, confidence)
    m_low, m_high = normal_mean_interval(mean, sd, n, confidence)
    low = np.where(binary, w_low, m_low)
    high = np.where(binary, w_high, m_high)
    out = pd.DataFrame(
        {
            "metric": [f"{PREFIX}{name}" for name in names],
            "value": mean,
            "ci_low": low,
            "ci_high": high,
            "n": n.astype("int64"),
            "labelled_fraction": n / requests if requests else np.full(len(names), np.nan),
            "estimated": False,
        }
    )
    return out[PERFORMANCE_COLUMNS]


def daily_outcomes(
    day: pd.DataFrame, outcomes: pd.DataFrame | None, names: list[str], confidence: float = 0.95
) -> pd.DataFrame:
    """outcome_rows of a day given as frames (see outcome_totals and outcome_rows)."""
    totals, requests = outcome_totals(day, outcomes, names)
    return outcome_rows(totals, requests, names, confidence)


def outcome_checks(
    today: pd.DataFrame, bands: pd.DataFrame, thresholds: OutcomeThresholds
) -> list[CheckResult]:
    """`business_outcome`: a warning per outcome outside its reference band mean ± band_k·σ (either side:
    whether more is better depends on the outcome), on at least min_n requests, with the day's interval
    excluding the reference mean (performance.compare_to_band). Without a band (fewer than two
    reference days) the outcome is listed in the summary and not judged.
    """
    findings: list[Finding] = []
    table: list[dict[str, Any]] = []
    rows = today[today["metric"].astype(str).str.startswith(PREFIX)] if len(today) else today
    for row in rows.to_dict("records"):  # one per configured outcome
        metric = str(row["metric"])
        value, lo, hi, n = float(row["value"]), float(row["ci_low"]), float(row["ci_high"]), int(row["n"])
        band = _band(bands, metric)
        if band is None or not np.isfinite(value):
            table.append(
                {"metric": metric, "value": value, "n": n, "status": "no value or no reference band"}
            )
            continue
        mean, std, n_days = float(band["mean"]), float(band["std"]), int(band["n_days"])
        breach, low, high = compare_to_band(value, lo, hi, mean, std, thresholds.band_k, "two_sided", n_days)
        status = "ok"
        if not np.isfinite(std):
            status = f"not judged: no day-to-day spread ({n_days} reference day)"
        elif n < thresholds.min_n:
            status = f"not judged: n={n} < min_n {thresholds.min_n}"
        elif breach:
            status = "warning"
            side, limit = ("below", low) if value < low else ("above", high)
            findings.append(
                Finding(
                    check_name=BUSINESS_OUTCOME,
                    severity="warning",
                    metric=metric,
                    subject=metric,
                    value=value,
                    threshold=limit,
                    message=(
                        f"{metric} {value:.4g} (95% CI [{lo:.4g}, {hi:.4g}], n={n}) is {side} its reference band "
                        f"[{low:.4g}, {high:.4g}] (mean {mean:.4g} ± {band_multiplier(thresholds.band_k, n_days):.3g}·σ, σ={std:.3g}, "
                        f"{n_days} reference days)"
                    ),
                    evidence={
                        "n": n,
                        "ci": [json_float(lo), json_float(hi)],
                        "band_mean": json_float(mean),
                        "band_std": json_float(std),
                        "band_k": band_multiplier(thresholds.band_k, n_days),
                        "band": [low, high],
                        "n_days": n_days,
                        "estimated": False,
                        "labelled_fraction": json_float(float(row.get("labelled_fraction", np.nan))),
                    },
                )
            )
        table.append(
            {"metric": metric, "value": value, "band": f"[{low:.4g}, {high:.4g}]", "n": n, "status": status}
        )
    return [
        CheckResult(
            check_name=BUSINESS_OUTCOME,
            findings=findings,
            metadata={"summary": markdown_table(table, ["metric", "value", "band", "n", "status"])},
            description=f"Business outcomes inside their reference band (mean ± {thresholds.band_k:g}·σ as a prediction "
            "interval for the reference's day count)",
        )
    ]


def _band(bands: pd.DataFrame, metric: str) -> pd.Series | None:
    if bands is None or bands.empty:
        return None
    match = bands["metric"] == metric
    if "estimated" in bands:
        match &= ~bands["estimated"].astype(bool)
    found = bands[match]
    if found.empty or not np.isfinite(float(found["mean"].iloc[0])):
        return None
    return found.iloc[0]
