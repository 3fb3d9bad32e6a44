"""Labelled and label-free performance of a multiclass classifier, with confidence intervals.

A multiclass model logs its decision (`prediction`, a class) and per-class probabilities (`score__<class>`);
labels carry the observed class. Classes are declared in config, in order; a class outside them is a
data-quality finding, counted here (`unseen_*` in `.attrs`) and left out of the metrics.

Metrics (docs/performance.md, "Multiclass"): accuracy (Wilson), macro and weighted F1 (percentile
interval from a multinomial bootstrap of the confusion matrix, fixed seed), per-class precision and
recall (`precision:<class>`, `recall:<class>`, Wilson), and log loss when probabilities are logged
(mean ± z·se). The confusion matrix is stored long-form for analysts.

Label-free estimates follow CBPE, as NannyML does for multiclass, with one change: the probabilities are
calibrated top-label (per predicted class, its probability to being right; see MulticlassCalibration)
rather than one-vs-rest and renormalized, and every row's label is taken as a categorical draw from them. The expected confusion counts give the metrics; the interval is where the realized metric
should land, from labels drawn from that model (fixed seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring_pipelines.core.estimation import METRIC_COLUMNS, Calibration, fit_calibration
from monitoring_pipelines.core.stats import mean_interval, proportion_interval

BOOTSTRAP_SAMPLES = 400
BOOTSTRAP_SEED = 0  # fixed: re-running a partition writes the same interval
EPS = 1e-15
# Up to this many rows the estimate's interval comes from drawn labels; above, from the normal
# approximation of the drawn confusion counts (rows × samples × classes cells stay below ~40 M).
EXACT_DRAW_MAX_ROWS = 20_000


def multiclass_metric_names(classes: Sequence[str], with_proba: bool = True) -> list[str]:
    """The metric names of a model with these classes, in table order."""
    names = ["accuracy", "macro_f1", "weighted_f1"] + (["log_loss"] if with_proba else [])
    return names + [f"precision:{c}" for c in classes] + [f"recall:{c}" for c in classes]


def encode(values: Any, classes: Sequence[str]) -> np.ndarray:
    """Class index of each value (-1 for a value outside `classes` or missing). Values that are already
    indices (an integer or float array, as the snapshot holds them) are kept when in [0, len(classes)):
    class names are identifiers, never numbers, and a million names cost a second to look up."""
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if array.dtype.kind in "iuf":
        index = array.astype(np.float64, copy=False)
        ok = np.isfinite(index) & (index >= 0) & (index < len(classes)) & (index == np.floor(index))
        return np.where(ok, index, -1).astype(np.int64)
    lookup = pd.Index(list(classes))
    codes = lookup.get_indexer(
        pd.Series(values, dtype=object).astype("string").fillna("\0").to_numpy(dtype=object)
    )
    return codes.astype(np.int64)


def confusion_counts(observed: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """k×k counts, rows = observed class, columns = predicted class, from class indices (>= 0)."""
    return np.bincount(observed * k + predicted, minlength=k * k).reshape(k, k)


def f1_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class F1, macro F1 and weighted F1 (weights: observed class counts) of one or a stack of
    confusion matrices (..., k, k). A class with no observed and no predicted row has F1 nan and is left
    out of the macro mean (scikit-learn counts it as 0 with a warning; nan does not invent a value)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    observed = cm.sum(axis=-1).astype(float)
    predicted = cm.sum(axis=-2).astype(float)
    denom = observed + predicted
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)
        macro = np.nanmean(np.where(denom > 0, f1, np.nan), axis=-1)
        weighted = np.nansum(np.nan_to_num(f1) * observed, axis=-1) / observed.sum(axis=-1)
    return f1, macro, weighted


def _bootstrap_f1(cm: np.ndarray, confidence: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of macro and weighted F1 from multinomial resamples of the confusion cells."""
    n = int(cm.sum())
    k = cm.shape[0]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.multinomial(n, (cm / n).ravel(), size=BOOTSTRAP_SAMPLES).reshape(-1, k, k)
    _, macro, weighted = f1_from_confusion(draws)
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    macro_ci = tuple(float(v) for v in np.nanquantile(macro, q))
    weighted_ci = tuple(float(v) for v in np.nanquantile(weighted, q))
    return macro_ci, weighted_ci  # type: ignore[return-value]


