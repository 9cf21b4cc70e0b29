"""Loads a DirectoryTree (JSON) into a provisioned, stopped Samba AD database.

Run with Debian's own python3 (the samba bindings live there, not in the
project's venv):  /usr/bin/python3 samba_populate.py SMB_CONF SAM_LDB TREE_JSON

Writes through SamDB as the system session, in one transaction: about 1 ms a
user, where `samba-tool user add` costs about a second each. DNs are built
with ldb's own component setter, so names are escaped by the library.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import ldb  # type: ignore[import-not-found]
from samba.auth import system_session  # type: ignore[import-not-found]
from samba.param import LoadParm  # type: ignore[import-not-found]
from samba.samdb import SamDB  # type: ignore[import-not-found]

UF_ACCOUNTDISABLE = 0x2
UF_PASSWD_NOTREQD = 0x20
UF_NORMAL_ACCOUNT = 0x200


def child_dn(db: Any, parent: Any, attr: str, value: str) -> Any:
    dn = ldb.Dn(db, str(parent))
    dn.add_child(ldb.Dn(db, f"{attr}=placeholder"))
    dn.set_component(0, attr, value)
    return dn


def unit_dn(db: Any, path: list[str]) -> Any:
    dn = ldb.Dn(db, db.domain_dn())
    for name in path:
        dn = child_dn(db, dn, "OU", name)
    return dn


def populate(db: Any, tree: dict[str, Any]) -> None:
    domain = ldb.Dn(db, db.domain_dn())
    realm = domain.canonical_str().replace("/", "")
    users_container = ldb.Dn(db, f"CN=Users,{domain}")
    # Parents first, computed by DirectoryTree.all_units.
    for path in tree["all_units"]:
        db.add({"dn": unit_dn(db, path), "objectClass": "organizationalUnit"})

    dns: dict[str, Any] = {}
    for user in [tree["service_user"], *tree["users"]]:
        parent = unit_dn(db, user["unit"]) if user["unit"] else users_container
        dn = dns["user:" + user["name"]] = child_dn(db, parent, "CN", user["name"])
        flags = UF_NORMAL_ACCOUNT | (UF_ACCOUNTDISABLE if user["disabled"] else 0)
        message = {
            "dn": dn,
            "objectClass": "user",
            "sAMAccountName": user["name"],
            "userPrincipalName": f"{user['name']}@{realm}",
        }
        if user["password"]:
            message["unicodePwd"] = f'"{user["password"]}"'.encode("utf-16-le")
        else:
            flags |= UF_ACCOUNTDISABLE | UF_PASSWD_NOTREQD
        message["userAccountControl"] = str(flags)
        if user["display_name"]:
            message["displayName"] = user["display_name"]
        if user["email"]:
            message["mail"] = user["email"]
        db.add(message)

    for group in tree["groups"]:
        parent = unit_dn(db, group["unit"]) if group["unit"] else users_container
        dn = dns["group:" + group["name"]] = child_dn(db, parent, "CN", group["name"])
        db.add({"dn": dn, "objectClass": "group", "sAMAccountName": group["name"]})
    for group in tree["groups"]:
        members = [str(dns["user:" + n]) for n in group["users"]] + [str(dns["group:" + n]) for n in group["groups"]]
        if members:
            message = ldb.Message()
            message.dn = dns["group:" + group["name"]]
            message["member"] = ldb.MessageElement(members, ldb.FLAG_MOD_ADD, "member")
            db.modify(message)

    if any(user["locked"] for user in tree["users"]):
        # Lock-out needs a policy; the helper then locks the users by failing binds.
        message = ldb.Message()
        message.dn = domain
        message["lockoutThreshold"] = ldb.MessageElement("3", ldb.FLAG_MOD_REPLACE, "lockoutThreshold")
        db.modify(message)


def main() -> None:
    smb_conf, sam_ldb, tree_json = sys.argv[1:4]
    lp = LoadParm()
    lp.load(smb_conf)
    db = SamDB(url=sam_ldb, session_info=system_session(), lp=lp)
    with open(tree_json) as handle:
        tree = json.load(handle)
    db.transaction_start()
    try:
        populate(db, tree)
    except BaseException:
        db.transaction_cancel()
        raise
    db.transaction_commit()


if __name__ == "__main__":
    main()
