"""A user's desktop card as the portal shows it: plain code over the API's answers, unit-tested.

The card comes from `GET /me/desktops` (the read model, and the pool's line for waiting users).
Right after an action the read model may lag a moment behind the workflows, so the card can be
told what was just done: the claim's own answer (from the pool workflow), or a release or
disconnect in flight. Until the read model agrees, the card says what is happening and keeps
polling, instead of showing the old state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from api.routers.me import CardState, DesktopCard
from workflows.messages import ClaimOutcome, ClaimStatus

# Seconds between a card's refreshes: quick while something is under way, slow otherwise (an
# agent's connect or disconnect, a retention running out, still show up).
FAST_POLL_S = 1
# A long line polls less often: each refresh asks the pool workflow where the user stands.
LINE_POLL_S = 2
SLOW_POLL_S = 5
DASH = "\u2013"  # an en dash, as the seed's client writes it
HELD_STATES = (CardState.READY, CardState.CONNECTED, CardState.DISCONNECTED, CardState.PREPARING)


@dataclass(frozen=True)
class CardView:
    pool_id: str
    pool_name: str
    description: str
    state: str  # unassigned, waiting, preparing, ready, connected, disconnected, releasing, disconnecting
    title: str
    detail: str = ""
    # Percent done while preparing (None: no progress bar).
    progress: int | None = None
    desktop_id: str | None = None
    desktop_name: str | None = None
    request_id: str | None = None
    # What the card remembers across refreshes: "released:<desktop>" or "disconnected:<desktop>".
    pending: str | None = None
    poll_s: int = SLOW_POLL_S
    can_connect: bool = False
    can_download: bool = False
    can_disconnect: bool = False
    can_release: bool = False


def card_view(card: DesktopCard, claim: ClaimOutcome | None = None, pending: str | None = None) -> CardView:
    """What the card shows, from the read model's card, the claim's answer and an action in flight."""
    base = CardView(card.pool_id, card.pool_name, card.pool_description, state="unassigned", title="Unassigned")
    if pending:
        action, _, desktop_id = pending.partition(":")
        still = card.desktop_id == desktop_id and card.state in HELD_STATES
        if action == "released" and still:
            return replace(
                base,
                state="releasing",
                title="Releasing your desktop",
                pending=pending,
                desktop_id=desktop_id,
                desktop_name=card.desktop_name,
                poll_s=FAST_POLL_S,
            )
        if action == "disconnected" and still and card.state is not CardState.DISCONNECTED:
            return replace(
                base,
                state="disconnecting",
                title="Disconnecting",
                pending=pending,
                desktop_id=desktop_id,
                desktop_name=card.desktop_name,
                poll_s=FAST_POLL_S,
            )
    state, request_id, position = card.state, card.request_id, card.position
    if state is CardState.UNASSIGNED and claim is not None:
        if claim.status is ClaimStatus.WAITING:
            state = CardState.PREPARING if claim.preparing else CardState.WAITING
            request_id, position = claim.request_id, claim.position
        elif claim.status is ClaimStatus.ASSIGNED:
            # The pool gave a desktop; the read model has not shown it yet.
            return replace(
                base,
                state="preparing",
                title="Preparing",
                progress=90,
                detail=f"{claim.desktop_name} is yours; getting it ready",
                desktop_name=claim.desktop_name,
                request_id=claim.request_id,
                poll_s=FAST_POLL_S,
            )
        elif claim.status is ClaimStatus.REJECTED:
            return replace(base, detail=f"Refused: {claim.reason}", can_connect=card.enabled)
    held = replace(base, desktop_id=card.desktop_id, desktop_name=card.desktop_name)
    name = card.desktop_name
    if state is CardState.WAITING:
        title = (
            f"Pool full {DASH} you are number {position} in line" if position else f"Pool full {DASH} waiting in line"
        )
        return replace(
            base,
            state="waiting",
            title=title,
            request_id=request_id,
            poll_s=LINE_POLL_S,
            detail="Your desktop is prepared as soon as one is free; this card updates by itself.",
        )
    if state is CardState.PREPARING:
        detail, progress = (f"Starting {name}", 66) if card.desktop_id else ("Creating a desktop for you", 33)
        return replace(
            held,
            state="preparing",
            title="Preparing",
            detail=detail,
            progress=progress,
            request_id=request_id,
            poll_s=FAST_POLL_S,
        )
    if state is CardState.READY:
        return replace(
            held,
            state="ready",
            title="Ready",
            detail=f"{name} is waiting for you: open the connection file.",
            can_download=True,
            can_release=True,
        )
    if state is CardState.CONNECTED:
        return replace(
            held,
            state="connected",
            title="Connected",
            detail=f"You are on {name}.",
            can_download=True,
            can_disconnect=True,
            can_release=True,
        )
    if state is CardState.DISCONNECTED:
        return replace(
            held,
            state="disconnected",
            title="Disconnected",
            can_download=True,
            can_release=True,
            detail=f"{name} is kept for you for a while: connect again to go on.",
        )
    if not card.enabled:
        return replace(base, detail="The pool is disabled for now.")
    return replace(base, can_connect=True)
