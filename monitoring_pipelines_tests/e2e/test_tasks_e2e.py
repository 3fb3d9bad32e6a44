"""The regression and multiclass demo models end to end: simulated traffic with documented incidents
(docs/demo.md), `monitoring-pipelines run` through Dagster, then the warehouse. Each incident must alert on
its first measurable day, and the quiet days before it must stay quiet."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from monitoring_pipelines import simulate as sim
from monitoring_pipelines.storage.warehouse import Warehouse

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

START = dt.date(2026, 6, 1)
# Two weeks of reference: with 7 days the bands (t prediction intervals over the reference days) are so
# wide that a per-class recall on ~100 labelled tickets cannot show a 0.3 drop (measured: 0.443 against an
# edge of 0.436); with 14 days (half the demo's 28) it does (0.484 against 0.549).
REFERENCE_DAYS = 14  # 2026-06-01 .. 06-14; the task models' incidents follow it
DAYS = 26  # .. 2026-06-26: the product change's first day (06-24) has 2 of its 3 label days
REQUESTS = 3000  # delivery_time ~1,500 orders, ticket_routing ~750 tickets per weekday
TASKS = (sim.REGRESSION_MODEL, sim.MULTICLASS_MODEL)
PERFORMANCE_CHECKS = ("performance_degradation", "performance_critical_drop")
BAD = ("warning", "critical")


def _first_day(model: str, kind: str) -> dt.date:
    incident = next(
        i for i in sim.incidents(DAYS, REFERENCE_DAYS, TASKS) if (i.model_name, i.kind) == (model, kind)
    )
    return incident.dates(START)[0]


DIRTY_DAY = _first_day(sim.REGRESSION_MODEL, sim.DIRTY_ROWS)  # 2026-06-18, both models
SHORTAGE_DAY = _first_day(sim.REGRESSION_MODEL, sim.FEATURE_SHIFT)  # 2026-06-22
PRODUCT_CHANGE_DAY = _first_day(sim.MULTICLASS_MODEL, sim.CLASS_DEGRADATION)  # 2026-06-24
INCIDENT_DAY = {sim.REGRESSION_MODEL: SHORTAGE_DAY, sim.MULTICLASS_MODEL: PRODUCT_CHANGE_DAY}


@pytest.fixture(scope="module")
def tasks_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tasks_e2e")
    data = root / "data"
    summary = sim.simulate(
        data, days=DAYS, requests=REQUESTS, start=START, models=TASKS, reference_days=REFERENCE_DAYS
    )
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MONITORING_CONFIG": str(summary.config_path)}
    for name in ("MONITORING_WEBHOOK_URL", "MONITORING_DATA_DIR", "MONITORING_WAREHOUSE"):
        env.pop(name, None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring_pipelines",
            "run",
            "--start",
            START.isoformat(),
            "--end",
            summary.end.isoformat(),
            "--quiet",
            "--no-dashboard",
        ],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return {"warehouse": Warehouse(data / "warehouse.duckdb"), "stdout": done.stdout}


def _alerts(wh: Warehouse) -> pd.DataFrame:
    frame = wh.query(
        "SELECT model_name, check_name, subject, metric, severity, value, threshold, first_seen_date, message "
        "FROM monitoring.alerts WHERE model_name IN (?, ?)",
        list(TASKS),
    )
    frame["first_seen_date"] = pd.to_datetime(frame["first_seen_date"]).dt.date
    return frame


def _findings(wh: Warehouse, model: str, day: dt.date, checks: tuple[str, ...]) -> list[dict]:
    rows = wh.query(
        "SELECT check_name, findings FROM monitoring.check_results "
        "WHERE model_name = ? AND partition_date = ? AND NOT passed",
        [model, day],
    )
    out = []
    for check, findings in zip(rows["check_name"], rows["findings"], strict=True):
        if check in checks:
            out += [f | {"check": check} for f in json.loads(findings or "[]") if f.get("severity") in BAD]
    return out


def test_every_model_day_ran(tasks_run: dict) -> None:
    assert "0 failed" in tasks_run["stdout"]
    days = tasks_run["warehouse"].query(
        "SELECT model_name, count(DISTINCT partition_date) AS n FROM monitoring.prediction_snapshots "
        "GROUP BY model_name ORDER BY model_name"
    )
    assert dict(zip(days["model_name"], days["n"], strict=True)) == {m: DAYS for m in TASKS}


def test_quiet_days_stay_quiet(tasks_run: dict) -> None:
    alerts = _alerts(tasks_run["warehouse"])
    alerts = alerts[alerts["severity"].isin(BAD)]
    early = alerts[alerts["first_seen_date"] < alerts["model_name"].map(INCIDENT_DAY)]
    # The dirty day's quarantined rows are a data-quality finding of their own, and only that.
    expected = (early["first_seen_date"] == DIRTY_DAY) & (early["check_name"] == "validation")
    assert early[~expected].empty, early[~expected].to_string()
    for model in TASKS:
        assert (early[expected]["model_name"] == model).any(), f"{model}: no validation alert on {DIRTY_DAY}"


def test_dirty_rows_are_quarantined_with_their_reasons(tasks_run: dict) -> None:
    wh = tasks_run["warehouse"]

    def reasons(table: str) -> dict[tuple[str, str], int]:
        rows = wh.query(
            f"SELECT model_name, reason, count(*) AS n FROM monitoring.{table} "
            "WHERE model_name IN (?, ?) GROUP BY ALL",
            list(TASKS),
        )
        return {(m, r): int(n) for m, r, n in zip(rows["model_name"], rows["reason"], rows["n"], strict=True)}

    dirty, duplicates = sim.TASK_DIRTY_PREDICTIONS, sim.TASK_DIRTY_DUPLICATES
    assert reasons("quarantined_predictions") == {
        (sim.REGRESSION_MODEL, "score finite"): dirty,
        (sim.REGRESSION_MODEL, "prediction_id unique"): duplicates,
        (sim.MULTICLASS_MODEL, "prediction in classes"): dirty,
        (sim.MULTICLASS_MODEL, "prediction_id unique"): duplicates,
    }
    assert reasons("quarantined_labels") == {
        (sim.REGRESSION_MODEL, "label is a finite number"): sim.TASK_DIRTY_LABELS,
        (sim.MULTICLASS_MODEL, "label in classes"): sim.TASK_DIRTY_LABELS,
    }
    days = wh.query(
        "SELECT DISTINCT partition_date FROM monitoring.quarantined_predictions WHERE model_name IN (?, ?)",
        list(TASKS),
    )
    assert [d.date() for d in pd.to_datetime(days["partition_date"])] == [DIRTY_DAY]


def test_map_form_day_is_read_like_its_neighbours(tasks_run: dict) -> None:
    wh = tasks_run["warehouse"]
    map_day = START + dt.timedelta(days=REFERENCE_DAYS + sim.SCORES_MAP_OFFSET)
    rows = wh.query(
        "SELECT partition_date, count(*) AS n, count(score__shipping) AS with_proba "
        "FROM monitoring.prediction_snapshots WHERE model_name = ? AND partition_date BETWEEN ? AND ? "
        "GROUP BY partition_date ORDER BY partition_date",
        [sim.MULTICLASS_MODEL, map_day - dt.timedelta(days=1), map_day + dt.timedelta(days=1)],
    )
    assert len(rows) == 3
    assert (rows["with_proba"] > 0.99 * rows["n"]).all(), rows.to_string()  # error rows have none
    assert rows["n"].min() > 0.5 * rows["n"].max()


def test_courier_shortage_alerts_on_its_first_day(tasks_run: dict) -> None:
    wh = tasks_run["warehouse"]
    model = sim.REGRESSION_MODEL
    alerts = _alerts(wh)
    alerts = alerts[(alerts["model_name"] == model) & alerts["severity"].isin(BAD)]
    first = alerts[alerts["first_seen_date"] == SHORTAGE_DAY]
    drift = first[
        first["check_name"].isin(["feature_drift", "critical_drift"]) & (first["subject"] == "courier_load")
    ]
    assert not drift.empty, alerts.to_string()
    # measured once the day's labels landed (1-2 days later): the error grew past its band
    findings = _findings(wh, model, SHORTAGE_DAY, PERFORMANCE_CHECKS)
    assert any(f.get("metric") in ("mae", "rmse") for f in findings), findings
    assert first["check_name"].isin(PERFORMANCE_CHECKS).any(), first.to_string()
    mae = wh.query(
        "SELECT partition_date, value FROM monitoring.performance_metrics "
        "WHERE model_name = ? AND metric = 'mae' AND NOT estimated ORDER BY partition_date",
        [model],
    )
    mae["partition_date"] = pd.to_datetime(mae["partition_date"]).dt.date
    reference = mae[mae["partition_date"] < START + dt.timedelta(days=REFERENCE_DAYS)]["value"]
    on_day = mae[mae["partition_date"] == SHORTAGE_DAY]["value"]
    assert len(reference) == REFERENCE_DAYS and len(on_day) == 1
    assert on_day.iloc[0] > 1.25 * reference.mean()  # past error_critical_increase


def test_product_change_alerts_on_shipping_recall_on_its_first_day(tasks_run: dict) -> None:
    wh = tasks_run["warehouse"]
    model = sim.MULTICLASS_MODEL
    findings = _findings(wh, model, PRODUCT_CHANGE_DAY, PERFORMANCE_CHECKS)
    assert any(f.get("metric") == "recall:shipping" for f in findings), findings
    alerts = _alerts(wh)
    first = alerts[
        (alerts["model_name"] == model)
        & alerts["severity"].isin(BAD)
        & (alerts["first_seen_date"] == PRODUCT_CHANGE_DAY)
        & alerts["check_name"].isin(PERFORMANCE_CHECKS)
    ]
    assert not first.empty, alerts[alerts["model_name"] == model].to_string()
    recall = wh.query(
        "SELECT partition_date, value FROM monitoring.performance_metrics "
        "WHERE model_name = ? AND metric = 'recall:shipping' AND NOT estimated ORDER BY partition_date",
        [model],
    )
    recall["partition_date"] = pd.to_datetime(recall["partition_date"]).dt.date
    before = recall[recall["partition_date"] < PRODUCT_CHANGE_DAY]["value"]
    after = recall[recall["partition_date"] == PRODUCT_CHANGE_DAY]["value"]
    assert before.min() > after.iloc[0] + 0.1


def test_ticket_shadow_is_compared_on_accuracy(tasks_run: dict) -> None:
    rows = tasks_run["warehouse"].query(
        "SELECT partition_date, champion_version, shadow_version, champion_value, shadow_value, delta "
        "FROM monitoring.shadow_comparisons WHERE model_name = ? AND metric = 'accuracy' "
        "AND segment = '__all__'",
        [sim.MULTICLASS_MODEL],
    )
    assert not rows.empty
    assert set(zip(rows["champion_version"], rows["shadow_version"], strict=True)) == {("v7", "v8")}
    quiet = rows[pd.to_datetime(rows["partition_date"]).dt.date < PRODUCT_CHANGE_DAY]
    assert len(quiet) > 0 and quiet["delta"].mean() > 0.02  # v8 is the better router
