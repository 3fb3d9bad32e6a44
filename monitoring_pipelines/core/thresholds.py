"""Which threshold a drift statistic of a feature is judged against, and which p-values survive.

Thresholds come from ``DriftThresholds`` (model level, ``for_feature`` merges the per-feature
override). With ``adaptive`` on and the statistic's reference-day band known (mean and std of
the statistic over at least ``MIN_ADAPTIVE_DAYS`` reference days, each scored against the whole
reference), the warning threshold becomes ``max(configured, mean + band_k * std)``:
adaptive thresholds only ever *raise* a threshold, for features that move a lot on ordinary
days, never lower it below the configured default. A critical threshold is never below its
warning threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from monitoring_pipelines.config import DriftThresholds

MIN_ADAPTIVE_DAYS = 3  # fewer reference days than this say too little about day-to-day spread

EFFECT_STATISTICS = ("psi", "js", "wasserstein_norm")
QUALITY_STATISTICS = ("null_rate_change", "out_of_range_share", "unseen_share")
TEST_STATISTICS = ("ks", "chi2")

# statistic -> (warning field, critical field) of DriftThresholds / DriftOverride
THRESHOLD_FIELDS: dict[str, tuple[str, str | None]] = {
    "psi": ("psi_warning", "psi_critical"),
    "js": ("js", None),
    "wasserstein_norm": ("wasserstein", None),
    "null_rate_change": ("null_rate_warning", "null_rate_critical"),
    "out_of_range_share": ("out_of_range_warning", "out_of_range_critical"),
    "unseen_share": ("unseen_warning", "unseen_critical"),
}

Source = Literal["default", "override", "adaptive"]


@dataclass(frozen=True)
class ResolvedThreshold:
    """The threshold pair one statistic of one feature is judged against, and where it came from."""

    warning: float
    critical: float  # NaN when the statistic has no critical level of its own
    source: Source
    configured: float  # the warning threshold before the adaptive floor
    adaptive_floor: float  # mean + sigma * std of the reference days, NaN when unknown


def adaptive_threshold(configured: float, mean: float, std: float, sigma: float) -> float:
    """``max(configured, mean + sigma * std)``; the configured value when the band is unknown."""
    if mean is None or std is None or not (np.isfinite(mean) and np.isfinite(std)):
        return float(configured)
    return float(max(configured, mean + sigma * std))


def resolve_threshold(
    thresholds: DriftThresholds,
    feature: str,
    statistic: str,
    band: Mapping[str, float] | None = None,
) -> ResolvedThreshold:
    """Thresholds for ``statistic`` of ``feature``: override merged, adaptive floor applied.

    ``band`` is the statistic's reference-day summary (``mean``, ``std``, ``n_days``) or None.
    Raises KeyError for a statistic without a threshold (the KS/chi-squared rows are judged by
    their BH-adjusted p-value against ``fdr_alpha`` instead).
    """
    warning_field, critical_field = THRESHOLD_FIELDS[statistic]
    merged = thresholds.for_feature(feature)
    override = thresholds.features.get(feature)
    configured = float(getattr(merged, warning_field))
    critical = float(getattr(merged, critical_field)) if critical_field else float("nan")
    overridden = override is not None and getattr(override, warning_field, None) is not None
    source: Source = "override" if overridden else "default"
    floor = float("nan")
    warning = configured
    if merged.adaptive and band is not None and _finite(band) and band["n_days"] >= MIN_ADAPTIVE_DAYS:
        floor = float(band["mean"] + merged.band_k * band["std"])
        warning = adaptive_threshold(configured, band["mean"], band["std"], merged.band_k)
        if warning > configured:
            source = "adaptive"
    if critical_field:
        critical = max(critical, warning)
    return ResolvedThreshold(warning, critical, source, configured, floor)


def threshold_table(
    thresholds: DriftThresholds,
    features: Iterable[str],
    variability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every (feature, statistic) threshold of a model, one row each.

    Columns: feature, statistic, threshold, threshold_critical, threshold_source, configured,
    adaptive_floor, enabled. ``variability`` has columns feature, statistic, mean, std, n_days.
    """
    bands = variability_bands(variability)
    rows = []
    for feature in features:
        for statistic in THRESHOLD_FIELDS:
            r = resolve_threshold(thresholds, feature, statistic, bands.get((feature, statistic)))
            rows.append(
                {
                    "feature": feature,
                    "statistic": statistic,
                    "threshold": r.warning,
                    "threshold_critical": r.critical,
                    "threshold_source": r.source,
                    "configured": r.configured,
                    "adaptive_floor": r.adaptive_floor,
                    "enabled": thresholds.feature_enabled(feature),
                }
            )
    return pd.DataFrame(rows)


def benjamini_hochberg(p_values: Iterable[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``, 'bh').

    NaN entries are left out of the family and stay NaN. A feature is significant at false
    discovery rate alpha when its adjusted p-value is <= alpha.
    """
    p = np.asarray(list(p_values), dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def variability_bands(variability: pd.DataFrame | None) -> dict[tuple[str, str], dict[str, float]]:
    """Reference-day bands keyed by (feature, statistic), from rows feature, statistic, mean, std, n_days."""
    if variability is None or variability.empty:
        return {}
    return {
        (rec["feature"], rec["statistic"]): {"mean": rec["mean"], "std": rec["std"], "n_days": rec["n_days"]}
        for rec in variability.to_dict("records")
    }


def _finite(band: Mapping[str, float]) -> bool:
    values = [band.get("mean"), band.get("std"), band.get("n_days")]
    return all(v is not None and bool(np.isfinite(v)) for v in values)
