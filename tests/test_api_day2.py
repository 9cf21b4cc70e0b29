"""Day-2 operations over the API and the real engine (dev server, worker, activities) on the
in-memory fake cloud (issue 7): power on/off/restart/forced restart and their 409 rules, console
and console log (who may, and the console URL never in a workflow history), immediate release of
disconnected desktops, detach, shrink, and personal desktops across a template change."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openstack import exceptions as os_exceptions
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.agent_secret import agent_secret
from activities.directory import DirectorySettings
from api.cloud_access import get_clouds
from api.routers.pool_operations import _release_if_disconnected
from api.settings import ApiSettings
from tests.api_client import api_client
from tests.engine import engine_worker
from tests.engine_api import AGENT_KEY, directory_file, until, who
from tests.fakes import FakeCloud
from workflows.messages import desktop_workflow_id

TEMPLATE = {"image": "win11-golden", "flavor": "vdi.medium", "metadata": {"owner": "finance"}}


@dataclass
class Day2:
    api: httpx.AsyncClient
    cloud: FakeCloud
    temporal: Client


@pytest.fixture
async def day2(dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Day2]:
    """The engine-backed API (as tests/engine_api.py's `api`), its fake cloud also the API's own."""
    cloud = FakeCloud()
    settings = ApiSettings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        database_url=sqlite_url,
        directory=DirectorySettings(backend="builtin", builtin_file=directory_file(tmp_path / "dir.yaml")),
        super_users=["root"],
        secret_key=AGENT_KEY.decode(),  # type: ignore[arg-type]
        cloud_call_timeout_s=5,
    )
    overrides = {get_clouds: lambda: cloud.driver}
    async with (
        engine_worker(dev_env.client, task_queue, sqlite_url, cloud),
        api_client(settings, overrides) as (_, client),
    ):
        yield Day2(client, cloud, dev_env.client)


async def make_pool(api: httpx.AsyncClient, **fields: Any) -> str:
    body = {"template": TEMPLATE, "name": f"Day2 {uuid.uuid4().hex[:6]}", "naming_mask": "day-",
            "entitlement": {"groups": ["callcentre"]}, **fields}  # fmt: skip
    made = await api.post("/pools", json=body, headers=who(api, "root"))
    assert made.status_code == 201, made.text
    pool_id: str = made.json()["id"]
    return pool_id


async def idle_desktops(api: httpx.AsyncClient, pool: str, how_many: int, state: str = "ready") -> list[str]:
    root = who(api, "root")
    listed = await until(
        api, f"/desktops?pool={pool}&state={state}", lambda ds: len(ds) == how_many and ds[0]["id"], root
    )
    return [d["id"] for d in listed]


async def personal_desktop_of(api: httpx.AsyncClient, pool: str, user: str) -> str:
    """An administrator assigns the user an idle desktop of the personal pool, once the pool has one
    (the read model shows a desktop ready a moment before its report reaches the pool)."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        assigned = await api.post(f"/pools/{pool}/assignments", json={"user": user}, headers=who(api, "root"))
        if assigned.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert assigned.status_code == 200, assigned.text
    desktop: str = assigned.json()["desktop_id"]
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "assigned", who(api, "root"))
    return desktop


async def agent(api: httpx.AsyncClient, desktop: str, kind: str) -> None:
    secret = {"X-Desktop-Secret": agent_secret(AGENT_KEY, desktop)}
    assert (await api.post(f"/desktops/{desktop}/events", json={"kind": kind}, headers=secret)).status_code == 202


def events(detail: dict[str, Any]) -> list[str]:
    return [e["action"] for e in detail["events"]]


