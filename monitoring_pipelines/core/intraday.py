"""The intraday watch: label-free checks on the current UTC day so far, looked at every few minutes.

Pure. A look (:func:`look`) judges the rows logged up to its clock (`look_at`) in two windows, the day
so far and the last `window_minutes`, with the nightly checks' names and subjects, so its findings
become the same alerts (same dedup keys) as the nightly run's:

- `serving_metrics.serving_slo`: error rate and p99 latency per role:version;
- `drift_scores.data_quality`: null-rate increase, values outside the reference range, unseen categories;
- `drift_scores.feature_drift` / `critical_drift`: drift of the inputs, the score and the decision rate
  (`core.drift.compute_drift` on the day so far);
- `intraday_today.volume`: requests so far against the reference's traffic by this time of day.

Looks repeat, so every test of a look runs at `alpha / (2 × looks per day)` (Bonferroni over the day's
planned looks and the two windows): a rate fires only when its one-sided lower confidence bound at that
level clears the nightly threshold (an effect size that is more than sampling noise), drift needs its
KS / chi-squared test significant at that level after Benjamini-Hochberg, volume needs its z-test.
docs/intraday.md says why this rule and not O'Brien-Fleming.

Between looks and the nightly run: :func:`intraday_history` folds a day's looks into one
`check_results`-shaped row per check (a subject that failed at any look stays failed for the day: the
nightly run decides), and :func:`merge_history` lets a nightly row of the same model, day, asset and
check supersede them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from monitoring_pipelines.config import DriftThresholds, ModelConfig, ServingThresholds
from monitoring_pipelines.core.alerts import HISTORY_COLUMNS  # the looks fold into the nightly history's rows
from monitoring_pipelines.core.drift import (
    CRITICAL_DRIFT,
    DATA_QUALITY,
    FEATURE_DRIFT,
    compute_drift,
    drift_checks,
)
from monitoring_pipelines.core.findings import (
    SEVERITY_RANK,
    UNKNOWN,
    CheckResult,
    Finding,
    Severity,
    not_enough_data,
    observed,
)
from monitoring_pipelines.core.formatting import json_float
from monitoring_pipelines.core.profiles import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    category_key,
)
from monitoring_pipelines.core.serving import SERVING_SLO
from monitoring_pipelines.core.thresholds import resolve_threshold, variability_bands
from monitoring_pipelines.intraday_config import IntradayConfig
from monitoring_pipelines.schema import CHAMPION, ERROR, OK, columns_of

INTRADAY_ASSET = "intraday_today"  # the "today so far" asset; also the asset of intraday-only checks
VOLUME = "volume"
DAY_WINDOW, RECENT_WINDOW = "day", "recent"
INTRADAY_COLUMNS = columns_of("intraday_results")
P99_SHARE = 0.01  # p99 above the SLO <=> more than 1 % of requests slower than the SLO
SECONDS_PER_DAY = 86_400


# --------------------------------------------------------------------------- the look's level


def look_alpha(config: IntradayConfig) -> float:
    """The significance level of one test at one look: the day's budget `alpha` split evenly (Bonferroni)
    over the planned looks and the two windows, so P(any false alarm of one test in a day) <= alpha."""
    return config.alpha / (2 * config.looks_per_day)


def rate_lower_bound(successes: np.ndarray | int, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Wilson lower confidence bound of a share, elementwise (NaN where n == 0): the
    lower end of `core.stats.wilson_interval` at confidence 1 - 2 alpha, in closed form because a look
    computes thousands of them."""
    z = _z(alpha)
    k = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / total
        denom = 1.0 + z * z / total
        centre = p + z * z / (2.0 * total)
        half = z * np.sqrt(p * (1.0 - p) / total + z * z / (4.0 * total * total))
        low = (centre - half) / denom
    return np.where(total > 0, np.clip(low, 0.0, 1.0), np.nan)


@lru_cache(maxsize=64)
def _z(alpha: float) -> float:
    return float(stats.norm.isf(alpha))


# --------------------------------------------------------------------------- reference traffic


