"""The tutorial driven by events alone against the real local backend and the real test runner.

Services run in-process (no broker), but every deployment is a real carts process behind the
weighted router, and every test is a real functional or performance run of tests.yaml.
"""

from __future__ import annotations

import uuid

import pytest
from tests.support.flow import Flow, by_type
from tests.support.sockshop import CARTS, SOCKSHOP, seed_project

from sluice.adapters.backends.local import LocalBackend
from sluice.adapters.state.local import LocalStore
from sluice.core.events import ConfigurationChange, DeploymentFinished, Event, EventType
from sluice.functions.testworker import run_stage_tests
from sluice.ports.backend import Placement
from sluice.services.ledger import Ledger
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome
from sluice.services.testspecs import load_test_spec

EXAMPLE = SOCKSHOP

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def world(tmp_path):  # type: ignore[no-untyped-def]
    records = Records(LocalStore(tmp_path / "state"))
    seed_project(records, (EXAMPLE / "shipyard.yaml").read_text(),
                 tests_yaml=(SOCKSHOP / "carts" / "tests.yaml").read_text(), test_stages=("dev", "staging"))
    backend = LocalBackend(EXAMPLE / "images.yaml", tmp_path / "runtime")

    def runner(deployed: DeploymentFinished, context: str) -> TestOutcome:
        text = records.resource(deployed.project, deployed.stage, deployed.service, "tests.yaml")
        spec = load_test_spec(text, "tests.yaml") if text else None
        # the test worker's own path: a starved load generator makes the evaluation inconclusive.
        # 6 s at 20 requests/s is 120 requests, above the stage's min_samples (100): with fewer,
        # every evaluation would be inconclusive, spend both retries of on_inconclusive, and a
        # starved last attempt would decide alone (a rollback of 0.10.3, seen once in CI)
        return run_stage_tests(deployed, spec, 60.0, duration_s=6.0)

    flow = Flow(records, backend, runner)  # type: ignore[arg-type]
    yield records, backend, flow
    backend.stop_all()


def deliver(flow: Flow, tag: str) -> list[Event]:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z"))


def short_of_samples(events: list[Event]) -> list[str]:
    """The reasons of evaluations that were inconclusive for too few requests (none expected)."""
    return [r["message"] for e in by_type(events, EventType.EVALUATION_DONE)
            for r in e.data.evaluationdetails.get("sluice", {}).get("inconclusive_reasons", [])  # type: ignore[attr-defined]
            if r.get("kind") == "too_few_samples"]


def version_at(url: str) -> str:
    import httpx

    return str(httpx.get(f"{url}/version", timeout=5.0).json()["version"])


def test_tutorial_on_real_processes(world) -> None:  # type: ignore[no-untyped-def]
    """0.10.2 measures p95 > 1,000 ms and is rolled back in staging; 0.10.3 measures < 600 ms and reaches production."""
    records, _backend, flow = world
    first = deliver(flow, "0.10.1")
    assert [e.data.outcome for e in by_type(first, EventType.DONE)] == ["promoted"] * 3  # type: ignore[attr-defined]
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", (EXAMPLE / "slo.yaml").read_text())

    slow = deliver(flow, "0.10.2")
    done = [(e.data.stage, e.data.outcome) for e in by_type(slow, EventType.DONE)]  # type: ignore[attr-defined]
    assert done == [("dev", "promoted"), ("staging", "rolled_back")]
    assert short_of_samples(slow) == []
    measured = records.measurements("sockshop", "staging", "carts", slow[0].shkeptncontext)
    assert measured["response_time_p95"] > 1000
    staging = Ledger(records).lane(Placement("sockshop", "staging", "carts"))
    assert version_at(staging.serving.public_url) == "0.10.1"

    fast = deliver(flow, "0.10.3")
    done = [(e.data.stage, e.data.outcome) for e in by_type(fast, EventType.DONE)]  # type: ignore[attr-defined]
    # on failure, say why: each test run's and each evaluation's own words (a retry adds one of each)
    why = [f"{e.type.rsplit('.', 1)[-1]} {e.data.stage}: {getattr(e.data, 'result', '') or e.data.outcome} "  # type: ignore[attr-defined]
           f"{getattr(e.data, 'inconclusive', '')} {e.data.message}"  # type: ignore[attr-defined]
           for e in fast if e.type in (EventType.TESTS_FINISHED, EventType.EVALUATION_DONE, EventType.DONE)]
    assert done == [("dev", "promoted"), ("staging", "promoted"), ("production", "promoted")], why
    assert short_of_samples(fast) == []
    measured = records.measurements("sockshop", "staging", "carts", fast[0].shkeptncontext)
    assert measured["response_time_p95"] < 600
    production = Ledger(records).lane(Placement("sockshop", "production", "carts"))
    assert version_at(production.serving.public_url) == "0.10.3"
