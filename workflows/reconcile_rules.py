"""Pure rules of the cloud reconciler: which tagged servers are orphans, which
desktops lost their server.

The anchors leak VMs (one deletes database rows without deleting the VM) and
warn that changes made outside break pools; deskpool heals instead. An orphan
is a server tagged for deskpool that no live desktop owns; it is deleted only
after a grace period (a create racing the sweep is not an orphan). A desktop
whose server vanished, went to ERROR or was changed outside is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workflows.activity_io import LiveDesktopInfo as LiveDesktop
from workflows.activity_io import TaggedServerInfo as TaggedServer


@dataclass
class LostDesktop:
    desktop_id: str
    reason: str


@dataclass
class SweepDecision:
    delete_orphans: list[TaggedServer] = field(default_factory=list)
    lost: list[LostDesktop] = field(default_factory=list)
    # Orphan candidates first seen now or earlier, carried to the next sweep.
    first_seen: dict[str, datetime] = field(default_factory=dict)


# While a desktop is being created its server may not be listed yet, and while it
# is being destroyed it may already be gone: neither is a loss. A detached (or
# detaching, i.e. releasing) desktop's server drops out of the list on purpose.
TRANSITIONAL = ("provisioning", "releasing", "failed", "destroyed", "detached")


def decide(
    servers: list[TaggedServer],
    live: list[LiveDesktop],
    first_seen: dict[str, datetime],
    now: datetime,
    grace: timedelta,
) -> SweepDecision:
    decision = SweepDecision()
    by_desktop = {d.desktop_id: d for d in live}
    listed = {s.server_id: s for s in servers}
    for server in servers:
        owner = by_desktop.get(server.desktop_id or "")
        owned = owner is not None and owner.server_id in (None, server.server_id)
        if owned:
            continue
        seen = first_seen.get(server.server_id, now)
        decision.first_seen[server.server_id] = seen
        if now - seen >= grace:
            decision.delete_orphans.append(server)
    for desktop in live:
        if desktop.status in TRANSITIONAL or desktop.server_id is None:
            continue
        found = listed.get(desktop.server_id)
        if found is None:
            decision.lost.append(LostDesktop(desktop.desktop_id, "its server vanished from the cloud"))
        elif found.status == "ERROR":
            decision.lost.append(LostDesktop(desktop.desktop_id, "its server went to ERROR"))
        elif desktop.expected_flavor and found.flavor_name and found.flavor_name != desktop.expected_flavor:
            decision.lost.append(
                LostDesktop(desktop.desktop_id, f"its flavor was changed outside deskpool to {found.flavor_name}")
            )
        elif desktop.expected_image_id and found.image_id and found.image_id != desktop.expected_image_id:
            decision.lost.append(LostDesktop(desktop.desktop_id, "its image was changed outside deskpool"))
    return decision
