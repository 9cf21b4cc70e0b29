"""The directory a process uses, from its settings: built-in or LDAP, behind the cache."""

from __future__ import annotations

from activities.directory.builtin import BuiltinDirectory
from activities.directory.cache import CachedDirectory
from activities.directory.ldap_directory import LdapDirectory
from activities.directory.model import Directory
from activities.directory.settings import DirectorySettings


def make_directory(settings: DirectorySettings) -> CachedDirectory:
    inner: Directory
    if settings.backend == "builtin":
        inner = BuiltinDirectory.from_file(settings.builtin_file)
    else:
        inner = LdapDirectory(settings)
    return CachedDirectory.from_settings(inner, settings)
