"""Who may do what: roles granted on a pool, a cloud[/region] or the whole system.

Plain code over plain values, so the whole permission matrix is unit-tested
without a server. The roles are the oVirt seed's:

- super user: everything, everywhere (system scope only).
- pool administrator: create, edit and remove pools, assign and remove pool
  users, basic desktop operations. On a pool: that pool; system-wide: every
  pool (and creating new ones).
- cluster administrator: all of the above for every pool on a cloud
  (`cloud` or `cloud/region`), including creating pools there.
- user: may claim and use desktops of the pool (on top of the pool's own
  entitlement of users, groups and units).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    SUPER_USER = "super_user"
    POOL_ADMIN = "pool_admin"
    CLUSTER_ADMIN = "cluster_admin"
    USER = "user"


class ScopeKind(StrEnum):
    SYSTEM = "system"
    POOL = "pool"
    CLOUD = "cloud"


class PrincipalKind(StrEnum):
    USER = "user"
    GROUP = "group"


class Action(StrEnum):
    VIEW_POOL = "view_pool"
    CREATE_POOL = "create_pool"
    EDIT_POOL = "edit_pool"
    DELETE_POOL = "delete_pool"
    MANAGE_USERS = "manage_users"  # entitlements, personal assignments, roles on the pool
    OPERATE_DESKTOPS = "operate_desktops"  # release, return, power, list and inspect
    USE_POOL = "use_pool"
    MANAGE_ROLES = "manage_roles"  # grants beyond one pool: cloud and system scope
    VIEW_AUDIT = "view_audit"


ADMIN_ACTIONS = frozenset(Action) - {Action.USE_POOL, Action.MANAGE_ROLES}
# Which role can grant what where is itself a permission: MANAGE_USERS on the pool.
ROLE_SCOPES = {
    Role.SUPER_USER: {ScopeKind.SYSTEM},
    Role.POOL_ADMIN: {ScopeKind.SYSTEM, ScopeKind.POOL},
    Role.CLUSTER_ADMIN: {ScopeKind.SYSTEM, ScopeKind.CLOUD},
    Role.USER: {ScopeKind.SYSTEM, ScopeKind.POOL},
}


@dataclass(frozen=True)
class Principal:
    """A signed-in directory user and the groups the directory put them in."""

    username: str
    groups: frozenset[str] = frozenset()
    display_name: str = ""
    via_api_token: bool = False


@dataclass(frozen=True)
class Grant:
    role: Role
    principal_kind: PrincipalKind
    principal: str
    scope_kind: ScopeKind
    scope: str = ""

    def applies_to(self, who: Principal) -> bool:
        if self.principal_kind is PrincipalKind.USER:
            return self.principal.casefold() == who.username.casefold()
        return self.principal.casefold() in {g.casefold() for g in who.groups}


@dataclass(frozen=True)
class Target:
    """What an action is on: a pool (with its cloud and region), or a cloud for pool creation."""

    pool_id: str | None = None
    cloud: str | None = None
    region: str | None = None


@dataclass
class Access:
    """One principal's grants, evaluated per action and target."""

    principal: Principal
    grants: list[Grant] = field(default_factory=list)
    configured_super: bool = False

    @classmethod
    def of(
        cls, principal: Principal, grants: Iterable[Grant], super_users: Iterable[str], super_groups: Iterable[str]
    ) -> Access:
        mine = [g for g in grants if g.applies_to(principal)]
        users = {u.casefold() for u in super_users}
        groups = {g.casefold() for g in super_groups}
        configured = principal.username.casefold() in users or bool(groups & {g.casefold() for g in principal.groups})
        return cls(principal, mine, configured)

    @property
    def is_super(self) -> bool:
        return self.configured_super or any(g.role is Role.SUPER_USER for g in self.grants)

    def permits(self, action: Action, target: Target | None = None) -> bool:
        if self.is_super:
            return True
        target = target or Target()
        return any(_grant_permits(g, action, target) for g in self.grants)

    def administers_anything(self) -> bool:
        return self.is_super or any(g.role is not Role.USER for g in self.grants)


def _grant_permits(grant: Grant, action: Action, target: Target) -> bool:
    if grant.role is Role.USER:
        return action is Action.USE_POOL and _covers(grant, target)
    if action is Action.MANAGE_ROLES:
        return False  # cloud- and system-wide grants are the super user's
    if action is Action.CREATE_POOL:
        # A pool administrator of one pool cannot make new ones; system-wide or on the cloud can.
        if grant.role is Role.POOL_ADMIN:
            return grant.scope_kind is ScopeKind.SYSTEM
        return _covers(grant, target)
    return action in ADMIN_ACTIONS and _covers(grant, target)


def _covers(grant: Grant, target: Target) -> bool:
    if grant.scope_kind is ScopeKind.SYSTEM:
        return True
    if grant.scope_kind is ScopeKind.POOL:
        return target.pool_id is not None and grant.scope == target.pool_id
    cloud, _, region = grant.scope.partition("/")
    if target.cloud is None or cloud != target.cloud:
        return False
    return not region or region == (target.region or "")


def validate_grant(grant: Grant) -> str | None:
    """Why this grant cannot exist, or None. Field names match the API body."""
    if grant.scope_kind not in ROLE_SCOPES[grant.role]:
        allowed = ", ".join(sorted(s.value for s in ROLE_SCOPES[grant.role]))
        return f"scope_kind: a {grant.role.value} role is granted on {allowed}, not {grant.scope_kind.value}"
    if grant.scope_kind is ScopeKind.SYSTEM and grant.scope:
        return "scope: must be empty for system scope"
    if grant.scope_kind is not ScopeKind.SYSTEM and not grant.scope.strip():
        return f"scope: name the {grant.scope_kind.value} the role is granted on"
    if grant.scope_kind is ScopeKind.CLOUD and grant.scope.count("/") > 1:
        return "scope: a cloud scope is 'cloud' or 'cloud/region'"
    return None
