"""The worker process's one settings object (environment prefix DESKPOOL_)."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field, ValidationError

from activities.settings import SharedSettings, describe_validation_error


class WorkerSettings(SharedSettings):
    # openstacksdk's own conventions: a clouds.yaml file and a cloud name in it.
    clouds_yaml: Path | None = None
    max_concurrent_activities: int = Field(default=200, ge=1, le=10_000)
    max_concurrent_workflow_tasks: int = Field(default=100, ge=1, le=10_000)
    # Workflows kept in memory between their tasks (the SDK's default); 0 replays every
    # workflow from its history at each task (slow; the replay probes use it).
    max_cached_workflows: int = Field(default=1000, ge=0, le=100_000)
    # Per cloud, per worker process: servers building (create until ACTIVE) and
    # being deleted at once. The anchors' defaults are 30 and 15.
    cloud_max_concurrent_builds: int = Field(default=30, ge=1, le=1000)
    cloud_max_concurrent_deletes: int = Field(default=15, ge=1, le=1000)
    # Per cloud, per worker process: HTTP requests per second to the cloud, retries and Keystone's
    # included (0 = unlimited). A create is about three requests; a status poll, one.
    cloud_max_calls_per_second: float = Field(default=50.0, ge=0)
    # How long a server may stay in BUILD before its desktop gives it up, deletes it and the
    # pool replaces it (None: the engine's 600 s). A stuck build holds a place in the pool's
    # reserve until then.
    cloud_build_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    # Prometheus /metrics of this worker: deskpool's metrics and the Temporal
    # SDK's (worker/metrics.py). 0 turns it off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=9464, ge=0, le=65535)


def load_worker_settings() -> WorkerSettings:
    """Validate the environment once at start; exit with a readable message."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        sys.exit(describe_validation_error(exc))
