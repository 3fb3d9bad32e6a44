"""Daily drift of a model against its reference profile: statistics, the decision, the checks.

:func:`compute_drift` scores one model-day against a :class:`ReferenceProfile` and returns the
``drift_scores`` rows; :func:`drift_checks` turns those rows into the three check outcomes
(``feature_drift``, ``critical_drift``, ``data_quality``). The decision rule and its reasons are
in docs/drift.md; in short, a feature is drifted only when

1. an effect size (PSI, Jensen-Shannon distance, or Wasserstein distance / reference std)
   reaches its threshold, AND
2. its two-sample test (KS for numeric, chi-squared for categorical) is significant after
   Benjamini-Hochberg correction across the model's features for the day (``fdr_alpha``), AND
3. the day has at least ``min_n`` non-null values of the feature.

The effect-size gate is what keeps a million-row day quiet (every p-value is tiny there); the
significance gate is what keeps a small day quiet (effect sizes are noisy there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.spatial import distance

from monitoring_pipelines.config import DriftThresholds, ModelConfig
from monitoring_pipelines.core.baselines import summarize_days
from monitoring_pipelines.core.findings import (
    SEVERITY_RANK,
    CheckResult,
    CheckSpec,
    Finding,
    not_enough_data_text,
    observed,
)
from monitoring_pipelines.core.formatting import code_span, fmt, json_float, markdown_table
from monitoring_pipelines.core.profiles import (
    DAY_COLUMN,
    PREDICTION_FEATURES,
    SKETCH_SIZE,
    WORKERS,
    CategoricalProfile,
    Columns,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    as_columns,
    bin_counts,
    build_reference_profile,
    day_values,
    moments,
    reference_rows,
)
from monitoring_pipelines.core.thresholds import (
    EFFECT_STATISTICS,
    QUALITY_STATISTICS,
    TEST_STATISTICS,
    THRESHOLD_FIELDS,
    benjamini_hochberg,
    resolve_threshold,
    variability_bands,
)
from monitoring_pipelines.schema import columns_of

FEATURE_DRIFT, CRITICAL_DRIFT, DATA_QUALITY = "feature_drift", "critical_drift", "data_quality"


def _check_specs(d: DriftThresholds = DriftThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008 - the defaults
    """The drift checks as this module decides them; numbers are the config's defaults."""
    return (
        CheckSpec(
            FEATURE_DRIFT,
            "warning",
            f"A feature's effect size passed its threshold (PSI {d.psi_warning}, normalized Wasserstein "
            f"{d.wasserstein}, JS {d.js}; raised to the reference band mean + {d.band_k}·σ) AND the change is "
            f"significant after Benjamini–Hochberg at {d.fdr_alpha} across the model's features AND the day "
            f"has at least {d.min_n} values. Defaults; per model and feature in thresholds.drift.",
        ),
        CheckSpec(
            CRITICAL_DRIFT,
            "critical",
            f"PSI at or beyond {d.psi_critical} on a drifted feature, or drift of the score distribution "
            "(__score__), the positive-decision rate (__prediction_rate__) or the predicted-class shares "
            "(__predicted_class__): prediction drift. A regression model's score is its predicted value, a "
            "multiclass model's the probability of its predicted class.",
        ),
        CheckSpec(
            DATA_QUALITY,
            "critical",
            f"Null-rate increase (warning {d.null_rate_warning:.0%}, critical {d.null_rate_critical:.0%}), "
            f"values outside the reference range ({d.out_of_range_warning:.0%} / {d.out_of_range_critical:.0%}), "
            f"categories the reference never had ({d.unseen_warning:.0%} / {d.unseen_critical:.0%}).",
        ),
    )


CHECKS = _check_specs()
PSI_EPSILON = 1e-4  # floor on bin proportions inside PSI's logarithm (empty bins)


MAX_WORKERS = WORKERS  # features scored in parallel threads
PARALLEL_MIN_ROWS = 50_000  # smaller days are scored in the calling thread
WORST_FEATURES_SHOWN = 5

DRIFT_COLUMNS = columns_of("drift_scores", without=("partition_date",))
STATISTIC_ORDER = [
    "psi",
    "js",
    "wasserstein_norm",
    "ks",
    "chi2",
    "null_rate_change",
    "out_of_range_share",
    "unseen_share",
    "mean",
    "std",
]


