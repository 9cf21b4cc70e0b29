"""Run `deskpool` in-process against the fake API: no network, no sleeping, a private config dir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from api.cli.config import Credentials, Runtime, save_credentials
from api.cli.main import app
from tests.cli.fake_api import ADMIN_TOKEN, ALICE_TOKEN, FakeApi


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("DESKPOOL_TOKEN", "DESKPOOL_API_URL", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return config / "deskpool" / "credentials.json"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run(api: FakeApi, clock: FakeClock) -> Run:
    def invoke(*args: str, input: str | None = None) -> Result:
        runtime = Runtime(transport=api.transport, sleep=clock.sleep, clock=clock.monotonic)
        return CliRunner().invoke(app, list(args), obj=runtime, input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def as_admin(api: FakeApi) -> None:
    save_credentials(Credentials(api_url=api.base_url, token=ADMIN_TOKEN, expires_at=None, username="admin"))


@pytest.fixture
def as_alice(api: FakeApi) -> None:
    save_credentials(Credentials(api_url=api.base_url, token=ALICE_TOKEN, expires_at=None, username="alice"))
