"""Subgroup metrics, fairness gaps and differential degradation (the `subgroup_metrics` table).

An average can look fine while one group of 5-10 % of traffic is badly served. This module
disaggregates the champion's day by every segment value (and configured intersections), puts a
confidence interval on every number, and raises two checks:

* `fairness_gap`: a segment value's positive rate against the most-favoured value's (the four-fifths
  ratio, Katz interval), or a segment's demographic-parity / equalized-odds difference, judged
  against the same number in the reference window. A gap the reference window already had is a
  *standing* finding (info: reported for review, never pages); a gap that appeared or grew beyond
  the reference band, with the day's interval excluding the reference value, is a warning; an
  interval beyond an absolute limit the owner configured is critical, standing or not.
* `differential_degradation` (critical): a segment value's metric fell against its own reference
  band by more than the overall metric fell, plus `degradation_margin`.

Groups with fewer than `min_n` rows (labelled rows for label metrics) are reported but never alert.

Regression and multiclass models (`task`; metrics in core.task_subgroups) go through the same bands and
judge, with their own gap metric per segment value, each against the rest of its segment:
* regression: `mae_ratio`, the value's MAE over the rest's, judged against the line `disparity_high`
  (1.25: the four-fifths rule mirrored for a metric where higher is worse);
* multiclass: `accuracy_shortfall`, the rest's accuracy minus the value's, against `parity_gap`.
Their reference level (standing or not) is the window's mean of the daily values ± z·std/sqrt(days).
`differential_degradation` watches MAE (regression) and accuracy and `recall:<class>` (multiclass). MAE
has the label's unit (minutes, dollars), so a group's and the overall's changes are read as fractions of
their own reference means, and the spread and `degradation_margin` are too: 0.02 means two per cent of
the group's reference MAE, about what the same 0.02 is on an AUC or recall near 0.8. One number then
means the same for a model predicting minutes and one predicting thousands of dollars.
See docs/fairness.md for the definitions and the reasons behind each default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from monitoring_pipelines.config import SubgroupThresholds
from monitoring_pipelines.core import task_subgroups
from monitoring_pipelines.core.findings import CheckResult, CheckSpec, Finding, observed
from monitoring_pipelines.core.formatting import fmt, json_float
from monitoring_pipelines.core.stats import (
    auc_ci,
    newcombe_difference,
    proportion_interval,
    take,
    to_float_array,
    z_value,
)
from monitoring_pipelines.core.task_subgroups import ERROR_RATIO_METRIC, SHORTFALL_METRIC
from monitoring_pipelines.schema import ALL, MISSING, result_columns

FAIRNESS_GAP, DIFFERENTIAL_DEGRADATION = "fairness_gap", "differential_degradation"


def _check_specs(t: SubgroupThresholds = SubgroupThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008
    return (
        CheckSpec(
            FAIRNESS_GAP,
            "critical",
            f"A segment value's positive rate below {t.disparity_low:g} of the most-favoured value's (four-fifths "
            f"rule), or a demographic-parity / equalized-odds difference beyond {t.parity_gap:g} / "
            f"{t.equalized_odds_gap:g}: info when the reference window had the same gap (standing), warning "
            f"when it appeared or grew beyond the reference band (mean ± {t.band_k:g}·σ) with the day's interval "
            f"excluding the reference value, critical beyond an absolute limit the owner configured. Segment "
            f"values with at least {t.min_n} rows. Regression: a value's MAE over the rest of its segment's "
            f"beyond {t.disparity_high:g}; multiclass: its accuracy short of the rest's by more than "
            f"{t.parity_gap:g}; same standing / new logic.",
        ),
        CheckSpec(
            DIFFERENTIAL_DEGRADATION,
            "critical",
            f"A segment's metric fell against its own reference band (mean ± {t.band_k:g}·σ) by more than the "
            f"overall metric fell, plus {t.degradation_margin:g}: the group getting worse while the average holds. "
            "Regression: MAE, its changes and the margin as fractions of the reference MAE; multiclass: accuracy "
            "and per-class recall.",
        ),
    )


CHECKS = _check_specs()
INTERSECTION_SEP = "*"
VALUE_SEP = "|"

# Per-value metrics, in output order. `recall` is the true-positive rate (same name as in
# performance_metrics); `calibration_gap` is mean score minus label rate (calibration-in-the-large).
VALUE_METRICS = ("positive_rate", "label_rate", "recall", "fpr", "precision", "auc", "calibration_gap")
# Per-value fairness metric: the value's positive rate over the most-favoured value's (four-fifths rule).
RATIO_METRIC = "disparate_impact_ratio"
SUMMARY_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
)
# Metrics the differential-degradation check watches, with their good direction (+1: higher is better).
DEGRADATION_DIRECTION: dict[str, int] = {"auc": 1, "recall": 1, "precision": 1, "fpr": -1}

COLUMNS = result_columns("subgroup_metrics")
OVERALL_COLUMNS = ["metric", "value", "ci_low", "ci_high", "n", "rows", "labelled"]


def segment_name(columns: Sequence[str]) -> str:
    """Stable name of a segment or intersection: `age_band`, `age_band*sex` (columns in config order)."""
    return INTERSECTION_SEP.join(columns)


def segment_values(day: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Value labels of one segment or intersection: `65+`, `65+|F`; nulls become `__missing__`."""
    parts = [day[c].astype("string").fillna(MISSING) for c in columns]
    values = parts[0] if len(parts) == 1 else parts[0].str.cat(parts[1:], sep=VALUE_SEP)
    return values.astype(object)


def _prepare(day: pd.DataFrame, columns: Sequence[str] = ()) -> pd.DataFrame:
    """Numeric score/prediction/label and the segment columns; rows without a usable score or
    decision are dropped."""
    score = to_float_array(day["score"])
    pred = to_float_array(day["prediction"])
    label = to_float_array(day["label"]) if "label" in day.columns else np.full(len(day), np.nan)
    keep = np.isfinite(score) & np.isfinite(pred)
    wanted = list(dict.fromkeys(columns))
    kept = day[wanted] if keep.all() else day.loc[keep, wanted]
    return kept.assign(_score=take(score, keep), _pred=take(pred, keep), _label=take(label, keep))


DENSE_CODES = 1 << 20  # value combinations up to which group codes are remapped by counting
FEW_GROUPS = 32  # segment values up to which each one's rows are found by a pass of their own


