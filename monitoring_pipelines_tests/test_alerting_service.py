"""A person's action (ack, resolve, item status) and the pipeline's alerting steps at the same time: neither
undoes the other (issue #17). The CLI runs in this process, between the step's read and its write."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitoring_pipelines import alerting_service as svc
from monitoring_pipelines.cli import main
from monitoring_pipelines.config import MonitoringConfig, load_config
from monitoring_pipelines.core import alerts as core_alerts
from monitoring_pipelines.core import backlog as core_backlog
from monitoring_pipelines.core.alerts import records
from monitoring_pipelines.storage.warehouse import Warehouse

MODEL = "credit_default"
START = dt.date(2026, 6, 1)


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


@pytest.fixture
def config_path(config_dict: dict, write_config: Callable[[dict], Path], tmp_path: Path, monkeypatch) -> Path:
    config_dict["alerting"] = {"routes": {"critical": ["webhook"], "warning": ["webhook"], "info": []}}
    path = write_config(config_dict)
    # main() exports DAGSTER_HOME and MONITORING_CONFIG; monkeypatch restores both afterwards.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("MONITORING_CONFIG", str(path))
    return path


@pytest.fixture
def config(config_path: Path) -> MonitoringConfig:
    return load_config(config_path)


@pytest.fixture
def warehouse(config: MonitoringConfig) -> Warehouse:
    return Warehouse(config.warehouse)


def write_checks(warehouse: Warehouse, n: int, severity: str = "critical") -> None:
    """The drift check of day n found `severity` drift on income (what the drift asset would write)."""
    finding = {
        "check_name": "feature_drift",
        "severity": severity,
        "metric": "psi",
        "subject": "income",
        "value": 0.4,
        "threshold": 0.25,
        "message": "PSI of income is 0.4 (> 0.25)",
        "evidence": {"psi": 0.4},
    }
    row = {
        "model_name": MODEL,
        "partition_date": day(n),
        "asset": "drift_scores",
        "check_name": "feature_drift",
        "passed": False,
        "severity": severity,
        "findings": json.dumps([finding]),
        "run_id": f"run-{n}",
        "evaluated_at": pd.Timestamp.now(tz="UTC"),
    }
    warehouse.replace_where(
        "check_results", pd.DataFrame([row]), "model_name = ? AND partition_date = ?", [MODEL, day(n)]
    )


def nightly(warehouse: Warehouse, config: MonitoringConfig, n: int) -> None:
    """What the alerts and backlog_items assets do for day n."""
    svc.refresh_alerts(warehouse, config, MODEL, day(n))
    svc.refresh_backlog(warehouse, config, MODEL)


def the_alert(warehouse: Warehouse) -> dict[str, Any]:
    (alert,) = core_alerts.normalize_alerts(warehouse.table("alerts"))
    return alert


def the_item(warehouse: Warehouse) -> dict[str, Any]:
    (item,) = core_backlog.normalize_items(warehouse.table("backlog_items"))
    return item


def during(monkeypatch, module: Any, name: str, action: Callable[[], None]) -> list[int]:
    """Run `action` once, right after the first call of `module.name` (a step's compute, between its read
    and its write). Returns the list the calls are counted in."""
    calls: list[int] = []
    original = getattr(module, name)

    def patched(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            action()
        return result

    monkeypatch.setattr(module, name, patched)
    return calls


def ack(config_path: Path, alert_id: str) -> None:
    assert main(["--config", str(config_path), "alerts", "ack", alert_id]) == 0


def test_an_ack_during_the_alert_evaluation_is_kept(config_path, config, warehouse, monkeypatch):
    write_checks(warehouse, 1)
    nightly(warehouse, config, 1)
    alert_id = the_alert(warehouse)["alert_id"]
    write_checks(warehouse, 2)  # day 2 changes the alert (streak, last seen), so the step writes it
    during(monkeypatch, core_alerts, "evaluate", lambda: ack(config_path, alert_id))

    result = svc.refresh_alerts(warehouse, config, MODEL, day(2))

    alert = the_alert(warehouse)
    assert alert["status"] == "acknowledged" and alert["acknowledged_at"] is not None
    assert alert["last_seen_date"] == day(2) and alert["consecutive_days"] == 2  # the step's news is there
    assert the_item(warehouse)["status"] == "in_progress"  # the item and its alert agree
    (reported,) = records(result.decision.current)
    assert reported["status"] == "acknowledged"  # what the step reports is what it wrote
    svc.refresh_backlog(warehouse, config, MODEL)
    nightly(warehouse, config, 2)  # and later runs keep both
    assert the_alert(warehouse)["status"] == "acknowledged"
    assert the_item(warehouse)["status"] == "in_progress"


def test_an_evaluation_with_nothing_changed_meanwhile_is_computed_once(config, warehouse, monkeypatch):
    write_checks(warehouse, 1)
    calls = during(monkeypatch, core_alerts, "evaluate", lambda: None)
    svc.refresh_alerts(warehouse, config, MODEL, day(1))
    assert len(calls) == 1


def test_an_ack_right_after_the_alert_write_is_kept(config_path, config, warehouse):
    write_checks(warehouse, 1)
    nightly(warehouse, config, 1)
    ack(config_path, the_alert(warehouse)["alert_id"])
    write_checks(warehouse, 2)
    nightly(warehouse, config, 2)
    assert the_alert(warehouse)["status"] == "acknowledged"
    assert the_item(warehouse)["status"] == "in_progress"


def test_an_evaluation_during_an_ack_neither_loses_the_ack_nor_is_lost(config, warehouse, monkeypatch):
    """The step runs (in another thread, as another process would) while the ack is between its read and
    its write: the step waits for the ack, then keeps it; the ack does not overwrite the step's news."""
    write_checks(warehouse, 1)
    nightly(warehouse, config, 1)
    alert_id = the_alert(warehouse)["alert_id"]
    write_checks(warehouse, 2)
    step = threading.Thread(target=nightly, args=(Warehouse(config.warehouse), config, 2))

    def evaluation_meanwhile() -> None:
        step.start()
        step.join(3)  # the old code: done at once; now: waits for the ack's lock

    during(monkeypatch, core_alerts, "acknowledge", evaluation_meanwhile)
    svc.set_alert_status(config, alert_id, "acknowledged")
    step.join(60)
    assert not step.is_alive()
    alert = the_alert(warehouse)
    assert alert["status"] == "acknowledged"
    assert alert["last_seen_date"] == day(2) and alert["consecutive_days"] == 2
    assert the_item(warehouse)["status"] == "in_progress"


