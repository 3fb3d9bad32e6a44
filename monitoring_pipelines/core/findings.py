"""One shape for what every check finds, so alerts, backlog items and the UI speak the same language."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Finding:
    """One thing a check found wrong (or worth telling) about one subject of a model-day.

    `subject` is what the finding is about: a feature name, `segment=value`, a shadow version, or
    `model` for model-wide findings. Together with the model and check name it forms the alert's
    dedup key, so it must be stable from day to day (no values or dates in it).
    """

    check_name: str
    severity: Severity
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
    at warning or critical level. Info findings (e.g. a promotion recommendation) do not fail it."""

    check_name: str
    findings: list[Finding]
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def passed(self) -> bool:
        return not any(f.severity in ("warning", "critical") for f in self.findings)

    @property
    def severity(self) -> Severity | None:
        if not self.findings:
            return None
        return max(self.findings, key=lambda f: SEVERITY_RANK[f.severity]).severity
