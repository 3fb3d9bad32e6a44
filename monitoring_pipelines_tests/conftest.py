"""Shared fixtures: a small config written to a temp dir, a warehouse, and synthetic prediction days."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "monitoring_pipelines" / "demo_config.yaml"  # fixed dates
# Definitions loaded without a config of their own read the packaged demo config (2026-06-01 ..), not
# data/demo_config.yaml, which only `make demo` writes (with the dates it simulated) and which the Makefile
# names in MONITORING_CONFIG: the tests must not depend on what a demo left behind, or on its absence.
os.environ["MONITORING_CONFIG"] = str(DEMO_CONFIG)


@pytest.fixture
def config_dict(tmp_path: Path) -> dict:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data_dir"] = str(tmp_path / "data")
    raw["warehouse"] = str(tmp_path / "data" / "warehouse.duckdb")
    return raw


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict], Path]:
    def write(raw: dict) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw, default_flow_style=False, sort_keys=False))
        return path

    return write


def synthetic_day(
    day: dt.date, n: int = 1000, seed: int = 0, model_name: str = "credit_default", hour: int = 12
) -> pd.DataFrame:
    """Valid champion rows of the demo credit_default schema, all on `day` (UTC)."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    if hour is not None and n:
        ts = ts.where(rng.random(n) < 0.99, pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=hour))
    score = rng.random(n)
    return pd.DataFrame(
        {
            "prediction_id": [f"{day:%Y%m%d}-{seed}-{i}" for i in range(n)],
            "request_id": [f"r{day:%Y%m%d}-{seed}-{i}" for i in range(n)],
            "model_name": model_name,
            "model_version": "v3",
            "role": "champion",
            "ts": ts,
            "score": score,
            "prediction": (score >= 0.5).astype(int),
            "latency_ms": rng.gamma(4, 10, n),
            "status": "ok",
            "income": rng.lognormal(10.8, 0.4, n),
            "debt_ratio": rng.beta(2, 5, n),
            "utilization": rng.beta(2, 3, n),
            "age": rng.integers(18, 90, n).astype(float),
            "num_accounts": rng.poisson(3, n).astype(float),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "product": rng.choice(["card", "loan"], n),
            "age_band": rng.choice(["18-25", "26-40", "41-64", "65+"], n),
            "sex": rng.choice(["F", "M"], n),
        }
    )


def write_parquet(
    data_dir: Path,
    model: str,
    folder_day: dt.date,
    frame: pd.DataFrame,
    kind: str = "predictions",
    name: str = "part-0.parquet",
) -> Path:
    folder = data_dir / "incoming" / model / kind / f"date={folder_day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_parquet(path, index=False)
    return path