def test_an_item_resolved_during_the_backlog_step_stays_resolved(config_path, config, warehouse, monkeypatch):
    write_checks(warehouse, 1)
    nightly(warehouse, config, 1)
    item_id = the_item(warehouse)["item_id"]
    write_checks(warehouse, 2)
    svc.refresh_alerts(warehouse, config, MODEL, day(2))
    during(
        monkeypatch,
        core_backlog,
        "build_items",
        lambda: main(["--config", str(config_path), "items", "resolve", item_id]),
    )
    svc.refresh_backlog(warehouse, config, MODEL)
    assert the_item(warehouse)["status"] == "resolved"
    assert the_alert(warehouse)["status"] == "resolved"


class Tracker:
    """A tracker whose issue creation takes long enough for a person to act meanwhile."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        self.meanwhile = meanwhile

    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        self.meanwhile()
        return {"number": 7, "html_url": "https://github.com/acme/models/issues/7", "state": "open"}

    def set_state(self, number: int, state: str) -> None:
        raise AssertionError("not called here")


def test_an_item_moved_during_the_tracker_export_keeps_its_status(config_path, config, warehouse):
    write_checks(warehouse, 1)
    nightly(warehouse, config, 1)
    item_id = the_item(warehouse)["item_id"]
    tracker = Tracker(lambda: svc.set_item_status(config, item_id, "in_progress"))
    assert svc.export_to_tracker(warehouse, tracker, MODEL).created == 1  # type: ignore[arg-type]
    item = the_item(warehouse)
    assert item["status"] == "in_progress"
    assert item["external_ref"] == "https://github.com/acme/models/issues/7"
    assert item["links"]["external"]["number"] == 7


def test_result_files_are_created_without_access_for_others(config, warehouse):
    """backlog.md and kpis.json hold results like the warehouse: 0640 even under umask 000."""
    write_checks(warehouse, 1)
    nightly(warehouse, config, 1)
    previous = os.umask(0)
    try:
        backlog = svc.write_backlog_markdown(warehouse, config)
        _, kpis = svc.compute_kpis(warehouse, config)
    finally:
        os.umask(previous)
    assert {stat.S_IMODE(backlog.stat().st_mode), stat.S_IMODE(kpis.stat().st_mode)} == {0o640}
    assert "income" in backlog.read_text()


def write_incident(warehouse: Warehouse, n: int, subjects: tuple[str, ...]) -> None:
    """Critical drift on several features of day n: alerts that start together, one incident."""
    findings = [
        {
            "check_name": "feature_drift",
            "severity": "critical",
            "metric": "psi",
            "subject": subject,
            "value": 0.6,
            "threshold": 0.25,
            "message": f"PSI of {subject} is 0.6 (> 0.25)",
            "evidence": {},
        }
        for subject in subjects
    ]
    row = {
        "model_name": MODEL,
        "partition_date": day(n),
        "asset": "drift_scores",
        "check_name": "feature_drift",
        "passed": not findings,
        "severity": "critical" if findings else None,
        "findings": json.dumps(findings),
        "run_id": f"run-{n}",
        "evaluated_at": pd.Timestamp.now(tz="UTC"),
    }
    warehouse.replace_where(
        "check_results", pd.DataFrame([row]), "model_name = ? AND partition_date = ?", [MODEL, day(n)]
    )


def test_resolving_an_incident_by_hand_closes_its_page_once_with_its_last_alert(
    config_path, config, warehouse
):
    write_incident(warehouse, 1, ("income", "age"))
    nightly(warehouse, config, 1)
    alerts = core_alerts.normalize_alerts(warehouse.table("alerts"))
    assert len(alerts) == 2 and len({a["incident_id"] for a in alerts}) == 1
    outbox = warehouse.table("notifications")
    assert list(outbox["kind"]) == ["trigger"] and len(outbox["alert_ids"][0]) == 2  # one page for both
    lead = next(a for a in alerts if a["subject"] == "age")  # same severity, start and layer: by dedup key
    other = next(a for a in alerts if a["subject"] == "income")

    assert main(["--config", str(config_path), "alerts", "resolve", other["alert_id"]]) == 0
    assert list(warehouse.table("notifications")["kind"]) == ["trigger"]  # age still fails: page stays open
    assert main(["--config", str(config_path), "alerts", "resolve", lead["alert_id"]]) == 0
    notes = warehouse.table("notifications").sort_values("created_at")
    assert list(notes["kind"]) == ["trigger", "resolve"]
    assert notes["dedup_key"].tolist() == [lead["dedup_key"], lead["dedup_key"]]  # PagerDuty's key
    assert {a["notified_severity"] for a in core_alerts.normalize_alerts(warehouse.table("alerts"))} == {None}
    item = the_item(warehouse)
    assert sorted(item["alert_ids"]) == sorted(a["alert_id"] for a in alerts)
    assert item["status"] == "resolved"


def test_open_alerts_table_shows_the_incident_root_cause(config, warehouse):
    write_incident(warehouse, 1, ("income", "age"))
    nightly(warehouse, config, 1)
    text = svc.alerts_markdown(warehouse.table("alerts"))
    assert text.count("on age: psi 0.6 vs threshold 0.25") == 2  # both rows name the incident
