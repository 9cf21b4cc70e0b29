"""The web portal, served by the API process: server-rendered pages (Jinja2) with htmx for the
live parts, on the API's own sign-in, roles and route functions (docs/architecture.md, "Portal")."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.portal import admin_desktops, admin_pools, user, wizard
from api.portal.common import HERE


def install_portal(app: FastAPI) -> None:
    """The portal's pages under /portal (kept out of the OpenAPI schema), its static files, / -> /portal."""
    for module in (user, wizard, admin_pools, admin_desktops):  # /pools/new before /pools/{id}
        app.include_router(module.router)
    app.include_router(user.root)
    app.mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static")
