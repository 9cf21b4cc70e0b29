"""Which nested-group strategy a server gets, and that none answers "nobody" silently."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import ldap3
import pytest

from activities.directory import LdapDirectory, NestedGroups, ServerKind, UnsupportedDirectory
from activities.directory.ldap_groups import group_names_of_user, member_usernames
from activities.directory.ldap_profile import build_profile, read_root_dse
from activities.directory.ldap_search import LdapReader, QueryCounter, all_of, eq
from tests.directory.conftest import RunningServer, ldap_settings
from tests.directory.fixture_tree import ALICE_GROUPS, CYCLE, EVERYONE, SERVICE_PASSWORD, STAFF, TREE, password_of
from tools.directory_servers.common import ServerStartError
from tools.directory_servers.openldap import OpenLdapServer
from workflows.pool_spec import Entitlement

IN_CHAIN = "1.2.840.113556.1.4.1941"


@pytest.fixture(scope="module")
def openldap_without_member_of() -> Iterator[RunningServer]:
    """A second slapd without any overlay: it keeps no memberOf at all."""
    server = OpenLdapServer(TREE, member_of=False)
    try:
        server.start()
    except ServerStartError as exc:
        server.remove()
        pytest.fail(f"slapd could not start: {exc}", pytrace=False)
    yield RunningServer("openldap", server.url, server.base_dn, server.service_dn)
    server.remove()


async def test_auto_detection_picks_in_chain_for_ad_and_walk_for_openldap(server: RunningServer) -> None:
    directory = LdapDirectory(server.settings())
    try:
        profile = await directory.detect()
    finally:
        await directory.close()
    if server.kind == "active_directory":
        assert (profile.kind, profile.nested) == (ServerKind.ACTIVE_DIRECTORY, NestedGroups.IN_CHAIN)
        assert profile.username_attribute == "sAMAccountName"
    else:
        assert (profile.kind, profile.nested) == (ServerKind.OPENLDAP, NestedGroups.WALK)
        assert profile.username_attribute == "uid"
    assert profile.base_dn.lower() == server.base_dn.lower()


@pytest.mark.parametrize(
    ("kind", "strategy"),
    [
        ("openldap", NestedGroups.WALK),
        ("openldap", NestedGroups.MEMBER_OF),  # dynlist's transitive memberOf
        ("active_directory", NestedGroups.IN_CHAIN),
        ("active_directory", NestedGroups.MEMBER_OF),  # AD's direct memberOf, walked
        ("active_directory", NestedGroups.WALK),
    ],
)
async def test_every_strategy_finds_the_same_members(
    request: pytest.FixtureRequest, kind: str, strategy: NestedGroups
) -> None:
    server: RunningServer = request.getfixturevalue(kind)
    directory = LdapDirectory(server.settings(nested_groups=strategy))
    try:
        assert (await directory.detect()).nested is strategy
        staff = await directory.resolve_entitlement(Entitlement(groups=["staff"]))
        everyone = await directory.resolve_entitlement(Entitlement(groups=["everyone"]))
        cycle = await directory.resolve_entitlement(Entitlement(groups=["cycle-b"]))
        alice = await directory.authenticate("alice", password_of("alice"))
    finally:
        await directory.close()
    assert set(staff.usernames) == STAFF
    assert set(everyone.usernames) == EVERYONE
    assert set(cycle.usernames) == CYCLE
    assert set(alice.groups) == ALICE_GROUPS


def test_openldap_answers_the_in_chain_rule_with_nothing(openldap: RunningServer) -> None:
    """The server-side fact the strategy choice protects against: success, zero entries."""
    conn = ldap3.Connection(ldap3.Server(openldap.url), openldap.service_dn, SERVICE_PASSWORD, auto_bind=True)
    conn.search(openldap.base_dn, f"(memberOf:{IN_CHAIN}:=cn=staff,ou=groups,{openldap.base_dn})")
    assert conn.result["description"] == "success"
    assert conn.entries == []
    conn.unbind()


async def test_in_chain_on_openldap_is_refused_at_detection(openldap: RunningServer) -> None:
    for settings in (
        openldap.settings(nested_groups=NestedGroups.IN_CHAIN),
        # Told it is AD, so "auto" would pick in-chain: detection still checks.
        openldap.settings(server_kind=ServerKind.ACTIVE_DIRECTORY),
    ):
        directory = LdapDirectory(settings)
        try:
            with pytest.raises(UnsupportedDirectory, match="in_chain needs Active Directory"):
                await directory.resolve_entitlement(Entitlement(groups=["staff"]))
        finally:
            await directory.close()


def test_in_chain_that_finds_nobody_in_a_group_with_members_raises(openldap: RunningServer) -> None:
    """Even a profile forced to in-chain on OpenLDAP never returns an empty set."""
    server = ldap3.Server(openldap.url, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, openldap.service_dn, SERVICE_PASSWORD, auto_bind=True)
    reader = LdapReader(conn, 500, QueryCounter())
    walk = build_profile(openldap.settings(), read_root_dse(reader))
    forced = dataclasses.replace(walk, nested=NestedGroups.IN_CHAIN)
    staff = reader.search(walk.base_dn, all_of(walk.group_filter, eq("cn", "staff")), ["member"])[0]
    alice_dn = reader.search(walk.base_dn, eq("uid", "alice"))[0].dn
    with pytest.raises(UnsupportedDirectory):
        member_usernames(reader, forced, staff)
    with pytest.raises(UnsupportedDirectory):
        group_names_of_user(reader, forced, alice_dn)
    assert member_usernames(reader, walk, staff) == STAFF
    conn.unbind()


async def test_member_of_on_a_server_without_it_raises_instead_of_answering_nobody(
    openldap_without_member_of: RunningServer,
) -> None:
    server = openldap_without_member_of
    member_of = LdapDirectory(server.settings(nested_groups=NestedGroups.MEMBER_OF))
    walk = LdapDirectory(ldap_settings(server.url, server.service_dn))
    try:
        with pytest.raises(UnsupportedDirectory, match="does not support it"):
            await member_of.resolve_entitlement(Entitlement(groups=["staff"]))
        assert set((await walk.resolve_entitlement(Entitlement(groups=["staff"]))).usernames) == STAFF
    finally:
        await member_of.close()
        await walk.close()
