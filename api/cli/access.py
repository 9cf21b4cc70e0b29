"""Who may use and run what: pool entitlements (users, groups, units) and role grants."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from api.cli import output as out
from api.cli.auth import principal, scope
from api.cli.config import runtime

entitlements = typer.Typer(help="Who may use a pool's desktops.", no_args_is_help=True)
roles = typer.Typer(help="Role grants: super_user, pool_admin, cluster_admin, user.", no_args_is_help=True)

PoolId = Annotated[str, typer.Argument(metavar="POOL")]
Users = Annotated[list[str] | None, typer.Option("--user", help="a directory user (repeatable)")]
Groups = Annotated[list[str] | None, typer.Option("--group", help="a directory group (repeatable)")]
Units = Annotated[list[str] | None, typer.Option("--unit", help='an organisational unit DN "ou=..." (repeatable)')]
KEYS = ("users", "groups", "org_units")


class Role(StrEnum):
    SUPER_USER = "super_user"
    POOL_ADMIN = "pool_admin"
    CLUSTER_ADMIN = "cluster_admin"
    USER = "user"


def register(app: typer.Typer) -> None:
    app.add_typer(entitlements, name="entitlements")
    app.add_typer(roles, name="roles")


def _show_entitlement(rt_json: bool, result: dict[str, Any]) -> None:
    if rt_json:
        out.emit_json(result)
        return
    out.message(f"{result.get('total', 0)} users entitled")
    out.table(
        ["KIND", "NAME", "USERS", "PROBLEM"],
        [(s.get("kind"), s.get("name"), s.get("user_count"), s.get("problem")) for s in result.get("sources") or []],
    )
    names = result.get("usernames") or []
    if names:
        out.message("users: " + ", ".join(names))


@entitlements.command("show")
def show(ctx: typer.Context, pool_id: PoolId) -> None:
    """The pool's users, groups and units, resolved into one de-duplicated user set."""
    rt = runtime(ctx)
    _show_entitlement(rt.json, rt.client().get_entitlement(pool_id))


@entitlements.command("set")
def set_(
    ctx: typer.Context,
    pool_id: PoolId,
    user: Users = None,
    group: Groups = None,
    unit: Units = None,
    clear: Annotated[bool, typer.Option("--clear", help="entitle nobody (no --user/--group/--unit)")] = False,
) -> None:
    """Replace the pool's entitlement with exactly the given users, groups and units."""
    if not (user or group or unit or clear):
        raise typer.BadParameter("give --user, --group or --unit (or --clear to entitle nobody)")
    if clear and (user or group or unit):
        raise typer.BadParameter("--clear cannot be combined with --user, --group or --unit")
    rt = runtime(ctx)
    _show_entitlement(rt.json, rt.client().set_entitlement(pool_id, user or [], group or [], unit or []))


def _change(ctx: typer.Context, pool_id: str, adding: bool, wanted: dict[str, list[str]]) -> None:
    if not any(wanted.values()):
        raise typer.BadParameter("give at least one --user, --group or --unit")
    rt = runtime(ctx)
    client = rt.client()
    pool: dict[str, Any] = client.get_pool(pool_id)
    current = (pool.get("spec") or {}).get("entitlement") or {}
    lists = {key: list(current.get(key) or []) for key in KEYS}
    for key, values in wanted.items():
        for value in values:
            present = [v for v in lists[key] if v.casefold() == value.casefold()]
            if adding and not present:
                lists[key].append(value)
            elif not adding and present:
                lists[key] = [v for v in lists[key] if v not in present]
            elif not adding:
                out.note(f"warning: {value} is not among the pool's {key.replace('_', ' ')}")
    result = client.set_entitlement(pool_id, lists["users"], lists["groups"], lists["org_units"])
    _show_entitlement(rt.json, result)


@entitlements.command("add")
def add(ctx: typer.Context, pool_id: PoolId, user: Users = None, group: Groups = None, unit: Units = None) -> None:
    """Entitle more users, groups or units (the others stay)."""
    _change(ctx, pool_id, True, {"users": user or [], "groups": group or [], "org_units": unit or []})


@entitlements.command("remove")
def remove(ctx: typer.Context, pool_id: PoolId, user: Users = None, group: Groups = None, unit: Units = None) -> None:
    """Take users, groups or units out of the entitlement (the others stay)."""
    _change(ctx, pool_id, False, {"users": user or [], "groups": group or [], "org_units": unit or []})


def grant_rows(grants: list[dict[str, Any]]) -> None:
    out.table(
        ["ID", "ROLE", "PRINCIPAL", "SCOPE", "GRANTED BY", "GRANTED AT"],
        [(g.get("id"), g.get("role"), principal(g), scope(g), g.get("granted_by"), out.when(g.get("granted_at")))
         for g in grants],
    )  # fmt: skip


@roles.command("list")
def list_roles(
    ctx: typer.Context,
    who: Annotated[str | None, typer.Option("--principal", help="only grants to this user or group")] = None,
    scope_kind: Annotated[str | None, typer.Option("--scope-kind", help="system, pool or cloud")] = None,
    scope_name: Annotated[str | None, typer.Option("--scope", help="a pool id, a cloud or cloud/region")] = None,
) -> None:
    """Role grants, optionally filtered."""
    rt = runtime(ctx)
    grants: list[dict[str, Any]] = rt.client().list_roles(who, scope_kind, scope_name)
    if rt.json:
        out.emit_json(grants)
    else:
        grant_rows(grants)


@roles.command("grant")
def grant(
    ctx: typer.Context,
    role: Annotated[Role, typer.Argument(metavar="ROLE")],
    user: Annotated[str | None, typer.Option("--user", help="grant to this user")] = None,
    group: Annotated[str | None, typer.Option("--group", help="grant to this group")] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="on this pool")] = None,
    cloud: Annotated[str | None, typer.Option("--cloud", metavar="CLOUD", help="on a cloud, or CLOUD/REGION")] = None,
    system: Annotated[bool, typer.Option("--system", help="system-wide (the default)")] = False,
) -> None:
    """Grant ROLE to a user or a group, on a pool, a cloud (or cloud/region) or system-wide."""
    if (user is None) == (group is None):
        raise typer.BadParameter("give exactly one of --user or --group")
    if sum((pool is not None, cloud is not None, system)) > 1:
        raise typer.BadParameter("give at most one of --pool, --cloud or --system")
    scope_kind, scope_value = ("pool", pool) if pool else ("cloud", cloud) if cloud else ("system", "")
    rt = runtime(ctx)
    kind, name = ("user", user) if user is not None else ("group", group or "")
    created: dict[str, Any] = rt.client().grant_role(role.value, kind, name, scope_kind, scope_value or "")
    if rt.json:
        out.emit_json(created)
    else:
        out.message(f"Granted {role.value} to {kind} {name} on {scope(created)} (grant {created.get('id')}).")


@roles.command("revoke")
def revoke(ctx: typer.Context, grant_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a role grant."""
    rt = runtime(ctx)
    rt.client().revoke_role(grant_id)
    if not rt.json:
        out.message(f"Grant {grant_id} revoked.")
