"""External issue trackers that backlog items are mirrored to (alerting_service.export_to_tracker)."""

from __future__ import annotations

from monitoring_pipelines.trackers.base import TrackerClient, TrackerError
from monitoring_pipelines.trackers.github import GitHubIssuesClient

__all__ = ["GitHubIssuesClient", "TrackerClient", "TrackerError"]
