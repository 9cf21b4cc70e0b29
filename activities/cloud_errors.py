"""Cloud exceptions mapped once into retryable or non-retryable activity errors.

Retryable: the cloud is busy or briefly wrong (409 wrong state, 429, 5xx,
connection trouble); Temporal retries with backoff. Non-retryable: retrying
cannot help (quota, bad request, a missing image); the desktop fails and the
pool shows the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as os_exceptions
from temporalio.exceptions import ApplicationError

from workflows.activity_io import CloudErrorType

T = TypeVar("T")

QUOTA = CloudErrorType.QUOTA
BAD_REQUEST = CloudErrorType.BAD_REQUEST
NOT_FOUND = CloudErrorType.NOT_FOUND
CONFLICT = CloudErrorType.CONFLICT
THROTTLED = CloudErrorType.THROTTLED
UNAVAILABLE = CloudErrorType.UNAVAILABLE
SERVER_FAILED = CloudErrorType.SERVER_FAILED
PROJECT_MISSING = CloudErrorType.PROJECT_MISSING


def map_cloud_error(exc: BaseException) -> ApplicationError:
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, os_exceptions.ResourceNotFound | os_exceptions.NotFoundException):
        return ApplicationError(f"not found in the cloud: {_short(exc)}", type=NOT_FOUND, non_retryable=True)
    if isinstance(exc, os_exceptions.HttpException):
        status = exc.status_code or 0
        text = _short(exc)
        if status == 403 and "quota" in text.lower():
            return ApplicationError(f"quota exceeded: {text}", type=QUOTA, non_retryable=True)
        if status in (400, 403, 413) and "rate" not in text.lower():
            return ApplicationError(
                f"cloud refused the request ({status}): {text}", type=BAD_REQUEST, non_retryable=True
            )
        if status == 409:
            return ApplicationError(f"wrong state, will retry: {text}", type=CONFLICT)
        if status in (413, 429):
            return ApplicationError(f"throttled by the cloud: {text}", type=THROTTLED)
        return ApplicationError(f"cloud error {status}: {text}", type=UNAVAILABLE)
    if isinstance(
        exc, ks_exceptions.ConnectFailure | ks_exceptions.ConnectTimeout | ks_exceptions.RetriableConnectionFailure
    ):
        return ApplicationError(f"cloud unreachable: {_short(exc)}", type=UNAVAILABLE)
    if isinstance(exc, ks_exceptions.Unauthorized):
        return ApplicationError(f"cloud credentials rejected: {_short(exc)}", type=BAD_REQUEST, non_retryable=True)
    return ApplicationError(f"cloud call failed: {type(exc).__name__}: {_short(exc)}", type=UNAVAILABLE)


@contextmanager
def cloud_errors() -> Iterator[None]:
    try:
        yield
    except ApplicationError:
        raise
    except Exception as exc:
        raise map_cloud_error(exc) from exc


def call(fn: Callable[[], T]) -> T:
    with cloud_errors():
        return fn()


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
