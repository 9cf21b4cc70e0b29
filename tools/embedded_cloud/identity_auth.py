"""Keystone v3 subset: discovery and tokens (password, token and
application-credential methods).

keystoneauth's ``password`` plugin first GETs the auth_url (``.../v3``) to
discover the API, then POSTs ``/v3/auth/tokens`` and takes the token from the
``X-Subject-Token`` header and the endpoints from the body's ``catalog``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tools.embedded_cloud.catalog import DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, User, stable_id
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.records import ProjectRecord
from tools.embedded_cloud.state import CloudState, cloud_of, json_body
from tools.embedded_cloud.tokens import TokenInfo

router = APIRouter(prefix="/identity")

# (service type, service name, path) -- the paths are where the other
# routers are mounted. Compute is versioned like DevStack's catalog entry;
# keystoneauth strips the version to find the discovery document.
CATALOG_SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/network"),
)
_DOMAIN = {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}
_UNAUTHORIZED = "The request you have made requires authentication."


def _ktime(ts: float) -> str:
    # Keystone's timestamp format, with microseconds and a Z.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.identity-v3+json",
            }
        ],
    }


@router.get("", name="identity.versions")
@router.get("/", name="identity.versions")
async def versions(request: Request) -> dict[str, Any]:
    base = cloud_of(request).base_url(request)
    return {"versions": {"values": [_version_doc(base)]}}


@router.get("/v3", name="identity.version")
@router.get("/v3/", name="identity.version")
async def version(request: Request) -> dict[str, Any]:
    return {"version": _version_doc(cloud_of(request).base_url(request))}


def service_catalog(base: str, region: str) -> list[dict[str, Any]]:
    return [
        {
            "type": service_type,
            "name": name,
            "id": stable_id("service", service_type),
            "endpoints": [
                {
                    "id": stable_id("endpoint", f"{service_type}:{interface}"),
                    "interface": interface,
                    "region": region,
                    "region_id": region,
                    "url": f"{base}{path}",
                }
                for interface in ("public", "internal", "admin")
            ],
        }
        for service_type, name, path in CATALOG_SERVICES
    ]


def _token_body(cloud: CloudState, info: TokenInfo, base: str) -> dict[str, Any]:
    token: dict[str, Any] = {
        "methods": list(info.methods),
        "user": {
            "id": info.user_id,
            "name": info.user_name,
            "domain": _DOMAIN,
            "password_expires_at": None,
        },
        "audit_ids": [info.audit_id],
        "issued_at": _ktime(info.issued_at),
        "expires_at": _ktime(info.expires_at),
    }
    if info.project_id:
        token["project"] = {
            "id": info.project_id,
            "name": info.project_name,
            "domain": _DOMAIN,
        }
        token["is_domain"] = False
        token["roles"] = [{"id": stable_id("role", r), "name": r} for r in info.roles]
        token["catalog"] = service_catalog(base, cloud.config.seed.region)
    return {"token": token}


@dataclass(frozen=True)
class _Principal:
    user: User
    methods: list[str]
    # Application credentials are bound to one project and forbid a scope.
    bound_project_id: str | None = None


def _user_from_ref(cloud: CloudState, ref: dict[str, Any]) -> User | None:
    domain = ref.get("domain") or {}
    if domain.get("id", DEFAULT_DOMAIN_ID) != DEFAULT_DOMAIN_ID:
        return None
    if domain.get("name", DEFAULT_DOMAIN_NAME) != DEFAULT_DOMAIN_NAME:
        return None
    return cloud.catalog.users.get(ref.get("id", "")) or cloud.catalog.user_by_name(ref.get("name", ""))


def _authenticate(cloud: CloudState, identity: dict[str, Any]) -> _Principal:
    methods = identity.get("methods") or []
    unauthorized = ApiError(401, _UNAUTHORIZED, service="identity")
    if "password" in methods:
        ref = (identity.get("password") or {}).get("user") or {}
        user = _user_from_ref(cloud, ref)
        if user is None or ref.get("password") != user.seed.password:
            raise unauthorized
        return _Principal(user, ["password"])
    if "token" in methods:
        info = cloud.signer.verify((identity.get("token") or {}).get("id", ""), cloud.now())
        token_user = cloud.catalog.users.get(info.user_id) if info else None
        if token_user is None:
            raise unauthorized
        return _Principal(token_user, ["token"])
    if "application_credential" in methods:
        ref = identity.get("application_credential") or {}
        owner = _user_from_ref(cloud, ref.get("user") or {}) if "user" in ref else None
        for credential in cloud.config.seed.application_credentials:
            user = cloud.catalog.user_by_name(credential.user)
            if user is None or ref.get("secret") != credential.secret:
                continue
            if ref.get("id") == credential.id or (ref.get("name") == credential.name and owner == user):
                name = credential.project or user.seed.project
                project = next((p for p in cloud.projects().values() if p.name == name), None)
                if project is None:
                    raise unauthorized
                return _Principal(user, ["application_credential"], project.id)
        raise unauthorized
    raise ApiError(401, f"Unsupported auth methods {methods}", service="identity")


def _scoped_project(cloud: CloudState, scope: dict[str, Any]) -> ProjectRecord | None:
    if not scope:
        return None
    ref = scope.get("project")
    if not isinstance(ref, dict):
        raise ApiError(401, "Only project scope is supported", service="identity")
    projects = cloud.projects()
    if "id" in ref:
        project = projects.get(ref["id"])
    else:
        domain = ref.get("domain") or {}
        domain_id = domain.get("id") or (
            DEFAULT_DOMAIN_ID if domain.get("name", DEFAULT_DOMAIN_NAME) == DEFAULT_DOMAIN_NAME else ""
        )
        project = next(
            (p for p in projects.values() if p.name == ref.get("name") and p.domain_id == domain_id),
            None,
        )
    if project is None or not project.enabled:
        raise ApiError(401, f"Could not find project: {ref}", service="identity")
    return project


@router.post("/v3/auth/tokens", name="identity.tokens.issue")
async def issue_token(request: Request) -> Response:
    cloud = cloud_of(request)
    auth = (await json_body(request, "identity")).get("auth") or {}
    principal = _authenticate(cloud, auth.get("identity") or {})
    user = principal.user
    scope = auth.get("scope") or {}
    if principal.bound_project_id is not None:
        if scope:
            raise ApiError(401, "Application credentials cannot request a scope.", service="identity")
        project: ProjectRecord | None = cloud.projects().get(principal.bound_project_id)
    else:
        project = _scoped_project(cloud, scope)
    roles: list[str] = []
    if project is not None:
        # Admins may scope to any project; others only to their own.
        if project.name != user.seed.project and "admin" not in user.seed.roles:
            raise ApiError(401, f"User {user.id} has no access to project {project.id}", service="identity")
        roles = user.seed.roles
    token, info = cloud.signer.issue(
        user_id=user.id,
        user_name=user.seed.name,
        project_id=project.id if project else "",
        project_name=project.name if project else "",
        roles=roles,
        now=cloud.now(),
        ttl=cloud.config.token_ttl_seconds,
        methods=principal.methods,
    )
    body = _token_body(cloud, info, cloud.base_url(request))
    return JSONResponse(body, status_code=201, headers={"X-Subject-Token": token})


@router.get("/v3/auth/tokens", name="identity.tokens.validate")
@router.head("/v3/auth/tokens", name="identity.tokens.check")
async def validate_token(request: Request) -> Response:
    cloud = cloud_of(request)
    subject = request.headers.get("x-subject-token", "")
    info = cloud.signer.verify(subject, cloud.now())
    if info is None:
        raise ApiError(404, f"Could not find token: {subject[:16]}...", service="identity")
    body = _token_body(cloud, info, cloud.base_url(request))
    if request.query_params.get("nocatalog", "").lower() in ("1", "true"):
        body["token"].pop("catalog", None)
    return JSONResponse(body, headers={"X-Subject-Token": subject})