async def test_power_actions_and_the_rules_that_refuse_them(day2: Day2, monkeypatch: pytest.MonkeyPatch) -> None:
    api, root, alice, bob = day2.api, who(day2.api, "root"), who(day2.api, "alice"), who(day2.api, "bob")
    reboots: list[tuple[str, bool]] = []
    monkeypatch.setattr(day2.cloud, "reboot", lambda server_id, hard: reboots.append((server_id, hard)))
    # Personal: the pool keeps no hot reserve, so it leaves an administrator's power choices alone.
    pool = await make_pool(api, assignment="personal", prestarted=0, min_desktops=2, max_desktops=2)
    idle, _ = await idle_desktops(api, pool, 2)

    # The older body still works; a body must say one thing.
    off = await api.post(f"/desktops/{idle}/power", json={"on": False}, headers=root)
    assert off.status_code == 202 and off.json()["status"] == "powering off", off.text
    await until(api, f"/desktops/{idle}", lambda d: d["state"] == "standby", root)
    for bad in ({}, {"on": True, "action": "off"}, {"action": "explode"}):
        assert (await api.post(f"/desktops/{idle}/power", json=bad, headers=root)).status_code == 422, bad
    restart_off = await api.post(f"/desktops/{idle}/power", json={"action": "restart"}, headers=root)
    assert restart_off.status_code == 409 and "powered off" in restart_off.json()["detail"]
    on = await api.post(f"/desktops/{idle}/power", json={"action": "on"}, headers=root)
    assert on.status_code == 202 and on.json()["action"] == "on"
    await until(api, f"/desktops/{idle}", lambda d: d["state"] == "ready", root)

    # Alice's desktop, connected: never powered off under her; restarted, it stays hers.
    desktop = await personal_desktop_of(api, pool, "alice")
    await agent(api, desktop, "connect")
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "connected", alice)
    refused = await api.post(f"/desktops/{desktop}/power", json={"action": "off"}, headers=root)
    assert refused.status_code == 409 and "release it first" in refused.json()["detail"], refused.text
    assert (await api.post(f"/desktops/{desktop}/power", json={"action": "restart"}, headers=alice)).status_code == 403
    assert (await api.post(f"/desktops/{desktop}/power", json={"action": "restart"}, headers=bob)).status_code == 404

    restarted = await api.post(f"/desktops/{desktop}/power", json={"action": "restart"}, headers=root)
    assert restarted.status_code == 202 and restarted.json()["desktop_state"] == "connected", restarted.text
    detail = await until(api, f"/desktops/{desktop}", lambda d: "desktop.restarted" in events(d), root)
    forced = await api.post(f"/desktops/{desktop}/power", json={"action": "force_restart"}, headers=root)
    assert forced.status_code == 202 and forced.json()["status"] == "forcing a restart"
    detail = await until(api, f"/desktops/{desktop}", lambda d: "desktop.restarted (forced)" in events(d), root)
    assert (detail["state"], detail["user"]) == ("connected", "alice")
    assert "desktop.restarting by root" in events(detail) and "desktop.forcing a restart by root" in events(detail)
    server = detail["server_id"]
    assert reboots == [(server, False), (server, True)]
    audit = (await api.get("/audit", params={"desktop": desktop, "action": "desktop.power"}, headers=root)).json()
    assert {(e["detail"]["action"], e["detail"].get("user")) for e in audit} >= {
        ("restart", "alice"), ("force_restart", "alice")
    }  # fmt: skip


