"""Serving metrics per role:version (the snapshot's SQL against the pandas implementation it replaced)
and their SLO checks."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import ModelConfig, ServingThresholds
from monitoring_pipelines.core.serving import SERVING_COLUMNS, serving_checks
from monitoring_pipelines.core.stats import to_float_array
from monitoring_pipelines.schema import ALL
from monitoring_pipelines.storage.snapshot import Snapshot

START = dt.date(2026, 6, 1)
DAY = pd.Timestamp(START, tz="UTC")
MODEL = ModelConfig(
    name="served",
    features={"numeric": ["x"]},
    reference={"start": "2026-05-01", "end": "2026-05-28"},
)

# --------------------------------------------------------------------------- the reference
# The pandas serving_metrics the snapshot's SQL replaced (core.serving as it was), with the model-wide
# row renamed to schema.ALL ('__all__', it was 'all'); the independent reference the SQL must agree with.

QUANTILES = {"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


def reference_serving_metrics(day: pd.DataFrame) -> pd.DataFrame:
    """Serving metrics of every row of a model-day (both roles, `ok` and `error`), one row per
    (role, model_version) and one model-wide row (ALL, ALL).

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


# --------------------------------------------------------------------------- helpers


def logged(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as valid prediction-log rows of the test model (ids, model, a score on ok rows)."""
    out = frame.reset_index(drop=True).copy()
    n = len(out)
    out["prediction_id"] = [f"p{i}" for i in range(n)]
    if "request_id" not in out:
        out["request_id"] = [f"r{i}" for i in range(n)]
    out["model_name"] = MODEL.name
    error = out["status"].eq("error").to_numpy() if "status" in out else np.zeros(n, dtype=bool)
    out["score"] = np.where(error, np.nan, 0.25)
    out["prediction"] = np.where(error, np.nan, 0.0)
    out["x"] = 1.0
    return out


def serving_of(raw: pd.DataFrame) -> pd.DataFrame:
    """The serving_metrics rows of a day of raw rows, as the pipeline computes them (its snapshot)."""
    snap, _ = Snapshot.from_frame(MODEL, raw, START)
    with snap:
        return snap.serving()


def traffic(
    n: int, role: str, version: str, latency_scale: float, error_rate: float, seed: int
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return logged(
        pd.DataFrame(
            {
                "request_id": [f"r{i}" for i in range(n)],
                "role": role,
                "model_version": version,
                "latency_ms": rng.gamma(2.0, latency_scale, n),
                "status": np.where(rng.random(n) < error_rate, "error", "ok"),
                "ts": DAY + pd.to_timedelta(rng.uniform(0, 86_400, n), unit="s"),
            }
        )
    )


def row(metrics: pd.DataFrame, role: str) -> pd.Series:
    return metrics.loc[metrics["role"] == role].iloc[0]


def adversarial_day(seed: int) -> pd.DataFrame:
    """Rows that exercise every serving rule: two roles and several versions (one differing only by case),
    error rows with and without a latency, missing latencies, a version with no latency at all, one with a
    single row, one of errors only, latency ties, rows on hour boundaries, ts in a half-hour time zone
    (its UTC clock hour is not its local one) and rows of the next UTC day."""
    rng = np.random.default_rng(seed)
    n = 3000
    versions = np.array(["v1", "v2", "V2", "v10"])
    role = rng.choice(["champion", "shadow"], n, p=[0.7, 0.3])
    version = rng.choice(versions, n, p=[0.5, 0.2, 0.1, 0.2])
    latency = np.round(rng.gamma(2.0, 40.0, n), 0)  # rounded: many ties
    latency[rng.random(n) < 0.1] = np.nan
    status = np.where(rng.random(n) < 0.05, "error", "ok")
    # busy hours: a skewed hour of day, some rows exactly on the hour, some of the next UTC day
    hours = rng.choice(24, n, p=np.r_[np.full(12, 0.02), np.full(12, 1 - 0.24) / 12])
    seconds = np.where(rng.random(n) < 0.1, 0, rng.integers(0, 3600, n))
    ts = DAY + pd.to_timedelta(hours * 3600 + seconds, unit="s")
    ts = ts.where(rng.random(n) > 0.03, ts + pd.Timedelta(days=1))
    frame = pd.DataFrame(
        {"role": role, "model_version": version, "latency_ms": latency, "status": status, "ts": ts}
    )
    extra = pd.DataFrame(
        {
            "role": ["shadow", "shadow", "shadow", "champion", "champion", "champion"],
            "model_version": ["lonely", "quiet", "quiet", "broken", "broken", "broken"],
            "latency_ms": [12.5, np.nan, np.nan, 900.0, np.nan, 30.0],
            "status": ["ok", "ok", "error", "error", "error", "error"],
            "ts": [DAY + pd.Timedelta(hours=h) for h in (1, 2, 2, 3, 3, 4)],
        }
    )
    frame = pd.concat([frame, extra], ignore_index=True)
    # the same instants written in India Standard Time (UTC+05:30)
    frame["ts"] = pd.to_datetime(frame["ts"]).dt.tz_convert("Asia/Kolkata")
    return logged(frame)


# --------------------------------------------------------------------------- the SQL against the reference


@pytest.mark.parametrize("seed", range(4))
def test_snapshot_serving_equals_the_reference_on_adversarial_days(seed: int) -> None:
    raw = adversarial_day(seed)
    snap, validation = Snapshot.from_frame(MODEL, raw, START)
    with snap:
        assert validation.quarantined_rows == 0
        got = snap.serving()
        valid = snap.frame()
    expected = reference_serving_metrics(valid)
    assert list(got.columns) == SERVING_COLUMNS
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)
    parts = got[got["role"] != ALL]
    assert list(zip(parts["role"], parts["model_version"], strict=True)) == sorted(
        zip(parts["role"], parts["model_version"], strict=True)
    )
    assert tuple(got.iloc[-1][["role", "model_version"]]) == (ALL, ALL)
    quiet = got.set_index(["role", "model_version"])
    assert math.isnan(quiet.loc[("shadow", "quiet"), "latency_p99_ms"])
    assert quiet.loc[("champion", "broken"), "error_rate"] == 1.0
    assert quiet.loc[("shadow", "lonely"), "latency_p50_ms"] == 12.5
    # the model-wide row's peak is the busiest UTC hour of all rows, not the largest part's peak
    hours = pd.to_datetime(raw["ts"], utc=True).dt.floor("h")
    assert quiet.loc[(ALL, ALL), "peak_requests_per_hour"] == hours.value_counts().max()


def test_snapshot_serving_of_one_day_of_several() -> None:
    raw = adversarial_day(9)
    snap, _ = Snapshot.from_frame(MODEL, raw, START, START + dt.timedelta(days=1))
    with snap:
        got = snap.serving(START)
        valid = snap.frame(where=f"partition_date = DATE '{START.isoformat()}'")
        everything = snap.serving()
    assert len(valid) < len(raw)
    pd.testing.assert_frame_equal(got, reference_serving_metrics(valid), check_dtype=False, rtol=1e-12)
    assert row(everything, ALL)["requests"] == len(raw) > row(got, ALL)["requests"]


# --------------------------------------------------------------------------- metrics


def test_serving_metrics_per_role_version_and_model_wide() -> None:
    champion = traffic(2000, "champion", "v3", 50.0, 0.02, seed=1)
    shadow = traffic(1000, "shadow", "v4", 80.0, 0.0, seed=2)
    day = pd.concat([champion, shadow], ignore_index=True)
    day["prediction_id"] = [f"p{i}" for i in range(len(day))]
    metrics = serving_of(day)
    assert list(metrics.columns) == SERVING_COLUMNS
    assert list(zip(metrics["role"], metrics["model_version"], strict=True)) == [
        ("champion", "v3"),
        ("shadow", "v4"),
        (ALL, ALL),
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
    everything = row(metrics, ALL)
    assert everything["requests"] == 3000
    assert everything["latency_p99_ms"] == pytest.approx(np.percentile(day["latency_ms"], 99), rel=1e-12)


def test_missing_optional_columns_and_empty_day() -> None:
    bare = logged(
        pd.DataFrame(
            {
                "request_id": ["a", "b"],
                "role": ["champion", "champion"],
                "model_version": ["v1", "v1"],
                "ts": [DAY + pd.Timedelta(minutes=5), DAY + pd.Timedelta(minutes=50)],
            }
        )
    )
    assert "latency_ms" not in bare and "status" not in bare  # both optional in the log
    metrics = serving_of(bare)
    champ = row(metrics, "champion")
    assert champ["requests"] == 2 and champ["errors"] == 0 and champ["error_rate"] == 0.0
    assert math.isnan(champ["latency_p99_ms"]) and champ["peak_requests_per_hour"] == 2
    # ts is required now: rows without one are quarantined, so they are no served requests
    no_ts = serving_of(bare.assign(ts=pd.NaT))
    assert no_ts.empty and list(no_ts.columns) == SERVING_COLUMNS
    empty = serving_of(bare.iloc[:0])
    assert empty.empty and list(empty.columns) == SERVING_COLUMNS
    assert serving_checks(empty, ServingThresholds())[0].passed
    no_columns = serving_of(pd.DataFrame())
    assert no_columns.empty and list(no_columns.columns) == SERVING_COLUMNS


def test_healthy_serving_passes() -> None:
    metrics = serving_of(traffic(3000, "champion", "v3", 40.0, 0.001, seed=3))
    outcome = serving_checks(metrics, ServingThresholds())[0]
    assert outcome.check_name == "serving_slo" and outcome.passed
    assert "champion:v3" in outcome.metadata["summary"]


def test_slo_breaches_are_warning_then_critical() -> None:
    thresholds = ServingThresholds()
    slow = serving_of(traffic(3000, "champion", "v3", 100.0, 0.02, seed=4))  # gamma(2, 100): p99 ~ 660 ms
    assert 500 < float(row(slow, "champion")["latency_p99_ms"]) < 1000
    outcome = serving_checks(slow, thresholds)[0]
    by_metric = {f.metric: f for f in outcome.findings}
    assert by_metric["latency_p99_ms"].severity == "warning"
    assert by_metric["latency_p99_ms"].threshold == 500.0
    assert by_metric["error_rate"].severity == "warning"
    assert {f.subject for f in outcome.findings} == {"champion:v3"}
    assert "error_rate" in by_metric["error_rate"].message and "SLO" in by_metric["error_rate"].message

    failing = serving_of(traffic(3000, "champion", "v3", 10.0, 0.10, seed=5))
    finding = serving_checks(failing, thresholds)[0].findings[0]
    assert (finding.metric, finding.severity, finding.threshold) == ("error_rate", "critical", 0.05)


def test_shadow_breaches_are_capped_at_warning_and_model_row_is_not_checked() -> None:
    day = pd.concat(
        [
            traffic(2000, "champion", "v3", 10.0, 0.0, seed=6),
            traffic(2000, "shadow", "v4", 10.0, 0.2, seed=7),
        ],
        ignore_index=True,
    )
    day["prediction_id"] = [f"p{i}" for i in range(len(day))]
    metrics = serving_of(day)
    assert row(metrics, ALL)["error_rate"] == pytest.approx(row(metrics, "shadow")["errors"] / 4000)
    outcome = serving_checks(metrics, ServingThresholds())[0]
    assert [(f.subject, f.metric, f.severity) for f in outcome.findings] == [
        ("shadow:v4", "error_rate", "warning"),
        ("champion:v3", "latency_p99_ms", "ok"),  # judged and fine: its value, for hysteresis
    ]
    ok = outcome.findings[1]
    assert ok.threshold == ServingThresholds().p99_latency_warning_ms and ok.value < ok.threshold


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