def _rows_from_confusion(
    cm: np.ndarray, classes: Sequence[str], confidence: float
) -> list[tuple[str, float, float, float, int]]:
    n = int(cm.sum())
    k = len(classes)
    if n == 0:
        nan = float("nan")
        return [(m, nan, nan, nan, 0) for m in multiclass_metric_names(classes, with_proba=False)]
    correct = int(np.trace(cm))
    rows = [("accuracy", *(float(v) for v in proportion_interval(correct, n, confidence)), n)]
    _, macro, weighted = f1_from_confusion(cm)
    macro_ci, weighted_ci = _bootstrap_f1(cm, confidence)
    rows.append(("macro_f1", float(macro), *macro_ci, n))
    rows.append(("weighted_f1", float(weighted), *weighted_ci, n))
    tp = np.diagonal(cm)
    predicted, observed = cm.sum(axis=0), cm.sum(axis=1)
    for i in range(k):
        rows.append(
            (
                f"precision:{classes[i]}",
                *(float(v) for v in proportion_interval(tp[i], predicted[i], confidence)),
                int(predicted[i]),
            )
        )
    for i in range(k):
        rows.append(
            (
                f"recall:{classes[i]}",
                *(float(v) for v in proportion_interval(tp[i], observed[i], confidence)),
                int(observed[i]),
            )
        )
    return rows


