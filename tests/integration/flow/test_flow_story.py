"""The tutorial story through the services in-process (fake backend, memory store)."""

from __future__ import annotations

import uuid

import pytest
import yaml
from tests.support.flow import FakeClock, Flow, by_type
from tests.support.sockshop import CARTS, SHIPYARD, SLO, fake_runner, seed_project

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.approval_auth import sign
from sluice.core.events import (
    ApprovalFinished,
    ConfigurationChange,
    Decision,
    Event,
    EventType,
    GetSli,
)
from sluice.core.verdict import Verdict
from sluice.ports.backend import Placement
from sluice.ports.sli import SliQuery, SliValue
from sluice.services.ledger import Ledger
from sluice.services.records import Records

#: The sockshop project's approver key in these tests.
APPROVER_KEY = b"k" * 32


@pytest.fixture
def world():  # type: ignore[no-untyped-def]
    records = Records(MemoryStore())
    seed_project(records, SHIPYARD)
    backend = NoopBackend()
    flow = Flow(records, backend, fake_runner, FakeClock(), approver_keys={"sockshop": APPROVER_KEY}.get)
    return records, backend, flow


def new_artifact(tag: str) -> Event:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z")


def outcomes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.data.stage, e.data.outcome) for e in by_type(events, EventType.DONE)]  # type: ignore[attr-defined]


