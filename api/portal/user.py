"""A user's pages: sign-in, and one card per pool they may use (Connect, the line, Ready with the
.rdp / .vv files, Disconnect, Release), each card refreshing itself while something is under way."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from api.auth.deps import AccessDep
from api.auth.roles import Access
from api.deps import ClaimBoardDep, DirectoryDep, EngineDep, GatewayDep, TemporalDep
from api.portal.cards import CardView, card_view
from api.portal.common import LOGIN_URL, PortalRoute, redirect, render
from api.routers import claims, desktop_actions, me
from api.routers.me import CardState, DesktopCard
from workflows.messages import ClaimOutcome

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)
root = APIRouter(route_class=PortalRoute, include_in_schema=False)

PendingQuery = Annotated[str | None, Query(max_length=200, pattern=r"^(released|disconnected):[\w.-]+$")]
RequestQuery = Annotated[str | None, Query(max_length=128)]


@root.get("/")
def home(request: Request) -> Response:
    return redirect(request, "/portal")


@router.get("")
def portal_home(request: Request, access: AccessDep) -> Response:
    return redirect(request, "/portal/desktops")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Annotated[str, Query(max_length=300)] = "/portal") -> HTMLResponse:
    """The form posts to the API's own POST /auth/login (static/portal.js), which sets the cookie."""
    target = next if next.startswith("/portal") else "/portal"
    return render(request, "login.html", next=target, login_url=LOGIN_URL)


async def _cards(
    access: Access, engine: EngineDep, directory: DirectoryDep, temporal: TemporalDep
) -> list[DesktopCard]:
    return await me.my_desktops(access, engine, directory, temporal)


async def _card_of(
    pool_id: str, access: Access, engine: EngineDep, directory: DirectoryDep, temporal: TemporalDep
) -> DesktopCard:
    for card in await _cards(access, engine, directory, temporal):
        if card.pool_id == pool_id:
            return card
    # Not (or no longer) entitled: the pool's card is gone; the claim answers 403 with the reason.
    await claims.require_entitlement(pool_id, access, engine, directory)
    raise AssertionError("unreachable: an entitled user has a card for every pool")


def _card_response(request: Request, view: CardView) -> HTMLResponse:
    return render(request, "_card.html", card=view, connect_key=uuid.uuid4().hex)


@router.get("/desktops", response_class=HTMLResponse)
async def my_desktops_page(
    request: Request, access: AccessDep, engine: EngineDep, directory: DirectoryDep, temporal: TemporalDep
) -> HTMLResponse:
    cards = [card_view(c) for c in await _cards(access, engine, directory, temporal)]
    return render(request, "desktops.html", access=access, cards=cards, connect_key=uuid.uuid4().hex)


@router.get("/desktops/{pool_id}/card", response_class=HTMLResponse)
async def card_fragment(
    request: Request,
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    directory: DirectoryDep,
    temporal: TemporalDep,
    board: ClaimBoardDep,
    claim: RequestQuery = None,
    pending: PendingQuery = None,
) -> HTMLResponse:
    """One card, refreshed. `claim`: the user's claim request id (its answer comes from the pool
    workflow while the read model catches up); `pending`: a release or disconnect in flight."""
    card = await _card_of(pool_id, access, engine, directory, temporal)
    outcome: ClaimOutcome | None = None
    # Only while the read model has not caught up with the claim does the pool workflow need asking.
    if claim and card.state is CardState.UNASSIGNED:
        outcome = await claims.claim_status(pool_id, claim, access, engine, board)
    return _card_response(request, card_view(card, outcome, pending))


@router.post("/desktops/{pool_id}/connect", response_class=HTMLResponse)
async def connect(
    request: Request,
    pool_id: str,
    access: AccessDep,
    gateway: GatewayDep,
    engine: EngineDep,
    directory: DirectoryDep,
    temporal: TemporalDep,
    key: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> HTMLResponse:
    """Connect: the API's claim (idempotent by the card's key, so a double click takes one desktop)."""
    outcome = await claims.claim(pool_id, access, gateway, engine, directory, Response(), idempotency_key=key)
    card = await _card_of(pool_id, access, engine, directory, temporal)
    return _card_response(request, card_view(card, outcome))


@router.post("/desktops/{pool_id}/release/{desktop_id}", response_class=HTMLResponse)
async def release(
    request: Request,
    pool_id: str,
    desktop_id: str,
    access: AccessDep,
    engine: EngineDep,
    directory: DirectoryDep,
    temporal: TemporalDep,
) -> HTMLResponse:
    await desktop_actions.release_desktop(desktop_id, access, engine, temporal)
    card = await _card_of(pool_id, access, engine, directory, temporal)
    return _card_response(request, card_view(card, pending=f"released:{desktop_id}"))


@router.post("/desktops/{pool_id}/disconnect/{desktop_id}", response_class=HTMLResponse)
async def disconnect(
    request: Request,
    pool_id: str,
    desktop_id: str,
    access: AccessDep,
    engine: EngineDep,
    directory: DirectoryDep,
    temporal: TemporalDep,
) -> HTMLResponse:
    await desktop_actions.disconnect_desktop(desktop_id, access, engine, temporal)
    card = await _card_of(pool_id, access, engine, directory, temporal)
    return _card_response(request, card_view(card, pending=f"disconnected:{desktop_id}"))
