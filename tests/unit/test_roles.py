"""The permission matrix, role by role and scope by scope (oVirt seed roles)."""

from __future__ import annotations

import pytest

from api.auth.roles import (
    Access,
    Action,
    Grant,
    Principal,
    PrincipalKind,
    Role,
    ScopeKind,
    Target,
    validate_grant,
)

ALICE = Principal("alice", frozenset({"callcentre"}))
POOL_A = Target("pool-a", "east", "r1")
POOL_B = Target("pool-b", "west", None)
ADMIN_ACTIONS = [Action.VIEW_POOL, Action.EDIT_POOL, Action.DELETE_POOL, Action.MANAGE_USERS,
                 Action.OPERATE_DESKTOPS, Action.VIEW_AUDIT]  # fmt: skip


def access(*grants: Grant, principal: Principal = ALICE) -> Access:
    return Access.of(principal, grants, super_users=[], super_groups=[])


def grant(role: Role, scope_kind: ScopeKind, scope: str = "", *, group: str | None = None) -> Grant:
    kind, name = (PrincipalKind.GROUP, group) if group else (PrincipalKind.USER, "alice")
    return Grant(role, kind, name, scope_kind, scope)


def test_nobody_may_do_anything_without_a_grant() -> None:
    nobody = access()
    assert not any(nobody.permits(a, POOL_A) for a in Action)
    assert not nobody.administers_anything()


def test_super_user_by_grant_or_by_configuration_may_do_everything() -> None:
    assert all(access(grant(Role.SUPER_USER, ScopeKind.SYSTEM)).permits(a, POOL_B) for a in Action)
    configured = Access.of(ALICE, [], super_users=["ALICE"], super_groups=[])
    assert configured.is_super and configured.permits(Action.MANAGE_ROLES)
    by_group = Access.of(ALICE, [], super_users=[], super_groups=["CallCentre"])
    assert by_group.is_super


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
def test_pool_admin_on_a_pool_manages_that_pool_only(action: Action) -> None:
    admin = access(grant(Role.POOL_ADMIN, ScopeKind.POOL, "pool-a"))
    assert admin.permits(action, POOL_A)
    assert not admin.permits(action, POOL_B)


def test_pool_admin_of_one_pool_cannot_create_pools_or_grant_wide_roles() -> None:
    admin = access(grant(Role.POOL_ADMIN, ScopeKind.POOL, "pool-a"))
    assert not admin.permits(Action.CREATE_POOL, Target(cloud="east"))
    assert not admin.permits(Action.MANAGE_ROLES)
    assert not admin.permits(Action.USE_POOL, POOL_A), "administering a pool is not being entitled to it"


def test_system_wide_pool_admin_creates_and_manages_every_pool() -> None:
    admin = access(grant(Role.POOL_ADMIN, ScopeKind.SYSTEM))
    assert admin.permits(Action.CREATE_POOL, Target(cloud="anywhere"))
    assert all(admin.permits(a, t) for a in ADMIN_ACTIONS for t in (POOL_A, POOL_B))
    assert not admin.permits(Action.MANAGE_ROLES)


def test_cluster_admin_manages_and_creates_pools_on_its_cloud_and_region() -> None:
    whole_cloud = access(grant(Role.CLUSTER_ADMIN, ScopeKind.CLOUD, "east"))
    assert whole_cloud.permits(Action.DELETE_POOL, POOL_A)
    assert whole_cloud.permits(Action.CREATE_POOL, Target(cloud="east", region="r9"))
    assert not whole_cloud.permits(Action.EDIT_POOL, POOL_B)
    assert not whole_cloud.permits(Action.CREATE_POOL, Target(cloud="west"))
    one_region = access(grant(Role.CLUSTER_ADMIN, ScopeKind.CLOUD, "east/r1"))
    assert one_region.permits(Action.EDIT_POOL, POOL_A)
    assert not one_region.permits(Action.EDIT_POOL, Target("pool-c", "east", "r2"))
    assert not one_region.permits(Action.EDIT_POOL, Target("pool-d", "east", None))


def test_user_role_only_uses_the_pool() -> None:
    user = access(grant(Role.USER, ScopeKind.POOL, "pool-a"))
    assert user.permits(Action.USE_POOL, POOL_A)
    assert not user.permits(Action.USE_POOL, POOL_B)
    assert not any(user.permits(a, POOL_A) for a in ADMIN_ACTIONS)
    assert not user.administers_anything()


def test_grants_to_groups_apply_to_members_only() -> None:
    team = grant(Role.POOL_ADMIN, ScopeKind.POOL, "pool-a", group="CALLCENTRE")
    assert access(team).permits(Action.EDIT_POOL, POOL_A)
    outsider = Principal("bob", frozenset({"teachers"}))
    assert not access(team, principal=outsider).permits(Action.EDIT_POOL, POOL_A)
    others = Grant(Role.SUPER_USER, PrincipalKind.USER, "bob", ScopeKind.SYSTEM)
    assert not access(others).is_super, "bob's grant is not alice's"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (Grant(Role.SUPER_USER, PrincipalKind.USER, "a", ScopeKind.POOL, "p"), "scope_kind"),
        (Grant(Role.CLUSTER_ADMIN, PrincipalKind.USER, "a", ScopeKind.POOL, "p"), "scope_kind"),
        (Grant(Role.POOL_ADMIN, PrincipalKind.USER, "a", ScopeKind.SYSTEM, "x"), "scope"),
        (Grant(Role.POOL_ADMIN, PrincipalKind.USER, "a", ScopeKind.POOL, " "), "scope"),
        (Grant(Role.CLUSTER_ADMIN, PrincipalKind.USER, "a", ScopeKind.CLOUD, "a/b/c"), "scope"),
    ],
)
def test_invalid_grants_name_the_field(bad: Grant, field: str) -> None:
    problem = validate_grant(bad)
    assert problem is not None and problem.startswith(f"{field}:")


def test_valid_grants_pass() -> None:
    assert validate_grant(Grant(Role.CLUSTER_ADMIN, PrincipalKind.GROUP, "ops", ScopeKind.CLOUD, "east/r1")) is None
    assert validate_grant(Grant(Role.USER, PrincipalKind.USER, "a", ScopeKind.POOL, "p")) is None
