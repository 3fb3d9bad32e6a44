"""One shape for what every check finds, so alerts, backlog items and the UI speak the same language."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
# Two more kinds of entry a check may report besides what it found wrong. Neither fails the check:
UNKNOWN = "unknown"  # the subject could not be judged (too few rows or labels): an open alert stays open
OK = "ok"  # the subject was judged and is fine, with its value and threshold: lets alerting apply hysteresis
Entry = Literal["critical", "warning", "info", "unknown", "ok"]
CheckStatus = Literal["passed", "failed", "unknown"]


@dataclass(frozen=True)
class Finding:
    """One thing a check found wrong (or worth telling) about one subject of a model-day.

    `subject` is what the finding is about: a feature name, `segment=value`, a shadow version, or
    `model` for model-wide findings. Together with the model and check name it forms the alert's
    dedup key, so it must be stable from day to day (no values or dates in it).

    `severity` is `critical`, `warning` or `info`; or `unknown` (the subject could not be judged: build
    it with `not_enough_data`) or `ok` (judged and fine: `observed`). Alerting keeps an open alert open
    on an unknown day, and resolves it only when an `ok` value is back inside the threshold by a margin.
    """

    check_name: str
    severity: Entry
    metric: str
    subject: str
    value: float | None
    threshold: float | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


def not_enough_data(
    check_name: str, subject: str, metric: str, n: int, needed: int, what: str = "rows"
) -> Finding:
    """The subject could not be judged today: `n` `what` (rows, labelled rows...) where `needed` are."""
    return Finding(
        check_name,
        UNKNOWN,
        metric,
        subject,
        float(n),
        float(needed),
        not_enough_data_text(n, needed, what),
        {"n": int(n), "needed": int(needed), "what": what},
    )


def not_enough_data_text(n: int | str, needed: int | str, what: str = "rows") -> str:
    return f"not enough data: n={n} {what}, needs {needed}"


def observed(
    check_name: str, subject: str, metric: str, value: float, threshold: float, **evidence: Any
) -> Finding:
    """The subject was judged and passed: its value and the threshold it was held to."""
    return Finding(check_name, OK, metric, subject, value, threshold, "", dict(evidence))


@dataclass(frozen=True)
class CheckSpec:
    """A check as the module that decides it declares it: its name, the worst severity it raises, and a
    description built from the config's defaults. The Dagster layer turns these into AssetCheckSpecs;
    nothing else restates them."""

    name: str
    severity: Severity
    description: str
    blocking: bool = False


@dataclass(frozen=True)
class CheckResult:
    """The result of one check on one model-day; `passed` is False exactly when findings exist
    at warning or critical level. Info findings (e.g. a promotion recommendation) do not fail it.

    `status` adds what `passed` cannot say: `unknown` when the check judged nothing, because it says so
    (`unknown`: the reason, "not enough data: n=…, needs …") or its metadata reports that it judged no
    subject (`evaluated: 0`) because every one had too few rows (`below_min_n` > 0; `min_n` is the
    need). Unknown is not passed: alerting treats the day as not checked (docs/alerting.md).
    """

    check_name: str
    findings: list[Finding]
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    unknown: str = ""

    @property
    def passed(self) -> bool:
        return not any(f.severity in ("warning", "critical") for f in self.findings)

    @property
    def severity(self) -> Severity | None:
        ranked = [f for f in self.findings if f.severity in SEVERITY_RANK]
        if not ranked:
            return None
        return max(ranked, key=lambda f: SEVERITY_RANK[f.severity]).severity  # type: ignore[return-value]

    @property
    def status(self) -> CheckStatus:
        if not self.passed:
            return "failed"
        return "unknown" if self.unknown_reason else "passed"

    @property
    def unknown_reason(self) -> str:
        """Why the check could not judge the day ('' when it could)."""
        if self.unknown:
            return self.unknown
        small = self.metadata.get("below_min_n")
        if self.metadata.get("evaluated") == 0 and small:
            needed = self.metadata.get("min_n")
            needs = f"{needed} rows per subject" if needed else "more rows per subject"
            return f"not enough data: n=0 subjects judged ({small} below min_n), needs {needs}"
        return ""

    @property
    def unknown_subjects(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == UNKNOWN]
