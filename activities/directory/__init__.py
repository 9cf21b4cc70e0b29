"""Who may use a pool and who is signing in: the organisation's directory.

`make_directory(DirectorySettings())` gives the process's directory: the
built-in file directory (`make run`) or LDAP / Active Directory through ldap3,
behind the entitlement cache. Everything implements `Directory`; every error
is one of `errors.py`'s.
"""

from activities.directory.builtin import BuiltinDirectory
from activities.directory.cache import CachedDirectory
from activities.directory.errors import (
    AccountDisabled,
    AccountState,
    DirectoryError,
    DirectoryUnavailable,
    InvalidCredentials,
    UnsupportedDirectory,
)
from activities.directory.factory import make_directory
from activities.directory.ldap_directory import LdapDirectory
from activities.directory.model import (
    Directory,
    DirectoryUser,
    EntitlementResult,
    EntitlementSource,
    SourceKind,
)
from activities.directory.settings import DirectorySettings, NestedGroups, ServerKind

__all__ = [
    "AccountDisabled",
    "AccountState",
    "BuiltinDirectory",
    "CachedDirectory",
    "Directory",
    "DirectoryError",
    "DirectorySettings",
    "DirectoryUnavailable",
    "DirectoryUser",
    "EntitlementResult",
    "EntitlementSource",
    "InvalidCredentials",
    "LdapDirectory",
    "NestedGroups",
    "ServerKind",
    "SourceKind",
    "UnsupportedDirectory",
    "make_directory",
]
