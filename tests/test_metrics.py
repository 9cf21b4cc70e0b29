"""/metrics of the API and the worker: the read model, claims, cloud calls and the Temporal SDK's own."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
import requests
from fastapi import FastAPI
from openstack import exceptions as os_exceptions
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import workflow
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import cloud_driver
from activities.cloud import CloudActivities
from activities.cloud_driver import CloudConnections, CloudDriver
from activities.cloud_limits import CloudLimits
from activities.cloud_metrics import CloudMetrics, CloudSlotsCollector, instrumented
from activities.cloud_rate import CloudTransport
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.store.models import DesktopRecord, PoolRecord
from api.claim_gateway import ClaimGateway, ClaimRejected, Overloaded, PoolNotFound
from api.metrics import ApiMetrics
from api.metrics import router as metrics_router
from api.views import LIVE_STATES
from tests.fakes import FakeCloud
from worker.metrics import MetricsServer, sdk_runtime, start_worker_metrics
from worker.settings import WorkerSettings
from workflows.activity_io import CreateServerInput, DeleteServerInput, ServerRef
from workflows.messages import ClaimBatchInput, ClaimBatchResult, ClaimOutcome, ClaimRequest, ClaimStatus
from workflows.pool_spec import Template

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


# --- the API: the read model, the claims ----------------------------------------------


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Engine]:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


async def scrape(metrics: ApiMetrics) -> httpx.Response:
    """GET /metrics of an app with the metrics router and `metrics` on its state, as api/main.py makes it."""
    app = FastAPI()
    app.include_router(metrics_router)
    app.state.metrics = metrics
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://deskpool.test") as client:
        return await client.get("/metrics")


def add_desktops(engine: Engine, pool_id: str, *states: str) -> None:
    with Session(engine) as session:
        for state in states:
            desktop_id = f"{pool_id}.{uuid.uuid4().hex[:8]}"
            session.add(DesktopRecord(id=desktop_id, pool_id=pool_id, name=desktop_id, state=state))
        session.commit()


async def test_api_metrics_count_desktops_per_pool_and_state_from_the_read_model(store: Engine) -> None:
    with Session(store) as session:
        session.add(PoolRecord(id="calls", name="Calls", waiting=7))
        session.add(PoolRecord(id="lab", name="Lab", enabled=False))
        session.add(PoolRecord(id="empty", name="Empty"))
        session.commit()
    add_desktops(store, "calls", "ready", "ready", "assigned", "connected", "destroyed")
    add_desktops(store, "lab", "failed", "standby")
    add_desktops(store, "gone-pool", "ready")  # no pool row: not reported

    response = await scrape(ApiMetrics(store))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert value(found, "deskpool_read_model_up") == 1
    assert value(found, "deskpool_desktops", pool="calls", state="ready") == 2
    assert value(found, "deskpool_desktops", pool="calls", state="assigned") == 1
    assert value(found, "deskpool_desktops", pool="calls", state="connected") == 1
    assert value(found, "deskpool_desktops", pool="calls", state="standby") == 0  # zeros are series too
    assert value(found, "deskpool_desktops", pool="lab", state="failed") == 1
    assert value(found, "deskpool_desktops", pool="lab", state="standby") == 1
    assert all(value(found, "deskpool_desktops", pool="empty", state=s) == 0 for s in LIVE_STATES)
    assert value(found, "deskpool_desktops", pool="calls", state="destroyed") is None  # only live states
    assert not any(dict(labels).get("pool") == "gone-pool" for _, labels in found)
    assert value(found, "deskpool_pool_waiting_claims", pool="calls") == 7
    assert value(found, "deskpool_pool_waiting_claims", pool="lab") == 0
    assert value(found, "deskpool_pools", enabled="true") == 2
    assert value(found, "deskpool_pools", enabled="false") == 1


async def test_api_metrics_still_answer_when_the_store_does_not(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)  # no migrations: every query fails
    metrics = ApiMetrics(engine)
    metrics.observe_claim("calls", "assigned", 0.02)
    try:
        response = await scrape(metrics)
    finally:
        engine.dispose()
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "deskpool_read_model_up") == 0
    assert value(found, "deskpool_claims_total", pool="calls", outcome="assigned") == 1


def test_each_app_has_its_own_registry() -> None:
    first, second = ApiMetrics(), ApiMetrics()
    first.observe_claim("calls", "waiting", 0.5)
    assert (
        value(samples(second.exposition().decode()), "deskpool_claims_total", pool="calls", outcome="waiting") is None
    )


class FakeHandle:
    def __init__(self, answer: Any) -> None:
        self._answer = answer

    async def execute_update(self, _update: Any, batch: ClaimBatchInput) -> ClaimBatchResult:
        if isinstance(self._answer, BaseException):
            raise self._answer
        statuses: dict[str, ClaimStatus] = self._answer
        return ClaimBatchResult([ClaimOutcome(r.request_id, r.user, statuses[r.user]) for r in batch.claims])


class FakeClient:
    """Just what the gateway uses of a Temporal client: one pool's update."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers

    def get_workflow_handle_for(self, _run: Any, workflow_id: str) -> FakeHandle:
        return FakeHandle(self._answers[workflow_id.removeprefix("pool/")])


