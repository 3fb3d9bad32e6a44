"""The alerting assets, sensor and tracker resource run through Dagster on a temp warehouse, and the
service actions the CLI uses (ack, resolve, items)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from dagster import (
    DagsterInstance,
    Definitions,
    EnvVar,
    MultiPartitionKey,
    SkipReason,
    build_sensor_context,
    materialize,
)

from monitoring_pipelines import alerting_service as svc
from monitoring_pipelines.config import load_config
from monitoring_pipelines.core.alerts import records
from monitoring_pipelines.defs import alerting
from monitoring_pipelines.defs.alerting import deliver_notifications
from monitoring_pipelines.defs.partitions import Partitions
from monitoring_pipelines.defs.resources import (
    GitHubTrackerResource,
    MonitoringResource,
    TrackerResource,
    default_resources,
)
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import DEMO_CONFIG
from monitoring_pipelines_tests.receivers import HttpReceiver

MODEL = "credit_default"
START = dt.date(2026, 6, 1)
alerts, backlog_items, monitoring_kpis = alerting.build(Partitions.for_start(START))


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data_dir"] = str(tmp_path / "data")
    raw["warehouse"] = str(tmp_path / "data" / "warehouse.duckdb")
    raw["alerting"] = {"routes": {"critical": ["webhook"], "warning": ["webhook"], "info": []}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def warehouse(config_path: Path) -> Warehouse:
    return Warehouse(load_config(config_path).warehouse)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("models", [MODEL, "churn_propensity"])
        yield inst


def write_checks(warehouse: Warehouse, n: int, findings: dict[str, str]) -> None:
    """The check_results rows the drift asset would write for day n (`findings`: subject -> severity)."""
    found = [
        {
            "check_name": "feature_drift",
            "severity": sev,
            "metric": "psi",
            "subject": subject,
            "value": 0.4,
            "threshold": 0.25,
            "message": f"PSI of {subject} is 0.4 (> 0.25)",
            "evidence": {"psi": 0.4},
        }
        for subject, sev in findings.items()
    ]
    row = pd.DataFrame(
        [
            {
                "model_name": MODEL,
                "partition_date": day(n),
                "asset": "drift_scores",
                "check_name": "feature_drift",
                "passed": not found,
                "severity": found[0]["severity"] if found else None,
                "findings": json.dumps(found),
                "run_id": f"run-{n}",
                "evaluated_at": pd.Timestamp.now(tz="UTC"),
            }
        ]
    )
    warehouse.replace_where(
        "check_results",
        row,
        "model_name = ? AND partition_date = ? AND asset = ?",
        [MODEL, day(n), "drift_scores"],
    )


def run_day(
    n: int,
    config_path: Path,
    instance: DagsterInstance,
    tracker: TrackerResource | None = None,
    assets: list | None = None,
):
    return materialize(
        assets or [alerts, backlog_items],
        partition_key=MultiPartitionKey({"date": day(n).isoformat(), "model": MODEL}),
        resources={
            "monitoring": MonitoringResource(config_path=str(config_path)),
            "tracker": tracker or TrackerResource(),
        },
        instance=instance,
    )


def metadata(result, asset_name: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(asset_name)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


class Recorder(BaseHTTPRequestHandler):
    """A local stand-in for the GitHub REST API (receivers.HttpReceiver does not answer PATCH)."""

    requests: list[dict[str, Any]] = []

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "json": json.loads(body) if body else None,
            }
        )
        number = sum(1 for r in self.requests if r["method"] == "POST")
        reply = {
            "number": number,
            "html_url": f"https://github.example/acme/models/issues/{number}",
            "state": "open",
        }
        data = json.dumps(reply).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PATCH = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler = type("Handler", (Recorder,), {"requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    httpd.shutdown()
    httpd.server_close()


# --------------------------------------------------------------------------- assets


def test_alerts_asset_turns_failed_checks_into_alerts_notifications_and_an_item(
    config_path, warehouse, instance
):
    for n in (1, 2, 3):
        write_checks(warehouse, n, {"income": "critical"} if n >= 2 else {})
        result = run_day(n, config_path, instance)
        assert result.success
    meta = metadata(result, "alerts")
    assert meta["open_critical"] == 1 and meta["new_notifications"] == 0  # the page went out on day 2
    (alert,) = records(warehouse.table("alerts"))
    assert alert["dedup_key"] == "credit_default/drift_scores.feature_drift/income"
    assert alert["severity"] == "critical" and alert["status"] == "open" and alert["run_id"] == "run-3"
    (note,) = records(warehouse.table("notifications"))
    assert note["channel"] == "webhook" and note["kind"] == "trigger" and note["status"] == "pending"
    (item,) = records(warehouse.table("backlog_items"))
    assert list(item["partitions"]) == ["2026-06-02|credit_default", "2026-06-03|credit_default"]
    assert list(item["run_ids"]) == ["run-2", "run-3"] and list(item["asset_keys"]) == ["drift_scores"]
    links = json.loads(item["links"])
    assert links["run"] == "http://127.0.0.1:3000/runs/run-3"
    assert (
        links["asset"]
        == "http://127.0.0.1:3000/assets/drift_scores?view=partitions&partition=2026-06-03%7Ccredit_default"
    )
    backlog_md = (config_path.parent / "data" / "backlog.md").read_text()
    assert item["item_id"] in backlog_md and "2026-06-02 → 2026-06-03" in backlog_md


def test_rematerializing_a_day_changes_nothing(config_path, warehouse, instance):
    for n in (1, 2, 3):
        write_checks(warehouse, n, {"income": "warning"} if n >= 2 else {})
        run_day(n, config_path, instance)
    tables = ("alerts", "notifications", "backlog_items")
    before = {t: warehouse.table(t).sort_index(axis=1) for t in tables}
    for n in (2, 3):
        result = run_day(n, config_path, instance)
        assert metadata(result, "alerts")["alerts_changed"] == 0
        assert metadata(result, "alerts")["new_notifications"] == 0
        assert metadata(result, "backlog_items")["items_changed"] == 0
    for t in tables:
        pd.testing.assert_frame_equal(warehouse.table(t).sort_index(axis=1), before[t])


def test_backlog_items_are_mirrored_to_github_issues(config_path, warehouse, instance, server, monkeypatch):
    url, requests = server
    monkeypatch.setenv("TEST_GITHUB_TOKEN", "s3cret")
    tracker = GitHubTrackerResource(repo="acme/models", token=EnvVar("TEST_GITHUB_TOKEN"), api_url=url)
    write_checks(warehouse, 1, {"income": "critical"})
    result = run_day(1, config_path, instance, tracker=tracker)
    assert metadata(result, "backlog_items")["tracker_created"] == 1
    (post,) = requests
    assert post["method"] == "POST" and post["path"] == "/repos/acme/models/issues"
    assert post["headers"]["Authorization"] == "Bearer s3cret"
    assert (
        post["json"]["title"].startswith("credit_default: feature_drift")
        and "critical" in post["json"]["labels"]
    )
    (item,) = records(warehouse.table("backlog_items"))
    assert item["external_ref"] == "https://github.example/acme/models/issues/1"

    run_day(1, config_path, instance, tracker=tracker)  # nothing new: no second issue
    assert len(requests) == 1
    svc.set_item_status(load_config(config_path), item["item_id"], "resolved")
    result = run_day(1, config_path, instance, tracker=tracker)
    assert metadata(result, "backlog_items")["tracker_closed"] == 1
    assert requests[-1]["method"] == "PATCH" and requests[-1]["path"] == "/repos/acme/models/issues/1"
    assert requests[-1]["json"]["state"] == "closed"


def test_monitoring_kpis_asset_reports_and_writes_kpis_json(config_path, warehouse, instance):
    for n in (1, 2, 3):
        write_checks(warehouse, n, {"income": "warning"} if n >= 2 else {})
        run_day(n, config_path, instance)
    result = materialize(
        [monitoring_kpis],
        resources={"monitoring": MonitoringResource(config_path=str(config_path))},
        instance=instance,
    )
    meta = metadata(result, "monitoring_kpis")
    assert meta["alerts"] == 1 and meta["mean_time_to_detect_days"] == 1.0
    saved = json.loads((config_path.parent / "data" / "kpis.json").read_text())
    assert saved["share_findings_with_backlog_item"] == 1.0 and saved["weekly"][0]["alerts"] == 1


def test_deliver_notifications_sensor_sends_the_outbox_and_launches_nothing(
    config_path, warehouse, instance, monkeypatch
):
    write_checks(warehouse, 1, {"income": "critical"})
    run_day(1, config_path, instance, assets=[alerts])
    resources = {"monitoring": MonitoringResource(config_path=str(config_path))}
    with HttpReceiver() as receiver, build_sensor_context(instance=instance, resources=resources) as context:
        monkeypatch.setenv("MONITORING_WEBHOOK_URL", receiver.url("/hook"))
        outcome = deliver_notifications(context)
        assert isinstance(outcome, SkipReason) and "1 delivered" in outcome.skip_message
        (sent,) = receiver.delivered
        assert deliver_notifications(context).skip_message == (
            "outbox: nothing waiting. This tick: 0 delivered, 0 failed and will retry, 0 given up."
        )
    body = sent.json()
    assert sent.path == "/hook" and body["kind"] == "trigger" and body["severity"] == "critical"
    assert body["dedup_key"] == "credit_default/drift_scores.feature_drift/income"
    assert body["links"]["run"] == "http://127.0.0.1:3000/runs/run-1" and body["value"] == 0.4


def test_the_sensor_tick_fails_saying_what_waits_for_which_channel_setting(
    config_path, warehouse, instance, monkeypatch
):
    """A skipped tick reads "0 runs requested" in the UI; notifications nobody can receive fail the tick,
    whose error the UI shows in red, with the counts and the variable to set."""
    monkeypatch.delenv("MONITORING_WEBHOOK_URL", raising=False)
    write_checks(warehouse, 1, {"income": "critical"})
    result = run_day(1, config_path, instance, assets=[alerts])
    outbox_text = metadata(result, "alerts")["outbox"]
    assert outbox_text.startswith("1 notification due on the next tick")  # queued, not tried yet
    resources = {"monitoring": MonitoringResource(config_path=str(config_path))}
    with (
        build_sensor_context(instance=instance, resources=resources) as context,
        pytest.raises(alerting.NotificationsNotDelivered) as stuck,
    ):
        deliver_notifications(context)
    text = str(stuck.value)
    assert text.startswith("outbox: 1 notification waiting for channel settings since ")
    assert text.endswith(
        "(webhook: MONITORING_WEBHOOK_URL is not set). Set the missing settings where the Dagster daemon "
        "runs: the next tick sends them. This tick: 0 delivered, 0 failed and will retry, 0 given up."
    )


def test_definitions_assemble_with_the_alerting_pieces(config_path):
    resources = default_resources(str(config_path))
    defs = Definitions(
        assets=[alerts, backlog_items, monitoring_kpis], sensors=alerting.SENSORS, resources=resources
    )
    Definitions.validate_loadable(defs)
    assert {s.name for s in alerting.SENSORS} == {"deliver_notifications"}
    assert deliver_notifications.minimum_interval_seconds == 180


def test_alerting_resources_pick_the_tracker_from_the_environment(monkeypatch):
    monkeypatch.delenv("MONITORING_GITHUB_REPO", raising=False)
    assert type(default_resources()["tracker"]) is TrackerResource
    monkeypatch.setenv("MONITORING_GITHUB_REPO", "acme/models")
    tracker = default_resources()["tracker"]
    assert isinstance(tracker, GitHubTrackerResource) and tracker.repo == "acme/models"


# --------------------------------------------------------------------------- CLI actions


def test_ack_moves_the_item_in_progress_and_resolve_closes_both(config_path, warehouse, instance):
    config = load_config(config_path)
    write_checks(warehouse, 1, {"income": "critical"})
    run_day(1, config_path, instance)
    (alert,) = records(warehouse.table("alerts"))
    svc.set_alert_status(config, alert["alert_id"], "acknowledged")
    assert svc.list_items(config)["status"].tolist() == ["in_progress"]
    assert svc.list_alerts(config, status="acknowledged")["alert_id"].tolist() == [alert["alert_id"]]
    svc.set_alert_status(config, alert["alert_id"], "resolved")
    assert svc.list_items(config)["status"].tolist() == ["resolved"]
    kinds = sorted(warehouse.table("notifications")["kind"])
    assert kinds == ["resolve", "trigger"]  # the page is closed right away


def test_a_person_resolved_alert_that_fails_again_opens_a_new_alert_and_item(
    config_path, warehouse, instance
):
    config = load_config(config_path)
    write_checks(warehouse, 1, {"income": "critical"})
    run_day(1, config_path, instance)
    (alert,) = records(warehouse.table("alerts"))
    svc.set_alert_status(config, alert["alert_id"], "resolved")
    write_checks(warehouse, 2, {"income": "critical"})
    run_day(2, config_path, instance)
    states = svc.list_alerts(config).set_index("alert_id")["status"].to_dict()
    assert states[alert["alert_id"]] == "resolved" and sorted(states.values()) == ["open", "resolved"]
    assert sorted(svc.list_items(config)["status"]) == ["open", "resolved"]


def test_user_reported_item_counts_against_detected_by_monitoring_first(config_path, warehouse, instance):
    config = load_config(config_path)
    write_checks(warehouse, 1, {"income": "critical"})
    run_day(1, config_path, instance)
    item_id = svc.open_item(
        config, model_name=MODEL, title="Users report odd credit decisions", severity="warning"
    )
    assert item_id in set(svc.list_items(config, status="open")["item_id"])
    kpis, _ = svc.compute_kpis(warehouse, config)
    assert kpis.values["share_incidents_detected_by_monitoring_first"] == 0.5


def test_unknown_ids_raise_key_errors_the_cli_reports(config_path):
    config = load_config(config_path)
    with pytest.raises(KeyError):
        svc.set_alert_status(config, "alr_missing", "acknowledged")
    with pytest.raises(KeyError):
        svc.set_item_status(config, "itm_missing", "resolved")


def test_a_range_run_leaves_the_same_tables_as_evaluating_every_day_in_order(tmp_path, instance):
    """A range run evaluates one by one only the days within the notify window of its last day (each
    evaluation replays the whole history); the tables must end as when every day of the range is
    evaluated in date order, which is what a range run did before (the history holds every day)."""
    story = {2: {"income": "critical"}, 3: {"income": "critical"}, 6: {"age": "warning"}, 7: {"age": "warning"},
             8: {"age": "warning"}, 11: {"region": "critical"}, 12: {"region": "critical"}}  # fmt: skip
    ends = {}
    for mode in ("every_day", "range"):
        root = tmp_path / mode
        root.mkdir()
        raw = yaml.safe_load(DEMO_CONFIG.read_text())
        raw["data_dir"] = str(root / "data")
        raw["warehouse"] = str(root / "data" / "warehouse.duckdb")
        raw["alerting"] = {"routes": {"critical": ["webhook"], "warning": ["webhook"], "info": []}}
        path = root / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        wh = Warehouse(load_config(path).warehouse)
        for n in range(1, 13):
            write_checks(wh, n, story.get(n, {}))
        if mode == "every_day":
            for n in range(1, 13):
                assert run_day(n, path, instance).success
        else:
            result = materialize(
                [alerts, backlog_items],
                resources={
                    "monitoring": MonitoringResource(config_path=str(path)),
                    "tracker": TrackerResource(),
                },
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": str(
                        MultiPartitionKey({"date": day(1).isoformat(), "model": MODEL})
                    ),
                    "dagster/asset_partition_range_end": str(
                        MultiPartitionKey({"date": day(12).isoformat(), "model": MODEL})
                    ),
                },
            )
            assert result.success
        stable = {
            "alerts": ["alert_id", "dedup_key", "status", "severity", "first_seen_date", "last_seen_date",
                       "resolved_date", "notified_severity", "incident_id", "detected_date", "escalated_date"],
            "notifications": ["notification_id", "kind", "severity", "dedup_key", "channel"],
            "backlog_items": ["item_id", "status", "severity", "title"],
        }  # fmt: skip
        ends[mode] = {
            t: wh.table(t)[cols].sort_values(cols[0]).reset_index(drop=True) for t, cols in stable.items()
        }
    for table in ends["every_day"]:
        pd.testing.assert_frame_equal(ends["range"][table], ends["every_day"][table], check_dtype=False)
    assert len(ends["every_day"]["alerts"]) == 3 and len(ends["every_day"]["notifications"]) >= 1


def test_early_days_of_a_range_read_their_state_even_when_no_alert_ever_resolved() -> None:
    from monitoring_pipelines.defs.alerting import _as_of

    current = pd.DataFrame(
        {
            "alert_id": ["a", "b"],
            "status": ["open", "open"],
            "first_seen_date": [pd.Timestamp(day(2)), pd.Timestamp(day(5))],
            "resolved_date": [pd.NaT, pd.NaT],  # all NaT: the column stays datetime64
        }
    )
    assert _as_of(current, day(3))["alert_id"].tolist() == ["a"]
    resolved = current.assign(status=["resolved", "open"], resolved_date=[pd.Timestamp(day(4)), pd.NaT])
    assert _as_of(resolved, day(3))["status"].tolist() == ["open"]
    assert _as_of(resolved, day(6))["status"].tolist() == ["resolved", "open"]