def _factorize_text(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and labels of a column's values as text, missing ones as MISSING. Factorizes the values
    first and converts only the distinct ones: a categorical or string column of millions of rows is
    never copied as text."""
    part, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    texts = [str(pd.Series([u], dtype=values.dtype).astype("string")[0]) for u in uniques] + [MISSING]
    part = np.where(part < 0, len(uniques), part)
    labels, merged = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    return merged.reshape(-1)[part], labels


def group_codes(day: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the rows' segment (or intersection) values and the value labels, sorted as text:
    the same groups as `segment_values`, without building a label per row."""
    codes = np.zeros(len(day), dtype=np.int64)
    labels = np.array([""], dtype=object)
    for i, column in enumerate(columns):
        part, texts = _factorize_text(day[column])
        codes = codes * len(texts) + part
        labels = np.array([(a + VALUE_SEP + b) if i else b for a in labels for b in texts], dtype=object)
    if labels.size <= DENSE_CODES:  # combined codes are dense and few: count, do not sort
        present = np.flatnonzero(np.bincount(codes, minlength=labels.size))
        remap = np.full(labels.size, -1, dtype=np.int64)
        remap[present] = np.arange(present.size)
        codes = remap[codes]
    else:
        present, codes = np.unique(codes, return_inverse=True)
    labels = labels[present]
    order = np.argsort(labels.astype(str), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[codes.reshape(-1)], labels[order]


def _group_metrics(
    base: pd.DataFrame, keys: np.ndarray | tuple[np.ndarray, np.ndarray], confidence: float
) -> pd.DataFrame:
    """Long rows (segment_value, metric, value, ci_low, ci_high, n, rows, labelled) per key value.

    `keys`: a label per row, or (codes, labels) from group_codes. Counts come from one bincount pass;
    only AUC needs a pass per group (DeLong interval).
    """
    codes, uniques = keys if isinstance(keys, tuple) else pd.factorize(keys, sort=True)
    groups = len(uniques)
    if groups == 0:
        return pd.DataFrame(columns=["segment_value", *OVERALL_COLUMNS])
    y = base["_label"].to_numpy()
    score = base["_score"].to_numpy()
    labelled = ~np.isnan(y)
    pos = labelled & (y == 1)
    neg = labelled & (y == 0)
    flagged = base["_pred"].to_numpy() > 0.5
    resid = np.where(labelled, score - np.where(labelled, y, 0.0), 0.0)

    def count(weights: np.ndarray | None = None) -> np.ndarray:
        if weights is None:
            return np.bincount(codes, minlength=groups)
        if weights.dtype == bool:  # rows where the mask holds: no float copy of the mask
            return np.bincount(codes[weights], minlength=groups).astype(float)
        return np.bincount(codes, weights=weights, minlength=groups)

    rows, n_lab = count().astype(float), count(labelled)
    n_pos, n_neg, pp = count(pos), count(neg), count(flagged)
    tp, fp = count(flagged & pos), count(flagged & neg)
    results: dict[str, tuple[np.ndarray, ...]] = {
        "positive_rate": (*proportion_interval(pp, rows, confidence), rows),
        "label_rate": (*proportion_interval(n_pos, n_lab, confidence), n_lab),
        "recall": (*proportion_interval(tp, n_pos, confidence), n_pos),
        "fpr": (*proportion_interval(fp, n_neg, confidence), n_neg),
        "precision": (*proportion_interval(tp, tp + fp, confidence), tp + fp),
    }

    auc = np.full((3, groups), np.nan)
    both = np.flatnonzero((n_pos > 0) & (n_neg > 0))
    if both.size:
        if groups <= FEW_GROUPS:  # a pass per value costs less than sorting the day by value
            members = {g: np.flatnonzero((codes == g) & labelled) for g in both}
        else:
            order = np.argsort(codes, kind="stable")
            split = np.split(order, np.cumsum(np.bincount(codes, minlength=groups))[:-1])
            members = {g: split[g][labelled[split[g]]] for g in both}
        for g in both:  # loop over segment values
            idx = members.pop(g)
            auc[:, g] = auc_ci(y[idx], score[idx], confidence)
    results["auc"] = (auc[0], auc[1], auc[2], n_lab)

    sum_r, sum_r2 = count(resid), count(resid**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_lab > 0, sum_r / np.where(n_lab > 0, n_lab, 1), np.nan)
        var = np.where(n_lab > 1, (sum_r2 - n_lab * mean**2) / np.where(n_lab > 1, n_lab - 1, 1), np.nan)
        half = z_value(confidence) * np.sqrt(np.clip(var, 0, None) / n_lab)
    results["calibration_gap"] = (mean, mean - half, mean + half, n_lab)

    return task_subgroups.long_rows(uniques, {m: results[m] for m in VALUE_METRICS}, rows, n_lab)


def overall_metrics(day: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The whole day's metrics with exactly the subgroup definitions (metric, value, ci_low, ci_high, n,
    rows, labelled), so the caller can build overall reference bands comparable with subgroup bands."""
    base = _prepare(day)
    rows = _group_metrics(base, _one_group(len(base)), confidence)
    return rows[OVERALL_COLUMNS].reset_index(drop=True)


def _one_group(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n, dtype=np.int64), np.array([ALL] if n else [], dtype=object)


def _range_diff(rows: pd.DataFrame) -> tuple[float, float, float]:
    """Largest minus smallest value among rows, with the Newcombe CI of that difference."""
    hi = rows.loc[rows["value"].idxmax()]
    lo = rows.loc[rows["value"].idxmin()]
    return newcombe_difference(
        hi["value"], hi["ci_low"], hi["ci_high"], lo["value"], lo["ci_low"], lo["ci_high"]
    )


def ratio_interval(
    x1: np.ndarray | float,
    n1: np.ndarray | float,
    x2: np.ndarray | float,
    n2: np.ndarray | float,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratio p1 / p2 of two independent binomial proportions (x_i successes of n_i) with the Katz log
    interval, elementwise: (ratio, low, high).

    log(p1 / p2) ± z·sqrt((1 − p1) / x1 + (1 − p2) / x2), i.e. variance 1/x1 − 1/n1 + 1/x2 − 1/n2, so
    both groups' sampling error counts. A zero count has no logarithm: then the interval is computed
    from the counts and sizes plus 1/2 ("log-adjusted"), and a zero numerator's lower end is 0 (the
    ratio itself stays 0). Everything is nan when n1 or n2 is 0 or p2 is 0.
    Reference: Katz, Baptista, Azen & Pike (1978), Biometrics 34:469-474; the same as statsmodels'
    ``confint_proportions_2indep(compare="ratio", method="log" / "log-adjusted")``.
    """
    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    z = z_value(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (x1 / n1) / (x2 / n2)
        half = np.where((x1 > 0) & (x2 > 0), 0.0, 0.5)  # "log-adjusted" only where a count is 0
        a1, m1, a2, m2 = x1 + half, n1 + half, x2 + half, n2 + half
        centre = np.log((a1 / m1) / (a2 / m2))
        spread = z * np.sqrt(1 / a1 - 1 / m1 + 1 / a2 - 1 / m2)
        low = np.where(x1 > 0, np.exp(centre - spread), 0.0)
        high = np.exp(centre + spread)
    valid = (n1 > 0) & (n2 > 0) & (x2 > 0)
    nan = np.full(np.broadcast(ratio, low).shape, np.nan)
    return np.where(valid, ratio, nan), np.where(valid, low, nan), np.where(valid, high, nan)


def _eligible_rates(rows: pd.DataFrame, min_n: int) -> pd.DataFrame:
    """The `positive_rate` rows of the values with at least `min_n` rows: the values the four-fifths
    ratios and the parity summaries are built from."""
    return rows[(rows["metric"] == "positive_rate") & (rows["rows"] >= min_n) & rows["value"].notna()]


def _favoured(pr: pd.DataFrame) -> pd.Series:
    """The most-favoured value's `positive_rate` row: the highest rate (the first in text order on a tie)."""
    return pr.loc[pr["value"].idxmax()]


def _positives(row: pd.Series) -> float:
    """The positive decisions behind a `positive_rate` row (rate × rows, an integer up to rounding)."""
    return float(np.round(row["value"] * row["rows"]))


def _summary_rows(seg: str, rows: pd.DataFrame, min_n: int, confidence: float) -> list[dict]:
    """Four-fifths ratios per value and segment-level summaries, over values with at least `min_n`
    rows (labelled rows for equalized odds)."""
    out: list[dict] = []

    def row(
        metric: str, value: float, low: float, high: float, used: pd.DataFrame, segment_value: str = ALL
    ) -> None:
        out.append(
            {
                "segment": seg,
                "segment_value": segment_value,
                "metric": metric,
                "value": value,
                "ci_low": low,
                "ci_high": high,
                "n": int(used["rows"].sum()),
                "rows": int(used["rows"].sum()),
                "labelled": int(used["labelled"].sum()),
                "gap": np.nan,
                "ratio": np.nan,
            }
        )

    pr = _eligible_rates(rows, min_n)
    if len(pr) >= 2 and _favoured(pr)["value"] > 0:
        top = _favoured(pr)
        x = pr["value"].to_numpy(dtype=float) * pr["rows"].to_numpy(dtype=float)
        ratio, low, high = ratio_interval(
            np.round(x), pr["rows"], _positives(top), float(top["rows"]), confidence
        )
        for (i, r), value, lo, hi in zip(pr.iterrows(), ratio, low, high, strict=True):
            if i == top.name:  # the most-favoured value against itself: 1 by definition, no interval
                value, lo, hi = 1.0, np.nan, np.nan
            row(RATIO_METRIC, float(value), float(lo), float(hi), pr.loc[[i]], str(r["segment_value"]))
    if len(pr) >= 2:
        d, low, high = _range_diff(pr)
        row("demographic_parity_difference", d, low, high, pr)
        hi_row, lo_row = _favoured(pr), pr.loc[pr["value"].idxmin()]
        value, low, high = ratio_interval(
            _positives(lo_row), float(lo_row["rows"]), _positives(hi_row), float(hi_row["rows"]), confidence
        )
        row("demographic_parity_ratio", float(value), float(low), float(high), pr)

    eligible = rows[rows["labelled"] >= min_n]
    parts = []
    for metric in ("recall", "fpr"):
        m = eligible[(eligible["metric"] == metric) & eligible["value"].notna()]
        if len(m) >= 2:
            parts.append(_range_diff(m))
    if parts:
        # max(A, B) lies in [max(lowA, lowB), max(highA, highB)] when both intervals hold.
        value = max(p[0] for p in parts)
        used = eligible[eligible["metric"] == "positive_rate"]
        row("equalized_odds_difference", value, max(p[1] for p in parts), max(p[2] for p in parts), used)
    return out


def subgroup_metrics(
    day: pd.DataFrame,
    segments: Sequence[str],
    intersections: Sequence[Sequence[str]] = (),
    confidence: float = 0.95,
    min_n: int = 200,
    *,
    task: str = "binary_classification",
    classes: Sequence[str] = (),
) -> pd.DataFrame:
    """Per segment value: metrics with CIs, gap and ratio to the overall value; per segment: summaries.

    `day` holds the champion's `ok` rows with `score`, `prediction`, `label` (NaN while unlabelled)
    and the segment columns. Intersections are named `a*b` with values `x|y` (config order).
    `min_n` only decides which values enter the four-fifths ratios (`disparate_impact_ratio`: the
    value's positive rate over the most-favoured value's, Katz interval) and the segment summaries
    (`segment_value='__all__'`), so that a 30-row group cannot make the parity difference; every value
    still gets its own metric rows.
    Columns: segment, segment_value, metric, value, ci_low, ci_high, n (the metric's denominator),
    rows, labelled, gap (value - overall), ratio (value / overall; empty on ratio and summary rows).
    """
    return subgroup_and_overall_metrics(
        day, segments, intersections, confidence, min_n, task=task, classes=classes
    )[0]


def subgroup_and_overall_metrics(
    day: pd.DataFrame,
    segments: Sequence[str],
    intersections: Sequence[Sequence[str]] = (),
    confidence: float = 0.95,
    min_n: int = 200,
    *,
    task: str = "binary_classification",
    classes: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`subgroup_metrics` and `overall_metrics` of the same day from one pass: the overall row is what
    every gap is measured against, so it is computed once (its AUC interval sorts the whole day).
    A regression or multiclass model (`task`, its `classes`) gets its own metrics (core.task_subgroups)."""
    groups = [[s] for s in segments] + [list(c) for c in intersections]
    if task != "binary_classification":
        return _task_subgroup_metrics(day, groups, task, classes, confidence, min_n)
    base = _prepare(day, [c for columns in groups for c in columns])
    overall = _group_metrics(base, _one_group(len(base)), confidence)
    overall_rows = overall[OVERALL_COLUMNS].reset_index(drop=True)
    overall_value = overall.set_index("metric")["value"]
    frames: list[pd.DataFrame] = []
    for columns in groups:
        seg = segment_name(columns)
        rows = _group_metrics(base, group_codes(base, columns), confidence)
        if rows.empty:
            continue
        frames.append(_against_overall(rows, seg, overall_value))
        summary = _summary_rows(seg, rows, min_n, confidence)
        if summary:
            frames.append(pd.DataFrame(summary, columns=COLUMNS))
    if not frames:
        return pd.DataFrame(columns=COLUMNS), overall_rows
    return pd.concat(frames, ignore_index=True), overall_rows


def _against_overall(rows: pd.DataFrame, segment: str, overall_value: pd.Series) -> pd.DataFrame:
    """A grouping's value rows in table layout, with `segment` and each value's gap and ratio to the whole
    day's value of its metric (every task's subgroup rows)."""
    ref = rows["metric"].map(overall_value).to_numpy(dtype=float)
    value = rows["value"].to_numpy(dtype=float)
    rows.insert(0, "segment", segment)
    rows["gap"] = value - ref
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["ratio"] = np.where(ref != 0, value / ref, np.nan)
    return rows[COLUMNS]


def _task_subgroup_metrics(
    day: pd.DataFrame,
    groups: list[list[str]],
    task: str,
    classes: Sequence[str],
    confidence: float,
    min_n: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """subgroup_and_overall_metrics of a regression or multiclass model: value rows with their gap and
    ratio to the whole day's value, then the segment's fairness rows (mae_ratio / accuracy_shortfall)."""
    base = task_subgroups.prepare(day, [c for columns in groups for c in columns], task, len(classes))
    overall, _ = task_subgroups.task_group_rows(
        task, base, task_subgroups.one_group(len(base)), classes, confidence, None
    )
    overall_rows = overall[OVERALL_COLUMNS].reset_index(drop=True)
    overall_value = overall.set_index("metric")["value"]
    frames: list[pd.DataFrame] = []
    for columns in groups:
        seg = segment_name(columns)
        values, fair = task_subgroups.task_group_rows(
            task, base, group_codes(base, columns), classes, confidence, min_n
        )
        if values.empty:
            continue
        values = _against_overall(values, seg, overall_value)
        values.loc[values["metric"] == "bias", "ratio"] = np.nan  # a signed error: its ratio means nothing
        frames.append(values)
        if len(fair):
            frames.append(fair.assign(segment=seg, gap=np.nan, ratio=np.nan)[COLUMNS])
    if not frames:
        return pd.DataFrame(columns=COLUMNS), overall_rows
    return pd.concat(frames, ignore_index=True), overall_rows


# --------------------------------------------------------------------------- checks


# Numbers in messages: three decimals, "n/a" when missing.
_show = partial(fmt, digits=3, style="f", missing="n/a")


def _percent(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * float(x):.1f} %"


def _relative(drop: float, direction: float) -> str:
    """`rose 52.0 %` / `fell 3.1 %` for a relative drop (positive = worse) of a metric of `direction`."""
    change = -direction * float(drop)
    if not np.isfinite(change) or change == 0:
        return "did not move"
    return f"{'rose' if change > 0 else 'fell'} {_percent(abs(change))}"


def _moved(change: float) -> str:
    """`rose 0.137` / `fell 0.137` / `did not move`: words from the sign, never "fell -0.137"."""
    change = float(change)
    if not np.isfinite(change) or change == 0:
        return "did not move"
    return f"{'rose' if change > 0 else 'fell'} {_show(abs(change))}"


@dataclass(frozen=True)
class GapRule:
    """How `fairness_gap` reads one fairness metric: which side is unfair, the line (a SubgroupThresholds
    field) a group must be beyond to be looked at, and the owner's absolute limit (a field, None = unset)."""

    metric: str
    worse: int  # -1: lower is more unfair (a ratio); +1: higher is (a difference)
    line: str
    absolute: str | None  # None: no absolute limit can be configured for this metric
    label: str  # in messages

    def limit(self, t: SubgroupThresholds) -> float | None:
        """The owner's absolute limit of this metric, None when unset (or not configurable)."""
        return None if self.absolute is None else getattr(t, self.absolute)

    def beyond(self, x: float, limit: float) -> bool:
        """`x` lies on the unfair side of `limit` (False when either is missing)."""
        return bool(np.isfinite(x) and np.isfinite(limit) and self.worse * (x - limit) > 0)

    def fair_end(self, low: float, high: float) -> float:
        """The end of an interval nearest to fairness: the interval lies beyond a limit when this end does."""
        return high if self.worse < 0 else low


GAP_RULES: dict[str, GapRule] = {
    r.metric: r
    for r in (
        GapRule(RATIO_METRIC, -1, "disparity_low", "absolute_min_ratio", "four-fifths ratio"),
        GapRule(
            "demographic_parity_difference",
            1,
            "parity_gap",
            "absolute_max_parity_difference",
            "demographic-parity difference",
        ),
        GapRule(
            "equalized_odds_difference",
            1,
            "equalized_odds_gap",
            "absolute_max_equalized_odds_difference",
            "equalized-odds difference",
        ),
        # regression and multiclass (core.task_subgroups): a value against the rest of its segment
        GapRule(
            ERROR_RATIO_METRIC,
            1,
            "disparity_high",
            "absolute_max_mae_ratio",
            "MAE ratio to the rest of the segment",
        ),
        GapRule(
            SHORTFALL_METRIC,
            1,
            "parity_gap",
            "absolute_max_accuracy_shortfall",
            "accuracy shortfall to the rest of the segment",
        ),
    )
}
# Per-value gap metrics whose reference level is the window's mean of the daily values (no max − min).
OWN_LEVEL_METRICS = (ERROR_RATIO_METRIC, SHORTFALL_METRIC)
MIN_BAND_DAYS = 3  # reference days with a value before a band's spread means anything
# What a fairness_gap finding is, by the evidence behind it, and its severity.
GAP_KINDS: dict[str, str] = {
    "absolute_limit": "critical",
    "emerging": "warning",
    "standing": "info",
    "no_reference": "info",
}
LEVEL_COLUMNS = ["segment", "segment_value", "metric", "reference_value", "reference_low", "reference_high"]


def has_band(mean: float, std: float, n_days: float) -> bool:
    """A reference band to judge a change against: a mean and a spread from at least MIN_BAND_DAYS days."""
    return bool(np.isfinite(mean) and np.isfinite(std) and np.isfinite(n_days) and n_days >= MIN_BAND_DAYS)


def reference_levels(bands: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The fairness metrics of the reference window itself, with intervals, from its groups' daily bands.

    A group's reference rate is the mean of its daily rates over the window, with standard error
    std / sqrt(days). From those: each value's four-fifths ratio to the most-favoured value (the highest
    reference rate; log interval by the delta method), the demographic-parity difference (highest minus
    lowest rate) and the equalized-odds difference (the larger of the recall and fpr ranges; interval
    [max of the lows, max of the highs]), over the values that had a four-fifths ratio (`min_n` rows) on
    at least MIN_BAND_DAYS reference days. These say whether the window had a gap (a *standing* one):
    unlike the mean of the daily differences they are not inflated by each day's sampling noise, which
    makes the largest minus the smallest of many small groups look like a gap every day.
    Columns: LEVEL_COLUMNS.
    """
    need = {"segment", "segment_value", "metric", "mean", "std", "n_days"}
    if bands.empty or not need <= set(bands.columns):
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    usable = bands[
        (bands["segment_value"] != ALL)
        & np.isfinite(pd.to_numeric(bands["mean"], errors="coerce").astype(float))
        & np.isfinite(pd.to_numeric(bands["std"], errors="coerce").astype(float))
        & (pd.to_numeric(bands["n_days"], errors="coerce").astype(float) >= MIN_BAND_DAYS)
    ]
    z = z_value(confidence)
    out: list[tuple] = []
    for seg, rows in usable.groupby("segment", sort=True):
        table = rows.pivot_table(index="segment_value", columns="metric", values=["mean", "std", "n_days"])
        if RATIO_METRIC not in table["mean"].columns or "positive_rate" not in table["mean"].columns:
            continue
        table = table[table["mean"][RATIO_METRIC].notna() & table["mean"]["positive_rate"].notna()]
        if len(table) < 2:
            continue

        def mean_se(metric: str, table: pd.DataFrame = table) -> tuple[pd.Series, pd.Series]:
            return table["mean"][metric], table["std"][metric] / np.sqrt(table["n_days"][metric])

        rate, se = mean_se("positive_rate")
        top = rate.idxmax()
        with np.errstate(invalid="ignore", divide="ignore"):
            log_se = np.sqrt((se / rate) ** 2 + (se[top] / rate[top]) ** 2)
            ratio = rate / rate[top]
            low = np.where(rate > 0, ratio * np.exp(-z * log_se), 0.0)
            high = np.where(rate > 0, ratio * np.exp(z * log_se), (rate + z * se) / rate[top])
        for value, r, lo, hi in zip(rate.index, ratio, low, high, strict=True):
            if value != top:
                out.append((seg, value, RATIO_METRIC, r, lo, hi))
        out.append((seg, ALL, "demographic_parity_difference", *_level_range(rate, se, z)))
        parts = []
        for metric in ("recall", "fpr"):
            if metric in table["mean"].columns:
                m, s = mean_se(metric)
                if m.notna().sum() >= 2:
                    parts.append(_level_range(m[m.notna()], s[m.notna()], z))
        if parts:
            level = (max(p[0] for p in parts), max(p[1] for p in parts), max(p[2] for p in parts))
            out.append((seg, ALL, "equalized_odds_difference", *level))
    return pd.DataFrame(out, columns=LEVEL_COLUMNS)


def own_levels(bands: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The reference window's own value of the per-value gap metrics of regression and multiclass models
    (OWN_LEVEL_METRICS): the mean of the daily values ± z·std/sqrt(days), from bands of at least
    MIN_BAND_DAYS days. Each is one value against the rest of its segment, not a largest minus smallest
    of many groups, so the daily mean is not inflated by sampling noise. Columns: LEVEL_COLUMNS."""
    need = {"segment", "segment_value", "metric", "mean", "std", "n_days"}
    if bands.empty or not need <= set(bands.columns):
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    rows = bands[bands["metric"].isin(list(OWN_LEVEL_METRICS))]
    mean = pd.to_numeric(rows["mean"], errors="coerce").to_numpy(dtype=float)
    std = pd.to_numeric(rows["std"], errors="coerce").to_numpy(dtype=float)
    days = pd.to_numeric(rows["n_days"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(mean) & np.isfinite(std) & (days >= MIN_BAND_DAYS)
    half = z_value(confidence) * std[ok] / np.sqrt(days[ok])
    out = rows.loc[ok, ["segment", "segment_value", "metric"]].assign(
        reference_value=mean[ok], reference_low=mean[ok] - half, reference_high=mean[ok] + half
    )
    return out.reset_index(drop=True)[LEVEL_COLUMNS]


def _level_range(mean: pd.Series, se: pd.Series, z: float) -> tuple[float, float, float]:
    """Highest minus lowest reference mean, ± z times the root sum of their squared standard errors."""
    hi, lo = mean.idxmax(), mean.idxmin()
    d, half = float(mean[hi] - mean[lo]), z * float(np.hypot(se[hi], se[lo]))
    return d, d - half, d + half


def band_edge(
    rule: GapRule, band_k: float, band: tuple[float, float, float], ci: tuple[float, float], confidence: float
) -> float:
    """The edge of the reference band on the unfair side for today's number:
    mean + worse·band_k·sqrt(std² + se²), where se = today's standard error, read back from its interval
    (width / 2z; 0 without one). Today's error widens the band: the reference std comes from a few dozen
    days of their own size, today may be smaller, and a most-favoured group or a max − min over a few
    hundred rows has heavier tails than a normal band allows for."""
    mean, std, _ = band
    se = (ci[1] - ci[0]) / (2 * z_value(confidence))
    return float(mean + rule.worse * band_k * np.hypot(std, se if np.isfinite(se) else 0.0))


def judge_gap(
    rule: GapRule,
    t: SubgroupThresholds,
    today: tuple[float, float, float],
    band: tuple[float, float, float],
    level: tuple[float, float],
    confidence: float = 0.95,
) -> str | None:
    """What today's fairness number means: a key of GAP_KINDS, or None.

    `today` = (value, ci_low, ci_high); `band` = (mean, std, days) of the metric's daily values in the
    reference window; `level` = (low, high) of the window's own value (reference_levels).

    * `absolute_limit`: the day's interval lies beyond the owner's absolute limit (when configured).
    * `emerging`: beyond the line today, beyond the band's edge on the unfair side (band_edge: band_k
      spreads of sqrt(std² + today's standard error²)), and the day's interval excludes the band's mean:
      a change, not the model's old habit and not one day's noise.
    * `standing`: not emerging, and the reference window's interval lies beyond the line: a gap the
      model had all along.
    * `no_reference`: no band to tell the two apart, and the day's interval lies beyond the line.
    A group not measured today (value NaN) can only be standing.
    """
    value, ci_low, ci_high = today
    mean, std, days = band
    line, limit = getattr(t, rule.line), rule.limit(t)
    fair_end = rule.fair_end(ci_low, ci_high)
    if limit is not None and rule.beyond(fair_end, limit):
        return "absolute_limit"
    changed = has_band(mean, std, days) and rule.beyond(fair_end, mean)
    if (
        changed
        and rule.beyond(value, line)
        and rule.beyond(value, band_edge(rule, t.band_k, band, (ci_low, ci_high), confidence))
    ):
        return "emerging"
    if rule.beyond(rule.fair_end(*level), line):
        return "standing"
    if not has_band(mean, std, days) and rule.beyond(fair_end, line):
        return "no_reference"
    return None


def _gap_rows(today: pd.DataFrame, bands: pd.DataFrame, min_n: int, confidence: float) -> pd.DataFrame:
    """Today's fairness rows (four-fifths ratios of values with `min_n` rows, parity summaries) next to the
    bands of their daily values and the reference window's own values (reference_levels). A group with a
    reference but no row today is kept (value NaN): it may be standing."""
    keys = ["segment", "segment_value", "metric"]
    rows = today[today["metric"].isin(list(GAP_RULES))]
    rows = rows[(rows["segment_value"] == ALL) | (rows["rows"] >= min_n)]
    rows = rows[[*keys, "value", "ci_low", "ci_high", "rows", "labelled"]]
    if bands.empty or not set(keys) <= set(bands.columns):
        band = pd.DataFrame(columns=[*keys, "mean", "std", "n_days"])
    else:
        band = bands[bands["metric"].isin(list(GAP_RULES))][[*keys, "mean", "std", "n_days"]]
    levels = reference_levels(bands, confidence)
    own = own_levels(bands, confidence)
    if len(own):
        levels = own if levels.empty else pd.concat([levels, own], ignore_index=True)
    merged = rows.merge(band, on=keys, how="outer").merge(levels, on=keys, how="outer")
    numeric = ["value", "ci_low", "ci_high", "rows", "labelled", "mean", "std", "n_days"]
    for column in [*numeric, *LEVEL_COLUMNS[3:]]:
        merged[column] = pd.to_numeric(merged[column], errors="coerce").astype(float)
    return merged.sort_values(keys, kind="stable").reset_index(drop=True)


def _fairness_findings(
    today: pd.DataFrame, bands: pd.DataFrame, t: SubgroupThresholds, confidence: float
) -> tuple[list[Finding], dict[str, object]]:
    values = today[today["segment_value"] != ALL]
    pr = values[(values["metric"] == "positive_rate") & values["value"].notna()]
    small = int((pr["rows"] < t.min_n).sum())
    # regression / multiclass: values with too few labelled rows for their gap row
    base_rows = values[values["metric"].isin(list(REST_BASE)) & values["value"].notna()]
    small += int((base_rows["labelled"] < t.min_n).sum())
    favoured: dict[str, pd.Series] = {}
    for seg, rates in _eligible_rates(pr, t.min_n).groupby("segment", sort=True):
        if len(rates) >= 2:
            favoured[str(seg)] = _favoured(rates)
    rates = pr.set_index(["segment", "segment_value"])
    findings: list[Finding] = []
    counts = dict.fromkeys(GAP_KINDS, 0)
    for r in _gap_rows(today, bands, t.min_n, confidence).to_dict("records"):
        rule = GAP_RULES[r["metric"]]
        kind = judge_gap(
            rule,
            t,
            (r["value"], r["ci_low"], r["ci_high"]),
            (r["mean"], r["std"], r["n_days"]),
            (r["reference_low"], r["reference_high"]),
            confidence,
        )
        if kind is None:
            continue
        counts[kind] += 1
        seg, value = str(r["segment"]), str(r["segment_value"])
        if rule.metric == RATIO_METRIC:
            top = favoured.get(seg)
            own = rates.loc[(seg, value)] if (seg, value) in rates.index else None
            context = (
                f"positive rate {_show(own['value'] if own is not None else np.nan)} vs "
                f"{_show(top['value'] if top is not None else np.nan)} of the most-favoured "
                f"{seg}={top['segment_value'] if top is not None else 'n/a'}"
            )
            extra = {
                "favoured_group": None if top is None else str(top["segment_value"]),
                "favoured_positive_rate": None if top is None else json_float(top["value"]),
                "favoured_rows": None if top is None else int(top["rows"]),
                "positive_rate": None if own is None else json_float(own["value"]),
            }
        elif rule.metric in OWN_LEVEL_METRICS:
            context, extra = _rest_context(rule.metric, values, seg, value)
        else:
            base = "positive_rate" if rule.metric == "demographic_parity_difference" else None
            context = _extremes(values[values["segment"] == seg], base, t.min_n)
            extra = {"extremes": context}
        findings.append(_gap_finding(rule, kind, r, t, confidence, context, extra))
    metadata: dict[str, object] = {
        "values_below_min_n": small,
        "favoured_groups": {seg: str(top["segment_value"]) for seg, top in favoured.items()},
        **{f"{kind}_findings": n for kind, n in counts.items()},
    }
    return findings, metadata


# The value metric behind each per-value gap metric of regression and multiclass models.
REST_BASE = {"mae": ERROR_RATIO_METRIC, "accuracy": SHORTFALL_METRIC}


def _rest_context(metric: str, values: pd.DataFrame, seg: str, value: str) -> tuple[str, dict]:
    """The value's own MAE / accuracy today and the rest of its segment's, recovered from the gap row
    (rest MAE = MAE / ratio; rest accuracy = accuracy + shortfall)."""
    base = "mae" if metric == ERROR_RATIO_METRIC else "accuracy"
    mine = values[(values["segment"] == seg) & (values["segment_value"] == value)].set_index("metric")
    own = float(mine.loc[base, "value"]) if base in mine.index else np.nan
    gap = float(mine.loc[metric, "value"]) if metric in mine.index else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        rest = own / gap if metric == ERROR_RATIO_METRIC else own + gap
    context = f"{base} {_show(own)} vs {_show(rest)} for the rest of {seg}"
    return context, {f"group_{base}": json_float(own), f"rest_{base}": json_float(rest)}


def _gap_finding(
    rule: GapRule, kind: str, r: dict, t: SubgroupThresholds, confidence: float, context: str, extra: dict
) -> Finding:
    """One fairness_gap finding of `kind` (GAP_KINDS) from a `_gap_rows` record, with its evidence."""
    seg, segment_value = str(r["segment"]), str(r["segment_value"])
    subject = f"{seg}={segment_value}"
    line, limit = float(getattr(t, rule.line)), rule.limit(t)
    value, mean, std = r["value"], r["mean"], r["std"]
    days = int(r["n_days"]) if np.isfinite(r["n_days"]) else 0
    today = f"{_show(value)} (CI {_show(r['ci_low'])}-{_show(r['ci_high'])})"
    window = (
        f"{_show(r['reference_value'])} (CI {_show(r['reference_low'])}-{_show(r['reference_high'])}) "
        f"over the reference window"
    )
    daily = f"{_show(mean)} ± {_show(std)} a day over {days} reference days"
    if kind == "absolute_limit":
        threshold = float(limit)
        message = (
            f"{rule.label} of {subject} is {today}, beyond the absolute limit {limit:g} configured for this "
            f"model (thresholds.subgroups.{rule.absolute}); reference {window}; {context}"
        )
    elif kind == "emerging":
        edge = band_edge(rule, t.band_k, (mean, std, days), (r["ci_low"], r["ci_high"]), confidence)
        threshold = float(min(edge, line) if rule.worse < 0 else max(edge, line))
        message = (
            f"{rule.label} of {subject} is {today}: a new gap, beyond the line {line:g} and beyond its "
            f"reference band ({daily}; edge today {_show(edge)}); {context}"
        )
    elif kind == "standing":
        threshold = line
        message = (
            f"standing gap, not a change: {rule.label} of {subject} was {window}, beyond the line {line:g} "
            f"already; today {today}. For review: it alerts only if it grows beyond its reference band or "
            f"crosses an absolute limit; {context}"
        )
    else:
        threshold = line
        message = (
            f"{rule.label} of {subject} is {today}, beyond the line {line:g}, and there is no reference band "
            f"to tell a standing gap from a new one (for review); {context}"
        )
    return Finding(
        check_name=FAIRNESS_GAP,
        severity=GAP_KINDS[kind],  # type: ignore[arg-type]
        metric=rule.metric,
        subject=subject,
        value=json_float(value if np.isfinite(value) else r["reference_value"]),
        threshold=threshold,
        message=message,
        evidence={
            "kind": kind,
            "direction": "lower_is_worse" if rule.worse < 0 else "higher_is_worse",
            "segment": seg,
            "segment_value": segment_value,
            "n": int(r["rows"]) if np.isfinite(r["rows"]) else None,
            "labelled": int(r["labelled"]) if np.isfinite(r["labelled"]) else None,
            "today_value": json_float(value),
            "ci": [json_float(r["ci_low"]), json_float(r["ci_high"])],
            "reference_value": json_float(r["reference_value"]),
            "reference_ci": [json_float(r["reference_low"]), json_float(r["reference_high"])],
            "reference_mean": json_float(mean),
            "reference_std": json_float(std),
            "reference_days": days,
            "line": line,
            "absolute_limit": limit,
            "review": GAP_KINDS[kind] == "info",  # for the fairness reviewer's backlog, not for on-call
            **extra,
        },
    )


def _extremes(values: pd.DataFrame, metric: str | None, min_n: int) -> str:
    """Human-readable highest and lowest values behind a segment summary."""
    parts = []
    metrics = [metric] if metric else ["recall", "fpr"]
    for m in metrics:
        rows = values[(values["metric"] == m) & values["value"].notna()]
        rows = rows[rows["rows" if m == "positive_rate" else "labelled"] >= min_n]
        if len(rows) >= 2:
            hi = rows.loc[rows["value"].idxmax()]
            lo = rows.loc[rows["value"].idxmin()]
            parts.append(
                f"{m} highest {hi['segment_value']} {_show(hi['value'])}, lowest {lo['segment_value']} {_show(lo['value'])}"
            )
    return "; ".join(parts)


def _degradation_findings(
    today: pd.DataFrame,
    bands: pd.DataFrame,
    overall_today: pd.DataFrame,
    overall_bands: pd.DataFrame,
    t: SubgroupThresholds,
    confidence: float,
    directions: dict[str, int] = DEGRADATION_DIRECTION,
    relative: frozenset[str] = frozenset(),
) -> tuple[list[Finding], dict[str, int]]:
    """`directions`: the watched metrics and their good direction; `relative`: those whose drops, spread
    and margin are fractions of the reference mean (error metrics in the label's unit)."""
    rows = today[(today["segment_value"] != ALL) & today["metric"].isin(list(directions))]
    rows = rows[rows["value"].notna()]
    small = int((rows["labelled"] < t.min_n).sum())
    rows = rows[rows["labelled"] >= t.min_n]
    band_cols = bands[["segment", "segment_value", "metric", "mean", "std", "n_days"]]
    merged = rows.merge(band_cols, on=["segment", "segment_value", "metric"], how="left")
    no_reference = int(merged["mean"].isna().sum())
    merged = merged[merged["mean"].notna()]
    ov = overall_today[["metric", "value"]].rename(columns={"value": "overall_value"})
    ob = overall_bands[["metric", "mean"]].rename(columns={"mean": "overall_mean"})
    merged = merged.merge(ov, on="metric", how="left").merge(ob, on="metric", how="left")
    if merged.empty:
        return [], {"evaluated": 0, "below_min_n": small, "no_reference": no_reference}

    direction = merged["metric"].map(directions).to_numpy(dtype=float)
    value = merged["value"].to_numpy(dtype=float)
    mean = merged["mean"].to_numpy(dtype=float)
    is_relative = merged["metric"].isin(list(relative)).to_numpy(dtype=bool)
    # 1 for rates (drops in absolute points); the reference means for relative metrics
    scale = np.where(is_relative, mean, 1.0)
    overall_scale = np.where(is_relative, merged["overall_mean"].to_numpy(dtype=float), 1.0)
    std = merged["std"].to_numpy(dtype=float)
    se_today = (merged["ci_high"].to_numpy(dtype=float) - merged["ci_low"].to_numpy(dtype=float)) / (
        2 * z_value(confidence)
    )
    # The band's day-to-day spread, but never narrower than today's own sampling error: a reference
    # of busier days (or a single day, std NaN) must not make a quiet small day look alarming.
    spread = np.sqrt(np.where(np.isfinite(std), std, 0.0) ** 2 + se_today**2)
    spread = np.where(np.isfinite(spread), spread, 0.0) / scale
    seg_drop = direction * (mean - value) / scale
    overall_drop = (
        direction
        * (merged["overall_mean"].to_numpy(dtype=float) - merged["overall_value"].to_numpy(dtype=float))
        / overall_scale
    )
    overall_drop = np.where(np.isfinite(overall_drop), overall_drop, 0.0)
    differential = seg_drop - np.clip(overall_drop, 0.0, None)
    needed = t.band_k * spread + t.degradation_margin
    fire = differential > needed
    findings = []
    for i in np.flatnonzero(fire):
        r = merged.iloc[i]
        limit = mean[i] - direction[i] * (needed[i] + max(overall_drop[i], 0.0)) * scale[i]
        subject = f"{r['segment']}={r['segment_value']}"
        if is_relative[i]:
            message = (
                f"{r['metric']} of {subject} is {_show(value[i])} (CI {_show(r['ci_low'])}-{_show(r['ci_high'])}) "
                f"against its reference {_show(mean[i])} ± {_show(std[i])}: {_relative(seg_drop[i], direction[i])} "
                f"while the overall {r['metric']} {_relative(overall_drop[i], direction[i])}; it worsened "
                f"{_percent(differential[i])} of its reference more than the overall, beyond "
                f"{t.band_k}·{_percent(spread[i])} + margin {_percent(t.degradation_margin)} "
                f"({int(r['labelled'])} labelled of {int(r['rows'])} rows)"
            )
        else:
            message = (
                f"{r['metric']} of {subject} is {_show(value[i])} (CI {_show(r['ci_low'])}-{_show(r['ci_high'])}) "
                f"against its reference {_show(mean[i])} ± {_show(std[i])}: it {_moved(value[i] - mean[i])} while "
                f"the overall {r['metric']} {_moved(r['overall_value'] - r['overall_mean'])}; it worsened "
                f"{_show(differential[i])} more than the overall, beyond "
                f"{t.band_k}·{_show(spread[i])} + margin {t.degradation_margin} "
                f"({int(r['labelled'])} labelled of {int(r['rows'])} rows)"
            )
        findings.append(
            Finding(
                check_name=DIFFERENTIAL_DEGRADATION,
                severity="critical",
                metric=str(r["metric"]),
                subject=subject,
                value=float(value[i]),
                threshold=float(limit),
                message=message,
                evidence={
                    "segment": r["segment"],
                    "segment_value": r["segment_value"],
                    "n": int(r["rows"]),
                    "labelled": int(r["labelled"]),
                    "metric_n": int(r["n"]),
                    "ci": [float(r["ci_low"]), float(r["ci_high"])],
                    "reference_mean": float(mean[i]),
                    "reference_std": json_float(std[i]),
                    "reference_days": int(r["n_days"]) if np.isfinite(r["n_days"]) else 0,
                    "segment_drop": float(seg_drop[i]),
                    "overall_drop": float(overall_drop[i]),
                    "overall_value": float(r["overall_value"]),
                    "overall_reference_mean": float(r["overall_mean"]),
                    "excess_drop": float(differential[i]),
                    "spread": float(spread[i]),
                    **({"relative_to_reference": True} if is_relative[i] else {}),
                },
            )
        )
    findings += _judged_values(
        merged, fire, needed - differential, value, mean, direction, needed, overall_drop, scale
    )
    return findings, {"evaluated": len(merged), "below_min_n": small, "no_reference": no_reference}


def _judged_values(
    merged: pd.DataFrame,
    fire: np.ndarray,
    room: np.ndarray,
    value: np.ndarray,
    mean: np.ndarray,
    direction: np.ndarray,
    needed: np.ndarray,
    overall_drop: np.ndarray,
    scale: np.ndarray,
) -> list[Finding]:
    """One `ok` entry per judged segment value that did not fire: its metric closest to firing, with the
    line it would cross, so an open alert resolves only once the value is back inside by a margin."""
    subjects = (merged["segment"].astype(str) + "=" + merged["segment_value"].astype(str)).to_numpy()
    metrics = merged["metric"].astype(str).to_numpy()
    fired = set(subjects[fire])
    closest: dict[str, int] = {}
    for i in np.flatnonzero(~fire):  # a few dozen segment values × metrics, not rows
        subject = subjects[i]
        if subject not in fired and (subject not in closest or room[i] < room[closest[subject]]):
            closest[subject] = i
    out = []
    for subject, i in closest.items():
        limit = mean[i] - direction[i] * (needed[i] + max(overall_drop[i], 0.0)) * scale[i]
        if np.isfinite(value[i]) and np.isfinite(limit):
            out.append(observed(DIFFERENTIAL_DEGRADATION, subject, metrics[i], float(value[i]), float(limit)))
    return out


# Regression: MAE, judged relative to its reference (see the module docstring of core.task_subgroups and
# docs/fairness.md); multiclass: accuracy and each class's recall, in rate points as binary metrics.
ERROR_DEGRADATION_DIRECTION: dict[str, int] = {"mae": -1}


def degradation_metrics(task: str, today: pd.DataFrame) -> tuple[dict[str, int], frozenset[str]]:
    """The metrics differential_degradation watches for a task, their good direction, and which of them
    are judged relative to their reference level."""
    if task == "regression":
        return ERROR_DEGRADATION_DIRECTION, frozenset(ERROR_DEGRADATION_DIRECTION)
    if task == "multiclass_classification":
        names = (
            sorted(
                {
                    str(m)
                    for m in today["metric"].unique()
                    if str(m) == "accuracy" or str(m).startswith("recall:")
                }
            )
            if len(today)
            else ["accuracy"]
        )
        return dict.fromkeys(names, 1), frozenset()
    return DEGRADATION_DIRECTION, frozenset()


def subgroup_checks(
    today: pd.DataFrame,
    bands: pd.DataFrame,
    overall_today: pd.DataFrame,
    overall_bands: pd.DataFrame,
    thresholds: SubgroupThresholds,
    confidence: float = 0.95,
    task: str = "binary_classification",
) -> list[CheckResult]:
    """`fairness_gap` and `differential_degradation` outcomes for one model-day.

    `today` is this day's `subgroup_metrics`; `bands` are `summarize_days(reference subgroup rows,
    [segment, segment_value, metric])`; `overall_today` is `overall_metrics(day)` and `overall_bands`
    `summarize_days(reference overall rows, [metric])`. `confidence` must match the one the rows were
    computed with (it turns their CIs back into standard errors).
    """
    directions, relative = degradation_metrics(task, today)
    fair, fair_meta = _fairness_findings(today, bands, thresholds, confidence)
    degr, counts = _degradation_findings(
        today, bands, overall_today, overall_bands, thresholds, confidence, directions, relative
    )
    return [
        CheckResult(
            check_name=FAIRNESS_GAP,
            findings=fair,
            metadata={
                "segments": int(today["segment"].nunique()) if not today.empty else 0,
                **fair_meta,
                "min_n": thresholds.min_n,
                "four_fifths_line": thresholds.disparity_low,
                "parity_gap": thresholds.parity_gap,
                "equalized_odds_gap": thresholds.equalized_odds_gap,
                "band_k": thresholds.band_k,
                "absolute_limits": {
                    rule.absolute: rule.limit(thresholds) for rule in GAP_RULES.values() if rule.absolute
                },
            },
            description="Four-fifths ratio to the most-favoured value, parity and equalized-odds differences "
            "against the reference window: standing gaps are info, gaps that appeared or grew beyond the "
            "reference band are warnings, intervals beyond a configured absolute limit are critical.",
        ),
        CheckResult(
            check_name=DIFFERENTIAL_DEGRADATION,
            findings=degr,
            metadata={
                **counts,
                "metrics": list(directions),
                "min_n": thresholds.min_n,
                "band_k": thresholds.band_k,
                "degradation_margin": thresholds.degradation_margin,
            },
            description="A segment value's metric fell against its own reference band by more than the "
            "overall metric fell, beyond band_k spreads plus degradation_margin.",
        ),
    ]
