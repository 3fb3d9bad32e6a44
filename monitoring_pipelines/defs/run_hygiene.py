"""Instance hygiene the daemon cannot do by itself.

- CLI runs execute in the CLI's own processes (`execute_in_process`), outside the run launcher, so
  Dagster's run monitoring never learns that such a process died: a killed `run` would leave its runs
  STARTED for ever, counting against `max_concurrent_runs` and blocking the queue. Every CLI run is
  tagged with the host and process that executes it; `fail_dead_cli_runs` marks the runs of processes
  that no longer exist as failed. The CLI calls it when it starts and the `dead_cli_runs` sensor every
  minute (the daemon runs on the same host in the embedded setup; a run of another host is left alone,
  since its process cannot be checked from here).
- The warehouse pool's limit is stored in the instance the first time the queue sees the pool, after
  the queue has read the configured pools for that tick: two runs queued together on a fresh instance
  were both launched. `ensure_pools` stores the limit before any run is queued.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

HOST_TAG = "monitoring/host"
PID_TAG = "monitoring/pid"
PID_START_TAG = "monitoring/pid_start"  # the process's start time: a reused pid is not the same process
SOURCE_TAG = "monitoring/source"
ACTIVE = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def _stat(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (Linux; empty elsewhere or when the process is gone). Fields 1-2
    (pid, command) end at the last ')'."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot, field 22); "" where unknown."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def process_tags() -> dict[str, str]:
    """Tags naming the process that executes a CLI run."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _start_time(pid)}


def _alive(pid: int, started: str) -> bool:
    """Whether the process that executed the run still runs: it exists, is not a zombie (a killed CLI's
    workers stay zombies where nobody reaps them) and started when the run's tag says."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False
    return not started or _start_time(pid) in ("", started)


def fail_dead_cli_runs(instance: DagsterInstance) -> list[str]:
    """Mark STARTING/STARTED CLI runs of this host whose process is gone as failed; their run ids."""
    host = socket.gethostname()
    failed = []
    runs = instance.get_runs(filters=RunsFilter(statuses=ACTIVE, tags={SOURCE_TAG: "cli", HOST_TAG: host}))
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _alive(int(pid), run.tags.get(PID_START_TAG, "")):
            continue
        instance.report_run_failed(
            run,
            f"the CLI process {pid} on {host} that executed this run is gone (killed or crashed); "
            "marked failed so it no longer counts against the run limits. Re-run the partition.",
        )
        failed.append(run.run_id)
    return failed


def ensure_pools(instance: DagsterInstance, pools: tuple[str, ...]) -> None:
    """Store each pool's default limit now, so the queue enforces it from the first tick."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or instance.global_op_concurrency_default_limit is None:
        return
    known = storage.get_concurrency_keys()
    for pool in pools:
        if pool not in known:
            storage.initialize_concurrency_limit_to_default(pool)


@sensor(
    name="dead_cli_runs",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks as failed the runs of `monitoring-pipelines run` processes on this host that were "
    "killed or crashed: Dagster's run monitoring does not watch in-process CLI runs, and a run left STARTED "
    "counts against the instance's run limits for ever.",
)
def dead_cli_runs(context: SensorEvaluationContext):
    failed = fail_dead_cli_runs(context.instance)
    if failed:
        context.log.warning(f"marked {len(failed)} run(s) of dead CLI processes failed: {', '.join(failed)}")
        return SkipReason(f"marked {len(failed)} run(s) of dead CLI processes failed: {', '.join(failed)}")
    return SkipReason("no run of a dead CLI process")
