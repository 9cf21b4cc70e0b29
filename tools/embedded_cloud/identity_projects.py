"""Keystone v3 projects: list, get and create (admin role required)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from tools.embedded_cloud.catalog import DEFAULT_DOMAIN_ID
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.records import ProjectRecord
from tools.embedded_cloud.state import auth_of, cloud_of, json_body

router = APIRouter(prefix="/identity/v3")


def _project_view(project: ProjectRecord, base: str) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "domain_id": project.domain_id,
        "enabled": project.enabled,
        "is_domain": False,
        "parent_id": project.domain_id,
        "tags": project.tags,
        "options": {},
        "links": {"self": f"{base}/identity/v3/projects/{project.id}"},
    }


@router.get("/projects", name="identity.projects.list")
async def list_projects(request: Request) -> dict[str, Any]:
    cloud, auth = cloud_of(request), auth_of(request)
    base = cloud.base_url(request)
    wanted = request.query_params
    found = []
    for project in cloud.projects().values():
        if not auth.is_admin and project.id != auth.project_id:
            continue
        if "name" in wanted and project.name != wanted["name"]:
            continue
        if "domain_id" in wanted and project.domain_id != wanted["domain_id"]:
            continue
        if "enabled" in wanted and project.enabled != (wanted["enabled"].lower() == "true"):
            continue
        found.append(_project_view(project, base))
    return {
        "projects": found,
        "links": {"self": f"{base}/identity/v3/projects", "next": None, "previous": None},
    }


@router.post("/projects", name="identity.projects.create", status_code=201)
async def create_project(request: Request) -> dict[str, Any]:
    cloud, auth = cloud_of(request), auth_of(request)
    if not auth.is_admin:
        raise ApiError(
            403, "You are not authorized to perform the requested action: identity:create_project.", service="identity"
        )
    ref = (await json_body(request, "identity")).get("project") or {}
    name = ref.get("name")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ApiError(400, "Invalid input for field 'name'.", service="identity")
    domain_id = ref.get("domain_id") or DEFAULT_DOMAIN_ID
    if domain_id != DEFAULT_DOMAIN_ID:
        raise ApiError(404, f"Could not find domain: {domain_id}.", service="identity")
    if any(p.name == name and p.domain_id == domain_id for p in cloud.projects().values()):
        raise ApiError(
            409,
            "Conflict occurred attempting to store project - it is not permitted "
            f"to have two projects with the same name in the same domain : {name}.",
            service="identity",
        )
    project = ProjectRecord(
        id=uuid.uuid4().hex,
        name=name,
        description=str(ref.get("description") or ""),
        domain_id=domain_id,
        enabled=bool(ref.get("enabled", True)),
        tags=list(ref.get("tags") or []),
    )
    cloud.store.save_project(project)
    return {"project": _project_view(project, cloud.base_url(request))}


@router.get("/projects/{project_id}", name="identity.projects.get")
async def get_project(request: Request, project_id: str) -> dict[str, Any]:
    cloud, auth = cloud_of(request), auth_of(request)
    project = cloud.projects().get(project_id)
    if project is None or not (auth.is_admin or project.id == auth.project_id):
        raise ApiError(404, f"Could not find project: {project_id}.", service="identity")
    return {"project": _project_view(project, cloud.base_url(request))}
