"""Self-contained signed tokens (in the spirit of Keystone's Fernet tokens).

Nothing is stored per token: the token carries its scope and expiry and an
HMAC over them, with the key kept in the data directory so tokens stay valid
across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TokenInfo:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]
    issued_at: float
    expires_at: float
    methods: tuple[str, ...]
    audit_id: str

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(
        self,
        *,
        user_id: str,
        user_name: str,
        project_id: str,
        project_name: str,
        roles: list[str],
        now: float,
        ttl: float,
        methods: list[str],
    ) -> tuple[str, TokenInfo]:
        info = TokenInfo(
            user_id=user_id,
            user_name=user_name,
            project_id=project_id,
            project_name=project_name,
            roles=tuple(roles),
            issued_at=now,
            expires_at=now + ttl,
            methods=tuple(methods),
            audit_id=_b64(secrets.token_bytes(16)),
        )
        payload = _b64(json.dumps(asdict(info), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", info

    def verify(self, token: str, now: float) -> TokenInfo | None:
        """The token's info, or None if forged, malformed or expired."""
        payload, _, signature = token.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            raw = json.loads(_unb64(payload))
            info = TokenInfo(
                **{
                    **raw,
                    "roles": tuple(raw["roles"]),
                    "methods": tuple(raw["methods"]),
                }
            )
        except (ValueError, TypeError, KeyError):
            return None
        return info if info.expires_at > now else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
