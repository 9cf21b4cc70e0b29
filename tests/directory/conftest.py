"""Real directory servers, started once per session: Debian's slapd on a free
loopback port and a Samba AD DC on 127.0.0.1:389, both loaded from fixture_tree.

Missing packages are installed by tools/directory_servers/install.sh. A server
that cannot start fails the tests that need it, with the tail of its log;
nothing here skips.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from activities.directory import DirectorySettings, LdapDirectory
from tests.directory.fixture_tree import SERVICE_PASSWORD, TREE
from tools.directory_servers.common import ServerStartError
from tools.directory_servers.openldap import OpenLdapServer
from tools.directory_servers.samba_ad import SambaAdServer

_TIMINGS: dict[str, str] = {}


@dataclass(frozen=True)
class RunningServer:
    kind: str  # "openldap" | "active_directory"
    url: str
    base_dn: str
    service_dn: str

    def settings(self, **overrides: Any) -> DirectorySettings:
        return ldap_settings(self.url, self.service_dn, **overrides)


def ldap_settings(url: str, service_dn: str, **overrides: Any) -> DirectorySettings:
    values: dict[str, Any] = {
        "backend": "ldap",
        "urls": [url],
        "bind_dn": service_dn,
        "bind_password": SecretStr(SERVICE_PASSWORD),
        "connect_timeout_s": 2,
        "receive_timeout_s": 5,
        "operation_timeout_s": 20,
        "server_retry_after_s": 0,
    }
    return DirectorySettings(**{**values, **overrides})


@pytest.fixture(scope="session")
def openldap_server() -> Iterator[OpenLdapServer]:
    server = OpenLdapServer(TREE)
    began = time.monotonic()
    try:
        server.start()
    except ServerStartError as exc:
        server.remove()
        pytest.fail(f"slapd could not start: {exc}", pytrace=False)
    _TIMINGS["slapd (load + start)"] = f"{time.monotonic() - began:.2f}s"
    yield server
    server.remove()


@pytest.fixture(scope="session")
def samba_server() -> Iterator[SambaAdServer]:
    server = SambaAdServer(TREE)
    began = time.monotonic()
    try:
        server.start()
    except ServerStartError as exc:
        server.remove()
        pytest.fail(f"Samba AD DC could not start: {exc}", pytrace=False)
    steps = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in server.timings.items())
    _TIMINGS["Samba AD DC"] = f"{time.monotonic() - began:.2f}s ({steps})"
    yield server
    server.remove()


@pytest.fixture(scope="session")
def openldap(openldap_server: OpenLdapServer) -> RunningServer:
    return RunningServer("openldap", openldap_server.url, openldap_server.base_dn, openldap_server.service_dn)


@pytest.fixture(scope="session")
def active_directory(samba_server: SambaAdServer) -> RunningServer:
    return RunningServer("active_directory", samba_server.url, samba_server.base_dn, samba_server.service_dn)


@pytest.fixture(scope="session", params=["openldap", "active_directory"])
def server(request: pytest.FixtureRequest) -> RunningServer:
    """Each test using it runs once against OpenLDAP and once against AD."""
    running: RunningServer = request.getfixturevalue(request.param)
    return running


@pytest_asyncio.fixture(scope="session")
async def directory(server: RunningServer) -> AsyncIterator[LdapDirectory]:
    """One LdapDirectory per server, shared: it is what a process would hold."""
    ldap = LdapDirectory(server.settings())
    yield ldap
    await ldap.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMINGS:
        terminalreporter.write_line(
            "directory servers: " + "; ".join(f"{name} {value}" for name, value in _TIMINGS.items())
        )
