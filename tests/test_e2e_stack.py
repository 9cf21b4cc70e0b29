"""End to end on the real processes `make run` starts: Temporal dev server, embedded
cloud, worker and API (uvicorn), driven over HTTP like a user and an in-guest agent.

create pool -> prestarted desktops ready -> claim -> connect -> disconnect ->
reconnect inside retention -> disconnect -> retention expires -> desktop destroyed
(its server gone from the cloud) -> reserve replenished.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.agent_secret import agent_secret
from activities.cloud_driver import connect
from tests.stacks import launched_stack
from tools.run import Stack

RETENTION_S = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cloud_args = ["--build-delay", "0.3", "--delete-delay", "0.2", "--start-delay", "0.1", "--stop-delay", "0.1"]
    with launched_stack(tmp_path_factory.mktemp("stack"), cloud_args) as running:
        yield running


def _until(fetch: Callable[[], Any], accept: Callable[[Any], bool], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not accept(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def signed_in(stack: Stack, username: str) -> httpx.Client:
    """A client signed in through the real login endpoint (demo directory: password demo-<name>)."""
    api = httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=30)
    login = api.post("/auth/login", json={"username": username, "password": f"demo-{username}"})
    assert login.status_code == 200, login.text
    api.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return api


def test_whole_desktop_life_on_real_processes(stack: Stack) -> None:
    api = signed_in(stack, "admin")
    alice = signed_in(stack, "alice")
    spec = {
        "name": "E2E floating",
        "naming_mask": "eef-",
        "max_desktops": 4,
        "prestarted": 2,
        "timers": {"disconnected_retention_s": RETENTION_S},
        "entitlement": {"groups": ["callcentre"]},
        "template": {"image": "win11-golden", "flavor": "vdi.medium", "networks": ["vdi-net"],
                     "security_groups": ["vdi-rdp"]},
    }  # fmt: skip
    created = api.post("/pools", json=spec)
    assert created.status_code == 201, created.text
    pool_id = created.json()["id"]

    def pool() -> dict[str, Any]:
        return dict(api.get(f"/pools/{pool_id}").json())

    filled = _until(pool, lambda p: p["counts"]["ready"] == 2)
    assert filled["counts"]["ready"] == 2 and filled["fill"] == "2 of 2 desktops ready"

    claimed = alice.post(f"/pools/{pool_id}/claims", headers={"Idempotency-Key": "alice-1"})
    assert claimed.status_code == 200, claimed.text
    desktop_id = claimed.json()["desktop_id"]
    retried = alice.post(f"/pools/{pool_id}/claims", headers={"Idempotency-Key": "alice-1"})
    assert retried.json()["desktop_id"] == desktop_id  # a retried request never takes a second desktop

    # The agent's secret reaches the server through its metadata, never through the workflow.
    conn = connect(stack.data / "clouds.yaml", "embedded")
    server_id = _until(lambda: api.get(f"/desktops/{desktop_id}").json()["server_id"], bool)
    metadata = conn.compute.get_server(server_id).metadata
    secret = agent_secret(stack.secret_key.encode(), desktop_id)
    assert metadata["deskpool_agent_secret"] == secret
    assert metadata["deskpool_desktop"] == desktop_id

    def event(kind: str, token: str = secret) -> httpx.Response:
        return api.post(f"/desktops/{desktop_id}/events", json={"kind": kind}, headers={"X-Desktop-Secret": token})

    assert event("connect", token="0" * 64).status_code == 403  # another desktop's secret is refused

    def state() -> str:
        return str(api.get(f"/desktops/{desktop_id}").json()["state"])

    assert event("connect").status_code == 202
    assert _until(state, lambda s: s == "connected") == "connected"
    assert event("disconnect").status_code == 202
    assert _until(state, lambda s: s == "disconnected") == "disconnected"
    assert event("connect").status_code == 202  # back inside the buffer: a blip costs nothing
    assert _until(state, lambda s: s == "connected") == "connected"
    time.sleep(RETENTION_S + 1)
    assert state() == "connected"  # the first disconnect's retention was cancelled

    assert event("disconnect").status_code == 202
    assert _until(state, lambda s: s == "destroyed", timeout_s=RETENTION_S + 20) == "destroyed"
    assert conn.compute.find_server(server_id, ignore_missing=True) is None

    refilled = _until(pool, lambda p: p["counts"]["ready"] == 2 and p["counts"]["assigned"] == 0)
    assert refilled["counts"]["ready"] == 2
    events = [e["action"] for e in api.get(f"/desktops/{desktop_id}").json()["events"]]
    assert "desktop.assigned" in events and any(a.startswith("desktop.destroyed") for a in events)


def test_demo_directory_sign_in_and_entitlement(stack: Stack) -> None:
    api = httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=30)
    assert api.post("/auth/login", json={"username": "dave", "password": "demo-dave"}).status_code == 200
    assert api.post("/auth/login", json={"username": "dave", "password": "demo-alice"}).status_code == 401
    admin = signed_in(stack, "admin")
    pool_id = admin.get("/pools").json()[0]["id"]
    assert admin.get(f"/pools/{pool_id}/entitlement").json()["total"] == 3  # callcentre: alice, bob, carol
    refused = signed_in(stack, "dave").post(f"/pools/{pool_id}/claims")  # a teacher, not in callcentre
    assert refused.status_code == 403


def test_bad_pool_definition_names_field_and_rule(stack: Stack) -> None:
    api = signed_in(stack, "admin")
    response = api.post(
        "/pools",
        json={"name": "Bad sizing", "naming_mask": "bad-", "naming_digits": 1, "max_desktops": 10,
              "template": {"image": "a", "flavor": "b"}},
    )  # fmt: skip
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", "max_desktops"]
    assert "1 naming digits allow at most 9" in detail[0]["msg"]


def test_readiness_reports_all_dependencies(stack: Stack, tmp_path: Path) -> None:
    ready = httpx.get(f"http://127.0.0.1:{stack.api_port}/readyz", timeout=10).json()
    assert ready == {"ready": True, "checks": ready["checks"]} and all(c["ok"] for c in ready["checks"].values())
    ui = httpx.get(f"http://127.0.0.1:{stack.ui_port}/", timeout=10)
    assert ui.status_code == 200


def test_make_run_stops_every_process_even_on_a_second_interrupt(tmp_path: Path) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys

    base = next(b for b in (random.randrange(20000, 60000, 10) for _ in range(50)) if _all_free(range(b, b + 7)))
    errors = tmp_path / "make-run.stderr"
    with errors.open("w") as sink:  # the child keeps its own copy of the descriptor
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "tools.run", "--data", str(tmp_path), "--no-demo-pool", "--port-base", str(base)],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )

    def said() -> str:  # what make run printed, for a failure's message
        return f"stdout:\n{''.join(printed)[-3000:]}\nstderr:\n{errors.read_text()[-3000:]}"

    children: list[str] = []
    try:
        assert supervisor.stdout is not None
        printed: list[str] = []
        for line in supervisor.stdout:
            printed.append(line)
            if "Ctrl-C stops everything" in line:
                break
        else:
            pytest.fail(f"make run exited ({supervisor.wait(timeout=10)}) before it was up\n{said()}")
        children = subprocess.run(["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 4, f"children {children}\n{said()}"  # Temporal, the cloud, the worker, the API
        supervisor.send_signal(signal.SIGINT)
        assert "stopping" in supervisor.stdout.readline() + supervisor.stdout.readline()
        supervisor.send_signal(signal.SIGINT)  # an impatient second Ctrl-C, while the children are being stopped
        assert supervisor.wait(timeout=60) == 0
        left = [pid for pid in children if os.path.exists(f"/proc/{pid}")]
        assert not left, f"processes left running: {left}"
    finally:
        # Whatever failed above, no stack is left behind for the next test run to trip over.
        for pid in [*children, str(supervisor.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _all_free(ports: range) -> bool:
    for port in ports:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


def test_day2_operations_on_real_processes(stack: Stack) -> None:
    """Issue 7 over HTTP on the processes `make run` starts, against the embedded OpenStack-compatible
    cloud: increase, shrink, a template change rolled out by Recreate, a capacity schedule, removal."""
    api = signed_in(stack, "admin")
    spec = {
        "name": "E2E day two",
        "naming_mask": "eed-",
        "max_desktops": 3,
        "prestarted": 2,
        "entitlement": {"groups": ["callcentre"]},
        "template": {"image": "win11-golden", "flavor": "vdi.small", "networks": ["vdi-net"]},
    }
    created = api.post("/pools", json=spec)
    assert created.status_code == 201, created.text
    pool_id = created.json()["id"]

    def pool() -> dict[str, Any]:
        return dict(api.get(f"/pools/{pool_id}").json())

    assert _until(pool, lambda p: p["counts"]["ready"] == 2)["counts"]["ready"] == 2
    assert api.post(f"/pools/{pool_id}/increase", json={"by": 2}).json()["spec"]["max_desktops"] == 5
    assert api.post(f"/pools/{pool_id}/shrink", json={"by": 1}).json()["spec"]["max_desktops"] == 4

    # A new template makes version 2; Recreate replaces the idle version-1 desktops.
    edited = api.put(
        f"/pools/{pool_id}", json={**pool()["spec"], "template": {**spec["template"], "flavor": "vdi.medium"}}
    )
    assert edited.status_code == 200 and edited.json()["template_version"] == 2
    started = api.post(f"/pools/{pool_id}/recreate", json={"strategy": "rolling"})
    assert started.status_code == 202, started.text
    done = _until(lambda: api.get(f"/pools/{pool_id}/rollout").json(), lambda r: r["status"] == "completed", 90)
    assert done["status"] == "completed", done
    _until(lambda: api.get("/desktops", params={"pool": pool_id}).json(),
           lambda ds: len(ds) == 2 and all(d["template_version"] == 2 for d in ds))  # fmt: skip
    desktops = api.get("/desktops", params={"pool": pool_id}).json()
    assert {d["template_version"] for d in desktops} == {2}, desktops

    # A capacity rule, applied now: the reserve grows to 3.
    rule = {"name": "Morning rush", "calendar": {"hour": 8, "time_zone": "UTC"}, "sizing": {"prestarted": 3}}
    assert api.post(f"/pools/{pool_id}/schedules", json=rule).status_code == 201
    assert api.post(f"/pools/{pool_id}/schedules/Morning rush/trigger").status_code == 202
    grown = _until(pool, lambda p: p["spec"]["prestarted"] == 3 and p["counts"]["ready"] == 3, 60)
    assert grown["counts"]["ready"] == 3, grown

    # Removal destroys every desktop and then the pool itself.
    assert api.delete(f"/pools/{pool_id}", params={"desktops": "destroy"}).status_code == 202
    gone = _until(lambda: api.get(f"/pools/{pool_id}").status_code, lambda code: code == 404, 60)
    assert gone == 404
    left = api.get("/desktops", params={"pool": pool_id}).json()
    assert left == [], f"desktops still live after removal: {left}"
