from datetime import UTC, datetime, timedelta

from workflows.reconcile_rules import LiveDesktop, TaggedServer, decide

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)


def server(sid: str, desktop: str | None, status: str = "ACTIVE", **kw: str) -> TaggedServer:
    return TaggedServer(server_id=sid, name=sid, status=status, desktop_id=desktop, **kw)


def test_owned_servers_are_left_alone() -> None:
    d = decide([server("s1", "p.1")], [LiveDesktop("p.1", "s1", "ready")], {}, NOW, GRACE)
    assert d.delete_orphans == [] and d.lost == [] and d.first_seen == {}


def test_orphan_is_deleted_only_after_the_grace_period() -> None:
    orphan = server("s9", "p.gone")
    first = decide([orphan], [], {}, NOW, GRACE)
    assert first.delete_orphans == [] and first.first_seen == {"s9": NOW}
    early = decide([orphan], [], first.first_seen, NOW + GRACE - timedelta(seconds=1), GRACE)
    assert early.delete_orphans == []
    due = decide([orphan], [], first.first_seen, NOW + GRACE, GRACE)
    assert due.delete_orphans == [orphan]


def test_a_second_server_for_one_desktop_is_an_orphan() -> None:
    decision = decide(
        [server("s1", "p.1"), server("s2", "p.1")], [LiveDesktop("p.1", "s1", "ready")], {"s2": NOW - GRACE}, NOW, GRACE
    )
    assert [s.server_id for s in decision.delete_orphans] == ["s2"]


def test_server_without_desktop_metadata_is_an_orphan_candidate() -> None:
    decision = decide([server("s3", None)], [], {}, NOW, GRACE)
    assert decision.first_seen == {"s3": NOW}


def test_desktop_still_provisioning_owns_its_server_before_recording_it() -> None:
    decision = decide([server("s1", "p.1", "BUILD")], [LiveDesktop("p.1", None, "provisioning")], {}, NOW, GRACE)
    assert decision.first_seen == {} and decision.lost == []


def test_vanished_errored_and_changed_servers_mark_their_desktops_lost() -> None:
    live = [
        LiveDesktop("p.1", "s1", "ready"),
        LiveDesktop("p.2", "s2", "connected"),
        LiveDesktop("p.3", "s3", "ready", expected_flavor="vdi.medium"),
        LiveDesktop("p.4", "s4", "ready", expected_image_id="img-1"),
        LiveDesktop("p.5", "s5", "provisioning"),
    ]
    servers = [
        server("s2", "p.2", "ERROR"),
        server("s3", "p.3", flavor_name="vdi.large"),
        server("s4", "p.4", image_id="img-2"),
    ]
    lost = {item.desktop_id: item.reason for item in decide(servers, live, {}, NOW, GRACE).lost}
    assert set(lost) == {"p.1", "p.2", "p.3", "p.4"}
    assert (
        "vanished" in lost["p.1"] and "ERROR" in lost["p.2"] and "vdi.large" in lost["p.3"] and "image" in lost["p.4"]
    )
