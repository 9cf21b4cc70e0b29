"""Administrators' pool pages: the list with live counts and fill, and a pool's detail (desktops,
Recreate and its progress, counts over time, events, entitlement, roles), all on the API's routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse

from activities.directory import DirectoryUnavailable
from api.auth.deps import AccessDep
from api.auth.roles import ROLE_SCOPES, Access, PrincipalKind, ScopeKind
from api.deps import DirectoryDep, EngineDep, SettingsDep, TemporalDep
from api.portal.charts import SERIES, WINDOWS, line_chart, load_points
from api.portal.common import PortalRoute, age, flash, form_of, redirect, render, split_names
from api.routers import audit, desktops, pool_actions, pool_operations, pools, roles, rollouts
from api.routers.pool_actions import IncreaseBody, ShrinkBody
from api.routers.roles import GrantBody
from api.routers.rollouts import RecreateBody, RolloutView
from api.views import PoolView
from workflows.pool_spec import Entitlement

router = APIRouter(prefix="/portal/pools", route_class=PortalRoute, include_in_schema=False)
# The roles a pool can be granted on (a pool administrator hands these out on their pools).
POOL_ROLES = [role.value for role, scopes in ROLE_SCOPES.items() if ScopeKind.POOL in scopes]
WindowQuery = Annotated[Literal["1h", "6h", "24h", "3d"], Query()]


def _require_admin(access: Access) -> None:
    if not access.administers_anything():
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"forbidden: {access.principal.username} administers no pool")


def fill_percent(ready: int, target: int) -> int:
    return 100 if target <= 0 else min(100, round(100 * ready / target))


@router.get("", response_class=HTMLResponse)
def pool_list(
    request: Request,
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    created: Annotated[str | None, Query(max_length=64)] = None,
    removed: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    _require_admin(access)
    views = pools.list_pools(access, engine, settings)
    return render(request, "pools.html", access=access, section="pools", pools=views, created=created, removed=removed,
                  percent=fill_percent)  # fmt: skip


@router.get("/rows", response_class=HTMLResponse)
def pool_rows(request: Request, access: AccessDep, engine: EngineDep, settings: SettingsDep) -> HTMLResponse:
    views = pools.list_pools(access, engine, settings)
    return render(request, "_pool_rows.html", pools=views, percent=fill_percent)


async def _rollout(pool_id: str, access: Access, engine: EngineDep, temporal: TemporalDep,
                   settings: SettingsDep) -> RolloutView | None:  # fmt: skip
    try:
        return await rollouts.get_rollout(pool_id, access, engine, temporal, settings)
    except HTTPException as err:
        if err.status_code == status.HTTP_404_NOT_FOUND:
            return None  # no rollout has run
        raise


@router.get("/{pool_id}", response_class=HTMLResponse)
async def pool_detail(
    request: Request,
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    directory: DirectoryDep,
) -> HTMLResponse:
    live = await _live(pool_id, access, engine, settings, temporal)  # the pool's own access check first
    directory_down = False
    try:
        entitlement = await pools.pool_entitlement(pool_id, access, engine, directory, limit=50)
        grants = roles.list_grants(access, engine, principal=None, scope_kind=ScopeKind.POOL, scope=pool_id)
    except HTTPException as err:
        if err.status_code != status.HTTP_403_FORBIDDEN:
            raise
        entitlement, grants = None, None  # not theirs to manage
    except DirectoryUnavailable:
        # The directory is down: the rest of the page still serves (its panel says why it is missing).
        entitlement, grants, directory_down = None, None, True
    events = audit.list_events(access, engine, pool=pool_id, desktop=None, actor=None, action=None, since=None,
                               until=None, limit=30)  # fmt: skip
    return render(
        request, "pool.html", access=access, section="pools", entitlement=entitlement, grants=grants,
        events=events, directory_down=directory_down, roles=POOL_ROLES, kinds=[k.value for k in PrincipalKind], **live,
    )  # fmt: skip


async def _live(pool_id: str, access: Access, engine: EngineDep, settings: SettingsDep,
                temporal: TemporalDep) -> dict[str, Any]:  # fmt: skip
    pool = pools.get_pool(pool_id, access, engine, settings)
    rows = desktops.list_desktops(access, engine, settings, pool=pool_id, state=None, user=None,
                                  template_version=None, include_gone=False, limit=1000)  # fmt: skip
    now = datetime.now(UTC)
    rollout = await _rollout(pool_id, access, engine, temporal, settings)
    ages = {d.id: age(d.created_at, now) for d in rows}
    return {"pool": pool, "desktops": rows, "ages": ages, "rollout": rollout, "percent": fill_percent}


@router.get("/{pool_id}/live", response_class=HTMLResponse)
async def pool_live(
    request: Request, pool_id: str, access: AccessDep, engine: EngineDep, settings: SettingsDep, temporal: TemporalDep
) -> HTMLResponse:
    """The parts of the page that change by themselves: counts, desktops, the rollout."""
    return render(request, "_pool_live.html", **await _live(pool_id, access, engine, settings, temporal))


@router.get("/{pool_id}/chart", response_class=HTMLResponse)
def pool_chart(
    request: Request,
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    window: WindowQuery = "1h",
) -> HTMLResponse:
    pool = pools.get_pool(pool_id, access, engine, settings)
    end = datetime.now(UTC)
    start = end - WINDOWS[window]
    svg = line_chart(load_points(engine, pool_id, start), start, end, f"Desktops of {pool.name}")
    return render(request, "_chart.html", pool=pool, svg=svg, window=window, windows=list(WINDOWS), series=SERIES)


REMOVAL_MODES: dict[str, Literal["none", "destroy", "detach"]] = {
    "none": "none",
    "destroy": "destroy",
    "detach": "detach",
}
PoolAction = Literal["enable", "disable", "increase", "shrink", "recreate", "pause-recreate", "resume-recreate",
                     "cancel-recreate", "release-disconnected", "remove"]  # fmt: skip


@router.post("/{pool_id}/{action}", response_class=HTMLResponse)
async def pool_action(
    request: Request,
    pool_id: str,
    action: PoolAction,
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> Response:
    """The pool's operations, each the API's own route function; its answer as a flash message."""
    form = {key: values[-1] for key, values in (await form_of(request)).items() if values}
    message = ""
    if action in ("enable", "disable"):
        switch = pool_actions.enable_pool if action == "enable" else pool_actions.disable_pool
        await switch(pool_id, access, engine, temporal, settings)
        message = "Pool enabled: it takes claims again." if action == "enable" else (
            "Pool disabled: no new claims; sessions in progress go on.")  # fmt: skip
    elif action in ("increase", "shrink"):
        if action == "increase":
            view = await pool_actions.increase_pool(
                pool_id, IncreaseBody.model_validate({"by": form.get("by")}), access, engine, temporal, settings
            )
        else:
            view = await _shrink(pool_id, form, access, engine, temporal, settings)
        message = f"The maximum is now {view.spec['max_desktops']} desktops."
    elif action == "recreate":
        body = RecreateBody(strategy="immediate" if form.get("strategy") == "immediate" else "rolling")
        started = await rollouts.recreate_pool(pool_id, access, engine, temporal, settings, body)
        message = f"Recreate started: {started.total} desktops to move to template v{started.target_version}."
    elif action.endswith("-recreate"):
        command = {"pause-recreate": rollouts.pause_rollout, "resume-recreate": rollouts.resume_rollout,
                   "cancel-recreate": rollouts.cancel_rollout}[action]  # fmt: skip
        progress = await command(pool_id, access, engine, temporal, settings, None)
        message = f"Recreate {progress.status}."
    elif action == "release-disconnected":
        released = await pool_operations.release_disconnected(pool_id, access, engine, temporal)
        message = f"Released {len(released.released)} disconnected desktops."
    else:
        mode = REMOVAL_MODES.get(form.get("desktops", "none"))
        if mode is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "desktops: destroy, detach or none")
        await pool_actions.remove_pool(pool_id, access, engine, temporal, desktops=mode)
        return redirect(request, f"/portal/pools?removed={pool_id}")
    response = flash(request, message)
    response.headers["HX-Trigger"] = "pool-changed"
    return response


async def _shrink(
    pool_id: str, form: dict[str, str], access: Access, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> PoolView:
    body = ShrinkBody.model_validate({"by": form.get("by")})
    return await pool_actions.shrink_pool(pool_id, body, access, engine, temporal, settings)


@router.post("/{pool_id}/entitlement/set", response_class=HTMLResponse)
async def set_entitlement(
    request: Request, pool_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep,
    directory: DirectoryDep,
) -> Response:  # fmt: skip
    form = await form_of(request)
    units = [u.strip() for u in form.get("org_units", [""])[0].splitlines() if u.strip()]
    body = Entitlement(
        users=split_names(form.get("users", [])), groups=split_names(form.get("groups", [])), org_units=units
    )
    await pool_actions.set_entitlement(pool_id, body, access, engine, temporal, directory)
    entitlement = await pools.pool_entitlement(pool_id, access, engine, directory, limit=50)
    pool = pools.get_pool(pool_id, access, engine, settings=request.app.state.settings)
    saved = f"Saved: {entitlement.total} users may use the pool."
    return render(request, "_entitlement.html", pool=pool, entitlement=entitlement, saved=saved)


def _roles_panel(request: Request, pool_id: str, access: Access, engine: EngineDep, saved: str) -> HTMLResponse:
    grants = roles.list_grants(access, engine, principal=None, scope_kind=ScopeKind.POOL, scope=pool_id)
    pool = pools.get_pool(pool_id, access, engine, settings=request.app.state.settings)
    return render(request, "_roles.html", pool=pool, grants=grants, saved=saved,
                  roles=POOL_ROLES, kinds=[k.value for k in PrincipalKind])  # fmt: skip


@router.post("/{pool_id}/roles/grant", response_class=HTMLResponse)
async def grant_role(
    request: Request, pool_id: str, access: AccessDep, engine: EngineDep, directory: DirectoryDep
) -> Response:
    form = await form_of(request)
    first = {key: values[0] for key, values in form.items() if values}
    body = GrantBody.model_validate({**first, "scope_kind": "pool", "scope": pool_id})
    grant = await roles.grant_role(body, access, engine, directory)
    saved = f"Granted {grant.role.value} to {grant.principal_kind.value} {grant.principal}."
    return _roles_panel(request, pool_id, access, engine, saved)


@router.post("/{pool_id}/roles/{grant_id}/revoke", response_class=HTMLResponse)
def revoke_role(request: Request, pool_id: str, grant_id: int, access: AccessDep, engine: EngineDep) -> Response:
    roles.revoke_role(grant_id, access, engine)
    return _roles_panel(request, pool_id, access, engine, f"Role grant {grant_id} revoked.")