async def test_console_for_user_and_admins_log_for_admins_and_no_url_in_history(
    day2: Day2, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, root, alice, carol = day2.api, who(day2.api, "root"), who(day2.api, "alice"), who(day2.api, "carol")
    token = uuid.uuid4().hex
    monkeypatch.setattr(day2.cloud, "console_url", lambda sid: ("spice-html5", f"https://console.test/?t={token}"))
    pool = await make_pool(api, assignment="personal", prestarted=0, min_desktops=1, max_desktops=1)
    desktop = await personal_desktop_of(api, pool, "alice")

    mine = await api.get(f"/desktops/{desktop}/console", headers=alice)
    assert mine.status_code == 200, mine.text
    assert mine.json()["url"].endswith(token) and mine.json()["type"] == "spice-html5" and mine.json()["expires_hint"]
    assert (await api.get(f"/desktops/{desktop}/console", headers=root)).status_code == 200
    assert (await api.get(f"/desktops/{desktop}/console", headers=carol)).status_code == 404  # not hers

    log = await api.get(f"/desktops/{desktop}/log", params={"lines": 5}, headers=root)
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert len(log.text.splitlines()) == 5 and "boot line" in log.text
    assert (await api.get(f"/desktops/{desktop}/log", headers=alice)).status_code == 403  # administrators only
    assert (await api.get(f"/desktops/{desktop}/log", headers=carol)).status_code == 404
    assert (await api.get(f"/desktops/{desktop}/log", params={"lines": 0}, headers=root)).status_code == 422

    # The token went from the cloud to the caller only: not into the desktop's history, nor the audit log.
    history = await day2.temporal.get_workflow_handle(desktop_workflow_id(desktop)).fetch_history()
    assert history.events and token not in history.to_json()
    audit = (await api.get("/audit", params={"desktop": desktop}, headers=root)).json()
    assert "desktop.console_opened" in {e["action"] for e in audit} and token not in str(audit)

    # Cloud failures are answered once, mapped: 404 gone, 409 wrong state, 503 down.
    for error, code in ((os_exceptions.NotFoundException("gone"), 404),
                        (os_exceptions.ConflictException("Instance is not ready.", http_status=409), 409),
                        (os_exceptions.HttpException("down", http_status=503), 503)):  # fmt: skip

        def failing(_sid: str, error: Exception = error) -> tuple[str, str]:
            raise error

        monkeypatch.setattr(day2.cloud, "console_url", failing)
        answer = await api.get(f"/desktops/{desktop}/console", headers=root)
        assert answer.status_code == code, (error, answer.text)


async def test_release_disconnected_releases_only_disconnected_desktops(day2: Day2) -> None:
    api, root, alice, carol = day2.api, who(day2.api, "root"), who(day2.api, "alice"), who(day2.api, "carol")
    pool = await make_pool(api, prestarted=2, max_desktops=3)  # retention: the default 30 minutes
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 2, root)
    held = {}
    for user, headers in (("alice", alice), ("carol", carol)):
        claimed = await api.post(f"/pools/{pool}/claims", headers=headers)
        assert claimed.status_code in (200, 202), claimed.text
        outcome = await until(
            api, f"/pools/{pool}/claims/{claimed.json()['request_id']}", lambda c: c["status"] == "assigned", headers
        )
        held[user] = outcome["desktop_id"]
        await until(api, f"/desktops/{held[user]}", lambda d: d["state"] == "assigned", headers)
        await agent(api, held[user], "connect")
        await until(api, f"/desktops/{held[user]}", lambda d: d["state"] == "connected", headers)
    await agent(api, held["alice"], "disconnect")
    await until(api, f"/desktops/{held['alice']}", lambda d: d["state"] == "disconnected", alice)

    assert (await api.post(f"/pools/{pool}/release-disconnected", headers=alice)).status_code == 403
    released = await api.post(f"/pools/{pool}/release-disconnected", headers=root)
    assert released.status_code == 200, released.text
    assert released.json() == {"released": [held["alice"]], "skipped": {}}
    gone = await until(api, f"/desktops/{held['alice']}", lambda d: d["state"] == "destroyed", root)
    assert gone["user"] is None
    assert (await api.get(f"/desktops/{held['carol']}", headers=carol)).json()["state"] == "connected"
    # A desktop whose user came back meanwhile is left alone: the workflow, not the read model, decides.
    refusal = await _release_if_disconnected(day2.temporal, held["carol"], "immediate release by root")
    assert refusal is not None and "not disconnected" in refusal
    assert (await api.get(f"/desktops/{held['carol']}", headers=carol)).json()["state"] == "connected"
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] >= 1 and p["counts"]["connected"] == 1, root)


