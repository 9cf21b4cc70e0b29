"""A directory that is down, silent or slow: DirectoryUnavailable within bounded time, never a hang."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from activities.directory import CachedDirectory, DirectoryUnavailable, LdapDirectory
from tests.directory.conftest import RunningServer, ldap_settings
from tests.directory.fixture_tree import CALLCENTRE, TREE, password_of
from tools.directory_servers.common import ServerStartError, free_loopback_port
from tools.directory_servers.openldap import OpenLdapServer
from workflows.pool_spec import Entitlement

CALLCENTRE_ENTITLEMENT = Entitlement(groups=["callcentre"])


@pytest.fixture
def stoppable_openldap() -> Iterator[OpenLdapServer]:
    """A slapd of this test's own, to stop and start again."""
    server = OpenLdapServer(TREE)
    try:
        server.start()
    except ServerStartError as exc:
        server.remove()
        pytest.fail(f"slapd could not start: {exc}", pytrace=False)
    yield server
    server.remove()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections (the kernel's backlog) but never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"


def _directory(url: str, **overrides: object) -> LdapDirectory:
    return LdapDirectory(ldap_settings(url, "cn=deskpool-svc,dc=deskpool,dc=test", **overrides))


# Bounds on a hang, not measurements of speed: a call that honours its configured
# timeouts ends long before this; one that hangs is cut off here and fails the test.
HANG = 4


async def _assert_unavailable_within(directory: LdapDirectory, seconds: float) -> None:
    """Every kind of call, at once (as a login storm would), each DirectoryUnavailable, none hanging."""
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            directory.authenticate("alice", password_of("alice")),
            directory.resolve_entitlement(CALLCENTRE_ENTITLEMENT),
            directory.user_exists("alice"),
            directory.group_exists("staff"),
            directory.find_users("a"),
            return_exceptions=True,
        ),
        timeout=seconds * HANG,
    )
    assert all(isinstance(outcome, DirectoryUnavailable) for outcome in outcomes), outcomes


async def test_nothing_listening(openldap: RunningServer) -> None:
    directory = _directory(f"ldap://127.0.0.1:{free_loopback_port()}", connect_timeout_s=1)
    try:
        await _assert_unavailable_within(directory, 1.5)
    finally:
        await directory.close()


async def test_a_server_that_never_answers_times_out(silent_server: str) -> None:
    directory = _directory(silent_server, receive_timeout_s=1)
    try:
        await _assert_unavailable_within(directory, 2.5)
    finally:
        await directory.close()


async def test_the_operation_timeout_bounds_a_call_whatever_the_socket_timeouts(silent_server: str) -> None:
    directory = _directory(silent_server, receive_timeout_s=30, operation_timeout_s=0.5)
    try:
        with pytest.raises(DirectoryUnavailable, match=r"did not answer within 0\.5s"):
            # The socket would wait 30 s; the operation timeout must end it first.
            await asyncio.wait_for(directory.resolve_entitlement(CALLCENTRE_ENTITLEMENT), timeout=1.5 * HANG)
    finally:
        await directory.close()


async def test_waiting_for_a_pooled_connection_is_bounded(silent_server: str) -> None:
    directory = _directory(silent_server, receive_timeout_s=1, pool_size=1, pool_wait_s=0.2)
    try:
        first = asyncio.create_task(directory.user_exists("alice"))
        await asyncio.sleep(0.1)  # the first call holds the only connection
        with pytest.raises(DirectoryUnavailable, match="stayed busy"):
            await asyncio.wait_for(directory.user_exists("bob"), timeout=HANG)
        with pytest.raises(DirectoryUnavailable):
            await first
    finally:
        await directory.close()


async def test_a_stopped_server_and_its_return(stoppable_openldap: OpenLdapServer) -> None:
    server = stoppable_openldap
    directory = LdapDirectory(ldap_settings(server.url, server.service_dn, connect_timeout_s=1))
    try:
        assert await directory.user_exists("alice")  # leaves a pooled connection behind
        server.stop()
        await _assert_unavailable_within(directory, 1.5)
        server.restart()
        assert await directory.user_exists("alice")
        assert (await directory.authenticate("bob", password_of("bob"))).username == "bob"
    finally:
        await directory.close()


async def test_fail_over_to_the_next_server(openldap: RunningServer) -> None:
    closed = f"ldap://127.0.0.1:{free_loopback_port()}"
    directory = LdapDirectory(
        ldap_settings(closed, openldap.service_dn, urls=[closed, openldap.url], connect_timeout_s=1)
    )
    try:
        assert set((await directory.resolve_entitlement(CALLCENTRE_ENTITLEMENT)).usernames) == CALLCENTRE
        assert (await directory.authenticate("carol", password_of("carol"))).username == "carol"
    finally:
        await directory.close()


async def test_entitled_users_keep_their_answer_while_the_directory_is_down(
    stoppable_openldap: OpenLdapServer,
) -> None:
    server = stoppable_openldap
    now = [0.0]
    ldap = LdapDirectory(ldap_settings(server.url, server.service_dn, connect_timeout_s=1))
    cached = CachedDirectory(ldap, ttl_s=60, refresh_ahead_s=10, stale_if_error_s=600, clock=lambda: now[0])
    try:
        first = await cached.resolve_entitlement(CALLCENTRE_ENTITLEMENT)
        server.stop()
        now[0] = 120  # expired, still inside the stale window
        assert await cached.resolve_entitlement(CALLCENTRE_ENTITLEMENT) == first
        now[0] = 60 + 600 + 1  # past it: the caller learns the directory is down
        with pytest.raises(DirectoryUnavailable):
            await cached.resolve_entitlement(CALLCENTRE_ENTITLEMENT)
    finally:
        await cached.close()
