"""A stage's ``on_inconclusive`` through the real services (issue 18): fail judges by the verdict,
hold waits for a person, retry re-runs the tests and the evaluation (then fails)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import yaml
from tests.support.flow import FakeClock, Flow, by_type

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.approval_auth import sign
from sluice.core.events import ApprovalFinished, ConfigurationChange, Decision, Event, EventType, GetSli
from sluice.core.inconclusive import attempt_of
from sluice.core.verdict import Verdict
from sluice.ports.backend import Placement
from sluice.ports.sli import SliQuery, SliValue
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

CARTS = "docker.io/keptnexamples/carts"
KEY = b"k" * 32
SLO = "objectives:\n  - sli: response_time_p95\n    pass: [{criteria: ['<600']}]\ntotal_score: {pass: '90%', warning: '75%'}\n"


def shipyard(policy: str) -> str:
    return f"""
stages:
  - name: dev
    deployment_strategy: direct
    test_strategy: functional
    on_inconclusive: {policy}
  - name: production
    deployment_strategy: direct
"""


class Flaky:
    """An SLI provider that cannot measure for its first ``failures`` calls, then measures 50 ms."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        self.calls += 1
        if self.calls <= self.failures:
            return [SliValue(i, None, False, "no data for the window") for i in query.indicators]
        return [SliValue(i, 50.0) for i in query.indicators]


def world(policy: str, failures: int) -> tuple[Flow, NoopBackend, Flaky]:
    records = Records(MemoryStore())
    text = shipyard(policy)
    records.create_project("sockshop", text, yaml.safe_load(text))
    records.onboard("sockshop", "carts")
    records.put_resource("sockshop", "dev", "carts", "slo.yaml", SLO)
    provider = Flaky(failures)
    backend = NoopBackend()

    def runner(deployed, context):  # type: ignore[no-untyped-def]
        return TestOutcome(Verdict.PASS, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")

    def providers(name: str, request: GetSli) -> Flaky:
        return provider

    flow = Flow(records, backend, runner, FakeClock(), providers=providers, approver_keys={"sockshop": KEY}.get)
    return flow, backend, provider


def artifact(flow: Flow, tag: str) -> Event:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return Event.new(change, source="test", id=str(uuid.uuid4()), time=flow.clock())


def outcomes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.data.stage, e.data.outcome) for e in by_type(events, EventType.DONE)]  # type: ignore[attr-defined]


def test_fail_judges_by_the_verdict_as_keptn_does() -> None:
    """on_inconclusive: fail — an unmeasured SLI scores 0, the build is stopped; marked inconclusive."""
    flow, _backend, provider = world("fail", failures=1)
    events = flow.send(artifact(flow, "1.0.0"))
    assert outcomes(events) == [("dev", "stopped")]
    evaluation = next(by_type(events, EventType.EVALUATION_DONE))
    assert evaluation.data.evaluationdetails["sluice"]["inconclusive"] is True  # type: ignore[attr-defined]
    assert provider.calls == 1


def test_retry_re_runs_the_tests_and_the_evaluation() -> None:
    """on_inconclusive: retry — the first evaluation could not judge; the second attempt measures and passes."""
    flow, backend, provider = world("retry", failures=1)
    events = flow.send(artifact(flow, "1.0.0"))
    assert outcomes(events) == [("dev", "promoted"), ("production", "promoted")]
    dev = [e for e in by_type(events, EventType.DEPLOYMENT_FINISHED) if e.data.stage == "dev"]  # type: ignore[attr-defined]
    assert [attempt_of(e.data.labels) for e in dev] == [1, 2]  # type: ignore[attr-defined]
    verdicts = [e.data.result for e in by_type(events, EventType.EVALUATION_DONE) if e.data.stage == "dev"]  # type: ignore[attr-defined]
    assert verdicts == ["fail", "pass"]
    assert provider.calls == 2
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:1.0.0"
    again = flow.send(*events)  # every event of the delivery once more: nothing new (the stateless SLI
    assert {e.id for e in again} <= {e.id for e in events}  # function fetches again; nobody takes the answer)
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:1.0.0"


def test_retry_gives_up_after_max_retries() -> None:
    """on_inconclusive: {action: retry, max_retries: 2} — still inconclusive after two re-runs → judged (fail)."""
    flow, backend, provider = world("{action: retry, max_retries: 2}", failures=99)
    events = flow.send(artifact(flow, "1.0.0"))
    assert outcomes(events) == [("dev", "stopped")]
    assert provider.calls == 3
    assert backend.serving(Placement("sockshop", "production", "carts")) == ""


def test_hold_waits_for_a_person_who_may_approve() -> None:
    """on_inconclusive: hold — the promotion waits for approval whatever the verdict; approving promotes."""
    flow, backend, _provider = world("hold", failures=1)
    events = flow.send(artifact(flow, "1.0.0"))
    triggered = next(by_type(events, EventType.APPROVAL_TRIGGERED))
    assert "inconclusive" in triggered.data.message  # type: ignore[attr-defined]
    assert not outcomes(events)
    approval = Event.new(ApprovalFinished(project="sockshop", stage="dev", service="carts", decision=Decision.APPROVE),
                         source="test", id="a-1", time=flow.clock(), context=events[0].shkeptncontext)
    after = flow.send(sign(approval, KEY, "alice"))
    assert outcomes(after) == [("dev", "promoted"), ("production", "promoted")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:1.0.0"
