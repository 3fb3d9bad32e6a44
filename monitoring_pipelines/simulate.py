"""Demo traffic for the demo models, with documented incidents the monitoring must catch.

`simulate` writes the input layout of contract §1 (Hive-partitioned Parquet under
`<out>/incoming/<model>/{predictions,labels,outcomes}/date=YYYY-MM-DD/part-0.parquet`) for
`credit_default` (champion v3 + shadow v4 on every request, incidents injected),
`churn_propensity` (champion v1 only, never touched: the false-alarm control), and two models of
the other tasks: `delivery_time` (regression, minutes to the door) and `ticket_routing`
(multiclass, champion v7 + shadow v8), each with its own incidents after the reference window.

Why a latent model instead of random noise: every metric the product computes (drift, AUC with
delayed labels, subgroup gaps, shadow deltas, latency) must have a known right answer on each
day, so the traffic is drawn from a ground-truth logistic model, the "deployed" models are noisy
calibrated estimates of it, and each incident changes exactly one piece of that story.

Determinism: every model-day draws from its own generator seeded by `(seed, model, day)`, so
the same arguments rewrite byte-identical files and a shorter run is a prefix of a longer one
(apart from the last day's late rows and labels that have not arrived yet). docs/demo.md lists
the incidents, the traffic shape and the late-rows rule.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_START = dt.date(2026, 6, 1)  # the fixed-date option (`simulate --start 2026-06-01`): tests, docs
DEFAULT_DAYS = 90
DEFAULT_REQUESTS = 5000
DEFAULT_SEED = 7
REFERENCE_DAYS = 28  # days 0-27 are the demo config's reference window and stay clean
DEMO_CONFIG_TEMPLATE = Path(__file__).with_name("demo_config.yaml")  # reference window at DEFAULT_START
DEMO_CONFIG_NAME = "demo_config.yaml"  # written next to incoming/, for the dates simulated
MANIFEST_NAME = "simulation.json"  # what was simulated: the range `demo` runs

WEEKEND_FACTOR = 0.7  # Saturday and Sunday carry ~30 % fewer requests
LATE_SHARE = 0.005  # share of a day's prediction rows written into the next day's folder
LABEL_SHARE = 0.95  # share of requests whose label ever arrives
LABEL_DELAY_DAYS = (2.0, 7.0)  # label_ts - ts, uniform
OUTCOME_DELAY_DAYS = (0.0, 1.0)  # outcome ts - label_ts, uniform
OUTCOME_NOISE = 0.02  # share of outcomes that disagree with the label
CALIBRATION_ROWS = 200_000
CALIBRATION_SEED = 20260601  # the deployed models were "trained" once, whatever the traffic seed

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
EPOCH = dt.date(1970, 1, 1)
TS_TYPE = pa.timestamp("us", tz="UTC")

# Intraday shape: quiet around 02:00 UTC, busiest around 14:00 UTC.
HOUR_WEIGHTS = 1.0 + 0.8 * np.sin(2 * np.pi * (np.arange(24) - 8) / 24)
HOUR_CDF = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()

CHAMPION = "champion"
SHADOW = "shadow"
OPEN_ENDED = -1  # end_day in the plan for incidents that last until the last simulated day

# Incident kinds: one name per concept, shared with docs/demo.md.
DIRTY_ROWS = "dirty_rows"
UNIT_BUG = "unit_bug"
MEAN_SHIFT = "mean_shift"
NEW_CATEGORY = "new_category"
NULL_SPIKE = "null_spike"
CONCEPT_DRIFT = "concept_drift"
SUBGROUP_DEGRADATION = "subgroup_degradation"
LATENCY_REGRESSION = "latency_regression"

# Incident sizes (used both to inject and to document).
DIRTY_OUT_OF_RANGE = 40
DIRTY_DUPLICATES = 10
DIRTY_UNKNOWN_ROLE = 10
UNKNOWN_ROLE = "canary"
UNKNOWN_ROLE_VERSION = "v5"
UNIT_BUG_DIVISOR = 1000.0
MEAN_SHIFT_SIGMAS = 0.5
NEW_CATEGORY_VALUE = "bnpl"
NEW_CATEGORY_SHARE = 0.15
NULL_SPIKE_SHARE = 0.30
CONCEPT_DRIFT_SHUFFLED = 0.35  # share of labels drawn from another request's risk
SUBGROUP_SEGMENT = ("age_band", "65+")
SUBGROUP_SHUFFLED = 0.70
LATENCY_P50_FACTOR = 1.25
LATENCY_P99_FACTOR = 3.0
LATENCY_ERROR_RATE = 0.06
Z_99 = 2.3263478740408408  # standard normal 99th percentile


@dataclass(frozen=True)
class Incident:
    """One injected problem: where (model, days) and which output should show it."""

    model_name: str
    kind: str
    start_day: int  # 0-based day index
    end_day: int  # inclusive
    description: str
    expected_detection: str

    def dates(self, start: dt.date = DEFAULT_START) -> tuple[dt.date, dt.date]:
        """First and last affected calendar day for a run starting on `start`."""
        return start + dt.timedelta(days=self.start_day), start + dt.timedelta(days=self.end_day)


_PLAN: tuple[Incident, ...] = (
    Incident(
        "credit_default",
        DIRTY_ROWS,
        30,
        30,
        f"{DIRTY_OUT_OF_RANGE} champion rows with score outside [0, 1], {DIRTY_DUPLICATES} champion rows "
        f"logged twice (same prediction_id), {DIRTY_UNKNOWN_ROLE} extra rows with role "
        f"'{UNKNOWN_ROLE}' (version {UNKNOWN_ROLE_VERSION})",
        "quarantined_predictions (reasons: score out of range, duplicate prediction_id, unknown role) "
        "and the failed expectations in validation_results",
    ),
    Incident(
        "credit_default",
        UNIT_BUG,
        35,
        35,
        "income logged in thousands (divided by 1000) on every row; scores unaffected (logging bug)",
        "drift_scores: income drifted (PSI / Wasserstein critical); validation_results range expectation",
    ),
    Incident(
        "credit_default",
        MEAN_SHIFT,
        42,
        48,
        f"debt_ratio shifted by +{MEAN_SHIFT_SIGMAS} standard deviation (a real population change: "
        "scores move with it, labels follow the unchanged true relation)",
        "drift_scores: debt_ratio drifted (PSI about 0.37 on reference-decile bins, Wasserstein); "
        "performance stays in band",
    ),
    Incident(
        "credit_default",
        NEW_CATEGORY,
        50,
        OPEN_ENDED,
        f"product '{NEW_CATEGORY_VALUE}' appears on {NEW_CATEGORY_SHARE:.0%} of requests from then on",
        "drift_scores: product unseen-category share above unseen_critical (5 %)",
    ),
    Incident(
        "credit_default",
        NULL_SPIKE,
        56,
        57,
        f"utilization null on {NULL_SPIKE_SHARE:.0%} of requests; scores unaffected (logging bug)",
        "drift_scores / validation_results: utilization null rate above null_rate_critical (20 %)",
    ),
    Incident(
        "credit_default",
        CONCEPT_DRIFT,
        62,
        68,
        f"the true relation changes: {CONCEPT_DRIFT_SHUFFLED:.0%} of labels follow another request's "
        "risk, so AUC drops by about 0.1 for champion and shadow while features and scores are steady",
        "performance_metrics: AUC below the reference band and more than auc_critical_drop (0.05) down "
        "once labels arrive (by day + 7); drift_scores stay quiet",
    ),
    Incident(
        "credit_default",
        SUBGROUP_DEGRADATION,
        70,
        OPEN_ENDED,
        f"for age_band 65+ only, {SUBGROUP_SHUFFLED:.0%} of labels follow another 65+ request's risk: "
        "that segment's AUC drops by about 0.2, overall AUC by less than 0.02",
        "subgroup_metrics: age_band=65+ AUC gap (and equalized-odds gap); performance_metrics overall "
        "stays in band",
    ),
    Incident(
        "credit_default",
        LATENCY_REGRESSION,
        76,
        78,
        f"champion latency p99 x{LATENCY_P99_FACTOR:g} (p50 x{LATENCY_P50_FACTOR:g}) and champion error "
        f"rate {LATENCY_ERROR_RATE:.0%}; the shadow service is unaffected",
        "serving_metrics: champion latency_p99_ms above 1000 ms (critical) and error_rate above "
        "error_rate_critical (5 %)",
    ),
)


# The regression and multiclass demo models (issue #15). Their incidents sit at day offsets AFTER the
# reference window (day `reference_days + offset`), so a test can shorten the reference and still see
# them; with the default 28-day reference they land in the demo's 90 days like the binary ones.
REGRESSION_MODEL = "delivery_time"
MULTICLASS_MODEL = "ticket_routing"
FEATURE_SHIFT = "feature_shift"
CLASS_DEGRADATION = "class_degradation"
TICKET_CLASSES = ("billing", "technical", "account", "shipping")
LOAD_SHIFT_FACTOR = 1.6  # courier_load x 1.6 (a courier shortage): mean 1.5 -> 2.4 active orders
LOAD_KNEE = 2.5  # above this many active orders per courier each extra order costs more and more minutes
LATE_DELIVERY_MINUTES = 10.0  # outcome late_delivery: delivered more than this after the promised time
SHIPPING_AS_ACCOUNT = 0.4  # share of a shipping ticket's signal that looks like `account` after the change
TASK_DIRTY_PREDICTIONS = 20  # ok champion rows with an invalid prediction (non-finite value, unknown class)
TASK_DIRTY_DUPLICATES = 10
TASK_DIRTY_LABELS = 5  # labels that are not a finite number / not a declared class
UNKNOWN_CLASS = "refund"  # a predicted class the config does not declare
UNKNOWN_LABEL_CLASS = "other"
SCORES_MAP_OFFSET = 1  # ticket_routing logs the `scores` map instead of score__<class> on this day


def _map_day(reference_days: int) -> int:
    """The day ticket_routing's log carries a `scores` map column (both contract forms in one demo)."""
    return reference_days + SCORES_MAP_OFFSET