def _frame(rows: list[tuple[str, float, float, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype(
        {"value": float, "ci_low": float, "ci_high": float, "n": "int64"}
    )


def multiclass_metrics(
    observed: Any,
    predicted: Any,
    classes: Sequence[str],
    proba: np.ndarray | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every multiclass metric of labelled rows: metric, value, ci_low, ci_high, n (n = the rows behind
    the metric: all rows, or the class's predicted / observed rows for precision / recall).

    `proba` (rows × classes, in `classes` order) adds log loss. Rows whose observed or predicted class is
    not in `classes` are left out; `.attrs` counts them (`unseen_observed`, `unseen_predicted`).
    """
    classes = list(classes)
    k = len(classes)
    y, p = encode(observed, classes), encode(predicted, classes)
    keep = (y >= 0) & (p >= 0)
    cm = confusion_counts(y[keep], p[keep], k)
    rows = _rows_from_confusion(cm, classes, confidence)
    if proba is not None:
        probs = np.asarray(proba, dtype=float)[keep]
        picked = probs[np.arange(probs.shape[0]), y[keep]] if probs.size else np.empty(0)
        finite = np.isfinite(picked)
        terms = -np.log(np.clip(picked[finite], EPS, 1.0))
        rows.insert(3, ("log_loss", *mean_interval(terms, confidence, low=0.0), int(finite.sum())))
    out = _frame(rows)
    out.attrs = {"unseen_observed": int(np.sum(y < 0)), "unseen_predicted": int(np.sum(p < 0))}
    return out


def confusion_long(observed: Any, predicted: Any, classes: Sequence[str]) -> pd.DataFrame:
    """The confusion matrix long-form, one row per (observed_class, predicted_class) with its count `n`,
    every pair of declared classes present (zeros included) so analysts can pivot it without gaps."""
    classes = list(classes)
    k = len(classes)
    y, p = encode(observed, classes), encode(predicted, classes)
    keep = (y >= 0) & (p >= 0)
    cm = confusion_counts(y[keep], p[keep], k)
    obs_idx, pred_idx = np.divmod(np.arange(k * k), k)
    return pd.DataFrame(
        {
            "observed_class": np.asarray(classes, dtype=object)[obs_idx],
            "predicted_class": np.asarray(classes, dtype=object)[pred_idx],
            "n": cm.ravel().astype("int64"),
        }
    )


# --------------------------------------------------------------------------- CBPE one-vs-rest


@dataclass(frozen=True)
class MulticlassCalibration:
    """Top-label calibration plus one-vs-rest shares. Per predicted class j, an isotonic map from the logged
    probability of j to P(label = j | predicted j), fitted on the reference rows predicted j (`top`). The rest
    of a row's probability (1 − that) is shared among the other classes in proportion to their one-vs-rest
    calibrated probabilities (`ovr`, class-vs-rest isotonic maps). A map with too few reference labels keeps
    the raw probability (its Calibration says why).

    Why not one-vs-rest maps renormalized to 1 (NannyML's way): on an over-confident model the
    renormalization undoes part of the correction (tested: expected accuracy 0.641 for 0.631); the top-label
    map makes the expected accuracy and per-class precision calibrated by construction (Gupta & Ramdas,
    2022, ICLR). Recall also rests on the shares of the rest, which are only as good as the one-vs-rest maps
    (docs/performance.md)."""

    classes: tuple[str, ...]
    top: tuple[Calibration, ...]
    ovr: tuple[Calibration, ...]

    def apply(self, proba: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows × classes) of rows with logged `proba` and predicted class
        indices `predicted`; each row sums to 1."""
        raw = np.asarray(proba, dtype=float)
        rows = np.arange(raw.shape[0])
        top = raw[rows, predicted]
        calibrated_top = top.copy()
        for j, cal in enumerate(self.top):
            mask = predicted == j
            if cal.applied and mask.any():
                calibrated_top[mask] = cal.apply(top[mask])
        rest = np.column_stack([c.apply(raw[:, i]) for i, c in enumerate(self.ovr)])
        rest[rows, predicted] = 0.0
        rest_total = rest.sum(axis=1)
        k = raw.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(rest_total[:, None] > 0, rest / rest_total[:, None], 1.0 / max(k - 1, 1))
        out = share * (1.0 - calibrated_top)[:, None]
        out[rows, predicted] = calibrated_top
        return out

    @property
    def note(self) -> str:
        fitted = sum(c.applied for c in self.top)
        return f"top-label isotonic calibration for {fitted} of {len(self.classes)} predicted classes"

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "top": [c.to_json() for c in self.top],
            "ovr": [c.to_json() for c in self.ovr],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MulticlassCalibration:
        return cls(
            tuple(data["classes"]),
            tuple(Calibration.from_json(c) for c in data["top"]),
            tuple(Calibration.from_json(c) for c in data["ovr"]),
        )


def fit_multiclass_calibration(
    proba: np.ndarray, observed: Any, predicted: Any, classes: Sequence[str]
) -> MulticlassCalibration:
    """The maps from the reference's labelled rows (rows with an unknown observed or predicted class dropped)."""
    classes = list(classes)
    y, p = encode(observed, classes), encode(predicted, classes)
    keep = (y >= 0) & (p >= 0)
    probs, y, p = np.asarray(proba, dtype=float)[keep], y[keep], p[keep]
    top = probs[np.arange(probs.shape[0]), p]
    k = len(classes)
    top_maps = tuple(fit_calibration(top[p == j], (y[p == j] == j).astype(float)) for j in range(k))
    ovr_maps = tuple(fit_calibration(probs[:, i], (y == i).astype(float)) for i in range(k))
    return MulticlassCalibration(tuple(classes), top_maps, ovr_maps)


def estimate_multiclass_metrics(
    proba: np.ndarray,
    predicted: Any,
    classes: Sequence[str],
    calibration: MulticlassCalibration | None = None,
    confidence: float = 0.95,
    samples: int = 200,
) -> pd.DataFrame:
    """Expected accuracy, macro / weighted F1 and per-class precision / recall of the logged decisions if
    each row's label is a categorical draw from its (calibrated) probabilities. Values are the metrics of
    the expected confusion matrix; intervals the percentiles of the metrics of `samples` label draws."""
    classes = list(classes)
    k = len(classes)
    p_idx = encode(predicted, classes)
    probs = np.asarray(proba, dtype=float)
    keep = (p_idx >= 0) & np.isfinite(probs.sum(axis=1))
    if not keep.all():  # a copy of the day's matrix only when a row has to go
        probs, p_idx = probs[keep], p_idx[keep]
    if calibration is not None:
        probs = calibration.apply(probs, p_idx)
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), EPS, None)
    n = int(p_idx.size)
    if n == 0:
        return _frame(_rows_from_confusion(np.zeros((k, k), dtype=np.int64), classes, confidence))
    # Expected confusion: E[cm[i, j]] = sum over rows predicted j of P(label = i).
    by_class = [probs[p_idx == j] for j in range(k)]  # the rows predicted j: both sums below use them
    expected = np.column_stack([rows.sum(axis=0) for rows in by_class])
    draws = _drawn_confusions(probs, p_idx, by_class, samples)
    rows = _expected_rows(expected, draws, classes, confidence, n)
    return _frame(rows)


def _drawn_confusions(
    probs: np.ndarray, p_idx: np.ndarray, by_class: list[np.ndarray], samples: int
) -> np.ndarray:
    """Confusion matrices of `samples` label draws from the rows' probabilities (samples × k × k);
    `by_class[j]` are the rows predicted j.

    Up to EXACT_DRAW_MAX_ROWS rows the labels are drawn; above, each column's counts (a sum of independent
    categorical draws) are drawn from their normal approximation, mean Σp and covariance Σ(diag p − p·pᵀ),
    which is what the exact draws converge to and costs one k×k product per column instead of rows × samples.
    """
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    k = len(by_class)
    if p_idx.size <= EXACT_DRAW_MAX_ROWS:
        cum = np.cumsum(probs, axis=1)
        cum[:, -1] = 1.0
        u = rng.random((p_idx.size, samples))
        labels = (u[:, :, None] > cum[:, None, :]).sum(axis=2)
        cells = labels * k + p_idx[:, None] + (np.arange(samples) * k * k)[None, :]
        return np.bincount(cells.ravel(), minlength=samples * k * k).reshape(samples, k, k)
    out = np.zeros((samples, k, k))
    for j, column in enumerate(by_class):
        if not column.size:
            continue
        mean = column.sum(axis=0)
        cov = np.diag(mean) - column.T @ column
        # singular by construction (each row's probabilities sum to 1): a tiny negative eigenvalue from
        # rounding is not an invalid covariance, so numpy's warning about it is not raised
        draws = rng.multivariate_normal(
            mean, (cov + cov.T) / 2, size=samples, method="eigh", check_valid="ignore"
        )
        out[:, :, j] = np.clip(draws, 0, None)
    return out


def _expected_rows(
    expected: np.ndarray, draws: np.ndarray, classes: Sequence[str], confidence: float, n: int
) -> list[tuple[str, float, float, float, int]]:
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.nanquantile(values, q, axis=0)
        return low, high

    k = len(classes)
    acc_draws = np.trace(draws, axis1=1, axis2=2) / n
    rows: list[tuple[str, float, float, float, int]] = [
        ("accuracy", float(np.trace(expected) / n), *(float(v) for v in interval(acc_draws)), n)
    ]
    _, macro, weighted = f1_from_confusion(expected)
    _, macro_d, weighted_d = f1_from_confusion(draws)
    rows.append(("macro_f1", float(macro), *(float(v) for v in interval(macro_d)), n))
    rows.append(("weighted_f1", float(weighted), *(float(v) for v in interval(weighted_d)), n))
    tp = np.diagonal(expected)
    tp_d = np.diagonal(draws, axis1=1, axis2=2).astype(float)
    predicted = expected.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / predicted
        precision_d = tp_d / predicted
        recall = tp / expected.sum(axis=1)
        recall_d = tp_d / draws.sum(axis=2)
    p_low, p_high = interval(precision_d)
    r_low, r_high = interval(recall_d)
    for i in range(k):
        rows.append(
            (
                f"precision:{classes[i]}",
                float(precision[i]),
                float(p_low[i]),
                float(p_high[i]),
                int(round(predicted[i])),
            )
        )
    for i in range(k):
        rows.append((f"recall:{classes[i]}", float(recall[i]), float(r_low[i]), float(r_high[i]), n))
    return rows
