"""Prometheus metrics of the cloud calls: how many, how they ended, how long they took.

Every OpenStack call of a worker goes through a `CloudDriver` made by
`cloud_driver.CloudConnections`, which wraps each driver in `instrumented`: one
observation per driver operation (a find-or-create or a status poll is one
operation, as for the rate limit). The operation label is the driver's method
name (`create`, `get`, `delete`...), never a URL or an id, so it stays a
handful of values; the outcome is `ok` or the error type `cloud_errors` maps
the exception to. The time is the call's own: waiting for a rate-limit token
happens outside it.

The metric objects live on a registry: `REGISTRY`, the module's, is the one the
worker serves on /metrics; tests build `CloudMetrics(CollectorRegistry())` and
read their own counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workflows.activity_io import CloudErrorType

if TYPE_CHECKING:  # the driver module builds these; no import cycle at run time
    from activities.cloud_driver import CloudDriver
    from activities.cloud_limits import CloudLimits

REGISTRY = CollectorRegistry(auto_describe=True)

# A status poll answers in tens of milliseconds; a create with a volume, or a
# cloud under load, takes seconds; openstacksdk's own retries can take a minute.
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

OK = "ok"
# The `cloud_errors` error types as short label values.
OUTCOMES = {
    CloudErrorType.QUOTA: "quota",
    CloudErrorType.BAD_REQUEST: "bad_request",
    CloudErrorType.NOT_FOUND: "not_found",
    CloudErrorType.CONFLICT: "conflict",
    CloudErrorType.THROTTLED: "throttled",
    CloudErrorType.UNAVAILABLE: "unavailable",
    CloudErrorType.SERVER_FAILED: "server_failed",
    CloudErrorType.PROJECT_MISSING: "project_missing",
}


class CloudMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry
        self.calls = Counter(
            "deskpool_cloud_calls",
            "Cloud API operations by cloud, driver operation and outcome (ok or the mapped error type).",
            ["cloud", "operation", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "deskpool_cloud_call_seconds",
            "Duration of cloud API operations (without the rate-limit wait).",
            ["cloud", "operation"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )

    def observe(self, cloud: str, operation: str, outcome: str, seconds: float) -> None:
        self.calls.labels(cloud, operation, outcome).inc()
        self.seconds.labels(cloud, operation).observe(seconds)


# The worker's: made once per process, on REGISTRY.
DEFAULT = CloudMetrics()


def outcome_of(exc: BaseException) -> str:
    """The error type `cloud_errors` maps the exception to, as a label value."""
    from activities.cloud_errors import map_cloud_error  # openstacksdk only when a call failed

    error_type = map_cloud_error(exc).type
    return OUTCOMES.get(error_type or "", "error")


class InstrumentedDriver:
    """The same driver, each operation counted and timed."""

    def __init__(self, inner: CloudDriver, cloud: str, metrics: CloudMetrics) -> None:
        self._inner = inner
        self._cloud = cloud
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute
        return self._measured(name, attribute)

    def _measured(self, operation: str, attribute: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = attribute(*args, **kwargs)
            except Exception as exc:
                self._metrics.observe(self._cloud, operation, outcome_of(exc), time.perf_counter() - start)
                raise
            self._metrics.observe(self._cloud, operation, OK, time.perf_counter() - start)
            return result

        return measured


def instrumented(inner: CloudDriver, cloud: str, metrics: CloudMetrics | None = None) -> CloudDriver:
    return cast("CloudDriver", InstrumentedDriver(inner, cloud, metrics or DEFAULT))


class CloudSlotsCollector(Collector):
    """Build and delete slots of each cloud in use in this worker, and their limits, read at scrape time."""

    def __init__(self, limits: CloudLimits) -> None:
        self._limits = limits

    def collect(self) -> Iterable[Metric]:
        in_use = GaugeMetricFamily(
            "deskpool_cloud_slots_in_use",
            "Servers building (kind=build) or being deleted (kind=delete) per cloud in this worker.",
            labels=["cloud", "kind"],
        )
        limit = GaugeMetricFamily(
            "deskpool_cloud_slots_limit",
            "The per-cloud slot limit of this worker (DESKPOOL_CLOUD_MAX_CONCURRENT_BUILDS/_DELETES).",
            labels=["cloud", "kind"],
        )
        for (cloud, kind), (used, size) in sorted(self._limits.usage().items()):
            in_use.add_metric([cloud, kind], used)
            limit.add_metric([cloud, kind], size)
        yield in_use
        yield limit
