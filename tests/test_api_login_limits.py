"""Failed sign-ins are limited per user and per address: 429 with Retry-After naming the rule;
successful sign-ins never count. The built-in demo directory (alice / demo-alice, bob / demo-bob)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from activities.directory import DirectorySettings
from api.settings import ApiSettings
from tests.api_client import api_client


def _settings(tmp_path: Path, **limits: Any) -> ApiSettings:
    return ApiSettings(
        temporal_address="127.0.0.1:1",
        database_url=f"sqlite:///{tmp_path}/x.db",
        directory=DirectorySettings(backend="builtin"),
        **limits,
    )


@asynccontextmanager
async def _clients(settings: ApiSettings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two clients of one app, calling from two addresses (as uvicorn would resolve them)."""
    async with api_client(settings) as (app, first):
        other = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=other, base_url="http://deskpool.test") as second:
            yield first, second


async def _login(client: httpx.AsyncClient, username: str, password: str | None = None) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password or f"demo-{username}"})


async def test_a_users_failures_are_limited_even_for_the_right_password_then(tmp_path: Path) -> None:
    async with _clients(_settings(tmp_path, login_max_failures_per_user=3)) as (here, elsewhere):
        for attempt in ("wrong-1", "wrong-2", "wrong-3"):
            assert (await _login(here, "alice", attempt)).status_code == 401
        # Guessing goes on from another address and with another spelling: the same account's budget.
        throttled = await _login(elsewhere, "ALICE", "wrong-4")
        assert throttled.status_code == 429
        assert "per user" in throttled.json()["detail"] and "at most 3 in 300 s" in throttled.json()["detail"]
        assert 1 <= int(throttled.headers["retry-after"]) <= 301
        # The right password now answers 429 too: otherwise the one 200 among 429s would give it away.
        assert (await _login(here, "alice")).status_code == 429
        # Another account from the same address is not touched.
        assert (await _login(here, "bob")).status_code == 200


async def test_an_address_spraying_many_users_is_limited(tmp_path: Path) -> None:
    settings = _settings(tmp_path, login_max_failures_per_user=0, login_max_failures_per_address=4)
    async with _clients(settings) as (sprayer, colleague):
        for name in ("alice", "bob", "carol", "dave"):
            assert (await _login(sprayer, name, "Winter2026!")).status_code == 401
        throttled = await _login(sprayer, "erin", "Winter2026!")
        assert throttled.status_code == 429 and "per address" in throttled.json()["detail"]
        assert int(throttled.headers["retry-after"]) >= 1
        assert (await _login(sprayer, "alice")).status_code == 429
        assert (await _login(colleague, "alice")).status_code == 200  # another address signs in as usual


async def test_successful_sign_ins_never_count_and_forgive_the_users_failures(tmp_path: Path) -> None:
    async with _clients(_settings(tmp_path, login_max_failures_per_user=3, login_max_failures_per_address=5)) as (
        client,
        _,
    ):
        for _ in range(30):
            assert (await _login(client, "alice")).status_code == 200
        for _ in range(2):
            assert (await _login(client, "bob", "typo")).status_code == 401
        assert (await _login(client, "bob")).status_code == 200
        for _ in range(2):  # two more mistypes: after the success, bob's budget is whole again
            assert (await _login(client, "bob", "typo")).status_code == 401
        assert (await _login(client, "bob")).status_code == 200
        # The address keeps its four failures (a sprayer may hold one account): one more fills it.
        assert (await _login(client, "carol", "typo")).status_code == 401
        assert (await _login(client, "carol")).status_code == 429


async def test_parallel_guesses_get_no_more_answers_than_the_rule_allows(tmp_path: Path) -> None:
    settings = _settings(tmp_path, login_max_failures_per_user=3, login_max_failures_per_address=0)
    async with _clients(settings) as (client, _):
        answers = await asyncio.gather(*(_login(client, "alice", f"guess-{n}") for n in range(20)))
        codes = sorted(a.status_code for a in answers)
        assert codes.count(401) == 3 and codes.count(429) == 17, codes
        assert (await _login(client, "alice")).status_code == 429


async def test_the_limit_lifts_once_the_failures_leave_the_window(tmp_path: Path) -> None:
    settings = _settings(tmp_path, login_max_failures_per_user=1, login_failure_window_s=1)
    async with _clients(settings) as (client, _):
        assert (await _login(client, "alice", "wrong")).status_code == 401
        throttled = await _login(client, "alice")
        assert throttled.status_code == 429
        await asyncio.sleep(int(throttled.headers["retry-after"]))
        deadline = asyncio.get_running_loop().time() + 10
        answer = await _login(client, "alice")
        while answer.status_code == 429 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            answer = await _login(client, "alice")
        assert answer.status_code == 200


async def test_refused_input_is_not_counted_as_a_failure(tmp_path: Path) -> None:
    async with _clients(_settings(tmp_path, login_max_failures_per_user=1)) as (client, _):
        for _ in range(3):
            assert (await client.post("/auth/login", json={"username": "alice", "password": ""})).status_code == 422
        assert (await _login(client, "alice")).status_code == 200


def test_bad_limit_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="login_failure_window_s"):
        _settings(tmp_path, login_failure_window_s=0)
    with pytest.raises(ValidationError, match="login_max_failures_per_user"):
        _settings(tmp_path, login_max_failures_per_user=-1)
