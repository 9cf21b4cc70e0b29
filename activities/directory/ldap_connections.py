"""Connections to the LDAP servers: a ServerPool for fail-over and a small bounded
pool of bound service connections; fresh short-lived connections for user binds.

Every socket has a connect and a receive timeout, and waiting for a pooled
connection is bounded too, so a down or hung directory costs a caller seconds,
never a hang.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_exc
from ldap3.utils.config import set_config_parameter

from activities.directory.errors import DirectoryUnavailable, InvalidCredentials, ldap_errors
from activities.directory.settings import DirectorySettings

T = TypeVar("T")

# ldap3 sleeps this long (10 s by default) after every full cycle of a ServerPool
# that found no server up, even on its last cycle: a down directory would hang
# each login for 10 s. deskpool is ldap3's only user in the process.
set_config_parameter("POOLING_LOOP_TIMEOUT", 0)

# A pooled connection that broke while idle shows it on first use; those are
# worth one more try on a fresh connection.
_STALE_CONNECTION = (ldap_exc.LDAPCommunicationError, ldap_exc.LDAPSessionTerminatedByServerError)


class LdapConnections:
    def __init__(self, settings: DirectorySettings) -> None:
        self._settings = settings
        tls = None
        if any(u.startswith("ldaps:") for u in settings.urls) or settings.start_tls:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
                ca_certs_file=str(settings.tls_ca_file) if settings.tls_ca_file else None,
            )
        servers = [
            ldap3.Server(url, connect_timeout=settings.connect_timeout_s, get_info=ldap3.NONE, tls=tls)
            for url in settings.urls
        ]
        # active=1: check each server once per attempt, then give up (no endless loop);
        # exhaust: skip a server that failed for a while instead of timing out on it again.
        self._servers = ldap3.ServerPool(servers, ldap3.FIRST, active=1, exhaust=settings.server_retry_after_s or False)
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self._idle: list[ldap3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def with_service_connection(self, work: Callable[[ldap3.Connection], T]) -> T:
        """Run `work` on a bound service connection from the pool. `work` lets ldap3's
        exceptions through (the caller maps them) so a stale connection can be told
        apart and retried once."""
        if not self._slots.acquire(timeout=self._settings.pool_wait_s):
            raise DirectoryUnavailable(
                f"all {self._settings.pool_size} directory connections stayed busy for {self._settings.pool_wait_s:g}s"
            )
        try:
            conn, reused = self._take()
            try:
                try:
                    result = work(conn)
                except _STALE_CONNECTION as exc:
                    # A timeout is a slow server, not a stale connection: no second wait.
                    if not reused or "timed out" in str(exc):
                        raise
                    _discard(conn)
                    conn = self._open_service()
                    result = work(conn)
            except BaseException:
                _discard(conn)
                raise
            self._give_back(conn)
            return result
        finally:
            self._slots.release()

    def check_user_password(self, dn: str, password: str) -> None:
        """Bind as the user on a connection of its own; raises unless the password is right."""
        if not password:
            # An empty password makes a simple bind "unauthenticated", which servers accept.
            raise InvalidCredentials()
        conn = self._connection(user=dn, password=password)
        try:
            with ldap_errors():
                conn.open()
                if self._settings.start_tls:
                    conn.start_tls()
            with ldap_errors(user_bind=True):
                if not conn.bind():
                    raise InvalidCredentials()
        finally:
            _discard(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _discard(conn)

    def _take(self) -> tuple[ldap3.Connection, bool]:
        with self._lock:
            if self._closed:
                raise DirectoryUnavailable("the directory client is closed")
            if self._idle:
                return self._idle.pop(), True
        return self._open_service(), False

    def _give_back(self, conn: ldap3.Connection) -> None:
        with self._lock:
            if not self._closed and not conn.closed:
                self._idle.append(conn)
                return
        _discard(conn)

    def _open_service(self) -> ldap3.Connection:
        settings = self._settings
        password = settings.bind_password.get_secret_value() if settings.bind_password else None
        conn = self._connection(user=settings.bind_dn or None, password=password)
        with ldap_errors():
            conn.open()
            if settings.start_tls:
                conn.start_tls()
            if not conn.bind():
                _discard(conn)
                raise DirectoryUnavailable(f"the directory refused deskpool's service account: {conn.result}")
        return conn

    def _connection(self, user: str | None, password: str | None) -> ldap3.Connection:
        kwargs: dict[str, Any] = {"authentication": ldap3.SIMPLE} if user else {"authentication": ldap3.ANONYMOUS}
        return ldap3.Connection(
            self._servers,
            user=user,
            password=password,
            receive_timeout=self._settings.receive_timeout_s,
            # Referrals point at hosts we were not told to trust (AD names its domain).
            auto_referrals=False,
            raise_exceptions=True,
            read_only=True,
            check_names=True,
            **kwargs,
        )


def _discard(conn: ldap3.Connection) -> None:
    # Closing a broken connection can fail too; nothing is left to do then.
    with contextlib.suppress(ldap_exc.LDAPException, OSError):
        conn.unbind()
