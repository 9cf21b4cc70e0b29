"""Where the CLI talks to and as whom: API URL, saved credentials, the per-invocation runtime.

Credentials live in `$XDG_CONFIG_HOME/deskpool/credentials.json` (default `~/.config`), mode 0600:
`{"api_url", "token", "expires_at", "username"}`. `DESKPOOL_TOKEN` overrides the saved token.
A saved token is only ever sent to the API URL it was issued by.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer

from api.cli.client import ApiClient

DEFAULT_API_URL = "http://127.0.0.1:8000"
TOKEN_ENV = "DESKPOOL_TOKEN"


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True)
class Credentials:
    api_url: str
    token: str
    expires_at: str | None = None
    username: str | None = None


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "deskpool"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def load_credentials() -> Credentials | None:
    path = credentials_path()
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("token"), str) or not data.get("api_url"):
        return None
    return Credentials(
        api_url=normalize_url(str(data["api_url"])),
        token=data["token"],
        expires_at=data.get("expires_at"),
        username=data.get("username"),
    )


def save_credentials(credentials: Credentials) -> Path:
    """Written to a 0600 temporary file in a 0700 directory, then renamed over the old one."""
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(credentials.__dict__, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def delete_credentials() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass
class Runtime:
    """Everything one invocation needs; tests pass their own as `obj` (transport, sleep, clock)."""

    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    new_key: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    api_url: str = DEFAULT_API_URL
    output: Output = Output.TABLE
    credentials: Credentials | None = None
    _clients: dict[str | None, ApiClient] = field(default_factory=dict)

    @property
    def json(self) -> bool:
        return self.output is Output.JSON

    def configure(self, api_url: str | None, output: Output) -> None:
        self.output = output
        self.credentials = load_credentials()
        if api_url:
            self.api_url = normalize_url(api_url)
        elif self.credentials is not None:
            self.api_url = self.credentials.api_url
        else:
            self.api_url = DEFAULT_API_URL

    @property
    def saved_token_applies(self) -> bool:
        return self.credentials is not None and self.credentials.api_url == self.api_url

    @property
    def token(self) -> str | None:
        env = os.environ.get(TOKEN_ENV, "").strip()
        if env:
            return env
        if self.credentials is not None and self.saved_token_applies:
            return self.credentials.token
        return None

    def client(self, *, anonymous: bool = False) -> ApiClient:
        """The API client for this invocation (`anonymous`: without any token, for login)."""
        token = None if anonymous else self.token
        if token not in self._clients:
            self._clients[token] = ApiClient(self.api_url, token, transport=self.transport)
        return self._clients[token]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def runtime(ctx: typer.Context) -> Runtime:
    obj = ctx.find_object(Runtime)
    if obj is None:
        raise RuntimeError("the deskpool CLI runtime is missing (run through api.cli.main:app)")
    return obj
