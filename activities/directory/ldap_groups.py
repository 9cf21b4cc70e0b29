"""Nested group membership, three ways.

- in_chain (Active Directory): one search with LDAP_MATCHING_RULE_IN_CHAIN.
- member_of: breadth-first over `memberOf`, which the server maintains (OpenLDAP's
  memberof overlay gives direct membership, dynlist transitive; both work).
- walk: breadth-first over the groups' own `member` values; works on any server.

Every breadth-first walk remembers the groups it has seen, so cycles end. A
strategy that finds nobody in a group that has members is checked against the
walk: if the walk finds users the server does not support the strategy, and
that is an error, never an empty answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from ldap3.utils.conv import escape_filter_chars

from activities.directory.errors import UnsupportedDirectory
from activities.directory.ldap_profile import IN_CHAIN_RULE, LdapProfile
from activities.directory.ldap_search import (
    Entry,
    LdapReader,
    all_of,
    any_of,
    chunks,
    eq,
    normalize_dn,
    rdn_of,
)
from activities.directory.settings import NestedGroups


def member_usernames(reader: LdapReader, profile: LdapProfile, group: Entry) -> set[str]:
    """Usernames of every user in `group` (found with `member` among its attributes)."""
    if profile.nested is NestedGroups.IN_CHAIN:
        found = _in_chain_members(reader, profile, group.dn)
    elif profile.nested is NestedGroups.MEMBER_OF:
        found = _member_of_members(reader, profile, group.dn)
    else:
        return _walk_members(reader, profile, group)
    if not found and group.values(profile.member_attribute) and _walk_members(reader, profile, group):
        raise UnsupportedDirectory(
            f"nested_groups={profile.nested.value} found nobody in {group.dn}, which has members: "
            "the server does not support it; use nested_groups=walk"
        )
    return found


def group_names_of_user(reader: LdapReader, profile: LdapProfile, user_dn: str) -> list[str]:
    """Names of every group the user is in, directly or through other groups."""
    name = profile.group_name_attribute
    if profile.nested is NestedGroups.IN_CHAIN:
        rule = f"({profile.member_attribute}:{IN_CHAIN_RULE}:={_escaped_dn(user_dn)})"
        groups = reader.search(profile.group_base_dn, all_of(profile.group_filter, rule), [name])
        if groups or not _parent_groups(reader, profile, [user_dn]):
            return sorted({g.first(name) for g in groups if g.first(name)}, key=str.casefold)
        raise UnsupportedDirectory("the in-chain rule found no groups for a user who is in a group")
    # Upward breadth-first walk: groups whose member is the user, then their parents.
    seen: dict[str, Entry] = {}
    frontier = [user_dn]
    while frontier:
        parents = [g for g in _parent_groups(reader, profile, frontier) if normalize_dn(g.dn) not in seen]
        seen.update({normalize_dn(g.dn): g for g in parents})
        frontier = [g.dn for g in parents]
    return sorted({g.first(name) for g in seen.values() if g.first(name)}, key=str.casefold)


def _parent_groups(reader: LdapReader, profile: LdapProfile, member_dns: list[str]) -> list[Entry]:
    found: dict[str, Entry] = {}
    for batch in chunks(member_dns):
        members = any_of(f"({profile.member_attribute}={_escaped_dn(dn)})" for dn in batch)
        for entry in reader.search(
            profile.group_base_dn, all_of(profile.group_filter, members), [profile.group_name_attribute]
        ):
            found[normalize_dn(entry.dn)] = entry
    return list(found.values())


def _in_chain_members(reader: LdapReader, profile: LdapProfile, group_dn: str) -> set[str]:
    rule = f"(memberOf:{IN_CHAIN_RULE}:={_escaped_dn(group_dn)})"
    users = reader.search(profile.user_base_dn, all_of(profile.user_filter, rule), [profile.username_attribute])
    return _usernames(users, profile)


def _member_of_members(reader: LdapReader, profile: LdapProfile, group_dn: str) -> set[str]:
    users: set[str] = set()
    seen = {normalize_dn(group_dn)}
    frontier = [group_dn]
    while frontier:
        next_frontier = []
        for batch in chunks(frontier):
            member_of = any_of(f"(memberOf={_escaped_dn(dn)})" for dn in batch)
            found = reader.search(
                profile.user_base_dn, all_of(profile.user_filter, member_of), [profile.username_attribute]
            )
            users |= _usernames(found, profile)
            for group in reader.search(profile.group_base_dn, all_of(profile.group_filter, member_of)):
                if normalize_dn(group.dn) not in seen:
                    seen.add(normalize_dn(group.dn))
                    next_frontier.append(group.dn)
        frontier = next_frontier
    return users


def _walk_members(reader: LdapReader, profile: LdapProfile, group: Entry) -> set[str]:
    """Each level: the member DNs of the groups found so far, looked up in batches by
    their RDN (an RDN value is always an attribute of its entry) and kept only
    where the DN matches; groups among them form the next level."""
    users: set[str] = set()
    seen = {normalize_dn(group.dn)}
    members = {normalize_dn(dn): dn for dn in group.values(profile.member_attribute)}
    while members:
        pending = {key: dn for key, dn in members.items() if key not in seen}
        seen |= pending.keys()
        members = {}
        for batch in chunks(pending.values()):
            by_rdn = _rdn_filter(batch)
            wanted = {normalize_dn(dn) for dn in batch}
            found_users = reader.search(
                profile.user_base_dn, all_of(profile.user_filter, by_rdn), [profile.username_attribute]
            )
            users |= _usernames([u for u in found_users if normalize_dn(u.dn) in wanted], profile)
            subgroups = reader.search(
                profile.group_base_dn, all_of(profile.group_filter, by_rdn), [profile.member_attribute]
            )
            for subgroup in subgroups:
                if normalize_dn(subgroup.dn) in wanted:
                    members.update({normalize_dn(dn): dn for dn in subgroup.values(profile.member_attribute)})
    return users


def _rdn_filter(dns: Iterable[str]) -> str:
    terms = []
    for dn in dns:
        rdn = rdn_of(dn)
        # Multi-valued or hex-encoded RDNs are not followed: rare in user and group DNs.
        if rdn is not None:
            terms.append(eq(*rdn))
    return any_of(terms) if terms else "(!(objectClass=*))"


def _usernames(entries: Iterable[Entry], profile: LdapProfile) -> set[str]:
    return {e.first(profile.username_attribute) for e in entries if e.first(profile.username_attribute)}


def _escaped_dn(dn: str) -> str:
    """A DN as an assertion value is escaped like any other value: DNs may hold `*` or `(`."""
    return str(escape_filter_chars(dn))