# --------------------------------------------------------------------------- statistics


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index sum((q - p) * ln(q / p)) over shared bins, natural log.

    p and q are the reference and current bin proportions, each floored at ``epsilon`` before
    the logarithm (no renormalisation), so an empty bin on either side contributes a large but
    finite term: a category worth 10 % that the reference never had adds about
    0.1 * ln(0.1 / 1e-4) = 0.69. NaN when either side has no values.
    """
    p, q = _proportions(reference_counts), _proportions(current_counts)
    if p is None or q is None:
        return float("nan")
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between the two bin distributions.

    ``scipy.spatial.distance.jensenshannon``; empty bins need no epsilon. NaN when a side is empty.
    """
    p, q = _proportions(reference_counts), _proportions(current_counts)
    if p is None or q is None:
        return float("nan")
    return float(distance.jensenshannon(p, q, base=2.0))


def chi2_homogeneity(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-squared test that reference and current share one categorical distribution.

    The 2 x B contingency table of counts, bins empty on both sides dropped, no continuity
    correction: equal to ``scipy.stats.chi2_contingency(table, correction=False)``. Returns
    (statistic, p-value); (0, 1) with a single non-empty bin, (NaN, NaN) when a side is empty.
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    row = table.sum(axis=1)
    if row.size == 0 or row.min() <= 0:
        return float("nan"), float("nan")
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(row, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


KS_TAIL = 1e-2  # below this, the limiting distribution's p-value is used (see ks_pvalue)
KS_LIMIT_EN = 100_000  # from this effective size on, the limit is used throughout (see ks_pvalue)


def ks_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Two-sided asymptotic p-value of a two-sample KS statistic, as ``ks_2samp(method='asymp')``.

    ``scipy.stats.kstwo.sf(D, round(n*m/(n+m)))`` where that is at least KS_TAIL. Below it, the limiting
    Kolmogorov distribution ``kolmogorov(sqrt(en) * D)`` is returned: scipy's exact tail takes half a second
    per feature there (a large day with a shift), while the limit is never smaller than the exact value
    (a decision can only become more conservative). Down to p = 1e-6 it exceeds the exact value by at
    most 22 % at en = 250 (the smallest day judged) and 0.3 % at en = 500 000; further out the ratio grows,
    but such a p-value is significant either way. For discrete data the test is conservative too.
    From an effective size of KS_LIMIT_EN on the limit is used at every p: there it is within 0.3 % of the
    exact value, and scipy's exact tail still took 0.6 s per feature for p in [0.01, 0.025].
    """
    if not np.isfinite(statistic) or n_reference <= 0 or n_current <= 0:
        return float("nan")
    en = np.round(n_reference * n_current / (n_reference + n_current))
    limit = float(special.kolmogorov(np.sqrt(en) * statistic))
    if limit < KS_TAIL or en >= KS_LIMIT_EN:
        return limit
    return float(np.clip(stats.kstwo.sf(statistic, en), 0.0, 1.0))


def _proportions(counts: np.ndarray) -> np.ndarray | None:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else None


# --------------------------------------------------------------------------- current columns


# --------------------------------------------------------------------------- per-feature rows


def _row(prof: FeatureProfile, statistic: str, value: float, **extra: Any) -> dict[str, Any]:
    return {
        "feature": prof.feature,
        "kind": prof.kind,
        "statistic": statistic,
        "value": float(value),
        "reference_value": float(extra.get("reference_value", np.nan)),
        "p_value": float(extra.get("p_value", np.nan)),
        "error_bound": float(extra.get("error_bound", np.nan)),
        "n_reference": int(extra.get("n_reference", prof.n_values)),
        "n_current": int(extra["n_current"]),
    }


def _null_row(prof: FeatureProfile, n_values: int, n_rows: int) -> dict[str, Any]:
    rate = 1.0 - n_values / n_rows if n_rows else float("nan")
    return _row(
        prof,
        "null_rate_change",
        rate - prof.null_rate,
        reference_value=prof.null_rate,
        n_reference=prof.n_rows,
        n_current=n_rows,
    )


def numeric_statistics(prof: NumericProfile, current_sorted: np.ndarray, n_rows: int) -> list[dict[str, Any]]:
    """Drift statistics of one numeric feature for a day (finite values sorted ascending).

    psi and js on the reference quantile bins; ks (statistic from the sketch, p-value from
    ``kstwo`` at D minus the sketch's KS error, so never smaller than the full-data p-value);
    wasserstein_norm = W1 / reference std (W1 alone when the reference is constant);
    out_of_range_share outside [reference min, max]; null_rate_change; mean and std of the day.
    ``error_bound`` on the ks and wasserstein_norm rows is the sketch's error bound.
    """
    y = current_sorted
    n = int(y.size)
    rows = [_null_row(prof, n, n_rows)]
    nan = float("nan")
    if n == 0 or prof.n_values == 0:
        values = dict.fromkeys(
            ("psi", "js", "wasserstein_norm", "ks", "out_of_range_share", "mean", "std"), nan
        )
        p_value, w_bound = nan, nan
        mean = std = nan
    else:
        counts = bin_counts(y, prof.edges)
        sketch = prof.sketch
        ks = sketch.ks_distance(y)
        scale = prof.std if prof.std > 0 else 1.0
        outside = np.searchsorted(y, prof.min, side="left") + (n - np.searchsorted(y, prof.max, side="right"))
        mean, std = moments(y)
        values = {
            "psi": psi(prof.counts, counts),
            "js": js_distance(prof.counts, counts),
            "wasserstein_norm": sketch.wasserstein_distance(y) / scale,
            "ks": ks,
            "out_of_range_share": outside / n,
        }
        p_value = ks_pvalue(max(ks - sketch.ks_error, 0.0), prof.n_values, n)
        w_bound = sketch.wasserstein_error / scale
    rows += [
        _row(prof, "psi", values["psi"], n_current=n),
        _row(prof, "js", values["js"], n_current=n),
        _row(prof, "wasserstein_norm", values["wasserstein_norm"], error_bound=w_bound, n_current=n),
        _row(prof, "ks", values["ks"], p_value=p_value, error_bound=prof.sketch.ks_error, n_current=n),
        _row(prof, "out_of_range_share", values["out_of_range_share"], n_current=n),
        _row(prof, "mean", mean, reference_value=prof.mean, n_current=n),
        _row(prof, "std", std, reference_value=prof.std, n_current=n),
    ]
    return rows


def categorical_statistics(
    prof: CategoricalProfile, counts: dict[str, int], n_rows: int
) -> list[dict[str, Any]]:
    """Drift statistics of one categorical feature for a day, from its value counts.

    psi, js and chi2 (statistic, p-value) on the reference's top-k categories plus ``other``;
    unseen_share = share of values the reference never had (NaN if the reference had too many
    distinct values to list); null_rate_change. For the binary decision also the positive rate
    (``mean``) and wasserstein_norm = |rate change| / sqrt(p (1 - p)) of the reference rate p,
    which is W1 between the two 0/1 distributions divided by the reference std.
    """
    n = int(sum(counts.values()))
    rows = [_null_row(prof, n, n_rows)]
    index = {cat: i for i, cat in enumerate(prof.categories)}
    other = len(prof.categories)
    current = np.zeros(other + 1, dtype=np.int64)
    unseen = 0
    for key, c in counts.items():
        current[index.get(key, other)] += c
        if key not in prof.seen:
            unseen += c
    nan = float("nan")
    if n == 0 or prof.n_values == 0:
        chi2_stat, chi2_p, unseen_share = nan, nan, nan
        values = {"psi": nan, "js": nan}
    else:
        chi2_stat, chi2_p = chi2_homogeneity(prof.counts, current)
        values = {"psi": psi(prof.counts, current), "js": js_distance(prof.counts, current)}
        unseen_share = unseen / n if prof.seen_complete else float("nan")
    rows += [
        _row(prof, "psi", values["psi"], n_current=n),
        _row(prof, "js", values["js"], n_current=n),
        _row(prof, "chi2", chi2_stat, p_value=chi2_p, n_current=n),
        _row(prof, "unseen_share", unseen_share, n_current=n),
    ]
    if prof.binary:
        ref_rate = prof.positive_rate
        rate = counts.get("1", 0) / n if n else float("nan")
        sd = np.sqrt(ref_rate * (1 - ref_rate)) if np.isfinite(ref_rate) else float("nan")
        scale = sd if sd > 0 else 1.0
        rows += [
            _row(prof, "wasserstein_norm", abs(rate - ref_rate) / scale, n_current=n),
            _row(prof, "mean", rate, reference_value=ref_rate, n_current=n),
        ]
    return rows


def _feature_rows(prof: FeatureProfile, data: tuple[Any, int]) -> list[dict[str, Any]]:
    if isinstance(prof, NumericProfile):
        return numeric_statistics(prof, *data)
    return categorical_statistics(prof, *data)


def _extract(columns: Columns, prof: FeatureProfile) -> tuple[Any, int]:
    if isinstance(prof, NumericProfile):
        return columns.numeric(prof.column)
    return columns.categorical(prof.column)


def raw_statistics(
    profile: ReferenceProfile, current: Any, features: list[str] | None = None
) -> pd.DataFrame:
    """Every statistic of every (selected) feature for one day, before any decision.

    Columns: feature, kind, statistic, value, reference_value, p_value, error_bound,
    n_reference, n_current. Days of PARALLEL_MIN_ROWS rows or more are scored in MAX_WORKERS
    threads (numpy releases the GIL while sorting and searching); smaller days in this thread,
    where starting threads would cost more than it saves.
    """
    columns = as_columns(current)
    selected = [profile.features[f] for f in (features if features is not None else profile.features)]
    if not selected:
        return pd.DataFrame(columns=_RAW_COLUMNS)
    workers = min(MAX_WORKERS, len(selected)) if columns.n_rows >= PARALLEL_MIN_ROWS else 1
    if workers == 1:
        results = [_feature_rows(p, _extract(columns, p)) for p in selected]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            if columns.parallel_extract:
                results = list(pool.map(lambda p: _feature_rows(p, _extract(columns, p)), selected))
            else:
                results = _pipelined(pool, selected, lambda p: _extract(columns, p))
    return pd.DataFrame([row for rows in results for row in rows], columns=_RAW_COLUMNS)


_RAW_COLUMNS = [
    "feature",
    "kind",
    "statistic",
    "value",
    "reference_value",
    "p_value",
    "error_bound",
    "n_reference",
    "n_current",
]


def _pipelined(
    pool: ThreadPoolExecutor,
    selected: list[FeatureProfile],
    extract: Callable[[FeatureProfile], tuple[Any, int]],
) -> list[list[dict[str, Any]]]:
    """Fetch on this thread while earlier features are scored; at most MAX_WORKERS in flight,
    so memory holds a bounded number of columns whatever the day's size."""
    pending: list[Future[list[dict[str, Any]]]] = []
    for prof in selected:
        data = extract(prof)
        pending.append(pool.submit(_feature_rows, prof, data))
        del data
        running = [f for f in pending if not f.done()]
        if len(running) >= MAX_WORKERS:
            running[0].result()
    return [f.result() for f in pending]


# --------------------------------------------------------------------------- the decision


def compute_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame | Any,
    thresholds: DriftThresholds,
    variability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``drift_scores`` rows of one model-day: every statistic, its threshold and verdict.

    ``current`` is the day's champion, status 'ok' rows: a pandas DataFrame, or a DuckDB
    relation (columns are then fetched one at a time, for very large days). It needs the
    profiled feature columns plus ``score`` and ``prediction``. ``variability`` (columns
    feature, statistic, mean, std, n_days) defaults to the bands stored in the profile.
    Features disabled by an override (``enabled: false``) are skipped.

    Columns: DRIFT_COLUMNS. ``drifted`` on an effect row (psi, js, wasserstein_norm) means that
    statistic passed its threshold on a significant feature with enough rows; on a test row (ks,
    chi2) that the feature is drifted; on a data-quality row that it reached its warning size.
    ``severity`` is 'ok', 'warning' or 'critical'.
    """
    features = [f for f in profile.features if thresholds.feature_enabled(f)]
    raw = raw_statistics(profile, current, features)
    bands = variability_bands(variability if variability is not None else profile.variability_frame())
    out = decide(raw, thresholds, bands)
    out.insert(0, "model_name", profile.model_name)
    out["profile_version"] = profile.version
    order = {f: i for i, f in enumerate(profile.features)}
    out["_f"] = out["feature"].map(order)
    out["_s"] = out["statistic"].map({s: i for i, s in enumerate(STATISTIC_ORDER)})
    out = out.sort_values(["_f", "_s"], kind="stable").drop(columns=["_f", "_s"]).reset_index(drop=True)
    return out[DRIFT_COLUMNS]


def decide(
    raw: pd.DataFrame,
    thresholds: DriftThresholds,
    bands: dict[tuple[str, str], dict[str, float]] | None = None,
) -> pd.DataFrame:
    """Apply the decision rule (module docstring, docs/drift.md) to ``raw_statistics`` rows."""
    bands = bands or {}
    out = raw.copy()
    n = len(out)
    stat = out["statistic"].to_numpy()
    value = out["value"].to_numpy(dtype=float)
    feature = out["feature"].to_numpy()
    min_n = {f: thresholds.for_feature(f).min_n for f in set(feature)}  # per feature if overridable
    enough = out["n_current"].to_numpy() >= np.array([min_n[f] for f in feature], dtype=np.int64)

    # Significance: BH across the model's features (one test per feature) for the day.
    is_test = np.isin(stat, TEST_STATISTICS)
    family = is_test & enough & np.isfinite(out["p_value"].to_numpy(dtype=float))
    p_adj = np.full(n, np.nan)
    p_adj[family] = benjamini_hochberg(out["p_value"].to_numpy(dtype=float)[family])
    out["p_value_adjusted"] = p_adj
    significant = set(feature[family & (p_adj <= thresholds.fdr_alpha)])

    threshold = np.full(n, np.nan)
    critical = np.full(n, np.nan)
    source = np.full(n, "", dtype=object)
    for i in range(n):  # a few hundred rows at most: one per statistic per feature
        if stat[i] in THRESHOLD_FIELDS:
            r = resolve_threshold(thresholds, feature[i], stat[i], bands.get((feature[i], stat[i])))
            threshold[i], critical[i], source[i] = r.warning, r.critical, r.source
        elif stat[i] in TEST_STATISTICS:
            threshold[i], source[i] = thresholds.fdr_alpha, "default"
    with np.errstate(invalid="ignore"):
        passes = np.nan_to_num(value, nan=-np.inf) >= threshold

    is_effect = np.isin(stat, EFFECT_STATISTICS)
    in_significant = np.array([f in significant for f in feature], dtype=bool)
    drifted = is_effect & passes & enough & in_significant
    is_prediction = np.array([f in PREDICTION_FEATURES for f in feature], dtype=bool)
    psi_critical = (stat == "psi") & (np.nan_to_num(value, nan=-np.inf) >= critical)
    severity = np.full(n, "ok", dtype=object)
    severity[drifted] = "warning"
    severity[drifted & (is_prediction | psi_critical)] = "critical"

    feature_severity: dict[str, str] = {}
    for f, s in zip(feature[drifted], severity[drifted], strict=True):
        if SEVERITY_RANK[s] > SEVERITY_RANK.get(feature_severity.get(f, "info"), 0):
            feature_severity[f] = s
    for i in np.flatnonzero(is_test):
        if feature[i] in feature_severity:
            drifted[i], severity[i] = True, feature_severity[feature[i]]

    is_quality = np.isin(stat, QUALITY_STATISTICS)
    with np.errstate(invalid="ignore"):
        q_value = np.nan_to_num(value, nan=-np.inf)
        warn_q = is_quality & enough & (q_value >= threshold)
        crit_q = warn_q & (q_value >= critical)
    severity[warn_q] = "warning"
    severity[crit_q] = "critical"
    drifted |= warn_q

    out["threshold"] = threshold
    out["threshold_critical"] = critical
    out["threshold_source"] = np.where(source == "", None, source)
    out["drifted"] = drifted
    out["severity"] = severity
    return out


# --------------------------------------------------------------------------- reference variability


def reference_variability(
    profile: ReferenceProfile,
    reference: pd.DataFrame | Mapping[Any, Columns],
    day_column: str = DAY_COLUMN,
    thresholds: DriftThresholds | None = None,
) -> pd.DataFrame:
    """Day-to-day spread of every drift statistic inside the reference window.

    Each reference day (a frame's rows grouped by ``day_column``, or a mapping day -> `Columns`) is
    scored against the whole profile, days with fewer than ``min_n`` values of a feature are left
    out for that feature, and ``core.baselines.summarize_days`` gives per (feature, statistic): mean,
    std (ddof=1) and n_days. The day is part of the reference it is scored against, which shrinks its
    statistics by roughly (1 - 1/days)^2; adaptive thresholds are floored at the configured ones anyway.
    """
    thresholds = thresholds or DriftThresholds()
    if isinstance(reference, pd.DataFrame):
        if day_column not in reference.columns:
            raise KeyError(f"reference frame has no day column {day_column!r}")
        days: Mapping[Any, Any] = dict(tuple(reference.groupby(day_values(reference[day_column]), sort=True)))
    else:
        days = reference
    daily = []
    for day in sorted(days):
        raw = raw_statistics(profile, days[day])
        raw = raw[raw["n_current"] >= thresholds.min_n]
        daily.append(raw.assign(day=day)[["day", "feature", "statistic", "value"]])
    if not daily:
        return pd.DataFrame(columns=["feature", "statistic", "mean", "std", "n_days"])
    return summarize_days(pd.concat(daily, ignore_index=True), ["feature", "statistic"])


def fit_reference_profile(
    frame: pd.DataFrame | Columns,
    model: ModelConfig,
    window: tuple[Any, Any] | None = None,
    day_column: str = DAY_COLUMN,
    sketch_size: int = SKETCH_SIZE,
    days: Mapping[Any, Columns] | None = None,
) -> ReferenceProfile:
    """Build the model's reference profile and attach its reference-day bands: the one call the
    reference asset needs. The bands come from ``days`` (day -> `Columns`) or, for a frame, from its
    ``day_column``; without either the profile has no bands."""
    window = window or (model.reference.start, model.reference.end)
    profile = build_reference_profile(frame, model, window, sketch_size=sketch_size)
    if days is None:
        if not isinstance(frame, pd.DataFrame) or day_column not in frame.columns:
            return profile
        variability = reference_variability(
            profile, reference_rows(frame, window), day_column, model.thresholds.drift
        )
    else:
        variability = reference_variability(profile, days, thresholds=model.thresholds.drift)
    return profile.with_variability(variability)


# --------------------------------------------------------------------------- checks

Record = dict[str, Any]
_SEVERITY_ORDER = {"ok": -1, **SEVERITY_RANK}


def drift_checks(
    drift: pd.DataFrame, thresholds: DriftThresholds, profile_version: str | None = None
) -> list[CheckResult]:
    """The three drift checks of a model-day, from ``compute_drift`` rows.

    ``feature_drift``: one warning per drifted feature that is not critical (its statistic furthest
    past threshold); a critical feature is reported by ``critical_drift`` only.
    ``critical_drift``: one critical per feature with PSI >= psi_critical, and per drifted
    prediction feature (``__score__``, ``__prediction_rate__``, ``__predicted_class__``).
    ``data_quality``: one finding per (feature, statistic) among null-rate increase,
    out-of-range share and unseen-category share at warning size or beyond (critical beyond the
    ``*_critical`` size). Every finding's evidence holds the profile version, row counts,
    p-values, all statistics and thresholds of the feature, and reference vs current mean, std
    and null rate. Metadata: profile_version, n_features, n_drifted, n_current and
    ``worst_features``, a markdown table of the features furthest past their thresholds.
    """
    records: list[Record] = drift.to_dict("records")
    if profile_version is None:
        versions = {r.get("profile_version") for r in records} - {None}
        profile_version = str(sorted(versions)[0]) if versions else None
    by_feature: dict[str, dict[str, Record]] = {}
    for r in records:
        by_feature.setdefault(r["feature"], {})[r["statistic"]] = r
    evidence = {f: _evidence(rows, profile_version) for f, rows in by_feature.items()}

    feature_findings: list[Finding] = []
    critical_findings: list[Finding] = []
    quality_findings: list[Finding] = []
    for f, rows in by_feature.items():
        effect = [r for s, r in rows.items() if s in EFFECT_STATISTICS]
        drifted = [r for r in effect if r["drifted"]]
        critical = [r for r in drifted if r["severity"] == "critical"]
        if critical:
            # A feature is reported once: as critical when it is, else as a warning. Two checks on one
            # subject would open two alerts (and two pages after escalation) for one movement.
            why = "prediction drift" if f in PREDICTION_FEATURES else "critical drift"
            critical_findings.append(_finding(CRITICAL_DRIFT, "critical", _worst(critical), evidence[f], why))
        elif drifted:
            feature_findings.append(
                _finding(FEATURE_DRIFT, "warning", _worst(drifted), evidence[f], "drifted")
            )
        # A subject judged and fine says by how much: alerting resolves only once the value is back
        # inside its line by a margin (hysteresis), not on the first day it dips under it.
        if effect and not critical:
            worst = _worst(effect)
            line = worst["threshold"] if f in PREDICTION_FEATURES else _critical_line(worst)
            critical_findings.append(_observed(CRITICAL_DRIFT, worst, line))
            if not drifted:
                feature_findings.append(_observed(FEATURE_DRIFT, worst, worst["threshold"]))
        quality = [r for s, r in rows.items() if s in QUALITY_STATISTICS]
        flagged = [r for r in quality if r["severity"] != "ok"]
        quality_findings += [_finding(DATA_QUALITY, r["severity"], r, evidence[f]) for r in flagged]
        if quality and not flagged:
            worst = _worst(quality)
            quality_findings.append(_observed(DATA_QUALITY, worst, worst["threshold"]))

    meta = _metadata(records, by_feature, profile_version)
    effect_table = _table(by_feature, EFFECT_STATISTICS)
    unknown = _too_few_rows(records, thresholds)
    return [
        CheckResult(
            FEATURE_DRIFT,
            feature_findings,
            {**meta, "worst_features": effect_table},
            "Features whose distribution moved: effect size past threshold and significant after BH.",
            unknown=unknown,
        ),
        CheckResult(
            CRITICAL_DRIFT,
            critical_findings,
            {**meta, "worst_features": effect_table},
            "PSI at or beyond psi_critical on a feature, or drift of the score / decision rate.",
            unknown=unknown,
        ),
        CheckResult(
            DATA_QUALITY,
            quality_findings,
            {**meta, "worst_features": _table(by_feature, QUALITY_STATISTICS)},
            "Null-rate spikes, values outside the reference range, categories the reference never had.",
            unknown=unknown,
        ),
    ]


def _critical_line(r: Record) -> float:
    """The line a critical drift finding of this statistic crosses: its critical threshold if it has one."""
    critical = r.get("threshold_critical")
    return critical if critical is not None and np.isfinite(critical) else r["threshold"]


def _observed(check: str, r: Record, line: float) -> Finding:
    return observed(check, str(r["feature"]), str(r["statistic"]), json_float(r["value"]), json_float(line))


def _ratio(r: Record) -> float:
    value, threshold = r["value"], r["threshold"]
    if not (np.isfinite(value) and np.isfinite(threshold)) or threshold <= 0:
        return -np.inf
    return float(value / threshold)


def _worst(rows: list[Record]) -> Record:
    return max(rows, key=_ratio)


def _finding(check: str, severity: str, r: Record, evidence: dict[str, Any], why: str = "") -> Finding:
    feature, stat = r["feature"], r["statistic"]
    value, limit = json_float(r["value"]), json_float(r["threshold"])
    critical = json_float(r["threshold_critical"])
    if severity == "critical" and critical is not None and value is not None and value >= critical:
        limit = critical  # the line that was crossed for this severity
    text = f"{feature}: {stat} = {fmt(value, 3)} (threshold {fmt(limit, 3)}"
    if check != DATA_QUALITY:
        text += f", {evidence.get('test')} p_adj = {fmt(evidence.get('p_value_adjusted'), 3)}"
    text += f", n = {int(r['n_current'])} vs reference {int(r['n_reference'])})"
    return Finding(
        check_name=check,
        severity=severity,  # type: ignore[arg-type]
        metric=str(stat),
        subject=str(feature),
        value=value,
        threshold=limit,
        message=f"{why}: {text}" if why else text,
        evidence={**evidence, "threshold_source": r["threshold_source"]},
    )


def _evidence(by_stat: dict[str, Record], profile_version: str | None) -> dict[str, Any]:
    test = by_stat.get("ks") or by_stat.get("chi2") or {}
    dist = next((r for s, r in by_stat.items() if s in EFFECT_STATISTICS), None) or next(
        iter(by_stat.values())
    )
    evidence: dict[str, Any] = {
        "profile_version": profile_version,
        "kind": dist["kind"],
        "n_current": int(dist["n_current"]),
        "n_reference": int(dist["n_reference"]),
        "test": test.get("statistic"),
        "p_value": json_float(test.get("p_value")),
        "p_value_adjusted": json_float(test.get("p_value_adjusted")),
        "statistics": {s: json_float(r["value"]) for s, r in by_stat.items() if s not in ("mean", "std")},
        "thresholds": {s: json_float(r["threshold"]) for s, r in by_stat.items() if s in THRESHOLD_FIELDS},
        "reference": {},
        "current": {},
    }
    for s in ("mean", "std"):
        if s in by_stat:
            evidence["reference"][s] = json_float(by_stat[s]["reference_value"])
            evidence["current"][s] = json_float(by_stat[s]["value"])
    if "null_rate_change" in by_stat:
        r = by_stat["null_rate_change"]
        evidence["n_rows_current"] = int(r["n_current"])
        evidence["n_rows_reference"] = int(r["n_reference"])
        evidence["reference"]["null_rate"] = json_float(r["reference_value"])
        evidence["current"]["null_rate"] = json_float(r["value"] + r["reference_value"])
    bounds = {s: json_float(r["error_bound"]) for s, r in by_stat.items() if np.isfinite(r["error_bound"])}
    if bounds:
        evidence["sketch_error_bound"] = bounds
    return evidence


def _too_few_rows(records: list[Record], thresholds: DriftThresholds) -> str:
    """Why drift could not be judged today ('' when it could): no feature had min_n values."""
    counts = [int(r["n_current"]) for r in records if r["statistic"] in EFFECT_STATISTICS]
    if not counts or max(counts) >= thresholds.min_n:
        return ""
    return not_enough_data_text(max(counts), thresholds.min_n, "non-null values per feature")


def _metadata(
    records: list[Record], by_feature: dict[str, dict[str, Record]], version: str | None
) -> dict[str, Any]:
    drifted = {r["feature"] for r in records if r["statistic"] in EFFECT_STATISTICS and r["drifted"]}
    return {
        "profile_version": version,
        "n_features": len(by_feature),
        "n_drifted": len(drifted),
        "n_current": max((int(r["n_current"]) for r in records), default=0),
    }


def _table(by_feature: dict[str, dict[str, Record]], statistics: tuple[str, ...]) -> str:
    """Markdown table of the WORST_FEATURES_SHOWN features furthest past (or nearest) threshold:
    each cell is value / threshold, a warning sign marks a flagged statistic."""
    scored = []
    for f, rows in by_feature.items():
        cells = [rows[s] for s in statistics if s in rows]
        if cells:
            scored.append((max(_ratio(r) for r in cells), f))
    if not scored:
        return ""
    scored.sort(key=lambda t: -t[0])
    with_p = statistics == EFFECT_STATISTICS
    head = ["feature", *statistics, *(["p_adj"] if with_p else []), "severity"]
    table = []
    for _, f in scored[:WORST_FEATURES_SHOWN]:
        rows = by_feature[f]
        cells = [code_span(f)]
        for s in statistics:
            r = rows.get(s)
            flag = " ⚠" if r is not None and r["drifted"] else ""
            cells.append(f"{fmt(r['value'], 3)} / {fmt(r['threshold'], 3)}{flag}" if r is not None else "–")
        if with_p:
            test = rows.get("ks") or rows.get("chi2")
            cells.append(fmt(test["p_value_adjusted"], 3) if test else "–")
        severities = [rows[s]["severity"] for s in statistics if s in rows]
        cells.append(max(severities, key=_SEVERITY_ORDER.__getitem__))
        table.append(cells)
    return markdown_table(table, head, markdown=["feature"])
