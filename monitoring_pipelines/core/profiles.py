"""Reference profiles: what the drift of a model-day is measured against.

A profile summarises a model's reference window (champion, ``status == 'ok'`` rows) once, so
that daily drift never reloads the reference. Per numeric feature it keeps quantile bin edges
and exact bin counts (PSI, Jensen-Shannon), moments and range (normalised Wasserstein,
out-of-range share), and a :class:`NumericSketch` of at most ``SKETCH_SIZE`` weighted points
from which the KS statistic and the Wasserstein distance to a day are computed exactly *for the
sketch*; the sketch's own distance to the full reference is measured when it is built and
bounds the error (triangle inequality). Per categorical feature it keeps the ``top_k`` value
frequencies plus an ``other`` bucket and the set of values seen.

Prediction drift uses the same machinery: ``__score__`` (column ``score``) is a numeric
feature and ``__prediction_rate__`` (column ``prediction``) a binary categorical one. Per task
(``profile_features``): a regression model's ``__score__`` is its predicted value and it has no
decision rate; a multiclass model's ``__score__`` is the top-label probability and
``__predicted_class__`` (column ``predicted_class``) the categorical share of each predicted class.

The profile also carries the reference's estimator, fitted on the window's labels when its bands are
computed, which performance estimation applies to every live day: the score calibration
(``estimation.Calibration``) of a binary model, the error profile (``regression.ErrorProfile``, DLE) of a
regression model, the ``multiclass.MulticlassCalibration`` (CBPE) of a multiclass one.

Profiles are stored as rows (contract §3, ``reference_profiles``) by :func:`profile_to_rows`
and read back by :func:`profile_from_rows`; the version is a stable hash of the window, the
feature lists, ``bins``/``top_k``, the sketch size and a fingerprint of the profiled data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from monitoring_pipelines.config import ModelConfig
from monitoring_pipelines.core.estimation import Calibration
from monitoring_pipelines.core.formatting import json_float
from monitoring_pipelines.core.multiclass import MulticlassCalibration
from monitoring_pipelines.core.regression import ErrorProfile
from monitoring_pipelines.schema import columns_of

SCORE_FEATURE = "__score__"
PREDICTION_FEATURE = "__prediction_rate__"
PREDICTED_CLASS_FEATURE = "__predicted_class__"  # multiclass: the share of each predicted class
PSEUDO_FEATURE_COLUMNS: dict[str, str] = {
    SCORE_FEATURE: "score",
    PREDICTION_FEATURE: "prediction",
    PREDICTED_CLASS_FEATURE: "predicted_class",
}
PREDICTION_FEATURES = frozenset(PSEUDO_FEATURE_COLUMNS)
# A task's estimator: what the reference's labels teach performance estimation (see the module docstring).
Estimator = ErrorProfile | MulticlassCalibration


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's limit, not the host's core count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


WORKERS = max(1, min(4, _usable_cpus()))  # threads that fetch and sort a day's columns side by side
SKETCH_SIZE = 4096  # weighted points kept per numeric feature; KS error <= 1/SKETCH_SIZE (1/(2*) if no ties)
MAX_SEEN_CATEGORIES = 10_000  # distinct reference values remembered for the unseen-category share
# bump when the JSON layout or an algorithm changes; part of the version and of the input fingerprint, so
# every reference is rebuilt. 2: the score calibration (on the `__score__` row).
PROFILE_FORMAT = 2
DAY_COLUMN = "partition_date"

Kind = Literal["numeric", "categorical"]


# --------------------------------------------------------------------------- column helpers


def finite_sorted(values: Any) -> tuple[np.ndarray, int]:
    """Sorted float64 copy of the finite values of a column, and the column's row count.

    NaN, None, pd.NA and +-inf all count as missing: an infinite feature value is a data fault,
    not a point of a distribution. The input is never modified.
    """
    if isinstance(values, pd.Series):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = np.asarray(values, dtype=np.float64)
    n_rows = int(arr.size)
    finite = np.isfinite(arr)
    out = arr.copy() if finite.all() else arr[finite]
    out.sort()
    return out, n_rows


def category_key(value: Any) -> str:
    """The string a categorical value is stored under: integral floats print as integers, so a
    0/1 decision read as float (1.0) and as int (1) land in the same bucket."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_counts(values: pd.Series) -> tuple[dict[str, int], int]:
    """Counts per non-null value (keys via :func:`category_key`) and the column's row count."""
    n_rows = int(len(values))
    is_strings = values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string"
    pairs = _object_counts(values) if is_strings else None
    if pairs is None:
        vc = values.value_counts(dropna=True, sort=False)
        pairs = [(k, int(n)) for k, n in zip(vc.index.tolist(), vc.to_numpy(), strict=True) if n > 0]
    counts: dict[str, int] = {}
    for value, n in pairs:
        key = category_key(value)
        counts[key] = counts.get(key, 0) + int(n)
    return counts, n_rows


