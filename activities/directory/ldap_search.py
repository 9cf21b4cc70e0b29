"""Searching with a service connection: paged, escaped, counted; and DN helpers.

Every value placed in a filter goes through ldap3's `escape_filter_chars`
(see `eq`), so a name like `*)(uid=*` is matched literally, never as filter
syntax. Searches without a size limit are paged, so answers larger than the
server's limit (1,000 in AD and the test slapd) come back whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import ldap3
from ldap3.core import exceptions as ldap_exc
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

# Terms per OR-filter: well below any server's filter size limits.
FILTER_CHUNK = 100


@dataclass(frozen=True)
class Entry:
    dn: str
    attributes: dict[str, list[str]]  # lower-cased names

    def values(self, name: str) -> list[str]:
        return self.attributes.get(name.lower(), [])

    def first(self, name: str) -> str:
        values = self.values(name)
        return values[0] if values else ""


class QueryCounter:
    """Searches sent to the directory (a paged search counts once); for tests and metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class LdapReader:
    def __init__(self, conn: ldap3.Connection, page_size: int, counter: QueryCounter) -> None:
        self._conn = conn
        self._page_size = page_size
        self._counter = counter

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str] = (),
        *,
        scope: str = ldap3.SUBTREE,
        size_limit: int = 0,
        missing_base_ok: bool = False,
    ) -> list[Entry]:
        """Entries only (AD's continuation references are dropped, never followed)."""
        self._counter.add()
        attrs = list(attributes) or [ldap3.NO_ATTRIBUTES]
        try:
            if size_limit or scope == ldap3.BASE:
                self._conn.search(base, search_filter, scope, attributes=attrs, size_limit=size_limit)
                responses: Iterable[dict[str, object]] = self._conn.response or []
            else:
                responses = self._conn.extend.standard.paged_search(
                    base, search_filter, scope, attributes=attrs, paged_size=self._page_size, generator=True
                )
            return [_entry(r) for r in responses if r.get("type") == "searchResEntry"]
        except ldap_exc.LDAPNoSuchObjectResult:
            if missing_base_ok:
                return []
            raise


def _entry(response: dict[str, object]) -> Entry:
    raw = response.get("raw_attributes") or {}
    assert isinstance(raw, Mapping)
    attributes = {
        str(name).lower(): [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
        for name, values in raw.items()
    }
    return Entry(str(response["dn"]), attributes)


def eq(attribute: str, value: str) -> str:
    """(attribute=value) with the value escaped: the only way values enter filters."""
    return f"({attribute}={escape_filter_chars(value)})"


def starts_with(attribute: str, prefix: str) -> str:
    return f"({attribute}={escape_filter_chars(prefix)}*)"


def any_of(terms: Iterable[str]) -> str:
    terms = list(terms)
    return terms[0] if len(terms) == 1 else f"(|{''.join(terms)})"


def all_of(*terms: str) -> str:
    return f"(&{''.join(terms)})"


def chunks(items: Iterable[str], size: int = FILTER_CHUNK) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def normalize_dn(dn: str) -> str:
    """A DN for comparison: case, spaces and escaping differences removed."""
    try:
        parts = parse_dn(dn, strip=True)
    except ldap_exc.LDAPInvalidDnError:
        return dn.casefold()
    return "".join(f"{kind.lower()}={unescape_dn_value(value).casefold()}{sep}" for kind, value, sep in parts)


def rdn_of(dn: str) -> tuple[str, str] | None:
    """(attribute, raw value) of the first RDN; None for a multi-valued or hex RDN."""
    try:
        parts = parse_dn(dn, strip=True)
    except ldap_exc.LDAPInvalidDnError:
        return None
    if not parts or parts[0][2] == "+" or parts[0][1].startswith("#"):
        return None
    return parts[0][0], unescape_dn_value(parts[0][1])


def is_under(dn: str, base: str) -> bool:
    child, parent = normalize_dn(dn), normalize_dn(base)
    return child == parent or child.endswith("," + parent)


def unescape_dn_value(value: str) -> str:
    """RFC 4514 escapes (`\\,` and `\\2C`) back to the value's characters."""
    out = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and _is_hex(value[i + 1 : i + 3]):
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        elif ch == "\\" and i + 1 < len(value):
            out += value[i + 1].encode()
            i += 2
        else:
            out += ch.encode()
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)