@dataclass(frozen=True)
class HourlyTraffic:
    """Requests per UTC hour of day of each reference day (days × 24): what a day's volume by a time of
    day is expected to be, and how much it varies from day to day. `weekend` marks Saturdays and Sundays:
    a day is compared with the reference days of its kind when there are MIN_SAME_KIND_DAYS of them
    (weekend traffic is commonly a third lower, which would otherwise read as day-to-day noise)."""

    counts: np.ndarray
    weekend: np.ndarray | None = None

    @property
    def days(self) -> int:
        return int(self.counts.shape[0])

    def _weights(self, lo_s: float, hi_s: float) -> np.ndarray:
        """Share of each hour inside [lo_s, hi_s) seconds of the day (traffic uniform within an hour)."""
        start = np.arange(24) * 3600.0
        return np.clip((np.minimum(hi_s, start + 3600) - np.maximum(lo_s, start)) / 3600.0, 0.0, 1.0)

    def _rows(self, day: dt.date | None) -> np.ndarray:
        if day is None or self.weekend is None:
            return self.counts
        same = self.weekend == (day.weekday() >= 5)
        return self.counts[same] if same.sum() >= MIN_SAME_KIND_DAYS else self.counts

    def expected(self, lo_s: float, hi_s: float, day: dt.date | None = None) -> tuple[float, float]:
        """Mean over the reference days (of `day`'s kind) of their requests in [lo_s, hi_s) of the day, and
        its day-to-day standard deviation (0 with fewer than two days)."""
        rows = self._rows(day)
        if rows.shape[0] == 0:
            return float("nan"), float("nan")
        per_day = rows @ self._weights(lo_s, hi_s)
        sd = float(per_day.std(ddof=1)) if rows.shape[0] > 1 else 0.0
        return float(per_day.mean()), sd

    def hourly_mean(self) -> np.ndarray:
        return self.counts.mean(axis=0) if self.days else np.zeros(24)


MIN_SAME_KIND_DAYS = 3


def hourly_traffic(counts: pd.DataFrame) -> HourlyTraffic:
    """From rows (day, hour, n): the reference's requests per day and UTC hour; hours without a row are 0."""
    if counts is None or counts.empty:
        return HourlyTraffic(np.zeros((0, 24)), np.zeros(0, dtype=bool))
    days = sorted({_as_date(d) for d in counts["day"]})
    index = {d: i for i, d in enumerate(days)}
    matrix = np.zeros((len(days), 24))
    rows = np.array([index[_as_date(d)] for d in counts["day"]], dtype=np.int64)
    np.add.at(matrix, (rows, counts["hour"].to_numpy(dtype=np.int64)), counts["n"].to_numpy(dtype=float))
    return HourlyTraffic(matrix, np.array([d.weekday() >= 5 for d in days], dtype=bool))


# --------------------------------------------------------------------------- a look


