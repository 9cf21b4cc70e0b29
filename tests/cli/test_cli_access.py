"""entitlements and roles: request bodies, read-modify-write, usage errors."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Run
from tests.cli.fake_api import FakeApi

pytestmark = pytest.mark.usefixtures("as_admin")


def test_entitlements_show(run: Run, api: FakeApi) -> None:
    result = run("entitlements", "show", "call-centre")

    assert result.exit_code == 0
    assert "3 users entitled" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["group", "callcentre", "3", "-"] in rows
    assert "users: alice, bob, carol" in result.stdout


def test_entitlements_set_replaces_everything(run: Run, api: FakeApi) -> None:
    result = run(
        "-o",
        "json",
        "entitlements",
        "set",
        "call-centre",
        "--user",
        "a",
        "--user",
        "b",
        "--group",
        "g",
        "--unit",
        "ou=Sales,dc=example,dc=org",
    )

    assert result.exit_code == 0, result.output
    (put,) = api.calls("PUT", "/pools/call-centre/entitlement")
    assert api.body(put) == {"users": ["a", "b"], "groups": ["g"], "org_units": ["ou=Sales,dc=example,dc=org"]}
    assert json.loads(result.stdout)["sources"][2] == {
        "kind": "group",
        "name": "g",
        "user_count": 0,
        "problem": "not found",
    }


def test_entitlements_set_needs_something(run: Run, api: FakeApi) -> None:
    assert run("entitlements", "set", "call-centre").exit_code == 2
    assert not api.calls("PUT", "/pools/call-centre/entitlement")
    assert run("entitlements", "set", "call-centre", "--clear").exit_code == 0
    assert api.body(api.calls("PUT", "/pools/call-centre/entitlement")[0]) == {
        "users": [],
        "groups": [],
        "org_units": [],
    }


def test_entitlements_add_reads_the_pool_then_puts_the_union(run: Run, api: FakeApi) -> None:
    result = run("entitlements", "add", "call-centre", "--user", "dave", "--user", "ALICE", "--group", "teachers")

    assert result.exit_code == 0, result.output
    assert api.calls("GET", "/pools/call-centre")
    body = api.body(api.calls("PUT", "/pools/call-centre/entitlement")[0])
    assert body == {"users": ["alice", "dave"], "groups": ["callcentre", "teachers"], "org_units": []}
    assert "4 users entitled" in result.stdout  # alice, bob, carol + dave (teachers)


def test_entitlements_remove(run: Run, api: FakeApi) -> None:
    result = run("entitlements", "remove", "call-centre", "--group", "callcentre", "--user", "zed")

    assert result.exit_code == 0
    body = api.body(api.calls("PUT", "/pools/call-centre/entitlement")[0])
    assert body == {"users": ["alice"], "groups": [], "org_units": []}
    assert "warning: zed is not among the pool's users" in result.stderr


def test_roles_list_filters_and_table(run: Run, api: FakeApi) -> None:
    result = run("roles", "list", "--principal", "it-staff", "--scope-kind", "pool", "--scope", "call-centre")

    assert result.exit_code == 0
    assert dict(api.calls("GET", "/roles")[0].url.params) == {
        "principal": "it-staff",
        "scope_kind": "pool",
        "scope": "call-centre",
    }
    row = next(line for line in result.stdout.splitlines() if "pool_admin" in line)
    assert row.split() == ["1", "pool_admin", "group:it-staff", "pool:call-centre", "admin", "2025-02-01", "08:00:00Z"]


@pytest.mark.parametrize(
    ("args", "kind", "principal", "scope_kind", "scope"),
    [
        (["super_user", "--user", "carol"], "user", "carol", "system", ""),
        (["super_user", "--user", "carol", "--system"], "user", "carol", "system", ""),
        (["pool_admin", "--group", "it", "--pool", "call-centre"], "group", "it", "pool", "call-centre"),
        (["cluster_admin", "--user", "bob", "--cloud", "prod/RegionOne"], "user", "bob", "cloud", "prod/RegionOne"),
        (["user", "--group", "teachers", "--pool", "labs"], "group", "teachers", "pool", "labs"),
    ],
)
def test_roles_grant(
    run: Run, api: FakeApi, args: list[str], kind: str, principal: str, scope_kind: str, scope: str
) -> None:
    result = run("-o", "json", "roles", "grant", *args)

    assert result.exit_code == 0, result.output
    body = api.body(api.calls("POST", "/roles")[0])
    assert body == {
        "role": args[0],
        "principal_kind": kind,
        "principal": principal,
        "scope_kind": scope_kind,
        "scope": scope,
    }
    assert json.loads(result.stdout) == api.grants[-1]


def test_roles_grant_human_output(run: Run, api: FakeApi) -> None:
    result = run("roles", "grant", "pool_admin", "--group", "it", "--pool", "call-centre")

    assert "Granted pool_admin to group it on pool:call-centre (grant 2)." in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["pool_admin", "--pool", "p"],
        ["pool_admin", "--user", "a", "--group", "g"],
        ["pool_admin", "--user", "a", "--pool", "p", "--system"],
        ["emperor", "--user", "a"],
    ],
)
def test_roles_grant_usage_errors_exit_2(run: Run, api: FakeApi, args: list[str]) -> None:
    assert run("roles", "grant", *args).exit_code == 2
    assert not api.calls("POST", "/roles")


def test_roles_revoke(run: Run, api: FakeApi) -> None:
    result = run("roles", "revoke", "1")

    assert result.exit_code == 0
    assert api.calls("DELETE", "/roles/1")
    assert api.grants == []


def test_roles_grant_forbidden_for_a_plain_user(run: Run, api: FakeApi, as_alice: None) -> None:
    result = run("roles", "grant", "super_user", "--user", "alice")

    assert result.exit_code == 3
    assert "hint: run `deskpool login`" in result.stderr
