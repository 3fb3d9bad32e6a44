"""Subgroup metrics of regression and multiclass models (rows of the `subgroup_metrics` table).

The binary metrics live in core.fairness; this module gives the same long rows for the other tasks, so
the same bands, judge and checks read them (docs/fairness.md, "Regression and multiclass models").

Regression, per segment value (and intersection) and overall:
  mae, bias (mean predicted − observed): mean ± z·sd/sqrt(n) of the labelled rows' terms;
  mae_ratio (values with `min_n` labelled rows, and as many in the rest of the segment): the value's MAE
  over the MAE of the segment's other rows, with a log-scale delta-method interval (the two samples are
  disjoint, so independent). The rest, not the whole day, is the comparison: a value that is half the
  traffic pulls the day's MAE toward its own and would hide half of its gap.
Multiclass, per segment value and overall:
  accuracy (Wilson); recall:<class> (Wilson) where the value has at least `min_n` labelled rows of that
  observed class (overall: every class seen);
  accuracy_shortfall (values with `min_n` labelled rows, and as many in the rest): the accuracy of the
  segment's other rows minus the value's (positive: the value is served worse), Newcombe interval.

`prediction` and `label` of a multiclass frame are 0-based class indices (the snapshot representation);
a regression frame's `score` is the predicted value and `label` the observed one.
Every count is a bincount over integer group codes: no pass over rows per group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitoring_pipelines.core.stats import newcombe_difference, proportion_interval, to_float_array, z_value
from monitoring_pipelines.schema import ALL

REGRESSION_VALUE_METRICS = ("mae", "bias")
ERROR_RATIO_METRIC = "mae_ratio"
SHORTFALL_METRIC = "accuracy_shortfall"
OVERALL_COLUMNS = ["metric", "value", "ci_low", "ci_high", "n", "rows", "labelled"]
LONG_COLUMNS = ["segment_value", *OVERALL_COLUMNS]


def prepare(day: pd.DataFrame, columns: Sequence[str], task: str, n_classes: int = 0) -> pd.DataFrame:
    """The rows a metric can use with `_score`, `_pred` and `_label` and the segment columns.

    Regression: rows with a finite predicted value (`prediction` is optional). Multiclass: rows whose
    predicted class index is in range; a label outside the classes counts as not labelled (ingestion
    quarantines such labels, so none reach here)."""
    score = to_float_array(day["score"])
    label = to_float_array(day["label"]) if "label" in day.columns else np.full(len(day), np.nan)
    if task == "multiclass_classification":
        pred = to_float_array(day["prediction"])
        keep = np.isfinite(pred) & (pred >= 0) & (pred < n_classes)
        label = np.where((label >= 0) & (label < n_classes), label, np.nan)
    else:
        pred = np.full(len(day), np.nan)
        keep = np.isfinite(score)
    wanted = list(dict.fromkeys(columns))
    kept = day[wanted] if keep.all() else day.loc[keep, wanted]
    return kept.assign(_score=score[keep], _pred=pred[keep], _label=label[keep])


def long_rows(
    uniques: np.ndarray, metrics: dict[str, tuple[np.ndarray, ...]], rows, labelled
) -> pd.DataFrame:
    """Value-major long rows (every metric of the first value, then the next value, ...) from per-metric
    (value, low, high, n) arrays over the groups; `rows` and `labelled` per group. Every task's layout."""
    names = list(metrics)
    groups, k = len(uniques), len(names)
    stacked = np.stack([np.stack([np.asarray(a, dtype=float) for a in metrics[m]]) for m in names], axis=2)
    return pd.DataFrame(
        {
            "segment_value": np.repeat(np.asarray(uniques, dtype=object), k),
            "metric": np.tile(np.array(names, dtype=object), groups),
            "value": stacked[0].ravel(),
            "ci_low": stacked[1].ravel(),
            "ci_high": stacked[2].ravel(),
            "n": stacked[3].ravel().astype("int64"),
            "rows": np.repeat(np.asarray(rows, dtype=float), k).astype("int64"),
            "labelled": np.repeat(np.asarray(labelled, dtype=float), k).astype("int64"),
        }
    )


