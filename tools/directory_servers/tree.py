"""One description of a test directory, loaded into OpenLDAP and Samba AD alike.

Units are paths from the top: ("sales", "emea") is the unit `emea` inside
`sales`. A user or group with no unit lives in the server's default place
(`ou=people` / `ou=groups` in OpenLDAP, `CN=Users` in AD).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

UnitPath = tuple[str, ...]


@dataclass(frozen=True)
class TreeUser:
    name: str
    # None: an entry without a password (bulk users nobody logs in as).
    password: str | None = None
    unit: UnitPath = ()
    display_name: str = ""
    email: str = ""
    # Active Directory only: OpenLDAP has no account states without ppolicy.
    disabled: bool = False
    locked: bool = False


@dataclass(frozen=True)
class TreeGroup:
    name: str
    users: tuple[str, ...] = ()
    # Nested groups by name; cycles are allowed (and wanted in tests).
    groups: tuple[str, ...] = ()
    unit: UnitPath = ()


@dataclass(frozen=True)
class DirectoryTree:
    service_user: TreeUser
    users: tuple[TreeUser, ...] = ()
    groups: tuple[TreeGroup, ...] = ()
    units: tuple[UnitPath, ...] = field(default=())

    def all_users(self) -> tuple[TreeUser, ...]:
        return (self.service_user, *self.users)

    def all_units(self) -> list[UnitPath]:
        """Every unit, each after its parent, the parents of named units included."""
        seen: list[UnitPath] = []
        named = [*self.units, *(u.unit for u in self.all_users()), *(g.unit for g in self.groups)]
        for path in named:
            for depth in range(1, len(path) + 1):
                if path[:depth] not in seen:
                    seen.append(path[:depth])
        return seen

    def to_json(self) -> str:
        """For samba_populate.py, which runs outside the project's venv."""
        return json.dumps({**asdict(self), "all_units": self.all_units()})
