"""The minicloud's processes: started in sessions of their own, found and stopped by id.

Every service is the leader of its own session and process group, so its
group id is its pid. Stopping sends SIGTERM to each recorded group, waits a
short grace and then SIGKILLs whatever is left of those groups (nova-compute
ignores SIGTERM for ~25 s). A recorded pid is only signalled while its command
line still names the state dir, so a pid reused by another program is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str]:
    text = _read(Path("/proc") / str(pid) / "stat")
    if not text:
        return []
    # The command name is in parentheses and may contain spaces: split after it.
    return text[text.rfind(")") + 2 :].split()


def pgid_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if len(fields) > 2 else None


def is_alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def environ(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def names_marker(pid: int, markers: tuple[str, ...]) -> bool:
    """Its command line or its environment names our state dir or our venv: one of ours."""
    text = cmdline(pid) + " " + environ(pid)
    return any(m in text for m in markers)


def descendants(pids: Iterable[int]) -> list[int]:
    """Every live descendant, even those that made sessions of their own (RabbitMQ's port programs)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return [pid for pid in found if is_alive(pid)]


def group_members(pgids: Iterable[int]) -> list[int]:
    wanted = set(pgids)
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if pgid_of(pid) in wanted and is_alive(pid):
                members.append(pid)
    return members


def _members(pid: int) -> list[int]:
    """The process and, when it leads a group, the rest of that group."""
    members = set(group_members([pid]))
    if is_alive(pid):
        members.add(pid)
    return sorted(members)


def is_ours_group(pid: int, markers: tuple[str, ...]) -> bool:
    """Any process of the group names a marker: the leader may be gone while its workers live on."""
    return any(names_marker(member, markers) for member in _members(pid))


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        if pgid_of(pid) in (pid, None):
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for member in group_members([pid]):  # a group whose leader is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, sig)


def alive_of(pids: Iterable[int]) -> list[int]:
    return sorted({member for pid in pids for member in _members(pid)})


def stop_groups(leaders: dict[str, int], markers: tuple[str, ...], grace_s: float = 4.0) -> list[str]:
    """Stop these processes, their groups and descendants: SIGTERM, a grace, then SIGKILL.

    Returns the names that needed SIGKILL.
    """
    ours = {name: pid for name, pid in leaders.items() if is_ours_group(pid, markers)}
    # Collected before any signal: once a parent dies its orphans are reparented and untraceable.
    trees = {name: sorted(set(_members(pid)) | set(descendants(_members(pid)))) for name, pid in ours.items()}
    for pid in ours.values():
        _signal(pid, signal.SIGTERM)
    everything = {pid for tree in trees.values() for pid in tree}
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(pid) for pid in everything):
        time.sleep(0.1)
    killed = []
    for name, pid in ours.items():
        left = [member for member in trees[name] if is_alive(member)]
        if left or _members(pid):
            killed.append(name)
            _signal(pid, signal.SIGKILL)
            for member in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(is_alive(pid) for pid in everything):
        time.sleep(0.1)
    for pid in ours.values():  # reap the ones this process started, or they linger as zombies
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return killed


def alive_tree(pids: Iterable[int]) -> list[int]:
    """The live processes of these groups and their descendants."""
    members = alive_of(pids)
    return sorted(set(members) | set(descendants(members)))


def memory_kb(pgids: Iterable[int]) -> tuple[int, int]:
    """(RSS, PSS) in KiB summed over every process of these groups."""
    rss = pss = 0
    for pid in alive_tree(pgids):
        for line in _read(Path("/proc") / str(pid) / "status").splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
        for line in _read(Path("/proc") / str(pid) / "smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss
