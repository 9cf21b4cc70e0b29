"""The API process's one settings object (environment prefix DESKPOOL_)."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field, ValidationError

from activities.directory.settings import DirectorySettings
from activities.settings import SharedSettings, describe_validation_error


class ApiSettings(SharedSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Where operators open the Temporal UI; the API links pools and desktops there.
    temporal_ui_url: str = "http://127.0.0.1:8233"
    # A worker counts as polling when Temporal saw it within this many seconds.
    worker_poll_window_s: float = Field(default=90.0, gt=0)
    # The cloud reconciler each pool's cloud gets: how often it sweeps, and how
    # long a tagged server nobody owns may live before it is deleted as an orphan.
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    orphan_grace_s: float = Field(default=300.0, ge=0)
    # Who may sign in and use which pool (DESKPOOL_DIRECTORY_*): the built-in
    # demo directory by default, LDAP or Active Directory in production.
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    # Sign-in: how long a session token lives, and its cookie for the portal.
    # The cookie is Secure by default; `make run` on plain http://127.0.0.1 turns that off.
    session_ttl_s: float = Field(default=8 * 3600, gt=0, le=30 * 24 * 3600)
    cookie_secure: bool = True
    # Directory users and groups who are super users by configuration: the
    # first administrator, before anyone has granted a role.
    super_users: list[str] = Field(default_factory=list)
    super_groups: list[str] = Field(default_factory=list)
    # Failed sign-ins (wrong username or password) allowed per username and per client
    # address within the window before POST /auth/login answers 429 (0 = that rule off);
    # successes never count (api/auth/login_limits.py).
    login_max_failures_per_user: int = Field(default=5, ge=0, le=10_000)
    login_max_failures_per_address: int = Field(default=50, ge=0, le=1_000_000)
    login_failure_window_s: int = Field(default=300, ge=1, le=24 * 3600)
    # The API reaches the cloud itself only for what must stay out of workflow histories
    # (remote console URLs carry a token) and the console log: the worker's clouds.yaml,
    # a rate limit of its own (HTTP requests per second per cloud, 0 = unlimited), and
    # how long a request waits for the cloud before answering 503.
    clouds_yaml: Path | None = None
    cloud_max_calls_per_second: float = Field(default=50.0, ge=0)
    cloud_call_timeout_s: float = Field(default=20.0, gt=0, le=300)


def load_api_settings() -> ApiSettings:
    try:
        return ApiSettings()
    except ValidationError as exc:
        sys.exit(describe_validation_error(exc))
