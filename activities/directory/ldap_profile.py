"""Which kind of server this is, and how deskpool asks it things.

The kind comes from the root DSE (Active Directory advertises the capability
OID 1.2.840.113556.1.4.800 and `forestFunctionality`) unless the settings name
it. The profile fixes, once, the attributes, filters and the nested-group
strategy; asking OpenLDAP for AD's in-chain rule is refused here, because
OpenLDAP answers that rule with an empty set instead of an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import ldap3

from activities.directory.errors import UnsupportedDirectory
from activities.directory.ldap_search import LdapReader
from activities.directory.settings import DirectorySettings, NestedGroups, ServerKind

AD_CAPABILITY_OID = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
ROOT_DSE_ATTRIBUTES = (
    "supportedCapabilities",
    "forestFunctionality",
    "defaultNamingContext",
    "namingContexts",
    "vendorName",
)


@dataclass(frozen=True)
class LdapProfile:
    kind: ServerKind
    nested: NestedGroups  # never AUTO
    base_dn: str
    user_base_dn: str
    group_base_dn: str
    username_attribute: str
    user_filter: str
    group_filter: str
    group_name_attribute: str
    member_attribute: str
    display_name_attribute: str
    email_attribute: str
    unit_filter: str = "(objectClass=organizationalUnit)"

    @property
    def user_attributes(self) -> list[str]:
        attrs = [self.username_attribute, self.display_name_attribute, self.email_attribute, "cn"]
        if self.kind is ServerKind.ACTIVE_DIRECTORY:
            # Account state, checked after a successful bind.
            attrs += ["userAccountControl", "msDS-User-Account-Control-Computed"]
        return attrs


_DEFAULTS = {
    ServerKind.ACTIVE_DIRECTORY: {
        "username_attribute": "sAMAccountName",
        # objectClass=user alone also matches computer accounts.
        "user_filter": "(&(objectCategory=person)(objectClass=user))",
        "group_filter": "(objectClass=group)",
        "group_name_attribute": "sAMAccountName",
    },
    ServerKind.OPENLDAP: {
        "username_attribute": "uid",
        "user_filter": "(|(objectClass=person)(objectClass=posixAccount))",
        "group_filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
        "group_name_attribute": "cn",
    },
}


def read_root_dse(reader: LdapReader) -> dict[str, list[str]]:
    entries = reader.search("", "(objectClass=*)", ROOT_DSE_ATTRIBUTES, scope=ldap3.BASE)
    return entries[0].attributes if entries else {}


def detect_kind(root_dse: dict[str, list[str]]) -> ServerKind:
    capabilities = root_dse.get("supportedcapabilities", [])
    if AD_CAPABILITY_OID in capabilities or root_dse.get("forestfunctionality"):
        return ServerKind.ACTIVE_DIRECTORY
    return ServerKind.OPENLDAP


def build_profile(settings: DirectorySettings, root_dse: dict[str, list[str]]) -> LdapProfile:
    detected = detect_kind(root_dse)
    kind = detected if settings.server_kind is ServerKind.AUTO else settings.server_kind
    nested = settings.nested_groups
    if nested is NestedGroups.AUTO:
        nested = NestedGroups.IN_CHAIN if kind is ServerKind.ACTIVE_DIRECTORY else NestedGroups.WALK
    if nested is NestedGroups.IN_CHAIN and detected is not ServerKind.ACTIVE_DIRECTORY:
        raise UnsupportedDirectory(
            f"nested_groups=in_chain needs Active Directory, but the server does not advertise {AD_CAPABILITY_OID}; "
            "it would answer the in-chain rule with nothing: use member_of or walk"
        )
    base_dn = settings.base_dn or _naming_context(root_dse)
    defaults = _DEFAULTS[kind]
    return LdapProfile(
        kind=kind,
        nested=nested,
        base_dn=base_dn,
        user_base_dn=settings.user_base_dn or base_dn,
        group_base_dn=settings.group_base_dn or base_dn,
        username_attribute=settings.username_attribute or defaults["username_attribute"],
        user_filter=settings.user_filter or defaults["user_filter"],
        group_filter=settings.group_filter or defaults["group_filter"],
        group_name_attribute=settings.group_name_attribute or defaults["group_name_attribute"],
        member_attribute=settings.member_attribute,
        display_name_attribute=settings.display_name_attribute,
        email_attribute=settings.email_attribute,
    )


def _naming_context(root_dse: dict[str, list[str]]) -> str:
    default = root_dse.get("defaultnamingcontext", [])
    if default:
        return default[0]
    contexts = [c for c in root_dse.get("namingcontexts", []) if c and not c.lower().startswith("cn=config")]
    if len(contexts) == 1:
        return contexts[0]
    raise UnsupportedDirectory(f"cannot tell the base DN from the server's naming contexts {contexts}: set base_dn")
