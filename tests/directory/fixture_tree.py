"""The directory both real servers are loaded with, and what it should resolve to."""

from __future__ import annotations

from tools.directory_servers.tree import DirectoryTree, TreeGroup, TreeUser

SERVICE_PASSWORD = "Svc-Pass-2024"
BULK_COUNT = 1100  # past the servers' 1,000-entry limit
BULK_USERS = tuple(f"bulk{i:04d}" for i in range(BULK_COUNT))


def password_of(username: str) -> str:
    # Meets AD's complexity rule: upper, lower, digit, symbol.
    return f"{username.capitalize()}-Pass-1"


def _user(name: str, *unit: str, display_name: str = "", **flags: bool) -> TreeUser:
    email = f"{name}@deskpool.test"
    return TreeUser(name, password_of(name), tuple(unit), display_name or name.capitalize(), email, **flags)


TREE = DirectoryTree(
    service_user=TreeUser("deskpool-svc", SERVICE_PASSWORD),
    users=(
        _user("alice", display_name="Alice Archer"),
        _user("bob"),
        _user("carol"),
        _user("dave"),
        _user("erin"),
        _user("frank"),
        _user("admin"),
        # Filter syntax in a real name: must be matched literally.
        _user("o(brien)", display_name="Orla O'Brien"),
        _user("sam", "sales"),
        _user("emma", "sales", "emea"),
        _user("paul", "sales", "emea", "paris"),
        _user("disabled-user", disabled=True),
        _user("locked-user", locked=True),
        *(TreeUser(name, unit=("bulk",)) for name in BULK_USERS),
    ),
    groups=(
        TreeGroup("callcentre", users=("alice", "bob", "carol")),
        TreeGroup("teachers", users=("dave",)),
        # Nested: two groups and one user of its own.
        TreeGroup("staff", users=("erin",), groups=("callcentre", "teachers")),
        # Nested three deep.
        TreeGroup("everyone", users=("admin",), groups=("staff",)),
        # A cycle: each contains the other.
        TreeGroup("cycle-a", users=("frank",), groups=("cycle-b",)),
        TreeGroup("cycle-b", users=("alice",), groups=("cycle-a",)),
        TreeGroup("bulk-group", users=BULK_USERS),
        TreeGroup("admins", users=("admin",)),
    ),
)

CALLCENTRE = {"alice", "bob", "carol"}
STAFF = CALLCENTRE | {"dave", "erin"}
EVERYONE = STAFF | {"admin"}
CYCLE = {"frank", "alice"}
SALES = {"sam", "emma", "paul"}
EMEA = {"emma", "paul"}
ALICE_GROUPS = {"callcentre", "staff", "everyone", "cycle-a", "cycle-b"}
