"""The canary tutorial (issue 19) on real processes: every deployment is a real carts process
behind the real weighted router, every step's test a real performance run of tests.yaml, and
the builtin SLI provider judges each step. 0.10.2 (1 s per request) stops at the first step
with production serving 0.10.1 to ~90 % of the requests throughout; 0.10.3 walks 10 → 25 → 50
→ 100 and becomes the primary."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import pytest
from tests.support.flow import Flow, by_type
from tests.support.sockshop import CARTS, EXAMPLES, SOCKSHOP, seed_project

from sluice.adapters.backends.local import LocalBackend
from sluice.adapters.state.local import LocalStore
from sluice.core.events import ConfigurationChange, DeploymentFinished, Event, EventType
from sluice.functions.testworker import run_stage_tests
from sluice.ports.backend import Placement
from sluice.services.ledger import Ledger
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome
from sluice.services.testspecs import load_test_spec

EXAMPLE = EXAMPLES / "sockshop-canary"
PRODUCTION = Placement("sockshop", "production", "carts")
SAMPLE = 200  # requests to the public URL during each step

pytestmark = [pytest.mark.slow, pytest.mark.timeout(280)]


@pytest.fixture
def world(tmp_path):  # type: ignore[no-untyped-def]
    records = Records(LocalStore(tmp_path / "state"))
    seed_project(records, (EXAMPLE / "shipyard.yaml").read_text(),
                 tests_yaml=(SOCKSHOP / "carts" / "tests.yaml").read_text(), test_stages=("dev",))
    # production's performance test loads its public address: enough requests for the 10 % share
    records.put_resource("sockshop", "production", "carts", "tests.yaml", (EXAMPLE / "tests.yaml").read_text())
    backend = LocalBackend(SOCKSHOP / "images.yaml", tmp_path / "runtime")
    #: per delivery image: (asked weight, share of public requests that reached the candidate) per step
    shares: dict[str, list[tuple[int, float]]] = {}

    def runner(deployed: DeploymentFinished, context: str) -> TestOutcome:
        if deployed.deploymentstrategy == "canary":  # what real users see during this step
            run = Ledger(records).lane(PRODUCTION).active
            assert run is not None and run.canary is not None
            with httpx.Client(timeout=10.0) as client:
                seen = Counter(client.get(f"{deployed.deploymentURIPublic}/version").json()["version"] for _ in range(SAMPLE))
            shares.setdefault(deployed.tag, []).append((run.canary.weight, 100.0 * seen[deployed.tag] / SAMPLE))
        text = records.resource(deployed.project, deployed.stage, deployed.service, "tests.yaml")
        spec = load_test_spec(text, "tests.yaml") if text else None
        return run_stage_tests(deployed, spec, 60.0, duration_s=6.0)  # as the test unit runs them

    flow = Flow(records, backend, runner)  # type: ignore[arg-type]
    yield records, flow, shares
    backend.stop_all()


def deliver(flow: Flow, tag: str) -> list[Event]:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z"))


def outcomes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.data.stage, e.data.outcome) for e in by_type(events, EventType.DONE)]  # type: ignore[attr-defined]


def test_canary_tutorial_on_real_processes(world) -> None:  # type: ignore[no-untyped-def]
    records, flow, shares = world
    assert outcomes(deliver(flow, "0.10.1")) == [("dev", "promoted"), ("production", "promoted")]
    records.put_resource("sockshop", "production", "carts", "slo.yaml", (EXAMPLE / "slo.yaml").read_text())

    slow = deliver(flow, "0.10.2")
    assert outcomes(slow) == [("dev", "promoted"), ("production", "rolled_back")]
    done = next(e for e in by_type(slow, EventType.DONE) if e.data.stage == "production")  # type: ignore[attr-defined]
    assert "canary step 1 of 3 (10 %) failed" in done.data.message, done.data.message  # type: ignore[attr-defined]
    assert "inconclusive" not in done.data.message  # judged on its latency  # type: ignore[attr-defined]
    step = records.measurements("sockshop", "production", "carts", slow[0].shkeptncontext)
    assert step is not None and step["measured_at"] == "public"  # the load went through the split
    assert step["slots"]["canary"]["requests"] >= 100 and step["slots"]["canary"]["response_time_p95"] >= 1000
    judged = records.evaluations("sockshop", "production", "carts")[-1]
    p95 = next(i for i in judged["indicators"] if i["name"] == "response_time_p95")
    assert p95["samples"] == step["slots"]["canary"]["requests"] and p95["value"] >= 1000  # the candidate's share only
    ((weight, share),) = shares["0.10.2"]  # stopped at the first step
    assert weight == 10 and abs(share - 10) <= 2  # production served 0.10.1 to ~90 % meanwhile
    lane = Ledger(records).lane(PRODUCTION)
    with httpx.Client(timeout=10.0) as client:
        after = Counter(client.get(f"{lane.serving.public_url}/version").json()["version"] for _ in range(50))
    assert after == Counter({"0.10.1": 50})

    fast = deliver(flow, "0.10.3")
    assert outcomes(fast) == [("dev", "promoted"), ("production", "promoted")], [e.data.message for e in by_type(fast, EventType.DONE)]  # type: ignore[attr-defined]
    # each step's weight, in order (a step whose evaluation was inconclusive, e.g. its load generator
    # starved on a loaded machine, runs its test again at the same weight: on_inconclusive retry)
    assert list(dict.fromkeys(w for w, _ in shares["0.10.3"])) == [10, 25, 50]
    assert all(abs(share - weight) <= 2 for weight, share in shares["0.10.3"]), shares["0.10.3"]
    lane = Ledger(records).lane(PRODUCTION)
    history = lane.finished[-1].canary
    assert history is not None and [h.weight for h in history.history] == [10, 25, 50] and history.weight == 100
    with httpx.Client(timeout=10.0) as client:
        after = Counter(client.get(f"{lane.serving.public_url}/version").json()["version"] for _ in range(50))
    assert after == Counter({"0.10.3": 50})
    evaluations = records.evaluations("sockshop", "production", "carts")
    assert [e["result"] for e in evaluations][-4:] == ["fail", "pass", "pass", "pass"]
