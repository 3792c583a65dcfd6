"""Gate integrity (issue 13): each defect seen under redelivery, races, crashes and faults, as a
scenario through the real services (memory store, noop backend, a controllable clock).

Every test here failed on the services before the ledger (b480ea1) — see the closing note."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import yaml
from tests.support.flow import FakeClock, Flow, by_type
from tests.support.sockshop import CARTS, SHIPYARD

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.approval_auth import sign
from sluice.core.events import ApprovalFinished, ConfigurationChange, Decision, Event, EventType, GetSliDone
from sluice.core.ledger import Phase
from sluice.core.verdict import Verdict
from sluice.errors import ConfigurationError, RetryableError
from sluice.ports.backend import Placement, Slot
from sluice.services.ledger import Ledger
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

KEY = b"k" * 32  # the sockshop project's approver key
SLO = """
objectives:
  - sli: response_time_p95
    pass:
      - criteria: ["<600"]
total_score: {pass: "90%", warning: "75%"}
"""


def runner(deployed, context):  # type: ignore[no-untyped-def]
    slow = deployed.tag == "0.10.2"
    return TestOutcome(Verdict.PASS, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
                       measurements={"response_time_p95": 1050.0 if slow else 50.0, "error_rate": 0.0})


class World:
    def __init__(self, shipyard: str = SHIPYARD) -> None:
        self.records = Records(MemoryStore())
        self.records.create_project("sockshop", shipyard, yaml.safe_load(shipyard))
        self.records.onboard("sockshop", "carts")
        self.backend = NoopBackend()
        self.clock = FakeClock()
        self.flow = Flow(self.records, self.backend, runner, self.clock, approver_keys={"sockshop": KEY}.get)
        self.ledger = Ledger(self.records)

    def artifact(self, tag: str) -> Event:
        change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
        return Event.new(change, source="test", id=str(uuid.uuid4()), time=self.clock())

    def lane(self, stage: str):  # type: ignore[no-untyped-def]
        return self.ledger.lane(Placement("sockshop", stage, "carts"))

    def serving(self, stage: str) -> str:
        return self.backend.serving(Placement("sockshop", stage, "carts"))

    def approval(self, context: str, decision: str, stage: str = "production") -> Event:
        payload = ApprovalFinished(project="sockshop", stage=stage, service="carts", decision=Decision(decision))
        event = Event.new(payload, source="test", id=str(uuid.uuid4()), time=self.clock(), context=context)
        return sign(event, KEY, "alice")


def outcomes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.data.stage, e.data.outcome) for e in by_type(events, EventType.DONE)]  # type: ignore[attr-defined]


@pytest.fixture
def world() -> World:
    return World()


def test_a_late_sli_answer_after_the_timeout_changes_nothing(world: World) -> None:
    """Defect 1: the timeout tick and a late get-sli.done race; one evaluation is stored, the loser
    re-emits the winner's verdict, and the rolled-back build never reaches production."""
    world.flow.send(world.artifact("0.10.1"))
    world.records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
    late: list[Event] = []

    def hold_staging_answer(e: Event) -> bool:
        if e.type is EventType.GET_SLI_DONE and e.data.stage == "staging":  # type: ignore[attr-defined]
            late.append(e)
            return True
        return False

    world.flow.drop = hold_staging_answer
    delivery = world.flow.send(world.artifact("0.10.3"))  # a fast build: its SLIs would pass
    context = delivery[0].shkeptncontext
    world.clock.advance(121)
    verdict: list[Event] = []
    world.flow.drop = lambda e: e.type is EventType.EVALUATION_DONE and not verdict.append(e)  # type: ignore[func-returns-value]
    world.flow.tick()  # the timeout wins: a fail verdict, not yet seen by the gatekeeper
    world.flow.drop = lambda e: False
    (answer,) = late
    assert isinstance(answer.data, GetSliDone)
    replayed = world.flow.evaluate.handle(answer)  # the late answer loses the race
    assert [e.to_json_dict() for e in replayed] == [verdict[0].to_json_dict()], "the loser re-emits the winner's verdict"
    assert verdict[0].data.result == "fail"  # type: ignore[attr-defined]
    assert outcomes(world.flow.send(*verdict)) == [("staging", "rolled_back")]
    assert not list(by_type(world.flow.send(answer), EventType.EVALUATION_DONE)), "after the end, nothing at all"
    history = [h for h in world.records.evaluations("sockshop", "staging", "carts") if h["context"] == context]
    assert [h["result"] for h in history] == ["fail"]
    assert world.serving("production") == f"{CARTS}:0.10.1"
    assert not any(c.image == f"{CARTS}:0.10.3" for c in world.backend.calls if c.placement.stage == "production")