async def test_detach_needs_power_off_keeps_the_server_and_the_pool_replenishes(day2: Day2) -> None:
    api, root, alice = day2.api, who(day2.api, "root"), who(day2.api, "alice")
    pool = await make_pool(api, assignment="personal", prestarted=0, min_desktops=2, max_desktops=2)
    both = await idle_desktops(api, pool, 2)
    in_use = await personal_desktop_of(api, pool, "alice")
    first = next(d for d in both if d != in_use)

    running = await api.post(f"/desktops/{first}/detach", headers=root)
    assert running.status_code == 409 and running.json()["detail"].startswith("must be powered off"), running.text
    held = await api.post(f"/desktops/{in_use}/detach", headers=root)
    assert held.status_code == 409 and "by its user" in held.json()["detail"]
    assert (await api.post(f"/desktops/{in_use}/detach", headers=alice)).status_code == 403

    assert (await api.post(f"/desktops/{first}/power", json={"action": "off"}, headers=root)).status_code == 202
    standby = await until(api, f"/desktops/{first}", lambda d: d["state"] == "standby", root)
    server_id = standby["server_id"]
    detaching = await api.post(f"/desktops/{first}/detach", headers=root)
    assert detaching.status_code == 202 and detaching.json()["status"] == "detaching", detaching.text
    await until(api, f"/desktops/{first}", lambda d: d["state"] == "detached", root)

    server = day2.cloud.servers[server_id]  # kept, as it was: powered off, its own metadata, no deskpool marks
    assert server.status == "SHUTOFF"
    assert server.tags == [] and server.metadata == {"owner": "finance"}
    assert day2.cloud.deleted == 0
    # The pool counts it gone and makes a new one; alice's desktop is untouched.
    pool_view = await until(
        api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 1 and p["counts"]["assigned"] == 1, root
    )
    assert pool_view["counts"]["standby"] == 0
    listed = (await api.get(f"/desktops?pool={pool}", headers=root)).json()
    assert first not in {d["id"] for d in listed} and len(listed) == 2
    assert (await api.get(f"/desktops/{in_use}", headers=root)).json()["user"] == "alice"
    audit = (await api.get("/audit", params={"desktop": first}, headers=root)).json()
    assert "desktop.detaching" in {e["action"] for e in audit}


async def test_shrink_takes_idle_desktops_and_never_goes_below_those_in_use(day2: Day2) -> None:
    api, root = day2.api, who(day2.api, "root")
    pool = await make_pool(api, prestarted=1, max_desktops=3)
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 1, root)
    held = []
    for user in ("alice", "carol"):
        claimed = await api.post(f"/pools/{pool}/claims", headers=who(api, user))
        outcome = await until(
            api, f"/pools/{pool}/claims/{claimed.json()['request_id']}", lambda c: c["status"] == "assigned", root
        )
        held.append(outcome["desktop_id"])
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 1 and p["counts"]["assigned"] == 2, root)

    below = await api.post(f"/pools/{pool}/shrink", json={"by": 2}, headers=root)
    assert below.status_code == 409 and below.json()["detail"].startswith("by: 2 desktops"), below.text
    assert (await api.post(f"/pools/{pool}/shrink", json={"by": 0}, headers=root)).status_code == 422
    assert (await api.post(f"/pools/{pool}/shrink", json={"by": 1}, headers=who(api, "alice"))).status_code == 403

    shrunk = await api.post(f"/pools/{pool}/shrink", json={"by": 1}, headers=root)
    assert shrunk.status_code == 200 and shrunk.json()["spec"]["max_desktops"] == 2, shrunk.text
    after = await until(
        api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 0 and p["counts"]["provisioning"] == 0, root
    )
    assert after["counts"]["assigned"] == 2  # the idle one went; the two in use stay theirs
    for desktop, user in zip(held, ("alice", "carol"), strict=True):
        assert (await api.get(f"/desktops/{desktop}", headers=root)).json()["user"] == user

    # The pool's sizing rules still hold: 422 naming the field and the rule.
    floor = await make_pool(api, assignment="personal", prestarted=0, min_desktops=2, max_desktops=3)
    refused = await api.post(f"/pools/{floor}/shrink", json={"by": 2}, headers=root)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("by: max_desktops"), refused.text


