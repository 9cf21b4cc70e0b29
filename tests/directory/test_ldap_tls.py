"""StartTLS and LDAPS against a slapd with a self-signed certificate for 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from activities.directory import DirectoryUnavailable, LdapDirectory
from tests.directory.conftest import ldap_settings
from tests.directory.fixture_tree import CALLCENTRE, TREE, password_of
from tools.directory_servers.common import ServerStartError
from tools.directory_servers.openldap import OpenLdapServer
from workflows.pool_spec import Entitlement

# ldap3 checks the certificate's host name with ssl.match_hostname, deprecated in Python 3.7.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


@pytest.fixture(scope="module")
def tls_openldap() -> Iterator[OpenLdapServer]:
    server = OpenLdapServer(TREE, tls=True)
    try:
        server.start()
    except ServerStartError as exc:
        server.remove()
        pytest.fail(f"slapd with TLS could not start: {exc}", pytrace=False)
    yield server
    server.remove()


@pytest.mark.parametrize("how", ["start_tls", "ldaps"])
async def test_login_and_entitlements_over_tls(tls_openldap: OpenLdapServer, how: str) -> None:
    server = tls_openldap
    url, start_tls = (server.url, True) if how == "start_tls" else (server.ldaps_url, False)
    settings = ldap_settings(url, server.service_dn, start_tls=start_tls, tls_ca_file=server.ca_file)
    directory = LdapDirectory(settings)
    try:
        assert (await directory.authenticate("alice", password_of("alice"))).username == "alice"
        result = await directory.resolve_entitlement(Entitlement(groups=["callcentre"]))
        assert set(result.usernames) == CALLCENTRE
    finally:
        await directory.close()


async def test_an_untrusted_certificate_is_refused(tls_openldap: OpenLdapServer) -> None:
    """Without the server's CA the system store does not trust it: no bind is attempted."""
    server = tls_openldap
    directory = LdapDirectory(ldap_settings(server.ldaps_url, server.service_dn))
    try:
        with pytest.raises(DirectoryUnavailable):
            await directory.authenticate("alice", password_of("alice"))
    finally:
        await directory.close()
