"""The evaluate and gatekeeper services' contracts (services/evaluate.py, services/gatekeeper.py),
against the memory store: what each reads (the run, slo.yaml, the history, the shipyard), what one
call writes (one ledger transition; the history once) and what it answers (one event, or the
stored one again)."""

from __future__ import annotations

import dataclasses

import pytest
from tests.support.phase_walk import CONTEXT, IMAGE, STAGING, World, sli_answer, walk

from sluice.core.events import (
    ApprovalFinished,
    ApprovalRejected,
    ApprovalTriggered,
    ConfigurationChange,
    Decision,
    EvaluationDone,
    Event,
    GetSli,
    Ping,
    StartEvaluation,
    TestsFinished,
)
from sluice.core.inconclusive import ATTEMPT_LABEL
from sluice.core.ledger import Phase, Transition
from sluice.core.strategies import OnTimeout
from sluice.errors import ValidationError
from sluice.services.ledger import Ledger

TWO_STAGES = """
stages:
  - name: staging
    deployment_strategy: blue_green_service
    test_strategy: performance
  - name: production
    deployment_strategy: blue_green_service
"""


def run(world: World):  # type: ignore[no-untyped-def]
    found = Ledger(world.records).lane(STAGING).run(CONTEXT)
    assert found is not None
    return found


def history(world: World) -> list[dict[str, object]]:
    return [h for h in world.records.evaluations("sockshop", "staging", "carts") if h.get("context") == CONTEXT]


# --- evaluate ----------------------------------------------------------------------------------------

def test_tests_finished_asks_the_provider_once_and_waits() -> None:
    """tests-finished → one get-sli (the SLO's indicators, the window, the default provider); the
    run is ``evaluating`` with the request's id and a deadline."""
    world, seen = walk(until=Phase.TESTED)
    finished = seen.last[0]
    assert isinstance(finished.data, TestsFinished)
    (request,) = world.evaluate.handle(finished)
    assert isinstance(request.data, GetSli)
    assert request.data.indicators == ["response_time_p95"] and request.data.sliProvider == "builtin"
    assert (request.data.start, request.data.end) == (finished.data.start, finished.data.end)
    assert request.data.deployment == "canary"
    waiting = run(world)
    assert waiting.phase is Phase.EVALUATING and waiting.evaluation is not None
    assert waiting.evaluation.request_id == request.id and waiting.deadline > waiting.since
    assert [e.to_json_dict() for e in world.evaluate.handle(finished)] == [request.to_json_dict()]


def test_an_answer_to_another_request_changes_nothing() -> None:
    """get-sli.done whose triggeredid is not the run's request: nothing written, nothing answered."""
    world, seen = walk(until=Phase.EVALUATING)
    stranger = dataclasses.replace(sli_answer(seen.last[0]), triggeredid="someone-else", id="x")
    before = world.snapshot()
    assert world.evaluate.handle(stranger) == []
    assert world.snapshot() == before


def test_the_answer_is_scored_stored_once_and_answered_again_on_repeat() -> None:
    """get-sli.done → evaluation-done (pass, score, per-SLI results); the verdict is stored with the
    run and the evaluation joins the history once, however often the answer comes."""
    world, seen = walk(until=Phase.EVALUATING)
    answer = sli_answer(seen.last[0])
    (done,) = world.evaluate.handle(answer)
    assert isinstance(done.data, EvaluationDone) and done.data.result == "pass"
    details = done.data.evaluationdetails
    assert details["score"] == 100 and [r["value"]["metric"] for r in details["indicatorResults"]] == ["response_time_p95"]
    judged = run(world)
    assert judged.phase is Phase.EVALUATED and judged.verdict is not None and judged.verdict.result == "pass"
    assert [e.to_json_dict() for e in world.evaluate.handle(answer)] == [done.to_json_dict()]
    assert len(history(world)) == 1


