"""What administrators and users do through the API, written to the audit log.

The workflows' own events (a desktop assigned, destroyed…) are written by the
projection activities; these are the human actions that caused them.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from activities.store.models import AuditEvent


def record_action(
    engine: Engine,
    actor: str,
    action: str,
    *,
    pool_id: str | None = None,
    desktop_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    event = AuditEvent(
        key=f"api:{uuid.uuid4().hex}",
        actor=actor,
        action=action,
        pool_id=pool_id,
        desktop_id=desktop_id,
        detail=detail or {},
    )
    with Session(engine) as session:
        session.add(event)
        session.commit()
