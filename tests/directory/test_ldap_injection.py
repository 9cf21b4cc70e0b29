"""Filter injection: names are values, never filter syntax (both servers)."""

from __future__ import annotations

import pytest

from activities.directory import InvalidCredentials, LdapDirectory
from activities.directory.ldap_search import eq, starts_with
from tests.directory.conftest import RunningServer
from tests.directory.fixture_tree import password_of
from workflows.pool_spec import Entitlement

ATTEMPTS = [
    "*",
    "*)(uid=*",
    "admin)(|(uid=*",
    "*)(sAMAccountName=*",
    "al*",
    "admin)(&",
    "\\2a",
    "alice\x00",
    "\x00",
    "alice\x00)(uid=*",
    "callcentre)(cn=*",
]


def test_values_are_escaped_by_ldap3() -> None:
    assert eq("uid", "*)(uid=*") == r"(uid=\2a\29\28uid=\2a)"
    assert eq("uid", "admin)(|(uid=*") == r"(uid=admin\29\28|\28uid=\2a)"
    assert eq("uid", "a\x00b") == r"(uid=a\00b)"
    assert eq("uid", "back\\slash") == r"(uid=back\5cslash)"
    assert starts_with("cn", "a*") == r"(cn=a\2a*)"


@pytest.mark.parametrize("name", ATTEMPTS)
async def test_injection_matches_nothing(directory: LdapDirectory, name: str) -> None:
    assert not await directory.user_exists(name)
    assert not await directory.group_exists(name)
    result = await directory.resolve_entitlement(Entitlement(users=[name], groups=[name], org_units=[name]))
    assert result.total == 0
    assert all(source.problem == "not found" for source in result.sources)


@pytest.mark.parametrize("name", ["*", "*)(uid=*", "admin)(|(uid=*", "admin\x00"])
async def test_injection_cannot_log_in(directory: LdapDirectory, name: str) -> None:
    with pytest.raises(InvalidCredentials):
        await directory.authenticate(name, password_of("admin"))


async def test_dn_shaped_names_are_checked_not_trusted(directory: LdapDirectory, server: RunningServer) -> None:
    base = server.base_dn
    names = [f"ou=*)(objectClass=*,{base}", f"ou=sales,,{base}", f"ou=sales,{base}x", "ou=sales", "=,=,="]
    result = await directory.resolve_entitlement(Entitlement(groups=names, org_units=names))
    assert result.total == 0
    assert all(source.problem == "not found" for source in result.sources)


async def test_find_users_treats_wildcards_literally(directory: LdapDirectory) -> None:
    assert await directory.find_users("*") == []
    assert await directory.find_users("*)(uid=*") == []
    assert [u.username for u in await directory.find_users("o(")] == ["o(brien)"]