def test_tests_finished_of_an_earlier_attempt_is_ignored() -> None:
    """A tests-finished labelled with another attempt than the run's: nothing written, nothing answered."""
    world, seen = walk(until=Phase.TESTED)
    finished = seen.last[0]
    assert isinstance(finished.data, TestsFinished)
    old = dataclasses.replace(finished, id="old", data=dataclasses.replace(
        finished.data, labels={**finished.data.labels, ATTEMPT_LABEL: "2"}))
    before = world.snapshot()
    assert world.evaluate.handle(old) == []
    assert world.snapshot() == before


@pytest.mark.parametrize(("slo", "result", "note"), [
    (None, "pass", "no SLO found"),
    ("objectives: not-a-list\n", "fail", "the SLO is not valid"),
])
def test_without_a_usable_slo_the_tests_decide(slo: str | None, result: str, note: str) -> None:
    """No slo.yaml: the test result decides at once (no get-sli); an invalid one fails, saying so."""
    world = World()
    if slo is None:
        world.records.store.delete(next(r.name for r in world.records.store.list({}) if "slo.yaml" in r.data))
    else:
        world.records.put_resource("sockshop", "staging", "carts", "slo.yaml", slo)
    world, seen = walk(until=Phase.TESTED, world=world)
    (done,) = world.evaluate.handle(seen.last[0])
    assert isinstance(done.data, EvaluationDone) and done.data.result == result
    assert note in done.data.message and run(world).phase is Phase.EVALUATED


def test_a_provider_that_never_answers_fails_the_evaluation_on_the_tick() -> None:
    """Past the SLI timeout a tick answers evaluation-done (fail) naming the provider; a late answer
    then re-emits that verdict and adds nothing to the history."""
    world, seen = walk(until=Phase.EVALUATING)
    world.clock.advance(world.evaluate.sli_timeout_s + 1)
    (failed,) = world.evaluate.handle(Event.new(Ping(), source="tick", id="t", time=world.clock()))
    assert isinstance(failed.data, EvaluationDone) and failed.data.result == "fail"
    assert "no answer from SLI provider 'builtin'" in failed.data.message
    late = world.evaluate.handle(sli_answer(seen.last[0]))
    assert [e.to_json_dict() for e in late] == [failed.to_json_dict()] and len(history(world)) == 1


def test_a_quality_gate_for_an_unknown_stage_creates_nothing() -> None:
    """start-evaluation naming a stage the shipyard lacks: ValidationError naming it, no record written."""
    world = World()
    before = world.snapshot()
    gate = StartEvaluation(project="sockshop", stage="nowhere", service="carts",
                           start="2026-01-01T00:00:00Z", end="2026-01-01T00:05:00Z")
    with pytest.raises(ValidationError, match="nowhere"):
        world.evaluate.handle(Event.new(gate, source="test", id="g1", time="2026-01-01T00:06:00Z"))
    assert world.snapshot() == before


def test_a_quality_gate_is_a_run_of_its_own() -> None:
    """start-evaluation on a known stage: its own record, a get-sli for the window; the stage's lane is untouched."""
    world = World()
    gate = StartEvaluation(project="sockshop", stage="staging", service="carts",
                           start="2026-01-01T00:00:00Z", end="2026-01-01T00:05:00Z")
    event = Event.new(gate, source="test", id="g1", time="2026-01-01T00:06:00Z")
    (request,) = world.evaluate.handle(event)
    assert isinstance(request.data, GetSli) and request.data.start == gate.start
    ledger = Ledger(world.records)
    assert ledger.lane(STAGING).active is None
    gate_run = ledger.run(STAGING, event.shkeptncontext)
    assert gate_run is not None and gate_run.phase is Phase.EVALUATING


# --- gatekeeper --------------------------------------------------------------------------------------

