"""Simulated traffic for the intraday tests: a reference, quiet days and days with an incident at a clock time."""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
import pandas as pd

from monitoring_pipelines.config import AlertingConfig, ModelConfig, load_config
from monitoring_pipelines.core import intraday as core
from monitoring_pipelines.core.drift import fit_reference_profile
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines.intraday_config import IntradayConfig
from monitoring_pipelines.simulate import simulate_day
from monitoring_pipelines_tests.conftest import DEMO_CONFIG

START = dt.date(2026, 6, 1)  # a Monday
REQUESTS = 2000  # credit_default's weekday requests: ~80 an hour at 10:00
REFERENCE_DAYS = 14
MODEL = "credit_default"
ALERTING = AlertingConfig(routes={"critical": ["webhook"], "warning": ["webhook"], "info": []})


def model_config(**intraday: object) -> ModelConfig:
    model = load_config(DEMO_CONFIG).model(MODEL)
    return model.model_copy(update={"intraday": IntradayConfig(**intraday)})


def day_of(k: int) -> dt.date:
    return START + dt.timedelta(days=k)


def at(k: int, hour: int, minute: int = 0) -> pd.Timestamp:
    return pd.Timestamp(day_of(k), tz="UTC") + pd.Timedelta(hours=hour, minutes=minute)


def sim_day(k: int, requests: int = REQUESTS) -> pd.DataFrame:
    """Day k of the demo traffic without its planned incidents, as the prediction log has it."""
    return simulate_day(MODEL, k, requests, 7, START, inject=()).predictions.to_pandas()


@cache
def reference() -> tuple[ReferenceProfile, core.HourlyTraffic]:
    """The profile and hourly traffic of the first REFERENCE_DAYS quiet days."""
    frame = pd.concat([sim_day(k) for k in range(REFERENCE_DAYS)], ignore_index=True)
    frame["partition_date"] = frame["ts"].dt.date
    ok = frame[(frame["role"] == "champion") & (frame["status"] == "ok")]
    profile = fit_reference_profile(ok, model_config(), (START, day_of(REFERENCE_DAYS - 1)))
    champion = frame[frame["role"] == "champion"]
    counts = (
        champion.assign(day=champion["ts"].dt.date, hour=champion["ts"].dt.hour)
        .groupby(["day", "hour"])
        .size()
        .rename("n")
        .reset_index()
    )
    return profile, core.hourly_traffic(counts)


def between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    ts = pd.to_datetime(frame["ts"], utc=True)
    return ((ts >= start) & (ts < end)).to_numpy()


def with_errors(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Every request of [start, end) failed: status error, no score, no decision."""
    out = frame.copy()
    hit = between(out, start, end)
    out.loc[hit, "status"] = "error"
    out.loc[hit, "score"] = np.nan
    out["prediction"] = out["prediction"].astype("Int64")
    out.loc[hit, "prediction"] = pd.NA
    return out


def with_nulls(frame: pd.DataFrame, column: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The feature pipeline broke for [start, end): `column` is null."""
    out = frame.copy()
    out.loc[between(out, start, end), column] = np.nan
    return out


def looks(frame: pd.DataFrame, model: ModelConfig, k: int, clocks: list[pd.Timestamp]) -> list[core.Look]:
    """The looks of day k at these clocks, each knowing the previous one's clock."""
    profile, traffic = reference()
    out, since = [], None
    for clock in clocks:
        out.append(core.look(frame, model, profile, traffic, day_of(k), clock, since=since))
        since = clock
    return out


def look_rows(found: list[core.Look]) -> pd.DataFrame:
    return pd.concat(
        [lk.rows(run_id=f"run-{i}", now=lk.look_at) for i, lk in enumerate(found)], ignore_index=True
    )