async def test_claim_gateway_times_every_claim_by_pool_and_outcome() -> None:
    metrics = ApiMetrics()
    answers: dict[str, Any] = {
        "calls": {"alice": ClaimStatus.ASSIGNED, "bob": ClaimStatus.WAITING, "carol": ClaimStatus.EXPIRED},
        "refusing": WorkflowUpdateFailedError(ApplicationError("pool is disabled")),
        "missing": RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""),
        "broken": RPCError("permission denied", RPCStatusCode.PERMISSION_DENIED, b""),
    }
    gateway = ClaimGateway(cast(Client, FakeClient(answers)), observer=metrics.observe_claim)
    outcomes = await asyncio.gather(
        *(gateway.claim("calls", ClaimRequest(user=u, request_id=f"r-{u}")) for u in ("alice", "bob", "carol"))
    )
    assert [o.status for o in outcomes] == [ClaimStatus.ASSIGNED, ClaimStatus.WAITING, ClaimStatus.EXPIRED]
    with pytest.raises(ClaimRejected):
        await gateway.claim("refusing", ClaimRequest(user="dave", request_id="r-dave"))
    with pytest.raises(PoolNotFound):
        await gateway.claim("missing", ClaimRequest(user="erin", request_id="r-erin"))
    with pytest.raises(RPCError):
        await gateway.claim("broken", ClaimRequest(user="frank", request_id="r-frank"))
    full = ClaimGateway(cast(Client, FakeClient(answers)), max_pending=0, observer=metrics.observe_claim)
    with pytest.raises(Overloaded):
        await full.claim("calls", ClaimRequest(user="alice", request_id="r-again"))
    await gateway.close()

    found = samples(metrics.exposition().decode())
    expected = {
        ("calls", "assigned"): 1,
        ("calls", "waiting"): 1,
        ("calls", "expired"): 1,
        ("refusing", "rejected"): 1,
        ("missing", "not_found"): 1,
        ("broken", "error"): 1,
        ("calls", "overloaded"): 1,
    }
    for (pool, outcome), count in expected.items():
        assert value(found, "deskpool_claims_total", pool=pool, outcome=outcome) == count, (pool, outcome)
        assert value(found, "deskpool_claim_seconds_count", pool=pool, outcome=outcome) == count, (pool, outcome)
        assert value(found, "deskpool_claim_seconds_bucket", pool=pool, outcome=outcome, le="+Inf") == count
    assert value(found, "deskpool_claims_total", pool="calls", outcome="rejected") is None


async def test_a_failing_observer_never_fails_a_claim() -> None:
    def broken(_pool: str, _outcome: str, _seconds: float) -> None:
        raise RuntimeError("metrics down")

    gateway = ClaimGateway(cast(Client, FakeClient({"calls": {"alice": ClaimStatus.ASSIGNED}})), observer=broken)
    outcome = await gateway.claim("calls", ClaimRequest(user="alice", request_id="r-1"))
    assert outcome.status is ClaimStatus.ASSIGNED
    await gateway.close()