def _object_counts(values: pd.Series) -> list[tuple[Any, int]] | None:
    """Python-object columns of strings hash slowly in pandas; DuckDB groups them ~5x faster.
    (Mixed-type object columns go to pandas: DuckDB would turn 1.0 into the string '1.0'.)"""
    import duckdb

    con = duckdb.connect()  # private connection: safe to use from a worker thread
    try:
        con.register("day", pd.DataFrame({"v": values.array}))
        grouped = con.execute("SELECT v, count(*) FROM day WHERE v IS NOT NULL GROUP BY v").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return [(v, int(n)) for v, n in grouped if not (isinstance(v, float) and np.isnan(v))]


class Columns(Protocol):
    """Where profiles and drift statistics read a day's (or the reference's) champion `ok` values:
    one column at a time, numeric values finite and sorted, categories counted. A pandas frame
    (`FrameColumns`) and a model-day snapshot in DuckDB (`storage.snapshot.SnapshotColumns`) both are."""

    n_rows: int
    parallel_extract: bool  # may columns be fetched from several threads at once

    def has(self, column: str) -> bool: ...

    def numeric(self, column: str) -> tuple[np.ndarray, int]: ...

    def categorical(self, column: str) -> tuple[dict[str, int], int]: ...


class FrameColumns:
    """Columns of an in-memory frame (tests, small data); extraction may run in worker threads."""

    parallel_extract = True

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n_rows = len(frame)

    def has(self, column: str) -> bool:
        return column in self.frame.columns

    def _series(self, column: str) -> pd.Series:
        if column not in self.frame.columns:
            raise KeyError(f"the current day has no column {column!r}")
        return self.frame[column]

    def numeric(self, column: str) -> tuple[np.ndarray, int]:
        return finite_sorted(self._series(column))

    def categorical(self, column: str) -> tuple[dict[str, int], int]:
        return category_counts(self._series(column))


def as_columns(current: Any) -> Columns:
    """A frame (its champion `ok` rows) or anything that already reads like `Columns`."""
    if isinstance(current, pd.DataFrame):
        return FrameColumns(champion_rows(current))
    if all(hasattr(current, name) for name in ("numeric", "categorical", "n_rows", "has")):
        return current
    raise TypeError(f"expected a pandas DataFrame or a Columns source, not {type(current).__name__}")


# --------------------------------------------------------------------------- numeric sketch


