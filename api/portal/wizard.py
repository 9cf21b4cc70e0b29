"""The three-step pool wizard (pool configuration, virtual machines, peripherals). Each step is checked
on the server with the API's own PoolSpec model and the cloud's catalog, every error shown next to
its field; the last step creates the pool through the API's own create route. The same wizard edits
a pool (`?edit=<pool id>`): its fields filled from the pool, saved through the API's edit route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlmodel import Session, select

from activities.store.models import PoolRecord
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Access, Action
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.pool_service import load_pool
from api.portal import wizard_form as wf
from api.portal.catalog import Catalog, catalog_of, cloud_errors
from api.portal.common import PortalRoute, form_of, redirect, render
from api.routers import pools
from api.settings import ApiSettings

router = APIRouter(prefix="/portal/pools/new", route_class=PortalRoute, include_in_schema=False)


def _require_creator(access: Access, engine: EngineDep, editing: str = "") -> None:
    """Who may create a pool somewhere: a super user, a system-wide pool admin or a cluster admin
    (the create itself checks the pool's cloud, as the API does); who may edit the pool edited."""
    if editing:
        require(access, Action.EDIT_POOL, pool_target(load_pool(engine, editing)))
    elif not (access.permits(Action.CREATE_POOL) or any(g.role.value == "cluster_admin" for g in access.grants)):
        require(access, Action.CREATE_POOL)


def _name_taken(engine: EngineDep, values: dict[str, Any]) -> dict[str, str]:
    name = values.get("name", "")
    query = select(PoolRecord).where(PoolRecord.project == "default", PoolRecord.name == name)
    with Session(engine) as session:
        taken = session.exec(query.where(PoolRecord.id != values.get("editing", ""))).first()
    return {"name": f"a pool named {name!r} exists in this project"} if taken else {}


async def check(values: dict[str, Any], step: int, engine: EngineDep, settings: ApiSettings) -> dict[str, str]:
    """Every error of steps 1..step: the PoolSpec rules, a name taken, the cloud's catalog."""
    _, errors = wf.validate(values, upto_step=step)
    errors = {k: v for k, v in errors.items() if wf.STEP_OF.get(k, 1) <= step}
    if "name" not in errors:
        errors |= _name_taken(engine, values)
    if step >= 2:
        catalog = await catalog_of(settings, values.get("cloud") or "embedded")
        errors = cloud_errors(catalog, values) | errors
    return errors


async def _page(request: Request, step: int, values: dict[str, Any], errors: dict[str, str],
                settings: ApiSettings, status_code: int = 200, fragment: bool = True,
                access: Access | None = None) -> HTMLResponse:  # fmt: skip
    catalog: Catalog | None = None
    if step == 2:
        catalog = await catalog_of(settings, values.get("cloud") or "embedded")
    context = {"step": step, "steps": wf.STEPS, "values": values, "errors": errors, "catalog": catalog,
               "fields": wf.FIELDS, "general": {k: v for k, v in errors.items() if k not in wf.FIELDS}}  # fmt: skip
    name = "_wizard.html" if fragment else "wizard.html"
    return render(request, name, status_code=status_code, section="pools", access=access, **context)


@router.get("", response_class=HTMLResponse)
async def wizard_page(
    request: Request,
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    edit: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    _require_creator(access, engine, edit or "")
    values = wf.initial_values()
    if edit:
        values = wf.values_from_spec(load_pool(engine, edit).spec) | {"editing": edit}
    return await _page(request, 1, values, {}, settings, fragment=False, access=access)


@router.post("/check", response_class=HTMLResponse)
async def check_fields(request: Request, access: AccessDep, engine: EngineDep, settings: SettingsDep) -> HTMLResponse:
    """Live check while typing: the errors of the step's fields filled in so far (and of the field
    just changed), swapped into their places out of band."""
    form = await form_of(request)
    values = wf.values_of(form)
    _require_creator(access, engine, values["editing"])
    step = _step(form)
    touched = {name for name in wf.FIELDS if wf.STEP_OF[name] == step and values.get(name) not in ("", [], None)}
    touched |= set(form.get("changed", []))
    errors = await check(values, step, engine, settings)
    shown = {name: errors.get(name, "") if name in touched else None for name, s in wf.STEP_OF.items() if s == step}
    return render(request, "_wizard_errors.html", shown=shown)


def _step(form: dict[str, list[str]]) -> int:
    raw = (form.get("step") or ["1"])[-1]
    return int(raw) if raw in ("1", "2", "3") else 1


@router.post("", response_class=HTMLResponse)
async def wizard_step(
    request: Request, access: AccessDep, engine: EngineDep, settings: SettingsDep, temporal: TemporalDep
) -> Response:
    """Back, next step (when this step is right), or, from the last step, create the pool."""
    form = await form_of(request)
    values, step = wf.values_of(form), _step(form)
    _require_creator(access, engine, values["editing"])
    if (form.get("go") or ["next"])[-1] == "back":
        return await _page(request, max(1, step - 1), values, {}, settings)
    errors = await check(values, step, engine, settings)
    if errors:
        first = wf.first_step_with_errors(errors) or step
        return await _page(request, first, values, errors, settings, status_code=422)
    if step < len(wf.STEPS):
        return await _page(request, step + 1, values, {}, settings)
    editing = values["editing"]
    data = wf.edited_spec(load_pool(engine, editing).spec, values) if editing else wf.spec_data(values)
    spec, errors = wf.validate_data(data)
    if spec is None:  # a rule on what the wizard keeps but does not show (the ceiling...)
        return await _page(request, wf.first_step_with_errors(errors) or 1, values, errors, settings, 422)
    try:
        if editing:
            await pools.edit_pool(editing, spec, access, engine, temporal, settings)
            return redirect(request, f"/portal/pools/{editing}")
        created = await pools.create_pool(spec, access, engine, temporal, settings)
    except HTTPException as err:
        field, _, message = str(err.detail).partition(": ")
        if field not in wf.FIELDS or not message:
            raise
        return await _page(request, wf.STEP_OF[field], values, {field: message}, settings, err.status_code)
    return redirect(request, f"/portal/pools?created={created.id}")
