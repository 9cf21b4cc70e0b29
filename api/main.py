"""The FastAPI application: resources made in lifespan, one router per resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from activities.directory import CachedDirectory, DirectoryError, LdapDirectory, make_directory
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.temporal_connection import connect_temporal
from api.claim_gateway import ClaimGateway
from api.errors import install_error_handlers
from api.routers import assignments, auth, claims, desktops, health, pools
from api.settings import ApiSettings, load_api_settings

log = logging.getLogger("deskpool.api")


async def open_directory(settings: ApiSettings) -> CachedDirectory:
    """The directory behind logins and entitlements; a directory down at start is logged, not fatal."""
    directory = make_directory(settings.directory)
    if isinstance(directory.inner, LdapDirectory):
        try:
            await directory.inner.detect()
        except DirectoryError as err:
            log.error("directory not usable yet (%s); logins answer 503 until it is", err)
    directory.start_refresher(max(1.0, settings.directory.cache_refresh_ahead_s / 2))
    return directory


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_api_settings()
        upgrade(resolved.database_url)
        app.state.settings = resolved
        app.state.engine = make_engine(resolved.database_url)
        # Lazy: the API starts even while Temporal is down; /readyz says so.
        app.state.temporal = await connect_temporal(resolved, lazy=True)
        app.state.gateway = ClaimGateway(app.state.temporal)
        app.state.directory = await open_directory(resolved)
        yield
        await app.state.gateway.close()
        await app.state.directory.close()
        app.state.engine.dispose()

    app = FastAPI(title="deskpool", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    for router in (health.router, auth.router, pools.router, claims.router, assignments.router, desktops.router):
        app.include_router(router)
    return app
