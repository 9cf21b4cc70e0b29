"""C5: the directory goes down (a real slapd, stopped and started again on its port).

Sign-ins answer 503 while it is down; users who already hold a desktop keep it — their Connect
answers the same desktop, their agent's events are taken, the desktop stays theirs; users who
hold nothing get a clear answer (a desktop if their entitlement is still cached, else 503), never
a 500. Once slapd is back, sign-ins work again by themselves.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from activities.agent_secret import agent_secret
from bench.chaos.common import (
    ClaimRecord,
    FaultLog,
    Scale,
    ScenarioResult,
    Storm,
    chaos_stack,
    floating_pool,
    judge,
    sign_in_users,
)
from bench.harness import ADMIN, GROUP, BenchStack, password_of, user_names
from tools.directory_servers.openldap import OpenLdapServer
from tools.directory_servers.tree import DirectoryTree, TreeGroup, TreeUser

SERVICE_PASSWORD = "Chaos-Svc-Pass-1"


def _tree(users: list[str]) -> DirectoryTree:
    return DirectoryTree(
        service_user=TreeUser("deskpool-svc", SERVICE_PASSWORD),
        users=tuple(TreeUser(name, password_of(name)) for name in [ADMIN, *users]),
        groups=(TreeGroup(GROUP, users=tuple(users)),),
    )


def _ldap_env(server: OpenLdapServer) -> dict[str, str]:
    return {
        "DESKPOOL_DIRECTORY_BACKEND": "ldap",
        "DESKPOOL_DIRECTORY_URLS": json.dumps([server.url]),
        "DESKPOOL_DIRECTORY_BASE_DN": server.base_dn,
        "DESKPOOL_DIRECTORY_BIND_DN": server.service_dn,
        "DESKPOOL_DIRECTORY_BIND_PASSWORD": SERVICE_PASSWORD,
        "DESKPOOL_DIRECTORY_SERVER_KIND": "openldap",
        "DESKPOOL_DIRECTORY_CONNECT_TIMEOUT_S": "1",
        "DESKPOOL_DIRECTORY_RECEIVE_TIMEOUT_S": "2",
        "DESKPOOL_DIRECTORY_SERVER_RETRY_AFTER_S": "0",
    }


def _login(bench: BenchStack, user: str) -> int:
    body = {"username": user, "password": password_of(user)}
    return httpx.post(f"{bench.base_url}/auth/login", json=body, timeout=60).status_code


def c5_directory_down(root: Path, scale: Scale) -> ScenarioResult:
    result = ScenarioResult("C5", "directory (real slapd) down: login 503, holders keep their desktops", scale.name)
    began = time.monotonic()
    count = min(scale.storm_users, 8 if scale.name == "short" else 40)
    server = OpenLdapServer(_tree(user_names(count)))
    server.start()
    try:
        with chaos_stack(root, scale, users=count, env=_ldap_env(server)) as bench:
            pool_id = floating_pool(bench, scale, "ChaosFive")
            tokens = sign_in_users(bench, bench.users)
            holders, newcomers = bench.users[: count // 2], bench.users[count // 2 :]
            record = Storm(bench, pool_id, tokens, scale, "c5")
            faults = FaultLog()
            with httpx.Client(base_url=bench.base_url, timeout=60) as client:
                desktops = {user: _claim_and_connect(client, record, tokens[user], user, "before") for user in holders}
                server.stop()
                faults.add("slapd stopped")
                seen = _while_down(bench, client, record, tokens, desktops, newcomers, scale.outage_s)
                server.restart()
                faults.add(f"slapd started again after {scale.outage_s:.0f} s")
                faults.ended()
                login_back = _eventually(lambda: _login(bench, holders[0]) == 200, 60)
                for desktop_id in desktops.values():
                    _event(client, bench, desktop_id, "disconnect")
                for user in newcomers:
                    if not record.records[user].desktop_ids:
                        desktop_id = _claim_and_connect(client, record, tokens[user], user, "after")
                        _event(client, bench, desktop_id, "disconnect")
            judge(result, bench, [pool_id], [record], faults, scale)
            result.claims = record.claim_counts()
            result.details.update(seen)
            result.invariants["login_503_while_down"] = set(seen["logins_while_down"]) == {503}
            result.invariants["holders_keep_their_desktops"] = seen["holders_kept"] == len(holders)
            result.invariants["newcomers_get_a_clear_answer"] = all(
                s in (200, 202, 503) for s in seen["newcomer_claims_while_down"]
            )
            result.invariants["login_works_again_after"] = login_back
    finally:
        server.remove()
    result.seconds = round(time.monotonic() - began, 1)
    return result


def _claim_and_connect(client: httpx.Client, storm: Storm, token: str, user: str, tag: str) -> str:
    auth = {"Authorization": f"Bearer {token}"}
    key = f"c5-{tag}-{user}"
    claim = storm.records.setdefault(user, ClaimRecord(user, key))
    answer = client.post(f"/pools/{storm.pool_id}/claims", headers={**auth, "Idempotency-Key": key})
    claim.statuses[answer.status_code] += 1
    deadline = time.monotonic() + 120
    while answer.status_code in (202, 503) or answer.json().get("status") == "waiting":
        if time.monotonic() > deadline:
            claim.outcome = "hang"
            raise RuntimeError(f"{user}'s claim never assigned: {answer.text}")
        time.sleep(0.5)
        answer = client.get(f"/pools/{storm.pool_id}/claims/{key}", headers=auth)
        claim.statuses[answer.status_code] += 1
    if answer.status_code != 200 or answer.json().get("status") != "assigned":
        claim.outcome = "server_error" if answer.status_code >= 500 else "rejected"
        raise RuntimeError(f"{user}'s claim: {answer.status_code} {answer.text}")
    desktop_id = str(answer.json()["desktop_id"])
    claim.desktop_ids.add(desktop_id)
    claim.outcome = "served"
    _event(client, storm.bench, desktop_id, "connect")
    return desktop_id


def _event(client: httpx.Client, bench: BenchStack, desktop_id: str, kind: str) -> int:
    secret = agent_secret(bench.stack.secret_key.encode(), desktop_id)
    answer = client.post(f"/desktops/{desktop_id}/events", json={"kind": kind}, headers={"X-Desktop-Secret": secret})
    return answer.status_code


def _while_down(
    bench: BenchStack,
    client: httpx.Client,
    storm: Storm,
    tokens: dict[str, str],
    desktops: dict[str, str],
    newcomers: list[str],
    outage_s: float,
) -> dict[str, Any]:
    until = time.monotonic() + outage_s
    logins: Counter[int] = Counter()
    newcomer_claims: Counter[int] = Counter()
    kept = 0
    for user, desktop_id in desktops.items():
        auth = {"Authorization": f"Bearer {tokens[user]}"}
        logins[_login(bench, user)] += 1
        again = client.post(f"/pools/{storm.pool_id}/claims", headers={**auth, "Idempotency-Key": f"c5-down-{user}"})
        storm.records[user].statuses[again.status_code] += 1
        same = again.status_code == 200 and again.json().get("desktop_id") == desktop_id
        if same:
            storm.records[user].desktop_ids.add(desktop_id)
        state = client.get(f"/desktops/{desktop_id}", headers=auth)
        still_theirs = state.status_code == 200 and state.json()["user"] == user
        gone = _event(client, bench, desktop_id, "disconnect")
        back = _event(client, bench, desktop_id, "connect")
        events_taken = gone == back == 202
        kept += same and still_theirs and events_taken
    for user in newcomers:
        auth = {"Authorization": f"Bearer {tokens[user]}"}
        logins[_login(bench, user)] += 1
        answer = client.post(f"/pools/{storm.pool_id}/claims", headers={**auth, "Idempotency-Key": f"c5-new-{user}"})
        newcomer_claims[answer.status_code] += 1
        if answer.status_code in (200, 202):
            # Served from the cached entitlement: a real claim, finished like any other.
            storm.records[user] = ClaimRecord(user, f"c5-new-{user}")
            _finish(client, storm, bench, auth, user, f"c5-new-{user}", answer)
    time.sleep(max(0.0, until - time.monotonic()))
    return {
        "logins_while_down": dict(logins),
        "holders_kept": kept,
        "newcomer_claims_while_down": dict(newcomer_claims),
    }


def _finish(
    client: httpx.Client, storm: Storm, bench: BenchStack, auth: dict[str, str], user: str, key: str, answer: Any
) -> None:
    claim = storm.records[user]
    deadline = time.monotonic() + 120
    while answer.status_code == 202 or answer.json().get("status") == "waiting":
        if time.monotonic() > deadline:
            claim.outcome = "hang"
            return
        time.sleep(0.5)
        answer = client.get(f"/pools/{storm.pool_id}/claims/{key}", headers=auth)
    if answer.status_code == 200 and answer.json().get("desktop_id"):
        desktop_id = str(answer.json()["desktop_id"])
        claim.desktop_ids.add(desktop_id)
        claim.outcome = "served"
        _event(client, bench, desktop_id, "connect")
        _event(client, bench, desktop_id, "disconnect")


def _eventually(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(1)
    return False
