"""Connection data for a claimed desktop (.rdp and SPICE .vv files) and each user's console defaults per pool."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status
from sqlmodel import Session

from activities.store.models import ConsoleDefaults, utcnow
from api.auth.deps import AccessDep, pool_target
from api.auth.roles import Action
from api.connection_files import ConsoleOptions, connection_file_name, rdp_file, vv_file
from api.deps import DirectoryDep, EngineDep
from api.desktop_access import desktop_for
from api.pool_service import load_pool
from api.routers.claims import require_entitlement
from workflows.pool_spec import spec_from_json

router = APIRouter(tags=["connections"])
# SPICE is the hypervisor's console; a native client reaches it on the desktop's
# address unless the pool's SPICE proxy override routes it.
SPICE_PORT = 5900
MEDIA_TYPES = {"rdp": "application/x-rdp", "spice": "application/x-virt-viewer"}


def _defaults(engine: EngineDep, username: str, pool_id: str) -> ConsoleOptions:
    with Session(engine) as session:
        row = session.get(ConsoleDefaults, (username, pool_id))
    return ConsoleOptions.model_validate(row.options) if row is not None else ConsoleOptions()


@router.get("/pools/{pool_id}/console-options", response_model=ConsoleOptions, tags=["pools"])
def get_console_options(pool_id: str, access: AccessDep, engine: EngineDep) -> ConsoleOptions:
    """The caller's console defaults for this pool (the built-in defaults until they set some)."""
    load_pool(engine, pool_id)
    return _defaults(engine, access.principal.username, pool_id)


@router.put("/pools/{pool_id}/console-options", response_model=ConsoleOptions, tags=["pools"])
async def set_console_options(
    pool_id: str, body: ConsoleOptions, access: AccessDep, engine: EngineDep, directory: DirectoryDep
) -> ConsoleOptions:
    """Console options a user sets for a pool become that user's default for that pool (oVirt seed)."""
    record = load_pool(engine, pool_id)
    if not access.permits(Action.VIEW_POOL, pool_target(record)):
        await require_entitlement(pool_id, access, engine, directory)
    with Session(engine) as session:
        row = session.get(ConsoleDefaults, (access.principal.username, pool_id))
        row = row or ConsoleDefaults(username=access.principal.username, pool_id=pool_id)
        row.options, row.updated_at = body.model_dump(mode="json"), utcnow()
        session.add(row)
        session.commit()
    return body


@router.get(
    "/desktops/{desktop_id}/connection.{protocol}",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPES["rdp"]: {}, MEDIA_TYPES["spice"]: {}}}},
    tags=["desktops"],
)
def connection_file(desktop_id: str, protocol: Literal["rdp", "vv"], access: AccessDep, engine: EngineDep) -> Response:
    """A ready-to-open .rdp or SPICE .vv file for the caller's desktop, with the pool's peripheral
    settings narrowed by the caller's console defaults."""
    row = desktop_for(access, engine, desktop_id)
    if not row.address:
        raise HTTPException(status.HTTP_409_CONFLICT, f"desktop is {row.state}: it has no address yet")
    spec = spec_from_json(load_pool(engine, row.pool_id).spec)
    options = _defaults(engine, access.principal.username, row.pool_id)
    kind: Literal["rdp", "spice"] = "rdp" if protocol == "rdp" else "spice"
    if kind == "rdp":
        body = rdp_file(
            address=row.address,
            username=row.user,
            desktop_name=row.name,
            peripherals=spec.peripherals,
            options=options,
        )
    else:
        body = vv_file(
            host=row.address,
            port=SPICE_PORT,
            password=None,
            title=row.name,
            spice_proxy=spec.spice_proxy,
            peripherals=spec.peripherals,
            options=options,
        )
    name = connection_file_name(row.name, kind)
    return Response(
        body,
        media_type=MEDIA_TYPES[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
