"""Where each desktop of a pool stands, kept current as desktops change.

A claim, a count or a lookup by request costs the same at 10 desktops as at 5,000: the pool's
workflow task must stay short however large the pool (docs/reliability.md, finding 8: at
1,000 desktops, claims that each walked every desktop made tasks of seconds, the server
failed them for the events buffered meanwhile, and every failure cost a full replay).

Every change to a desktop's slot, power, start or holder goes through `PoolBook.update`,
which files the desktop again here. The index remembers under which keys it filed each
desktop, so filing again is right whatever changed. `check` recomputes everything from the
desktops themselves: the tests compare the two after every step of random runs.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workflows.messages import PoolCounts
from workflows.planning import IDLE_SLOTS, Slot, claim_order

if TYPE_CHECKING:
    from workflows.pool_model import PoolDesktop

STARTING = "starting"  # a standby desktop being started: counted apart from the slots
BUILDING_RUNNING = "building_running"  # a desktop being built that will come up powered on


@dataclass(frozen=True)
class _Filed:
    """The keys a desktop is filed under (what to take back when it changes)."""

    tally: str
    building_running: bool
    holder: tuple[str, str] | None  # (user, request_id) while assigned
    idle: bool


class DesktopIndex:
    def __init__(self, desktops: list[PoolDesktop], current_version: int) -> None:
        self.by_id: dict[str, PoolDesktop] = {}
        self.tally: Counter[str] = Counter()
        # Assigned desktops by request id and by user (a request id names one desktop but for a client
        # reusing ids long after: the pool then answers with the first, as a walk would).
        self.by_request: dict[str, dict[str, PoolDesktop]] = {}
        self.held: dict[str, dict[str, PoolDesktop]] = {}
        self.idle: dict[str, PoolDesktop] = {}
        self._filed: dict[str, _Filed] = {}
        # Idle desktops in claim order; entries go stale as desktops change and are
        # dropped when met (lazy deletion), the heap rebuilt when the template version moves.
        self._heap: list[tuple[tuple[bool, bool, int], str]] = []
        self._heap_version = current_version
        for desktop in desktops:
            self.file(desktop)

    # --- filing ------------------------------------------------------------------

    def file(self, desktop: PoolDesktop) -> None:
        """File a new desktop, or one that changed (under its old keys first taken out)."""
        self.unfile(desktop.desktop_id)
        filed = _Filed(
            tally=STARTING if desktop.slot is Slot.STANDBY and desktop.starting else desktop.slot.value,
            building_running=desktop.slot is Slot.PROVISIONING and desktop.powered_on,
            holder=(desktop.user or "", desktop.request_id or "") if desktop.slot is Slot.ASSIGNED else None,
            idle=desktop.slot in IDLE_SLOTS,
        )
        self.by_id[desktop.desktop_id] = desktop
        self._filed[desktop.desktop_id] = filed
        self.tally[filed.tally] += 1
        self.tally[BUILDING_RUNNING] += filed.building_running
        if filed.holder is not None:
            user, request_id = filed.holder
            self.held.setdefault(user, {})[desktop.desktop_id] = desktop
            if request_id:
                self.by_request.setdefault(request_id, {})[desktop.desktop_id] = desktop
        if filed.idle:
            self.idle[desktop.desktop_id] = desktop
            key = claim_order(desktop.slot, desktop.template_version, desktop.number, self._heap_version)
            heapq.heappush(self._heap, (key, desktop.desktop_id))

    def unfile(self, desktop_id: str) -> None:
        filed = self._filed.pop(desktop_id, None)
        if filed is None:
            return
        del self.by_id[desktop_id]
        self.tally[filed.tally] -= 1
        self.tally[BUILDING_RUNNING] -= filed.building_running
        if filed.holder is not None:
            user, request_id = filed.holder
            mine = self.held[user]
            del mine[desktop_id]
            if not mine:
                del self.held[user]
            if request_id:
                holders = self.by_request[request_id]
                del holders[desktop_id]
                if not holders:
                    del self.by_request[request_id]
        if filed.idle:
            del self.idle[desktop_id]

    # --- questions -------------------------------------------------------------------

    def counts(self, waiting: int) -> PoolCounts:
        t = self.tally
        return PoolCounts(
            provisioning=t[Slot.PROVISIONING.value], ready=t[Slot.READY.value], standby=t[Slot.STANDBY.value],
            assigned=t[Slot.ASSIGNED.value], releasing=t[Slot.RELEASING.value],
            awaiting_return=t[Slot.AWAITING_RETURN.value], removing=t[Slot.REMOVING.value], waiting=waiting,
        )  # fmt: skip

    def starting(self) -> int:
        return self.tally[STARTING]

    def building_running(self) -> int:
        return self.tally[BUILDING_RUNNING]

    def first_for_claim(self, current_version: int) -> PoolDesktop | None:
        """The idle desktop a claim gets (planning.pick_for_claim's choice), in O(log n)."""
        if current_version != self._heap_version or len(self._heap) > 2 * len(self.idle) + 64:
            self._heap_version = current_version
            self._heap = [
                (claim_order(d.slot, d.template_version, d.number, current_version), d.desktop_id)
                for d in self.idle.values()
            ]
            heapq.heapify(self._heap)
        while self._heap:
            key, desktop_id = self._heap[0]
            desktop = self.idle.get(desktop_id)
            if desktop is not None and key == claim_order(desktop.slot, desktop.template_version, desktop.number,
                                                          current_version):  # fmt: skip
                return desktop
            heapq.heappop(self._heap)
        return None

    def check(self, desktops: list[PoolDesktop]) -> None:
        """Raise AssertionError unless the index says what the desktops themselves say (for tests)."""
        fresh = DesktopIndex(desktops, self._heap_version)
        assert self.by_id == fresh.by_id, "desktops by id"
        assert +self.tally == +fresh.tally, f"tally {+self.tally} != {+fresh.tally}"
        assert self.by_request == fresh.by_request, "assigned desktops by request"
        assert self.held == fresh.held, "assigned desktops by user"
        assert self.idle == fresh.idle, "idle desktops"
