"""Custom search attributes: how an operator finds a pool or desktop in the Temporal UI.

Registered by `make run` (dev server flags), by the test fixtures and by the
compose deployment's one-shot job; keep those three in step with this list.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

POOL = SearchAttributeKey.for_keyword("DeskpoolPool")
DESKTOP = SearchAttributeKey.for_keyword("DeskpoolDesktop")
STATE = SearchAttributeKey.for_keyword("DeskpoolState")
USER = SearchAttributeKey.for_keyword("DeskpoolUser")
TEMPLATE_VERSION = SearchAttributeKey.for_int("DeskpoolTemplateVersion")
KIND = SearchAttributeKey.for_keyword("DeskpoolKind")

ALL = (POOL, DESKTOP, STATE, USER, TEMPLATE_VERSION, KIND)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev --search-attribute Name=Type` for each key."""
    flags: list[str] = []
    for key in ALL:
        value_type = key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_").title()
        flags += ["--search-attribute", f"{key.name}={value_type}"]
    return flags
