"""Temporal and store failures mapped once into clear HTTP answers (never a 500)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.directory import AccountDisabled, DirectoryUnavailable, InvalidCredentials
from api.claim_gateway import ClaimRejected, Overloaded, PoolNotFound

log = logging.getLogger("deskpool.api")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse(
            {"detail": f"too many claims in line: {exc}"}, status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(PoolNotFound)
    async def _no_pool(_: Request, exc: PoolNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"pool {exc} not found"}, status_code=404)

    @app.exception_handler(ClaimRejected)
    async def _rejected(_: Request, exc: ClaimRejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(WorkflowUpdateFailedError)
    async def _update_refused(_: Request, exc: WorkflowUpdateFailedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc.cause or exc)}, status_code=409)

    @app.exception_handler(WorkflowQueryFailedError)
    async def _query_failed(_: Request, exc: WorkflowQueryFailedError) -> JSONResponse:
        # The worker could not answer (e.g. it failed to replay the workflow): the workflow is
        # unavailable for now, not the caller's fault and not a crash of the API.
        log.warning("workflow query failed: %s", exc)
        return JSONResponse(
            {"detail": "workflow unavailable: its worker could not answer"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(DirectoryUnavailable)
    async def _directory_down(_: Request, exc: DirectoryUnavailable) -> JSONResponse:
        log.warning("directory unavailable: %s", exc)
        return JSONResponse({"detail": "directory unavailable"}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(InvalidCredentials)
    async def _bad_credentials(_: Request, exc: InvalidCredentials) -> JSONResponse:
        return JSONResponse({"detail": "invalid username or password"}, status_code=401)

    @app.exception_handler(AccountDisabled)
    async def _disabled(_: Request, exc: AccountDisabled) -> JSONResponse:
        return JSONResponse({"detail": f"account cannot sign in: {exc.state.value}"}, status_code=403)

    @app.exception_handler(RPCError)
    async def _temporal(_: Request, exc: RPCError) -> JSONResponse:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return JSONResponse({"detail": "not found"}, status_code=404)
        log.warning("Temporal call failed: %s %s", exc.status.name, exc.message)
        return JSONResponse(
            {"detail": f"workflow service unavailable ({exc.status.name})"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(RuntimeError)
    async def _temporal_unreachable(request: Request, exc: RuntimeError) -> JSONResponse:
        # The lazily connected Temporal client raises a bare RuntimeError while the server is
        # unreachable; that is a dependency down (503), any other RuntimeError is a bug.
        if not str(exc).startswith("Failed client connect"):
            raise exc
        log.warning("Temporal unreachable: %s", exc)
        return JSONResponse(
            {"detail": "workflow service unavailable (unreachable)"}, status_code=503, headers={"Retry-After": "2"}
        )

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return JSONResponse({"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "2"})
