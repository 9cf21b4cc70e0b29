"""Settings shared by every deskpool process.

Each process composes exactly one validated settings object from this base
(`worker.settings.WorkerSettings`, `api.settings.ApiSettings`); modules receive
it, they never read the environment themselves. The base lives in
`activities/` because it configures the connections the side-effect layer
opens: Temporal and the database.
"""

from __future__ import annotations

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SharedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DESKPOOL_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "deskpool"
    database_url: str = "sqlite:///data/deskpool.db"
    # Signs per-desktop agent secrets (and, later, user tokens). Without it the
    # agent event endpoint is closed.
    secret_key: SecretStr | None = None

    def secret_key_bytes(self) -> bytes | None:
        return self.secret_key.get_secret_value().encode() if self.secret_key else None

    @field_validator("temporal_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port with a port from 1 to 65535")
        return value

    @field_validator("temporal_namespace", "task_queue")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"is not a database URL: {exc}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value


def describe_validation_error(exc: ValidationError, prefix: str = "DESKPOOL_") -> str:
    """One line per bad setting, named the way the operator sets it."""
    lines = ["invalid configuration:"]
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"])
        lines.append(f"  {prefix}{field.upper()}: {err['msg']}")
    return "\n".join(lines)
