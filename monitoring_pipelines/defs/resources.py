"""Resources: the config, the warehouse, the model-days a run has read, and the issue tracker.

`MonitoringResource` lives for one run (Dagster builds it when the run starts and tears it down when
it ends; with the in-process executor every step of the run shares it). It keeps the model-day
snapshots of the run, so the day is read once: `prediction_snapshots` hands over the rows it just
validated and every metric asset of the same run uses them; a run without that step (a label
refresh, a single asset from the UI) reads the stored day from the warehouse once.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr

from monitoring_pipelines.config import ModelConfig, MonitoringConfig, config_path_from_env, load_config
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines.storage.reference import latest_profile, reference_bands
from monitoring_pipelines.storage.snapshot import Snapshot, label_window
from monitoring_pipelines.storage.sources import source_for
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines.trackers import GitHubIssuesClient, TrackerClient

GITHUB_API_URL = "https://api.github.com"


class MonitoringResource(ConfigurableResource):
    """The validated config and the warehouse it names. `config_path` empty = MONITORING_CONFIG/demo."""

    config_path: str = ""
    _snapshots: dict[tuple[str, dt.date], Snapshot] = PrivateAttr(default_factory=dict)
    _references: dict[str, tuple[ReferenceProfile, pd.DataFrame]] = PrivateAttr(default_factory=dict)
    _pending: list[tuple[str, Future[None]]] = PrivateAttr(default_factory=list)
    _writer: ThreadPoolExecutor | None = PrivateAttr(default=None)

    @cached_property
    def config(self) -> MonitoringConfig:
        return load_config(self.config_path or None)

    @property
    def warehouse(self) -> Warehouse:
        """The warehouse, once every write this run started in the background has committed (a failed
        one fails whoever asks next, naming what was being written)."""
        self.settle()
        return Warehouse.for_config(self.config)

    def defer(self, what: str, write: Future[None] | None) -> None:
        """A warehouse write that goes on while the run computes (see Snapshot.write(background=True))."""
        if write is not None:
            self._pending.append((what, write))

    def replace(self, what: str, writes: list[tuple[str, Any, str, list[Any]]], later: bool = False) -> None:
        """Replace `writes` in one warehouse transaction: now, or with `later` on this run's writer thread
        (in order, behind the run's earlier writes) while the run computes on; the next access to
        `warehouse` waits for it and fails naming `what` if it failed. Only ask for `later` when a later
        step of the same run will access the warehouse (see later_step_waits)."""
        if not later:
            self.warehouse.replace_many(writes)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="warehouse-writer")
        warehouse = Warehouse.for_config(self.config)
        self._pending.append((what, self._writer.submit(warehouse.replace_many, writes)))

    def settle(self) -> None:
        while self._pending:
            what, write = self._pending.pop(0)
            try:
                write.result()
            except Exception as exc:
                raise RuntimeError(f"writing {what} to the warehouse failed: {exc}") from exc

    def reference(self, model_name: str) -> tuple[ReferenceProfile, pd.DataFrame]:
        """The model's current reference profile and bands, read once per run."""
        if model_name not in self._references:
            profile = latest_profile(Warehouse.for_config(self.config), model_name)
            bands = reference_bands(Warehouse.for_config(self.config), model_name, profile.version)
            self._references[model_name] = (profile, bands)
        return self._references[model_name]

    def keep(self, snapshot: Snapshot) -> None:
        """Share a model-day this run has just read with the run's later steps."""
        key = (snapshot.model.name, snapshot.start)
        old = self._snapshots.pop(key, None)
        if old is not None and old is not snapshot:
            old.close()
        self._snapshots[key] = snapshot

    def snapshot(self, model: ModelConfig, day: dt.date) -> Snapshot:
        """The model-day's valid rows: this run's copy, or the stored day read once from the warehouse."""
        key = (model.name, day)
        if key not in self._snapshots:
            self._snapshots[key] = Snapshot.from_warehouse(self.warehouse, model, day)
        return self._snapshots[key]

    def labelled(self, model: ModelConfig, day: dt.date, snapshot: Snapshot | None = None) -> Snapshot:
        """The model-day with the labels (and outcomes) known so far attached."""
        snap = snapshot or self.snapshot(model, day)
        source = source_for(self.config, model)
        arrived_from, arrived_to = label_window(model, snap.start, snap.end)
        snap.load_labels(source, arrived_from, arrived_to)
        if model.outcomes:
            snap.load_outcomes(source, snap.start, arrived_to)
        return snap

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        try:
            self.settle()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            for snapshot in self._snapshots.values():
                snapshot.close()
            self._snapshots.clear()


def later_step_runs(context: AssetExecutionContext, steps: Sequence[str]) -> bool:
    """Whether one of `steps` runs in this run (in any process)."""
    planned = context.run.step_keys_to_execute
    names = set(planned) if planned is not None else set(context.job_def.graph.node_dict)
    return any(step in names for step in steps)


def later_step_waits(context: AssetExecutionContext, steps: Sequence[str]) -> bool:
    """Whether one of `steps` (assets that access `monitoring.warehouse`, which waits for the writes
    this run left in the background) runs later in this run, in this process. Only then may a step
    write in the background: a failed write then fails that step, naming the write, whereas an error
    at the resource's teardown is only logged. Steps in separate processes write in the step."""
    return "in_process" in context.job_def.executor_def.name and later_step_runs(context, steps)


class TrackerResource(ConfigurableResource):
    """No external tracker: backlog items live in the warehouse and data/backlog.md only."""

    def client(self) -> TrackerClient | None:
        return None


class GitHubTrackerResource(TrackerResource):
    """Mirror backlog items to GitHub Issues (open an issue per item, close it when the item resolves)."""

    repo: str = Field(description="owner/name of the repository the issues go to")
    token: str = Field(description="a token allowed to write issues; pass EnvVar('MONITORING_GITHUB_TOKEN')")
    api_url: str = Field(default=GITHUB_API_URL, description="REST API root (GitHub Enterprise, tests)")
    labels: list[str] = Field(default_factory=lambda: ["model-monitoring"])
    timeout_seconds: float = 10.0

    def client(self) -> TrackerClient | None:
        return GitHubIssuesClient(
            repo=self.repo,
            token=self.token,
            api_url=self.api_url,
            labels=self.labels,
            timeout=self.timeout_seconds,
        )


def default_resources(config_path: str | None = None) -> dict[str, ConfigurableResource]:
    """The `monitoring` resource, and the `tracker` chosen by environment: GitHub Issues when
    MONITORING_GITHUB_REPO is set (token from MONITORING_GITHUB_TOKEN, API root from
    MONITORING_GITHUB_API_URL), otherwise none."""
    monitoring = MonitoringResource(config_path=str(config_path or config_path_from_env()))
    repo = os.environ.get("MONITORING_GITHUB_REPO")
    tracker: TrackerResource = (
        GitHubTrackerResource(
            repo=repo,
            token=EnvVar("MONITORING_GITHUB_TOKEN"),
            api_url=os.environ.get("MONITORING_GITHUB_API_URL") or GITHUB_API_URL,
        )
        if repo
        else TrackerResource()
    )
    return {"monitoring": monitoring, "tracker": tracker}
