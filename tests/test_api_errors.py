"""Failures of the services behind the API are answered with a clear status, never a 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from temporalio.client import WorkflowQueryFailedError

from api.errors import install_error_handlers


async def test_a_query_the_worker_cannot_answer_is_503_not_500() -> None:
    """Found by chaos C1/C2: a pool workflow that failed to replay made its claim-status query fail."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/claim")
    async def claim() -> None:
        raise WorkflowQueryFailedError("[TMPRL1100] Nondeterminism error: No command scheduled for event")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.get("/claim")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json() == {"detail": "workflow unavailable: its worker could not answer"}
