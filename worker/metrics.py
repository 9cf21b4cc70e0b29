"""The worker's Prometheus /metrics: deskpool's metrics and the Temporal SDK's, on one port.

The SDK exports its own metrics (task latencies, slots, polls, the sticky cache,
all named `temporal_*`) only from an HTTP server inside its core, which a
`Runtime` with a `PrometheusConfig` starts. The worker makes that runtime on a
free loopback port, connects its client (and so its Worker) with it, and this
module's server answers /metrics with deskpool's metrics followed by the SDK's
text, fetched at scrape time with a short timeout. When the SDK's text cannot
be fetched, deskpool's metrics are still served, with `deskpool_sdk_metrics_up 0`.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities import cloud_metrics
from worker.settings import WorkerSettings

log = logging.getLogger("deskpool.worker.metrics")

SDK_TIMEOUT_S = 2.0
SDK_HOST = "127.0.0.1"
# The SDK's exporter and ours are both on this machine: never through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = SDK_HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def sdk_runtime(host: str = SDK_HOST, attempts: int = 3) -> tuple[Runtime, str] | None:
    """A Temporal runtime exporting the SDK's metrics on a free port of `host`, and their URL.

    None (logged) when no port could be bound; the worker then runs on the SDK's default runtime.
    """
    for _ in range(attempts):
        port = free_port(host)
        try:
            runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))
        except ValueError as exc:  # the port was taken between the probe and the bind
            log.info("Temporal SDK metrics exporter not started on %s:%d (%s); trying another port", host, port, exc)
            continue
        return runtime, f"http://{host}:{port}/metrics"
    log.warning("Temporal SDK metrics exporter not started; /metrics serves deskpool's metrics only")
    return None


class _SdkUp(Collector):
    def __init__(self, up: bool) -> None:
        self._up = up

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "deskpool_sdk_metrics_up",
            "1 if this scrape includes the Temporal SDK's metrics (temporal_*), 0 if they could not be fetched.",
            value=1 if self._up else 0,
        )


class MetricsServer:
    """GET /metrics on host:port (port 0: any free port), from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        collectors: Sequence[Collector] = (cloud_metrics.REGISTRY,),
        sdk_url: str | None = None,
        sdk_timeout_s: float = SDK_TIMEOUT_S,
    ) -> None:
        self._host = host
        self._port = port
        self._collectors = list(collectors)
        self.sdk_url = sdk_url
        self._sdk_timeout_s = sdk_timeout_s
        self._sdk_failing = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, collector: Collector) -> None:
        """Another source for this server only (e.g. the slots of this process's cloud limits)."""
        self._collectors.append(collector)

    @property
    def port(self) -> int:
        """The bound port once started (the one asked for, or the free one picked for 0)."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/metrics"

    def render(self) -> bytes:
        sdk = self._sdk_text()
        parts = [generate_latest(collector) for collector in self._collectors]
        parts.append(generate_latest(_SdkUp(sdk is not None)))
        if sdk:
            parts.append(sdk)
        return b"".join(parts)

    def _sdk_text(self) -> bytes | None:
        if not self.sdk_url:
            return None
        try:
            with _NO_PROXY.open(self.sdk_url, timeout=self._sdk_timeout_s) as response:
                body: bytes = response.read()
        except (OSError, http.client.HTTPException) as exc:
            if not self._sdk_failing:  # once per outage, not once per scrape
                log.warning("Temporal SDK metrics not reachable at %s (%s); serving deskpool's only", self.sdk_url, exc)
            self._sdk_failing = True
            return None
        if self._sdk_failing:
            log.info("Temporal SDK metrics reachable again")
        self._sdk_failing = False
        return body if not body or body.endswith(b"\n") else body + b"\n"

    def start(self) -> None:
        """Listen now (an OSError if the port is taken), serve in a daemon thread."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics here")
                    return
                try:
                    body = metrics.render()
                except Exception:
                    log.exception("rendering /metrics failed")
                    self.send_error(500, "rendering metrics failed")
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        server_class = _ThreadingHTTPServerV6 if ":" in self._host else ThreadingHTTPServer
        self._server = server_class((self._host, self._port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="deskpool-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _ThreadingHTTPServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@dataclass
class WorkerTelemetry:
    """What the worker's metrics need from its start: the server, and the runtime its client uses."""

    server: MetricsServer | None = None
    runtime: Runtime | None = None

    def add(self, collector: Collector) -> None:
        if self.server is not None:
            self.server.add(collector)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def start_worker_metrics(settings: WorkerSettings) -> WorkerTelemetry:
    """Serve /metrics on DESKPOOL_METRICS_HOST:PORT with the SDK's metrics included.

    Off when the port is 0. A port already taken is logged and the worker runs
    on without metrics (its work matters more than its numbers).
    """
    if not settings.metrics_port:
        return WorkerTelemetry()
    server = MetricsServer(settings.metrics_host, settings.metrics_port)
    try:
        server.start()
    except OSError as exc:
        log.warning(
            "worker metrics not served: cannot listen on %s:%d (%s)", settings.metrics_host, settings.metrics_port, exc
        )
        return WorkerTelemetry()
    made = sdk_runtime()
    runtime = None
    if made is not None:
        runtime, server.sdk_url = made
    log.info("worker metrics on %s", server.url)
    return WorkerTelemetry(server=server, runtime=runtime)
