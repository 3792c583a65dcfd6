"""The ledger's typed records (pure): round trips, bounds, the horizon, one-way phases; and the
intake delivery's two phases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.intake import IntakeDelivery, IntakePhase, accept_delivery, mark_sent
from sluice.core.ledger import (
    FINISHED_LIMIT,
    LANE_BUDGET,
    SOURCES,
    Hold,
    HoldDecision,
    Judgement,
    Lane,
    Phase,
    Run,
    Transition,
    after,
    enter,
    record,
)
from sluice.core.strategies import OnTimeout
from sluice.core.verdict import Verdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run(n: int, phase: Phase = Phase.DONE, size: int = 10) -> Run:
    return Run(f"ctx-{n:05d}", f"img:{n}", phase, at(n), "" if phase is Phase.DONE else at(n + 60),
               event_time=at(n), replies={"finished": [{"id": str(n), "blob": "x" * size}]})


def test_a_lane_round_trips_with_every_part() -> None:
    """Every typed part of a lane survives its stored JSON form."""
    held = Run("c1", "img:1", Phase.HELD, at(0), at(60), event_time=at(0), labels={"a": "b"},
               verdict=Judgement(Verdict.PASS, 100.0, "e1", True, ("no data",)),
               hold=Hold(Verdict.PASS, at(0), at(60), OnTimeout.APPROVE, HoldDecision.EXPIRED, "", at(61), "expired"),
               attempt=2, replies={"decided@2": [{"id": "x"}]})
    lane = Lane(active=held, finished=(run(1),), horizon=at(-5))
    import json

    assert Lane.from_dict(json.loads(lane.to_json())) == lane


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 40_000), min_size=1, max_size=160))
def test_a_lane_forgets_the_oldest_within_its_budgets_and_moves_the_horizon(sizes: list[int]) -> None:
    """Whatever ends in it, a lane stays within its count and byte budgets; everything it forgot
    is stale (at or before the horizon), everything it keeps is known."""
    lane = Lane()
    for n, size in enumerate(sizes):
        lane = lane.remember(run(n, size=size))
    assert len(lane.finished) <= FINISHED_LIMIT
    assert lane.size() <= LANE_BUDGET or len(lane.finished) == 1
    kept = {r.context for r in lane.finished}
    for n in range(len(sizes)):
        context = f"ctx-{n:05d}"
        if context in kept:
            assert lane.knows(context) and not lane.stale(context, at(n))
        else:
            assert lane.stale(context, at(n)), f"{context} was forgotten but is not stale"
    assert not lane.stale("a-new-delivery", at(len(sizes) + 1))


def test_each_step_starts_only_from_its_phases_and_only_once() -> None:
    """``can`` is true only in a source phase and only until the step's events are stored (per attempt)."""
    for step, sources in SOURCES.items():
        for phase in Phase:
            fresh = Run("c", "i", phase, at(0), at(1))
            assert fresh.can(step) is (phase in sources)
            done = record(fresh, fresh.key(step), [])
            assert not done.can(step)
    again = Run("c", "i", Phase.DEPLOYED, at(0), at(1), attempt=2, replies={"testing": []})
    assert again.can(Transition.TESTING), "a retry's attempt passes the same steps again"


def test_enter_sets_the_deadline() -> None:
    moved = enter(Run("c", "i", Phase.DEPLOYING, at(0), at(1)), Phase.TESTING, at(10), 34)
    assert moved.phase is Phase.TESTING and moved.since == at(10) and moved.deadline == after(at(10), 34) == at(44)
    assert enter(moved, Phase.DONE, at(50), None).deadline == ""


def test_an_intake_delivery_moves_accepted_to_sent_once() -> None:
    """Accepting a known key changes nothing and returns it; sent from any other phase changes nothing."""
    d = IntakeDelivery("k1", ("e1",), IntakePhase.ACCEPTED, at(0))
    seen, known = accept_delivery({}, d, limit=2)
    assert known is None and seen["k1"].phase is IntakePhase.ACCEPTED
    again, known = accept_delivery(seen, d, limit=2)
    assert known == d and again == seen
    sent = mark_sent(seen, "k1")
    assert sent["k1"].phase is IntakePhase.SENT
    assert mark_sent(sent, "k1") == sent and mark_sent(sent, "unknown") == sent
    for n in range(2, 6):
        sent, _ = accept_delivery(sent, IntakeDelivery(f"k{n}", (), IntakePhase.ACCEPTED, at(n)), limit=2)
    assert sorted(sent) == ["k4", "k5"], "the oldest are forgotten first"


# --- properties of any lane (issue 16: the core state machine) --------------------------------------

PHASES = st.sampled_from(list(Phase))
TEXT = st.text(max_size=20)
RUNS = st.builds(
    lambda n, phase, attempt, labels, replies: Run(
        f"ctx-{n}", f"img:{n}", phase, at(n), "" if phase is Phase.DONE else at(n + 60), event_time=at(n),
        labels=labels, attempt=attempt, replies=replies,
    ),
    st.integers(0, 50), PHASES, st.integers(1, 5), st.dictionaries(TEXT, TEXT, max_size=3),
    st.dictionaries(st.sampled_from([t.value for t in Transition] + ["tested@2", "finished@3"]),
                    st.lists(st.dictionaries(TEXT, TEXT, max_size=2), max_size=2), max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(active=st.none() | RUNS, gates=st.lists(RUNS, max_size=3), finished=st.lists(RUNS, max_size=4),
       horizon=st.sampled_from(["", at(-10), at(3)]))
def test_any_lane_round_trips(active: Run | None, gates: list[Run], finished: list[Run], horizon: str) -> None:
    """Whatever it holds, a lane read back from its stored form is the same lane."""
    import json

    lane = Lane(active=active, gates=tuple(gates), finished=tuple(finished), horizon=horizon)
    assert Lane.from_dict(json.loads(lane.to_json())) == lane


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "retire"]), st.integers(0, 8), PHASES), max_size=40))
def test_put_and_retire_keep_every_delivery_in_one_place(ops: list[tuple[str, int, Phase]]) -> None:
    """Any sequence of put/retire: a delivery is in at most one of active, gates and finished (put
    only of a delivery not finished, as the ledger does); gates stay within their limit; a retired
    run is kept as DONE-only summary with its finished events only."""
    from sluice.core.ledger import GATES_LIMIT

    lane = Lane(active=Run("ctx-0", "img:0", Phase.DEPLOYING, at(0), at(60), event_time=at(0)))
    for op, n, phase in ops:
        context = f"ctx-{n}"
        current = lane.run(context)
        if op == "put" and not any(f.context == context for f in lane.finished):
            lane = lane.put(Run(context, f"img:{n}", phase if phase is not Phase.DONE else Phase.TESTED, at(n), at(n + 1),
                                event_time=at(n), replies={"deployed": [{"n": n}], "finished": [{"n": n}]}))
        elif op == "retire" and current is not None and current.phase is not Phase.DONE:
            ended = enter(current, Phase.DONE, at(n + 2), None)
            lane = lane.put(ended).retire(ended)
            summary = lane.finished[-1]
            assert summary.phase is Phase.DONE and set(summary.replies) <= {"finished"}
        places = [r.context for r in ((lane.active,) if lane.active else ())]
        places += [g.context for g in lane.gates] + [f.context for f in lane.finished]
        assert len(places) == len(set(places)), places
        assert len(lane.gates) <= GATES_LIMIT