@pytest.mark.parametrize("error", [ConfigurationError("403: no RoleBinding"), KeyError("a defect")])
def test_a_deploy_error_ends_the_delivery_and_frees_the_stage(world: World, error: Exception) -> None:
    """Defect 2: any non-retryable error after the claim ends in deployment-finished fail and a done."""
    world.flow.send(world.artifact("0.10.1"))
    real = world.backend.deploy

    def broken(placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        if image.endswith("0.10.5"):
            raise error
        return real(placement, slot, image, timeout_s)

    world.backend.deploy = broken  # type: ignore[method-assign]
    events = world.flow.send(world.artifact("0.10.5"))
    assert next(by_type(events, EventType.DEPLOYMENT_FINISHED)).data.result == "fail"  # type: ignore[attr-defined]
    assert outcomes(events) == [("dev", "stopped")]
    assert world.lane("dev").active is None
    after = world.flow.send(world.artifact("0.10.6"))
    assert outcomes(after)[0] == ("dev", "promoted"), "the next delivery is not stuck behind it"


def test_a_retryable_deploy_error_the_broker_gives_up_on_ends_at_the_deadline(world: World) -> None:
    """Defect 2: a RetryableError is left to the broker; dead-lettered, the tick ends the run."""
    world.flow.send(world.artifact("0.10.1"))
    real = world.backend.deploy

    def unreachable(placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        if image.endswith("0.10.5"):
            raise RetryableError("API server unreachable")
        return real(placement, slot, image, timeout_s)

    world.backend.deploy = unreachable  # type: ignore[method-assign]
    with pytest.raises(RetryableError):
        world.flow.send(world.artifact("0.10.5"))  # the function answers 503; the broker gives up
    assert world.lane("dev").active is not None and world.lane("dev").active.deadline
    assert not world.flow.tick()
    world.clock.advance(3 * 60 + 61)
    events = world.flow.tick()
    assert "did not finish within" in next(by_type(events, EventType.DEPLOYMENT_FINISHED)).data.message  # type: ignore[attr-defined]
    assert outcomes(events) == [("dev", "stopped")]
    assert world.lane("dev").active is None


@pytest.mark.parametrize(("on_timeout", "outcome", "serving"), [("decline", "declined", "0.10.1"), ("approve", "promoted", "0.10.3")])
def test_an_approval_nobody_gives_expires(on_timeout: str, outcome: str, serving: str) -> None:
    """Defect 3: a held promotion ends at its timeout as on_timeout says, with the reason recorded."""
    manual = SHIPYARD + f"    approval_strategy: {{pass: manual, timeout: 2h, on_timeout: {on_timeout}}}\n"
    world = World(SHIPYARD)
    world.flow.send(world.artifact("0.10.1"))
    world.records.create_project("sockshop", manual, yaml.safe_load(manual))
    events = world.flow.send(world.artifact("0.10.3"))
    assert next(by_type(events, EventType.APPROVAL_TRIGGERED)).data.stage == "production"  # type: ignore[attr-defined]
    held = world.lane("production").active
    assert held is not None and held.phase is Phase.HELD
    world.clock.advance(3600)
    assert not outcomes(world.flow.tick())
    world.clock.advance(3601)
    expired = world.flow.tick()
    assert outcomes(expired) == [("production", outcome)]
    assert world.serving("production") == f"{CARTS}:{serving}"
    decision = world.lane("production").finished[-1].hold
    assert decision is not None and decision.decision.value == "expired" and "expired" in decision.reason
    late = world.flow.send(world.approval(events[0].shkeptncontext, "approve"))
    assert not outcomes(late), "a late approval changes nothing"
    assert world.serving("production") == f"{CARTS}:{serving}"


def test_a_duplicate_approval_changes_nothing() -> None:
    """Defect 4: the same approval.finished delivered twice does not turn a promotion into a failure."""
    manual = SHIPYARD + "    approval_strategy: {pass: manual}\n"
    world = World(manual)
    events = world.flow.send(world.artifact("0.10.1"))
    approval = world.approval(events[0].shkeptncontext, "approve")
    assert outcomes(world.flow.send(approval)) == [("production", "promoted")]
    again = world.flow.send(approval)
    assert ("production", "failed") not in outcomes(again)
    assert outcomes(again) in ([], [("production", "promoted")])
    assert world.serving("production") == f"{CARTS}:0.10.1"


def test_records_stay_small_with_big_slos_and_long_histories() -> None:
    """Defect 5: 100 evaluations of a 100-objective SLO and 1,000 deliveries keep every record < 900 KiB."""
    objectives = [{"sli": f"indicator_{i:03d}_with_a_long_descriptive_name", "pass": [{"criteria": ["<600", "<=+10%"]}],
                   "warning": [{"criteria": ["<=800"]}], "weight": 1} for i in range(100)]
    big = yaml.safe_dump({"objectives": objectives, "total_score": {"pass": "90%", "warning": "75%"}})
    world = World("stages:\n  - name: dev\n    deployment_strategy: direct\n")
    world.records.put_resource("sockshop", "dev", "carts", "slo.yaml", big + "\n" * 0)
    for i in range(100):
        # each evaluation's SLO differs a little, so the history holds many distinct texts
        world.records.put_resource("sockshop", "dev", "carts", "slo.yaml", big + f"# revision {i % 7}\n")
        world.flow.send(world.artifact(f"1.0.{i}"))
    for i in range(900):
        world.records.append_event(str(uuid.UUID(int=i + 1)), {
            "id": f"e{i}", "source": "test", "type": EventType.CONFIGURATION_CHANGE.value,
            "time": f"2026-02-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "data": {"project": "sockshop", "service": "carts", "blob": "x" * 2000},
        })
    store = world.records.store
    sizes = {r.name: len(json.dumps(dict(r.data))) for r in store.list({})}
    assert max(sizes.values()) < 900 * 1024, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    assert len(world.records.evaluations("sockshop", "dev", "carts")) >= 5  # ~100 KB each: the rest left by bytes
    assert len(world.records.contexts("sockshop")) <= 1000
    assert len([n for n in sizes if n.startswith("context.")]) <= 1000


def test_a_late_duplicate_of_a_forgotten_delivery_re_runs_nothing() -> None:
    """Defect 6: re-posting every event of an old delivery after 120 newer ones changes no stage."""
    world = World("stages:\n  - name: dev\n    deployment_strategy: direct\n  - name: prod\n    deployment_strategy: direct\n")
    old = world.flow.send(world.artifact("0.10.1"))
    for i in range(120):
        world.flow.send(world.artifact(f"2.0.{i}"))
    before = {name: world.lane(name) for name in ("dev", "prod")}
    calls = len(world.backend.calls)
    world.flow.send(*old)
    for name in ("dev", "prod"):
        lane = world.lane(name)
        assert lane.active is None, f"{name} is claimed again by an old delivery"
        assert lane.serving == before[name].serving
    assert len(world.backend.calls) == calls
    assert world.serving("prod") == f"{CARTS}:2.0.119"


def test_a_replayed_evaluation_done_does_not_reopen_a_decided_approval() -> None:
    """Defect 7: after an approval was decided, the old evaluation-done holds nothing again."""
    manual = SHIPYARD + "    approval_strategy: {pass: manual}\n"
    world = World(manual)
    events = world.flow.send(world.artifact("0.10.1"))
    evaluation = [e for e in by_type(events, EventType.EVALUATION_DONE) if e.data.stage == "production"]  # type: ignore[attr-defined]
    world.flow.send(world.approval(events[0].shkeptncontext, "decline"))
    calls, serving = len(world.backend.calls), world.serving("production")
    world.flow.send(*evaluation)
    assert world.lane("production").active is None
    world.flow.send(world.approval(events[0].shkeptncontext, "approve"))
    assert len(world.backend.calls) == calls, "nothing was deployed by the replay or the second approval"
    assert world.serving("production") == serving


def test_a_forged_evaluation_done_cannot_promote_a_failed_build(world: World) -> None:
    """The gatekeeper decides on the verdict the ledger stored, not on the event's result."""
    world.flow.send(world.artifact("0.10.1"))
    world.records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
    slow = world.flow.send(world.artifact("0.10.2"))
    evaluation = next(e for e in by_type(slow, EventType.EVALUATION_DONE) if e.data.stage == "staging")  # type: ignore[attr-defined]
    forged = Event.from_json_dict({**evaluation.to_json_dict(), "id": "forged",
                                   "data": {**evaluation.to_json_dict()["data"], "result": "pass"}})
    world.flow.send(forged)
    assert world.serving("staging") == f"{CARTS}:0.10.1"
    assert world.serving("production") == f"{CARTS}:0.10.1"


def test_a_lost_test_unit_fails_at_the_tests_own_length() -> None:
    """Defect 9: a unit that never reports is failed after its test's length and a grace, not 630 s."""
    world = World("stages:\n  - name: dev\n    deployment_strategy: direct\n    test_strategy: functional\n")
    world.records.put_resource("sockshop", "dev", "carts", "tests.yaml",
                               "health: {path: /health, wait: 2s, timeout: 1s}\nfunctional:\n  - {path: /, timeout: 1s}\n")
    world.flow.hold_units = True
    world.flow.send(world.artifact("0.10.1"))
    run = world.lane("dev").active
    assert run is not None and run.phase is Phase.TESTING and run.test is not None
    allowed = (world.clock.current.replace(tzinfo=None) - world.clock.current.replace(tzinfo=None)) + timedelta(seconds=4 + 30)
    assert run.test.limit_s == 4.0
    world.clock.advance(allowed.total_seconds() + 2)
    world.flow.units.clear()  # the unit is lost
    events = world.flow.tick()
    finished = next(by_type(events, EventType.TESTS_FINISHED))
    assert finished.data.result == "fail" and "did not report within 34 s" in finished.data.message  # type: ignore[attr-defined]
    assert outcomes(events) == [("dev", "stopped")]
