"""What every portal page shares: the templates, the route class that turns errors into pages or
flash messages (and a missing sign-in into the login page), and small helpers.

The portal's handlers are thin: they call the JSON API's own route functions (same roles, same
checks, same errors) and render the answer. An error those functions raise is answered the way the
API answers it (the app's own exception handlers give status and detail), as HTML: a full error page
for a page, a flash message for an htmx request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
LOGIN_URL = "/portal/login"


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    response: HTMLResponse = templates.TemplateResponse(request, name, context, status_code=status_code)
    return response


def redirect(request: Request, url: str) -> Response:
    """A redirect the browser follows: htmx needs HX-Redirect, a plain request a 303."""
    if is_htmx(request):
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


async def problem_of(request: Request, exc: Exception) -> tuple[int, str] | None:
    """The status and detail the JSON API answers for `exc` (its own exception handlers), or None
    when no handler knows it (a bug: it stays a 500)."""
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return status.HTTP_422_UNPROCESSABLE_CONTENT, f"{where}: {first.get('msg', 'invalid')}"
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, ValidationError):  # a form the portal turned into one of the API's bodies
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        return status.HTTP_422_UNPROCESSABLE_CONTENT, f"{where}: {first['msg']}"
    handlers: dict[Any, Callable[[Request, Exception], Coroutine[Any, Any, Response]]]
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None and kind is not Exception:
            try:
                answer = await handler(request, exc)
            except Exception:  # noqa: BLE001 - the handler re-raised: not one it answers
                return None
            body = bytes(answer.body) if isinstance(answer.body, bytes | memoryview) else b"{}"
            detail = json.loads(body or b"{}").get("detail", "")
            return answer.status_code, str(detail)
    return None


class PortalRoute(APIRoute):
    """Every portal route: no sign-in -> the login page; a refusal -> an error page or flash."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Exception as exc:
                problem = await problem_of(request, exc)
                if problem is None:
                    raise
                return problem_response(request, *problem)

        return handler


def problem_response(request: Request, code: int, detail: str) -> Response:
    if code == status.HTTP_401_UNAUTHORIZED:
        return redirect(request, f"{LOGIN_URL}?next={request.url.path}" if not is_htmx(request) else LOGIN_URL)
    if is_htmx(request):
        response = render(request, "_flash.html", status_code=code, kind="error", message=detail)
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "error.html", status_code=code, code=code, message=detail)


def flash(request: Request, message: str, kind: str = "ok") -> HTMLResponse:
    """A message into the page's flash area (an htmx answer with no other content)."""
    response = render(request, "_flash.html", kind=kind, message=message)
    response.headers["HX-Retarget"] = "#flash"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def age(since: datetime, now: datetime | None = None) -> str:
    """How long ago, short: "40 s", "12 min", "3 h", "2 d"."""
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - (since if since.tzinfo else since.replace(tzinfo=UTC))).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


async def form_of(request: Request) -> dict[str, list[str]]:
    """The submitted form: every field's values (checkboxes and repeated names give several)."""
    form = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    return values


def split_names(values: list[str]) -> list[str]:
    """Names typed as a list: commas or new lines between them, blanks and repeats dropped."""
    names: list[str] = []
    for value in values:
        for part in value.replace("\n", ",").split(","):
            name = part.strip()
            if name and name not in names:
                names.append(name)
    return names
