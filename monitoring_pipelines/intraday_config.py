"""Config of the intraday watch and of the monitoring-gap alerts (docs/configuration.md).

Kept apart from config.py so the intraday feature's knobs live beside each other; `ModelConfig`
includes them as `intraday` and `gaps`. Why each default is what it is: docs/intraday.md.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The accelerated clock `simulate --live` writes under the data directory while it plays a day; the
# sensors read it (intraday_service.clock_now) so the demo's looks follow the simulated day.
LIVE_CLOCK_FILE = "live_clock.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntradayConfig(_Strict):
    """Opt-in per model: looks at the current UTC day so far every `every_minutes`.

    Every look judges two windows: the day so far and the last `window_minutes` (a spike that starts
    late in the day is diluted in the day so far but not in the recent window). A look's statistical
    tests run at `alpha` / (2 × the day's planned looks), Bonferroni over every look and both windows,
    so the chance that one test raises anything on a quiet day stays at most `alpha` however often it
    looks (docs/intraday.md).
    """

    every_minutes: int = Field(15, ge=1, le=720)
    window_minutes: int = Field(60, ge=5, le=1440)
    # day-level false-alarm budget of one test (one check on one subject), split over the day's looks
    alpha: float = Field(0.01, gt=0, lt=1)
    # rows a window needs before a rate (error, null, out-of-range, unseen) or a distribution is judged
    min_n: int = Field(50, ge=1)
    # drift of the inputs and of the score needs more rows than a rate: an effect size on a sample is biased
    drift_min_n: int = Field(500, ge=1)
    # request volume of the day so far against the reference at this time of day: lower or higher by
    # this share is a warning; lower by `volume_drop_critical` is critical (the traffic has nearly stopped)
    volume_change: float = Field(0.5, gt=0, lt=10)
    volume_drop_critical: float = Field(0.9, gt=0, le=1)
    # expected requests by now below this: volume is not judged yet (the small hours of a quiet model)
    volume_min_expected: float = Field(100.0, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntradayConfig:
        if self.volume_drop_critical < min(self.volume_change, 1.0):
            raise ValueError("volume_drop_critical must be >= volume_change (a drop beyond the warning)")
        return self

    @property
    def looks_per_day(self) -> int:
        """The planned looks of a day: what the false-alarm budget is divided by."""
        return max(1, -(-1440 // self.every_minutes))


class GapsConfig(_Strict):
    """Alerts for monitoring gaps: no prediction rows, no labels, no nightly run."""

    enabled: bool = True
    # no prediction row for this many hours, while the reference had traffic in every one of those hours
    no_data_hours: float = Field(2.0, gt=0, le=48)
    # a reference hour "had traffic" when its mean over the reference days is at least this many rows
    min_reference_rows_per_hour: float = Field(1.0, gt=0)
    # labels: none arrived for this many days past label_delay_days -> alert; label checks are blind
    label_gap_days: int = Field(2, ge=1, le=365)
    # the nightly run of day D is due by this hour (UTC) of D + 1 (schedule 02:15 plus its usual run time)
    nightly_due_hour: float = Field(6.0, ge=0, lt=24)
    # how many past days the nightly-run check looks back over
    nightly_lookback_days: int = Field(3, ge=1, le=60)
