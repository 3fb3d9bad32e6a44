"""The static monitoring dashboard: an index and one page per model, readable offline by anyone."""

from monitoring_pipelines.dashboard.render import (
    DashboardResult,
    ModelHealth,
    assess_health,
    render_dashboard,
)

__all__ = ["DashboardResult", "ModelHealth", "assess_health", "render_dashboard"]