_TASK_PLAN: tuple[Incident, ...] = (  # start_day / end_day: offsets from the first day after the reference
    Incident(
        REGRESSION_MODEL,
        DIRTY_ROWS,
        3,
        3,
        f"{TASK_DIRTY_PREDICTIONS} champion rows with a non-finite predicted value (+/-inf), "
        f"{TASK_DIRTY_DUPLICATES} rows logged twice, {TASK_DIRTY_LABELS} labels of the day's requests "
        "that are not a number (NaN)",
        "quarantined_predictions (score finite, prediction_id unique) and the validation check "
        "(warning); the NaN labels in quarantined_labels",
    ),
    Incident(
        REGRESSION_MODEL,
        FEATURE_SHIFT,
        7,
        20,
        f"courier_load x{LOAD_SHIFT_FACTOR:g} (a courier shortage: mean 1.5 -> 2.4 active orders); above "
        f"{LOAD_KNEE:g} orders the true minutes grow quadratically while the model's load term is linear, "
        "so it under-predicts: MAE about +45 %, RMSE about +90 %, bias about -2.3 min",
        "drift_scores: courier_load and __score__ drifted (critical) on the first day; performance_metrics: "
        "mae / rmse above their bands and more than error_critical_increase (25 %) worse once labels "
        "land (1-2 days later); business_outcome late_delivery 5 % -> 13 %",
    ),
    Incident(
        MULTICLASS_MODEL,
        DIRTY_ROWS,
        3,
        3,
        f"{TASK_DIRTY_PREDICTIONS} champion rows predicting the undeclared class '{UNKNOWN_CLASS}', "
        f"{TASK_DIRTY_DUPLICATES} rows logged twice, {TASK_DIRTY_LABELS} labels with the undeclared class "
        f"'{UNKNOWN_LABEL_CLASS}'",
        "quarantined_predictions (prediction in classes, prediction_id unique) and the validation check "
        "(warning); the labels in quarantined_labels (label in classes)",
    ),
    Incident(
        MULTICLASS_MODEL,
        CLASS_DEGRADATION,
        9,
        OPEN_ENDED,
        f"a product change: shipping tickets now read like account tickets ({SHIPPING_AS_ACCOUNT:.0%} of "
        "their signal moves to `account`) for champion and shadow; features and true class shares are "
        "unchanged, recall:shipping falls about 0.74 -> 0.44, accuracy about -0.06",
        "performance_metrics: recall:shipping (and macro_f1, precision:account) below the reference band "
        "once labels land (1-3 days later); the CBPE recall:shipping estimate falls only part of the way "
        "(top-label confidence barely moves); business_outcome reassigned rises; target_drift stays quiet",
    ),
)


def _plan(reference_days: int = REFERENCE_DAYS) -> tuple[Incident, ...]:
    """Every planned incident with day indexes: the binary models' fixed ones, then the task models'
    placed after a reference of `reference_days` days."""
    placed = tuple(
        replace(
            i,
            start_day=reference_days + i.start_day,
            end_day=OPEN_ENDED if i.end_day == OPEN_ENDED else reference_days + i.end_day,
        )
        for i in _TASK_PLAN
    )
    return _PLAN + placed


def incidents(
    days: int = DEFAULT_DAYS,
    reference_days: int = REFERENCE_DAYS,
    models: Iterable[str] | None = None,
) -> tuple[Incident, ...]:
    """The incidents a run of `days` days contains, in plan order (binary models first).

    The binary models' incidents sit at fixed day offsets from the start (the reference window,
    days 0-27, is fixed by the demo config); the task models' sit at offsets after the reference
    window. A short run simply has fewer of them; open-ended incidents last until the final day and
    incidents running past the end are cut there. `models` limits them to the models simulated.
    """
    chosen = None if models is None else set(models)
    out = []
    for incident in _plan(reference_days):
        if incident.start_day >= days or (chosen is not None and incident.model_name not in chosen):
            continue
        end = days - 1 if incident.end_day == OPEN_ENDED else min(incident.end_day, days - 1)
        out.append(replace(incident, end_day=end))
    return tuple(out)


INCIDENTS: tuple[Incident, ...] = incidents(DEFAULT_DAYS)


@dataclass(frozen=True)
class SimulationSummary:
    """What a `simulate` run wrote, for the CLI to print and for tests to check."""

    out_dir: Path
    start: dt.date
    days: int
    requests: int
    seed: int
    files: tuple[Path, ...]
    rows: dict[str, dict[str, int]]  # model -> {"predictions": n, "labels": n, "outcomes": n}
    incidents: tuple[Incident, ...]
    config_path: Path | None = None
    reference_days: int = REFERENCE_DAYS

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    def describe(self) -> str:
        """A few human lines: where the data went, how much, which incidents it holds."""
        lines = [
            f"wrote {len(self.files)} files under {self.out_dir / 'incoming'} ({self.start} .. {self.end})"
        ]
        if self.config_path:
            ref_end = self.start + dt.timedelta(days=min(self.reference_days, self.days) - 1)
            lines.append(
                f"  config for this traffic (reference {self.start} .. {ref_end}): {self.config_path}"
            )
        for model, counts in self.rows.items():
            lines.append(
                f"  {model}: {counts['predictions']} predictions, {counts['labels']} labels, "
                f"{counts['outcomes']} outcomes"
            )
        for incident in self.incidents:
            first, last = incident.dates(self.start)
            span = f"{first}" if first == last else f"{first} .. {last}"
            lines.append(f"  incident {incident.kind} on {incident.model_name}: {span}")
        return "\n".join(lines)


@dataclass(frozen=True)
class DayTraffic:
    """One model-day in memory: the rows logged that day, before the late rows are moved.

    `labels` and `outcomes` hold every label/outcome that will ever arrive for the day's
    requests, whatever their arrival day; `simulate` drops the ones arriving after the run.
    """

    predictions: pa.Table
    late: np.ndarray  # bool per prediction row: written into the next day's folder
    labels: pa.Table
    outcomes: pa.Table


# --------------------------------------------------------------------------- helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(u: np.ndarray, probs: Iterable[float]) -> np.ndarray:
    """Category codes from uniforms: same draws whatever the probabilities, so days stay aligned."""
    cdf = np.cumsum(np.asarray(list(probs), dtype=float))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 30) -> tuple[float, float]:
    """Intercept and slope of P(y=1) = sigmoid(a + b x) by Newton's method (Platt scaling)."""
    a, b = 0.0, 1.0
    for _ in range(iterations):
        p = _sigmoid(a + b * x)
        w = p * (1.0 - p)
        r = y - p
        grad = np.array([r.sum(), (r * x).sum()])
        hess = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
        step = np.linalg.solve(hess, grad)
        a, b = a + float(step[0]), b + float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return a, b


def _shuffled_labels(rng: np.random.Generator, p: np.ndarray, chosen: np.ndarray, share: float) -> np.ndarray:
    """Risks where a `share` of the `chosen` rows take another chosen row's risk.

    Swapping risks among the same rows keeps the prevalence and the score distribution while
    cutting the link between a row's score and its label: AUC falls towards 0.5 by `share`.
    """
    perm = rng.permutation(len(p))
    swap = rng.random(len(p)) < share
    out = p.copy()
    idx = np.flatnonzero(chosen)
    if len(idx) > 1:
        donors = idx[np.argsort(perm[idx], kind="stable")]  # a random reordering of the chosen rows
        take = swap[idx]
        out[idx[take]] = p[donors[take]]
    return out


# --------------------------------------------------------------------------- the two models


@dataclass(frozen=True)
class _Column:
    name: str
    type: pa.DataType
    categories: tuple[str, ...] = ()


