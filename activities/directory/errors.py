"""The directory's errors, and the one place ldap3's exceptions are mapped to them.

Callers see four outcomes besides success: the credentials are wrong, the
account may not sign in (disabled, locked, expired), the directory cannot be
reached in time (the API answers 503), or the server cannot do what deskpool
needs (a configuration problem an operator must fix). Messages never carry a
password: ldap3 does not put it in its exceptions and we add nothing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from ldap3.core import exceptions as ldap_exc
from ldap3.core import results


class DirectoryError(Exception):
    """Base of every error the directory layer raises."""


class InvalidCredentials(DirectoryError):
    """Unknown user or wrong password: deliberately indistinguishable."""

    def __init__(self, message: str = "invalid username or password") -> None:
        super().__init__(message)


class AccountState(StrEnum):
    DISABLED = "disabled"
    LOCKED = "locked"
    EXPIRED = "expired"
    PASSWORD_EXPIRED = "password_expired"
    PASSWORD_MUST_CHANGE = "password_must_change"
    LOGON_RESTRICTED = "logon_restricted"


class AccountDisabled(DirectoryError):
    """The password was right but the account may not sign in now."""

    def __init__(self, state: AccountState) -> None:
        super().__init__(f"account is {state.value.replace('_', ' ')}")
        self.state = state


class DirectoryUnavailable(DirectoryError):
    """Down, unreachable, overloaded or slower than the timeout: retry later (503)."""


class UnsupportedDirectory(DirectoryError):
    """The server cannot answer what is asked the configured way (a settings problem)."""


# Active Directory puts the reason for a refused bind in the diagnostic
# message as "data <hex>"; only some reasons mean a wrong password.
_AD_BIND_SUBCODE = re.compile(r"\bdata ([0-9a-fA-F]{3,8})\b")
AD_BIND_SUBCODES: dict[str, AccountState | None] = {
    "525": None,  # no such user
    "52e": None,  # wrong password
    "530": AccountState.LOGON_RESTRICTED,  # not permitted at this time
    "531": AccountState.LOGON_RESTRICTED,  # not permitted at this workstation
    "532": AccountState.PASSWORD_EXPIRED,
    "533": AccountState.DISABLED,
    "701": AccountState.EXPIRED,
    "773": AccountState.PASSWORD_MUST_CHANGE,
    "775": AccountState.LOCKED,
}

_UNSUPPORTED_RESULTS = {
    results.RESULT_UNAVAILABLE_CRITICAL_EXTENSION: "the server lacks a control deskpool needs (paged results?)",
    results.RESULT_INAPPROPRIATE_MATCHING: "the server does not support a matching rule deskpool used",
    results.RESULT_STRONGER_AUTH_REQUIRED: "the server requires TLS or signing: use ldaps:// or start_tls",
    results.RESULT_CONFIDENTIALITY_REQUIRED: "the server requires TLS: use ldaps:// or start_tls",
    results.RESULT_UNDEFINED_ATTRIBUTE_TYPE: "the server does not know an attribute in the settings",
}

_COMMUNICATION_ERRORS = (
    ldap_exc.LDAPCommunicationError,  # socket open/receive/send errors, session ended by server
    ldap_exc.LDAPResponseTimeoutError,
    ldap_exc.LDAPServerPoolExhaustedError,
    ldap_exc.LDAPStartTLSError,
    ldap_exc.LDAPMaximumRetriesError,
    socket.timeout,
    TimeoutError,
    ConnectionError,
)


def map_ldap_error(exc: BaseException, *, user_bind: bool = False) -> DirectoryError:
    """Translate an ldap3 (or socket) exception. `user_bind`: the error came from
    binding as the signing-in user, so a refused bind is about their credentials,
    not about deskpool's service account."""
    if isinstance(exc, DirectoryError):
        return exc
    if isinstance(exc, _COMMUNICATION_ERRORS):
        return DirectoryUnavailable(f"directory unreachable: {_describe(exc)}")
    if isinstance(exc, ldap_exc.LDAPBindError | ldap_exc.LDAPInvalidCredentialsResult):
        return _refused_bind(exc, user_bind)
    if isinstance(exc, ldap_exc.LDAPOperationResult):
        code = exc.result
        if code in _UNSUPPORTED_RESULTS:
            return UnsupportedDirectory(f"{_UNSUPPORTED_RESULTS[code]}: {_describe(exc)}")
        if user_bind and code in (results.RESULT_UNWILLING_TO_PERFORM, results.RESULT_INAPPROPRIATE_AUTHENTICATION):
            return InvalidCredentials()
        if code == results.RESULT_INSUFFICIENT_ACCESS_RIGHTS:
            return DirectoryUnavailable(f"the service account may not read what deskpool needs: {_describe(exc)}")
        # busy, unavailable, time/admin limits, other: the server's trouble, retry later.
        return DirectoryUnavailable(f"directory error: {_describe(exc)}")
    if isinstance(exc, ldap_exc.LDAPException | OSError):
        return DirectoryUnavailable(f"directory client error: {_describe(exc)}")
    raise TypeError(f"not a directory error: {exc!r}") from exc


@contextmanager
def ldap_errors(*, user_bind: bool = False) -> Iterator[None]:
    try:
        yield
    except DirectoryError:
        raise
    except (ldap_exc.LDAPException, OSError) as exc:
        raise map_ldap_error(exc, user_bind=user_bind) from exc


def _refused_bind(exc: ldap_exc.LDAPException, user_bind: bool) -> DirectoryError:
    if not user_bind:
        # Never "wrong password" to a user because deskpool's own account was refused.
        return DirectoryUnavailable(f"the directory refused deskpool's service account: {_describe(exc)}")
    match = _AD_BIND_SUBCODE.search(_text(exc))
    state = AD_BIND_SUBCODES.get(match.group(1).lower()) if match else None
    return AccountDisabled(state) if state is not None else InvalidCredentials()


def _text(exc: BaseException) -> str:
    return " ".join(str(part) for part in (getattr(exc, "message", None), exc) if part)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ldap_exc.LDAPOperationResult):
        detail = f"{exc.description} ({exc.result})"
        return f"{detail}: {exc.message}" if exc.message else detail
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
