"""What on-call reads in the terminal: `alerts list/show`, `items list/show`, `--json`, `check-config`."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from monitoring_pipelines import oncall
from monitoring_pipelines.cli import main

TODAY = dt.date(2026, 7, 20)
UI = "http://127.0.0.1:3000"


def _alert(**over) -> dict:
    row = {
        "alert_id": "alr_1",
        "model_name": "credit_default",
        "partition_date": pd.Timestamp("2026-07-08"),
        "first_seen_date": pd.Timestamp("2026-07-06"),
        "last_seen_date": pd.Timestamp("2026-07-08"),
        "check_name": "critical_drift",
        "asset": "drift_scores",
        "metric": "psi",
        "subject": "income",
        "severity": "critical",
        "status": "open",
        "value": 8.283,
        "threshold": 0.25,
        "message": "critical drift: income: psi = 8.28",
        "run_id": "run-1",
        "failing_days": 3,
        "resolved_date": pd.NaT,
        "evidence": json.dumps(
            {
                "reference": {"mean": 44384.0, "null_rate": 0.0},
                "current": {"mean": 4415944.0, "null_rate": 0.0},
                "n_current": 4977,
                "n_reference": 128060,
                "p_value_adjusted": 0.0,
                "profile_version": "x",
            }
        ),
    }
    row.update(over)
    return row


def test_alerts_table_says_first_seen_days_open_what_and_where() -> None:
    frame = pd.DataFrame(
        [_alert(), _alert(alert_id="alr_2", status="resolved", resolved_date=pd.Timestamp("2026-07-10"))]
    )
    text = oncall.alerts_table(frame, TODAY, UI)
    header, first, second = text.splitlines()
    assert header.split()[:6] == ["ID", "MODEL", "SEVERITY", "STATUS", "FIRST", "SEEN"]
    assert "2026-07-06" in first and "  14  " in first  # open since the 6th: 14 days on the 20th
    assert "critical_drift on income: psi 8.283 (threshold 0.25)" in first
    assert first.endswith("/assets/drift_scores?view=partitions&partition=2026-07-08%7Ccredit_default")
    assert "  4  " in second  # resolved on the 10th: it was open 4 days
    assert max(len(line) for line in text.splitlines()) < 260  # one line per alert, not a frame dump


def test_alert_detail_puts_the_evidence_in_words_and_says_what_to_do() -> None:
    item = {"item_id": "itm_1", "status": "in_progress", "title": "credit_default: income"}
    text = oncall.alert_detail(_alert(), item, TODAY, UI)
    assert "Since: 2026-07-06 (14 days ago), failing on 3 day(s), last failing day 2026-07-08" in text
    assert "mean: reference 44,384 → now 4,415,944 (×99.49)" in text
    assert "rows compared: 4,977 now vs 128,060 in the reference" in text
    assert "profile version" not in text
    assert "What to do next: An input moved far from the reference" in text
    assert "Backlog item: itm_1 (in_progress)" in text
    assert f"run:       {UI}/runs/run-1" in text


def test_change_words_follow_the_sign() -> None:
    rose = oncall.evidence_words({"reference": {"fpr": 0.10}, "current": {"fpr": 0.137}})
    fell = oncall.evidence_words({"reference": {"fpr": 0.137}, "current": {"fpr": 0.10}})
    assert rose == ["fpr: reference 0.1 → now 0.137 (up 0.037)"]
    assert fell == ["fpr: reference 0.137 → now 0.1 (down 0.037)"]


def test_items_keep_full_titles_and_the_incident_date() -> None:
    title = (
        "credit_default: performance_degradation failing for model (expected calibration error, a long title)"
    )
    items = pd.DataFrame(
        [
            {
                "item_id": "itm_1",
                "status": "open",
                "severity": "warning",
                "model_name": "credit_default",
                "created_at": pd.Timestamp("2026-07-20 02:20", tz="UTC"),
                "title": title,
                "partitions": [
                    "2026-07-08|credit_default",
                    "2026-07-06|credit_default",
                    "2026-07-07|credit_default",
                    "2026-07-10|credit_default",
                ],
                "reported_by": "monitoring",
                "resolved_at": pd.NaT,
                "external_ref": None,
                "links": json.dumps({"asset": f"{UI}/assets/x"}),
            }
        ]
    )
    table = oncall.items_table(items)
    assert title in table and "2026-07-06" in table  # since the incident's first day, not the 20th
    detail = oncall.item_detail(items.iloc[0].to_dict(), pd.DataFrame([_alert()]))
    assert "Failing days: 2026-07-06 .. 2026-07-08 (3 days), 2026-07-10" in detail
    assert "Since: 2026-07-06 (first failing day); opened 2026-07-20" in detail


def test_records_are_plain_json() -> None:
    records = oncall.records(pd.DataFrame([_alert()]))
    text = json.dumps(records)
    back = json.loads(text)[0]
    assert back["first_seen_date"].startswith("2026-07-06") and back["resolved_date"] is None
    assert back["evidence"]["reference"]["mean"] == 44384.0


def test_cli_version_check_config_and_json_lists(
    tmp_path, config_dict, write_config, capsys, monkeypatch
) -> None:
    import pytest

    config = str(write_config(config_dict))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("MONITORING_CONFIG", config)
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("monitoring-pipelines ")
    assert main(["check-config", "--config", config]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config OK") and "credit_default: binary_classification" in out
    (tmp_path / "data").mkdir(exist_ok=True)
    assert main(["alerts", "list", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["items", "list", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["alerts", "show", "alr_nope", "--config", config]) == 2
    assert "no alert 'alr_nope'" in capsys.readouterr().err
    config_dict["models"][0]["label_delay_days"] = -1
    assert main(["check-config", "--config", str(write_config(config_dict))]) == 2
    assert "label_delay_days" in capsys.readouterr().err


def test_every_option_has_help() -> None:
    import argparse

    from monitoring_pipelines.cli import build_parser

    def walk(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)
            elif not isinstance(action, argparse._HelpAction):
                yield parser.prog, action

    missing = [f"{prog} {a.dest}" for prog, a in walk(build_parser()) if not a.help]
    assert missing == []


def test_alert_detail_names_its_incident_and_the_other_alerts_of_it() -> None:
    lead = _alert(incident_id="inc_1", root_cause="income mean 4,415,944 vs reference 44,384, ×100")
    other = _alert(alert_id="alr_2", check_name="data_quality", metric="out_of_range_share", value=1.0,
                   threshold=0.05, incident_id="inc_1")  # fmt: skip
    text = oncall.alert_detail(lead, None, TODAY, UI, pd.DataFrame([lead, other]))
    assert "Incident inc_1: root cause income mean 4,415,944 vs reference 44,384, ×100" in text
    assert "Other alerts of this incident (1):" in text
    assert "alr_2 critical open: data_quality on income: out_of_range_share 1 (threshold 0.05)" in text


def test_alert_ids_of_an_item_read_as_a_list_however_duckdb_hands_them_over() -> None:
    import numpy as np

    assert oncall.alert_ids({"alert_ids": np.array(["alr_1", "alr_2"], dtype=object)}) == ["alr_1", "alr_2"]
    assert oncall.alert_ids({"alert_ids": None}) == [] and oncall.alert_ids({}) == []
