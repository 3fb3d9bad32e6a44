"""One end-to-end run: `monitoring-pipelines demo` (simulated traffic, then every model-day through Dagster,
recorded in an instance) → warehouse tables, alerts, notifications, backlog items and the dashboard."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring_pipelines.storage.warehouse import Warehouse

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
UNIT_BUG_DAY = dt.date(2026, 7, 6)  # day 35 of the demo: income logged in thousands (docs/demo.md)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monitoring_pipelines", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`monitoring-pipelines demo` at fixed dates: it simulates into the config's folder (the config does not
    exist yet, as on a fresh clone), writes the config for that traffic and runs the simulated range."""
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    config = data / "demo_config.yaml"
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MONITORING_CONFIG": str(config)}
    for name in ("MONITORING_WEBHOOK_URL", "MONITORING_DATA_DIR", "MONITORING_WAREHOUSE"):
        env.pop(name, None)
    binary = ["--model", "credit_default", "--model", "churn_propensity"]  # the task models: test_tasks_e2e
    done = _cli(
        ["demo", "--start", "2026-06-01", "--days", "36", "--requests", "700", "--quiet", *binary], env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {
        "env": env,
        "data": data,
        "warehouse": Warehouse(data / "warehouse.duckdb"),
        "stdout": done.stdout,
    }


def test_run_reports_every_step_and_the_dashboard(demo_run):
    out = demo_run["stdout"]
    assert "2026-06-01 .. 2026-07-06" in out  # the simulated range, then run whole
    assert "0 failed" in out and "dashboard:" in out
    assert (demo_run["data"] / "dashboard" / "index.html").exists()
    assert (demo_run["data"] / "backlog.md").exists()
    days = demo_run["warehouse"].query(
        "SELECT min(partition_date) AS a, max(partition_date) AS b FROM monitoring.prediction_snapshots"
    )
    assert (str(days["a"][0])[:10], str(days["b"][0])[:10]) == ("2026-06-01", UNIT_BUG_DAY.isoformat())


def test_demo_says_what_to_look_at_first(demo_run):
    out = demo_run["stdout"]
    look = out[out.index("Look at first:") :].splitlines()
    credit = next(line for line in look if line.strip().startswith("credit_default:"))
    assert "critical" in credit and f"since {UNIT_BUG_DAY}" in credit
    assert any("churn_propensity:" in line for line in look)
    ui = next(line for line in look if "make ui" in line)
    assert f"partition={UNIT_BUG_DAY}%7Ccredit_default" in ui
    status = _cli(["status"], demo_run["env"])
    assert status.returncode == 0 and "Look at first:" in status.stdout


def test_unit_bug_day_raises_one_critical_alert_with_evidence(demo_run):
    alerts = demo_run["warehouse"].query(
        "SELECT * FROM monitoring.alerts WHERE model_name = 'credit_default' AND subject = 'income' "
        "AND check_name = 'critical_drift'"
    )
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert alert["severity"] == "critical" and alert["status"] == "open"
    assert str(alert["first_seen_date"])[:10] == UNIT_BUG_DAY.isoformat()
    assert alert["threshold"] > 0 and alert["value"] > alert["threshold"]
    notes = demo_run["warehouse"].query(
        "SELECT * FROM monitoring.notifications WHERE dedup_key = ?", [alert["dedup_key"]]
    )
    assert list(notes["kind"]) == ["trigger"]  # the demo routes criticals to the webhook
    items = demo_run["warehouse"].query(
        "SELECT * FROM monitoring.backlog_items WHERE dedup_key = ?", [alert["dedup_key"]]
    )
    assert len(items) == 1 and any(UNIT_BUG_DAY.isoformat() in p for p in items.iloc[0]["partitions"])


def test_quiet_model_pages_nobody(demo_run):
    critical = demo_run["warehouse"].query(
        "SELECT count(*) AS n FROM monitoring.alerts WHERE model_name = 'churn_propensity' AND severity = 'critical'"
    )
    assert critical["n"][0] == 0


def test_dirty_rows_are_quarantined_not_dropped(demo_run):
    day = dt.date(2026, 7, 1)
    wh = demo_run["warehouse"]
    q = wh.query(
        "SELECT reason, count(*) AS n FROM monitoring.quarantined_predictions "
        "WHERE model_name = 'credit_default' AND partition_date = ? GROUP BY reason",
        [day],
    )
    reasons = dict(zip(q["reason"], q["n"], strict=True))
    assert reasons.get("score in [0, 1]", 0) == 40 and reasons.get("role in set", 0) == 10
    assert reasons.get("prediction_id unique", 0) == 10


def test_rerunning_a_day_changes_no_table(demo_run):
    wh = demo_run["warehouse"]
    tables = [
        "prediction_snapshots",
        "drift_scores",
        "performance_metrics",
        "subgroup_metrics",
        "shadow_comparisons",
        "serving_metrics",
        "alerts",
        "notifications",
        "backlog_items",
    ]
    before = {t: int(wh.query(f"SELECT count(*) AS n FROM monitoring.{t}")["n"][0]) for t in tables}
    done = _cli(
        [
            "run",
            "--start",
            UNIT_BUG_DAY.isoformat(),
            "--end",
            UNIT_BUG_DAY.isoformat(),
            "--quiet",
            "--no-dashboard",
        ],
        demo_run["env"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    after = {t: int(wh.query(f"SELECT count(*) AS n FROM monitoring.{t}")["n"][0]) for t in tables}
    assert after == before


def test_reference_command_rebuilds_nothing_unchanged(demo_run):
    done = _cli(["reference"], demo_run["env"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "references rebuilt: none" in done.stdout
    assert "references unchanged, not rebuilt: credit_default, churn_propensity" in done.stdout
