"""The built-in directory for `make run`: users, groups and units from a YAML/JSON file.

Passwords are argon2 hashes (argon2-cffi); make one with
`python -m activities.directory.hash_password`. Groups nest (cycles are
harmless), units nest, and a unit's users include every sub-unit's. Names
compare case-insensitively, as in LDAP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from activities.directory.errors import AccountDisabled, AccountState, InvalidCredentials
from activities.directory.model import (
    DirectoryUser,
    EntitlementResult,
    SourceKind,
    combine,
    entitlement_sources,
    is_plausible_name,
)
from workflows.pool_spec import Entitlement

_hasher = PasswordHasher()
# Verified for unknown users too, so a wrong username costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("deskpool: no such user")


class BuiltinUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None: the user exists (for entitlements) but cannot sign in.
    password_hash: str | None = None
    display_name: str = ""
    email: str = ""
    disabled: bool = False


class BuiltinGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class BuiltinUnit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(default_factory=list)
    units: dict[str, BuiltinUnit] = Field(default_factory=dict)


class BuiltinDirectoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: dict[str, BuiltinUser]
    groups: dict[str, BuiltinGroup] = Field(default_factory=dict)
    org_units: dict[str, BuiltinUnit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> BuiltinDirectoryFile:
        for kind, names in (("user", self.users), ("group", self.groups)):
            folded = [n.casefold() for n in names]
            bad = [n for n in names if not is_plausible_name(n)] + [n for n in names if folded.count(n.casefold()) > 1]
            if bad:
                raise ValueError(f"bad or duplicate {kind} names: {sorted(set(bad))}")
        for name, group in self.groups.items():
            _known(f"group {name!r}", "user", group.users, self.users)
            _known(f"group {name!r}", "group", group.groups, self.groups)
        placed: dict[str, str] = {}
        units = list(walk_units(self.org_units))
        unit_names = [u.casefold() for u, _ in units]
        if len(set(unit_names)) != len(unit_names):
            raise ValueError("org unit names must be unique across the whole tree")
        for unit_name, unit in units:
            _known(f"org unit {unit_name!r}", "user", unit.users, self.users)
            for user in unit.users:
                if user.casefold() in placed:
                    raise ValueError(
                        f"user {user!r} is in two org units: {placed[user.casefold()]!r} and {unit_name!r}"
                    )
                placed[user.casefold()] = unit_name
        return self


def walk_units(units: dict[str, BuiltinUnit]) -> Iterator[tuple[str, BuiltinUnit]]:
    for name, unit in units.items():
        yield name, unit
        yield from walk_units(unit.units)


def _known(where: str, kind: str, names: list[str], known: Iterable[str]) -> None:
    folded = {k.casefold() for k in known}
    missing = [n for n in names if n.casefold() not in folded]
    if missing:
        raise ValueError(f"{where} names unknown {kind}s: {missing}")


class BuiltinDirectory:
    def __init__(self, data: BuiltinDirectoryFile) -> None:
        self._users = {name.casefold(): (name, user) for name, user in data.users.items()}
        self._groups = {name.casefold(): (name, group) for name, group in data.groups.items()}
        self._units = {name.casefold(): unit for name, unit in walk_units(data.org_units)}

    @classmethod
    def from_file(cls, path: Path) -> BuiltinDirectory:
        text = path.read_text()
        try:
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            return cls(BuiltinDirectoryFile.model_validate(raw))
        except (ValidationError, yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a valid directory file: {exc}") from exc

    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        if not is_plausible_name(username) or not password:
            raise InvalidCredentials()
        found = self._users.get(username.casefold())
        stored = found[1].password_hash if found else None
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        verified = await asyncio.to_thread(_verify, stored or _DUMMY_HASH, password)
        if found is None or stored is None or not verified:
            raise InvalidCredentials()
        name, user = found
        if user.disabled:
            raise AccountDisabled(AccountState.DISABLED)
        return DirectoryUser(name, "", user.display_name or name, user.email, tuple(self._groups_of(name)))

    async def resolve_entitlement(self, entitlement: Entitlement) -> EntitlementResult:
        resolved = []
        for request in entitlement_sources(entitlement):
            key = request.name.casefold()
            if request.kind is SourceKind.USER:
                names = [self._users[key][0]] if key in self._users else None
            elif request.kind is SourceKind.GROUP:
                names = self._group_members(key) if key in self._groups else None
            else:
                names = self._unit_members(self._units[key]) if key in self._units else None
            resolved.append((request, names or [], "" if names is not None else "not found"))
        return combine(resolved)

    async def user_exists(self, username: str) -> bool:
        return username.casefold() in self._users

    async def group_exists(self, name: str) -> bool:
        return name.casefold() in self._groups

    async def lookup_user(self, username: str) -> DirectoryUser | None:
        found = self._users.get(username.casefold())
        if found is None or found[1].disabled:
            return None
        name, user = found
        return DirectoryUser(name, "", user.display_name or name, user.email, tuple(self._groups_of(name)))

    async def find_users(self, prefix: str, limit: int = 20) -> list[DirectoryUser]:
        wanted = prefix.casefold()
        matches = [
            DirectoryUser(name, "", user.display_name or name, user.email)
            for name, user in self._users.values()
            if any(v.casefold().startswith(wanted) for v in (name, user.display_name, user.email) if v)
        ]
        return sorted(matches, key=lambda u: u.username.casefold())[: max(1, limit)]

    async def close(self) -> None:
        return None

    def _group_members(self, group_key: str) -> list[str]:
        users: set[str] = set()
        seen = {group_key}
        frontier = [group_key]
        while frontier:
            group = self._groups[frontier.pop()][1]
            users |= {self._users[u.casefold()][0] for u in group.users}
            for sub in (g.casefold() for g in group.groups):
                if sub not in seen:
                    seen.add(sub)
                    frontier.append(sub)
        return sorted(users)

    def _unit_members(self, unit: BuiltinUnit) -> list[str]:
        return sorted(
            self._users[u.casefold()][0] for _, sub in [("", unit), *walk_units(unit.units)] for u in sub.users
        )

    def _groups_of(self, username: str) -> list[str]:
        return sorted(
            (name for key, (name, _) in self._groups.items() if username in self._group_members(key)), key=str.casefold
        )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
