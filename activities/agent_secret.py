"""Per-desktop agent secrets: HMAC of the desktop id under the deployment's secret key.

Derived where needed (the create activity puts it in the server's metadata,
the API checks it) so it never travels through a workflow history.
"""

from __future__ import annotations

import hashlib
import hmac


def agent_secret(key: bytes, desktop_id: str) -> str:
    return hmac.new(key, f"deskpool-agent:{desktop_id}".encode(), hashlib.sha256).hexdigest()


def agent_secret_matches(key: bytes, desktop_id: str, presented: str) -> bool:
    return hmac.compare_digest(agent_secret(key, desktop_id), presented)
