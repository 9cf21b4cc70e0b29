"""Per-request checks run before any API handler.

Order matters and mirrors a real deployment: a load balancer outage or rate
limiter rejects before Keystone middleware looks at the token, and injected
compute faults (409/429/503) reject before the request does anything.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Request, Response
from starlette.routing import BaseRoute, Match

from tools.embedded_cloud import microversion
from tools.embedded_cloud.errors import ApiError, error_response, service_of_path
from tools.embedded_cloud.state import CloudState, cloud_of

# Version discovery documents are public (no token), and exempt from the
# rate limit and random compute faults: openstacksdk turns a failed
# discovery into NotSupported("... does not have any supported versions")
# instead of the HTTP error a driver could recognise and retry.
DISCOVERY_PATHS = frozenset(
    {
        "/identity",
        "/identity/",
        "/identity/v3",
        "/identity/v3/",
        "/compute",
        "/compute/",
        "/compute/v2.1",
        "/compute/v2.1/",
        "/image",
        "/image/",
        "/image/versions",
        "/image/v2",
        "/image/v2/",
        "/network",
        "/network/",
        "/network/v2.0",
        "/network/v2.0/",
    }
)
_UNAUTHENTICATED = "The request you have made requires authentication."
CallNext = Callable[[Request], Awaitable[Response]]


def operation_name(routes: Sequence[BaseRoute], request: Request) -> str:
    """The name of the route that will handle the request, for statistics.

    Resolved up front (not from the scope after routing) so that requests
    rejected here by faults are counted under their operation too.
    """
    partial = None
    for route in routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "name", "unnamed"))
        if match == Match.PARTIAL and partial is None:
            partial = f"{getattr(route, 'name', 'unnamed')}:method-not-allowed"
    return partial or "unmatched"


def _needs_token(request: Request) -> bool:
    path = request.url.path
    if path in DISCOVERY_PATHS:
        return False
    return not (path == "/identity/v3/auth/tokens" and request.method == "POST")


def _inject_compute_fault(cloud: CloudState, retry_after: str) -> None:
    faults = cloud.faults
    total = faults.unavailable_rate + faults.throttle_rate + faults.conflict_rate
    if total <= 0:
        return
    # One draw per request keeps the fault sequence reproducible per seed.
    roll = cloud.rng.random()
    if roll < faults.unavailable_rate:
        cloud.stats.count_fault("unavailable")
        raise ApiError(503, "Service temporarily unavailable (injected fault).")
    if roll < faults.unavailable_rate + faults.throttle_rate:
        cloud.stats.count_fault("throttle")
        raise ApiError(
            429,
            "This request was rate-limited (injected fault).",
            headers={"Retry-After": retry_after},
        )
    if roll < total:
        cloud.stats.count_fault("conflict")
        raise ApiError(409, "Conflict with the current state (injected fault).")


def _admit(request: Request, cloud: CloudState, now: float) -> None:
    """Raise ApiError if the request must be rejected before its handler."""
    path = request.url.path
    service = service_of_path(path)
    faults = cloud.faults
    if faults.outage:
        cloud.stats.count_fault("outage")
        raise ApiError(503, "Service unavailable (injected outage).", service=service)
    if faults.max_requests_per_second is not None and path not in DISCOVERY_PATHS:
        wait = cloud.limiter.try_acquire(faults.max_requests_per_second, now)
        if wait is not None:
            cloud.stats.count_fault("rate_limited")
            raise ApiError(
                429,
                "Rate limit exceeded, retry later.",
                service=service,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    if service == "compute" and path not in DISCOVERY_PATHS:
        _inject_compute_fault(cloud, str(faults.retry_after_seconds))
    if _needs_token(request):
        info = cloud.signer.verify(request.headers.get("x-auth-token", ""), now)
        # Unscoped tokens carry no catalog and may only talk to Keystone.
        if info is None or (not info.project_id and service != "identity"):
            raise ApiError(401, _UNAUTHENTICATED, service=service)
        request.state.auth = info


def client_of(request: Request) -> str:
    """The client's name: its User-Agent's first product ("deskpool-worker/..." says "deskpool-worker")."""
    agent = request.headers.get("user-agent", "")
    return agent.split("/", 1)[0].split(" ", 1)[0]


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Add the gatekeeper; ``routes`` are the API routes, for operation names."""

    @app.middleware("http")
    async def gatekeeper(request: Request, call_next: CallNext) -> Response:
        path = request.url.path
        if path.startswith("/_admin") or path.startswith("/_console"):
            return await call_next(request)
        cloud = cloud_of(request)
        now = cloud.now()
        cloud.stats.count_request(operation_name(routes, request), now, client_of(request))
        version_headers: dict[str, str] = {}
        try:
            _admit(request, cloud, now)
            if service_of_path(path) == "compute" and path not in DISCOVERY_PATHS:
                version = microversion.requested(request.headers, cloud.max_microversion)
                request.state.microversion = version
                version_headers = microversion.response_headers(version)
            response = await call_next(request)
        except ApiError as err:
            response = error_response(err)
        response.headers.update(version_headers)
        cloud.stats.count_response(response.status_code)
        return response