def test_tutorial_story(world) -> None:  # type: ignore[no-untyped-def]
    """0.10.1 reaches production; 0.10.2 fails the staging gate and is rolled back; 0.10.3 reaches production."""
    records, backend, flow = world
    first = flow.send(new_artifact("0.10.1"))
    assert outcomes(first) == [("dev", "promoted"), ("staging", "promoted"), ("production", "promoted")]
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)

    slow = flow.send(new_artifact("0.10.2"))
    assert outcomes(slow) == [("dev", "promoted"), ("staging", "rolled_back")]
    evaluation = next(e for e in by_type(slow, EventType.EVALUATION_DONE) if e.data.stage == "staging")  # type: ignore[attr-defined]
    assert evaluation.data.result == Verdict.FAIL  # type: ignore[attr-defined]
    failing = [r["value"]["metric"] for r in evaluation.data.evaluationdetails["indicatorResults"] if r["status"] == "fail"]  # type: ignore[attr-defined]
    assert failing == ["response_time_p95"]
    assert backend.serving(Placement("sockshop", "staging", "carts")) == f"{CARTS}:0.10.1"
    assert all("0.10.2" not in (c.image or "") for c in backend.calls if c.placement.stage == "production")

    fast = flow.send(new_artifact("0.10.3"))
    assert outcomes(fast) == [("dev", "promoted"), ("staging", "promoted"), ("production", "promoted")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:0.10.3"
    state = Ledger(records).lane(Placement("sockshop", "staging", "carts"))
    assert state.serving.primary_image == f"{CARTS}:0.10.3" and state.serving.last_good_image == f"{CARTS}:0.10.3"

    context = slow[0].shkeptncontext
    logged = records.events(context)
    assert [e["id"] for e in logged] == [e.id for e in slow]
    ids = {e["id"] for e in logged}
    assert all(e["triggeredid"] in ids for e in logged[1:]), "every event's cause is in the same log"


def test_duplicate_delivery_changes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    """Delivering every event of a delivery a second time changes no state and repeats the replies."""
    records, backend, flow = world
    events = flow.send(new_artifact("0.10.1"))
    before = {r.name: dict(r.data) for r in records.store.list({})}
    calls = len(backend.calls)
    for event in events:
        handler = flow.routes.get(event.type)
        if handler is None:
            continue
        again = handler(event)
        assert [e.id for e in again] == [e.id for e in events if e.triggeredid == event.id and e.source == again[0].source] if again else True
    after = {r.name: dict(r.data) for r in records.store.list({})}
    assert before == after
    assert len(backend.calls) == calls


def test_broken_candidate_fails_the_delivery_and_frees_the_stage(world) -> None:  # type: ignore[no-untyped-def]
    """A candidate that never becomes ready ends in deployment-finished fail, a failed gate and a rollback."""
    records, backend, flow = world
    flow.send(new_artifact("0.10.1"))
    backend.fail_images.add(f"{CARTS}:0.10.9")
    events = flow.send(new_artifact("0.10.9"))
    deployed = next(by_type(events, EventType.DEPLOYMENT_FINISHED))
    assert deployed.data.result == "fail" and "not ready within" in deployed.data.message  # type: ignore[attr-defined]
    assert outcomes(events) == [("dev", "stopped")]
    assert "dev keeps serving docker.io/keptnexamples/carts:0.10.1" in next(by_type(events, EventType.DONE)).data.message  # type: ignore[attr-defined]
    assert backend.serving(Placement("sockshop", "dev", "carts")) == f"{CARTS}:0.10.1"
    assert Ledger(records).lane(Placement("sockshop", "dev", "carts")).active is None


def test_provider_that_never_answers_fails_after_the_timeout(world) -> None:  # type: ignore[no-untyped-def]
    """When get-sli is never answered, a tick after the timeout fails the evaluation and rolls back."""
    records, _backend, flow = world
    flow.send(new_artifact("0.10.1"))
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
    flow.drop = lambda e: e.type is EventType.GET_SLI and e.data.stage == "staging"  # type: ignore[attr-defined]
    events = flow.send(new_artifact("0.10.3"))
    assert outcomes(events) == [("dev", "promoted")]
    assert not list(flow.tick()), "nothing expires before the deadline"
    flow.clock.advance(121)  # type: ignore[attr-defined]
    expired = flow.tick()
    done = next(by_type(expired, EventType.EVALUATION_DONE))
    assert done.data.result == "fail" and "no answer from SLI provider" in done.data.message  # type: ignore[attr-defined]
    assert outcomes(expired) == [("staging", "rolled_back")]


def test_manual_approval_holds_then_promotes(world) -> None:  # type: ignore[no-untyped-def]
    """With approval_strategy pass: manual, production waits for a person; approving promotes."""
    records, backend, flow = world
    manual = SHIPYARD + "    approval_strategy: {pass: manual, warning: manual}\n"
    records.create_project("sockshop", manual, yaml.safe_load(manual))
    events = flow.send(new_artifact("0.10.1"))
    assert next(by_type(events, EventType.APPROVAL_TRIGGERED)).data.stage == "production"  # type: ignore[attr-defined]
    assert outcomes(events) == [("dev", "promoted"), ("staging", "promoted")]
    context = events[0].shkeptncontext
    approval = Event.new(
        ApprovalFinished(project="sockshop", stage="production", service="carts", decision=Decision.APPROVE),
        source="test", id="approve-1", time=flow.clock(), context=context,
    )
    after = flow.send(sign(approval, APPROVER_KEY, "alice"))
    assert outcomes(after) == [("production", "promoted")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:0.10.1"


def test_two_deliveries_racing_for_a_stage_queue(world) -> None:  # type: ignore[no-untyped-def]
    """A delivery arriving while the stage is held waits, then runs when the first one ends."""
    records, _backend, flow = world
    flow.send(new_artifact("0.10.1"))
    flow.hold_units = True  # the first delivery's tests keep running
    a, b = new_artifact("0.10.3"), new_artifact("0.10.4")
    flow.send(a)
    flow.send(b)
    state = Ledger(records).lane(Placement("sockshop", "dev", "carts"))
    assert state.active is not None and state.active.context == a.shkeptncontext
    assert [q.context for q in state.queue] == [b.shkeptncontext]
    flow.hold_units = False
    done = flow.send()  # the tests report: a finishes, then b runs
    promoted = [(e.data.stage, e.data.image) for e in by_type(done, EventType.DONE)]  # type: ignore[attr-defined]
    assert (("dev", f"{CARTS}:0.10.3") in promoted) and (("dev", f"{CARTS}:0.10.4") in promoted)
    assert promoted.index(("dev", f"{CARTS}:0.10.3")) < promoted.index(("dev", f"{CARTS}:0.10.4"))


def test_unknown_sli_provider_answers_could_not_measure(world) -> None:  # type: ignore[no-untyped-def]
    """A provider that fails to build still answers; the evaluation lists the SLI as error and fails."""
    records, _backend, flow = world
    from sluice.errors import ConfigurationError

    def broken(name: str, request: GetSli):  # type: ignore[no-untyped-def]
        raise ConfigurationError(f"unknown SLI provider {name!r}")

    flow.sli.providers = broken
    records.put_resource("sockshop", "dev", "carts", "slo.yaml", SLO)
    events = flow.send(new_artifact("0.10.1"))
    done = next(by_type(events, EventType.EVALUATION_DONE))
    assert done.data.result == "fail"  # type: ignore[attr-defined]
    keptn = done.data.evaluationdetails["indicatorResults"]  # type: ignore[attr-defined]
    assert [r["value"]["success"] for r in keptn] == [False]
    ours = done.data.evaluationdetails["sluice"]["indicators"]  # type: ignore[attr-defined]
    assert [i["status"] for i in ours] == ["error"]
    assert "unknown SLI provider" in ours[0]["message"]


def _unused(q: SliQuery) -> SliValue:  # keep imports honest for type checkers
    return SliValue(q.indicators[0], None)


class ListArchive:
    """An in-memory archive that can be told to fail."""

    def __init__(self) -> None:
        self.docs: dict[str, str] = {}
        self.failing = False

    def put(self, key: str, document: str) -> None:
        from sluice.errors import RetryableError

        if self.failing:
            raise RetryableError("archive unreachable")
        self.docs[key] = document

    def list(self, prefix: str) -> list[str]:
        return sorted(k for k in self.docs if k.startswith(prefix))

    def get(self, key: str) -> str:
        return self.docs[key]


def test_history_overflow_goes_to_the_archive_first(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Evaluations past the bounded history are archived before they leave the store; an archive failure drops nothing."""
    import pytest as _pytest

    from sluice.errors import RetryableError
    from sluice.services import records as records_module

    monkeypatch.setattr(records_module, "HISTORY_LIMIT", 3)
    archive = ListArchive()
    records = Records(MemoryStore(), archive)
    for i in range(5):
        records.append_evaluation("p", "s", "svc", {"id": f"e{i}", "time": f"2026-01-0{i + 1}"})
    assert [e["id"] for e in records.evaluations("p", "s", "svc")] == ["e2", "e3", "e4"]
    assert [e["id"] for e in records.archived_evaluations("p", "s", "svc")] == ["e0", "e1"]
    archive.failing = True
    with _pytest.raises(RetryableError):
        records.append_evaluation("p", "s", "svc", {"id": "e5", "time": "2026-01-06"})
    assert [e["id"] for e in records.evaluations("p", "s", "svc")] == ["e2", "e3", "e4"]


def test_invalid_tests_yaml_fails_the_tests_explicitly(world) -> None:  # type: ignore[no-untyped-def]
    """A test unit that cannot run (an invalid tests.yaml) still reports tests-finished fail with the reason."""
    from sluice.errors import ValidationError

    _, _, flow = world

    def broken(deployed, context):  # type: ignore[no-untyped-def]
        raise ValidationError("tests.yaml of carts", ["performance.rate: expected a number, found 'fast'"])

    flow.runner = broken
    events = flow.send(new_artifact("0.10.1"))
    finished = next(by_type(events, EventType.TESTS_FINISHED))
    assert finished.data.result == "fail" and "performance.rate" in finished.data.message  # type: ignore[attr-defined]
    assert outcomes(events) == [("dev", "stopped")]
