"""`status` / the end of `make demo`: the cause printed belongs to the incident it names."""

from __future__ import annotations

import pandas as pd

from monitoring_pipelines.config import load_config
from monitoring_pipelines.runner import first_look_lines
from monitoring_pipelines.schema import columns_of
from monitoring_pipelines.storage.warehouse import Warehouse


def _row(alert_id: str, incident: str, check: str, subject: str, first: str, cause: str) -> dict:
    return {
        "alert_id": alert_id,
        "incident_id": incident,
        "model_name": "credit_default",
        "partition_date": pd.Timestamp("2026-07-20"),
        "first_seen_date": pd.Timestamp(first),
        "last_seen_date": pd.Timestamp("2026-07-20"),
        "check_name": check,
        "asset": "drift_scores",
        "subject": subject,
        "severity": "critical",
        "status": "open",
        "message": f"{check} on {subject}",
        "root_cause": cause,
        "dedup_key": f"credit_default/{check}/{subject}",
    }


def test_the_cause_follows_its_incident_and_other_incidents_come_after(write_config, config_dict):
    config = load_config(write_config(config_dict))
    rows = [
        _row(
            "alr_a", "inc_1", "data_quality", "product", "2026-07-01", "critical_drift on product: psi 1.14"
        ),
        _row(
            "alr_b", "inc_1", "critical_drift", "product", "2026-07-01", "critical_drift on product: psi 1.14"
        ),
        _row("alr_c", "inc_2", "performance_degradation", "model", "2026-07-10", "auc 0.67 vs 0.72"),
    ]
    frame = pd.DataFrame(rows).reindex(columns=columns_of("alerts"))
    Warehouse.for_config(config).replace_where("alerts", frame, "1 = 1", [])
    line = next(x for x in first_look_lines(config) if x.strip().startswith("credit_default"))
    assert (
        "(2 alerts in this incident): critical_drift on product: psi 1.14; also 1 other open incident(s)"
        in line
    )
    assert line.index("psi 1.14") < line.index("other open incident")
