"""The test service's contract (services/testflow.py), against the memory store: it reads the
run in the lane and the stage's tests.yaml; a deployment-finished moves the run to ``testing``
and hands the event to the launcher once; a failed or untested deployment is answered at once;
the unit's report stores its measurements and records ``tested``; a tick fails a lost unit."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.support.phase_walk import CONTEXT, STAGING, World, runner, walk

from sluice.core.events import DeploymentFinished, Event, Ping, TestsFinished
from sluice.core.ledger import Phase, Transition
from sluice.errors import PermanentError
from sluice.services.ledger import Ledger
from sluice.services.testflow import GRACE_S, TestOutcome


def deployed_event(world: World) -> Event:
    """The deployment-finished the run waits for (the one the deploy service stored)."""
    run = Ledger(world.records).lane(STAGING).run(CONTEXT)
    assert run is not None
    stored = run.stored(Transition.DEPLOYED)
    assert stored
    return Event.from_json_dict(stored[0])


def variant(event: Event, **changes: Any) -> Event:
    """``event`` with its payload changed (and its own id: another delivery)."""
    assert isinstance(event.data, DeploymentFinished)
    return dataclasses.replace(event, data=dataclasses.replace(event.data, **changes), id=event.id + "-v")


def test_a_deployment_starts_one_test_unit_and_answers_nothing_yet() -> None:
    """deployment-finished (pass) → the run is ``testing`` with the unit's key and deadline; the
    launcher gets the event once; a duplicate launches nothing."""
    world, _ = walk(until=Phase.DEPLOYED)
    event = deployed_event(world)
    assert world.test.handle(event) == []
    run = Ledger(world.records).lane(STAGING).run(CONTEXT)
    assert run is not None and run.phase is Phase.TESTING and run.test is not None
    assert run.test.key == event.dedup_key and run.test.limit_s > 0
    assert run.deadline > run.since
    assert [u["id"] for u in world.units] == [event.id]
    assert world.test.handle(event) == [] and len(world.units) == 1, "a duplicate starts nothing"


def test_a_failed_deployment_is_answered_at_once_without_tests() -> None:
    """deployment-finished (fail) → tests-finished (fail, naming why) and ``tested``; no unit starts."""
    world, _ = walk(until=Phase.DEPLOYED)
    failed = variant(deployed_event(world), result="fail", message="image pull error")
    (answer,) = world.test.handle(failed)
    assert isinstance(answer.data, TestsFinished)
    assert answer.data.result == "fail" and "image pull error" in answer.data.message
    assert world.units == [] and world.phase() is Phase.TESTED


def test_a_stage_without_tests_passes_its_tests_at_once() -> None:
    """No test strategy → tests-finished (pass, 'no test') straight away."""
    world, _ = walk(until=Phase.DEPLOYED)
    (answer,) = world.test.handle(variant(deployed_event(world), teststrategy=""))
    assert isinstance(answer.data, TestsFinished) and answer.data.result == "pass"
    assert "no test" in answer.data.message and world.units == []


def test_a_unit_that_cannot_start_fails_the_tests() -> None:
    """A launcher error ends in tests-finished (fail): the run never waits for a unit that does not exist."""
    world, _ = walk(until=Phase.DEPLOYED)

    def broken(event: dict[str, Any]) -> None:
        raise PermanentError("no worker can be started (test)")

    world.test.launcher = broken
    (answer,) = world.test.handle(deployed_event(world))
    assert isinstance(answer.data, TestsFinished) and answer.data.result == "fail"
    assert "could not start" in answer.data.message and world.phase() is Phase.TESTED


def test_the_unit_stores_its_measurements_and_reports_once() -> None:
    """run_unit: measurements stored for the builtin provider, ``tested`` recorded, tests-finished
    answered; run again (a redelivered unit), it answers the stored tests-finished and runs nothing."""
    world, _ = walk(until=Phase.TESTING)
    unit = Event.from_json_dict(world.units[-1])
    ran: list[str] = []

    def counting(deployed: DeploymentFinished, context: str) -> TestOutcome:
        ran.append(context)
        return runner(deployed, context)

    first = world.test.run_unit(unit, counting)
    assert first is not None and isinstance(first.data, TestsFinished) and first.data.result == "pass"
    assert world.records.measurements("sockshop", "staging", "carts", CONTEXT) == {"response_time_p95": 50.0}
    again = world.test.run_unit(unit, counting)
    assert again is not None and again.to_json_dict() == first.to_json_dict()
    assert ran == [CONTEXT] and world.phase() is Phase.TESTED


def test_a_unit_that_never_reports_is_failed_by_the_tick() -> None:
    """Past the test's length and a grace, a tick answers tests-finished (fail: lost or killed)."""
    world, _ = walk(until=Phase.TESTING)
    run = Ledger(world.records).lane(STAGING).run(CONTEXT)
    assert run is not None and run.test is not None
    tick = Event.new(Ping(), source="tick", id="t1", time=world.clock())
    assert world.test.handle(tick) == [], "not yet"
    world.clock.advance(run.test.limit_s + GRACE_S + 1)
    (answer,) = world.test.handle(tick)
    assert isinstance(answer.data, TestsFinished) and answer.data.result == "fail"
    assert "did not report" in answer.data.message and world.phase() is Phase.TESTED


def test_a_deployment_finished_for_a_stage_that_waits_for_nothing_creates_nothing() -> None:
    """A (failed) deployment-finished naming a project, stage or service without a run creates no
    record: nothing a request names that does not exist gets created."""
    world = World()
    before = world.snapshot()
    for project, stage, service in (("ghost", "staging", "carts"), ("sockshop", "nowhere", "carts"),
                                    ("sockshop", "staging", "carts")):
        event = Event.new(
            DeploymentFinished(project=project, stage=stage, service=service, result="fail", message="x"),
            source="test", id=f"df-{project}-{stage}", time="2026-01-01T00:00:00.000Z",
        )
        assert world.test.handle(event) == []
    assert world.snapshot() == before
