"""Schemathesis against the API's own OpenAPI schema: no generated request may get a server error.

The API runs for real (uvicorn, SQLite store, built-in directory) with a
Temporal address nobody answers, so every workflow call meets its failure
path: that must be a 503 (the designed answer while a dependency is down),
never a 500. Requests are signed in as a super user
so authorization does not stop them before their input is looked at; the
401/403 answers themselves are covered per role in test_api_roles.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.auth.roles import Principal
from api.auth.tokens import SessionTokens
from api.main import session_key
from tests.served_api import served_api


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with served_api(tmp_path_factory.mktemp("fuzz")) as (base_url, settings):
        token = SessionTokens(session_key(settings), 3600).issue(Principal("admin")).token
        yield base_url, token


def test_no_generated_request_gets_a_server_error(served: tuple[str, str]) -> None:
    base_url, token = served
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30, "the schema lost its operations"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            # 503 is the designed answer while a dependency (here Temporal) is down; anything else 5xx is a bug.
            server_error = response.status_code >= 500 and response.status_code != 503
            assert not server_error, f"{response.status_code} for {case.as_curl_command()}: {response.text[:300]}"

        try:
            call()
        except (AssertionError, BaseExceptionGroup) as failure:  # every failing operation reported at once
            failures[operation.label] = str(failure).splitlines()[0] if str(failure) else repr(failure)
    assert not failures, "\n".join(f"{label}: {why}" for label, why in failures.items())