@dataclass(frozen=True)
class Look:
    """What one look found: per asset a check result, plus what the `intraday_results` row records."""

    model_name: str
    day: dt.date
    look_at: pd.Timestamp
    rows_so_far: int
    data_until: pd.Timestamp | None
    alpha: float
    results: list[tuple[str, CheckResult]] = field(default_factory=list)

    def rows(self, run_id: str | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
        """The look as `intraday_results` rows, one per check."""
        out = [
            {
                "model_name": self.model_name,
                "partition_date": self.day,
                "look_at": self.look_at,
                "asset": asset,
                "check_name": result.check_name,
                "passed": result.status == "passed",
                "severity": UNKNOWN if result.status == "unknown" else result.severity,
                "findings": json.dumps([f.to_dict() for f in result.findings], default=_json_default),
                "rows_so_far": self.rows_so_far,
                "data_until": self.data_until,
                "alpha": self.alpha,
                "run_id": run_id,
                "evaluated_at": now if now is not None else pd.Timestamp.now(tz="UTC"),
            }
            for asset, result in self.results
        ]
        return pd.DataFrame(out, columns=INTRADAY_COLUMNS)

    @property
    def failing(self) -> list[Finding]:
        return [f for _, r in self.results for f in r.findings if f.severity in ("warning", "critical")]


def _json_default(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


@dataclass(frozen=True)
class Window:
    """The rows of one window of the look, as arrays (valid rows only)."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    mask: np.ndarray  # over the look's frame


def look(
    frame: pd.DataFrame,
    model: ModelConfig,
    profile: ReferenceProfile | None,
    traffic: HourlyTraffic | None,
    day: dt.date,
    look_at: pd.Timestamp,
    since: pd.Timestamp | None = None,
) -> Look:
    """Judge the model's valid rows of `day` logged up to `look_at` (rows after it are ignored, so a test
    can hold the whole day and look at 10:15). `frame` needs `ts` (UTC), `role`, `model_version`, `status`,
    `latency_ms`, `score`, `prediction` and the model's feature columns. `since` is the previous look's
    clock: a failing finding's `first_bad_ts` is the first bad row after it (the incident's onset as far
    as the looks can tell). `profile` None (no reference yet): only serving SLOs are judged; `traffic`
    None: volume is not judged."""
    cfg = model.intraday or IntradayConfig()
    alpha = look_alpha(cfg)
    look_at = as_utc(look_at)
    day_start = pd.Timestamp(day, tz="UTC")
    ts_ns = _ts_ns(frame["ts"]) if len(frame) else np.zeros(0, dtype=np.int64)
    in_day = (
        (ts_ns >= day_start.value)
        & (ts_ns <= look_at.value)
        & (ts_ns < (day_start + pd.Timedelta(days=1)).value)
    )
    frame, ts_ns = frame[in_day], ts_ns[in_day]
    order = np.argsort(ts_ns, kind="stable")  # time order: onsets scan the rows backwards from the look
    frame, ts_ns = frame.iloc[order].reset_index(drop=True), ts_ns[order]
    since = as_utc(since) if since is not None else day_start
    windows = [Window(DAY_WINDOW, day_start, look_at, np.ones(len(frame), dtype=bool))]
    recent_start = look_at - pd.Timedelta(minutes=cfg.window_minutes)
    if recent_start > day_start:
        windows.append(Window(RECENT_WINDOW, recent_start, look_at, ts_ns > recent_start.value))
    ctx = _Ctx(frame, ts_ns, since, alpha, cfg, model)
    results: list[tuple[str, CheckResult]] = [
        ("serving_metrics", _serving(ctx, windows, model.thresholds.serving))
    ]
    if profile is not None:
        results.append(("drift_scores", _quality(ctx, windows, profile, model.thresholds.drift)))
        results += _drift(ctx, profile, model.thresholds.drift)
    if traffic is not None and traffic.days:
        results.append((INTRADAY_ASSET, _volume(ctx, traffic, day_start, look_at)))
    until = pd.Timestamp(int(ts_ns.max()), tz="UTC") if len(ts_ns) else None
    return Look(model.name, day, look_at, len(frame), until, alpha, results)


@dataclass(frozen=True)
class _Ctx:
    frame: pd.DataFrame
    ts_ns: np.ndarray
    since: pd.Timestamp
    alpha: float
    cfg: IntradayConfig
    model: ModelConfig

    def onset(self, pool: np.ndarray, bad: np.ndarray, p0: float, p1: float) -> str | None:
        """The incident's first bad row among the subject's rows of the day so far (`pool`, time order):
        the change point of a Bernoulli CUSUM, the start i maximising the log-likelihood ratio of
        "bad at rate p1 (what the failing window saw) from i on" against "bad at rate p0 (the line)",
        then the first bad row from there. Baseline bad rows before the incident (an error at 08:48 on a
        normal morning) lower the sum, so they are not taken for its start."""
        idx = np.flatnonzero(pool)
        x = bad[idx]
        if not x.any():
            return None
        p0 = float(np.clip(p0, 1e-9, 1 - 1e-9))
        p1 = float(np.clip(p1, 1e-9, 1 - 1e-9))
        if p1 <= p0:
            p1 = min(1 - 1e-9, 2 * p0)
        llr = np.where(x, np.log(p1 / p0), np.log((1 - p1) / (1 - p0)))
        tail = np.cumsum(llr[::-1])[::-1]
        start = int(np.argmax(tail))
        first = start + int(np.argmax(x[start:]))
        return pd.Timestamp(int(self.ts_ns[idx[first]]), tz="UTC").isoformat()

    def after_previous_look(self, pool: np.ndarray) -> str | None:
        """For drift and volume, whose bad rows cannot be told apart: the first row after the previous look."""
        times = self.ts_ns[pool]
        later = times[times > self.since.value]
        if not times.size:
            return None
        return pd.Timestamp(int(later.min() if later.size else times.min()), tz="UTC").isoformat()

    def champion_ok(self) -> np.ndarray:
        frame = self.frame
        return ((frame["role"] == CHAMPION) & (frame["status"] == OK)).to_numpy(dtype=bool)


def _serving(ctx: _Ctx, windows: list[Window], t: ServingThresholds) -> CheckResult:
    """serving_slo per role:version and window: the error rate's lower bound above the SLO; p99 latency
    above the SLO when the share of requests slower than it has its lower bound above 1 %."""
    findings: list[Finding] = []
    frame = ctx.frame
    if not len(frame):
        return CheckResult(SERVING_SLO, [], {"window_rows": 0}, unknown=_no_rows(ctx.cfg.min_n))
    keys = frame[["role", "model_version"]].astype(str)
    role, version = keys["role"].to_numpy(), keys["model_version"].to_numpy()
    error = (frame["status"] == ERROR).to_numpy(dtype=bool)
    latency = frame["latency_ms"].to_numpy(dtype=float, na_value=np.nan)
    subjects = sorted(keys.drop_duplicates().itertuples(index=False, name=None))  # a few role:version pairs
    for w in windows:
        for r, v in subjects:
            sel = w.mask & (role == r) & (version == v)
            n = int(sel.sum())
            subject = f"{r}:{v}"
            if n < ctx.cfg.min_n:
                findings.append(not_enough_data(SERVING_SLO, subject, "error_rate", n, ctx.cfg.min_n))
                continue
            cap: Severity = "warning" if r != CHAMPION else "critical"
            errs = int((sel & error).sum())
            low = float(rate_lower_bound(errs, n, ctx.alpha))
            rows = (role == r) & (version == v)
            entries = [
                _judge(
                    SERVING_SLO,
                    subject,
                    "error_rate",
                    errs / n,
                    low,
                    t.error_rate_warning,
                    t.error_rate_critical,
                    cap,
                    ctx,
                    (rows, rows & error),
                    w,
                    n=n,
                    errors=errs,
                )
            ]
            lat = latency[sel]
            timed = lat[np.isfinite(lat)]
            if timed.size >= max(t.min_n, ctx.cfg.min_n):
                p99 = float(np.quantile(timed, 0.99))
                slow_w = int((timed > t.p99_latency_warning_ms).sum())
                slow_c = int((timed > t.p99_latency_critical_ms).sum())
                low_w = float(rate_lower_bound(slow_w, timed.size, ctx.alpha))
                low_c = float(rate_lower_bound(slow_c, timed.size, ctx.alpha))
                level = "critical" if low_c > P99_SHARE else "warning" if low_w > P99_SHARE else None
                if level is not None:
                    severity = _capped(level, cap)
                    limit = t.p99_latency_critical_ms if level == "critical" else t.p99_latency_warning_ms
                    timed_rows = (role == r) & (version == v) & np.isfinite(latency)
                    slow_share = (slow_c if level == "critical" else slow_w) / timed.size
                    onset = ctx.onset(timed_rows, timed_rows & (latency > limit), P99_SHARE, slow_share)
                    entries.append(
                        _finding(
                            SERVING_SLO,
                            severity,
                            subject,
                            "latency_p99_ms",
                            p99,
                            limit,
                            f"{subject} latency_p99_ms {p99:.4g} ms is above the {level} SLO {limit:g} ms "
                            f"in the {_window_text(w)} ({timed.size} requests)",
                            ctx,
                            onset,
                            w,
                            n=int(timed.size),
                        )
                    )
                else:
                    entries.append(
                        observed(
                            SERVING_SLO,
                            subject,
                            "latency_p99_ms",
                            p99,
                            t.p99_latency_warning_ms,
                            window=w.name,
                        )
                    )
            findings += entries
    return CheckResult(
        SERVING_SLO,
        _worst_per_subject(findings),
        {"rows_so_far": len(frame)},
        "serving SLOs of the day so far and the recent window, at the look's alpha",
    )


def _judge(
    check: str,
    subject: str,
    metric: str,
    value: float,
    low: float,
    warning: float,
    critical: float,
    cap: Severity,
    ctx: _Ctx,
    rows: tuple[np.ndarray, np.ndarray],
    w: Window,
    baseline: float = 0.0,
    **evidence: Any,
) -> Finding:
    """A share judged by its lower confidence bound against the warning and critical lines. `rows`: the
    subject's rows of the day so far and the bad ones among them, for the onset; `baseline` is added to
    `value` and the lines to make them shares (the reference null rate for a null-rate increase)."""
    if not np.isfinite(low) or low <= warning:
        return observed(
            check,
            subject,
            metric,
            json_float(value) or 0.0,
            warning,
            window=w.name,
            lower_bound=json_float(low),
        )
    level: Severity = "critical" if low > critical else "warning"
    limit = critical if level == "critical" else warning
    severity = _capped(level, cap)
    text = (
        f"{subject} {metric} {value:.2%} in the {_window_text(w)} is above the {level} line {limit:.2%} "
        f"(lower bound {low:.2%} at alpha {ctx.alpha:.2g})"
    )
    onset = ctx.onset(rows[0], rows[1], warning + baseline, value + baseline)
    return _finding(
        check, severity, subject, metric, value, limit, text, ctx, onset, w, lower_bound=low, **evidence
    )


def _finding(
    check: str,
    severity: Severity,
    subject: str,
    metric: str,
    value: float,
    threshold: float,
    message: str,
    ctx: _Ctx,
    onset: str | None,
    w: Window,
    **evidence: Any,
) -> Finding:
    return Finding(
        check_name=check,
        severity=severity,
        metric=metric,
        subject=subject,
        value=json_float(value),
        threshold=json_float(threshold),
        message=f"intraday: {message}",
        evidence={
            **{k: json_float(v) if isinstance(v, float) else v for k, v in evidence.items()},
            "intraday": True,
            "window": w.name,
            "window_start": w.start.isoformat(),
            "window_end": w.end.isoformat(),
            "alpha": ctx.alpha,
            "first_bad_ts": onset,
            "direction": "higher_is_worse",
        },
    )


def _capped(level: Severity, cap: Severity) -> Severity:
    return cap if SEVERITY_RANK[level] > SEVERITY_RANK[cap] else level


def _window_text(w: Window) -> str:
    return (
        "day so far" if w.name == DAY_WINDOW else f"last {int((w.end - w.start).total_seconds() // 60)} min"
    )


def _no_rows(needed: int) -> str:
    return f"not enough data: n=0 rows, needs {needed}"


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: -SEVERITY_RANK.get(f.severity, -1))


def _quality(ctx: _Ctx, windows: list[Window], profile: ReferenceProfile, d: DriftThresholds) -> CheckResult:
    """data_quality per feature and window: null-rate increase, out-of-range and unseen shares, each
    judged by its lower confidence bound against the nightly thresholds (reference bands included)."""
    frame = ctx.frame
    base = ctx.champion_ok()
    bands = variability_bands(profile.variability_frame())
    findings: list[Finding] = []
    for prof in profile.features.values():
        if not d.feature_enabled(prof.feature) or prof.column not in frame.columns:
            continue
        t = d.for_feature(prof.feature)
        column = frame[prof.column]
        if isinstance(prof, NumericProfile):
            values = column.to_numpy(dtype=float, na_value=np.nan)
            present = np.isfinite(values)
            with np.errstate(invalid="ignore"):
                strange = present & ((values < prof.min) | (values > prof.max))
            strange_stat = "out_of_range_share"
        else:
            assert isinstance(prof, CategoricalProfile)
            present = column.notna().to_numpy()
            if prof.seen_complete:
                strange = present & _unseen(column, prof.seen)
            else:
                strange = np.zeros(len(frame), dtype=bool)
            strange_stat = "unseen_share" if prof.seen_complete else ""
        for w in windows:
            sel = base & w.mask
            n = int(sel.sum())
            if n < ctx.cfg.min_n:
                findings.append(
                    not_enough_data(DATA_QUALITY, prof.feature, "null_rate_change", n, ctx.cfg.min_n)
                )
                continue
            nulls = sel & ~present
            k = int(nulls.sum())
            line = resolve_threshold(
                t, prof.feature, "null_rate_change", bands.get((prof.feature, "null_rate_change"))
            )
            low = float(rate_lower_bound(k, n, ctx.alpha)) - prof.null_rate
            findings.append(
                _judge(
                    DATA_QUALITY,
                    prof.feature,
                    "null_rate_change",
                    k / n - prof.null_rate,
                    low,
                    line.warning,
                    line.critical,
                    "critical",
                    ctx,
                    (base, base & ~present),
                    w,
                    baseline=prof.null_rate,
                    n=n,
                    nulls=k,
                    reference_null_rate=prof.null_rate,
                )
            )
            m = int((sel & present).sum())
            if strange_stat and m >= ctx.cfg.min_n:
                odd = sel & strange
                k = int(odd.sum())
                line = resolve_threshold(
                    t, prof.feature, strange_stat, bands.get((prof.feature, strange_stat))
                )
                low = float(rate_lower_bound(k, m, ctx.alpha))
                findings.append(
                    _judge(
                        DATA_QUALITY,
                        prof.feature,
                        strange_stat,
                        k / m,
                        low,
                        line.warning,
                        line.critical,
                        "critical",
                        ctx,
                        (base & present, base & strange),
                        w,
                        n=m,
                        count=k,
                    )
                )
    return CheckResult(
        DATA_QUALITY,
        _worst_per_subject(findings),
        {"rows_so_far": len(frame)},
        "null spikes, out-of-range values and unseen categories of the day so far and the recent window",
    )


def _unseen(column: pd.Series, seen: frozenset[str]) -> np.ndarray:
    """Rows whose value the reference never had, with values keyed as the profile keys them
    (core.profiles.category_key: 1.0 and 1 are "1"), without formatting every row."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        known = np.array([category_key(c) in seen for c in column.cat.categories], dtype=bool)
        codes = column.cat.codes.to_numpy()
        return (codes >= 0) & ~known[np.maximum(codes, 0)]
    if pd.api.types.is_numeric_dtype(column.dtype):  # the 0/1 decision
        numbers = []
        for key in seen:
            try:
                numbers.append(float(key))
            except ValueError:
                continue
        values = column.to_numpy(dtype=float, na_value=np.nan)
        return np.isfinite(values) & ~np.isin(values, np.array(numbers, dtype=float))
    if pd.api.types.infer_dtype(column, skipna=True) != "string":
        column = column.map(category_key, na_action="ignore")
    return column.notna().to_numpy() & ~column.isin(seen).to_numpy()


