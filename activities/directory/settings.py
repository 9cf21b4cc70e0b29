"""Directory settings (`DESKPOOL_DIRECTORY_*`), included by the worker and API settings.

`backend=builtin` (the default, for `make run`) reads users, groups and units
from a file; `backend=ldap` talks to OpenLDAP or Active Directory. Everything
the LDAP side needs that the server can tell (its kind, its naming context)
is detected from the root DSE unless set here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_DIRECTORY_FILE = Path(__file__).with_name("demo_directory.yaml")


class ServerKind(StrEnum):
    AUTO = "auto"  # from the root DSE
    ACTIVE_DIRECTORY = "active_directory"
    OPENLDAP = "openldap"  # and any other standard LDAP server


class NestedGroups(StrEnum):
    AUTO = "auto"  # in_chain on Active Directory, walk elsewhere
    IN_CHAIN = "in_chain"  # AD's LDAP_MATCHING_RULE_IN_CHAIN: one query
    MEMBER_OF = "member_of"  # the server maintains memberOf (OpenLDAP memberof/dynlist)
    WALK = "walk"  # follow `member` values level by level: works everywhere


class DirectorySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DESKPOOL_DIRECTORY_", extra="ignore")

    backend: Literal["builtin", "ldap"] = "builtin"
    builtin_file: Path = DEMO_DIRECTORY_FILE

    # Tried in order (ldap3 ServerPool, FIRST): ldap://host:389 or ldaps://host:636.
    urls: list[str] = Field(default_factory=list)
    server_kind: ServerKind = ServerKind.AUTO
    nested_groups: NestedGroups = NestedGroups.AUTO
    # Empty: the server's defaultNamingContext (AD) or its only namingContexts value.
    base_dn: str = ""
    user_base_dn: str = ""
    group_base_dn: str = ""
    # The service account that searches; no bind_dn means anonymous searches.
    bind_dn: str = ""
    bind_password: SecretStr | None = None
    start_tls: bool = False
    tls_ca_file: Path | None = None
    tls_verify: bool = True

    # Empty: the kind's usual (AD: sAMAccountName, user/group objects; OpenLDAP: uid,
    # person/posixAccount, groupOfNames/groupOfUniqueNames). Filters are trusted config.
    username_attribute: str = ""
    user_filter: str = ""
    group_filter: str = ""
    group_name_attribute: str = ""
    member_attribute: str = "member"
    display_name_attribute: str = "displayName"
    email_attribute: str = "mail"

    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    # Whole seconds: ldap3 packs it into SO_RCVTIMEO as an integer.
    receive_timeout_s: int = Field(default=10, ge=1, le=300)
    # Upper bound on one call (a login, a resolution), whatever the server does.
    operation_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # A server that failed is skipped this long before it is tried again.
    server_retry_after_s: int = Field(default=10, ge=0, le=3600)
    pool_size: int = Field(default=4, ge=1, le=64)
    pool_wait_s: float = Field(default=5.0, gt=0, le=300)
    page_size: int = Field(default=500, ge=1, le=1000)

    cache_ttl_s: float = Field(default=300.0, gt=0)
    # Refresh in the background when an answer is this close to its TTL.
    cache_refresh_ahead_s: float = Field(default=60.0, ge=0)
    # While the directory is down, keep serving an expired answer this long.
    cache_stale_if_error_s: float = Field(default=3600.0, ge=0)
    cache_max_entries: int = Field(default=10_000, ge=1)

    @field_validator("urls")
    @classmethod
    def _ldap_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
                raise ValueError(f"{url!r} must look like ldap://host[:port] or ldaps://host[:port]")
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError as exc:
                raise ValueError(f"{url!r}: {exc}") from None
        return urls

    @model_validator(mode="after")
    def _consistent(self) -> DirectorySettings:
        if self.backend == "ldap" and not self.urls:
            raise ValueError("backend=ldap needs DESKPOOL_DIRECTORY_URLS")
        if self.bind_dn and self.bind_password is None:
            raise ValueError("bind_dn needs bind_password")
        if self.cache_refresh_ahead_s >= self.cache_ttl_s:
            raise ValueError("cache_refresh_ahead_s must be below cache_ttl_s")
        if self.start_tls and any(url.startswith("ldaps:") for url in self.urls):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is already encrypted")
        return self
