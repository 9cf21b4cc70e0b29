"""Error bodies in each service's own format.

openstacksdk only needs the status code to pick the exception class, but it
copies the service's message into the exception text, which is what a driver
logs. So each service gets the wrapper its real counterpart uses.
"""

from __future__ import annotations

from typing import Literal

from fastapi.responses import JSONResponse

Service = Literal["compute", "identity", "image", "network", "admin"]

# Nova wraps every error in a key named after the fault class.
_NOVA_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    429: "overLimit",
    503: "serviceUnavailable",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


class ApiError(Exception):
    """Raised by handlers; rendered by ``error_response``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        service: Service = "compute",
        neutron_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.service = service
        self.neutron_type = neutron_type
        self.headers = headers or {}


_SERVICE_PREFIXES: tuple[tuple[str, Service], ...] = (
    ("/compute", "compute"),
    ("/identity", "identity"),
    ("/image", "image"),
    ("/network", "network"),
)


def service_of_path(path: str) -> Service:
    for prefix, service in _SERVICE_PREFIXES:
        if path.startswith(prefix):
            return service
    return "admin"


def error_body(err: ApiError) -> dict[str, object]:
    title = _TITLES.get(err.status, "Error")
    if err.service == "compute":
        key = _NOVA_KEYS.get(err.status, "computeFault")
        body: dict[str, object] = {"code": err.status, "message": err.message}
        if err.status == 429 and "Retry-After" in err.headers:
            body["retryAfter"] = err.headers["Retry-After"]
        return {key: body}
    if err.service == "identity":
        return {"error": {"code": err.status, "title": title, "message": err.message}}
    if err.service == "network":
        return {
            "NeutronError": {
                "type": err.neutron_type or title.replace(" ", ""),
                "message": err.message,
                "detail": "",
            }
        }
    if err.service == "image":
        # Glance answers with a plain title + message; JSON keeps it parseable.
        return {"code": err.status, "title": title, "message": err.message}
    return {"detail": err.message}


def error_response(err: ApiError) -> JSONResponse:
    headers = dict(err.headers)
    if err.status == 401:
        # keystonemiddleware advertises where to authenticate.
        headers.setdefault("WWW-Authenticate", "Keystone uri='/identity'")
    return JSONResponse(error_body(err), status_code=err.status, headers=headers)