def _worst_per_subject(findings: list[Finding]) -> list[Finding]:
    """Every failing finding, and for a subject with none its entry closest to its line (what the
    nightly data_quality check reports), so the day's row is small whatever the number of looks."""
    failing = [f for f in findings if f.severity in ("warning", "critical")]
    bad_subjects = {f.subject for f in failing}
    rest: dict[str, Finding] = {}
    for f in findings:
        if f.subject in bad_subjects:
            continue
        prev = rest.get(f.subject)
        if prev is None or _closeness(f) > _closeness(prev):
            rest[f.subject] = f
    return _ordered([*failing, *rest.values()])


def _closeness(f: Finding) -> float:
    if f.severity == UNKNOWN:
        return -math.inf
    if f.value is None or not f.threshold:
        return -1.0
    return float(f.value) / float(f.threshold)


def _drift(ctx: _Ctx, profile: ReferenceProfile, d: DriftThresholds) -> list[tuple[str, CheckResult]]:
    """feature_drift and critical_drift of the day so far: the nightly rule (effect size past its
    threshold AND significant after BH) with the look's alpha and at least `drift_min_n` values."""
    rows = ctx.champion_ok()
    current = ctx.frame[rows]
    thresholds = d.model_copy(update={"fdr_alpha": ctx.alpha, "min_n": max(ctx.cfg.drift_min_n, 1)})
    if len(current) < ctx.cfg.drift_min_n:
        reason = f"not enough data: n={len(current)} rows, needs {ctx.cfg.drift_min_n}"
        return [
            ("drift_scores", CheckResult(c, [], {}, unknown=reason)) for c in (FEATURE_DRIFT, CRITICAL_DRIFT)
        ]
    scores = compute_drift(profile, current, thresholds)
    out = []
    onset = ctx.after_previous_look(rows)
    for result in drift_checks(scores, thresholds, profile.version):
        if result.check_name == DATA_QUALITY:
            continue  # judged per window with confidence bounds above
        findings = [
            Finding(
                **{
                    **f.to_dict(),
                    "message": f"intraday (day so far): {f.message}",
                    "evidence": {
                        **f.evidence,
                        "intraday": True,
                        "window": DAY_WINDOW,
                        "alpha": ctx.alpha,
                        "first_bad_ts": onset,
                    },
                }
            )
            if f.severity in ("warning", "critical")
            else f
            for f in result.findings
        ]
        out.append(
            (
                "drift_scores",
                CheckResult(result.check_name, findings, result.metadata, result.description, result.unknown),
            )
        )
    return out


