"""Who may see or touch a desktop: its own user, or an administrator of its pool. Anyone else gets 404."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import Engine
from sqlmodel import Session

from activities.store.models import DesktopRecord, PoolRecord
from api.auth.deps import pool_target
from api.auth.roles import Access, Action, Target


def desktop_for(access: Access, engine: Engine, desktop_id: str, *, owner_may: bool = True) -> DesktopRecord:
    """The desktop if the caller may act on it. Another user's desktop is answered 404, as if it
    did not exist, so desktop ids cannot be probed; an owner asking for an administrator's
    action gets 403."""
    with Session(engine) as session:
        row = session.get(DesktopRecord, desktop_id)
        # Desktop ids are "<pool>.<number>": an administrator can act on a desktop the read
        # model has not caught up with yet (just claimed); its workflow is the authority.
        pool_id = row.pool_id if row is not None else desktop_id.rpartition(".")[0]
        pool = session.get(PoolRecord, pool_id) if pool_id else None
    if row is None:
        if pool is not None and access.permits(Action.OPERATE_DESKTOPS, pool_target(pool)):
            return DesktopRecord(id=desktop_id, pool_id=pool.id, name=desktop_id, state="unknown")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"desktop {desktop_id} not found")
    target = pool_target(pool) if pool is not None else Target(pool_id=row.pool_id)
    if access.permits(Action.OPERATE_DESKTOPS, target):
        return row
    if row.user is not None and row.user == access.principal.username:
        if owner_may:
            return row
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forbidden: this is for the pool's administrators")
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"desktop {desktop_id} not found")