def test_a_pass_that_asks_a_person_is_held_with_a_deadline() -> None:
    """evaluation-done (pass) on a stage with manual approval → approval.triggered; ``held`` until the approval timeout."""
    world, seen = walk(until=Phase.EVALUATED)
    (asked,) = world.gatekeeper.handle(seen.last[0])
    assert isinstance(asked.data, ApprovalTriggered) and asked.data.result == "pass" and asked.data.image == IMAGE
    held = run(world)
    assert held.phase is Phase.HELD and held.hold is not None and held.hold.on_timeout is OnTimeout.DECLINE
    assert held.deadline == held.hold.deadline > held.since


def test_the_gate_decides_on_the_stored_verdict_not_the_events_result() -> None:
    """A forged evaluation-done saying pass for a run whose stored verdict is fail: discarded."""
    world, seen = walk(until=Phase.EVALUATED, world=World(p95=1050.0))
    real = seen.last[0]
    assert isinstance(real.data, EvaluationDone) and real.data.result == "fail"
    forged = dataclasses.replace(real, id="forged", data=dataclasses.replace(real.data, result="pass"))
    (discard,) = world.gatekeeper.handle(forged)
    assert isinstance(discard.data, ConfigurationChange) and discard.data.action == "discard"
    assert run(world).phase is Phase.DISCARDING


def test_an_automatic_pass_promotes_and_delivers_to_the_next_stage() -> None:
    """pass on an automatic stage → promote here and set for the next stage, in one transition; a
    duplicate evaluation-done answers the same two events."""
    world, seen = walk(until=Phase.EVALUATED, world=World(shipyard=TWO_STAGES))
    promote, nxt = world.gatekeeper.handle(seen.last[0])
    assert isinstance(promote.data, ConfigurationChange) and promote.data.action == "promote"
    assert promote.data.stage == "staging"
    assert isinstance(nxt.data, ConfigurationChange) and nxt.data.action == "set"
    assert (nxt.data.stage, nxt.data.image) == ("production", IMAGE)
    assert run(world).phase is Phase.PROMOTING
    again = world.gatekeeper.handle(seen.last[0])
    assert [e.to_json_dict() for e in again] == [promote.to_json_dict(), nxt.to_json_dict()]


def test_an_unsigned_approval_is_rejected_and_changes_nothing() -> None:
    world, _ = walk(until=Phase.HELD)
    unsigned = Event.new(ApprovalFinished(project="sockshop", stage="staging", service="carts",
                                          decision=Decision.APPROVE),
                         source="test", id="u1", time="2026-01-01T00:00:30.000Z", context=CONTEXT)
    before = world.snapshot()
    (rejected,) = world.gatekeeper.handle(unsigned)
    assert isinstance(rejected.data, ApprovalRejected) and "unsigned" in rejected.data.reason
    assert world.snapshot() == before


def test_an_approval_nobody_gave_expires_by_its_on_timeout() -> None:
    """Past the approval timeout a tick decides (on_timeout: decline → discard), recording it as expired."""
    world, _ = walk(until=Phase.HELD)
    world.clock.advance(24 * 3600 + 1)
    (discard,) = world.gatekeeper.handle(Event.new(Ping(), source="tick", id="t", time=world.clock()))
    assert isinstance(discard.data, ConfigurationChange) and discard.data.action == "discard"
    ended = run(world)
    assert ended.phase is Phase.DISCARDING and ended.hold is not None and ended.hold.decision is not None
    assert ended.hold.decision.value == "expired" and ended.stored(Transition.APPROVED)


def test_a_quality_gate_labelled_with_an_attempt_still_evaluates() -> None:
    """A user's start-evaluation carrying the ledger's attempt label is evaluated all the same
    (a gate has one attempt; the label must not make it wait for ever)."""
    world = World()
    gate = StartEvaluation(project="sockshop", stage="staging", service="carts", labels={ATTEMPT_LABEL: "3"},
                           start="2026-01-01T00:00:00Z", end="2026-01-01T00:05:00Z")
    (request,) = world.evaluate.handle(Event.new(gate, source="test", id="g2", time="2026-01-01T00:06:00Z"))
    assert isinstance(request.data, GetSli)
