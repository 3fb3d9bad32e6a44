"""Reference bands: how much a daily statistic moves on ordinary days of the reference window."""

from __future__ import annotations

import numpy as np
import pandas as pd

BAND_COLUMNS = ["mean", "std", "n_days"]


def summarize_days(daily: pd.DataFrame, keys: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, sample std (ddof=1) and day count of `value` per key group, NaN values ignored.

    A group seen on a single day gets std NaN: one day says nothing about day-to-day spread,
    and callers fall back to their fixed thresholds.
    """
    if daily.empty:
        return pd.DataFrame(columns=[*keys, *BAND_COLUMNS])
    frame = daily[[*keys, value]].copy()
    frame[value] = pd.to_numeric(frame[value], errors="coerce")
    frame = frame[np.isfinite(frame[value].to_numpy(dtype=float, na_value=np.nan))]
    grouped = frame.groupby(keys, dropna=False, sort=True)[value]
    out = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), n_days="count").reset_index()
    return out


def band_limits(mean: float, std: float, k: float) -> tuple[float, float]:
    """The band mean ± k·std; with no spread known the band collapses to the mean."""
    spread = 0.0 if std is None or not np.isfinite(std) else k * float(std)
    return float(mean) - spread, float(mean) + spread