async def test_an_assigned_personal_desktop_survives_a_template_change(day2: Day2) -> None:
    api, root = day2.api, who(day2.api, "root")
    pool = await make_pool(api, assignment="personal", prestarted=0, min_desktops=1, max_desktops=3)
    desktop = await personal_desktop_of(api, pool, "alice")
    before = (await api.get(f"/desktops/{desktop}", headers=root)).json()
    assert before["template_version"] == 1

    spec = (await api.get(f"/pools/{pool}", headers=root)).json()["spec"]
    changed = {**spec, "min_desktops": 2, "template": {**spec["template"], "image": "ubuntu-desktop"}}
    edited = await api.put(f"/pools/{pool}", json=changed, headers=root)
    assert edited.status_code == 200 and edited.json()["template_version"] == 2, edited.text
    # The pool acts on the new template (a new desktop is made from it) ...
    fresh = await until(
        api, f"/desktops?pool={pool}&template_version=2", lambda ds: ds and ds[0]["state"] == "ready", root
    )
    assert day2.cloud.servers[fresh[0]["server_id"]].image == "ubuntu-desktop"
    # ... while alice's desktop stays hers, on its template, its server neither rebuilt nor replaced.
    after = (await api.get(f"/desktops/{desktop}", headers=root)).json()
    assert (after["user"], after["state"], after["template_version"]) == ("alice", "assigned", 1)
    server = day2.cloud.servers[after["server_id"]]
    assert after["server_id"] == before["server_id"] and server.image == "win11-golden" and server.rebuilds == 0


async def test_a_claim_given_a_desktop_being_detached_goes_back_to_the_head_of_the_line(
    day2: Day2, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool still counts a detaching desktop idle and may give it to a claim: the desktop answers
    that assignment before it leaves, and the user is served by another desktop (not left with an
    ended claim)."""
    api, root, alice = day2.api, who(day2.api, "root"), who(day2.api, "alice")
    # Revert pool without a reserve: both desktops rest powered off, the pool leaves them so.
    pool = await make_pool(api, release="revert", prestarted=0, min_desktops=2, max_desktops=2)
    first, second = sorted(await idle_desktops(api, pool, 2, state="standby"))
    stripping, strip = threading.Event(), day2.cloud.remove_tags

    def held_strip(server_id: str, tags: list[str]) -> None:
        stripping.wait(20)  # the detach holds here until the claim has been given the desktop
        strip(server_id, tags)

    monkeypatch.setattr(day2.cloud, "remove_tags", held_strip)
    assert (await api.post(f"/desktops/{first}/detach", headers=root)).status_code == 202
    await until(api, f"/desktops/{first}", lambda d: d["state"] == "releasing", root)
    claimed = await api.post(f"/pools/{pool}/claims", headers=alice)
    assert claimed.status_code == 200 and claimed.json()["desktop_id"] == first, claimed.text  # lowest number
    stripping.set()

    await until(api, f"/desktops/{first}", lambda d: d["state"] == "detached", root)
    request_id = claimed.json()["request_id"]
    # Until the pool has heard the detaching desktop's answer (it follows the detached projection).
    served = await until(
        api,
        f"/pools/{pool}/claims/{request_id}",
        lambda c: c["status"] != "waiting" and c["desktop_id"] != first,
        alice,
    )
    assert (served["status"], served["desktop_id"]) == ("assigned", second), served
