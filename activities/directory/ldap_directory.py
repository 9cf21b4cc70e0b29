"""The Directory protocol over LDAP (OpenLDAP, Active Directory) with ldap3.

Login searches the user's DN with the service account, then binds as the user
on a connection of its own. ldap3 is blocking: each call runs in a worker
thread and is bounded by `operation_timeout_s` on top of the socket timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection
from typing import TypeVar

import ldap3
from ldap3.core import exceptions as ldap_exc

from activities.directory.errors import (
    AccountDisabled,
    AccountState,
    DirectoryUnavailable,
    InvalidCredentials,
    ldap_errors,
)
from activities.directory.ldap_connections import LdapConnections
from activities.directory.ldap_groups import group_names_of_user, member_usernames
from activities.directory.ldap_profile import LdapProfile, build_profile, read_root_dse
from activities.directory.ldap_search import (
    Entry,
    LdapReader,
    QueryCounter,
    all_of,
    any_of,
    chunks,
    eq,
    is_under,
    starts_with,
)
from activities.directory.model import (
    DirectoryUser,
    EntitlementResult,
    SourceKind,
    SourceRequest,
    combine,
    entitlement_sources,
    is_plausible_name,
)
from activities.directory.settings import DirectorySettings, ServerKind
from workflows.pool_spec import Entitlement

log = logging.getLogger(__name__)
T = TypeVar("T")

UF_ACCOUNTDISABLE = 0x2
UF_LOCKOUT = 0x10  # in msDS-User-Account-Control-Computed
UF_PASSWORD_EXPIRED = 0x800000
MAX_FIND_USERS = 1000


class LdapDirectory:
    def __init__(self, settings: DirectorySettings) -> None:
        self._settings = settings
        self._connections = LdapConnections(settings)
        self._profile: LdapProfile | None = None
        self._profile_lock = threading.Lock()
        self.queries = QueryCounter()

    async def detect(self) -> LdapProfile:
        """Connect, read the root DSE and fix the profile; call at start-up to fail early."""
        return await self._run(lambda: self._read(lambda reader, profile: profile))

    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        if not is_plausible_name(username) or not password:
            raise InvalidCredentials()
        return await self._run(self._authenticate, username, password)

    async def resolve_entitlement(self, entitlement: Entitlement) -> EntitlementResult:
        return await self._run(self._read, lambda reader, profile: self._resolve(reader, profile, entitlement))

    async def user_exists(self, username: str) -> bool:
        if not is_plausible_name(username):
            return False
        return await self._run(self._read, lambda r, p: _find_user(r, p, username) is not None)

    async def group_exists(self, name: str) -> bool:
        if not is_plausible_name(name):
            return False
        return await self._run(self._read, lambda r, p: bool(_find_groups(r, p, name)))

    async def lookup_user(self, username: str) -> DirectoryUser | None:
        if not is_plausible_name(username):
            return None
        return await self._run(self._lookup, username)

    async def find_users(self, prefix: str, limit: int = 20) -> list[DirectoryUser]:
        if prefix and not is_plausible_name(prefix):
            return []
        return await self._run(self._read, lambda r, p: _find_users(r, p, prefix, max(1, min(limit, MAX_FIND_USERS))))

    async def close(self) -> None:
        await asyncio.to_thread(self._connections.close)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        timeout = self._settings.operation_timeout_s
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
        except TimeoutError:
            # The thread ends on its own socket timeouts; the caller need not wait for it.
            raise DirectoryUnavailable(f"the directory did not answer within {timeout:g}s") from None

    def _read(self, work: Callable[[LdapReader, LdapProfile], T]) -> T:
        def on_connection(conn: ldap3.Connection) -> T:
            reader = LdapReader(conn, self._settings.page_size, self.queries)
            return work(reader, self._profile_for(reader))

        with ldap_errors():
            return self._connections.with_service_connection(on_connection)

    def _profile_for(self, reader: LdapReader) -> LdapProfile:
        with self._profile_lock:
            if self._profile is None:
                self._profile = build_profile(self._settings, read_root_dse(reader))
                log.info("directory: %s, nested groups by %s", self._profile.kind.value, self._profile.nested.value)
            return self._profile

    def _authenticate(self, username: str, password: str) -> DirectoryUser:
        user = self._read(lambda r, p: _find_user(r, p, username))
        if user is None:
            raise InvalidCredentials()
        self._connections.check_user_password(user.dn, password)
        return self._describe(user)

    def _lookup(self, username: str) -> DirectoryUser | None:
        """The user and their groups without a password (API tokens); None when gone or disabled."""
        user = self._read(lambda r, p: _find_user(r, p, username))
        if user is None:
            return None
        try:
            return self._describe(user)
        except AccountDisabled:
            return None

    def _describe(self, user: Entry) -> DirectoryUser:
        profile, groups, state = self._read(
            lambda r, p: (p, group_names_of_user(r, p, user.dn), _account_state(r, p, user.dn))
        )
        if state is not None:
            raise AccountDisabled(state)
        return DirectoryUser(
            username=user.first(profile.username_attribute),
            dn=user.dn,
            display_name=user.first(profile.display_name_attribute) or user.first("cn"),
            email=user.first(profile.email_attribute),
            groups=tuple(groups),
        )

    def _resolve(self, reader: LdapReader, profile: LdapProfile, entitlement: Entitlement) -> EntitlementResult:
        requests = entitlement_sources(entitlement)
        wanted_users = [r.name for r in requests if r.kind is SourceKind.USER and is_plausible_name(r.name)]
        canonical = _canonical_usernames(reader, profile, wanted_users)
        resolved = []
        for request in requests:
            names, problem = _members_of_source(reader, profile, request, canonical)
            resolved.append((request, [name for name in names if name], problem))
        return combine(resolved)


def _members_of_source(
    reader: LdapReader, profile: LdapProfile, request: SourceRequest, canonical: dict[str, str]
) -> tuple[Collection[str], str]:
    """The usernames one entitlement source brings in, and what is wrong with it if anything."""
    if not is_plausible_name(request.name):
        return [], "not found"
    if request.kind is SourceKind.USER:
        name = canonical.get(request.name.casefold())
        return ([name], "") if name else ([], "not found")
    if request.kind is SourceKind.GROUP:
        groups = _find_groups(reader, profile, request.name)
        return (member_usernames(reader, profile, groups[0]), "") if len(groups) == 1 else ([], _problem(groups))
    units = _find_units(reader, profile, request.name)
    if len(units) != 1:
        return [], _problem(units)
    # A subtree search: every sub-unit's users too.
    users = reader.search(units[0].dn, profile.user_filter, [profile.username_attribute])
    return [user.first(profile.username_attribute) for user in users], ""


def _find_user(reader: LdapReader, profile: LdapProfile, username: str) -> Entry | None:
    by_name = eq(profile.username_attribute, username)
    if profile.kind is ServerKind.ACTIVE_DIRECTORY and "@" in username:
        by_name = any_of([by_name, eq("userPrincipalName", username)])
    users = reader.search(profile.user_base_dn, all_of(profile.user_filter, by_name), profile.user_attributes)
    if len(users) > 1:
        log.warning("directory: %d users match one username; refusing it", len(users))
    return users[0] if len(users) == 1 else None


def _account_state(reader: LdapReader, profile: LdapProfile, dn: str) -> AccountState | None:
    """AD refuses binds of disabled and locked accounts itself (sub-codes 533, 775);
    this read after the bind also covers a server that lets such a bind through."""
    if profile.kind is not ServerKind.ACTIVE_DIRECTORY:
        return None
    attrs = ["userAccountControl", "msDS-User-Account-Control-Computed"]
    entries = reader.search(dn, "(objectClass=*)", attrs, scope=ldap3.BASE)
    flags = _int(entries[0].first("userAccountControl")) if entries else 0
    computed = _int(entries[0].first("msDS-User-Account-Control-Computed")) if entries else 0
    if flags & UF_ACCOUNTDISABLE:
        return AccountState.DISABLED
    if computed & UF_LOCKOUT:
        return AccountState.LOCKED
    if computed & UF_PASSWORD_EXPIRED:
        return AccountState.PASSWORD_EXPIRED
    return None


def _canonical_usernames(reader: LdapReader, profile: LdapProfile, names: list[str]) -> dict[str, str]:
    attr = profile.username_attribute
    canonical: dict[str, str] = {}
    for batch in chunks(names):
        for user in reader.search(
            profile.user_base_dn, all_of(profile.user_filter, any_of(eq(attr, n) for n in batch)), [attr]
        ):
            canonical[user.first(attr).casefold()] = user.first(attr)
    return canonical


def _find_groups(reader: LdapReader, profile: LdapProfile, name_or_dn: str) -> list[Entry]:
    attrs = [profile.group_name_attribute, profile.member_attribute]
    return _by_name_or_dn(
        reader, profile.group_base_dn, name_or_dn, profile.group_filter, profile.group_name_attribute, attrs
    )


def _find_units(reader: LdapReader, profile: LdapProfile, name_or_dn: str) -> list[Entry]:
    return _by_name_or_dn(reader, profile.base_dn, name_or_dn, profile.unit_filter, "ou", ["ou"])


def _by_name_or_dn(
    reader: LdapReader, base: str, name_or_dn: str, object_filter: str, name_attr: str, attrs: list[str]
) -> list[Entry]:
    """Entries of one kind under `base`, by name or by DN."""
    if "=" not in name_or_dn:
        return reader.search(base, all_of(object_filter, eq(name_attr, name_or_dn)), attrs)
    if not is_under(name_or_dn, base):
        return []
    try:
        return reader.search(name_or_dn, object_filter, attrs, scope=ldap3.BASE, missing_base_ok=True)
    except (ldap_exc.LDAPInvalidDnError, ldap_exc.LDAPInvalidDNSyntaxResult):
        return []


def _find_users(reader: LdapReader, profile: LdapProfile, prefix: str, limit: int) -> list[DirectoryUser]:
    attrs = [profile.username_attribute, "cn", profile.display_name_attribute, profile.email_attribute]
    search_filter = profile.user_filter
    if prefix:
        search_filter = all_of(search_filter, any_of(starts_with(a, prefix) for a in attrs))
    entries = reader.search(profile.user_base_dn, search_filter, attrs, size_limit=limit)
    users = [
        DirectoryUser(
            username=e.first(profile.username_attribute),
            dn=e.dn,
            display_name=e.first(profile.display_name_attribute) or e.first("cn"),
            email=e.first(profile.email_attribute),
        )
        for e in entries
        if e.first(profile.username_attribute)
    ]
    return sorted(users, key=lambda u: u.username.casefold())[:limit]


def _problem(matches: list[Entry]) -> str:
    return "not found" if not matches else f"ambiguous: {len(matches)} entries have this name; give its DN"


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
