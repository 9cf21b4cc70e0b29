"""The entitlement cache: single flight, TTL, background refresh, stale answers while down."""

from __future__ import annotations

import asyncio

import pytest

from activities.directory import (
    CachedDirectory,
    DirectoryUnavailable,
    DirectoryUser,
    EntitlementResult,
    LdapDirectory,
)
from activities.directory.model import combine, entitlement_sources
from tests.directory.conftest import RunningServer
from workflows.pool_spec import Entitlement

ALICE_AND_BOB = Entitlement(users=["alice", "bob"])
STORM = 200


class FakeDirectory:
    """Counts resolutions; each answer names the resolution that made it."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.release = asyncio.Event()
        self.release.set()

    async def resolve_entitlement(self, entitlement: Entitlement) -> EntitlementResult:
        self.calls += 1
        version = self.calls
        await self.release.wait()
        if self.fail:
            raise DirectoryUnavailable("down")
        return combine((source, [f"user-v{version}"], "") for source in entitlement_sources(entitlement))

    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        return DirectoryUser(username, "")

    async def user_exists(self, username: str) -> bool:
        return True

    async def group_exists(self, name: str) -> bool:
        return True

    async def find_users(self, prefix: str, limit: int = 20) -> list[DirectoryUser]:
        return []

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(inner: FakeDirectory, clock: Clock, stale_if_error_s: float = 0) -> CachedDirectory:
    return CachedDirectory(inner, ttl_s=300, refresh_ahead_s=60, stale_if_error_s=stale_if_error_s, clock=clock)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_login_storm_makes_one_ldap_query(openldap: RunningServer) -> None:
    ldap = LdapDirectory(openldap.settings())
    cached = CachedDirectory(ldap, ttl_s=300, refresh_ahead_s=60)
    try:
        await ldap.detect()  # reads the root DSE once, before counting
        before = ldap.queries.value
        answers = await asyncio.gather(*(cached.resolve_entitlement(ALICE_AND_BOB) for _ in range(STORM)))
        assert ldap.queries.value - before == 1
        assert {a.usernames for a in answers} == {("alice", "bob")}
        await cached.resolve_entitlement(Entitlement(users=["BOB", "alice"]))  # same sources, other spelling
        assert ldap.queries.value - before == 1
    finally:
        await cached.close()


async def test_a_storm_on_a_nested_group_costs_one_resolution(openldap: RunningServer) -> None:
    ldap = LdapDirectory(openldap.settings())
    cached = CachedDirectory(ldap, ttl_s=300, refresh_ahead_s=60)
    staff = Entitlement(groups=["staff"], org_units=["sales"])
    try:
        await ldap.detect()
        before = ldap.queries.value
        await ldap.resolve_entitlement(staff)
        one_resolution = ldap.queries.value - before
        before = ldap.queries.value
        await asyncio.gather(*(cached.resolve_entitlement(staff) for _ in range(STORM)))
        assert ldap.queries.value - before == one_resolution
    finally:
        await cached.close()


async def test_fresh_answers_come_from_memory() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    first = await cache.resolve_entitlement(ALICE_AND_BOB)
    clock.now += 200
    assert await cache.resolve_entitlement(ALICE_AND_BOB) is first
    await _settle()
    assert inner.calls == 1


async def test_an_answer_near_its_ttl_is_refreshed_in_the_background() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    first = await cache.resolve_entitlement(ALICE_AND_BOB)
    clock.now += 250  # inside the last 60 s of the 300 s TTL
    inner.release.clear()
    # Served at once from memory, many times, while one refresh runs behind.
    answers = await asyncio.gather(*(cache.resolve_entitlement(ALICE_AND_BOB) for _ in range(50)))
    assert all(answer is first for answer in answers)
    inner.release.set()
    await _settle()
    assert inner.calls == 2
    refreshed = await cache.resolve_entitlement(ALICE_AND_BOB)
    assert refreshed.usernames == ("user-v2",)
    await cache.close()


async def test_after_the_ttl_the_next_asker_waits_for_a_new_answer() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    await cache.resolve_entitlement(ALICE_AND_BOB)
    clock.now += 301
    assert (await cache.resolve_entitlement(ALICE_AND_BOB)).usernames == ("user-v2",)
    assert inner.calls == 2


async def test_a_failed_background_refresh_keeps_the_old_answer(caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    first = await cache.resolve_entitlement(ALICE_AND_BOB)
    clock.now += 250
    inner.fail = True
    assert await cache.resolve_entitlement(ALICE_AND_BOB) is first
    await _settle()
    assert "background entitlement refresh failed" in caplog.text
    assert await cache.resolve_entitlement(ALICE_AND_BOB) is first


async def test_without_any_answer_every_asker_gets_the_error_from_one_attempt() -> None:
    inner, clock = FakeDirectory(), Clock()
    inner.fail = True
    cache = _cache(inner, clock, stale_if_error_s=3600)
    outcomes = await asyncio.gather(
        *(cache.resolve_entitlement(ALICE_AND_BOB) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, DirectoryUnavailable) for o in outcomes)
    assert inner.calls == 1


async def test_expired_answers_are_served_while_the_directory_is_down_then_not() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock, stale_if_error_s=3600)
    first = await cache.resolve_entitlement(ALICE_AND_BOB)
    inner.fail = True
    clock.now += 301
    assert await cache.resolve_entitlement(ALICE_AND_BOB) is first
    clock.now += 3600
    with pytest.raises(DirectoryUnavailable):
        await cache.resolve_entitlement(ALICE_AND_BOB)


async def test_a_cancelled_asker_does_not_cancel_the_shared_query() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    inner.release.clear()
    impatient = asyncio.create_task(cache.resolve_entitlement(ALICE_AND_BOB))
    patient = asyncio.create_task(cache.resolve_entitlement(ALICE_AND_BOB))
    await _settle()
    impatient.cancel()
    inner.release.set()
    assert (await patient).usernames == ("user-v1",)
    assert inner.calls == 1


async def test_different_entitlements_are_cached_apart() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    await cache.resolve_entitlement(Entitlement(groups=["a"]))
    await cache.resolve_entitlement(Entitlement(org_units=["a"]))
    await cache.resolve_entitlement(Entitlement(groups=["A"]))
    assert inner.calls == 2
    cache.invalidate()
    await cache.resolve_entitlement(Entitlement(groups=["a"]))
    assert inner.calls == 3


def test_refresh_ahead_must_be_inside_the_ttl() -> None:
    with pytest.raises(ValueError, match="refresh_ahead_s"):
        CachedDirectory(FakeDirectory(), ttl_s=60, refresh_ahead_s=60)


async def test_the_refresher_renews_answers_in_use_and_lets_idle_ones_expire() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    busy, idle = Entitlement(groups=["busy"]), Entitlement(groups=["idle"])
    await cache.resolve_entitlement(busy)
    await cache.resolve_entitlement(idle)
    clock.now += 100
    await cache.resolve_entitlement(busy)  # read again after its fetch
    assert cache.refresh_due() == 0  # not yet in the refresh window
    clock.now += 150
    assert cache.refresh_due() == 1
    await _settle()
    assert inner.calls == 3
    clock.now += 200  # past the TTL of the idle answer, not of the renewed one
    assert (await cache.resolve_entitlement(busy)).usernames == ("user-v3",)
    assert inner.calls == 3
    await cache.close()


async def test_the_refresher_runs_on_its_own() -> None:
    inner, clock = FakeDirectory(), Clock()
    cache = _cache(inner, clock)
    await cache.resolve_entitlement(ALICE_AND_BOB)
    await cache.resolve_entitlement(ALICE_AND_BOB)
    clock.now += 250
    cache.start_refresher(0.01)
    for _ in range(100):
        if inner.calls == 2:
            break
        await asyncio.sleep(0.01)
    assert inner.calls == 2
    await cache.close()
