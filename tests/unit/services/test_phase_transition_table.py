"""Every (phase, event) pair of a run, through the real services: the one event a phase waits
for moves the run to the documented next phase; every other event changes nothing in the store
and answers at most what the run already stored (never a new event).

One reference walk drives a blue/green stage with a manual approval through every phase
(deterministic clock and ids, so every walk emits the same events); for each phase a fresh world
is walked to that phase and given each trigger event of the reference walk.
"""

from __future__ import annotations

import pytest
from tests.support.phase_walk import IMAGE, STAGING, TRIGGERS, Trigger, walk

from sluice.adapters.backends.noop import NoopBackend
from sluice.core.events import EventType
from sluice.core.ledger import Phase

_, REFERENCE = walk()
_, DECLINED = walk(decline=True)
TRIGGER_EVENTS = {**DECLINED.events, **REFERENCE.events}
EMITTED = {**REFERENCE.emitted, **DECLINED.emitted}

#: What each event answers in the phase it is for (the transition's documented effect).
ANSWERS: dict[str, list[EventType]] = {
    "set": [EventType.DEPLOYMENT_FINISHED],
    "deployment-finished": [],  # the unit is launched; it answers later
    "test unit reports": [EventType.TESTS_FINISHED],
    "tests-finished": [EventType.GET_SLI],
    "get-sli.done": [EventType.EVALUATION_DONE],
    "evaluation-done": [EventType.APPROVAL_TRIGGERED],
    "approve": [EventType.CONFIGURATION_CHANGE],  # promote (this stage is the last: no next set)
    "decline": [EventType.CONFIGURATION_CHANGE],  # discard
    "promote": [EventType.DONE],
    "discard": [EventType.DONE],
}

#: Where each world stops, and on which branch (approve or decline).
PHASES = [
    (Phase.DEPLOYING, False), (Phase.DEPLOYED, False), (Phase.TESTING, False), (Phase.TESTED, False),
    (Phase.EVALUATING, False), (Phase.EVALUATED, False), (Phase.HELD, False), (Phase.PROMOTING, False),
    (Phase.DISCARDING, True), (None, False), (None, True),
]


def test_the_reference_walk_passes_every_phase() -> None:
    """The walk reaches every phase of the diagram in core/ledger.py, ending promoted (or rolled back)."""
    world, _ = walk()
    assert world.phase() is Phase.DONE
    assert world.backend.serving(STAGING) == IMAGE
    declined, _ = walk(decline=True)
    assert declined.phase() is Phase.DONE


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: t.name)
@pytest.mark.parametrize(("phase", "decline"), PHASES, ids=lambda p: str(getattr(p, "value", p)))
def test_an_event_moves_only_the_phase_it_is_for(phase: Phase | None, decline: bool, trigger: Trigger) -> None:
    """In the phase it is for, the event moves the run to the documented next phase and answers the
    documented events; in any other
    phase it writes nothing and answers only events the run already stored (never a new one)."""
    world, _ = walk(until=phase, decline=decline)
    if phase is None:
        assert world.phase() is Phase.DONE
    event = TRIGGER_EVENTS[trigger.name]
    before = world.snapshot()
    if phase is trigger.due:
        if phase is Phase.DEPLOYING:
            world.backend = NoopBackend()
            world.deploy.backend = world.backend
        out = trigger.deliver(world, event)
        assert world.phase() is trigger.then, f"{trigger.name} in {phase}: now {world.phase()}"
        assert world.snapshot() != before
        assert [e.type for e in out] == ANSWERS[trigger.name]
        return
    out = trigger.deliver(world, event)
    assert world.phase() is (phase or Phase.DONE)
    assert world.snapshot() == before, f"{trigger.name} in {phase}: the store changed"
    new = [e.type.value for e in out if e.id not in EMITTED]
    assert not new, f"{trigger.name} in {phase} emitted new events {new}"


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: t.name)
def test_a_repeat_answers_what_the_first_delivery_answered(trigger: Trigger) -> None:
    """Delivered again right after it moved the run, an event changes nothing and answers the same events."""
    decline = trigger.name in ("decline", "discard")
    world, _ = walk(until=trigger.due, decline=decline)
    if trigger.due is Phase.DEPLOYING:
        world.backend = NoopBackend()
        world.deploy.backend = world.backend
    event = TRIGGER_EVENTS[trigger.name]
    first = [e.to_json_dict() for e in trigger.deliver(world, event)]
    before = world.snapshot()
    again = [e.to_json_dict() for e in trigger.deliver(world, event)]
    assert world.snapshot() == before
    assert again == first
