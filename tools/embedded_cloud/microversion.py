"""Compute API microversion negotiation.

openstacksdk reads ``version``/``min_version`` from the discovery document,
picks min(server max, resource class max) and sends it in both the modern
``OpenStack-API-Version: compute X.Y`` and the legacy
``X-OpenStack-Nova-API-Version`` header. Responses echo the chosen version
the way Nova does.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from tools.embedded_cloud.errors import ApiError

Microversion = tuple[int, int]
MIN_MICROVERSION: Microversion = (2, 1)


def parse(text: str) -> Microversion:
    major, _, minor = text.strip().partition(".")
    return int(major), int(minor)


def render(version: Microversion) -> str:
    return f"{version[0]}.{version[1]}"


def requested(headers: Headers, maximum: Microversion) -> Microversion:
    """The microversion a request asks for; 2.1 when it names none."""
    text: str | None = None
    for part in headers.get("openstack-api-version", "").split(","):
        service, _, value = part.strip().partition(" ")
        if service.lower() == "compute" and value:
            text = value
    if text is None:
        text = headers.get("x-openstack-nova-api-version")
    if not text:
        return MIN_MICROVERSION
    if text.strip().lower() == "latest":
        return maximum
    try:
        version = parse(text)
    except ValueError:
        raise ApiError(400, f"Invalid format for API version '{text}'", service="compute") from None
    if not MIN_MICROVERSION <= version <= maximum:
        raise ApiError(
            406,
            f"Version {text} is not supported by the API. Minimum is "
            f"{render(MIN_MICROVERSION)} and maximum is {render(maximum)}.",
            service="compute",
        )
    return version


def response_headers(version: Microversion) -> dict[str, str]:
    text = render(version)
    return {
        "OpenStack-API-Version": f"compute {text}",
        "X-OpenStack-Nova-API-Version": text,
        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    }
