"""Drive the real FastAPI app in-process: lifespan runs, dependencies can be overridden."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from api.auth.roles import Principal
from api.main import create_app
from api.settings import ApiSettings


@asynccontextmanager
async def api_client(
    settings: ApiSettings, overrides: dict[Callable[..., Any], Callable[..., Any]] | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    app.dependency_overrides.update(overrides or {})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://deskpool.test") as client:
            yield app, client


def app_of(client: httpx.AsyncClient) -> FastAPI:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    return app


def as_user(client: httpx.AsyncClient, username: str, groups: tuple[str, ...] = ()) -> dict[str, str]:
    """Headers that sign a request in as `username`: a session token from the app's own signer,
    as POST /auth/login would issue it (the tests' directories have no passwords)."""
    issued = app_of(client).state.tokens.issue(Principal(username, frozenset(groups)))
    return {"Authorization": f"Bearer {issued.token}"}