def _volume(ctx: _Ctx, traffic: HourlyTraffic, day_start: pd.Timestamp, look_at: pd.Timestamp) -> CheckResult:
    """Champion requests so far against the reference's mean by this time of day: a z-test whose variance
    is Poisson plus the reference's day-to-day variance, at the look's alpha, and a ratio past the lines."""
    cfg = ctx.cfg
    seconds = (look_at - day_start).total_seconds()
    expected, sd_days = traffic.expected(0.0, seconds, day_start.date())
    champion = (
        (ctx.frame["role"] == CHAMPION).to_numpy(dtype=bool) if len(ctx.frame) else np.zeros(0, dtype=bool)
    )
    n = int(champion.sum())
    if not np.isfinite(expected) or expected < cfg.volume_min_expected:
        needed = int(cfg.volume_min_expected)
        return CheckResult(
            VOLUME,
            [
                not_enough_data(
                    VOLUME, "model", "volume_ratio", int(expected or 0), needed, "requests expected by now"
                )
            ],
            unknown=f"not enough data: {expected:.0f} requests expected by now, needs {needed}",
        )
    ratio = n / expected
    z = (n - expected) / math.sqrt(expected + sd_days**2)
    p_low, p_high = float(stats.norm.cdf(z)), float(stats.norm.sf(z))
    evidence = {
        "n": n,
        "expected": round(expected, 1),
        "reference_sd": round(sd_days, 1),
        "z": round(z, 2),
        "reference_days": traffic.days,
        "reference_value": 1.0,
    }
    w = Window(DAY_WINDOW, day_start, look_at, np.ones(len(ctx.frame), dtype=bool))
    level: Severity | None = None
    if p_low < ctx.alpha and ratio <= 1 - cfg.volume_drop_critical:
        level, limit = "critical", 1 - cfg.volume_drop_critical
    elif p_low < ctx.alpha and ratio <= 1 - cfg.volume_change:
        level, limit = "warning", 1 - cfg.volume_change
    elif p_high < ctx.alpha and ratio >= 1 + cfg.volume_change:
        level, limit = "warning", 1 + cfg.volume_change
    if level is None:
        entry = observed(VOLUME, "model", "volume_ratio", round(ratio, 4), 1 - cfg.volume_change, **evidence)
        return CheckResult(VOLUME, [entry], {"requests": n, "expected": round(expected, 1)})
    text = f"{n} requests so far, {ratio:.0%} of the {expected:.0f} expected by {look_at:%H:%M} UTC (z = {z:.1f})"
    finding = _finding(
        VOLUME,
        level,
        "model",
        "volume_ratio",
        ratio,
        limit,
        text,
        ctx,
        ctx.since.isoformat(),
        w,
        **evidence,
    )
    direction = "lower_is_worse" if ratio < 1 else "higher_is_worse"
    finding = Finding(
        **{
            **finding.to_dict(),
            "evidence": {**finding.evidence, "direction": direction},
        }
    )
    return CheckResult(VOLUME, [finding], {"requests": n, "expected": round(expected, 1)})