# --- the worker: cloud calls ----------------------------------------------------------


class QuotaCloud(FakeCloud):
    def create(self, request: Any, project_id: str | None = None) -> Any:
        error = os_exceptions.HttpException("Quota exceeded for instances: Requested 1, but already used 10 of 10")
        error.status_code = 403
        raise error


def cloud_activities(cloud: FakeCloud, metrics: CloudMetrics) -> CloudActivities:
    def drivers(name: str, region: str | None, project_id: str | None) -> CloudDriver:
        return instrumented(cloud.driver(name, region, project_id), name, metrics)

    return CloudActivities(drivers, sleep=lambda _s: None)


def create_input(desktop_id: str) -> CreateServerInput:
    return CreateServerInput(
        ref=ServerRef(cloud="east", desktop_id=desktop_id),
        name=desktop_id,
        pool_id="calls",
        template_version=1,
        template=Template(image="win11-golden", flavor="vdi.medium"),
        poll_interval_s=0,
    )


def test_cloud_calls_are_counted_and_timed_per_operation_and_outcome() -> None:
    metrics = CloudMetrics(CollectorRegistry())
    cloud = FakeCloud(build_polls=2)
    env = ActivityEnvironment()
    activities = cloud_activities(cloud, metrics)

    made = env.run(activities.provision_server, create_input("calls.1"))
    env.run(activities.delete_server, DeleteServerInput(ref=ServerRef(cloud="east", desktop_id="calls.1")))
    with pytest.raises(ApplicationError):
        env.run(cloud_activities(QuotaCloud(), metrics).create_server, create_input("calls.2"))

    found = samples(cloud_metrics_text(metrics))
    assert made.status == "ACTIVE"
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="create", outcome="ok") == 1
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="create", outcome="quota") == 1
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="delete", outcome="ok") == 1
    # A first create does not look for its server first; the delete does.
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="find_by_desktop", outcome="ok") == 1
    # The build is followed through the shared changes-since listing; the delete checks by GET.
    listings = value(found, "deskpool_cloud_calls_total", cloud="east", operation="list_changed", outcome="ok")
    assert listings is not None and listings >= 1
    gets = value(found, "deskpool_cloud_calls_total", cloud="east", operation="get", outcome="ok")
    assert gets is not None and gets >= 1
    assert value(found, "deskpool_cloud_call_seconds_count", cloud="east", operation="create") == 2
    assert value(found, "deskpool_cloud_call_seconds_count", cloud="east", operation="get") == gets
    operations = {dict(labels)["operation"] for _, labels in found if "operation" in dict(labels)}
    assert operations == {"create", "delete", "find_by_desktop", "get", "list_changed"}  # method names, never ids


def cloud_metrics_text(metrics: CloudMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


class FakeIdentity:
    def find_project(self, name: str, ignore_missing: bool) -> None:
        return None


class FakeKeystoneSession:
    def __init__(self) -> None:
        self.session = requests.Session()


class FakeConnection:
    identity = FakeIdentity()

    def __init__(self) -> None:
        self.session = FakeKeystoneSession()


@pytest.mark.parametrize("calls_per_second", [None, 1000.0])
def test_every_driver_the_worker_makes_is_instrumented(
    monkeypatch: pytest.MonkeyPatch, calls_per_second: float | None
) -> None:
    connection = FakeConnection()
    monkeypatch.setattr(cloud_driver, "connect", lambda *_args: connection)
    metrics = CloudMetrics(CollectorRegistry())
    driver = CloudConnections(None, calls_per_second, metrics=metrics).driver("east", None)
    assert driver.find_project("acme") is None
    # Every HTTP request of the connection passes deskpool's transport; with a limit, the cloud's bucket.
    transport = connection.session.session.get_adapter("https://nova.example")
    assert isinstance(transport, CloudTransport)
    assert (transport._bucket is not None) is (calls_per_second is not None)
    found = samples(cloud_metrics_text(metrics))
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="find_project", outcome="ok") == 1


