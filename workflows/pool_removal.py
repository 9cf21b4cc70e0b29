"""A pool's removal as bookkeeping: taking the request, telling each desktop to leave.

Plain code over the pool's book, no awaits, like pool_state: the pool workflow's
update handler and loop call it; tests drive it directly. What each desktop is
told is planning.plan_removal's decision; the workflow sends the signals and
ends once no desktop is left.
"""

from __future__ import annotations

from datetime import datetime

from workflows.messages import RemovalMode, RemovePoolInput, RemovePoolResult
from workflows.planning import LeavingCandidate, PoolRemoval, plan_removal
from workflows.pool_model import Outgoing
from workflows.pool_state import PoolBook

LINE_ENDED = "pool is being removed: the claim left the line"


def begin_removal(book: PoolBook, request: RemovePoolInput, now: datetime) -> RemovePoolResult:
    """Take a (validated) removal. A repeat finds it taken and changes nothing."""
    state = book.state
    if state.removal is None:
        state.removal = PoolRemoval(RemovalMode(request.desktops), request.reason, now)
        book.end_line(LINE_ENDED)
    return RemovePoolResult(accepted=True, live_desktops=len(state.desktops))


def advance_removal(book: PoolBook) -> int:
    """Each pass of the loop while removing: the line ended again (a desktop that could not
    take its user puts them back in it), and a forced remove (destroy or detach) queued for
    every desktop not yet told. How many were told now."""
    removal = book.state.removal
    if removal is None:
        return 0
    book.end_line(LINE_ENDED)
    candidates = [LeavingCandidate(d.desktop_id, d.slot, d.leaving) for d in book.state.desktops]
    orders = plan_removal(candidates, removal.mode)
    reason = f"pool removed: {removal.reason}" if removal.reason else "pool removed"
    for order in orders:
        desktop = book.by_id[order.desktop_id]
        # A standby being started leaves instead: it no longer counts as on its way up.
        book.update(desktop, leaving=True, slot=order.slot, starting=False)
        book.send(Outgoing(order.desktop_id, "remove", reason=reason, force=True, detach=order.detach))
    return len(orders)


def removal_summary(book: PoolBook) -> str:
    """One line for the workflow's result and the operator's view of it."""
    removal = book.state.removal
    if removal is None:
        return ""
    tail = f": {removal.reason}" if removal.reason else ""
    left = len(book.state.desktops)
    if left:
        return f"being removed ({removal.mode.value} desktops, {left} still in the pool){tail}"
    done = {
        RemovalMode.DESTROY: "its desktops destroyed",
        RemovalMode.DETACH: "its desktops detached",
        RemovalMode.NONE: "it had no desktops",
    }
    return f"removed, {done[removal.mode]}{tail}"
