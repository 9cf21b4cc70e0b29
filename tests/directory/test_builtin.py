"""The built-in directory behind the same protocol: the demo file and files of one's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from argon2 import PasswordHasher

from activities.directory import (
    AccountDisabled,
    AccountState,
    BuiltinDirectory,
    CachedDirectory,
    DirectorySettings,
    InvalidCredentials,
    make_directory,
)
from activities.directory.settings import DEMO_DIRECTORY_FILE
from workflows.pool_spec import Entitlement

# Cheap parameters: these hashes only need to verify quickly in tests.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="module")
def demo() -> BuiltinDirectory:
    return BuiltinDirectory.from_file(DEMO_DIRECTORY_FILE)


def _write(tmp_path: Path, data: dict[str, object], suffix: str = ".yaml") -> Path:
    path = tmp_path / f"directory{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    return path


async def test_demo_users_log_in_with_their_groups(demo: BuiltinDirectory) -> None:
    alice = await demo.authenticate("alice", "demo-alice")
    assert (alice.username, alice.display_name, alice.email) == ("alice", "Alice Archer", "alice@example.test")
    assert alice.groups == ("callcentre", "staff")
    assert (await demo.authenticate("DAVE", "demo-dave")).groups == ("staff", "teachers")
    assert (await demo.authenticate("admin", "demo-admin")).groups == ("deskpool-admins",)


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "demo-bob"), ("alice", ""), ("nobody", "demo-alice"), ("*", "demo-alice"), ("alice\x00", "demo-alice")],
)
async def test_wrong_credentials(demo: BuiltinDirectory, username: str, password: str) -> None:
    with pytest.raises(InvalidCredentials):
        await demo.authenticate(username, password)


async def test_demo_nested_groups_units_and_dedup(demo: BuiltinDirectory) -> None:
    staff = await demo.resolve_entitlement(Entitlement(groups=["staff"]))
    assert staff.usernames == ("alice", "bob", "carol", "dave")
    hq = await demo.resolve_entitlement(Entitlement(org_units=["headquarters"]))
    assert hq.usernames == ("admin", "alice", "bob", "carol")  # with the customer-service sub-unit
    mixed = await demo.resolve_entitlement(
        Entitlement(users=["alice", "Dave"], groups=["callcentre"], org_units=["schools"], user_group="teachers")
    )
    assert mixed.usernames == ("alice", "bob", "carol", "dave")
    assert [(s.kind.value, s.name, s.user_count) for s in mixed.sources] == [
        ("user", "alice", 1),
        ("user", "Dave", 1),
        ("group", "callcentre", 3),
        ("group", "teachers", 1),
        ("org_unit", "schools", 1),
    ]


async def test_exists_and_find(demo: BuiltinDirectory) -> None:
    assert await demo.user_exists("Carol") and not await demo.user_exists("*")
    assert await demo.group_exists("staff") and not await demo.group_exists("alice")
    assert [u.username for u in await demo.find_users("b")] == ["bob"]
    assert [u.username for u in await demo.find_users("", limit=2)] == ["admin", "alice"]
    assert await demo.find_users("*") == []
    alice = await demo.lookup_user("ALICE")
    assert alice is not None and alice.username == "alice" and "callcentre" in alice.groups
    assert await demo.lookup_user("nobody") is None


async def test_cycles_disabled_accounts_and_passwordless_users(tmp_path: Path) -> None:
    data = {
        "users": {
            "ann": {"password_hash": FAST_HASHER.hash("ann-pw")},
            "ben": {"password_hash": FAST_HASHER.hash("ben-pw"), "disabled": True},
            "kiosk": {},
        },
        "groups": {"a": {"users": ["ann"], "groups": ["b"]}, "b": {"users": ["kiosk"], "groups": ["a"]}},
        "org_units": {"top": {"units": {"middle": {"units": {"bottom": {"users": ["ben"]}}}}}},
    }
    directory = BuiltinDirectory.from_file(_write(tmp_path, data, ".json"))
    assert (await directory.resolve_entitlement(Entitlement(groups=["a"]))).usernames == ("ann", "kiosk")
    assert (await directory.resolve_entitlement(Entitlement(org_units=["top"]))).usernames == ("ben",)
    assert set((await directory.authenticate("ann", "ann-pw")).groups) == {"a", "b"}
    with pytest.raises(AccountDisabled) as refused:
        await directory.authenticate("ben", "ben-pw")
    assert refused.value.state is AccountState.DISABLED
    assert await directory.lookup_user("ben") is None, "a disabled account's API tokens stop working"
    with pytest.raises(InvalidCredentials):
        await directory.authenticate("ben", "wrong")  # a wrong password never tells the account state
    with pytest.raises(InvalidCredentials):
        await directory.authenticate("kiosk", "anything")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"users": {"ann": {}}, "groups": {"g": {"users": ["bob"]}}}, "unknown users"),
        ({"users": {"ann": {}}, "groups": {"g": {"groups": ["h"]}}}, "unknown groups"),
        ({"users": {"ann": {}, "ANN": {}}}, "duplicate user names"),
        ({"users": {"ann": {}}, "org_units": {"a": {"units": {"a": {}}}}}, "unique across the whole tree"),
        ({"users": {"ann": {}}, "org_units": {"a": {"users": ["ann"]}, "b": {"users": ["ann"]}}}, "two org units"),
        ({"users": {"ann": {"pasword_hash": "x"}}}, "Extra inputs"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BuiltinDirectory.from_file(_write(tmp_path, data))


def test_hash_password_cli_makes_a_verifiable_hash() -> None:
    cli = [sys.executable, "-m", "activities.directory.hash_password"]
    made = subprocess.run(cli, input="s3cret!\n", capture_output=True, text=True, check=True, timeout=30)
    assert PasswordHasher().verify(made.stdout.strip(), "s3cret!")
    empty = subprocess.run(cli, input="\n", capture_output=True, text=True, check=False, timeout=30)
    assert empty.returncode == 1 and "empty password" in empty.stderr


async def test_make_directory_defaults_to_the_cached_demo_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BACKEND", "BUILTIN_FILE", "URLS"):
        monkeypatch.delenv(f"DESKPOOL_DIRECTORY_{name}", raising=False)
    directory = make_directory(DirectorySettings())
    assert isinstance(directory, CachedDirectory) and isinstance(directory.inner, BuiltinDirectory)
    assert (await directory.authenticate("bob", "demo-bob")).username == "bob"
    assert (await directory.resolve_entitlement(Entitlement(user_group="callcentre"))).total == 3
    await directory.close()
