"""The worker's data converter: Temporal's default, with the pool's carried state decoded by pydantic.

A pool continuing as new hands its whole state (every desktop, the last 1,000 finished claims)
to its next run, and the next run's first workflow task decodes it. The SDK's JSON converter
walks each dataclass value with `typing.get_type_hints` (per object, uncached): 0.3 s for a pool
of 1,000 desktops on an idle machine, over 2 s under a login storm, which tripped the SDK's
deadlock detector on that first task (docs/reliability.md, finding 8). pydantic's compiled
validator decodes the same JSON to equal values in ~10 ms (tests/test_payloads.py).

Only decoding changes, and only for the types in FAST_TYPES: the JSON on the wire and in
histories is the SDK's own, so clients with the default converter and recorded histories are
unaffected.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from workflows.pool_workflow import PoolWorkflowInput

FAST_TYPES: frozenset[type] = frozenset({PoolWorkflowInput})


@functools.cache
def _adapter(type_hint: type) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class FastStateJSONConverter(JSONPlainPayloadConverter):
    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        if type_hint in FAST_TYPES:
            return _adapter(type_hint).validate_json(payload.data)
        return super().from_payload(payload, type_hint)


class DeskpoolPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                FastStateJSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=DeskpoolPayloadConverter)
