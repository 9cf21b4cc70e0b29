"""What a directory answers, and the protocol every directory implements.

The answers are frozen dataclasses of plain values: they cross the Temporal
boundary as they are, and a cached answer can be handed to many callers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from workflows.pool_spec import Entitlement

# Longer than any real account or group name; a bound on what we send to a server.
MAX_NAME_LENGTH = 256


@dataclass(frozen=True)
class DirectoryUser:
    username: str  # the directory's own spelling (uid / sAMAccountName)
    dn: str  # "" for the built-in directory
    display_name: str = ""
    email: str = ""
    # Every group the user is in, through nested groups too; empty in `find_users` answers.
    groups: tuple[str, ...] = ()


class SourceKind(StrEnum):
    USER = "user"
    GROUP = "group"
    ORG_UNIT = "org_unit"


@dataclass(frozen=True)
class EntitlementSource:
    """One entry of an entitlement and how many users it brought in."""

    kind: SourceKind
    name: str
    user_count: int
    # Why it brought in nobody, when it is not simply empty: "not found", "ambiguous: ...".
    problem: str = ""


@dataclass(frozen=True)
class EntitlementResult:
    usernames: tuple[str, ...]  # de-duplicated (case-insensitively) and sorted
    sources: tuple[EntitlementSource, ...]

    @property
    def total(self) -> int:
        return len(self.usernames)

    @property
    def unresolved(self) -> tuple[EntitlementSource, ...]:
        return tuple(source for source in self.sources if source.problem)

    def includes(self, username: str) -> bool:
        wanted = username.casefold()
        return any(name.casefold() == wanted for name in self.usernames)


class Directory(Protocol):
    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        """The signed-in user, or InvalidCredentials / AccountDisabled / DirectoryUnavailable."""
        ...

    async def resolve_entitlement(self, entitlement: Entitlement) -> EntitlementResult: ...

    async def user_exists(self, username: str) -> bool: ...

    async def group_exists(self, name: str) -> bool: ...

    async def lookup_user(self, username: str) -> DirectoryUser | None:
        """The user with their groups, without a password (API tokens act for their owner); None when gone."""
        ...

    async def find_users(self, prefix: str, limit: int = 20) -> list[DirectoryUser]:
        """Users whose username, name or email starts with `prefix`, for pickers."""
        ...

    async def close(self) -> None: ...


def is_plausible_name(name: str) -> bool:
    """False for what no directory holds (empty, huge, control characters such as NUL):
    such a name is answered "not found" without asking the server."""
    if not name or len(name) > MAX_NAME_LENGTH or name != name.strip():
        return False
    return not any(unicodedata.category(ch) == "Cc" for ch in name)


@dataclass(frozen=True)
class SourceRequest:
    kind: SourceKind
    name: str


def entitlement_sources(entitlement: Entitlement) -> list[SourceRequest]:
    """Every named source once, in order; the cloud seed's `user_group` is one more group."""
    groups = [*entitlement.groups, *([entitlement.user_group] if entitlement.user_group else [])]
    wanted = [
        *(SourceRequest(SourceKind.USER, name) for name in entitlement.users),
        *(SourceRequest(SourceKind.GROUP, name) for name in groups),
        *(SourceRequest(SourceKind.ORG_UNIT, name) for name in entitlement.org_units),
    ]
    seen: set[tuple[SourceKind, str]] = set()
    unique = []
    for request in wanted:
        key = (request.kind, request.name.casefold())
        if key not in seen:
            seen.add(key)
            unique.append(request)
    return unique


def combine(resolved: Iterable[tuple[SourceRequest, Iterable[str], str]]) -> EntitlementResult:
    """(source, its usernames, problem) triples -> one de-duplicated user set with counts."""
    by_folded: dict[str, str] = {}
    sources = []
    for request, usernames, problem in resolved:
        names = {name.casefold(): name for name in usernames}
        for folded, name in names.items():
            by_folded.setdefault(folded, name)
        sources.append(EntitlementSource(request.kind, request.name, len(names), problem))
    return EntitlementResult(tuple(sorted(by_folded.values(), key=str.casefold)), tuple(sources))


def entitlement_key(entitlement: Entitlement) -> tuple[tuple[str, str], ...]:
    """Equal for entitlements that name the same sources (order and case aside)."""
    return tuple(sorted((r.kind.value, r.name.casefold()) for r in entitlement_sources(entitlement)))
