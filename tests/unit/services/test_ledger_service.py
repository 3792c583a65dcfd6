"""The ledger service (services/ledger.py) over the memory store: ``advance`` checks the phase,
applies the effect and stores its events in one compare-and-swap write; a conflict re-reads and
re-applies; a wrong phase writes nothing; a repeat answers the stored events. A Hypothesis state
machine drives any sequence of claims, transitions, repeats and ends through it and checks the
lane's invariants after every step."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sluice.adapters.state.memory import MemoryStore
from sluice.core import ledger as core_ledger
from sluice.core.ledger import (
    QUEUE_LIMIT,
    SOURCES,
    Lane,
    Phase,
    Queued,
    Run,
    Transition,
    before,
    enter,
)
from sluice.errors import RetryableError
from sluice.ports.backend import Placement
from sluice.ports.state import MAX_RECORD_BYTES, Record
from sluice.services.ledger import Ledger
from sluice.services.records import Records

HERE = Placement("shop", "staging", "carts")
T0 = "2026-01-01T00:00:00.000Z"

#: The phase each transition leads to in these tests (the documented diagram's main line; the
#: services choose among the documented targets — see test_phase_transition_table.py).
NEXT: dict[Transition, Phase] = {
    Transition.DEPLOYED: Phase.DEPLOYED,
    Transition.TESTING: Phase.TESTING,
    Transition.TESTED: Phase.TESTED,
    Transition.EVALUATING: Phase.EVALUATING,
    Transition.EVALUATED: Phase.EVALUATED,
    Transition.DECIDED: Phase.HELD,
    Transition.APPROVED: Phase.PROMOTING,
    Transition.FINISHED: Phase.DONE,
    Transition.PAUSED: Phase.EVALUATED,
    Transition.RESUMED: Phase.EVALUATED,
    Transition.ABORTED: Phase.DISCARDING,
}


def moving(step: Transition, now: str, size: int = 10, calls: list[str] | None = None) -> Any:
    """An effect that moves the run as ``NEXT`` says (retiring it when DONE) and answers one event."""

    def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
        if calls is not None:
            calls.append(run.context)
        reply = [{"id": f"{run.context}/{run.key(step)}", "pad": "x" * size}]
        moved = enter(run, NEXT[step], now, None if NEXT[step] is Phase.DONE else 60.0)
        if moved.phase is Phase.DONE:
            return lane.put(moved).retire(moved), reply
        return lane.put(moved), reply

    return effect


def claim(context: str, now: str, phase: Phase = Phase.DEPLOYING) -> Any:
    def mutate(lane: Lane) -> tuple[Lane, str]:
        if lane.knows(context) or lane.stale(context, now):
            return lane, "known"
        if lane.active is not None:
            if len(lane.queue) >= QUEUE_LIMIT:
                return lane, "full"
            return replace(lane, queue=(*lane.queue, Queued(context, "img", {}, now))), "queued"
        return replace(lane, active=Run(context, "img", phase, now, "", event_time=now)), "claimed"

    return mutate


def at(n: int) -> str:
    return f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z"


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(Records(MemoryStore()))


def test_a_transition_from_its_phase_applies_once_and_stores_its_events(ledger: Ledger) -> None:
    """The first call applies the effect and stores its events; a repeat changes nothing and answers them."""
    ledger.change(HERE, claim("c1", T0))
    calls: list[str] = []
    first = ledger.advance(HERE, "c1", Transition.DEPLOYED, moving(Transition.DEPLOYED, T0, calls=calls))
    assert first.applied and first.known and first.replies == [{"id": "c1/deployed", "pad": "x" * 10}]
    version = ledger.records.store.get(ledger.name(HERE)[0]).resource_version  # type: ignore[union-attr]
    again = ledger.advance(HERE, "c1", Transition.DEPLOYED, moving(Transition.DEPLOYED, at(9), calls=calls))
    assert (again.applied, again.replies) == (False, first.replies)
    assert calls == ["c1"], "the effect ran once"
    assert ledger.records.store.get(ledger.name(HERE)[0]).resource_version == version  # type: ignore[union-attr]
    assert ledger.run(HERE, "c1").phase is Phase.DEPLOYED  # type: ignore[union-attr]


@pytest.mark.parametrize("step", list(Transition))
@pytest.mark.parametrize("phase", list(Phase))
def test_a_transition_from_a_wrong_phase_writes_nothing(ledger: Ledger, phase: Phase, step: Transition) -> None:
    """Every (phase, transition) pair: from a source phase it applies, from any other it writes
    nothing, runs no effect and answers no events."""
    ledger.change(HERE, claim("c1", T0, phase))
    name = ledger.name(HERE)[0]
    before_write = ledger.records.store.get(name)
    calls: list[str] = []
    done = ledger.advance(HERE, "c1", step, moving(step, at(5), calls=calls))
    after_write = ledger.records.store.get(name)
    if phase in SOURCES[step]:
        assert done.applied and calls == ["c1"] and after_write != before_write
        assert ledger.run(HERE, "c1").phase is NEXT[step]  # type: ignore[union-attr]
    else:
        assert (done.applied, done.replies, calls) == (False, [], [])
        assert after_write == before_write


def test_an_unknown_delivery_changes_nothing(ledger: Ledger) -> None:
    """A transition for a delivery the stage does not know: not applied, not known, nothing written."""
    done = ledger.advance(HERE, "nobody", Transition.DEPLOYED, moving(Transition.DEPLOYED, T0))
    assert (done.applied, done.known, done.replies) == (False, False, [])
    assert ledger.records.store.list({}) == []


class RacingStore(MemoryStore):
    """Another writer moves the lane just before each of our first ``races`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.races: list[Any] = []

    def put(self, record: Record) -> Record:
        if self.races and record.resource_version is not None:
            race = self.races.pop(0)
            current = super().get(record.name)
            assert current is not None
            lane = race(Lane.from_dict(json.loads(current.data["lane"])))
            super().put(replace(current, data={"lane": lane.encode()}))
        return super().put(record)


def test_a_conflict_reapplies_the_transition_to_what_the_winner_wrote() -> None:
    """Lost compare-and-swap: the ledger re-reads and re-checks — the winner's change is kept and
    the transition applies on top of it."""
    store = RacingStore()
    ledger = Ledger(Records(store))
    ledger.change(HERE, claim("c1", T0))
    store.races.append(lambda lane: replace(lane, queue=(Queued("c2", "img:2", {}, T0),)))
    done = ledger.advance(HERE, "c1", Transition.DEPLOYED, moving(Transition.DEPLOYED, at(1)))
    assert done.applied
    lane = ledger.lane(HERE)
    assert [q.context for q in lane.queue] == ["c2"], "the other writer's change survived"
    assert lane.active is not None and lane.active.phase is Phase.DEPLOYED


def test_the_loser_of_a_race_gets_the_winners_events() -> None:
    """When the winner of the race did the same transition, the loser applies nothing and answers
    what the winner stored (a timeout tick and a late answer)."""
    store = RacingStore()
    ledger = Ledger(Records(store))
    ledger.change(HERE, claim("c1", T0))
    winner = moving(Transition.DEPLOYED, at(1), size=3)

    def race(lane: Lane) -> Lane:
        run = lane.active
        assert run is not None
        new, replies = winner(lane, run)
        moved = new.active
        assert moved is not None
        return new.put(replace(moved, replies={**moved.replies, "deployed": replies}))

    store.races.append(race)
    calls: list[str] = []
    done = ledger.advance(HERE, "c1", Transition.DEPLOYED, moving(Transition.DEPLOYED, at(2), size=7, calls=calls))
    assert not done.applied
    assert done.replies == [{"id": "c1/deployed", "pad": "xxx"}], "the winner's events, not ours"


def test_conflicts_without_end_give_up_with_a_retryable_error() -> None:
    """A lane that every attempt loses ends in RetryableError (the broker retries the delivery)."""
    store = RacingStore()
    ledger = Ledger(Records(store))
    ledger.change(HERE, claim("c1", T0))
    store.races.extend([lambda lane, n=n: replace(lane, horizon=at(n)) for n in range(50)])
    with pytest.raises(RetryableError):
        ledger.advance(HERE, "c1", Transition.DEPLOYED, moving(Transition.DEPLOYED, at(1)))


# --- any sequence of transitions keeps the lane's invariants --------------------------------------

CONTEXTS = [f"c{n}" for n in range(12)]
#: The main line of the diagram: the transition each phase waits for.
MAIN_LINE: dict[Phase, Transition] = {
    Phase.DEPLOYING: Transition.DEPLOYED, Phase.DEPLOYED: Transition.TESTING, Phase.TESTING: Transition.TESTED,
    Phase.TESTED: Transition.EVALUATING, Phase.EVALUATING: Transition.EVALUATED, Phase.EVALUATED: Transition.DECIDED,
    Phase.HELD: Transition.APPROVED, Phase.PROMOTING: Transition.FINISHED, Phase.DISCARDING: Transition.FINISHED,
}


class LaneMachine(RuleBasedStateMachine):
    """Claims, transitions (right or wrong phase), repeats and ends of a few deliveries, any order.
    The lane's budgets are made small (3 finished runs, 64 KiB) so that a short sequence already
    forgets runs and moves the horizon."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets = (core_ledger.FINISHED_LIMIT, core_ledger.LANE_BUDGET)
        core_ledger.FINISHED_LIMIT, core_ledger.LANE_BUDGET = 3, 64 * 1024
        self.ledger = Ledger(Records(MemoryStore()))
        self.clock = 0
        self.horizon = ""
        self.stored: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.ended: set[str] = set()
        self.times: dict[str, str] = {}

    def now(self) -> str:
        self.clock += 1
        return at(self.clock)

    @rule(context=st.sampled_from(CONTEXTS))
    def claim(self, context: str) -> None:
        """A set for ``context`` (again: a duplicate with its original event time, of any age)."""
        event_time = self.times.setdefault(context, self.now())
        self.ledger.change(HERE, claim(context, event_time))

    @rule(context=st.sampled_from(CONTEXTS), step=st.sampled_from(list(Transition)), size=st.integers(0, 30_000))
    def advance(self, context: str, step: Transition, size: int) -> None:
        lane = self.ledger.lane(HERE)
        run = lane.run(context)
        name = self.ledger.name(HERE)[0]
        version = (self.ledger.records.store.get(name) or Record(name)).resource_version
        done = self.ledger.advance(HERE, context, step, moving(step, self.now(), size=size))
        if run is None:
            assert not done.applied and not done.known
            return
        key = (context, run.key(step))
        if key in self.stored and run.phase is not Phase.DONE:
            assert not done.applied and done.replies == self.stored[key], "a repeat answers the stored events"
        if done.applied:
            assert run.phase in SOURCES[step] and key not in self.stored
            self.stored[key] = done.replies
            if NEXT[step] is Phase.DONE:
                self.ended.add(context)
        else:
            assert (self.ledger.records.store.get(name) or Record(name)).resource_version == version, "nothing written"

    @rule()
    def retry(self) -> None:
        """An inconclusive verdict re-runs the tests: the decision sends the run back to
        ``deployed`` as its next attempt (as the gatekeeper's on_inconclusive: retry does)."""
        run = self.ledger.lane(HERE).active
        if run is None or run.phase is not Phase.EVALUATED:
            return
        now = self.now()

        def again(lane: Lane, found: Run) -> tuple[Lane, list[dict[str, Any]]]:
            moved = replace(enter(found, Phase.DEPLOYED, now, 60.0), attempt=found.attempt + 1)
            return lane.put(moved), [{"id": f"{found.context}/retry@{found.attempt}"}]

        key = (run.context, run.key(Transition.DECIDED))
        done = self.ledger.advance(HERE, run.context, Transition.DECIDED, again)
        assert done.applied and key not in self.stored
        self.stored[key] = done.replies
        retried = self.ledger.lane(HERE).active
        assert retried is not None and retried.attempt == run.attempt + 1
        assert retried.can(Transition.TESTING), "the next attempt passes the same steps again"

    @rule(size=st.integers(0, 40_000))
    def complete(self, size: int) -> None:
        """The active run goes along the main line to its end (its last events ``size`` bytes)."""
        for _ in range(len(MAIN_LINE)):
            run = self.ledger.lane(HERE).active
            if run is None:
                return
            step = MAIN_LINE[run.phase]
            self.advance(run.context, step, size if step is Transition.FINISHED else 10)

    @rule()
    def dequeue(self) -> None:
        """The stage is free: the head of the queue takes it (as the deploy service does when a run ends)."""
        now = self.now()

        def mutate(lane: Lane) -> tuple[Lane, None]:
            if lane.active is not None or not lane.queue:
                return lane, None
            head = lane.queue[0]
            return replace(lane, queue=lane.queue[1:], active=Run(head.context, head.image, Phase.DEPLOYING, now, "",
                                                                 event_time=head.queued_at)), None

        self.ledger.change(HERE, mutate)

    def teardown(self) -> None:
        core_ledger.FINISHED_LIMIT, core_ledger.LANE_BUDGET = self.budgets

    @invariant()
    def lane_is_sound(self) -> None:
        record = self.ledger.records.store.get(self.ledger.name(HERE)[0])
        if record is None:
            return
        assert sum(len(v) for v in record.data.values()) <= MAX_RECORD_BYTES
        lane = self.ledger.lane(HERE)
        assert len(lane.finished) <= core_ledger.FINISHED_LIMIT and len(lane.queue) <= QUEUE_LIMIT
        assert lane.size() <= core_ledger.LANE_BUDGET or not lane.finished, "within the byte budget"
        places = [r.context for r in ((lane.active,) if lane.active else ())] + [q.context for q in lane.queue]
        places += [g.context for g in lane.gates] + [f.context for f in lane.finished]
        assert len(places) == len(set(places)), f"a delivery is in two places: {places}"
        assert all(f.phase is Phase.DONE for f in lane.finished)
        for context in self.ended:  # a finished run never reopens: it is DONE, or forgotten behind the horizon
            run = lane.run(context)
            assert run is None or run.phase is Phase.DONE
            assert not (lane.active and lane.active.context == context) and all(q.context != context for q in lane.queue)
        if self.horizon:
            assert lane.horizon and not before(lane.horizon, self.horizon), "the horizon never moves back"
        self.horizon = lane.horizon


LaneMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=50, deadline=None)
TestLaneMachine = LaneMachine.TestCase
