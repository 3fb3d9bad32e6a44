"""Champion vs shadow on the same requests (the `shadow_comparisons` table) and the promotion rule.

A shadow model scores the same live requests as the champion without being served. Pairing the two
predictions by `request_id` turns every comparison into a paired one, which is far more sensitive
than comparing two independent samples: the request-to-request variation cancels.

* Without labels: agreement, flips, score correlation and shift, serving latency and errors.
* With labels: AUC (paired DeLong), log loss and Brier (paired t on per-row loss differences),
  accuracy and recall (McNemar on the discordant pairs), precision (seeded paired bootstrap).
* Every label-based and label-free quality metric is repeated per segment value, so "better on
  average, worse for 65+" is visible.
* `promotion_recommendation` applies a documented rule to the pooled rows of the last
  `window_days` labelled days; `shadow_checks` turns coverage, harm and the verdict into findings.
* Regression (`task="regression"`): mean shift and rank correlation of the predicted values; with
  labels `mae` (paired absolute errors: bootstrap interval, p the larger of the paired t-test's and the
  Wilcoxon signed-rank test's, so both must reject) and `rmse`. `min_improvement` and
  `segment_tolerance` are fractions of the champion's value for these error metrics: an absolute 0.005
  minutes or dollars would mean something different for every model, while 0.5 % of the champion's MAE
  is about what 0.005 is on an AUC near 0.8.
* Multiclass: agreement of the predicted classes, top-label confidence shift; with labels `accuracy`
  and `recall:<class>` (McNemar on correctness), `log_loss` when the pairs carry both sides'
  `score__<class>` columns.

See docs/shadow.md for the statistics and the reasons behind each default.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import zlib
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd
from scipy import stats

from monitoring_pipelines.config import ServingThresholds, ShadowThresholds
from monitoring_pipelines.core.drift import MAX_WORKERS, PARALLEL_MIN_ROWS
from monitoring_pipelines.core.fairness import group_codes
from monitoring_pipelines.core.findings import CheckResult, CheckSpec, Finding
from monitoring_pipelines.core.formatting import fmt, json_float
from monitoring_pipelines.core.performance import HIGHER_IS_BETTER
from monitoring_pipelines.core.regression import REGRESSION_HIGHER_IS_BETTER, paired_error_comparison
from monitoring_pipelines.core.serving import slo_value
from monitoring_pipelines.core.stats import (
    bootstrap_means,
    delong_covariance,
    log_loss_terms,
    midranks,
    proportion_interval,
    z_value,
)
from monitoring_pipelines.schema import ALL, result_columns

SHADOW_COVERAGE, SHADOW_HARM, SHADOW_PROMOTION = "shadow_coverage", "shadow_harm", "shadow_promotion"


def _check_specs(t: ShadowThresholds = ShadowThresholds()) -> tuple[CheckSpec, ...]:  # noqa: B008
    return (
        CheckSpec(
            SHADOW_COVERAGE,
            "warning",
            f"Fewer than {t.min_coverage:.0%} of the requests seen by champion or shadow were scored by both: "
            "the comparison covers a biased part of the traffic.",
        ),
        CheckSpec(
            SHADOW_HARM,
            "warning",
            f"The shadow is significantly worse than the champion on a segment value (at least {t.min_n} "
            f"labelled pairs) beyond {t.segment_tolerance:g}, or breaks the latency / error-rate SLOs: "
            "promoting it would hurt someone.",
        ),
        CheckSpec(
            SHADOW_PROMOTION,
            "info",
            f"The promotion verdict on {t.primary_metric} over the last {t.window_days} labelled days: promote "
            f"when significantly better (alpha {t.alpha:g}) by at least {t.min_improvement:g} with no segment "
            "harmed (for mae / rmse the improvement and the segment tolerance are fractions of the champion's "
            "value); 'keep collecting' says how many days are still needed.",
        ),
    )


CHECKS = _check_specs()
COLUMNS = result_columns("shadow_comparisons")
COVERAGE_COLUMNS = [
    "champion_version",
    "shadow_version",
    "champion_requests",
    "shadow_requests",
    "paired",
    "champion_only",
    "shadow_only",
    "duplicate_rows",
    "coverage",
]
PAIR_KEYS = ["champion_version", "shadow_version"]
SIDE_COLUMNS = ["model_version", "score", "prediction", "status", "latency_ms"]
LABEL_FREE_METRICS = (
    "agreement_rate",
    "flip_rate_0_to_1",
    "flip_rate_1_to_0",
    "positive_rate",
    "mean_score",
    "score_spearman",
)
LABELLED_METRICS = ("auc", "log_loss", "brier", "accuracy", "recall", "precision")
SERVING_METRICS = (
    "requests",
    "pairing_coverage",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
DEFAULT_POWER = 0.8  # power of the "days needed" calculation (the usual 80 %)
# Regression: the label-free rows compare the predicted values; mae and rmse need labels.
REGRESSION_LABEL_FREE_METRICS = ("mean_score", "score_spearman")
REGRESSION_LABELLED_METRICS = ("mae", "rmse")
# Multiclass: `prediction` is the class index; mean_score is the top-label confidence.
MULTICLASS_LABEL_FREE_METRICS = ("agreement_rate", "mean_score")
# Error metrics in the label's unit: min_improvement and segment_tolerance are fractions of the
# champion's value for them (an absolute 0.005 minutes or dollars means nothing across models).
RELATIVE_MARGIN_METRICS = frozenset({"mae", "rmse"})


def higher_is_better(metric: str) -> bool:
    """The good direction of a compared metric of any task (`recall:<class>` as recall)."""
    if metric in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[metric]
    if metric in REGRESSION_HIGHER_IS_BETTER:
        return REGRESSION_HIGHER_IS_BETTER[metric]
    return HIGHER_IS_BETTER[metric.split(":", 1)[0]]


Verdict = Literal["promote", "do_not_promote", "keep_collecting"]

# Numbers in messages, "n/a" when missing: deltas signed with four decimals, other values to 4 significant digits.
_delta_text = partial(fmt, digits=4, style="f", sign=True, missing="n/a")
_number_text = partial(fmt, digits=4, missing="n/a")


# --------------------------------------------------------------------------- paired statistics


def mcnemar_test(b: float, c: float, exact: bool = True) -> float:
    """Two-sided McNemar p-value from the discordant counts b (0→1) and c (1→0).

    exact=True: the exact binomial test of b ~ Binomial(b + c, 1/2), valid for any count and
    cheap, hence the default; exact=False: the chi-square statistic (|b − c| − 1)² / (b + c) with
    continuity correction, 1 degree of freedom. No discordant pairs -> p = 1.
    Reference: McNemar (1947), Psychometrika 12:153-157.
    """
    b, c = float(b), float(c)
    total = b + c
    if total <= 0:
        return 1.0
    if exact:
        return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), total, 0.5)))
    statistic = (abs(b - c) - 1.0) ** 2 / total if abs(b - c) >= 1 else 0.0
    return float(stats.chi2.sf(statistic, 1))


def paired_proportion_difference(
    b: float, c: float, n: float, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Difference of two paired proportions, (b − c) / n, with CI and exact McNemar p-value.

    b: pairs where only the second (shadow) is a success; c: only the first (champion).
    The interval is Agresti & Min's adjusted Wald (0.5 added to each of the four cells), which keeps
    near-nominal coverage with few discordant pairs where the plain Wald interval collapses to a point.
    Reference: Agresti & Min (2005), Statistics in Medicine 24:729-740. n = 0 -> all nan.
    """
    if n <= 0:
        return (math.nan,) * 4
    delta = (b - c) / n
    b2, c2, n2 = b + 0.5, c + 0.5, n + 2.0
    p12, p21 = b2 / n2, c2 / n2
    se = math.sqrt(max((p12 + p21 - (p12 - p21) ** 2) / n2, 0.0))
    center = p12 - p21
    half = z_value(confidence) * se
    return delta, max(-1.0, center - half), min(1.0, center + half), mcnemar_test(b, c)


