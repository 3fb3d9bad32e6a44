"""Config of the intraday watch and of the monitoring-gap alerts (docs/configuration.md).

Kept apart from config.py so the intraday feature's knobs live beside each other; `ModelConfig`
includes them as `intraday` and `gaps`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntradayConfig(_Strict):
    """Opt-in per model: looks at the current UTC day so far every `every_minutes`."""

    every_minutes: int = Field(15, ge=1, le=720)


class GapsConfig(_Strict):
    """Alerts for monitoring gaps: no prediction rows, no labels, no nightly run."""

    enabled: bool = True
