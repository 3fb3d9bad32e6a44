"""Subgroup metrics, fairness gaps and differential degradation (the `subgroup_metrics` table).

An average can look fine while one group of 5-10 % of traffic is badly served. This module
disaggregates the champion's day by every segment value (and configured intersections), puts a
confidence interval on every number, and raises two checks:

* `fairness_gap` (warning): a segment value's positive rate is outside the four-fifths band
  against the overall rate, or a segment's demographic-parity / equalized-odds difference exceeds
  its threshold - in both cases only when the confidence interval clears the threshold.
* `differential_degradation` (critical): a segment value's metric fell against its own reference
  band by more than the overall metric fell, plus `degradation_margin`.

Groups with fewer than `min_n` rows (labelled rows for label metrics) are reported but never alert.
See docs/fairness.md for the definitions and the reasons behind each default.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from monitoring_pipelines.config import SubgroupThresholds
from monitoring_pipelines.core.findings import CheckResult, CheckSpec, Finding
from monitoring_pipelines.core.formatting import fmt, json_float
from monitoring_pipelines.core.stats import (
    auc_ci,
    newcombe_difference,
    proportion_interval,
    take,
    to_float_array,
    z_value,
)
from monitoring_pipelines.schema import ALL, MISSING, result_columns

FAIRNESS_GAP, DIFFERENTIAL_DEGRADATION = "fairness_gap", "differential_degradation"


def _check_specs(t: SubgroupThresholds = SubgroupThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008
    return (
        CheckSpec(
            FAIRNESS_GAP,
            "warning",
            f"Positive-rate disparity outside the band [{t.disparity_low:g}, {t.disparity_high:g}] of the "
            f"overall rate, or a demographic-parity / equalized-odds difference beyond {t.parity_gap:g} / "
            f"{t.equalized_odds_gap:g}, for segment values with at least {t.min_n} rows.",
        ),
        CheckSpec(
            DIFFERENTIAL_DEGRADATION,
            "critical",
            f"A segment's metric fell against its own reference band (mean ± {t.band_k:g}·σ) by more than the "
            f"overall metric fell, plus {t.degradation_margin:g}: the group getting worse while the average holds.",
        ),
    )


CHECKS = _check_specs()
INTERSECTION_SEP = "*"
VALUE_SEP = "|"

# Per-value metrics, in output order. `recall` is the true-positive rate (same name as in
# performance_metrics); `calibration_gap` is mean score minus label rate (calibration-in-the-large).
VALUE_METRICS = ("positive_rate", "label_rate", "recall", "fpr", "precision", "auc", "calibration_gap")
SUMMARY_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "disparity_ratio_min",
    "disparity_ratio_max",
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

    # value-major layout: every metric of the first value, then the next value, ...
    k = len(VALUE_METRICS)
    stacked = np.stack([np.stack(results[m]) for m in VALUE_METRICS], axis=2)  # (4, groups, k)
    return pd.DataFrame(
        {
            "segment_value": np.repeat(np.asarray(uniques, dtype=object), k),
            "metric": np.tile(np.array(VALUE_METRICS, dtype=object), groups),
            "value": stacked[0].ravel(),
            "ci_low": stacked[1].ravel(),
            "ci_high": stacked[2].ravel(),
            "n": stacked[3].ravel().astype("int64"),
            "rows": np.repeat(rows, k).astype("int64"),
            "labelled": np.repeat(n_lab, k).astype("int64"),
        }
    )


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


def _summary_rows(seg: str, rows: pd.DataFrame, overall_rate: float, min_n: int) -> list[dict]:
    """Segment-level fairness summaries over values with at least `min_n` rows (labelled for EO)."""
    out: list[dict] = []

    def row(metric: str, value: float, low: float, high: float, used: pd.DataFrame) -> None:
        out.append(
            {
                "segment": seg,
                "segment_value": ALL,
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

    pr = rows[(rows["metric"] == "positive_rate") & (rows["rows"] >= min_n) & rows["value"].notna()]
    if len(pr) >= 2:
        d, low, high = _range_diff(pr)
        row("demographic_parity_difference", d, low, high, pr)
        top = pr["value"].max()
        row("demographic_parity_ratio", pr["value"].min() / top if top > 0 else np.nan, np.nan, np.nan, pr)
    if len(pr) >= 1 and overall_rate > 0:
        lo = pr.loc[pr["ratio"].idxmin()]
        hi = pr.loc[pr["ratio"].idxmax()]
        row("disparity_ratio_min", lo["ratio"], lo["ci_low"] / overall_rate, lo["ci_high"] / overall_rate, pr)
        row("disparity_ratio_max", hi["ratio"], hi["ci_low"] / overall_rate, hi["ci_high"] / overall_rate, pr)

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
) -> pd.DataFrame:
    """Per segment value: metrics with CIs, gap and ratio to the overall value; per segment: summaries.

    `day` holds the champion's `ok` rows with `score`, `prediction`, `label` (NaN while unlabelled)
    and the segment columns. Intersections are named `a*b` with values `x|y` (config order).
    `min_n` only decides which values enter the segment summaries (`segment_value='__all__'`), so
    that a 30-row group cannot make the parity difference; every value still gets its own rows.
    Columns: segment, segment_value, metric, value, ci_low, ci_high, n (the metric's denominator),
    rows, labelled, gap (value - overall), ratio (value / overall).
    """
    return subgroup_and_overall_metrics(day, segments, intersections, confidence, min_n)[0]


def subgroup_and_overall_metrics(
    day: pd.DataFrame,
    segments: Sequence[str],
    intersections: Sequence[Sequence[str]] = (),
    confidence: float = 0.95,
    min_n: int = 200,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`subgroup_metrics` and `overall_metrics` of the same day from one pass: the overall row is what
    every gap is measured against, so it is computed once (its AUC interval sorts the whole day)."""
    groups = [[s] for s in segments] + [list(c) for c in intersections]
    base = _prepare(day, [c for columns in groups for c in columns])
    overall = _group_metrics(base, _one_group(len(base)), confidence)
    overall_rows = overall[OVERALL_COLUMNS].reset_index(drop=True)
    overall_value = overall.set_index("metric")["value"]
    overall_rate = float(overall_value.get("positive_rate", np.nan))
    frames: list[pd.DataFrame] = []
    for columns in groups:
        seg = segment_name(columns)
        rows = _group_metrics(base, group_codes(base, columns), confidence)
        if rows.empty:
            continue
        ref = rows["metric"].map(overall_value).to_numpy(dtype=float)
        rows.insert(0, "segment", seg)
        rows["gap"] = rows["value"].to_numpy(dtype=float) - ref
        with np.errstate(invalid="ignore", divide="ignore"):
            rows["ratio"] = np.where(ref != 0, rows["value"].to_numpy(dtype=float) / ref, np.nan)
        frames.append(rows[COLUMNS])
        summary = _summary_rows(seg, rows, overall_rate, min_n)
        if summary:
            frames.append(pd.DataFrame(summary, columns=COLUMNS))
    if not frames:
        return pd.DataFrame(columns=COLUMNS), overall_rows
    return pd.concat(frames, ignore_index=True), overall_rows


# --------------------------------------------------------------------------- checks


# Numbers in messages: three decimals, "n/a" when missing.
_show = partial(fmt, digits=3, style="f", missing="n/a")


def _fairness_findings(
    today: pd.DataFrame, overall_rate: float, t: SubgroupThresholds
) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    values = today[today["segment_value"] != ALL]
    pr = values[(values["metric"] == "positive_rate") & values["value"].notna()]
    small = int((pr["rows"] < t.min_n).sum())
    pr = pr[pr["rows"] >= t.min_n]
    if overall_rate > 0:
        r_low = pr["ci_low"].to_numpy(dtype=float) / overall_rate
        r_high = pr["ci_high"].to_numpy(dtype=float) / overall_rate
        below = r_high < t.disparity_low
        above = r_low > t.disparity_high
        for (_, r), lo, hi, b, a in zip(pr.iterrows(), r_low, r_high, below, above, strict=True):
            if not (b or a):
                continue
            bound = t.disparity_low if b else t.disparity_high
            findings.append(
                Finding(
                    check_name=FAIRNESS_GAP,
                    severity="warning",
                    metric="positive_rate_ratio",
                    subject=f"{r['segment']}={r['segment_value']}",
                    value=float(r["ratio"]),
                    threshold=float(bound),
                    message=(
                        f"positive rate of {r['segment']}={r['segment_value']} is {_show(r['value'])} vs "
                        f"{_show(overall_rate)} overall: ratio {_show(r['ratio'])} (CI {_show(lo)}-{_show(hi)}) "
                        f"outside the four-fifths band {t.disparity_low}-{t.disparity_high} ({int(r['rows'])} rows)"
                    ),
                    evidence={
                        "segment": r["segment"],
                        "segment_value": r["segment_value"],
                        "n": int(r["rows"]),
                        "labelled": int(r["labelled"]),
                        "positive_rate": float(r["value"]),
                        "overall_positive_rate": overall_rate,
                        "ratio_ci": [float(lo), float(hi)],
                        "reference": "overall positive rate",
                    },
                )
            )

    summaries = today[
        (today["segment_value"] == ALL)
        & today["metric"].isin(["demographic_parity_difference", "equalized_odds_difference"])
    ]
    for _, r in summaries.iterrows():
        limit = t.parity_gap if r["metric"] == "demographic_parity_difference" else t.equalized_odds_gap
        if not (np.isfinite(r["ci_low"]) and r["ci_low"] > limit):
            continue
        base = "positive_rate" if r["metric"] == "demographic_parity_difference" else None
        extremes = _extremes(values[values["segment"] == r["segment"]], base, t.min_n)
        findings.append(
            Finding(
                check_name=FAIRNESS_GAP,
                severity="warning",
                metric=str(r["metric"]),
                subject=f"{r['segment']}={ALL}",
                value=float(r["value"]),
                threshold=float(limit),
                message=(
                    f"{r['metric']} across {r['segment']} is {_show(r['value'])} "
                    f"(CI {_show(r['ci_low'])}-{_show(r['ci_high'])}) > {limit}; {extremes}"
                ),
                evidence={
                    "segment": r["segment"],
                    "segment_value": ALL,
                    "n": int(r["rows"]),
                    "labelled": int(r["labelled"]),
                    "ci": [float(r["ci_low"]), float(r["ci_high"])],
                    "extremes": extremes,
                    "reference": "largest minus smallest value across the segment's values with enough rows",
                },
            )
        )
    return findings, small


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
) -> tuple[list[Finding], dict[str, int]]:
    rows = today[(today["segment_value"] != ALL) & today["metric"].isin(list(DEGRADATION_DIRECTION))]
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

    direction = merged["metric"].map(DEGRADATION_DIRECTION).to_numpy(dtype=float)
    value = merged["value"].to_numpy(dtype=float)
    mean = merged["mean"].to_numpy(dtype=float)
    std = merged["std"].to_numpy(dtype=float)
    se_today = (merged["ci_high"].to_numpy(dtype=float) - merged["ci_low"].to_numpy(dtype=float)) / (
        2 * z_value(confidence)
    )
    # The band's day-to-day spread, but never narrower than today's own sampling error: a reference
    # of busier days (or a single day, std NaN) must not make a quiet small day look alarming.
    spread = np.sqrt(np.where(np.isfinite(std), std, 0.0) ** 2 + se_today**2)
    spread = np.where(np.isfinite(spread), spread, 0.0)
    seg_drop = direction * (mean - value)
    overall_drop = direction * (
        merged["overall_mean"].to_numpy(dtype=float) - merged["overall_value"].to_numpy(dtype=float)
    )
    overall_drop = np.where(np.isfinite(overall_drop), overall_drop, 0.0)
    differential = seg_drop - np.clip(overall_drop, 0.0, None)
    needed = t.band_k * spread + t.degradation_margin
    fire = differential > needed
    findings = []
    for i in np.flatnonzero(fire):
        r = merged.iloc[i]
        limit = mean[i] - direction[i] * (needed[i] + max(overall_drop[i], 0.0))
        subject = f"{r['segment']}={r['segment_value']}"
        findings.append(
            Finding(
                check_name=DIFFERENTIAL_DEGRADATION,
                severity="critical",
                metric=str(r["metric"]),
                subject=subject,
                value=float(value[i]),
                threshold=float(limit),
                message=(
                    f"{r['metric']} of {subject} is {_show(value[i])} (CI {_show(r['ci_low'])}-{_show(r['ci_high'])}) "
                    f"against its reference {_show(mean[i])} ± {_show(std[i])}: it fell {_show(seg_drop[i])} while the "
                    f"overall {r['metric']} fell {_show(overall_drop[i])}; the excess {_show(differential[i])} is beyond "
                    f"{t.band_k}·{_show(spread[i])} + margin {t.degradation_margin} "
                    f"({int(r['labelled'])} labelled of {int(r['rows'])} rows)"
                ),
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
                },
            )
        )
    return findings, {"evaluated": len(merged), "below_min_n": small, "no_reference": no_reference}


