"""Steering a running canary (pause, resume, abort: the PAUSED, RESUMED and ABORTED transitions)
from each phase of its first step, through the real gatekeeper: from a phase a step is under way
in, pause marks the run paused, resume clears it, abort discards (weight back to 0); while the
backend changes the weight (deploying) a steer is recorded and an abort waits for the setting to
end (the deploy function then discards). A paused canary holds at its next judged step instead of
moving on."""

from __future__ import annotations

import pytest
from tests.support.phase_walk import CONTEXT, STAGING, World, approval, walk

from sluice.core.events import ApprovalTriggered, ConfigurationChange, Decision
from sluice.core.ledger import SOURCES, Phase, Transition
from sluice.services.ledger import Ledger

CANARY = """
stages:
  - name: staging
    deployment_strategy: canary
    test_strategy: performance
    canary: {steps: [10, 50], step_duration: 1m}
"""
STEER = {Decision.PAUSE: Transition.PAUSED, Decision.RESUME: Transition.RESUMED, Decision.ABORT: Transition.ABORTED}
FIRST_STEP = [Phase.DEPLOYING, Phase.DEPLOYED, Phase.TESTING, Phase.TESTED, Phase.EVALUATING, Phase.EVALUATED]


def canary_at(phase: Phase) -> World:
    world, _ = walk(until=phase, world=World(shipyard=CANARY, unreachable=phase is Phase.DEPLOYING))
    return world


def run(world: World):  # type: ignore[no-untyped-def]
    found = Ledger(world.records).lane(STAGING).run(CONTEXT)
    assert found is not None and found.canary is not None
    return found


@pytest.mark.parametrize("decision", list(STEER), ids=lambda d: d.value)
@pytest.mark.parametrize("phase", FIRST_STEP, ids=lambda p: p.value)
def test_steering_from_each_phase_of_a_step(phase: Phase, decision: Decision) -> None:
    world = canary_at(phase)
    before = world.snapshot()
    out = world.gatekeeper.handle(approval(decision))
    if phase not in SOURCES[STEER[decision]]:
        assert out == [] and world.snapshot() == before, f"{decision.value} in {phase.value} changed something"
        return
    steered = run(world)
    if decision is Decision.ABORT and phase is Phase.DEPLOYING:
        assert out == [] and steered.phase is Phase.DEPLOYING and steered.canary.aborted, "recorded, not yet sent"
        return
    if decision is Decision.ABORT:
        (discard,) = out
        assert isinstance(discard.data, ConfigurationChange) and discard.data.action == "discard"
        assert steered.phase is Phase.DISCARDING and steered.canary.stopped.startswith("aborted by alice")
        return
    assert out == [] and steered.phase is phase
    assert steered.canary.paused is (decision is Decision.PAUSE)
    again = world.snapshot()
    assert world.gatekeeper.handle(approval(decision)) == [] and world.snapshot() == again, "a repeat changes nothing"


def test_a_paused_canary_holds_at_its_next_judged_step() -> None:
    """Paused while its first step is tested, the canary's passing step waits for a person instead
    of moving to the next weight."""
    world, seen = walk(until=Phase.EVALUATED, world=World(shipyard=CANARY))
    assert run(world).canary.step == 0
    unpaused = canary_at(Phase.EVALUATED)
    (next_step,) = unpaused.gatekeeper.handle(seen.last[0])
    assert isinstance(next_step.data, ConfigurationChange) and next_step.data.value == 50, "not paused: the next step"
    world.gatekeeper.handle(approval(Decision.PAUSE))
    (asked,) = world.gatekeeper.handle(seen.last[0])
    assert isinstance(asked.data, ApprovalTriggered)
    held = run(world)
    assert held.phase is Phase.HELD and held.canary.step == 0