class _Traffic:
    """A demo model: how its requests look, the true risk, and the deployed versions' noise."""

    name: str
    code: str  # id prefix
    volume: float  # share of `requests`
    versions: dict[str, tuple[str, float]]  # version -> (role, logit noise sd)
    threshold: float  # score >= threshold -> prediction 1
    outcome: str
    latency: dict[str, tuple[float, float]]  # role -> (median ms, lognormal sigma)
    error_rate: float
    columns: tuple[_Column, ...]  # feature and segment columns in log order

    def features(self, rng: np.random.Generator, n: int, active: frozenset[str]) -> dict[str, np.ndarray]:
        """True feature and segment values (categoricals as codes into the column's categories)."""
        raise NotImplementedError

    def logit(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """Log-odds of the positive label under the true (reference-period) relation."""
        raise NotImplementedError

    def logged(
        self, rng: np.random.Generator, f: dict[str, np.ndarray], active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        """The values as the log shows them: logging bugs change these, not what the model saw."""
        return f


REGIONS = ("north", "south", "east", "west")
REGION_P = (0.30, 0.25, 0.25, 0.20)


class _Credit(_Traffic):
    name = "credit_default"
    code = "cd"
    volume = 1.0
    versions = {"v3": (CHAMPION, 0.95), "v4": (SHADOW, 0.68)}
    threshold = 0.30
    outcome = "repaid"
    latency = {CHAMPION: (95.0, 0.6), SHADOW: (105.0, 0.6)}
    error_rate = 0.004
    columns = (
        _Column("income", pa.float64()),
        _Column("debt_ratio", pa.float64()),
        _Column("utilization", pa.float64()),
        _Column("age", pa.int64()),
        _Column("num_accounts", pa.int64()),
        _Column("region", pa.string(), REGIONS),
        _Column("product", pa.string(), ("card", "loan", "mortgage", NEW_CATEGORY_VALUE)),
        _Column("age_band", pa.string(), ("18-25", "26-40", "41-64", "65+")),
        _Column("sex", pa.string(), ("F", "M")),
    )
    PRODUCT_P = (0.55, 0.30, 0.15, 0.0)
    BAND_P = (0.16, 0.40, 0.37, 0.07)
    BAND_LO = np.array([18, 26, 41, 65])
    BAND_HI = np.array([25, 40, 64, 90])
    BAND_SKEW = np.array([1.0, 1.0, 1.0, 1.8])  # 65+ thins out towards 90
    BAND_INCOME = np.log(np.array([48_000.0, 51_000.0, 53_000.0, 49_000.0]))
    INCOME_SIGMA = 0.45
    DEBT_A, DEBT_B = 2.2, 4.5
    DEBT_MEAN = DEBT_A / (DEBT_A + DEBT_B)
    DEBT_SD = float(np.sqrt(DEBT_A * DEBT_B / ((DEBT_A + DEBT_B) ** 2 * (DEBT_A + DEBT_B + 1))))
    UTIL_A, UTIL_B = 1.4, 2.6
    PRODUCT_EFFECT = np.array([0.0, 0.25, -0.45, 0.0])  # bnpl behaves like card
    REGION_EFFECT = np.array([0.0, 0.1, 0.0, -0.05])

    def features(self, rng: np.random.Generator, n: int, active: frozenset[str]) -> dict[str, np.ndarray]:
        u = rng.random((5, n))
        product_p = self.PRODUCT_P
        if NEW_CATEGORY in active:
            product_p = tuple(p * (1 - NEW_CATEGORY_SHARE) for p in self.PRODUCT_P[:3]) + (
                NEW_CATEGORY_SHARE,
            )
        band = _pick(u[2], self.BAND_P)
        lo, hi = self.BAND_LO[band], self.BAND_HI[band]
        age = lo + np.floor(u[3] ** self.BAND_SKEW[band] * (hi - lo + 1)).astype(np.int64)
        debt = rng.beta(self.DEBT_A, self.DEBT_B, n)
        if MEAN_SHIFT in active:
            debt = debt + MEAN_SHIFT_SIGMAS * self.DEBT_SD
        return {
            "income": np.round(
                np.exp(self.BAND_INCOME[band] + self.INCOME_SIGMA * rng.standard_normal(n)), 2
            ),
            "debt_ratio": np.round(debt, 4),
            "utilization": np.round(rng.beta(self.UTIL_A, self.UTIL_B, n), 4),
            "age": np.minimum(age, 90),
            "num_accounts": 1 + rng.poisson(3.0, n),
            "region": _pick(u[0], REGION_P),
            "product": _pick(u[1], product_p),
            "age_band": band,
            "sex": _pick(u[4], (0.49, 0.51)),
        }

    def logit(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return (
            -1.85
            + 1.05 * (f["debt_ratio"] - self.DEBT_MEAN) / self.DEBT_SD
            + 0.85 * (f["utilization"] - 0.35) / 0.22
            - 0.45 * (np.log(f["income"]) - 10.85) / 0.47
            + 0.15 * (f["num_accounts"] - 4.0) / 1.73
            - 0.02 * (f["age"] - 42.0) / 14.0
            + self.PRODUCT_EFFECT[f["product"]]
            + self.REGION_EFFECT[f["region"]]
        )

    def logged(
        self, rng: np.random.Generator, f: dict[str, np.ndarray], active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        null_draw = rng.random(len(f["income"]))
        out = dict(f)
        if UNIT_BUG in active:
            out["income"] = np.round(f["income"] / UNIT_BUG_DIVISOR, 5)
        if NULL_SPIKE in active:
            out["utilization"] = np.where(null_draw < NULL_SPIKE_SHARE, np.nan, f["utilization"])
        return out


class _Churn(_Traffic):
    name = "churn_propensity"
    code = "cp"
    volume = 0.4
    versions = {"v1": (CHAMPION, 0.9)}
    threshold = 0.35
    outcome = "renewed"
    latency = {CHAMPION: (40.0, 0.5)}
    error_rate = 0.003
    columns = (
        _Column("tenure_months", pa.int64()),
        _Column("monthly_spend", pa.float64()),
        _Column("support_tickets", pa.int64()),
        _Column("plan", pa.string(), ("basic", "plus", "pro")),
        _Column("channel", pa.string(), ("web", "app", "store")),
        _Column("region", pa.string(), REGIONS),
    )
    PLAN_SPEND = np.log(np.array([25.0, 45.0, 80.0]))
    PLAN_EFFECT = np.array([0.1, 0.0, -0.1])
    CHANNEL_EFFECT = np.array([0.0, 0.05, -0.15])

    def features(self, rng: np.random.Generator, n: int, active: frozenset[str]) -> dict[str, np.ndarray]:
        u = rng.random((3, n))
        plan = _pick(u[0], (0.50, 0.35, 0.15))
        tenure = 1 + np.floor(rng.exponential(22.0, n)).astype(np.int64)
        return {
            "tenure_months": np.minimum(tenure, 120),
            "monthly_spend": np.round(np.exp(self.PLAN_SPEND[plan] + 0.3 * rng.standard_normal(n)), 2),
            "support_tickets": rng.poisson(0.8, n),
            "plan": plan,
            "channel": _pick(u[1], (0.45, 0.40, 0.15)),
            "region": _pick(u[2], REGION_P),
        }

    def logit(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return (
            -1.45
            - 1.0 * (np.log(f["tenure_months"]) - 2.6) / 1.0
            + 0.8 * (f["support_tickets"] - 0.8) / 0.9
            + 0.1 * (np.log(f["monthly_spend"]) - 3.7) / 0.5
            + self.PLAN_EFFECT[f["plan"]]
            + self.CHANNEL_EFFECT[f["channel"]]
        )


MODELS: dict[str, _Traffic] = {m.name: m for m in (_Credit(), _Churn())}


@cache
def _calibration(model_name: str) -> dict[str, tuple[float, float]]:
    """Platt parameters per version, fitted once on clean traffic: the deployed models are calibrated."""
    traffic = MODELS[model_name]
    rng = np.random.default_rng(CALIBRATION_SEED)
    f = traffic.features(rng, CALIBRATION_ROWS, frozenset())
    z = traffic.logit(f)
    y = (rng.random(CALIBRATION_ROWS) < _sigmoid(z)).astype(float)
    return {
        version: _fit_logistic(z + rng.normal(0.0, sd, CALIBRATION_ROWS), y)
        for version, (_, sd) in traffic.versions.items()
    }


# --------------------------------------------------------------------------- one model-day


def _active(model_name: str, day: int, reference_days: int = REFERENCE_DAYS) -> frozenset[str]:
    """Incident kinds affecting a model on a day; independent of the run length."""
    return frozenset(
        i.kind
        for i in _plan(reference_days)
        if i.model_name == model_name and i.start_day <= day and (i.end_day == OPEN_ENDED or day <= i.end_day)
    )


def day_volume(requests: int, date: dt.date, volume: float = 1.0) -> float:
    """Expected requests on `date`: `requests` on a weekday, ~30 % fewer on Saturday and Sunday."""
    return requests * volume * (WEEKEND_FACTOR if date.weekday() >= 5 else 1.0)


def prediction_schema(model_name: str) -> pa.Schema:
    """The prediction-log schema (contract §1) the simulator writes for a demo model."""
    traffic = MODELS[model_name]
    return pa.schema(
        [
            ("prediction_id", pa.string()),
            ("request_id", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("role", pa.string()),
            ("ts", TS_TYPE),
            *[(c.name, c.type) for c in traffic.columns],
            ("score", pa.float64()),
            ("prediction", pa.int64()),
            ("latency_ms", pa.float64()),
            ("status", pa.string()),
        ]
    )


LABEL_SCHEMA = pa.schema([("request_id", pa.string()), ("label", pa.int64()), ("label_ts", TS_TYPE)])
OUTCOME_SCHEMA = pa.schema(
    [("request_id", pa.string()), ("outcome", pa.string()), ("value", pa.float64()), ("ts", TS_TYPE)]
)


def _timestamps(rng: np.random.Generator, n: int, date: dt.date) -> np.ndarray:
    """Sorted request times (µs since epoch, UTC) on `date`, following the intraday shape."""
    hour = np.searchsorted(HOUR_CDF, rng.random(n), side="right")
    offset = hour * US_PER_HOUR + np.floor(rng.random(n) * US_PER_HOUR).astype(np.int64)
    return (date - EPOCH).days * US_PER_DAY + np.sort(offset)


def _labels(
    rng: np.random.Generator, traffic: _Traffic, f: dict[str, np.ndarray], active: frozenset[str]
) -> np.ndarray:
    """Ground truth per request: the true risk, reshuffled where a label incident is active."""
    p = _sigmoid(traffic.logit(f))
    everyone = np.ones(len(p), dtype=bool)
    p = _shuffled_labels(rng, p, everyone, CONCEPT_DRIFT_SHUFFLED if CONCEPT_DRIFT in active else 0.0)
    segment, value = SUBGROUP_SEGMENT
    column = next((c for c in traffic.columns if c.name == segment), None)
    chosen = everyone if column is None else f[segment] == column.categories.index(value)
    p = _shuffled_labels(rng, p, chosen, SUBGROUP_SHUFFLED if SUBGROUP_DEGRADATION in active else 0.0)
    return (rng.random(len(p)) < p).astype(np.int64)


def _version_rows(
    rng: np.random.Generator, traffic: _Traffic, z: np.ndarray, active: frozenset[str]
) -> dict[str, np.ndarray]:
    """One row per request and version, each request's versions adjacent (champion first)."""
    n = len(z)
    calibration = _calibration(traffic.name)
    scores, latencies, errors = [], [], []
    for version, (role, noise) in traffic.versions.items():
        a, b = calibration[version]
        scores.append(_sigmoid(a + b * (z + rng.normal(0.0, noise, n))))
        median, sigma = traffic.latency[role]
        error_rate = traffic.error_rate
        if role == CHAMPION and LATENCY_REGRESSION in active:
            # Scale the median by the p50 factor and widen the tail so the p99 grows by the p99 factor.
            median *= LATENCY_P50_FACTOR
            sigma += (np.log(LATENCY_P99_FACTOR) - np.log(LATENCY_P50_FACTOR)) / Z_99
            error_rate = LATENCY_ERROR_RATE
        latencies.append(np.round(median * np.exp(sigma * rng.standard_normal(n)), 3))
        errors.append(rng.random(n) < error_rate)
    k = len(traffic.versions)
    return {
        "request": np.repeat(np.arange(n), k),
        "model_version": np.tile(np.array(list(traffic.versions), dtype=object), n),
        "role": np.tile(np.array([role for role, _ in traffic.versions.values()], dtype=object), n),
        "score": np.column_stack(scores).ravel(),
        "latency_ms": np.column_stack(latencies).ravel(),
        "error": np.column_stack(errors).ravel(),
        "dirty": np.zeros(n * k, dtype=bool),
    }


def _add_dirty_rows(rng: np.random.Generator, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Quarantine material: scores outside [0, 1] in place, duplicated rows and unknown roles appended."""
    champion = np.flatnonzero(rows["role"] == CHAMPION)
    ok = champion[~rows["error"][champion]]
    bad = rng.choice(ok, size=min(DIRTY_OUT_OF_RANGE, len(ok)), replace=False)
    high = rng.random(len(bad)) < 0.5
    size = rng.uniform(0.01, 0.6, len(bad))
    rows = {key: value.copy() for key, value in rows.items()}
    rows["score"][bad] = np.where(high, 1.0 + size, -size)
    rest = np.setdiff1d(champion, bad)
    picked = rng.choice(rest, size=min(DIRTY_DUPLICATES + DIRTY_UNKNOWN_ROLE, len(rest)), replace=False)
    dup, unknown = picked[:DIRTY_DUPLICATES], picked[DIRTY_DUPLICATES:]
    rows["dirty"][np.concatenate([bad, dup])] = True  # keep the evidence in its own day's folder
    copies = {key: value[np.concatenate([dup, unknown])] for key, value in rows.items()}
    copies["role"][len(dup) :] = UNKNOWN_ROLE
    copies["model_version"][len(dup) :] = UNKNOWN_ROLE_VERSION
    copies["dirty"][:] = True
    return {key: np.concatenate([rows[key], copies[key]]) for key in rows}


def _logged_columns(
    model_name: str,
    features: Iterable[_Column],
    rows: dict[str, np.ndarray],
    request_id: np.ndarray,
    ts: np.ndarray,
    values_of: dict[str, np.ndarray],
) -> list[pa.Array]:
    """The keys of every logged row (prediction_id, request_id, model_name, model_version, role, ts) and
    its feature columns (a category's index as its name; a NaN float as null), in the log's order."""
    req = rows["request"]
    prediction_id = np.strings.add(np.strings.add(request_id[req], "-"), rows["model_version"].astype(str))
    columns: list[pa.Array] = [
        pa.array(prediction_id, pa.string()),
        pa.array(request_id[req], pa.string()),
        pa.array(np.full(len(req), model_name), pa.string()),
        pa.array(rows["model_version"], pa.string()),
        pa.array(rows["role"], pa.string()),
        pa.array(ts[req], pa.int64()).cast(TS_TYPE),
    ]
    for column in features:
        values = values_of[column.name][req]
        if column.categories:
            columns.append(pa.array(np.asarray(column.categories)[values], pa.string()))
        elif pa.types.is_floating(column.type):
            columns.append(pa.array(values, column.type, mask=np.isnan(values)))
        else:
            columns.append(pa.array(values, column.type))
    return columns


def _prediction_table(
    traffic: _Traffic,
    rows: dict[str, np.ndarray],
    request_id: np.ndarray,
    ts: np.ndarray,
    logged: dict[str, np.ndarray],
) -> pa.Table:
    """The prediction log (contract §1): error rows have null score and prediction."""
    error = rows["error"]
    columns = _logged_columns(traffic.name, traffic.columns, rows, request_id, ts, logged)
    columns += [
        pa.array(rows["score"], pa.float64(), mask=error),
        pa.array((rows["score"] >= traffic.threshold).astype(np.int64), pa.int64(), mask=error),
        pa.array(rows["latency_ms"], pa.float64()),
        pa.array(np.where(error, "error", "ok"), pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=prediction_schema(traffic.name))


def _arrivals(
    rng: np.random.Generator, traffic: _Traffic, request_id: np.ndarray, ts: np.ndarray, label: np.ndarray
) -> tuple[pa.Table, pa.Table]:
    """Labels arriving 2-7 days after the request (for LABEL_SHARE of requests); outcomes follow them."""
    n = len(ts)
    arrives = rng.random(n) < LABEL_SHARE
    label_ts = ts + np.floor(rng.uniform(*LABEL_DELAY_DAYS, n) * US_PER_DAY).astype(np.int64)
    outcome_ts = label_ts + np.floor(rng.uniform(*OUTCOME_DELAY_DAYS, n) * US_PER_DAY).astype(np.int64)
    value = np.where(rng.random(n) < OUTCOME_NOISE, label, 1 - label).astype(np.float64)
    ids = pa.array(request_id[arrives], pa.string())
    labels = pa.Table.from_arrays(
        [ids, pa.array(label[arrives], pa.int64()), pa.array(label_ts[arrives], pa.int64()).cast(TS_TYPE)],
        schema=LABEL_SCHEMA,
    )
    outcomes = pa.Table.from_arrays(
        [
            ids,
            pa.array(np.full(len(ids), traffic.outcome), pa.string()),
            pa.array(value[arrives], pa.float64()),
            pa.array(outcome_ts[arrives], pa.int64()).cast(TS_TYPE),
        ],
        schema=OUTCOME_SCHEMA,
    )
    return labels, outcomes


def simulate_day(
    model_name: str,
    day: int,
    requests: int = DEFAULT_REQUESTS,
    seed: int = DEFAULT_SEED,
    start: dt.date = DEFAULT_START,
    inject: Iterable[str] | None = None,
    reference_days: int = REFERENCE_DAYS,
) -> DayTraffic:
    """Generate one model-day in memory: requests, every version's prediction row, labels, outcomes.

    The generator is seeded by (seed, model, day) alone, so a day looks the same in any run length.
    `inject` limits the planned incidents to these kinds (None: all of them); random draws do not
    depend on it, so `inject=()` gives the same day without its incidents, for paired comparisons.
    `reference_days` places the regression and multiclass models' incidents (after the reference).
    """
    if model_name in TASK_MODELS:
        task_active = _active(model_name, day, reference_days)
        if inject is not None:
            task_active = task_active & frozenset(inject)
        return _simulate_task_day(model_name, day, requests, seed, start, task_active)
    traffic = MODELS[model_name]
    model_index = list(MODELS).index(model_name)
    rng = np.random.default_rng(np.random.SeedSequence([seed, model_index, day]))
    date = start + dt.timedelta(days=day)
    active = _active(model_name, day)
    if inject is not None:
        active = active & frozenset(inject)

    n = max(1, int(rng.poisson(day_volume(requests, date, traffic.volume))))
    ts = _timestamps(rng, n, date)
    request_id = np.strings.mod(f"{traffic.code}-{date:%Y%m%d}-%06d", np.arange(n))
    f = traffic.features(rng, n, active)
    label = _labels(rng, traffic, f, active)
    logged = traffic.logged(rng, f, active)
    rows = _version_rows(rng, traffic, traffic.logit(f), active)
    rows["late"] = rng.random(len(rows["request"])) < LATE_SHARE
    labels, outcomes = _arrivals(rng, traffic, request_id, ts, label)
    if DIRTY_ROWS in active:
        # Own generator: the rest of the day draws the same numbers with or without this incident.
        dirty_rng = np.random.default_rng(np.random.SeedSequence([seed, model_index, day, 1]))
        rows = _add_dirty_rows(dirty_rng, rows)
        order = np.argsort(rows["request"], kind="stable")  # copies next to their originals
        rows = {key: value[order] for key, value in rows.items()}
    predictions = _prediction_table(traffic, rows, request_id, ts, logged)
    return DayTraffic(
        predictions=predictions, late=rows["late"] & ~rows["dirty"], labels=labels, outcomes=outcomes
    )


# --------------------------------------------------------------------------- regression and multiclass models


class _TaskTraffic:
    """A regression or multiclass demo model: requests, the truth, and what each version predicts.

    As for the binary models the truth is known on every row, so every metric has a right answer:
    delivery minutes come from a known formula with lognormal noise, ticket classes from known
    priors with Gaussian evidence the model turns into exact (calibrated) posteriors.
    """

    name: str
    code: str
    task: str
    volume: float
    versions: dict[str, tuple[str, float]]  # version -> (role, quality parameter)
    latency: dict[str, tuple[float, float]]
    error_rate: float
    outcome: str
    label_share: float
    label_delay_days: tuple[float, float]
    outcome_delay_days: tuple[float, float]
    columns: tuple[_Column, ...]
    classes: tuple[str, ...] = ()

    def features(
        self, rng: np.random.Generator, n: int, ts: np.ndarray, active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def truth(self, rng: np.random.Generator, f: dict[str, np.ndarray], active: frozenset[str]) -> np.ndarray:
        """The label per request: observed minutes (regression) or the true class index (multiclass)."""
        raise NotImplementedError

    def predict(
        self, rng: np.random.Generator, f: dict[str, np.ndarray], truth: np.ndarray, active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        """Per version: predicted values (n,) or class probabilities (n, k)."""
        raise NotImplementedError

    def outcome_value(self, rng: np.random.Generator, truth: np.ndarray, champion: np.ndarray) -> np.ndarray:
        raise NotImplementedError


VEHICLES = ("bike", "scooter", "car")
VEHICLE_P = (0.35, 0.40, 0.25)
RUSH_HOURS = (12, 13, 18, 19, 20)


class _Delivery(_TaskTraffic):
    """delivery_time: minutes from order to door, predicted at order time (regression)."""

    name = REGRESSION_MODEL
    code = "dt"
    task = "regression"
    volume = 0.5
    versions = {"v2": (CHAMPION, 2.0)}  # model noise sd in minutes
    latency = {CHAMPION: (30.0, 0.5)}
    error_rate = 0.003
    outcome = "late_delivery"
    label_share = 0.97  # cancelled orders are never delivered
    label_delay_days = (1.0, 2.0)  # the courier app's delivery log lands in the warehouse 1-2 days later
    outcome_delay_days = (0.0, 0.5)
    columns = (
        _Column("distance_km", pa.float64()),
        _Column("items", pa.int64()),
        _Column("hour", pa.int64()),
        _Column("courier_load", pa.float64()),
        _Column("region", pa.string(), REGIONS),
        _Column("vehicle", pa.string(), VEHICLES),
    )
    MIN_PER_KM = np.array([4.0, 3.0, 2.6])  # by vehicle
    REGION_MIN = np.array([0.0, 1.5, 0.5, -1.0])
    LOAD_SHAPE, LOAD_SCALE = 6.0, 0.25  # gamma: mean 1.5, sd 0.61 active orders per courier
    NOISE_SIGMA = 0.18  # lognormal: actual = mean x exp(N(-s^2/2, s))

    def features(
        self, rng: np.random.Generator, n: int, ts: np.ndarray, active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        u = rng.random((2, n))
        load = rng.gamma(self.LOAD_SHAPE, self.LOAD_SCALE, n)
        if FEATURE_SHIFT in active:
            load = load * LOAD_SHIFT_FACTOR
        return {
            "distance_km": np.round(np.minimum(np.exp(np.log(3.5) + 0.55 * rng.standard_normal(n)), 25.0), 2),
            "items": 1 + rng.poisson(1.8, n),
            "hour": (ts % US_PER_DAY) // US_PER_HOUR,
            "courier_load": np.round(load, 2),
            "region": _pick(u[0], REGION_P),
            "vehicle": _pick(u[1], VEHICLE_P),
        }

    def base_minutes(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """Everything but the load: preparation, travel, rush hours, region."""
        return (
            8.0
            + 1.2 * f["items"]
            + f["distance_km"] * self.MIN_PER_KM[f["vehicle"]]
            + np.where(np.isin(f["hour"], RUSH_HOURS), 4.0, 0.0)
            + self.REGION_MIN[f["region"]]
        )

    @staticmethod
    def load_minutes(load: np.ndarray) -> np.ndarray:
        """The true cost of courier load: linear, then quadratic beyond the knee."""
        return 2.5 * load + 6.0 * np.maximum(load - LOAD_KNEE, 0.0) ** 2

    def expected(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return self.base_minutes(f) + self.load_minutes(f["courier_load"])

    def truth(self, rng: np.random.Generator, f: dict[str, np.ndarray], active: frozenset[str]) -> np.ndarray:
        s = self.NOISE_SIGMA
        noise = np.exp(s * rng.standard_normal(len(f["items"])) - s * s / 2)
        return np.round(self.expected(f) * noise, 2)

    def predict(
        self, rng: np.random.Generator, f: dict[str, np.ndarray], truth: np.ndarray, active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        a, b = _load_fit()
        out = {}
        for version, (_, noise) in self.versions.items():
            mean = self.base_minutes(f) + a + b * f["courier_load"]
            out[version] = np.round(mean + rng.normal(0.0, noise, len(mean)), 2)
        return out

    def outcome_value(self, rng: np.random.Generator, truth: np.ndarray, champion: np.ndarray) -> np.ndarray:
        return (truth > champion + LATE_DELIVERY_MINUTES).astype(np.float64)


@cache
def _load_fit() -> tuple[float, float]:
    """The deployed model's load term: a least-squares line through the true load cost on reference
    traffic, where loads past the knee are rare. Fitted once, whatever the traffic seed."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    load = rng.gamma(_Delivery.LOAD_SHAPE, _Delivery.LOAD_SCALE, CALIBRATION_ROWS)
    design = np.column_stack([np.ones_like(load), load])
    coef = np.linalg.lstsq(design, _Delivery.load_minutes(load), rcond=None)[0]
    return float(coef[0]), float(coef[1])


CHANNELS = ("email", "chat", "phone")
LANGUAGES = ("en", "de", "fr", "es")


class _Tickets(_TaskTraffic):
    """ticket_routing: which queue a support ticket goes to (multiclass), champion v7 + shadow v8."""

    name = MULTICLASS_MODEL
    code = "tr"
    task = "multiclass_classification"
    volume = 0.25
    versions = {"v7": (CHAMPION, 1.8), "v8": (SHADOW, 2.0)}  # evidence strength: accuracy ~0.79 / ~0.83
    latency = {CHAMPION: (60.0, 0.5), SHADOW: (70.0, 0.5)}
    error_rate = 0.003
    outcome = "reassigned"
    label_share = 0.90  # some tickets are abandoned before an agent files them
    label_delay_days = (1.0, 3.0)  # the resolving agent's queue lands 1-3 days later
    outcome_delay_days = (0.0, 0.5)
    classes = TICKET_CLASSES
    columns = (
        _Column("message_words", pa.int64()),
        _Column("attachments", pa.int64()),
        _Column("account_age_days", pa.int64()),
        _Column("channel", pa.string(), CHANNELS),
        _Column("language", pa.string(), LANGUAGES),
    )
    BASE_PRIOR = np.log(np.array([0.30, 0.30, 0.20, 0.20]))

    def features(
        self, rng: np.random.Generator, n: int, ts: np.ndarray, active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        u = rng.random((2, n))
        return {
            "message_words": np.maximum(
                1, np.round(np.exp(np.log(60.0) + 0.6 * rng.standard_normal(n)))
            ).astype(np.int64),
            "attachments": rng.poisson(0.4, n),
            "account_age_days": np.floor(rng.exponential(400.0, n)).astype(np.int64),
            "channel": _pick(u[0], (0.50, 0.35, 0.15)),
            "language": _pick(u[1], (0.55, 0.20, 0.15, 0.10)),
        }

    def log_prior(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """Class log-priors given the request (the same for the truth and the models)."""
        n = len(f["attachments"])
        lp = np.tile(self.BASE_PRIOR, (n, 1))
        lp[:, 1] += 0.6 * (f["attachments"] > 0) + 0.3 * (np.log(f["message_words"]) - np.log(60.0))
        lp[:, 2] += 0.4 * (f["channel"] == 2) + 0.5 * (f["account_age_days"] < 30)
        lp[:, 3] += 0.2 * (f["channel"] == 1)
        return lp

    def truth(self, rng: np.random.Generator, f: dict[str, np.ndarray], active: frozenset[str]) -> np.ndarray:
        lp = self.log_prior(f)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        return np.minimum((rng.random(len(cdf))[:, None] > cdf).sum(axis=1), len(self.classes) - 1)

    def predict(
        self, rng: np.random.Generator, f: dict[str, np.ndarray], truth: np.ndarray, active: frozenset[str]
    ) -> dict[str, np.ndarray]:
        """Evidence x = mu * e_true + N(0, I); the model's posterior softmax(log prior + mu x) is exact,
        so the probabilities are calibrated until the evidence stops meaning what it meant."""
        n, k = len(truth), len(self.classes)
        lp = self.log_prior(f)
        shipping, account = self.classes.index("shipping"), self.classes.index("account")
        out = {}
        for version, (_, mu) in self.versions.items():
            signal = np.zeros((n, k))
            signal[np.arange(n), truth] = mu
            if CLASS_DEGRADATION in active:
                moved = truth == shipping
                signal[moved, shipping] = mu * (1.0 - SHIPPING_AS_ACCOUNT)
                signal[moved, account] = mu * SHIPPING_AS_ACCOUNT
            z = lp + mu * (signal + rng.standard_normal((n, k)))
            p = np.exp(z - z.max(axis=1, keepdims=True))
            out[version] = np.round(p / p.sum(axis=1, keepdims=True), 6)
        return out

    def outcome_value(self, rng: np.random.Generator, truth: np.ndarray, champion: np.ndarray) -> np.ndarray:
        wrong = champion.argmax(axis=1) != truth
        flip = rng.random(len(truth)) < OUTCOME_NOISE
        return (wrong ^ flip).astype(np.float64)


TASK_MODELS: dict[str, _TaskTraffic] = {m.name: m for m in (_Delivery(), _Tickets())}
MODEL_NAMES: tuple[str, ...] = (*MODELS, *TASK_MODELS)  # every demo model, in seed order


def task_prediction_schema(model_name: str) -> pa.Schema:
    """The prediction log of a task model: regression without `prediction` (it may be absent);
    multiclass with the predicted class and one `score__<class>` column per class, no `score`."""
    traffic = TASK_MODELS[model_name]
    head = [
        ("prediction_id", pa.string()),
        ("request_id", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("role", pa.string()),
        ("ts", TS_TYPE),
        *[(c.name, c.type) for c in traffic.columns],
    ]
    if traffic.classes:
        outputs = [("prediction", pa.string()), *[(f"score__{c}", pa.float64()) for c in traffic.classes]]
    else:
        outputs = [("score", pa.float64())]
    return pa.schema([*head, *outputs, ("latency_ms", pa.float64()), ("status", pa.string())])


def label_schema(model_name: str) -> pa.Schema:
    """Labels: 0/1 for the binary models, observed minutes for regression, the class name for multiclass."""
    traffic = TASK_MODELS.get(model_name)
    if traffic is None:
        return LABEL_SCHEMA
    kind = pa.string() if traffic.classes else pa.float64()
    return pa.schema([("request_id", pa.string()), ("label", kind), ("label_ts", TS_TYPE)])


def _task_rows(
    rng: np.random.Generator, traffic: _TaskTraffic, predicted: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One row per request and version, each request's versions adjacent (champion first)."""
    n = len(next(iter(predicted.values())))
    latencies, errors = [], []
    for _, (role, _) in traffic.versions.items():
        median, sigma = traffic.latency[role]
        latencies.append(np.round(median * np.exp(sigma * rng.standard_normal(n)), 3))
        errors.append(rng.random(n) < traffic.error_rate)
    k = len(traffic.versions)
    values = np.stack([predicted[v] for v in traffic.versions], axis=1)  # (n, k) or (n, k, classes)
    return {
        "request": np.repeat(np.arange(n), k),
        "model_version": np.tile(np.array(list(traffic.versions), dtype=object), n),
        "role": np.tile(np.array([role for role, _ in traffic.versions.values()], dtype=object), n),
        "value": values.reshape(n * k, *values.shape[2:]),
        "latency_ms": np.column_stack(latencies).ravel(),
        "error": np.column_stack(errors).ravel(),
        "dirty": np.zeros(n * k, dtype=bool),
        "unknown_class": np.zeros(n * k, dtype=bool),
    }


def _add_task_dirty_rows(
    rng: np.random.Generator, traffic: _TaskTraffic, rows: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Quarantine material: invalid predictions in place (non-finite value, undeclared class) and
    duplicated rows appended next to their originals."""
    champion = np.flatnonzero(rows["role"] == CHAMPION)
    ok = champion[~rows["error"][champion]]
    bad = rng.choice(ok, size=min(TASK_DIRTY_PREDICTIONS, len(ok)), replace=False)
    rows = {key: value.copy() for key, value in rows.items()}
    if traffic.classes:
        rows["unknown_class"][bad] = True
    else:
        rows["value"][bad] = np.where(rng.random(len(bad)) < 0.5, np.inf, -np.inf)
    rest = np.setdiff1d(ok, bad)
    dup = rng.choice(rest, size=min(TASK_DIRTY_DUPLICATES, len(rest)), replace=False)
    rows["dirty"][np.concatenate([bad, dup])] = True
    copies = {key: value[dup] for key, value in rows.items()}
    merged = {key: np.concatenate([rows[key], copies[key]]) for key in rows}
    order = np.argsort(merged["request"], kind="stable")
    return {key: value[order] for key, value in merged.items()}


def _task_prediction_table(
    traffic: _TaskTraffic,
    rows: dict[str, np.ndarray],
    request_id: np.ndarray,
    ts: np.ndarray,
    f: dict[str, np.ndarray],
) -> pa.Table:
    error = rows["error"]
    columns = _logged_columns(traffic.name, traffic.columns, rows, request_id, ts, f)
    if traffic.classes:
        proba = rows["value"]
        names = np.asarray(traffic.classes, dtype=object)[proba.argmax(axis=1)]
        names = np.where(rows["unknown_class"], UNKNOWN_CLASS, names)
        columns.append(pa.array(names, pa.string(), mask=error))
        columns += [pa.array(proba[:, j], pa.float64(), mask=error) for j in range(len(traffic.classes))]
    else:
        columns.append(pa.array(rows["value"], pa.float64(), mask=error))
    columns += [
        pa.array(rows["latency_ms"], pa.float64()),
        pa.array(np.where(error, "error", "ok"), pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=task_prediction_schema(traffic.name))


def _task_arrivals(
    rng: np.random.Generator,
    traffic: _TaskTraffic,
    request_id: np.ndarray,
    ts: np.ndarray,
    label: np.ndarray,
    outcome: np.ndarray,
) -> tuple[pa.Table, pa.Table]:
    """Labels for `label_share` of requests after the model's delay; each labelled request's outcome
    follows its label."""
    n = len(ts)
    arrives = rng.random(n) < traffic.label_share
    label_ts = ts + np.floor(rng.uniform(*traffic.label_delay_days, n) * US_PER_DAY).astype(np.int64)
    outcome_ts = label_ts + np.floor(rng.uniform(*traffic.outcome_delay_days, n) * US_PER_DAY).astype(
        np.int64
    )
    ids = pa.array(request_id[arrives], pa.string())
    schema = label_schema(traffic.name)
    labels = pa.Table.from_arrays(
        [
            ids,
            pa.array(label[arrives], schema.field("label").type),
            pa.array(label_ts[arrives]).cast(TS_TYPE),
        ],
        schema=schema,
    )
    outcomes = pa.Table.from_arrays(
        [
            ids,
            pa.array(np.full(len(ids), traffic.outcome), pa.string()),
            pa.array(outcome[arrives], pa.float64()),
            pa.array(outcome_ts[arrives]).cast(TS_TYPE),
        ],
        schema=OUTCOME_SCHEMA,
    )
    return labels, outcomes


def _simulate_task_day(
    model_name: str, day: int, requests: int, seed: int, start: dt.date, active: frozenset[str]
) -> DayTraffic:
    """One model-day of a regression or multiclass model (see `simulate_day`)."""
    traffic = TASK_MODELS[model_name]
    model_index = MODEL_NAMES.index(model_name)
    rng = np.random.default_rng(np.random.SeedSequence([seed, model_index, day]))
    date = start + dt.timedelta(days=day)
    n = max(1, int(rng.poisson(day_volume(requests, date, traffic.volume))))
    ts = _timestamps(rng, n, date)
    request_id = np.strings.mod(f"{traffic.code}-{date:%Y%m%d}-%06d", np.arange(n))
    f = traffic.features(rng, n, ts, active)
    truth = traffic.truth(rng, f, active)
    predicted = traffic.predict(rng, f, truth, active)
    rows = _task_rows(rng, traffic, predicted)
    rows["late"] = rng.random(len(rows["request"])) < LATE_SHARE
    outcome = traffic.outcome_value(rng, truth, predicted[next(iter(traffic.versions))])
    label = np.asarray(traffic.classes, dtype=object)[truth] if traffic.classes else truth
    labels, outcomes = _task_arrivals(rng, traffic, request_id, ts, label, outcome)
    if DIRTY_ROWS in active:
        # Own generator: the rest of the day draws the same numbers with or without this incident.
        dirty_rng = np.random.default_rng(np.random.SeedSequence([seed, model_index, day, 1]))
        rows = _add_task_dirty_rows(dirty_rng, traffic, rows)
        broken = dirty_rng.choice(
            labels.num_rows, size=min(TASK_DIRTY_LABELS, labels.num_rows), replace=False
        )
        values = labels.column("label").to_numpy(zero_copy_only=False).copy()
        values[broken] = UNKNOWN_LABEL_CLASS if traffic.classes else np.nan
        labels = labels.set_column(1, "label", pa.array(values, labels.schema.field("label").type))
    predictions = _task_prediction_table(traffic, rows, request_id, ts, f)
    return DayTraffic(
        predictions=predictions, late=rows["late"] & ~rows["dirty"], labels=labels, outcomes=outcomes
    )


def to_scores_map(table: pa.Table, classes: Iterable[str]) -> pa.Table:
    """The same log with the `score__<class>` columns folded into one `scores` MAP<string, double>
    column (the contract's other form); error rows get a null map."""
    classes = list(classes)
    names = [f"score__{c}" for c in classes]
    proba = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names]).astype(float)
    valid = table.column("status").to_numpy(zero_copy_only=False) == "ok"
    valid &= ~np.isnan(proba).any(axis=1)
    k = len(classes)
    lengths = np.where(valid, k, 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    keys = np.tile(np.asarray(classes, dtype=object), int(valid.sum()))
    scores = pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(keys, pa.string()),
        pa.array(proba[valid].ravel(), pa.float64()),
        mask=pa.array(~valid),
    )
    at = table.column_names.index(names[0])
    out = table.drop_columns(names)
    return out.add_column(at, pa.field("scores", pa.map_(pa.string(), pa.float64())), scores)


# --------------------------------------------------------------------------- writing


def partition_path(out_dir: Path, model_name: str, kind: str, date: dt.date) -> Path:
    """`<out>/incoming/<model>/<kind>/date=YYYY-MM-DD/part-0.parquet` (contract §1)."""
    return out_dir / "incoming" / model_name / kind / f"date={date.isoformat()}" / "part-0.parquet"


def _write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _write_by_arrival(
    tables: list[pa.Table],
    ts_column: str,
    out_dir: Path,
    model_name: str,
    kind: str,
    start: dt.date,
    days: int,
) -> tuple[list[Path], int]:
    """Partition rows by the UTC day of `ts_column`; rows arriving after the last day are not written."""
    table = pa.concat_tables(tables)
    ts = table.column(ts_column).cast(pa.int64()).to_numpy()
    day = ts // US_PER_DAY - (start - EPOCH).days
    keep = np.flatnonzero(day < days)
    order = keep[np.argsort(ts[keep], kind="stable")]
    table, day = table.take(order), day[order]
    bounds = np.searchsorted(day, np.arange(days + 1))
    files = []
    for d in range(days):
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        if hi > lo:
            path = partition_path(out_dir, model_name, kind, start + dt.timedelta(days=d))
            files.append(_write(table.slice(lo, hi - lo), path))
    return files, table.num_rows


def simulate(
    out_dir: Path,
    days: int = DEFAULT_DAYS,
    requests: int = DEFAULT_REQUESTS,
    seed: int = DEFAULT_SEED,
    start: dt.date = DEFAULT_START,
    models: Iterable[str] | None = None,
    reference_days: int = REFERENCE_DAYS,
) -> SimulationSummary:
    """Write `days` days of demo traffic for the demo models under `out_dir/incoming`.

    `models` picks some of MODEL_NAMES (default: all four). Every demo model's old
    `incoming/<model>` directory is deleted first, so a re-run with the same arguments leaves
    byte-identical files and nothing of an earlier run. `requests` is credit_default's weekday
    volume (weekends ~30 % lower; churn_propensity gets ~40 % of it, delivery_time ~50 %,
    ticket_routing ~25 %). About 0.5 % of each day's prediction rows are written into the next
    day's folder with their original ts (not on the last day: there is no next folder yet). Labels
    and outcomes are partitioned by the day they arrive; those arriving after the last day have not
    arrived yet and are not written. `reference_days` is the config's reference window (the first
    days, fewer in a shorter run); the task models' incidents follow it (`incidents`).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if requests < 1:
        raise ValueError(f"requests must be at least 1, got {requests}")
    if reference_days < 1:
        raise ValueError(f"reference_days must be at least 1, got {reference_days}")
    chosen = tuple(MODEL_NAMES if models is None else dict.fromkeys(models))
    unknown = [m for m in chosen if m not in MODEL_NAMES]
    if unknown or not chosen:
        raise ValueError(f"models must be some of {list(MODEL_NAMES)}, got {list(chosen)}")
    out_dir = Path(out_dir)
    files: list[Path] = []
    rows: dict[str, dict[str, int]] = {}
    for model_name in MODEL_NAMES:
        shutil.rmtree(out_dir / "incoming" / model_name, ignore_errors=True)
    for model_name in (m for m in MODEL_NAMES if m in chosen):
        carried: pa.Table | None = None  # yesterday's late rows
        labels, outcomes = [], []
        n_predictions = 0
        for d in range(days):
            traffic = simulate_day(model_name, d, requests, seed, start, reference_days=reference_days)
            late = traffic.late if d < days - 1 else np.zeros_like(traffic.late)
            own = traffic.predictions.filter(pa.array(~late))
            table = own if carried is None else pa.concat_tables([own, carried])
            carried = traffic.predictions.filter(pa.array(late))
            date = start + dt.timedelta(days=d)
            if model_name == MULTICLASS_MODEL and d == _map_day(reference_days):
                table = to_scores_map(table, TASK_MODELS[model_name].classes)
            files.append(_write(table, partition_path(out_dir, model_name, "predictions", date)))
            n_predictions += table.num_rows
            labels.append(traffic.labels)
            outcomes.append(traffic.outcomes)
        label_files, n_labels = _write_by_arrival(
            labels, "label_ts", out_dir, model_name, "labels", start, days
        )
        outcome_files, n_outcomes = _write_by_arrival(
            outcomes, "ts", out_dir, model_name, "outcomes", start, days
        )
        files += label_files + outcome_files
        rows[model_name] = {"predictions": n_predictions, "labels": n_labels, "outcomes": n_outcomes}
    summary = SimulationSummary(
        out_dir=out_dir,
        start=start,
        days=days,
        requests=requests,
        seed=seed,
        files=tuple(files),
        rows=rows,
        incidents=incidents(days, reference_days, chosen),
        config_path=write_demo_config(out_dir, start, days, chosen, reference_days),
        reference_days=reference_days,
    )
    _write_manifest(summary)
    return summary


def default_end(today: dt.date | None = None) -> dt.date:
    """Yesterday (UTC): the last whole day, so the demo's freshness, partitions and schedule are about now."""
    return (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=1)


# The task models' config blocks, appended to the packaged template (which describes the binary models
# and which the tests load as the two-model config). Same layout; the reference dates are moved below.
TASK_MODELS_CONFIG = """\
  - name: delivery_time
    task: regression
    features:
      numeric: [distance_km, items, hour, courier_load]
      categorical: [region, vehicle]
    segments: [region]
    label_delay_days: 2
    reference:
      start: 2026-06-01
      end: 2026-06-28
    outcomes: [late_delivery]
    owner: logistics-ml
    thresholds: {}
  - name: ticket_routing
    task: multiclass_classification
    classes: [billing, technical, account, shipping]
    features:
      numeric: [message_words, attachments, account_age_days]
      categorical: [channel, language]
    segments: [language, channel]
    label_delay_days: 3
    reference:
      start: 2026-06-01
      end: 2026-06-28
    outcomes: [reassigned]
    owner: support-ml
    thresholds: {}
"""
_MODEL_BLOCK = re.compile(r"^  - name: (\S+)\n(?:(?!  - name: |\S).*\n|\n)*", re.MULTILINE)


def demo_config_text(
    start: dt.date,
    days: int = DEFAULT_DAYS,
    models: Iterable[str] | None = None,
    reference_days: int = REFERENCE_DAYS,
) -> str:
    """The demo config for a run: the packaged template plus the task models' blocks, only the models
    simulated, with every reference window moved to the first `reference_days` simulated days (fewer in
    a shorter run). Only the reference dates and the model list differ from what is shipped, so
    comments and layout stay as they are."""
    chosen = set(MODEL_NAMES if models is None else models)
    end = start + dt.timedelta(days=min(reference_days, days) - 1)
    text = DEMO_CONFIG_TEMPLATE.read_text()
    head, sep, tail = text.partition("\nalerting:")
    if not sep:
        raise ValueError(f"{DEMO_CONFIG_TEMPLATE}: no top-level `alerting:` after the models")
    head = head.rstrip("\n") + "\n" + TASK_MODELS_CONFIG.rstrip("\n")
    head = _MODEL_BLOCK.sub(lambda m: m.group(0) if m.group(1) in chosen else "", head + "\n")
    text = head.rstrip("\n") + sep + tail
    text = text.replace("Demo config: two models", f"Demo config: {len(chosen)} model(s)", 1)
    pattern = re.compile(r"^(\s+reference:\s*\n\s+start:\s*)\S+(\s*\n\s+end:\s*)\S+", re.MULTILINE)
    text, count = pattern.subn(
        lambda m: f"{m.group(1)}{start.isoformat()}{m.group(2)}{end.isoformat()}", text
    )
    if count == 0:
        raise ValueError(f"{DEMO_CONFIG_TEMPLATE}: no `reference: start/end` block to move")
    return text


def write_demo_config(
    out_dir: Path,
    start: dt.date,
    days: int = DEFAULT_DAYS,
    models: Iterable[str] | None = None,
    reference_days: int = REFERENCE_DAYS,
) -> Path:
    """`<out>/demo_config.yaml`: `demo_config_text` for the models and dates simulated."""
    path = Path(out_dir) / DEMO_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(demo_config_text(start, days, models, reference_days))
    return path


def _write_manifest(summary: SimulationSummary) -> Path:
    """`<out>/simulation.json`: the simulated range and incidents, read by `demo` to run exactly that range."""
    payload = {
        "start": summary.start.isoformat(),
        "end": summary.end.isoformat(),
        "days": summary.days,
        "requests": summary.requests,
        "seed": summary.seed,
        "models": list(summary.rows),
        "reference_days": summary.reference_days,
        "config": summary.config_path.name if summary.config_path else None,
        "incidents": [
            {"model_name": i.model_name, "kind": i.kind, "first": a.isoformat(), "last": b.isoformat()}
            for i in summary.incidents
            for a, b in [i.dates(summary.start)]
        ],
    }
    path = summary.out_dir / MANIFEST_NAME
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_manifest(out_dir: Path) -> dict | None:
    """The last simulation written under `out_dir`, or None when there is none (or it is unreadable)."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        payload = json.loads(path.read_text())
        payload["start"] = dt.date.fromisoformat(payload["start"])
        payload["end"] = dt.date.fromisoformat(payload["end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return payload


# --------------------------------------------------------------------------- live (intraday demo)

LIVE_CLOCK_NAME = (
    "live_clock.json"  # the accelerated clock the Dagster sensors read (defs.intraday.clock_now)
)
LIVE_PREFIX = "part-live-"  # the small files of a live day: part-live-HHMM.parquet
LIVE_ERROR_SPIKE = (dt.time(10, 0), dt.timedelta(minutes=30))  # every champion request fails
LIVE_NULL_SPIKE = (dt.time(14, 0), dt.timedelta(minutes=15), "income")  # the feature pipeline drops income


@dataclass(frozen=True)
class LiveDay:
    """What `simulate_live` wrote: the day, its small files, and the incidents it injected."""

    day: dt.date
    files: tuple[Path, ...]
    rows: int
    incidents: tuple[str, ...]

    def describe(self) -> str:
        lines = [f"live day {self.day}: {self.rows} prediction rows in {len(self.files)} small files"]
        lines += [f"  incident: {text}" for text in self.incidents]
        return "\n".join(lines)


def live_table(
    model_name: str, day: dt.date, start: dt.date, requests: int = DEFAULT_REQUESTS, seed: int = DEFAULT_SEED
) -> tuple[pa.Table, tuple[str, ...]]:
    """The live day's prediction log (the simulated day `day` of a run from `start`, without its planned
    incidents) with the live incidents: an error spike at 10:00 and, for credit_default, a null spike of
    income at 14:00 (what the intraday watch must alert within minutes, docs/demo.md)."""
    table = simulate_day(model_name, (day - start).days, requests, seed, start, inject=()).predictions
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    base = (day - EPOCH).days * US_PER_DAY

    def during(at: dt.time, length: dt.timedelta) -> np.ndarray:
        lo = base + (at.hour * 3600 + at.minute * 60) * 1_000_000
        return (ts >= lo) & (ts < lo + int(length.total_seconds() * 1_000_000))

    at, length = LIVE_ERROR_SPIKE
    failed = during(at, length) & (table.column("role").to_numpy(zero_copy_only=False) == "champion")
    columns = {name: table.column(name) for name in table.column_names}
    columns["status"] = pa.array(
        np.where(failed, "error", table.column("status").to_numpy(zero_copy_only=False))
    )
    for name in ("score", "prediction"):
        values = table.column(name).combine_chunks()
        columns[name] = pa.array(
            values.to_numpy(zero_copy_only=False),
            values.type,
            mask=failed | ~values.is_valid().to_numpy(zero_copy_only=False),
        )
    incidents = [
        f"{model_name}: every champion request fails {at:%H:%M}-{(dt.datetime.combine(day, at) + length):%H:%M} UTC"
    ]
    null_at, null_length, feature = LIVE_NULL_SPIKE
    if feature in columns:
        broken = during(null_at, null_length)
        values = columns[feature].combine_chunks()
        columns[feature] = pa.array(
            values.to_numpy(zero_copy_only=False),
            values.type,
            mask=broken | ~values.is_valid().to_numpy(zero_copy_only=False),
        )
        incidents.append(
            f"{model_name}: {feature} is null {null_at:%H:%M}-{(dt.datetime.combine(day, null_at) + null_length):%H:%M} UTC"
        )
    out = pa.Table.from_arrays([columns[n] for n in table.column_names], schema=table.schema)
    return out, tuple(incidents)


def simulate_live(
    out_dir: Path,
    day: dt.date,
    start: dt.date,
    models: Iterable[str] = ("credit_default",),
    speed: float = 60.0,
    step_minutes: int = 5,
    from_time: dt.time = dt.time(0, 0),
    requests: int = DEFAULT_REQUESTS,
    seed: int = DEFAULT_SEED,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> LiveDay:
    """Play `day` in accelerated time: every `step_minutes` of simulated time (`speed` times faster than
    real time), the rows logged in that slice land as one small Parquet file in the day's folder, as a
    serving fleet would flush its log. `<out>/live_clock.json` tells the Dagster sensors the simulated
    time while it runs (and is removed at the end), so the intraday watch looks at the day as it grows.
    Re-running rewrites the same files (earlier live files of the day are removed first)."""
    if speed <= 0 or step_minutes < 1:
        raise ValueError("speed must be > 0 and step_minutes >= 1")
    models = list(models)
    not_binary = [m for m in models if m not in MODELS]
    if not_binary:  # the intraday watch is for binary models (docs/intraday.md)
        raise ValueError(f"--live plays the binary demo models {list(MODELS)}, not {not_binary}")
    out_dir = Path(out_dir)
    tables = {m: live_table(m, day, start, requests, seed) for m in models}
    for model_name in tables:
        folder = partition_path(out_dir, model_name, "predictions", day).parent
        for old in folder.glob(f"{LIVE_PREFIX}*.parquet") if folder.is_dir() else ():
            old.unlink()
    sim_start = dt.datetime.combine(day, from_time, tzinfo=dt.UTC)
    clock = out_dir / LIVE_CLOCK_NAME
    real_start = wall()
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    # `sim_end`: a clock left behind by a killed process stops counting once its day is over
    stamp = {"real_start": real_start, "sim_start": sim_start, "sim_end": day_end}
    clock.write_text(json.dumps({k: v.isoformat() for k, v in stamp.items()} | {"speed": speed}))
    files: list[Path] = []
    rows = 0
    step = dt.timedelta(minutes=step_minutes)
    try:
        lo = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        while lo < day_end:
            hi = min(lo + step, day_end)
            if hi > sim_start:  # what was logged before the clock starts is written at once
                due = real_start + (hi - sim_start) / speed
                wait = (due - wall()).total_seconds()
                if wait > 0:
                    sleep(wait)
            for model_name, (table, _) in tables.items():
                ts = table.column("ts").cast(pa.int64()).to_numpy()
                lo_us = int(lo.timestamp() * 1_000_000)
                hi_us = int(hi.timestamp() * 1_000_000)
                part = table.filter(pa.array((ts >= lo_us) & (ts < hi_us)))
                if part.num_rows:
                    path = partition_path(out_dir, model_name, "predictions", day).with_name(
                        f"{LIVE_PREFIX}{lo:%H%M}.parquet"
                    )
                    files.append(_write(part, path))
                    rows += part.num_rows
            lo = hi
    finally:
        clock.unlink(missing_ok=True)
    return LiveDay(day, tuple(files), rows, tuple(i for _, (_, incs) in tables.items() for i in incs))
