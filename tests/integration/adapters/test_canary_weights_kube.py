"""A canary's weights on the kubernetes (Istio) and knative backends, driven by the real services
(in-process flow) against the fake Kubernetes API: at every route the platform object holds the
step's weight, then 100 %, then everything on the new primary. Without Istio, a canary project
is refused at create project."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import yaml
from tests.support.fake_kube import DEFAULT_RESOURCES, FakeKube, deployment_rollout, knative_serving
from tests.support.flow import FakeClock, Flow, by_type

from sluice.adapters.backends.knative import KnativeBackend
from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event, EventType
from sluice.core.shipyard import parse_shipyard
from sluice.core.verdict import Verdict
from sluice.errors import ValidationError
from sluice.ports.backend import Placement
from sluice.ports.sli import SliQuery, SliValue
from sluice.services.canary import check_canary_support
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

CARTS = "docker.io/keptnexamples/carts"
PROD = Placement("sockshop", "production", "carts")
NS = PROD.namespace
SHIPYARD = """
stages:
  - name: production
    deployment_strategy: canary
    test_strategy: functional
    canary: {steps: [10, 25, 50]}
"""
SLO = "objectives:\n  - sli: response_time_p95\n    pass: [{criteria: ['<600']}]\ntotal_score: {pass: '90%', warning: '75%'}\n"
NO_ISTIO = tuple(r for r in DEFAULT_RESOURCES if r.group != "networking.istio.io")


class Latency:
    def __init__(self, values: Sequence[float]) -> None:
        self.values, self.calls = list(values), 0

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return [SliValue(i, value) for i in query.indicators]


def deliver_walk(backend: Any, observe: Callable[[], Any], latencies: Sequence[float]) -> tuple[list[Any], list[Event]]:
    """Deliver 0.10.1 then 0.10.2 to a canary production; what ``observe`` saw after each route of 0.10.2."""
    records = Records(MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    seen: list[Any] = []
    original = backend.route

    def route(placement: Placement, weight: int) -> str:
        url = original(placement, weight)
        seen.append(observe())
        return str(url)

    backend.route = route
    provider = Latency(latencies)

    def runner(deployed, context):  # type: ignore[no-untyped-def]
        return TestOutcome(Verdict.PASS, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")

    flow = Flow(records, backend, runner, FakeClock(), providers=lambda name, request: provider)

    def send(tag: str) -> list[Event]:
        change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
        return flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time=flow.clock()))

    send("0.10.1")
    records.put_resource("sockshop", "production", "carts", "slo.yaml", SLO)
    seen.clear()
    return seen, send("0.10.2")


def outcome(events: list[Event]) -> str:
    (done,) = by_type(events, EventType.DONE)
    return str(done.data.outcome)  # type: ignore[attr-defined]


@pytest.fixture
def istio() -> Iterator[FakeKube]:
    with FakeKube() as server:
        server.on_read("deployments.apps", deployment_rollout(ready_after_reads=1))
        yield server


def vs_weights(fake: FakeKube) -> dict[str, int]:
    vs = fake.get_object("virtualservices.networking.istio.io", NS, "carts")
    assert vs is not None
    return {d["destination"]["host"]: d["weight"] for d in vs["spec"]["http"][0]["route"]}


def test_kubernetes_with_istio_walks_the_virtual_service_weights(istio: FakeKube) -> None:
    backend = KubernetesBackend(istio.api_client(), poll_s=0.01)
    seen, events = deliver_walk(backend, lambda: vs_weights(istio), [100.0])
    assert outcome(events) == "promoted"
    assert [w["carts-canary"] for w in seen] == [10, 25, 50, 100, 0]
    assert all(w["carts-primary"] + w["carts-canary"] == 100 for w in seen)
    dep = istio.get_object("deployments.apps", NS, "carts-primary")
    assert dep is not None and dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{CARTS}:0.10.2"


def test_kubernetes_failing_step_goes_back_to_zero(istio: FakeKube) -> None:
    backend = KubernetesBackend(istio.api_client(), poll_s=0.01)
    seen, events = deliver_walk(backend, lambda: vs_weights(istio), [100.0, 900.0])  # the SLO is added after 0.10.1: step 2 fails
    assert outcome(events) == "rolled_back"
    assert [w["carts-canary"] for w in seen] == [10, 25, 0]


def test_knative_walks_the_traffic_percent_between_the_revisions() -> None:
    with FakeKube() as fake:
        fake.on_write("services.serving.knative.dev", knative_serving())
        backend = KnativeBackend(fake.api_client(), poll_s=0.01)

        def percents() -> dict[str, int]:
            svc = fake.get_object("services.serving.knative.dev", NS, "carts")
            assert svc is not None
            return {t.get("tag") or "": int(t["percent"]) for t in svc["spec"]["traffic"]}

        seen, events = deliver_walk(backend, percents, [100.0])
        assert outcome(events) == "promoted"
        assert [p.get("canary", 0) for p in seen] == [10, 25, 50, 100, 0]
        assert [p["primary"] for p in seen] == [90, 75, 50, 0, 100]


def test_kubernetes_without_istio_refuses_a_canary_shipyard() -> None:
    shipyard = parse_shipyard(yaml.safe_load(SHIPYARD))
    with FakeKube(NO_ISTIO) as plain:
        backend = KubernetesBackend(plain.api_client(), poll_s=0.01)
        assert backend.weighted_split() is False
        with pytest.raises(ValidationError, match="canary needs a weighted router, and the kubernetes backend has none"):
            check_canary_support(shipyard, backend, "kubernetes")
        blue_green = parse_shipyard({"stages": [{"name": "production", "deployment_strategy": "blue_green_service"}]})
        check_canary_support(blue_green, backend, "kubernetes")  # only canary needs the weighted router
    with FakeKube() as istio:
        check_canary_support(shipyard, KubernetesBackend(istio.api_client(), poll_s=0.01), "kubernetes")
