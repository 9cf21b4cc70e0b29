"""The FastAPI application: resources made in lifespan, one router per resource."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from activities.directory import CachedDirectory, DirectoryError, LdapDirectory, make_directory
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.temporal_connection import connect_temporal
from api.auth.login_limits import LoginLimiter
from api.auth.tokens import SessionTokens
from api.claim_gateway import ClaimGateway
from api.claim_status_board import ClaimStatusBoard
from api.cloud_access import cloud_drivers
from api.errors import install_error_handlers
from api.metrics import ApiMetrics
from api.metrics import router as metrics_router
from api.portal import install_portal
from api.routers import (
    assignments,
    audit,
    auth,
    claims,
    connections,
    desktop_actions,
    desktops,
    health,
    me,
    pool_actions,
    pool_operations,
    pools,
    roles,
    rollouts,
    schedules,
)
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


def session_key(settings: ApiSettings) -> bytes:
    """Session tokens are signed with DESKPOOL_SECRET_KEY; without one, with a key that dies with the process."""
    key = settings.secret_key_bytes()
    if key is None:
        log.warning("DESKPOOL_SECRET_KEY is not set: sign-ins last only until the API restarts")
        return secrets.token_bytes(32)
    # Its own key, derived, so a leaked session token says nothing about agent secrets.
    return hashlib.sha256(b"deskpool session tokens\0" + key).digest()


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_api_settings()
        upgrade(resolved.database_url)
        app.state.settings = resolved
        app.state.engine = make_engine(resolved.database_url)
        # Lazy: the API starts even while Temporal is down; /readyz says so.
        app.state.temporal = await connect_temporal(resolved, lazy=True)
        app.state.metrics = ApiMetrics(app.state.engine)
        app.state.gateway = ClaimGateway(app.state.temporal, observer=app.state.metrics.observe_claim)
        app.state.claim_board = ClaimStatusBoard(app.state.temporal)
        app.state.directory = await open_directory(resolved)
        app.state.tokens = SessionTokens(session_key(resolved), resolved.session_ttl_s)
        app.state.login_limiter = LoginLimiter.of(resolved)
        # Consoles and logs straight from the cloud (never through a workflow history).
        app.state.clouds = cloud_drivers(resolved, app.state.metrics.registry)
        yield
        await app.state.gateway.close()
        await app.state.directory.close()
        app.state.engine.dispose()

    app = FastAPI(title="deskpool", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    routers = (health, auth, roles, pools, pool_actions, claims, assignments, desktops, desktop_actions,
               connections, me, audit, pool_operations, schedules, rollouts)  # fmt: skip
    for module in routers:
        app.include_router(module.router)
    # Unauthenticated, as Prometheus scrapes it: keep it off the public side of the proxy (deploy/README.md).
    app.include_router(metrics_router)
    # The web portal: pages under /portal on the same sign-in and routes (not in the OpenAPI schema).
    install_portal(app)
    return app
