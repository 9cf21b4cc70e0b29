"""Signing in against real OpenLDAP and Active Directory.

Active Directory here locks an account after three wrong passwords, so each
user gets at most one wrong password in the whole suite.
"""

from __future__ import annotations

import pytest

from activities.directory import AccountDisabled, AccountState, InvalidCredentials, LdapDirectory
from tests.directory.conftest import RunningServer
from tests.directory.fixture_tree import ALICE_GROUPS, password_of


async def test_login_returns_the_user_with_all_groups(directory: LdapDirectory, server: RunningServer) -> None:
    user = await directory.authenticate("alice", password_of("alice"))
    assert user.username == "alice"
    assert user.display_name == "Alice Archer"
    assert user.email == "alice@deskpool.test"
    assert user.dn.lower().endswith(server.base_dn.lower())
    # Nested (staff, everyone) and cyclic (cycle-a, cycle-b) groups included.
    assert set(user.groups) == ALICE_GROUPS


async def test_login_ignores_username_case(directory: LdapDirectory) -> None:
    user = await directory.authenticate("CAROL", password_of("carol"))
    assert user.username == "carol"


async def test_a_name_with_filter_characters_logs_in(directory: LdapDirectory) -> None:
    user = await directory.authenticate("o(brien)", password_of("o(brien)"))
    assert user.username == "o(brien)"


async def test_wrong_password(directory: LdapDirectory) -> None:
    with pytest.raises(InvalidCredentials):
        await directory.authenticate("erin", "not-her-password")


async def test_empty_password_is_refused_without_an_unauthenticated_bind(directory: LdapDirectory) -> None:
    """An LDAP simple bind with an empty password succeeds as "unauthenticated"."""
    before = directory.queries.value
    with pytest.raises(InvalidCredentials):
        await directory.authenticate("bob", "")
    assert directory.queries.value == before


async def test_unknown_user(directory: LdapDirectory) -> None:
    with pytest.raises(InvalidCredentials):
        await directory.authenticate("nobody-here", "Whatever-1")


async def test_a_user_without_a_password_cannot_log_in(directory: LdapDirectory) -> None:
    """Bulk users have no password: any password fails like a wrong one."""
    with pytest.raises(InvalidCredentials):
        await directory.authenticate("bulk0001", "Anything-1")


async def test_locked_account_is_refused(active_directory: RunningServer) -> None:
    directory = LdapDirectory(active_directory.settings())
    try:
        with pytest.raises(AccountDisabled) as refused:
            await directory.authenticate("locked-user", password_of("locked-user"))
        assert refused.value.state is AccountState.LOCKED
    finally:
        await directory.close()


async def test_disabled_account_is_refused(active_directory: RunningServer) -> None:
    directory = LdapDirectory(active_directory.settings())
    try:
        with pytest.raises(AccountDisabled) as refused:
            await directory.authenticate("disabled-user", password_of("disabled-user"))
        assert refused.value.state is AccountState.DISABLED
    finally:
        await directory.close()


async def test_ad_user_principal_name_logs_in(active_directory: RunningServer) -> None:
    directory = LdapDirectory(active_directory.settings())
    try:
        user = await directory.authenticate("dave@deskpool.test", password_of("dave"))
        assert user.username == "dave"
    finally:
        await directory.close()


async def test_lookup_without_password_gives_the_user_and_all_groups(directory: LdapDirectory) -> None:
    """What an API token acts with: its owner as the directory has them now."""
    user = await directory.lookup_user("ALICE")
    assert user is not None and user.username == "alice"
    assert set(user.groups) == ALICE_GROUPS
    assert await directory.lookup_user("nobody-here") is None
    assert await directory.lookup_user("*") is None


async def test_lookup_of_a_disabled_account_is_none(active_directory: RunningServer) -> None:
    directory = LdapDirectory(active_directory.settings())
    try:
        assert await directory.lookup_user("disabled-user") is None
        dave = await directory.lookup_user("dave")
        assert dave is not None and dave.username == "dave"
    finally:
        await directory.close()