@dataclass(frozen=True, eq=False)
class NumericSketch:
    """A reference distribution compressed to weighted points (a weighted empirical CDF).

    ``values`` are strictly increasing, ``counts`` the number of reference rows each stands for.
    When the reference has at most ``SKETCH_SIZE`` distinct values the sketch *is* the
    reference (``exact``) and the distances below equal scipy's on the raw arrays. Otherwise the
    sorted reference is cut into ``SKETCH_SIZE`` runs of equal row count (never splitting a run
    of equal values, so atoms stay exact) and each run is represented by its median row.
    ``ks_error`` and ``wasserstein_error`` are the sketch's KS and Wasserstein-1 distances to the
    full reference, measured at build time: by the triangle inequality any distance computed
    from the sketch is within that much of the distance computed from the full reference.
    """

    values: np.ndarray
    counts: np.ndarray
    exact: bool
    ks_error: float
    wasserstein_error: float

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def cdf(self) -> np.ndarray:
        """S(values[j]): the fraction of reference mass at or below each point."""
        cum = np.cumsum(self.counts, dtype=np.float64)
        return cum / cum[-1]

    def ks_distance(self, sample_sorted: np.ndarray) -> float:
        """sup_x |S(x) - G(x)| between the sketch CDF S and the ECDF G of a sorted sample.

        Exact for the sketch: S - G peaks at the left end of a step of S and G - S just before
        the next step, so only G at the sketch points is needed (O(m log n)). Matches
        ``scipy.stats.ks_2samp(reference, sample).statistic`` when the sketch is exact.
        Returns NaN when either side is empty.
        """
        n = sample_sorted.size
        if n == 0 or self.values.size == 0:
            return float("nan")
        c = self.cdf
        at_or_below = np.searchsorted(sample_sorted, self.values, side="right") / n
        below = np.searchsorted(sample_sorted, self.values, side="left") / n
        c_before = np.concatenate(([0.0], c[:-1]))
        return float(max(0.0, np.max(c - at_or_below), np.max(below - c_before)))

    def wasserstein_distance(self, sample_sorted: np.ndarray) -> float:
        """Wasserstein-1 distance, the integral of |S(x) - G(x)| dx, to a sorted sample (feature units).

        Exact for the sketch, in O(n) simple passes plus O(m log n): between two sketch points S is
        a constant c and G is non-decreasing, so the cell splits where G first reaches c (at the
        sample point y_k, k = ceil(c n) - 1) into two pieces on which |S - G| has one sign; the
        integral of G over a piece is a count times a width plus a prefix sum of the sample.
        Prefix sums are taken about the sample median, so large offsets (timestamps) cost no
        precision. Matches ``scipy.stats.wasserstein_distance(reference, sample)`` when the sketch
        is exact. NaN when either side is empty.
        """
        y = sample_sorted
        n, m = y.size, self.values.size
        if n == 0 or m == 0:
            return float("nan")
        v = self.values
        c = self.cdf[:-1]  # S on [v_j, v_j+1)
        a, b = v[:-1], v[1:]
        k = np.clip(np.ceil(c * n).astype(np.int64) - 1, 0, n - 1)
        split = np.clip(y[k], a, b)  # G < c left of split, G >= c from split on
        first, last = v[0], v[-1]
        # Sample positions needed: counts of y <= left end and y < right end of every piece.
        le_a = np.searchsorted(y, a, side="right")
        le_s = np.searchsorted(y, split, side="right")
        lt_s = np.searchsorted(y, split, side="left")
        lt_b = np.searchsorted(y, b, side="left")
        lt_first = np.searchsorted(y, first, side="left")
        le_last = np.searchsorted(y, last, side="right")
        shift = float(y[n // 2])
        positions = np.concatenate((le_a, le_s, lt_s, lt_b, [lt_first, le_last, n]))
        prefix = _prefix_sums(y, positions, shift)

        def integral_of_g(lo: np.ndarray, hi: np.ndarray, le_lo: np.ndarray, lt_hi: np.ndarray) -> np.ndarray:
            # n * integral over [lo, hi) of G = #{y <= lo} (hi - lo) + sum over lo < y_i < hi of (hi - y_i)
            inside = np.maximum(lt_hi - le_lo, 0)
            tail = inside * (hi - shift) - np.where(inside > 0, prefix(lt_hi) - prefix(le_lo), 0.0)
            return le_lo * (hi - lo) + tail

        left = c * n * (split - a) - integral_of_g(a, split, le_a, lt_s)
        right = integral_of_g(split, b, le_s, lt_b) - c * n * (b - split)
        total = float(np.sum(np.maximum(left, 0.0)) + np.sum(np.maximum(right, 0.0)))
        # Outside the sketch's range: S = 0 below its first point, 1 from its last point on.
        total += lt_first * (first - shift) - prefix(np.array([lt_first]))[0]
        total += (prefix(np.array([n]))[0] - prefix(np.array([le_last]))[0]) - (n - le_last) * (last - shift)
        return total / n

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values.tolist(),
            "counts": self.counts.tolist(),
            "exact": self.exact,
            "ks_error": self.ks_error,
            "wasserstein_error": self.wasserstein_error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NumericSketch:
        return cls(
            values=np.asarray(data["values"], dtype=np.float64),
            counts=np.asarray(data["counts"], dtype=np.int64),
            exact=bool(data["exact"]),
            ks_error=float(data["ks_error"]),
            wasserstein_error=float(data["wasserstein_error"]),
        )


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for small arrays in the hot path (numpy's hash-based unique is slower here)."""
    a = np.sort(values)
    if a.size < 2:
        return a
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


def _prefix_sums(
    y: np.ndarray, positions: np.ndarray, shift: float, chunk: int = 1 << 20
) -> Callable[[np.ndarray], np.ndarray]:
    """A lookup P(i) = sum(y[:i] - shift) for the given positions (any ints in [0, n]).

    One pass over y in chunks (scratch memory O(chunk)), summing the segments between the
    wanted positions with ``np.add.reduceat``; segment sums are then accumulated.
    """
    n = y.size
    cuts = sorted_unique(
        np.concatenate((np.asarray(positions, dtype=np.int64), np.arange(0, n, chunk), [0, n]))
    )
    seg = np.empty(cuts.size - 1)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lo, hi = np.searchsorted(cuts, [start, stop])
        seg[lo:hi] = np.add.reduceat(y[start:stop] - shift, cuts[lo:hi] - start)
    at_cut = np.concatenate(([0.0], np.cumsum(seg)))

    def lookup(i: np.ndarray) -> np.ndarray:
        return at_cut[np.searchsorted(cuts, i)]

    return lookup


def build_sketch(sorted_values: np.ndarray, size: int = SKETCH_SIZE) -> NumericSketch:
    """Compress a sorted finite array to at most ``size`` weighted points (see NumericSketch)."""
    x = sorted_values
    n = x.size
    if n == 0:
        empty = np.empty(0)
        return NumericSketch(empty, np.empty(0, dtype=np.int64), True, 0.0, 0.0)
    run_starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    if run_starts.size <= size:
        counts = np.diff(np.concatenate((run_starts, [n])))
        return NumericSketch(x[run_starts].copy(), counts.astype(np.int64), True, 0.0, 0.0)
    targets = np.round(np.arange(size) * (n / size)).astype(np.int64)
    starts = sorted_unique(np.searchsorted(x, x[targets], side="left"))  # snap to run starts
    ends = np.concatenate((starts[1:], [n]))
    values = x[(starts + ends - 1) // 2]
    counts = (ends - starts).astype(np.int64)
    sketch = NumericSketch(values.copy(), counts, False, 0.0, 0.0)
    # The sketch's own distances to the reference it summarises (exact, O(n)).
    ks_error = sketch.ks_distance(x)
    w_error = float(np.abs(x - np.repeat(values, counts)).sum() / n)
    return replace(sketch, ks_error=ks_error, wasserstein_error=w_error)


def moments(sorted_values: np.ndarray, chunk: int = 1 << 20) -> tuple[float, float]:
    """Mean and population std (ddof=0) in one chunked pass, about the median for precision.

    On sorted input the result does not depend on the original row order.
    """
    x = sorted_values
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    shift = float(x[n // 2])
    s1 = s2 = 0.0
    for start in range(0, n, chunk):
        d = x[start : start + chunk] - shift
        s1 += float(d.sum())
        s2 += float(np.einsum("i,i->", d, d))  # not np.dot: BLAS threads cost more than they save
    mean = s1 / n
    return shift + mean, float(np.sqrt(max(s2 / n - mean * mean, 0.0)))


def quantile_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges at the 1/bins ... (bins-1)/bins quantiles, every reference bin non-empty.

    Edges are reference values (inverted-CDF quantiles), deduplicated, and edges at the minimum
    are dropped, so with half-open bins [e_k, e_k+1) (outer bins unbounded) every bin holds at
    least one reference row. Ties or a constant column give fewer bins (one for a constant).
    """
    n = sorted_values.size
    if n == 0:
        return np.empty(0)
    idx = np.ceil(np.arange(1, bins) / bins * n).astype(np.int64) - 1
    edges = sorted_unique(sorted_values[np.clip(idx, 0, n - 1)])
    return edges[edges > sorted_values[0]]


def bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (-inf, e1), [e1, e2), ..., [e_last, inf) of a sorted array (O(bins log n))."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], cuts, [sorted_values.size]))).astype(np.int64)


# --------------------------------------------------------------------------- feature profiles


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference summary of one numeric feature (non-finite values are counted as null)."""

    feature: str
    column: str
    n_rows: int
    n_values: int
    null_rate: float
    min: float
    max: float
    mean: float
    std: float  # population standard deviation (ddof=0) of the finite values
    edges: np.ndarray
    counts: np.ndarray
    sketch: NumericSketch
    variability: dict[str, dict[str, float]] = field(default_factory=dict)
    kind: Kind = "numeric"

    def content(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "n_rows": self.n_rows,
            "n_values": self.n_values,
            "null_rate": json_float(self.null_rate),
            "min": json_float(self.min),
            "max": json_float(self.max),
            "mean": json_float(self.mean),
            "std": json_float(self.std),
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "sketch": self.sketch.to_json(),
        }


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference summary of one categorical feature: top-k frequencies plus an ``other`` bucket.

    ``counts`` has one entry per category in ``categories`` and a last entry for ``other`` (all
    remaining non-null values). ``seen`` lists every distinct reference value when there are at
    most MAX_SEEN_CATEGORIES (``seen_complete``); otherwise the most frequent ones, and the
    unseen-category share is not computed. ``binary`` marks the 0/1 decision, whose mean (the
    positive rate) also gets a Wasserstein distance.
    """

    feature: str
    column: str
    n_rows: int
    n_values: int
    null_rate: float
    categories: list[str]
    counts: np.ndarray
    seen: frozenset[str]
    seen_complete: bool
    binary: bool = False
    variability: dict[str, dict[str, float]] = field(default_factory=dict)
    kind: Kind = "categorical"

    @property
    def positive_rate(self) -> float:
        """Share of '1' among non-null values (binary profiles), NaN when there are none."""
        if self.n_values == 0:
            return float("nan")
        ones = self.counts[self.categories.index("1")] if "1" in self.categories else 0
        return float(ones / self.n_values)

    def content(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "n_rows": self.n_rows,
            "n_values": self.n_values,
            "null_rate": json_float(self.null_rate),
            "categories": self.categories,
            "counts": self.counts.tolist(),
            "seen": sorted(self.seen),
            "seen_complete": self.seen_complete,
            "binary": self.binary,
        }


FeatureProfile = NumericProfile | CategoricalProfile


def profile_numeric(
    feature: str, column: str, values: Any, bins: int, sketch_size: int = SKETCH_SIZE
) -> NumericProfile:
    """Profile one numeric column (any numeric or nullable dtype)."""
    x, n_rows = finite_sorted(values)
    return profile_sorted(feature, column, x, n_rows, bins, sketch_size)


def profile_sorted(
    feature: str, column: str, x: np.ndarray, n_rows: int, bins: int, sketch_size: int = SKETCH_SIZE
) -> NumericProfile:
    """Profile one numeric column from its finite values, sorted ascending, and its row count."""
    n = x.size
    edges = quantile_edges(x, bins)
    mean, std = moments(x)  # x is sorted, so the result does not depend on row order
    lo, hi = (float(x[0]), float(x[-1])) if n else (float("nan"), float("nan"))
    return NumericProfile(
        feature=feature,
        column=column,
        n_rows=n_rows,
        n_values=n,
        null_rate=float(1 - n / n_rows) if n_rows else float("nan"),
        min=lo,
        max=hi,
        mean=mean,
        std=std,
        edges=edges,
        counts=bin_counts(x, edges),
        sketch=build_sketch(x, sketch_size),
    )


def profile_categorical(
    feature: str, column: str, counts: dict[str, int], n_rows: int, top_k: int, binary: bool = False
) -> CategoricalProfile:
    """Profile one categorical column from its value counts (ties broken by value, so stable).

    A binary profile always has both categories '0' and '1' (a count may be 0), so a decision
    rate moving away from 0 % or 100 % is a drift, not an unseen category.
    """
    if binary:
        counts = {"0": 0, "1": 0, **counts}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[: max(top_k, 2) if binary else top_k]
    n_values = int(sum(counts.values()))
    other = n_values - sum(n for _, n in top)
    return CategoricalProfile(
        feature=feature,
        column=column,
        n_rows=n_rows,
        n_values=n_values,
        null_rate=float(1 - n_values / n_rows) if n_rows else float("nan"),
        categories=[k for k, _ in top],
        counts=np.asarray([n for _, n in top] + [other], dtype=np.int64),
        seen=frozenset(k for k, _ in ranked[:MAX_SEEN_CATEGORIES]),
        seen_complete=len(ranked) <= MAX_SEEN_CATEGORIES,
        binary=binary,
    )


# --------------------------------------------------------------------------- model profile


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything daily drift needs about a model's reference window, keyed by feature name."""

    model_name: str
    version: str
    window_start: dt.date | None
    window_end: dt.date | None
    features: dict[str, FeatureProfile]
    n: int  # reference rows profiled
    bins: int
    top_k: int
    # score -> P(y = 1) from the window's labels; None: not fitted (a profile built before format 2)
    calibration: Calibration | None = None
    # regression / multiclass: the estimator fitted on the window's labels; None: binary, or too few labels
    estimator: Estimator | None = None

    @property
    def has_variability(self) -> bool:
        return any(f.variability for f in self.features.values())

    def variability_frame(self) -> pd.DataFrame:
        """Reference-day bands as rows: feature, statistic, mean, std, n_days."""
        rows = [
            {"feature": name, "statistic": stat, **band}
            for name, prof in self.features.items()
            for stat, band in prof.variability.items()
        ]
        return pd.DataFrame(rows, columns=["feature", "statistic", "mean", "std", "n_days"])

    def with_variability(self, variability: pd.DataFrame) -> ReferenceProfile:
        """A copy carrying reference-day bands (from ``drift.reference_variability``) per feature.

        The version does not change: the bands are derived from the same reference data.
        """
        bands: dict[str, dict[str, dict[str, float]]] = {}
        for rec in variability.to_dict("records"):
            bands.setdefault(rec["feature"], {})[rec["statistic"]] = {
                "mean": json_float(rec["mean"]),
                "std": json_float(rec["std"]),
                "n_days": int(rec["n_days"]),
            }
        features = {
            name: replace(prof, variability=bands.get(name, {})) for name, prof in self.features.items()
        }
        return replace(self, features=features)

    def with_calibration(self, calibration: Calibration) -> ReferenceProfile:
        """A copy carrying the score calibration fitted on the window's labels. Labels are not part of the
        profiled data, so the calibration enters the version: a new map is a new reference."""
        version = _hash({"profile": self.version, "calibration": calibration.to_json()})[:16]
        return replace(self, calibration=calibration, version=version)

    def with_estimator(self, estimator: Estimator | None) -> ReferenceProfile:
        """A copy carrying a regression or multiclass model's estimator (as with_calibration: a new
        estimator is a new reference, so it enters the version). None (too few labels) is recorded too."""
        version = _hash({"profile": self.version, "estimator": estimator_to_json(estimator)})[:16]
        return replace(self, estimator=estimator, version=version)


def estimator_to_json(estimator: Estimator | None) -> dict[str, Any] | None:
    """The estimator as stored on the `__score__` row, tagged with its kind."""
    if estimator is None:
        return None
    if isinstance(estimator, ErrorProfile):
        return _json_safe({"kind": "error_profile", **estimator.to_dict()})
    return _json_safe({"kind": "multiclass_calibration", **estimator.to_json()})


def _json_safe(value: Any) -> Any:
    """NaN and inf as null (an empty error-profile bin): the rows are strict JSON; read back as nan."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return json_float(value) if isinstance(value, float) else value


def estimator_from_json(data: dict[str, Any] | None) -> Estimator | None:
    """Inverse of estimator_to_json."""
    if not data:
        return None
    body = {k: v for k, v in data.items() if k != "kind"}
    if data.get("kind") == "error_profile":
        return ErrorProfile.from_dict(body)
    if data.get("kind") == "multiclass_calibration":
        return MulticlassCalibration.from_json(body)
    raise ValueError(f"unknown estimator kind {data.get('kind')!r} in a reference profile")


def profile_features(model: ModelConfig) -> list[tuple[str, str, Kind, bool]]:
    """(feature, column, kind, binary) for every profiled feature of a model, in table order."""
    out: list[tuple[str, str, Kind, bool]] = [(f, f, "numeric", False) for f in model.features.numeric]
    out += [(f, f, "categorical", False) for f in model.features.categorical]
    out.append((SCORE_FEATURE, "score", "numeric", False))  # score, predicted value or top-label probability
    if model.is_multiclass:
        out.append((PREDICTED_CLASS_FEATURE, "predicted_class", "categorical", False))
    elif model.is_binary:
        out.append((PREDICTION_FEATURE, "prediction", "categorical", True))
    return out


def build_reference_profile(
    frame: pd.DataFrame | Columns,
    model: ModelConfig,
    window: tuple[dt.date, dt.date] | None = None,
    sketch_size: int = SKETCH_SIZE,
) -> ReferenceProfile:
    """Profile the model's reference window.

    ``frame`` holds the window's prediction-log rows: a pandas frame with the model's feature
    columns plus ``score`` and ``prediction`` (rows with ``role != 'champion'`` or ``status !=
    'ok'`` are dropped if those columns are present, and rows outside ``window`` if
    ``partition_date`` is present), or a `Columns` source over the window's champion `ok` rows.
    ``window`` defaults to the model's configured reference window. Pseudo-features whose column
    is absent are skipped. Bins and top-k come from ``model.thresholds.drift``.
    """
    window = window or (model.reference.start, model.reference.end)
    columns = FrameColumns(reference_rows(frame, window)) if isinstance(frame, pd.DataFrame) else frame
    drift = model.thresholds.drift
    wanted = []
    for feature, column, kind, binary in profile_features(model):
        if not columns.has(column):
            if feature in PREDICTION_FEATURES:
                continue
            raise KeyError(f"reference frame for model {model.name!r} has no column {column!r}")
        wanted.append((feature, column, kind, binary))

    def profile(spec: tuple[str, str, str, bool]) -> FeatureProfile:
        feature, column, kind, binary = spec
        if kind == "numeric":
            values, n_rows = columns.numeric(column)
            return profile_sorted(feature, column, values, n_rows, drift.bins, sketch_size)
        counts, n_rows = columns.categorical(column)
        if feature == PREDICTED_CLASS_FEATURE:  # every declared class is a known category, predicted or not
            counts = {**dict.fromkeys(model.classes, 0), **counts}
        return profile_categorical(feature, column, counts, n_rows, drift.top_k, binary)

    # A column source that can fetch from several threads (the snapshot's) profiles features side by
    # side: DuckDB fetches and numpy sorts without the GIL. In feature order either way.
    workers = WORKERS if getattr(columns, "parallel_extract", False) and len(wanted) > 1 else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            profiled = list(pool.map(profile, wanted))
    else:
        profiled = [profile(spec) for spec in wanted]
    features: dict[str, FeatureProfile] = {spec[0]: p for spec, p in zip(wanted, profiled, strict=True)}
    identity = {
        "format": PROFILE_FORMAT,
        "model": model.name,
        "window": [window[0].isoformat(), window[1].isoformat()],
        "numeric": [f for f, p in features.items() if p.kind == "numeric"],
        "categorical": [f for f, p in features.items() if p.kind == "categorical"],
        "bins": drift.bins,
        "top_k": drift.top_k,
        "sketch_size": sketch_size,
        "fingerprint": data_fingerprint(features),
    }
    return ReferenceProfile(
        model_name=model.name,
        version=_hash(identity)[:16],
        window_start=window[0],
        window_end=window[1],
        features=features,
        n=int(columns.n_rows),
        bins=drift.bins,
        top_k=drift.top_k,
    )


def data_fingerprint(features: dict[str, FeatureProfile]) -> str:
    """SHA-256 of every profiled number (counts, edges, sketch points, moments, categories).

    Computed from sorted data and counts, so it does not depend on row order: re-reading the
    same reference in another order gives the same version, while any change to the data that
    can move a drift statistic changes it.
    """
    return _hash({name: prof.content() for name, prof in sorted(features.items())})


def champion_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows served to users and scored without error: ``role == 'champion'`` and ``status`` 'ok'
    (missing status counts as 'ok'); each filter applies only when its column exists. Returns
    the frame itself, uncopied, when every row qualifies."""
    keep = np.ones(len(frame), dtype=bool)
    if "role" in frame.columns:
        keep &= (frame["role"] == "champion").to_numpy(dtype=bool, na_value=False)
    if "status" in frame.columns:
        keep &= (frame["status"].fillna("ok") == "ok").to_numpy(dtype=bool, na_value=False)
    return frame if keep.all() else frame.loc[keep]


def day_values(values: pd.Series) -> pd.Series:
    """A day column (date, string, datetime, tz-aware timestamp) as midnight timestamps."""
    days = pd.to_datetime(values)
    if getattr(days.dt, "tz", None) is not None:
        days = days.dt.tz_convert("UTC").dt.tz_localize(None)
    return days.dt.normalize()


def reference_rows(frame: pd.DataFrame, window: tuple[dt.date, dt.date]) -> pd.DataFrame:
    """The champion, status 'ok' rows of the window (the window filter needs ``partition_date``)."""
    frame = champion_rows(frame)
    if DAY_COLUMN not in frame.columns:
        return frame
    days = day_values(frame[DAY_COLUMN])
    keep = ((days >= pd.Timestamp(window[0])) & (days <= pd.Timestamp(window[1]))).to_numpy(
        dtype=bool, na_value=False
    )
    return frame if keep.all() else frame.loc[keep]


# --------------------------------------------------------------------------- storage rows

PROFILE_ROW_COLUMNS = columns_of("reference_profiles", without=("created_at", "input_fingerprint"))


def profile_to_rows(profile: ReferenceProfile) -> pd.DataFrame:
    """One row per feature for ``monitoring.reference_profiles``.

    Columns: model_name, profile_version, feature, kind ('numeric' | 'categorical'), profile
    (JSON: the feature's summary, plus ``bins``/``top_k``/``format`` and its reference-day
    ``variability`` bands when known; the ``__score__`` row also holds the score ``calibration``),
    n (reference rows), reference_start, reference_end.
    """
    rows = []
    for position, (name, prof) in enumerate(profile.features.items()):
        doc = {
            "format": PROFILE_FORMAT,
            "position": position,
            "bins": profile.bins,
            "top_k": profile.top_k,
            "n_reference_rows": profile.n,
            **prof.content(),
            "variability": prof.variability,
        }
        if name == SCORE_FEATURE and profile.calibration is not None:
            doc["calibration"] = profile.calibration.to_json()
        if name == SCORE_FEATURE and profile.estimator is not None:
            doc["estimator"] = estimator_to_json(profile.estimator)
        rows.append(
            {
                "model_name": profile.model_name,
                "profile_version": profile.version,
                "feature": name,
                "kind": prof.kind,
                "profile": json.dumps(doc, separators=(",", ":"), allow_nan=False),
                "n": profile.n,
                "reference_start": profile.window_start,
                "reference_end": profile.window_end,
            }
        )
    return pd.DataFrame(rows, columns=PROFILE_ROW_COLUMNS)


def profile_from_rows(rows: pd.DataFrame) -> ReferenceProfile:
    """Rebuild a profile from the rows of one model and one version (inverse of profile_to_rows)."""
    if rows.empty:
        raise ValueError("no reference profile rows")
    for col in ("model_name", "profile_version"):
        if rows[col].nunique() != 1:
            raise ValueError(f"reference profile rows mix several {col} values; select one first")
    features: dict[str, FeatureProfile] = {}
    meta: dict[str, Any] = {}
    calibration: Calibration | None = None
    estimator: Estimator | None = None
    docs = [(json.loads(rec["profile"]), rec) for rec in rows.to_dict("records")]
    docs.sort(key=lambda pair: (pair[0].get("position", 0), pair[1]["feature"]))  # table order is arbitrary
    for doc, rec in docs:
        meta = doc
        feature = rec["feature"]
        if doc.get("calibration") is not None:
            calibration = Calibration.from_json(doc["calibration"])
        if doc.get("estimator") is not None:
            estimator = estimator_from_json(doc["estimator"])
        common = {
            "feature": feature,
            "column": doc["column"],
            "n_rows": int(doc["n_rows"]),
            "n_values": int(doc["n_values"]),
            "null_rate": _float(doc["null_rate"]),
            "variability": doc.get("variability", {}),
        }
        if rec["kind"] == "numeric":
            features[feature] = NumericProfile(
                **common,
                min=_float(doc["min"]),
                max=_float(doc["max"]),
                mean=_float(doc["mean"]),
                std=_float(doc["std"]),
                edges=np.asarray(doc["edges"], dtype=np.float64),
                counts=np.asarray(doc["counts"], dtype=np.int64),
                sketch=NumericSketch.from_json(doc["sketch"]),
            )
        else:
            features[feature] = CategoricalProfile(
                **common,
                categories=list(doc["categories"]),
                counts=np.asarray(doc["counts"], dtype=np.int64),
                seen=frozenset(doc["seen"]),
                seen_complete=bool(doc["seen_complete"]),
                binary=bool(doc.get("binary", False)),
            )
    first = rows.iloc[0]
    return ReferenceProfile(
        model_name=str(first["model_name"]),
        version=str(first["profile_version"]),
        window_start=_date(first.get("reference_start")),
        window_end=_date(first.get("reference_end")),
        features=features,
        n=int(first["n"]),
        bins=int(meta.get("bins", 10)),
        top_k=int(meta.get("top_k", 20)),
        calibration=calibration,
        estimator=estimator,
    )


# --------------------------------------------------------------------------- small helpers


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _date(value: Any) -> dt.date | None:
    if value is None or (not isinstance(value, dt.date) and pd.isna(value)):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def with_version_of(
    profile: ReferenceProfile, baselines: pd.DataFrame
) -> tuple[ReferenceProfile, pd.DataFrame]:
    """The profile and its bands under a version that also covers the bands' content: labels landing
    after the reference was first built change the performance bands but not the profiled features,
    and must still make a new version (the old one stays in the table for the days judged by it)."""
    bands = baselines.drop(columns=["profile_version"], errors="ignore")
    bands = bands.sort_values(list(bands.columns), kind="stable", na_position="first")
    digest = hashlib.sha256(bands.to_csv(index=False, float_format="%.12g").encode()).hexdigest()
    version = _hash({"profile": profile.version, "bands": digest})[:16]
    return replace(profile, version=version), baselines.assign(profile_version=version)