def test_cloud_slots_in_use_are_read_at_scrape_time() -> None:
    limits = CloudLimits(builds=4, deletes=2)
    registry = CollectorRegistry()
    registry.register(CloudSlotsCollector(limits))
    with (
        limits.slot("east", "build", heartbeat=lambda _d: None),
        limits.slot("east", "build", heartbeat=lambda _d: None),
    ):
        assert registry.get_sample_value("deskpool_cloud_slots_in_use", {"cloud": "east", "kind": "build"}) == 2
        assert registry.get_sample_value("deskpool_cloud_slots_limit", {"cloud": "east", "kind": "build"}) == 4
    assert registry.get_sample_value("deskpool_cloud_slots_in_use", {"cloud": "east", "kind": "build"}) == 0
    assert registry.get_sample_value("deskpool_cloud_slots_in_use", {"cloud": "east", "kind": "delete"}) is None


# --- the worker's endpoint, with the Temporal SDK's metrics ---------------------------


def fetch(url: str) -> tuple[str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


@workflow.defn(sandboxed=False)
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


async def test_worker_metrics_include_deskpool_and_the_temporal_sdk(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    made = sdk_runtime()
    assert made is not None
    runtime, sdk_url = made
    client = await Client.connect(
        dev_env.client.service_client.config.target_host, namespace="default", runtime=runtime
    )
    metrics = CloudMetrics(CollectorRegistry())
    metrics.observe("east", "create", "ok", 0.2)
    server = MetricsServer("127.0.0.1", 0, collectors=[metrics.registry], sdk_url=sdk_url)
    server.start()
    try:
        async with Worker(
            client, task_queue=task_queue, workflows=[Hello], workflow_runner=UnsandboxedWorkflowRunner()
        ):
            result = await client.execute_workflow(
                Hello.run, "metrics", id=f"hello-{task_queue}", task_queue=task_queue,
                execution_timeout=timedelta(seconds=30),
            )  # fmt: skip
            content_type, text = await asyncio.to_thread(fetch, server.url)
    finally:
        server.stop()
    assert result == "hello metrics"
    assert content_type.startswith("text/plain")
    found = samples(text)
    names = families(text)
    assert value(found, "deskpool_sdk_metrics_up") == 1
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="create", outcome="ok") == 1
    sdk = {name for name in names if name.startswith("temporal_")}
    assert sdk, f"no temporal_* family in {sorted(names)}"
    assert any(name.startswith("temporal_workflow_completed") for name in sdk), sorted(sdk)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_worker_metrics_survive_the_sdk_exporter_being_unreachable() -> None:
    metrics = CloudMetrics(CollectorRegistry())
    metrics.observe("east", "get", "unavailable", 0.01)
    server = MetricsServer(
        "127.0.0.1", 0, collectors=[metrics.registry], sdk_url=f"http://127.0.0.1:{closed_port()}/metrics"
    )
    server.start()
    try:
        _, text = fetch(server.url)
        missing = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as not_here:
            missing.open(server.url.replace("/metrics", "/other"), timeout=10)
    finally:
        server.stop()
    found = samples(text)
    assert value(found, "deskpool_sdk_metrics_up") == 0
    assert value(found, "deskpool_cloud_calls_total", cloud="east", operation="get", outcome="unavailable") == 1
    assert not any(name.startswith("temporal_") for name in families(text))
    assert not_here.value.code == 404


def test_worker_metrics_are_off_with_port_zero_and_a_taken_port_does_not_stop_the_worker() -> None:
    off = start_worker_metrics(WorkerSettings(metrics_port=0))
    assert off.server is None and off.runtime is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = start_worker_metrics(WorkerSettings(metrics_host="127.0.0.1", metrics_port=taken.getsockname()[1]))
    assert busy.server is None and busy.runtime is None
    busy.stop()