def as_utc(ts: Any) -> pd.Timestamp:
    """A timestamp in UTC; a naive one is taken as UTC (the prediction log's `ts` is UTC)."""
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def _ts_ns(values: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(values, utc=True)
    return (
        ts.dt.tz_convert("UTC")
        .astype("datetime64[ns, UTC]")
        .to_numpy(dtype="datetime64[ns]")
        .astype(np.int64)
    )


# --------------------------------------------------------------------------- looks -> history


def _level(severity: Any) -> int:
    return SEVERITY_RANK.get(str(severity), -1) if severity else -1


def _parse(findings: Any) -> list[dict[str, Any]]:
    if isinstance(findings, str):
        try:
            parsed = json.loads(findings)
        except ValueError:
            return []
    else:
        parsed = findings
    return [f for f in parsed if isinstance(f, dict)] if isinstance(parsed, list) else []


def intraday_history(rows: pd.DataFrame) -> pd.DataFrame:
    """`intraday_results` rows (any number of looks) -> one `check_results`-shaped row per (model, day,
    asset, check): a subject that failed at any look keeps its worst failing finding (the latest of equals),
    every other subject its latest entry. The row runs as the day's latest look."""
    if rows is None or rows.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    frame = rows.assign(look_at=pd.to_datetime(rows["look_at"], utc=True)).sort_values(
        "look_at", kind="stable"
    )
    out = []
    for (model, day, asset, check), group in frame.groupby(
        ["model_name", "partition_date", "asset", "check_name"], sort=True
    ):
        failing: dict[str, dict[str, Any]] = {}
        latest: dict[str, dict[str, Any]] = {}
        for findings in group["findings"]:
            judged: dict[str, dict[str, Any]] = {}  # this look's entry per subject: judged beats unknown
            for f in _parse(findings):
                subject = str(f.get("subject") or "model")
                if _level(f.get("severity")) >= 1:
                    if subject not in failing or _level(f.get("severity")) >= _level(
                        failing[subject].get("severity")
                    ):
                        failing[subject] = f
                elif subject not in judged or judged[subject].get("severity") == UNKNOWN:
                    judged[subject] = f
            latest.update(judged)
        kept = [*failing.values(), *(f for s, f in latest.items() if s not in failing)]
        last = group.iloc[-1]
        if failing:
            worst = max(failing.values(), key=lambda f: _level(f.get("severity")))
            severity, passed = worst.get("severity"), False
        else:
            severity = last["severity"] if last["severity"] == UNKNOWN else None
            passed = severity is None
        out.append(
            {
                "model_name": model,
                "partition_date": _as_date(day),
                "asset": asset,
                "check_name": check,
                "passed": passed,
                "severity": severity,
                "findings": json.dumps(kept, default=_json_default),
                "run_id": last["run_id"],
            }
        )
    return pd.DataFrame(out, columns=HISTORY_COLUMNS)


def merge_history(nightly: pd.DataFrame, intraday_rows: pd.DataFrame) -> pd.DataFrame:
    """The check history alerting replays: the nightly `check_results`, plus the intraday looks of every
    (model, day, asset, check) the nightly run has not judged (yet).

    The nightly row supersedes the looks of its check: a subject it does not find failing is not failing
    that day, whatever the looks saw. A subject it confirms keeps the looks' worse severity if they saw
    one (a 30-minute outage is diluted in a whole day's error rate; the looks saw it as it was): the
    looks' finding stands for it, with the nightly verdict in its evidence (`nightly`)."""
    intraday = intraday_history(intraday_rows)
    if intraday.empty:
        return nightly
    if nightly is None or nightly.empty:
        return intraday
    keys = list(
        zip(
            nightly["model_name"].astype(str),
            [_as_date(d) for d in nightly["partition_date"]],
            nightly["asset"].astype(str),
            nightly["check_name"].astype(str),
            strict=True,
        )
    )
    looked = {
        (m, d, a, c): f
        for m, d, a, c, f in zip(
            intraday["model_name"],
            intraday["partition_date"],
            intraday["asset"],
            intraday["check_name"],
            intraday["findings"],
            strict=True,
        )
    }
    confirmed = [
        _confirmed(row, looked[key]) if key in looked else None
        for key, row in zip(keys, _rows(nightly), strict=True)
    ]
    if any(c is not None for c in confirmed):
        nightly = nightly.copy()
        for i, change in enumerate(confirmed):
            if change is not None:
                nightly.at[nightly.index[i], "findings"] = change[0]
                nightly.at[nightly.index[i], "severity"] = change[1]
    judged = set(keys)
    keep = [
        (m, d, a, c) not in judged
        for m, d, a, c in zip(
            intraday["model_name"],
            intraday["partition_date"],
            intraday["asset"],
            intraday["check_name"],
            strict=True,
        )
    ]
    intraday = intraday[keep]
    if intraday.empty:
        return nightly
    return pd.concat([nightly, intraday.astype({"passed": bool})], ignore_index=True)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(c) for c in frame.columns]
    return [
        dict(zip(columns, values, strict=True))
        for values in zip(*(frame[c].tolist() for c in frame.columns), strict=True)
    ]