# --------------------------------------------------------------------------- regression


def _mean_ci(
    total: np.ndarray, sq_dev: np.ndarray, n: np.ndarray, confidence: float, low: float = -np.inf
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ± z·sd/sqrt(n) from sums and sums of squared deviations (as stats.mean_interval): nan without
    rows, nan bounds with one."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)
        sd = np.sqrt(np.where(n > 1, sq_dev / np.where(n > 1, n - 1, 1), np.nan))
        half = z_value(confidence) * sd / np.sqrt(n)
    return mean, np.maximum(mean - half, low), mean + half


class _ErrorSums:
    """Per-group count, MAE and bias sums of one grouping, from a few bincounts."""

    def __init__(self, base: pd.DataFrame, codes: np.ndarray, groups: int) -> None:
        y, p = base["_label"].to_numpy(dtype=float), base["_score"].to_numpy(dtype=float)
        self.lab = np.isfinite(y)
        c = codes[self.lab]
        e = p[self.lab] - y[self.lab]
        a = np.abs(e)
        self.rows = np.bincount(codes, minlength=groups).astype(float)
        self.n = np.bincount(c, minlength=groups).astype(float)
        self.sum_a = np.bincount(c, weights=a, minlength=groups)
        self.sum_e = np.bincount(c, weights=e, minlength=groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_a = np.where(self.n > 0, self.sum_a / np.where(self.n > 0, self.n, 1), 0.0)
            mean_e = np.where(self.n > 0, self.sum_e / np.where(self.n > 0, self.n, 1), 0.0)
        self.dev_a = np.bincount(c, weights=(a - mean_a[c]) ** 2, minlength=groups)
        self.dev_e = np.bincount(c, weights=(e - mean_e[c]) ** 2, minlength=groups)
        # the rest of the segment: totals minus the group (sums of squares about the overall mean)
        self.total_n = float(self.n.sum())
        self.total_a = float(self.sum_a.sum())
        centre = self.total_a / self.total_n if self.total_n else 0.0
        self.sq_a = np.bincount(c, weights=(a - centre) ** 2, minlength=groups)
        self.centre = centre

    def value_metrics(self, confidence: float) -> dict[str, tuple[np.ndarray, ...]]:
        return {
            "mae": (*_mean_ci(self.sum_a, self.dev_a, self.n, confidence, low=0.0), self.n),
            "bias": (*_mean_ci(self.sum_e, self.dev_e, self.n, confidence), self.n),
        }

    def ratio_to_rest(self, confidence: float) -> tuple[np.ndarray, ...]:
        """Each group's MAE over the rest's, with the log delta-method interval of two independent means:
        var(log r) = s²_g / (n_g·mae_g²) + s²_r / (n_r·mae_r²)."""
        n_r = self.total_n - self.n
        sum_r = self.total_a - self.sum_a
        with np.errstate(invalid="ignore", divide="ignore"):
            mae_g = self.sum_a / self.n
            mae_r = sum_r / n_r
            var_g = self.dev_a / (self.n - 1)
            # rest: Σ(a − c)² − n·(mean − c)², about its own mean, from sums about the overall mean c
            sq_r = (self.sq_a.sum() - self.sq_a) - n_r * (mae_r - self.centre) ** 2
            var_r = np.clip(sq_r, 0.0, None) / (n_r - 1)
            ratio = mae_g / mae_r
            se = np.sqrt(var_g / (self.n * mae_g**2) + var_r / (n_r * mae_r**2))
            half = z_value(confidence) * se
            low, high = ratio * np.exp(-half), ratio * np.exp(half)
        return ratio, low, high, self.n, n_r


def regression_group_rows(
    base: pd.DataFrame, keys: tuple[np.ndarray, np.ndarray], confidence: float, min_n: int | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(value rows, mae_ratio rows) of one grouping; `min_n` None: no ratio rows (the whole day)."""
    codes, uniques = keys
    if len(uniques) == 0:
        return pd.DataFrame(columns=LONG_COLUMNS), pd.DataFrame(columns=LONG_COLUMNS)
    sums = _ErrorSums(base, codes, len(uniques))
    values = long_rows(uniques, sums.value_metrics(confidence), sums.rows, sums.n)
    if min_n is None:
        return values, pd.DataFrame(columns=LONG_COLUMNS)
    ratio, low, high, n, n_rest = sums.ratio_to_rest(confidence)
    keep = (n >= min_n) & (n_rest >= min_n) & np.isfinite(ratio)
    rows = long_rows(
        np.asarray(uniques, dtype=object)[keep],
        {ERROR_RATIO_METRIC: (ratio[keep], low[keep], high[keep], n[keep])},
        sums.rows[keep],
        n[keep],
    )
    return values, rows


# --------------------------------------------------------------------------- multiclass


def multiclass_group_rows(
    base: pd.DataFrame,
    keys: tuple[np.ndarray, np.ndarray],
    classes: Sequence[str],
    confidence: float,
    min_n: int | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(value rows, accuracy_shortfall rows) of one grouping. Value rows: accuracy for every value,
    recall:<class> where the value has `min_n` labelled rows of the class (every class seen when
    `min_n` is None: the whole day)."""
    codes, uniques = keys
    groups, k = len(uniques), len(classes)
    if groups == 0:
        return pd.DataFrame(columns=LONG_COLUMNS), pd.DataFrame(columns=LONG_COLUMNS)
    y = base["_label"].to_numpy(dtype=float)
    lab = np.isfinite(y)
    c = codes[lab]
    obs = y[lab].astype(np.int64)
    right = base["_pred"].to_numpy(dtype=float)[lab].astype(np.int64) == obs
    rows = np.bincount(codes, minlength=groups).astype(float)
    n = np.bincount(c, minlength=groups).astype(float)
    correct = np.bincount(c[right], minlength=groups).astype(float)
    per_class = np.bincount(c * k + obs, minlength=groups * k).reshape(groups, k).astype(float)
    hits = np.bincount(c[right] * k + obs[right], minlength=groups * k).reshape(groups, k).astype(float)
    acc = proportion_interval(correct, n, confidence)
    rec = proportion_interval(hits, per_class, confidence)
    metrics = {"accuracy": (*acc, n)}
    for j, name in enumerate(classes):
        metrics[f"recall:{name}"] = (rec[0][:, j], rec[1][:, j], rec[2][:, j], per_class[:, j])
    values = long_rows(uniques, metrics, rows, n)
    floor = 1 if min_n is None else min_n
    values = values[(values["metric"] == "accuracy") | (values["n"] >= floor)].reset_index(drop=True)
    if min_n is None:
        return values, pd.DataFrame(columns=LONG_COLUMNS)
    n_rest, correct_rest = n.sum() - n, correct.sum() - correct
    rest = proportion_interval(correct_rest, n_rest, confidence)
    d, low, high = newcombe_difference(rest[0], rest[1], rest[2], acc[0], acc[1], acc[2])
    keep = (n >= min_n) & (n_rest >= min_n)
    shortfall = long_rows(
        np.asarray(uniques, dtype=object)[keep],
        {SHORTFALL_METRIC: (d[keep], low[keep], high[keep], n[keep])},
        rows[keep],
        n[keep],
    )
    return values, shortfall


def task_group_rows(
    task: str,
    base: pd.DataFrame,
    keys: tuple[np.ndarray, np.ndarray],
    classes: Sequence[str],
    confidence: float,
    min_n: int | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The value rows and the fairness rows of one grouping for a regression or multiclass model."""
    if task == "regression":
        return regression_group_rows(base, keys, confidence, min_n)
    if task == "multiclass_classification":
        return multiclass_group_rows(base, keys, classes, confidence, min_n)
    raise ValueError(f"no task subgroup metrics for task {task!r}")


def one_group(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n, dtype=np.int64), np.array([ALL] if n else [], dtype=object)
