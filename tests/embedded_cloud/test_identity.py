"""Keystone emulation: discovery, password and application-credential auth,
token validation and re-authentication, projects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openstack import exceptions
from openstack.connection import Connection
from openstack.identity.v3._proxy import Proxy as IdentityV3

from tools.embedded_cloud import RunningCloud, clouds_yaml_document
from tools.embedded_cloud.catalog import stable_id

Keystone = Callable[[Connection], IdentityV3]


def test_password_auth_gives_token_with_catalog_on_same_server(
    conn: Connection, cloud: RunningCloud, keystone: Keystone
) -> None:
    token = conn.authorize()

    assert conn.current_project_id == stable_id("project", "deskpool")
    validated = keystone(conn).validate_token(token)
    assert validated.project["name"] == "deskpool"
    assert validated.user["name"] == "deskpool"
    catalog = {service["type"]: service for service in validated.catalog}
    assert set(catalog) == {"identity", "compute", "image", "network"}
    public = {
        kind: next(e["url"] for e in service["endpoints"] if e["interface"] == "public")
        for kind, service in catalog.items()
    }
    assert public["compute"] == f"{cloud.base_url}/compute/v2.1"
    assert public["image"] == f"{cloud.base_url}/image"
    assert all(e["region_id"] == "RegionOne" for s in catalog.values() for e in s["endpoints"])
    assert keystone(conn).check_token(token) is True
    assert keystone(conn).check_token(token[:-4] + "AAAA") is False


def _write(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_wrong_password_is_rejected(cloud: RunningCloud, connect: Callable[..., Connection], tmp_path: Path) -> None:
    document = clouds_yaml_document(cloud.base_url, cloud.state.config)
    document["clouds"]["embedded"]["auth"]["password"] = "not-the-password"
    bad = connect(_write(document, tmp_path / "bad.yaml"))

    # openstacksdk turns keystoneauth's Unauthorized into a plain SDKException.
    with pytest.raises(exceptions.SDKException, match=r"requires authentication\. \(HTTP 401\)"):
        bad.authorize()


def test_request_without_token_answers_nova_style_401(cloud: RunningCloud) -> None:
    response = httpx.get(f"{cloud.base_url}/compute/v2.1/servers")

    assert response.status_code == 401
    assert response.json()["unauthorized"]["code"] == 401
    assert "Keystone uri=" in response.headers["WWW-Authenticate"]


def test_application_credential_clouds_yaml(
    cloud: RunningCloud, connect: Callable[..., Connection], tmp_path: Path
) -> None:
    document = clouds_yaml_document(cloud.base_url, cloud.state.config, auth_type="v3applicationcredential")
    assert document["clouds"]["embedded"]["auth_type"] == "v3applicationcredential"

    appcred = connect(_write(document, tmp_path / "appcred.yaml"))

    assert appcred.current_project_id == stable_id("project", "deskpool")
    assert {f.name for f in appcred.compute.flavors()} >= {"vdi.small", "vdi.medium", "vdi.large"}


def test_wrong_application_credential_secret_is_rejected(cloud: RunningCloud) -> None:
    body: dict[str, Any] = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": "deskpool-app-cred", "secret": "wrong"},
            }
        }
    }

    response = httpx.post(f"{cloud.base_url}/identity/v3/auth/tokens", json=body)

    assert response.status_code == 401
    assert "X-Subject-Token" not in response.headers


def test_create_list_get_project_and_work_inside_it(
    conn: Connection,
    cloud: RunningCloud,
    connect: Callable[..., Connection],
    boot_active: Callable[..., Any],
    keystone: Keystone,
) -> None:
    created = keystone(conn).create_project(name="tenant-a", domain_id="default", description="Tenant A")

    assert keystone(conn).get_project(created.id).name == "tenant-a"
    assert keystone(conn).find_project("tenant-a", ignore_missing=False).id == created.id
    assert {"deskpool", "tenant-a"} <= {p.name for p in keystone(conn).projects()}
    with pytest.raises(exceptions.ConflictException):
        keystone(conn).create_project(name="tenant-a", domain_id="default")

    # An admin user can scope a token to the new project and boot there.
    tenant = connect(cloud, project_name="tenant-a")
    assert tenant.current_project_id == created.id
    server = boot_active(tenant, "tenant-desk")
    assert server.project_id == created.id
    assert [s.name for s in conn.compute.servers()] == []
    everywhere = [s.name for s in conn.compute.servers(all_projects=True)]
    assert everywhere == ["tenant-desk"]


def test_unknown_project_is_404(conn: Connection, keystone: Keystone) -> None:
    with pytest.raises(exceptions.NotFoundException):
        keystone(conn).get_project("0" * 32)
