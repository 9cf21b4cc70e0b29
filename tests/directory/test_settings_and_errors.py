"""Directory settings from DESKPOOL_DIRECTORY_* and the one mapping of ldap3 errors."""

from __future__ import annotations

import pytest
from ldap3.core import exceptions as ldap_exc
from ldap3.core import results
from pydantic import ValidationError

from activities.directory import (
    AccountDisabled,
    AccountState,
    DirectorySettings,
    DirectoryUnavailable,
    InvalidCredentials,
    NestedGroups,
    UnsupportedDirectory,
)
from activities.directory.errors import map_ldap_error


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKPOOL_DIRECTORY_BACKEND", "ldap")
    monkeypatch.setenv("DESKPOOL_DIRECTORY_URLS", '["ldaps://dc1.example.test", "ldap://dc2.example.test:389"]')
    monkeypatch.setenv("DESKPOOL_DIRECTORY_BIND_DN", "cn=svc,dc=example,dc=test")
    monkeypatch.setenv("DESKPOOL_DIRECTORY_BIND_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("DESKPOOL_DIRECTORY_NESTED_GROUPS", "member_of")
    settings = DirectorySettings()
    assert settings.urls == ["ldaps://dc1.example.test", "ldap://dc2.example.test:389"]
    assert settings.nested_groups is NestedGroups.MEMBER_OF
    assert settings.bind_password is not None and settings.bind_password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "ldap"}, "needs DESKPOOL_DIRECTORY_URLS"),
        ({"urls": ["http://dc1"]}, "must look like ldap://"),
        ({"urls": ["ldap://dc1:99999"]}, "Port out of range"),
        ({"bind_dn": "cn=svc"}, "needs bind_password"),
        ({"cache_ttl_s": 60, "cache_refresh_ahead_s": 60}, "below cache_ttl_s"),
        ({"urls": ["ldaps://dc1"], "start_tls": True}, "already encrypted"),
        ({"receive_timeout_s": 0.5}, "valid integer"),
    ],
)
def test_bad_settings_say_what_is_wrong(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DirectorySettings(**values)  # type: ignore[arg-type]


def _result(code: int, message: str = "") -> ldap_exc.LDAPOperationResult:
    return ldap_exc.LDAPOperationResult(result=code, description=results.RESULT_CODES[code], message=message)


def _ad_bind_refusal(subcode: str) -> ldap_exc.LDAPOperationResult:
    text = f"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {subcode}, v1db1"
    return _result(results.RESULT_INVALID_CREDENTIALS, text)


@pytest.mark.parametrize(
    ("subcode", "state"),
    [
        ("52e", None),
        ("525", None),
        ("533", AccountState.DISABLED),
        ("775", AccountState.LOCKED),
        ("701", AccountState.EXPIRED),
        ("532", AccountState.PASSWORD_EXPIRED),
        ("773", AccountState.PASSWORD_MUST_CHANGE),
        ("530", AccountState.LOGON_RESTRICTED),
    ],
)
def test_ad_bind_sub_codes(subcode: str, state: AccountState | None) -> None:
    for exc in (_ad_bind_refusal(subcode), ldap_exc.LDAPBindError(f"invalidCredentials: ... data {subcode}, v4563")):
        mapped = map_ldap_error(exc, user_bind=True)
        if state is None:
            assert isinstance(mapped, InvalidCredentials)
        else:
            assert isinstance(mapped, AccountDisabled) and mapped.state is state


def test_a_refused_service_account_is_not_a_wrong_user_password() -> None:
    assert isinstance(map_ldap_error(_ad_bind_refusal("52e")), DirectoryUnavailable)
    assert isinstance(map_ldap_error(_result(results.RESULT_INVALID_CREDENTIALS)), DirectoryUnavailable)


@pytest.mark.parametrize(
    "exc",
    [
        ldap_exc.LDAPSocketOpenError("socket connection error while opening: [Errno 111] Connection refused"),
        ldap_exc.LDAPSocketReceiveError("error receiving data: timed out"),
        ldap_exc.LDAPSessionTerminatedByServerError("session terminated by server"),
        ldap_exc.LDAPServerPoolExhaustedError("no active server available in server pool"),
        ldap_exc.LDAPResponseTimeoutError("no response from server"),
        TimeoutError("timed out"),
        ConnectionResetError(104, "Connection reset by peer"),
        _result(results.RESULT_BUSY),
        _result(results.RESULT_UNAVAILABLE),
        _result(results.RESULT_TIME_LIMIT_EXCEEDED),
        _result(results.RESULT_ADMIN_LIMIT_EXCEEDED),
        _result(results.RESULT_INSUFFICIENT_ACCESS_RIGHTS),
        _result(results.RESULT_OTHER),
    ],
)
def test_trouble_reaching_or_using_the_server_is_unavailable(exc: BaseException) -> None:
    assert isinstance(map_ldap_error(exc), DirectoryUnavailable)


@pytest.mark.parametrize(
    "code",
    [
        results.RESULT_UNAVAILABLE_CRITICAL_EXTENSION,
        results.RESULT_INAPPROPRIATE_MATCHING,
        results.RESULT_STRONGER_AUTH_REQUIRED,
        results.RESULT_CONFIDENTIALITY_REQUIRED,
    ],
)
def test_what_the_server_cannot_do_is_unsupported(code: int) -> None:
    assert isinstance(map_ldap_error(_result(code)), UnsupportedDirectory)


def test_unwilling_to_bind_a_user_is_invalid_credentials() -> None:
    """Some AD setups answer an unauthenticated bind with unwillingToPerform."""
    exc = _result(results.RESULT_UNWILLING_TO_PERFORM)
    assert isinstance(map_ldap_error(exc, user_bind=True), InvalidCredentials)
    assert isinstance(map_ldap_error(exc), DirectoryUnavailable)


def test_bugs_are_not_mapped() -> None:
    with pytest.raises(TypeError):
        map_ldap_error(KeyError("x"))
