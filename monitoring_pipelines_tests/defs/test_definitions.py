"""The graph as a reviewed artifact: an accidental change to assets, checks, jobs or automation shows up
as a diff of graph_snapshot.json (UPDATE_GRAPH_SNAPSHOT=1 rewrites it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster import DefaultScheduleStatus, DefaultSensorStatus, Definitions

from monitoring_pipelines.definitions import defs as load_defs

defs = load_defs()

SNAPSHOT = Path(__file__).with_name("graph_snapshot.json")


def _graph() -> dict:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "pool": sorted(node.pools or []),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in repo.schedule_defs},
        "sensors": sorted(s.name for s in repo.sensor_defs),
    }


def test_definitions_load():
    Definitions.validate_loadable(defs)


def test_graph_matches_reviewed_snapshot():
    current = _graph()
    if os.environ.get("UPDATE_GRAPH_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_automation_starts_running():
    repo = defs.get_repository_def()
    assert all(s.default_status == DefaultScheduleStatus.RUNNING for s in repo.schedule_defs)
    assert all(s.default_status == DefaultSensorStatus.RUNNING for s in repo.sensor_defs)


def test_every_warehouse_writer_is_in_the_duckdb_pool():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name in ("ingest", "reference", "metrics", "alerting"):
            assert node.pools == {"duckdb_warehouse"}, key
