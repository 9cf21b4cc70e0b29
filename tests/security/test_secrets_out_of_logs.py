"""Passwords, session and API tokens, agent secrets, console tokens and the secret key never appear
in deskpool's logs, in a workflow history, or in Temporal's or the read model's database files.

The processes `make run` starts (Temporal dev server, embedded cloud, worker, API) do a day's
work with those secrets over HTTP — sign-ins (one with a wrong password: a typo is often
someone's real password), an administrator's API token, a claim, the desktop's agent reporting
with its secret, a remote console — and then the log files of the API, the worker and Temporal,
every workflow history fetched from Temporal, and the raw bytes of the SQLite read model and
of Temporal's database are searched for each secret. The embedded cloud's own log and store
are left out: the cloud is where the agent secret is meant to be (the server's metadata).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.agent_secret import agent_secret
from activities.cloud_driver import connect
from tests.stacks import launched_stack
from tests.test_e2e_stack import _until
from tools.run import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cloud_args = ["--build-delay", "0.2", "--delete-delay", "0.1", "--start-delay", "0.1", "--stop-delay", "0.1"]
    with launched_stack(tmp_path_factory.mktemp("secrets"), cloud_args, crash_free=False) as running:
        yield running


def _sign_in(base: str, username: str, password: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=30)
    login = client.post("/auth/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    token = str(login.json()["token"])
    client.headers["Authorization"] = f"Bearer {token}"
    return client, token


def _secret_day(stack: Stack) -> tuple[dict[str, str], str]:
    """Use every kind of secret once, through the API; what was used, by name, and the desktop."""
    base = f"http://127.0.0.1:{stack.api_port}"
    wrong_password = f"Correct-Horse-{secrets.token_hex(6)}"
    assert httpx.post(f"{base}/auth/login", json={"username": "alice", "password": wrong_password}).status_code == 401
    admin, admin_token = _sign_in(base, "admin", "demo-admin")
    alice, alice_token = _sign_in(base, "alice", "demo-alice")
    made = admin.post("/auth/tokens", json={"name": "ci", "expires_in_days": 1})
    assert made.status_code == 201, made.text
    api_token = str(made.json()["token"])
    assert httpx.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {api_token}"}).status_code == 200
    spec = {"name": "Secrets", "naming_mask": "sec-", "max_desktops": 2, "prestarted": 1,
            "entitlement": {"groups": ["callcentre"]},
            "template": {"image": "win11-golden", "flavor": "vdi.small", "networks": ["vdi-net"]}}  # fmt: skip
    created = admin.post("/pools", json=spec)
    assert created.status_code == 201, created.text
    pool_id = created.json()["id"]
    _until(lambda: admin.get(f"/pools/{pool_id}").json(), lambda p: p["counts"]["ready"] >= 1, 60)
    claimed = alice.post(f"/pools/{pool_id}/claims", headers={"Idempotency-Key": "secrets-1"})
    assert claimed.status_code == 200, claimed.text
    desktop_id = claimed.json()["desktop_id"]
    agent = agent_secret(stack.secret_key.encode(), desktop_id)
    # The claim's answer may come before the read model shows the desktop as hers (404 until then).
    server_id = _until(lambda: alice.get(f"/desktops/{desktop_id}").json().get("server_id"), bool)
    metadata = connect(stack.data / "clouds.yaml", "embedded").compute.get_server(server_id).metadata
    assert metadata["deskpool_agent_secret"] == agent  # the secret is real and where the agent reads it
    for kind in ("connect", "disconnect"):
        sent = httpx.post(f"{base}/desktops/{desktop_id}/events", json={"kind": kind},
                          headers={"X-Desktop-Secret": agent})  # fmt: skip
        assert sent.status_code == 202, sent.text
    console = alice.get(f"/desktops/{desktop_id}/console")
    assert console.status_code == 200, console.text
    console_token = console.json()["url"].rpartition("token=")[2]
    assert len(console_token) >= 16
    assert alice.post(f"/desktops/{desktop_id}/release").status_code == 200
    _until(lambda: admin.get(f"/desktops/{desktop_id}").json()["state"], lambda s: s == "destroyed", 60)
    return {
        "admin's password": "demo-admin",
        "alice's password": "demo-alice",
        "a wrong password": wrong_password,
        "admin's session token": admin_token,
        "admin's session token signature": admin_token.rpartition(".")[2],
        "alice's session token": alice_token,
        "an API token": api_token,
        "the API token's secret part": api_token.split("_", 2)[2],  # the secret may hold "_" itself
        "the agent secret": agent,
        "a console token": console_token,
        "DESKPOOL_SECRET_KEY": stack.secret_key,
    }, desktop_id


async def _histories(stack: Stack) -> dict[str, str]:
    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
    found: dict[str, str] = {}
    async for execution in client.list_workflows():
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        found[f"{execution.id} {execution.run_id}"] = (await handle.fetch_history()).to_json()
    return found


def _leaks(secrets_used: dict[str, str], texts: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}" for where, text in texts.items() for what, value in secrets_used.items() if value in text
    ]


def test_secrets_stay_out_of_logs_histories_and_databases(stack: Stack) -> None:
    used, desktop_id = _secret_day(stack)
    histories = asyncio.run(_histories(stack))
    kinds = {key.split("/")[0] for key in histories}
    assert {"pool", "desktop", "reconcile"} <= kinds, kinds  # the histories are really there to search
    assert not _leaks(used, histories)

    stack.stop()  # every log written and closed, every database file flushed
    read: Callable[[Path], str] = lambda path: path.read_bytes().decode("latin-1")  # noqa: E731
    files = {name: stack.data / "logs" / f"{name}.log" for name in ("api", "worker", "temporal")}
    files |= {f"database file {path.name}": path for path in stack.data.glob("*.db*")}
    assert {"deskpool.db", "temporal.db"} <= {path.name for path in files.values()}
    texts: dict[str, Any] = {name: read(path) for name, path in files.items()}
    assert "POST /auth/login" in texts["api"] and "/events" in texts["api"]  # the API did log its requests
    # Temporal's database holds the histories' payloads as they are: a secret in one would be found.
    temporal_files = [text for name, text in texts.items() if name.startswith("database file temporal.db")]
    assert any(f'"{desktop_id}"' in text for text in temporal_files)
    assert not _leaks(used, texts)
