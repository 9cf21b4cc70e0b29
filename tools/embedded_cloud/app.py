"""Assembles the FastAPI application serving every emulated service.

All services share one HTTP server and are told apart by path prefix
(/identity, /compute, /image, /network), like a DevStack deployment behind
one Apache. Handlers are ``async`` on purpose: they all run on the single
event-loop thread, so the in-memory state needs no fine-grained locking.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tools.embedded_cloud import (
    admin_api,
    compute_actions,
    compute_catalog,
    compute_servers,
    compute_tags_metadata,
    gatekeeper,
    identity_auth,
    identity_projects,
    image_api,
    network_api,
)
from tools.embedded_cloud.config import CloudConfig
from tools.embedded_cloud.errors import ApiError, error_response
from tools.embedded_cloud.state import CloudState


def create_app(config: CloudConfig | None = None, clock: Callable[[], float] = time.time) -> FastAPI:
    """A ready ASGI app; ``app.state.cloud`` is its ``CloudState``."""
    cloud = CloudState(config or CloudConfig(), clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        cloud.store.close()

    app = FastAPI(
        title="deskpool embedded cloud",
        lifespan=lifespan,
        # OpenStack clients never expect slash redirects; routes that need
        # both spellings (discovery documents) declare both.
        redirect_slashes=False,
        docs_url="/_admin/docs",
        openapi_url="/_admin/openapi.json",
        redoc_url=None,
    )
    app.state.cloud = cloud

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, ApiError)
        return error_response(err)

    routers = [
        identity_auth.router,
        identity_projects.router,
        compute_servers.router,
        compute_actions.router,
        compute_tags_metadata.router,
        compute_catalog.router,
        image_api.router,
        network_api.router,
        admin_api.router,
    ]
    for router in routers:
        app.include_router(router)
    gatekeeper.install(app, [route for router in routers for route in router.routes])
    return app