def _confirmed(row: dict[str, Any], looked: Any) -> tuple[str, str] | None:
    """A nightly row whose failing subjects the looks saw worse: its findings with the looks' finding for
    those subjects, and the row's severity; None when nothing changes."""
    seen = {str(f.get("subject") or "model"): f for f in _parse(looked) if _level(f.get("severity")) >= 1}
    if not seen:
        return None
    out, changed = [], False
    for f in _parse(row.get("findings")):
        subject = str(f.get("subject") or "model")
        worse = seen.get(subject)
        if (
            _level(f.get("severity")) >= 1
            and worse is not None
            and _level(worse.get("severity")) > _level(f.get("severity"))
        ):
            nightly = {k: f.get(k) for k in ("severity", "metric", "value", "threshold", "message")}
            out.append({**worse, "evidence": {**(worse.get("evidence") or {}), "nightly": nightly}})
            changed = True
        else:
            out.append(f)
    if not changed:
        return None
    severity = max((f.get("severity") for f in out if _level(f.get("severity")) >= 0), key=_level)
    return json.dumps(out, default=_json_default), str(severity)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# --------------------------------------------------------------------------- time to detection


def onsets(rows: pd.DataFrame) -> pd.DataFrame:
    """From `intraday_results` rows: per dedup key and day, the first bad row any failing look saw
    (`first_bad_ts` of its findings). Columns dedup_key, partition_date, first_bad_ts."""
    out: dict[tuple[str, dt.date], pd.Timestamp] = {}
    if rows is not None and len(rows):
        for model, day, asset, check, findings in zip(
            rows["model_name"],
            rows["partition_date"],
            rows["asset"],
            rows["check_name"],
            rows["findings"],
            strict=True,
        ):
            for f in _parse(findings):
                when = (f.get("evidence") or {}).get("first_bad_ts")
                if _level(f.get("severity")) < 1 or not when:
                    continue
                key = (f"{model}/{asset}.{check}/{f.get('subject') or 'model'}", _as_date(day))
                ts = as_utc(when)
                if key not in out or ts < out[key]:
                    out[key] = ts
    return pd.DataFrame(
        [{"dedup_key": k, "partition_date": d, "first_bad_ts": ts} for (k, d), ts in sorted(out.items())],
        columns=["dedup_key", "partition_date", "first_bad_ts"],
    )


def due_look(last_look: pd.Timestamp | None, now: pd.Timestamp, every_minutes: int) -> pd.Timestamp | None:
    """The clock of the look due at `now` (on the `every_minutes` grid of the UTC day), or None when the
    look of that slot was already taken."""
    now = as_utc(now)
    day_start = now.normalize()
    slot = day_start + pd.Timedelta(
        minutes=every_minutes * int((now - day_start).total_seconds() // (60 * every_minutes))
    )
    if last_look is not None and as_utc(last_look) >= slot:
        return None
    return slot


def summary_rows(results: Sequence[tuple[str, CheckResult]]) -> list[dict[str, Any]]:
    """One line per failing finding, for the asset's metadata."""
    return [
        {
            "check": f"{asset}.{r.check_name}",
            "subject": f.subject,
            "severity": f.severity,
            "message": f.message,
        }
        for asset, r in results
        for f in r.findings
        if f.severity in ("warning", "critical")
    ]
