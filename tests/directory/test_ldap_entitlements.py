"""Entitlements against real OpenLDAP and Active Directory (each test runs on both)."""

from __future__ import annotations

import ldap3
from pydantic import SecretStr

from activities.directory import LdapDirectory, SourceKind
from tests.directory.conftest import RunningServer
from tests.directory.fixture_tree import (
    BULK_COUNT,
    CALLCENTRE,
    CYCLE,
    EMEA,
    EVERYONE,
    SALES,
    SERVICE_PASSWORD,
    STAFF,
)
from workflows.pool_spec import Entitlement


async def test_users_are_looked_up_case_insensitively(directory: LdapDirectory) -> None:
    result = await directory.resolve_entitlement(Entitlement(users=["alice", "BOB", "nobody-here"]))
    assert result.usernames == ("alice", "bob")
    assert [(s.name, s.user_count, s.problem) for s in result.sources] == [
        ("alice", 1, ""),
        ("BOB", 1, ""),
        ("nobody-here", 0, "not found"),
    ]


async def test_a_flat_group(directory: LdapDirectory) -> None:
    result = await directory.resolve_entitlement(Entitlement(groups=["callcentre"]))
    assert set(result.usernames) == CALLCENTRE


async def test_nested_groups_are_followed_to_every_depth(directory: LdapDirectory) -> None:
    staff = await directory.resolve_entitlement(Entitlement(groups=["staff"]))
    everyone = await directory.resolve_entitlement(Entitlement(groups=["everyone"]))
    assert set(staff.usernames) == STAFF
    assert set(everyone.usernames) == EVERYONE


async def test_cyclic_groups_end(directory: LdapDirectory) -> None:
    result = await directory.resolve_entitlement(Entitlement(groups=["cycle-a"]))
    assert set(result.usernames) == CYCLE


async def test_an_org_unit_includes_every_sub_unit(directory: LdapDirectory) -> None:
    sales = await directory.resolve_entitlement(Entitlement(org_units=["sales"]))
    emea = await directory.resolve_entitlement(Entitlement(org_units=["emea"]))
    assert set(sales.usernames) == SALES
    assert set(emea.usernames) == EMEA


async def test_an_org_unit_by_dn(directory: LdapDirectory, server: RunningServer) -> None:
    dn = f"ou=emea,ou=sales,{server.base_dn}"
    result = await directory.resolve_entitlement(Entitlement(org_units=[dn]))
    assert set(result.usernames) == EMEA
    outside = await directory.resolve_entitlement(Entitlement(org_units=["ou=emea,ou=sales,dc=elsewhere,dc=test"]))
    assert outside.total == 0
    assert outside.sources[0].problem == "not found"


async def test_users_groups_and_units_are_merged_into_one_de_duplicated_set(directory: LdapDirectory) -> None:
    entitlement = Entitlement(
        users=["alice", "ALICE", "sam"],
        groups=["callcentre", "staff"],
        org_units=["sales"],
        user_group="cycle-a",
    )
    result = await directory.resolve_entitlement(entitlement)
    assert set(result.usernames) == STAFF | SALES | CYCLE
    assert result.total == len(STAFF | SALES | CYCLE) == 9
    counts = {(s.kind, s.name): s.user_count for s in result.sources}
    assert counts == {
        (SourceKind.USER, "alice"): 1,
        (SourceKind.USER, "sam"): 1,
        (SourceKind.GROUP, "callcentre"): 3,
        (SourceKind.GROUP, "staff"): 5,
        (SourceKind.GROUP, "cycle-a"): 2,
        (SourceKind.ORG_UNIT, "sales"): 3,
    }
    assert result.includes("ALICE") and not result.includes("dave-not")


async def test_unknown_sources_are_reported_not_fatal(directory: LdapDirectory) -> None:
    result = await directory.resolve_entitlement(Entitlement(users=["bob"], groups=["no-such-group"], org_units=["x"]))
    assert result.usernames == ("bob",)
    assert {s.name for s in result.unresolved} == {"no-such-group", "x"}


async def test_paging_returns_more_than_the_size_limit(directory: LdapDirectory) -> None:
    by_unit = await directory.resolve_entitlement(Entitlement(org_units=["bulk"]))
    by_group = await directory.resolve_entitlement(Entitlement(groups=["bulk-group"]))
    assert by_unit.total == by_group.total == BULK_COUNT


def test_the_openldap_size_limit_is_real(openldap: RunningServer) -> None:
    """Without paging the service account gets 1,000 entries: the paging test means something."""
    conn = ldap3.Connection(ldap3.Server(openldap.url), openldap.service_dn, SERVICE_PASSWORD, auto_bind=True)
    conn.search(openldap.base_dn, "(uid=bulk*)", attributes=["uid"])
    assert conn.result["description"] == "sizeLimitExceeded"
    assert len(conn.response) == 1000
    conn.unbind()


async def test_user_and_group_exist(directory: LdapDirectory) -> None:
    assert await directory.user_exists("alice")
    assert await directory.user_exists("o(brien)")
    assert not await directory.user_exists("nobody-here")
    assert await directory.group_exists("staff")
    assert not await directory.group_exists("alice")
    assert not await directory.group_exists("no-such-group")


async def test_find_users_by_prefix(directory: LdapDirectory) -> None:
    found = await directory.find_users("ali")
    assert [u.username for u in found] == ["alice"]
    assert found[0].display_name == "Alice Archer" and found[0].email == "alice@deskpool.test"
    assert [u.username for u in await directory.find_users("o(b")] == ["o(brien)"]
    assert len(await directory.find_users("bulk", limit=5)) == 5


async def test_the_service_password_is_not_in_the_settings_repr(server: RunningServer) -> None:
    settings = server.settings()
    assert SERVICE_PASSWORD not in repr(settings) and SERVICE_PASSWORD not in str(settings.model_dump())
    assert isinstance(settings.bind_password, SecretStr)
