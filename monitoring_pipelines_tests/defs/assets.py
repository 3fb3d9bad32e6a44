"""The assets of a test's config, built the way definitions.py builds them."""

from __future__ import annotations

from types import SimpleNamespace

from monitoring_pipelines.config import MonitoringConfig
from monitoring_pipelines.defs import (
    alerting,
    drift,
    performance,
    reference,
    serving,
    shadow,
    snapshots,
    subgroups,
)
from monitoring_pipelines.defs.partitions import Partitions


def assets_for(config: MonitoringConfig) -> SimpleNamespace:
    parts = Partitions.from_config(config)
    alerts, backlog_items, monitoring_kpis = alerting.build(parts)
    return SimpleNamespace(
        partitions=parts,
        prediction_snapshots=snapshots.build(parts),
        reference_profiles=reference.build(),
        drift_scores=drift.build(parts),
        performance_metrics=performance.build(parts),
        subgroup_metrics=subgroups.build(parts),
        serving_metrics=serving.build(parts),
        shadow_comparisons=shadow.build(parts),
        alerts=alerts,
        backlog_items=backlog_items,
        monitoring_kpis=monitoring_kpis,
    )
