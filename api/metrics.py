"""GET /metrics: the API's Prometheus metrics.

Two kinds: what the read model says at scrape time (desktops per pool and
state, claims waiting per pool, pools), read by `ReadModelCollector` with one
GROUP BY, and what this process measured (claim latency and outcome, timed
around `ClaimGateway.claim`). Each app has its own registry (`ApiMetrics`,
made in lifespan, on `app.state.metrics`), never prometheus_client's global one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from activities.store.models import DesktopRecord, PoolRecord
from api.views import LIVE_STATES

log = logging.getLogger("deskpool.api.metrics")

# From a claim answered from the pool's state in one batch (milliseconds) to one
# that waited behind a full lane, a continue-as-new or retries (seconds).
CLAIM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The pool's answers (workflows.messages.ClaimStatus), the gateway's 503, and
# what else can end a claim: the pool workflow missing, any other failure.
CLAIM_OUTCOMES = ("assigned", "waiting", "rejected", "expired", "ended", "overloaded", "not_found", "error")


class ReadModelCollector(Collector):
    """Desktops per pool and state, claims waiting per pool, pools by enabled, from the store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("deskpool_read_model_up", "1 if the store answered this scrape's queries, else 0.")
        try:
            pools, counts = self._read()
        except SQLAlchemyError as exc:
            log.warning("metrics: store not readable (%s)", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        desktops = GaugeMetricFamily(
            "deskpool_desktops", "Desktops per pool and state, from the read model.", labels=["pool", "state"]
        )
        waiting = GaugeMetricFamily(
            "deskpool_pool_waiting_claims", "Claims waiting in a pool's line for a desktop.", labels=["pool"]
        )
        enabled = GaugeMetricFamily("deskpool_pools", "Pools, enabled and disabled.", labels=["enabled"])
        by_enabled = {"true": 0, "false": 0}
        for pool_id, (is_enabled, in_line) in sorted(pools.items()):
            by_enabled["true" if is_enabled else "false"] += 1
            waiting.add_metric([pool_id], in_line)
            # Every live state of every pool, zeros included: a series never vanishes mid-graph.
            for state in LIVE_STATES:
                desktops.add_metric([pool_id, state], counts[pool_id].get(state, 0))
        for label, count in by_enabled.items():
            enabled.add_metric([label], count)
        yield desktops
        yield waiting
        yield enabled

    def _read(self) -> tuple[dict[str, tuple[bool, int]], dict[str, dict[str, int]]]:
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        with Session(self._engine) as session:
            pools = {
                pool_id: (bool(is_enabled), int(in_line))
                for pool_id, is_enabled, in_line in session.exec(
                    select(PoolRecord.id, PoolRecord.enabled, PoolRecord.waiting)
                )
            }
            query = (
                select(DesktopRecord.pool_id, DesktopRecord.state, func.count())
                .where(col(DesktopRecord.state).in_(LIVE_STATES))
                .group_by(col(DesktopRecord.pool_id), col(DesktopRecord.state))
            )
            for pool_id, state, count in session.exec(query):
                if pool_id in pools:  # desktops of a deleted pool's last moments: not a pool any more
                    counts[pool_id][state] = count
        return pools, counts


class ApiMetrics:
    """The API process's registry: the read-model collector and the claim metrics."""

    def __init__(self, engine: Engine | None = None, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if engine is not None:
            self.registry.register(ReadModelCollector(engine))
        self.claim_seconds = Histogram(
            "deskpool_claim_seconds",
            "Time from a claim reaching the API's gateway to its answer, by pool and outcome.",
            ["pool", "outcome"],
            buckets=CLAIM_BUCKETS,
            registry=self.registry,
        )
        self.claims = Counter(
            "deskpool_claims", "Claims answered by the API, by pool and outcome.", ["pool", "outcome"],
            registry=self.registry,
        )  # fmt: skip

    def observe_claim(self, pool: str, outcome: str, seconds: float) -> None:
        """The `ClaimGateway` observer: one claim of `pool` ended with `outcome` after `seconds`."""
        self.claim_seconds.labels(pool, outcome).observe(seconds)
        self.claims.labels(pool, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition"}},
)
def metrics(api_metrics: MetricsDep) -> Response:
    """Prometheus metrics of this API process and of the read model. A plain `def`:
    the store queries run on FastAPI's thread pool, not on the event loop."""
    return Response(api_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