def paired_mean_difference(d: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean of paired differences with a t interval and the paired t-test p-value (= scipy ttest_rel).

    Zero spread: p = 1 when the mean is 0, else 0 (a constant, non-zero shift). Fewer than 2 rows: nan CI.
    """
    n = d.size
    if n == 0:
        return (math.nan,) * 4
    mean = float(d.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        return mean, mean, mean, 1.0 if mean == 0 else 0.0
    q = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return mean, mean - q * se, mean + q * se, p


def paired_auc_difference(
    y: np.ndarray, champion: np.ndarray, shadow: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float, float, float]:
    """(champion AUC, shadow AUC, delta, ci_low, ci_high, p) with DeLong's paired variance.

    Var(delta) = V_cc + V_ss − 2·V_cs from one DeLong covariance of both scores on the same rows;
    z-test against 0. Identical scores give delta 0, p = 1.
    Reference: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845.
    """
    aucs, cov = delong_covariance(y, np.vstack([champion, shadow]))
    auc_c, auc_s = float(aucs[0]), float(aucs[1])
    delta = auc_s - auc_c
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if not np.isfinite(var):
        return auc_c, auc_s, delta, math.nan, math.nan, math.nan
    se = math.sqrt(max(var, 0.0))
    if se < 1e-12:
        return auc_c, auc_s, delta, delta, delta, 1.0 if abs(delta) < 1e-12 else 0.0
    half = z_value(confidence) * se
    return auc_c, auc_s, delta, delta - half, delta + half, float(2 * stats.norm.sf(abs(delta) / se))


def paired_precision_bootstrap(
    y: np.ndarray,
    champion_prediction: np.ndarray,
    shadow_prediction: np.ndarray,
    samples: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> tuple[float, float, float, float, float, float]:
    """(champion precision, shadow precision, delta, ci_low, ci_high, p) by a paired bootstrap.

    Precision has different denominators for the two models, so there is no simple paired test.
    A row resample only changes how many rows fall in each of the 8 cells (label × champion decision
    × shadow decision), so the bootstrap draws those counts from one multinomial per resample:
    exactly the row bootstrap, O(samples) instead of O(samples·n). Percentile interval; two-sided
    p = 2·min(share of resampled deltas ≤ 0, share ≥ 0), with the +1 correction of Davison & Hinkley.
    """
    cells = (y * 4 + champion_prediction * 2 + shadow_prediction).astype(np.intp)
    counts = np.bincount(cells, minlength=8).astype(float)
    n = counts.sum()

    def precision(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            champ = (k[..., 6] + k[..., 7]) / (k[..., 2] + k[..., 3] + k[..., 6] + k[..., 7])
            shad = (k[..., 5] + k[..., 7]) / (k[..., 1] + k[..., 3] + k[..., 5] + k[..., 7])
        return champ, shad

    pc, ps = precision(counts)
    pc, ps = float(pc), float(ps)
    delta = ps - pc
    if n == 0 or not np.isfinite(delta):
        return pc, ps, delta, math.nan, math.nan, math.nan
    draws = rng.multinomial(int(n), counts / n, size=samples)
    bc, bs = precision(draws)
    d = (bs - bc)[np.isfinite(bs - bc)]
    if d.size < 2:
        return pc, ps, delta, math.nan, math.nan, math.nan
    alpha = 1 - confidence
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p = min(1.0, 2.0 * (tail + 1) / (d.size + 1))
    return pc, ps, delta, float(low), float(high), p


def spearman_interval(
    champion: np.ndarray, shadow: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Spearman rank correlation with a Fisher-z interval using Bonett & Wright's variance
    (1 + r²/2) / (n − 3). Reference: Bonett & Wright (2000), Psychometrika 65:23-28."""
    n = champion.size
    if n < 4:
        return math.nan, math.nan, math.nan
    rc, rs = midranks(champion), midranks(shadow)
    if rc.std() == 0 or rs.std() == 0:
        return math.nan, math.nan, math.nan
    r = float(np.corrcoef(rc, rs)[0, 1])
    zr = math.atanh(min(max(r, -1 + 1e-12), 1 - 1e-12))
    half = z_value(confidence) * math.sqrt((1 + r * r / 2) / (n - 3))
    return r, math.tanh(zr - half), math.tanh(zr + half)


def days_needed(
    delta: float, std_error: float, days: int, alpha: float = 0.05, power: float = DEFAULT_POWER
) -> int | None:
    """Labelled days for a two-sided test at `alpha` to detect `delta` with `power`, assuming the
    standard error shrinks as 1/sqrt(days): days·((z_{1−α/2} + z_power)·se / |delta|)².
    None when the observed effect is zero or the error unknown (no finite answer)."""
    if not (np.isfinite(delta) and np.isfinite(std_error)) or delta == 0 or days <= 0:
        return None
    k = (z_value(1 - alpha) + float(stats.norm.ppf(power))) * std_error / abs(delta)
    return max(1, math.ceil(days * k * k))


# --------------------------------------------------------------------------- pairing


# --------------------------------------------------------------------------- comparisons


def _row(
    metric: str,
    champion: float,
    shadow: float,
    delta: float,
    low: float,
    high: float,
    p: float,
    n: int,
    value: float = math.nan,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "champion_value": champion,
        "shadow_value": shadow,
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "n": int(n),
        "value": value,
    }


def _rate(metric: str, successes: int, n: int, confidence: float) -> dict[str, Any]:
    """A pair statistic that is a proportion: in `value`, with a Wilson interval."""
    value, low, high = proportion_interval(successes, n, confidence)
    return _row(metric, math.nan, math.nan, math.nan, float(low), float(high), math.nan, n, float(value))


def _mean_score_row(cs: np.ndarray, ss: np.ndarray, conf: float) -> dict[str, Any]:
    """`mean_score`: the shift of the mean score (probability, predicted value or top-label confidence), paired t."""
    return _row("mean_score", cs.mean(), ss.mean(), *paired_mean_difference(ss - cs, conf), cs.size)


def _spearman_row(cs: np.ndarray, ss: np.ndarray, conf: float) -> dict[str, Any]:
    """`score_spearman`: how alike the two sides rank the requests."""
    r, r_low, r_high = spearman_interval(cs, ss, conf)
    return _row("score_spearman", math.nan, math.nan, math.nan, r_low, r_high, math.nan, cs.size, r)


def _correctness_row(metric: str, right_c: np.ndarray, right_s: np.ndarray, conf: float) -> dict[str, Any]:
    """A share of rows each side got right (accuracy, or recall over one class's rows): the paired
    difference with McNemar on the rows where exactly one side is right."""
    better, worse = int(np.sum(right_s & ~right_c)), int(np.sum(right_c & ~right_s))
    diff = paired_proportion_difference(better, worse, right_c.size, conf)
    return _row(metric, right_c.mean(), right_s.mean(), *diff, right_c.size)


def _quality_rows(
    arrays: dict[str, np.ndarray],
    thresholds: ShadowThresholds,
    rng: np.random.Generator,
    metrics: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Label-free and (where labelled) labelled comparison rows of one group of ok pairs; with
    `metrics`, only those rows (each row is computed the same way either way)."""
    conf = 1 - thresholds.alpha
    want = (lambda _: True) if metrics is None else (lambda name: name in metrics)
    cs, ss = arrays["cs"], arrays["ss"]
    cp, sp, y = arrays["cp"], arrays["sp"], arrays["y"]
    n = cs.size
    out: list[dict[str, Any]] = []
    if n == 0:
        return out
    up = int(np.sum((cp == 0) & (sp == 1)))
    down = int(np.sum((cp == 1) & (sp == 0)))
    out += [
        _rate(name, k, n, conf)
        for name, k in (
            ("agreement_rate", n - up - down),
            ("flip_rate_0_to_1", up),
            ("flip_rate_1_to_0", down),
        )
        if want(name)
    ]
    if want("positive_rate"):
        diff = paired_proportion_difference(up, down, n, conf)
        out.append(_row("positive_rate", cp.mean(), sp.mean(), *diff, n))
    if want("mean_score"):
        out.append(_mean_score_row(cs, ss, conf))
    if want("score_spearman"):
        out.append(_spearman_row(cs, ss, conf))

    lab = np.isfinite(y)
    m = int(lab.sum())
    if m == 0:
        return out
    y, cs, ss, cp, sp = y[lab], cs[lab], ss[lab], cp[lab], sp[lab]
    if want("auc"):
        auc_c, auc_s, *auc_rest = paired_auc_difference(y, cs, ss, conf)
        out.append(_row("auc", auc_c, auc_s, *auc_rest, m))
    for metric, loss in (
        ("log_loss", lambda: (log_loss_terms(y, cs), log_loss_terms(y, ss))),
        ("brier", lambda: ((cs - y) ** 2, (ss - y) ** 2)),
    ):
        if want(metric):
            loss_c, loss_s = loss()
            diff = paired_mean_difference(loss_s - loss_c, conf)
            out.append(_row(metric, loss_c.mean(), loss_s.mean(), *diff, m))
    if want("accuracy"):
        out.append(_correctness_row("accuracy", cp == y, sp == y, conf))
    pos = y == 1
    n_pos = int(pos.sum())
    if n_pos and want("recall"):
        out.append(_correctness_row("recall", cp[pos] == 1, sp[pos] == 1, conf))
    if want("precision"):  # the only user of the group's generator: the draws do not depend on `metrics`
        prec = paired_precision_bootstrap(y, cp, sp, thresholds.bootstrap_samples, rng, conf)
        if np.isfinite(prec[2]):
            out.append(_row("precision", *prec, m))
    return out


def _regression_quality_rows(
    arrays: dict[str, np.ndarray],
    thresholds: ShadowThresholds,
    rng: np.random.Generator,
    metrics: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """A regression pair group: the predicted values' mean shift (paired t) and rank correlation; with
    labels, mae (paired absolute errors: bootstrap interval of the mean difference, and a p-value that
    needs both the paired t-test and the Wilcoxon signed-rank test to reject, the larger of the two) and
    rmse (percentile bootstrap of the difference, paired t-test on the squared errors: RMSE is equal
    exactly when MSE is)."""
    conf = 1 - thresholds.alpha
    want = (lambda _: True) if metrics is None else (lambda name: name in metrics)
    cs, ss, y = arrays["cs"], arrays["ss"], arrays["y"]
    n = cs.size
    out: list[dict[str, Any]] = []
    if n == 0:
        return out
    if want("mean_score"):
        out.append(_mean_score_row(cs, ss, conf))
    if want("score_spearman"):
        out.append(_spearman_row(cs, ss, conf))
    lab = np.isfinite(y)
    m = int(lab.sum())
    if m == 0:
        return out
    y, cs, ss = y[lab], cs[lab], ss[lab]
    seed = int(rng.integers(2**31))  # from the group's own generator: a re-run draws the same resamples
    if want("mae"):
        cmp = paired_error_comparison(y, cs, ss, conf, thresholds.bootstrap_samples, seed)
        p = max(cmp["p_value_t"], cmp["p_value_wilcoxon"])
        mae_c, mae_s = float(np.abs(cs - y).mean()), float(np.abs(ss - y).mean())
        out.append(_row("mae", mae_c, mae_s, cmp["delta_mae"], cmp["ci_low"], cmp["ci_high"], p, m))
    if want("rmse"):
        out.append(
            _row("rmse", *paired_rmse_difference(y, cs, ss, thresholds.bootstrap_samples, seed, conf), m)
        )
    return out


def paired_rmse_difference(
    y: np.ndarray, champion: np.ndarray, shadow: np.ndarray, samples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float, float, float, float, float]:
    """(champion RMSE, shadow RMSE, delta, ci_low, ci_high, p): percentile bootstrap of the RMSE
    difference over resampled rows (fixed seed), p from the paired t-test of the squared errors."""
    sq_c, sq_s = (champion - y) ** 2, (shadow - y) ** 2
    rc, rs = float(np.sqrt(sq_c.mean())), float(np.sqrt(sq_s.mean()))
    n = y.size
    if n < 2:
        return rc, rs, rs - rc, math.nan, math.nan, math.nan
    mse = bootstrap_means(np.vstack([sq_c, sq_s]), samples, np.random.default_rng(seed))
    deltas = np.sqrt(mse[:, 1]) - np.sqrt(mse[:, 0])
    alpha = 1 - confidence
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    p = paired_mean_difference(sq_s - sq_c, confidence)[3]
    return rc, rs, rs - rc, float(low), float(high), p


def _multiclass_quality_rows(
    arrays: dict[str, np.ndarray],
    thresholds: ShadowThresholds,
    rng: np.random.Generator,
    metrics: Collection[str] | None = None,
    classes: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """A multiclass pair group: agreement of the predicted classes (Wilson) and the shift of the
    top-label confidence (paired t); with labels, accuracy (McNemar on correctness), recall:<class> per
    observed class (McNemar on the class's rows) and, when both sides' probabilities are paired, log
    loss (paired t on per-row losses)."""
    conf = 1 - thresholds.alpha
    want = (lambda _: True) if metrics is None else (lambda name: name in metrics)
    cs, ss = arrays["cs"], arrays["ss"]
    cp, sp, y = arrays["cp"], arrays["sp"], arrays["y"]
    n = cs.size
    out: list[dict[str, Any]] = []
    if n == 0:
        return out
    if want("agreement_rate"):
        out.append(_rate("agreement_rate", int(np.sum(cp == sp)), n, conf))
    if want("mean_score"):
        out.append(_mean_score_row(cs, ss, conf))
    lab = np.isfinite(y)
    m = int(lab.sum())
    if m == 0:
        return out
    y, cp, sp = y[lab], cp[lab], sp[lab]
    right_c, right_s = cp == y, sp == y
    if want("accuracy"):
        out.append(_correctness_row("accuracy", right_c, right_s, conf))
    if want("log_loss") and "cprob" in arrays and "sprob" in arrays:
        rows = np.arange(m)
        idx = y.astype(np.intp)
        loss_c = -np.log(np.clip(arrays["cprob"][lab][rows, idx], 1e-15, 1.0))
        loss_s = -np.log(np.clip(arrays["sprob"][lab][rows, idx], 1e-15, 1.0))
        diff = paired_mean_difference(loss_s - loss_c, conf)
        out.append(_row("log_loss", loss_c.mean(), loss_s.mean(), *diff, m))
    for j, name in enumerate(classes):
        metric = f"recall:{name}"
        of_class = y == j
        if of_class.any() and want(metric):
            out.append(_correctness_row(metric, right_c[of_class], right_s[of_class], conf))
    return out


def _serving_rows(pair: pd.DataFrame, cover: pd.Series, confidence: float) -> list[dict[str, Any]]:
    """Pairing coverage, error rate and latency percentiles of one champion/shadow pair (all statuses)."""
    paired = int(cover["paired"])
    out = [
        _row(
            "requests",
            cover["champion_requests"],
            cover["shadow_requests"],
            cover["shadow_requests"] - cover["champion_requests"],
            math.nan,
            math.nan,
            math.nan,
            paired,
        ),
        _row(
            "pairing_coverage",
            paired / cover["champion_requests"] if cover["champion_requests"] else math.nan,
            paired / cover["shadow_requests"] if cover["shadow_requests"] else math.nan,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            paired,
            cover["coverage"],
        ),
    ]
    if pair.empty:
        return out
    err_c = (pair["champion_status"] == "error").to_numpy(dtype=bool)  # compares codes of a categorical
    err_s = (pair["shadow_status"] == "error").to_numpy(dtype=bool)
    b, c = int(np.sum(err_s & ~err_c)), int(np.sum(err_c & ~err_s))
    out.append(
        _row(
            "error_rate",
            err_c.mean(),
            err_s.mean(),
            *paired_proportion_difference(b, c, paired, confidence),
            paired,
        )
    )
    lat_c = pair["champion_latency_ms"].to_numpy(dtype=float)
    lat_s = pair["shadow_latency_ms"].to_numpy(dtype=float)
    lat_c, lat_s = lat_c[np.isfinite(lat_c)], lat_s[np.isfinite(lat_s)]
    for q in (50, 95, 99):
        vc = float(np.percentile(lat_c, q)) if lat_c.size else math.nan
        vs = float(np.percentile(lat_s, q)) if lat_s.size else math.nan
        out.append(
            _row(
                f"latency_p{q}_ms", vc, vs, vs - vc, math.nan, math.nan, math.nan, min(lat_c.size, lat_s.size)
            )
        )
    return out


def _group_seed(seed: int, *parts: str) -> np.random.Generator:
    """A generator per (pair, segment, value): deterministic, and independent of which other groups exist."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(parts).encode())])


def _group_rows(
    arrays: dict[str, np.ndarray],
    pair: tuple[int, str, str],
    thresholds: ShadowThresholds,
    metrics: Collection[str] | None,
    group: tuple[str, str, np.ndarray | None],
    quality: Any = None,
) -> list[dict[str, Any]]:
    """Quality rows of one segment value (all rows when its index is None) of a champion/shadow pair;
    `quality` is the task's row function (binary's `_quality_rows` by default)."""
    seed, cv, sv = pair
    segment, value, idx = group
    sub = arrays if idx is None else {k: a[idx] for k, a in arrays.items()}
    rng = _group_seed(seed, cv, sv, segment, value)
    return [
        {"segment": segment, "segment_value": value, **r}
        for r in (quality or _quality_rows)(sub, thresholds, rng, metrics)
    ]


def _usable_pairs(pair: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
    """Pairs both sides of which are `ok` with a usable score and decision, as the task defines them:
    binary a finite score and a 0/1 decision; regression a finite predicted value (the decision column
    is optional); multiclass a finite confidence and a class index in range."""
    ok = (
        (pair["champion_status"] == "ok")
        & (pair["shadow_status"] == "ok")
        & np.isfinite(pair["champion_score"])
        & np.isfinite(pair["shadow_score"])
    )
    if task == "regression":
        return ok.to_numpy()
    if task == "multiclass_classification":
        cp, sp = pair["champion_prediction"], pair["shadow_prediction"]
        in_range = cp.between(0, n_classes - 1) & sp.between(0, n_classes - 1)
        whole = (cp == np.floor(cp)) & (sp == np.floor(sp))
        return (ok & in_range & whole).to_numpy()
    return (
        ok & pair["champion_prediction"].isin([0.0, 1.0]) & pair["shadow_prediction"].isin([0.0, 1.0])
    ).to_numpy()


def probability_pair_columns(classes: Sequence[str]) -> tuple[list[str], list[str]]:
    """The paired multiclass probability columns, when the pairs carry them:
    champion_score__<class> and shadow_score__<class>, in class order."""
    return [f"champion_score__{c}" for c in classes], [f"shadow_score__{c}" for c in classes]


def shadow_comparisons(
    paired: pd.DataFrame,
    coverage: pd.DataFrame,
    segments: Sequence[str] = (),
    thresholds: ShadowThresholds | None = None,
    seed: int = 0,
    metrics: Collection[str] | None = None,
    *,
    task: str = "binary_classification",
    classes: Sequence[str] = (),
) -> pd.DataFrame:
    """shadow_comparisons rows (without model_name / partition_date) of one model-day or pooled window.
    With `metrics`, only those quality metrics (the serving rows always). A regression or multiclass
    model (`task`, its `classes`) gets its own quality rows (see _regression_quality_rows,
    _multiclass_quality_rows); multiclass `prediction` columns are class indices.

    `paired` and `coverage` are the champion/shadow pairs of the same requests and the pairing counts,
    as storage.snapshot.Snapshot.shadow_pairs gives them (request_id, champion_version,
    shadow_version, champion_/shadow_ score, prediction, status, latency_ms, the segment columns and
    the request's label, NaN until it lands). Columns: COLUMNS. Per-model metrics fill
    champion_value, shadow_value, delta = shadow − champion, ci_low/ci_high (of the delta, at
    1 − alpha), p_value; statistics of the pair itself (agreement_rate, flip rates, score_spearman,
    pairing_coverage) are in `value` with their CI. segment/segment_value are '__all__' for the whole
    pair; serving rows (requests, pairing_coverage, error_rate, latency_p*_ms) exist only there.
    Quality metrics use pairs where both sides are `ok` with a finite score and a 0/1 decision.
    """
    thresholds = thresholds or ShadowThresholds()
    conf = 1 - thresholds.alpha
    if "label" not in paired.columns:
        paired = paired.assign(label=np.nan)
    frames: list[pd.DataFrame] = []
    for _, cover in coverage.iterrows():  # loop over champion/shadow pairs
        cv, sv = str(cover["champion_version"]), str(cover["shadow_version"])
        pair = paired[(paired["champion_version"] == cv) & (paired["shadow_version"] == sv)]
        rows = [{"segment": ALL, "segment_value": ALL, **r} for r in _serving_rows(pair, cover, conf)]
        good = pair[_usable_pairs(pair, task, len(classes))]
        arrays = {
            "cs": good["champion_score"].to_numpy(dtype=float),
            "ss": good["shadow_score"].to_numpy(dtype=float),
            "cp": good["champion_prediction"].to_numpy(dtype=float, na_value=np.nan),
            "sp": good["shadow_prediction"].to_numpy(dtype=float, na_value=np.nan),
            "y": good["label"].to_numpy(dtype=float, na_value=np.nan),
        }
        champion_prob, shadow_prob = probability_pair_columns(classes)
        if task == "multiclass_classification" and set(champion_prob + shadow_prob) <= set(good.columns):
            arrays["cprob"] = good[champion_prob].to_numpy(dtype=float, na_value=np.nan)
            arrays["sprob"] = good[shadow_prob].to_numpy(dtype=float, na_value=np.nan)
        groups: list[tuple[str, str, np.ndarray | None]] = [(ALL, ALL, None)]
        for segment in segments:
            if segment not in good.columns:
                continue
            codes, labels = group_codes(good, [segment])  # value labels sorted as text, as segment_values
            # One sort, not a pass per value: a segment's cardinality may be high.
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
            groups += [(segment, str(v), order[bounds[g] : bounds[g + 1]]) for g, v in enumerate(labels)]

        quality = {
            "regression": _regression_quality_rows,
            "multiclass_classification": partial(_multiclass_quality_rows, classes=classes),
        }.get(task, _quality_rows)
        group_rows = partial(_group_rows, arrays, (seed, cv, sv), thresholds, metrics, quality=quality)
        # Each group's rows depend on its own seed only; numpy sorts without the GIL, so a large pair's
        # segment values are scored on every core.
        if len(good) >= PARALLEL_MIN_ROWS and MAX_WORKERS > 1 and len(groups) > 1:
            with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
                scored = list(pool.map(group_rows, groups))
        else:
            scored = [group_rows(g) for g in groups]
        rows += [row for group in scored for row in group]
        frames.append(pd.DataFrame(rows).assign(champion_version=cv, shadow_version=sv))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)[COLUMNS]
    return out.astype(
        {
            c: float
            for c in ("champion_value", "shadow_value", "delta", "ci_low", "ci_high", "p_value", "value")
        }
        | {"n": "int64"}
    )


# --------------------------------------------------------------------------- the pooled window


def pool_window(day: dt.date, thresholds: ShadowThresholds) -> tuple[dt.date, dt.date]:
    """The days the promotion verdict pools: the last `window_days` days up to `day`. One day's labels
    are too few to decide a promotion."""
    return day - dt.timedelta(days=thresholds.window_days - 1), day


def merge_coverage(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Pairing counts of several days added up, coverage recomputed (paired / requests seen by either)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=COVERAGE_COLUMNS)
    counts = [c for c in COVERAGE_COLUMNS if c not in (*PAIR_KEYS, "coverage")]
    out = pd.concat(frames, ignore_index=True).groupby(PAIR_KEYS, sort=True)[counts].sum().reset_index()
    union = out["champion_requests"] + out["shadow_only"]
    out["coverage"] = np.where(union > 0, out["paired"] / union.where(union > 0, 1), np.nan)
    return out[COVERAGE_COLUMNS]


def pooled_recommendations(
    paired: pd.DataFrame,
    coverage: pd.DataFrame,
    segments: Sequence[str],
    thresholds: ShadowThresholds,
    serving: ServingThresholds,
    comparisons: pd.DataFrame | None = None,
    *,
    task: str = "binary_classification",
    classes: Sequence[str] = (),
) -> list[Recommendation]:
    """The promotion verdict of each pair over the pooled window's pairs (with their partition_date):
    the comparisons of the pool, judged with the number of days in it that have labelled pairs. The
    rule reads the primary metric and the serving rows only, so only those are computed; `comparisons`
    of exactly these pairs, when the caller has them already, are used as they are."""
    labelled = paired["label"].notna() if "label" in paired.columns else pd.Series(False, index=paired.index)
    days = int(paired.loc[labelled, "partition_date"].nunique()) if "partition_date" in paired.columns else 0
    if comparisons is None:
        comparisons = shadow_comparisons(
            paired,
            coverage,
            segments,
            thresholds,
            metrics={thresholds.primary_metric},
            task=task,
            classes=classes,
        )
    return promotion_recommendation(comparisons, thresholds, serving, days=days)


# --------------------------------------------------------------------------- promotion


class HarmedSegment(TypedDict):
    """A segment value where the shadow is significantly worse than the champion beyond the tolerance."""

    segment: str
    segment_value: str
    metric: str
    champion_value: float | None
    shadow_value: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int


class SloBreach(TypedDict):
    """A serving metric of the shadow above its warning threshold, with the champion's value for context."""

    metric: str
    value: float
    threshold: float
    champion_value: float | None


@dataclass(frozen=True)
class Recommendation:
    """The promotion verdict for one champion/shadow pair over a pooled window of labelled days."""

    champion_version: str
    shadow_version: str
    verdict: Verdict
    metric: str
    champion_value: float | None
    shadow_value: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int
    days: int
    harmed_segments: list[HarmedSegment] = field(default_factory=list)
    slo_breaches: list[SloBreach] = field(default_factory=list)
    days_needed: int | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The step of promotion_recommendation's rule that gave the verdict; the reason text follows it.
Rule = Literal["no_labels", "worse", "harm", "below_margin", "better", "undecided"]


@dataclass(frozen=True)
class PrimaryDelta:
    """The pooled overall row of the primary metric as JSON-safe numbers: None where missing or not
    finite, all None with n 0 when the pool has no labelled pairs for it."""

    champion_value: float | None = None
    shadow_value: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: int = 0


@dataclass(frozen=True)
class Significance:
    """Direction of a significant (p < alpha) primary delta, and whether its CI clears min_improvement.
    Both directions False when the delta is not significant."""

    better: bool = False
    worse: bool = False
    clears_margin: bool = True


@dataclass(frozen=True)
class PromotionDecision:
    """Everything the rule decided for one pair, with its numbers, before any of it is put into words."""

    metric: str
    primary: PrimaryDelta
    harmed: tuple[HarmedSegment, ...]
    breaches: tuple[SloBreach, ...]
    verdict: Verdict
    rule: Rule
    days_needed: int | None = None


def promotion_recommendation(
    comparisons: pd.DataFrame,
    thresholds: ShadowThresholds,
    serving: ServingThresholds,
    days: int,
    power: float = DEFAULT_POWER,
) -> list[Recommendation]:
    """One Recommendation per champion/shadow pair, from `shadow_comparisons` of the pooled window.

    `comparisons` must be computed over the pooled rows of the last `window_days` labelled days;
    `days` says how many labelled days are in that pool (for days_needed). Rule, in order:
      1. no finite primary-metric delta -> keep_collecting (no labelled pairs yet);
      2. significantly worse on the primary metric (p < alpha) -> do_not_promote;
      3. any segment value with n >= min_n whose delta CI lies entirely beyond
         segment_tolerance on the worse side (significantly worse by more than the tolerance), or the
         shadow's p99 latency / error rate above the serving warning thresholds -> do_not_promote;
      4. significantly better (p < alpha) with the whole delta CI past min_improvement -> promote
         (re-testing an overlapping window daily makes plain significance cheap for an equal shadow);
      5. otherwise keep_collecting, with days_needed for the observed delta at `power`.
    """
    if comparisons.empty:
        return []
    out: list[Recommendation] = []
    for (cv, sv), rows in comparisons.groupby(PAIR_KEYS, sort=True):  # loop over pairs
        decision = _decide_promotion(rows, thresholds, serving, days, power)
        out.append(_describe_promotion(str(cv), str(sv), decision, thresholds, days, power))
    return out


def _decide_promotion(
    rows: pd.DataFrame, thresholds: ShadowThresholds, serving: ServingThresholds, days: int, power: float
) -> PromotionDecision:
    """The rule applied to one pair's comparison rows: numbers and verdict only, no text."""
    metric = thresholds.primary_metric
    higher = higher_is_better(metric)
    overall = rows[rows["segment"] == ALL].set_index("metric")
    primary = _primary_delta(overall, metric)
    harmed = _harmed_segments(rows, metric, higher, thresholds)
    breaches = _slo_breaches(overall, serving)
    significance = _significance(primary, higher, thresholds, relative=metric in RELATIVE_MARGIN_METRICS)
    verdict, rule = _verdict(primary, significance, harmed, breaches)
    needed = None
    if rule == "undecided" and primary.delta is not None:
        needed = _days_to_detect(primary.delta, primary, thresholds, days, power)
    return PromotionDecision(metric, primary, tuple(harmed), tuple(breaches), verdict, rule, needed)


def _primary_delta(overall: pd.DataFrame, metric: str) -> PrimaryDelta:
    """The primary metric's row of the whole pair (`overall` is indexed by metric)."""
    if metric not in overall.index:
        return PrimaryDelta()
    row = overall.loc[metric]
    return PrimaryDelta(
        champion_value=json_float(row["champion_value"]),
        shadow_value=json_float(row["shadow_value"]),
        delta=json_float(row["delta"]),
        ci_low=json_float(row["ci_low"]),
        ci_high=json_float(row["ci_high"]),
        p_value=json_float(row["p_value"]),
        n=int(row["n"]),
    )


def _significance(
    primary: PrimaryDelta, higher: bool, thresholds: ShadowThresholds, relative: bool = False
) -> Significance:
    """Rules 2 and 4. Re-testing an overlapping window every day makes "significant" cheap for an equally
    good shadow, so promotion also needs the whole CI past the minimum improvement. `relative` (error
    metrics in the label's unit): the improvement is a fraction of the champion's value."""
    delta, p = primary.delta, primary.p_value
    if delta is None or p is None or not p < thresholds.alpha:
        return Significance()
    better = delta > 0 if higher else delta < 0
    high = primary.ci_high
    bound = primary.ci_low if higher else (-high if high is not None else None)
    if relative and bound is not None:
        base = primary.champion_value
        bound = bound / base if base is not None and base > 0 else None
    return Significance(
        better=better,
        worse=not better and delta != 0,
        clears_margin=bound is not None and bound > thresholds.min_improvement,
    )


def _harmed_segments(
    rows: pd.DataFrame, metric: str, higher: bool, thresholds: ShadowThresholds
) -> list[HarmedSegment]:
    """Rule 3, segments: values with n >= min_n whose best plausible improvement (the CI bound on the
    better side) is still below -segment_tolerance."""
    seg = rows[(rows["segment"] != ALL) & (rows["metric"] == metric) & (rows["n"] >= thresholds.min_n)]
    if seg.empty:
        return []
    bound = seg["ci_high"] if higher else -seg["ci_low"]
    if metric in RELATIVE_MARGIN_METRICS:  # a fraction of the champion's error in that segment value
        bound = bound / seg["champion_value"].where(seg["champion_value"] > 0)
    return [
        HarmedSegment(
            segment=r["segment"],
            segment_value=r["segment_value"],
            metric=metric,
            champion_value=json_float(r["champion_value"]),
            shadow_value=json_float(r["shadow_value"]),
            delta=json_float(r["delta"]),
            ci_low=json_float(r["ci_low"]),
            ci_high=json_float(r["ci_high"]),
            p_value=json_float(r["p_value"]),
            n=int(r["n"]),
        )
        for _, r in seg[(bound < -thresholds.segment_tolerance).to_numpy()].iterrows()
    ]


def _slo_breaches(overall: pd.DataFrame, serving: ServingThresholds) -> list[SloBreach]:
    """Rule 3, serving: the shadow's p99 latency or error rate above the warning thresholds, judged as
    `serving_slo` judges them (serving.slo_value: the error rate by its Wilson lower bound, p99 latency
    from min_n requests), so a few errors on a small pool do not block a promotion."""
    breaches: list[SloBreach] = []
    for name, limit in (
        ("latency_p99_ms", serving.p99_latency_warning_ms),
        ("error_rate", serving.error_rate_warning),
    ):
        value = json_float(overall.loc[name, "shadow_value"]) if name in overall.index else None
        if value is None:
            continue
        n = int(overall.loc[name, "n"])
        judged = slo_value(name, value, round(value * n), n, serving.min_n)
        if judged is not None and judged > limit:
            champion = json_float(overall.loc[name, "champion_value"])
            breaches.append(SloBreach(metric=name, value=value, threshold=limit, champion_value=champion))
    return breaches


def _verdict(
    primary: PrimaryDelta, significance: Significance, harmed: list[HarmedSegment], breaches: list[SloBreach]
) -> tuple[Verdict, Rule]:
    """Rules 1-5 of promotion_recommendation, in order: the first that applies decides."""
    if primary.delta is None:
        return "keep_collecting", "no_labels"
    if significance.worse:
        return "do_not_promote", "worse"
    if harmed or breaches:
        return "do_not_promote", "harm"
    if significance.better and not significance.clears_margin:
        return "keep_collecting", "below_margin"
    if significance.better:
        return "promote", "better"
    return "keep_collecting", "undecided"


def _days_to_detect(
    delta: float, primary: PrimaryDelta, thresholds: ShadowThresholds, days: int, power: float
) -> int | None:
    """Rule 5's wait: the standard error recovered from the CI width, then days_needed."""
    low, high = primary.ci_low, primary.ci_high
    z = z_value(1 - thresholds.alpha)
    se = (high - low) / (2 * z) if low is not None and high is not None else math.nan
    return days_needed(delta, se, days, thresholds.alpha, power)


def _describe_promotion(
    champion_version: str,
    shadow_version: str,
    decision: PromotionDecision,
    thresholds: ShadowThresholds,
    days: int,
    power: float,
) -> Recommendation:
    """The Recommendation of a decision: its numbers as decided, and the reasons in words."""
    p = decision.primary
    return Recommendation(
        champion_version=champion_version,
        shadow_version=shadow_version,
        verdict=decision.verdict,
        metric=decision.metric,
        champion_value=p.champion_value,
        shadow_value=p.shadow_value,
        delta=p.delta,
        ci_low=p.ci_low,
        ci_high=p.ci_high,
        p_value=p.p_value,
        n=p.n,
        days=days,
        harmed_segments=list(decision.harmed),
        slo_breaches=list(decision.breaches),
        days_needed=decision.days_needed,
        reasons=_verdict_reasons(decision, thresholds, power) + _harm_reasons(decision, thresholds),
    )


def _verdict_reasons(decision: PromotionDecision, thresholds: ShadowThresholds, power: float) -> list[str]:
    """The sentence for the rule that decided; rule 3 (harm) is explained by the harm reasons alone."""
    metric, delta, p = decision.metric, decision.primary.delta, decision.primary.p_value
    if decision.rule == "no_labels":
        return [f"no labelled pairs with a computable {metric} yet"]
    if decision.rule == "harm":
        return []
    if decision.rule == "worse":
        return [f"shadow is significantly worse on {metric} (delta {delta:+.4f}, p={p:.3g})"]
    if decision.rule == "below_margin":
        return [
            f"shadow is better on {metric} (delta {delta:+.4f}, p={p:.3g}) but its CI does not yet clear "
            f"the minimum improvement {thresholds.min_improvement}"
            + (" of the champion's value" if metric in RELATIVE_MARGIN_METRICS else "")
        ]
    if decision.rule == "better":
        return [f"shadow is significantly better on {metric} (delta {delta:+.4f}, p={p:.3g})"]
    needed = decision.days_needed
    wait = (
        f"about {needed} labelled days would detect this effect with {power:.0%} power"
        if needed
        else "no effect observed to size the wait"
    )
    return [f"no significant difference on {metric} yet (delta {delta:+.4f}, p={_number_text(p)}); " + wait]


def _harm_reasons(decision: PromotionDecision, thresholds: ShadowThresholds) -> list[str]:
    """One sentence per harmed segment value, then one per serving-threshold breach."""
    return [
        f"worse for {h['segment']}={h['segment_value']} by {h['delta']:+.4f} "
        f"(CI {h['ci_low']:+.4f} to {h['ci_high']:+.4f}, n={h['n']}) "
        f"beyond tolerance {thresholds.segment_tolerance}"
        + (" of the champion's value" if h["metric"] in RELATIVE_MARGIN_METRICS else "")
        for h in decision.harmed
    ] + [
        f"{b['metric']} {b['value']:.4g} breaks the serving threshold {b['threshold']:.4g}"
        for b in decision.breaches
    ]


RECOMMENDATION_COLUMNS = result_columns("shadow_recommendations")


def recommendation_rows(recommendations: Sequence[Recommendation]) -> pd.DataFrame:
    """`shadow_recommendations` rows (without model_name / partition_date); lists as JSON text."""
    rows = [
        {
            "champion_version": r.champion_version,
            "shadow_version": r.shadow_version,
            "verdict": r.verdict,
            "primary_metric": r.metric,
            "delta": r.delta,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p_value": r.p_value,
            "days_pooled": r.days,
            "days_needed": r.days_needed,
            "n": r.n,
            "harmed_segments": json.dumps(r.harmed_segments, default=str),
            "slo_breaches": json.dumps(r.slo_breaches, default=str),
            "reasons": json.dumps(r.reasons),
        }
        for r in recommendations
    ]
    return pd.DataFrame(rows, columns=RECOMMENDATION_COLUMNS)


def recommendations_markdown(recommendations: Sequence[Recommendation]) -> str:
    """One line per pair for the UI: verdict, delta with its interval, labelled days, reasons."""
    return (
        "\n".join(
            f"- **{r.shadow_version} vs {r.champion_version}: {r.verdict.replace('_', ' ')}** — "
            f"{r.metric} Δ {_delta_text(r.delta)} (95 % CI {_delta_text(r.ci_low)} … {_delta_text(r.ci_high)}), "
            f"{r.days} labelled days"
            + (f", ~{r.days_needed} more days needed" if r.days_needed else "")
            + ("; " + "; ".join(r.reasons) if r.reasons else "")
            for r in recommendations
        )
        or "no shadow scored this day"
    )


# --------------------------------------------------------------------------- checks


def shadow_checks(
    comparisons: pd.DataFrame, recommendations: Sequence[Recommendation], thresholds: ShadowThresholds
) -> list[CheckResult]:
    """`shadow_coverage` (warning), `shadow_harm` (warning) and `shadow_promotion` (info) outcomes.

    Coverage comes from the day's comparisons; harm and promotion from the pooled-window
    recommendations. 'promote' and 'do_not_promote' verdicts are info findings (a decision someone
    should read); 'keep_collecting' is only metadata, so a shadow quietly gathering data says nothing.
    """
    return [
        _coverage_result(comparisons, thresholds),
        _harm_result(recommendations, thresholds),
        _promotion_result(recommendations, thresholds),
    ]


@dataclass(frozen=True)
class CoverageGap:
    """A pair whose pairing coverage is below min_coverage, with the request counts that explain it
    (0 when the day has no `requests` row for the pair)."""

    champion_version: str
    shadow_version: str
    coverage: float
    paired: int
    champion_requests: int
    shadow_requests: int

    @property
    def champion_only(self) -> int:
        return self.champion_requests - self.paired

    @property
    def shadow_only(self) -> int:
        return self.shadow_requests - self.paired


def _coverage_gap(comparisons: pd.DataFrame, row: pd.Series, min_coverage: float) -> CoverageGap | None:
    """The pair's gap when its coverage is known and below min_coverage, else None."""
    value = json_float(row["value"])
    if value is None or value >= min_coverage:
        return None
    requests = comparisons[
        (comparisons["metric"] == "requests")
        & (comparisons["segment"] == ALL)
        & (comparisons["champion_version"] == row["champion_version"])
        & (comparisons["shadow_version"] == row["shadow_version"])
    ]
    return CoverageGap(
        champion_version=row["champion_version"],
        shadow_version=row["shadow_version"],
        coverage=value,
        paired=int(row["n"]),
        champion_requests=int(requests["champion_value"].iloc[0]) if len(requests) else 0,
        shadow_requests=int(requests["shadow_value"].iloc[0]) if len(requests) else 0,
    )


def _coverage_result(comparisons: pd.DataFrame, thresholds: ShadowThresholds) -> CheckResult:
    """A warning per pair scored on too small a share of the requests: its comparisons may be biased."""
    cover = comparisons[(comparisons["metric"] == "pairing_coverage") & (comparisons["segment"] == ALL)]
    gaps = [_coverage_gap(comparisons, r, thresholds.min_coverage) for _, r in cover.iterrows()]
    return CheckResult(
        check_name=SHADOW_COVERAGE,
        findings=[_coverage_finding(g, thresholds) for g in gaps if g is not None],
        metadata={"min_coverage": thresholds.min_coverage, "pairs": int(len(cover))},
        description="Share of requests scored by both champion and shadow below min_coverage.",
    )


def _coverage_finding(gap: CoverageGap, thresholds: ShadowThresholds) -> Finding:
    """Names the pair and splits its requests into paired, champion-only and shadow-only."""
    return Finding(
        check_name=SHADOW_COVERAGE,
        severity="warning",
        metric="pairing_coverage",
        subject=str(gap.shadow_version),
        value=gap.coverage,
        threshold=thresholds.min_coverage,
        message=(
            f"only {gap.coverage:.1%} of requests were scored by both champion {gap.champion_version} and "
            f"shadow {gap.shadow_version} ({gap.paired} paired; {gap.champion_only} champion-only, "
            f"{gap.shadow_only} shadow-only); comparisons cover a possibly biased subset"
        ),
        evidence={
            "champion_version": gap.champion_version,
            "shadow_version": gap.shadow_version,
            "paired": gap.paired,
            "champion_requests": gap.champion_requests,
            "shadow_requests": gap.shadow_requests,
            "champion_only": gap.champion_only,
            "shadow_only": gap.shadow_only,
        },
    )


def _versions(rec: Recommendation) -> str:
    return f"shadow {rec.shadow_version} vs champion {rec.champion_version}"


def _harm_result(recommendations: Sequence[Recommendation], thresholds: ShadowThresholds) -> CheckResult:
    """A warning per harmed segment value and per serving breach the promotion rule found, pair by pair."""
    findings = [
        finding
        for rec in recommendations
        for finding in (
            *(_segment_harm_finding(rec, h, thresholds) for h in rec.harmed_segments),
            *(_slo_breach_finding(rec, b) for b in rec.slo_breaches),
        )
    ]
    return CheckResult(
        check_name=SHADOW_HARM,
        findings=findings,
        metadata={
            "segment_tolerance": thresholds.segment_tolerance,
            "min_n": thresholds.min_n,
        },
        description="A shadow significantly worse than the champion for a segment beyond the tolerance, "
        "or breaking serving thresholds, over the pooled window.",
    )


def _segment_harm_finding(rec: Recommendation, h: HarmedSegment, thresholds: ShadowThresholds) -> Finding:
    """The harmed segment value next to the overall delta, so "better on average" cannot hide it."""
    tolerance = thresholds.segment_tolerance
    return Finding(
        check_name=SHADOW_HARM,
        severity="warning",
        metric=h["metric"],
        subject=f"{rec.shadow_version}:{h['segment']}={h['segment_value']}",
        value=h["delta"],
        threshold=_harm_threshold(h, tolerance),
        message=(
            f"{_versions(rec)}: {h['metric']} for {h['segment']}={h['segment_value']} is "
            f"{h['shadow_value']:.4f} vs {h['champion_value']:.4f} (delta {h['delta']:+.4f}, "
            f"CI {h['ci_low']:+.4f} to {h['ci_high']:+.4f}, n={h['n']}, {rec.days} days): worse beyond "
            f"the tolerance {tolerance}"
            + (" of the champion's value" if h["metric"] in RELATIVE_MARGIN_METRICS else "")
            + f"; overall delta {_delta_text(rec.delta)}"
        ),
        evidence={
            **h,
            "champion_version": rec.champion_version,
            "shadow_version": rec.shadow_version,
            "overall_delta": rec.delta,
            "days": rec.days,
        },
    )


def _harm_threshold(h: HarmedSegment, tolerance: float) -> float:
    """The delta beyond which a segment counts as harmed: −tolerance for a higher-is-better metric,
    +tolerance for a loss, +tolerance × the champion's value for an error metric in the label's unit."""
    if higher_is_better(h["metric"]):
        return -tolerance
    if h["metric"] in RELATIVE_MARGIN_METRICS and h["champion_value"] is not None:
        return tolerance * h["champion_value"]
    return tolerance


def _slo_breach_finding(rec: Recommendation, b: SloBreach) -> Finding:
    """The shadow's serving metric above its threshold, with the champion's value for comparison."""
    return Finding(
        check_name=SHADOW_HARM,
        severity="warning",
        metric=b["metric"],
        subject=rec.shadow_version,
        value=b["value"],
        threshold=b["threshold"],
        message=(
            f"{_versions(rec)}: shadow {b['metric']} {b['value']:.4g} is above the serving threshold "
            f"{b['threshold']:.4g} (champion {_number_text(b['champion_value'])})"
        ),
        evidence={
            **b,
            "champion_version": rec.champion_version,
            "shadow_version": rec.shadow_version,
        },
    )


def _promotion_result(recommendations: Sequence[Recommendation], thresholds: ShadowThresholds) -> CheckResult:
    """Info findings for decided verdicts; every verdict, 'keep_collecting' included, in the metadata."""
    recs = [r.to_dict() for r in recommendations]
    return CheckResult(
        check_name=SHADOW_PROMOTION,
        findings=[_promotion_finding(r, thresholds) for r in recommendations if _is_decided(r)],
        metadata={"recommendations": recs, "verdicts": {r["shadow_version"]: r["verdict"] for r in recs}},
        description=f"Promotion rule on {thresholds.primary_metric} over the last {thresholds.window_days} "
        "labelled days (see docs/shadow.md).",
    )


def _is_decided(rec: Recommendation) -> bool:
    """'promote' and 'do_not_promote' are decisions someone should read; 'keep_collecting' is not."""
    return rec.verdict in ("promote", "do_not_promote")


def _promotion_finding(rec: Recommendation, thresholds: ShadowThresholds) -> Finding:
    """The verdict with the primary delta, its interval and the rule's reasons."""
    return Finding(
        check_name=SHADOW_PROMOTION,
        severity="info",
        metric=rec.metric,
        subject=rec.shadow_version,
        value=rec.delta,
        threshold=thresholds.alpha,
        message=(
            f"{rec.verdict.replace('_', ' ')}: {_versions(rec)}, {rec.metric} delta {_delta_text(rec.delta)} "
            f"(CI {_delta_text(rec.ci_low)} to {_delta_text(rec.ci_high)}, p={_number_text(rec.p_value)}, "
            f"n={rec.n} over {rec.days} days). " + "; ".join(rec.reasons)
        ),
        evidence=rec.to_dict(),
    )