def subgroup_checks(
    today: pd.DataFrame,
    bands: pd.DataFrame,
    overall_today: pd.DataFrame,
    overall_bands: pd.DataFrame,
    thresholds: SubgroupThresholds,
    confidence: float = 0.95,
) -> list[CheckResult]:
    """`fairness_gap` and `differential_degradation` outcomes for one model-day.

    `today` is this day's `subgroup_metrics`; `bands` are `summarize_days(reference subgroup rows,
    [segment, segment_value, metric])`; `overall_today` is `overall_metrics(day)` and `overall_bands`
    `summarize_days(reference overall rows, [metric])`. `confidence` must match the one the rows were
    computed with (it turns their CIs back into standard errors).
    """
    overall_rate = overall_today.set_index("metric")["value"].get("positive_rate", np.nan)
    overall_rate = float(overall_rate) if overall_rate is not None else np.nan
    fair, fair_small = _fairness_findings(today, overall_rate, thresholds)
    degr, counts = _degradation_findings(today, bands, overall_today, overall_bands, thresholds, confidence)
    return [
        CheckResult(
            check_name=FAIRNESS_GAP,
            findings=fair,
            metadata={
                "segments": int(today["segment"].nunique()) if not today.empty else 0,
                "values_below_min_n": fair_small,
                "min_n": thresholds.min_n,
                "disparity_band": [thresholds.disparity_low, thresholds.disparity_high],
                "parity_gap": thresholds.parity_gap,
                "equalized_odds_gap": thresholds.equalized_odds_gap,
            },
            description="Positive-rate ratio vs overall outside the four-fifths band, or a parity / "
            "equalized-odds difference whose CI lies above its threshold.",
        ),
        CheckResult(
            check_name=DIFFERENTIAL_DEGRADATION,
            findings=degr,
            metadata={
                **counts,
                "metrics": list(DEGRADATION_DIRECTION),
                "min_n": thresholds.min_n,
                "band_k": thresholds.band_k,
                "degradation_margin": thresholds.degradation_margin,
            },
            description="A segment value's metric fell against its own reference band by more than the "
            "overall metric fell, beyond band_k spreads plus degradation_margin.",
        ),
    ]
