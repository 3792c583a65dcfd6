"""Steering a canary while the backend sets a step's weight (issue 19, point 3): pause, resume
and abort arrive while the deploy function is inside ``route`` (the run is ``deploying``). Each is
recorded on the ledger at once as its typed transition and takes effect when the weight-setting
finishes at the latest: a pause holds the step at its judgement, an abort sends the weight back
to 0 and ends the stage ``rolled_back`` naming who aborted. Duplicates and any order of the
steering events (Hypothesis) never promote an aborted canary and never leave a run stuck."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration.flow.test_canary_flow import KEY, PROD, artifact, dones, routes, world
from tests.support.flow import Flow, by_type

from sluice.core.approval_auth import sign
from sluice.core.events import ApprovalFinished, Decision, Event, EventType
from sluice.core.ledger import Phase
from sluice.services.ledger import Ledger


def steering(flow: Flow, context: str, decision: str, n: int) -> Event:
    event = Event.new(ApprovalFinished(project="sockshop", stage="production", service="carts",
                                             decision=Decision(decision)),
                      source="test", id=f"{decision}-{n}", time=flow.clock(), context=context)
    return sign(event, KEY, "alice")


def during_route(flow: Flow, backend: object, weight: int, act: Callable[[str], list[Event]]) -> list[Event]:
    """Run ``act(context)`` from inside the backend's route to ``weight`` (the deploy function is
    setting the weight: the run is deploying); what it answered is delivered afterwards."""
    answered: list[Event] = []
    original = backend.route  # type: ignore[attr-defined]

    def route(placement, canary_weight):  # type: ignore[no-untyped-def]
        if canary_weight == weight and not answered:
            run = Ledger(flow.records).lane(PROD).active
            assert run is not None and run.phase is Phase.DEPLOYING
            answered.extend(act(run.context))
            answered.append(Event.new(ApprovalFinished(project="x", stage="y", service="z", decision=Decision.PAUSE),
                                      source="marker", id="marker", time=flow.clock()))  # says act ran
        return original(placement, canary_weight)

    backend.route = route  # type: ignore[attr-defined]
    return answered


def test_an_abort_while_the_weight_is_set_rolls_back_when_setting_ends() -> None:
    """Abort at step 2 (25 %) while the weight is set: recorded at once, and when the setting
    ends the weight goes back to 0 and the stage ends rolled_back, naming alice; no test or
    evaluation runs for the aborted step."""
    flow, backend, _ = world([100.0])
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()
    recorded: list[object] = []

    def abort(ctx: str) -> list[Event]:
        answered = flow.gatekeeper.handle(steering(flow, ctx, "abort", 1))
        recorded.append(Ledger(flow.records).lane(PROD).active)  # right after the abort, still deploying
        return answered

    answered = during_route(flow, backend, 25, abort)
    events = flow.send(artifact(flow, "0.10.3"))
    assert answered and answered[-1].id == "marker"
    (run,) = recorded
    assert run.phase is Phase.DEPLOYING and "aborted" in run.replies  # type: ignore[attr-defined]
    assert run.canary.aborted  # type: ignore[attr-defined]
    (done,) = dones(events)
    assert done.data.outcome == "rolled_back", done.data.message  # type: ignore[attr-defined]
    assert "aborted by alice at canary step 2 (25 %)" in done.data.message  # type: ignore[attr-defined]
    assert routes(backend)[-1] == 0 and 50 not in routes(backend) and 100 not in routes(backend)
    lane = Ledger(flow.records).lane(PROD)
    assert lane.active is None and lane.serving.primary_image.endswith(":0.10.1")
    ended = lane.finished[-1]
    assert ended.canary is not None and [h.weight for h in ended.canary.history] == [10]
    assert len([e for e in events if e.type is EventType.GET_SLI and "@" not in e.id]) <= 1


def test_a_pause_while_the_weight_is_set_holds_that_step() -> None:
    flow, backend, _ = world([100.0])
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()
    during_route(flow, backend, 25, lambda ctx: flow.gatekeeper.handle(steering(flow, ctx, "pause", 1)))
    events = flow.send(artifact(flow, "0.10.3"))
    assert dones(events) == [] and routes(backend) == [10, 25]
    run = Ledger(flow.records).lane(PROD).active
    assert run is not None and run.phase is Phase.HELD and run.canary is not None and run.canary.step == 1
    assert list(by_type(events, EventType.APPROVAL_TRIGGERED))
    (done,) = dones(flow.send(steering(flow, run.context, "resume", 2)))
    assert done.data.outcome == "promoted" and routes(backend)[-3:] == [50, 100, 0]  # type: ignore[attr-defined]


def test_a_resume_after_a_pause_both_while_the_weight_is_set_goes_on() -> None:
    flow, backend, _ = world([100.0])
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()

    def both(ctx: str) -> list[Event]:
        return [*flow.gatekeeper.handle(steering(flow, ctx, "pause", 1)),
                *flow.gatekeeper.handle(steering(flow, ctx, "resume", 2))]

    during_route(flow, backend, 25, both)
    (done,) = dones(flow.send(artifact(flow, "0.10.3")))
    assert done.data.outcome == "promoted" and routes(backend)[:3] == [10, 25, 50]  # type: ignore[attr-defined]


def test_an_older_pause_delivered_after_a_newer_resume_changes_nothing() -> None:
    """Reordered steering: the newest decision (by its signed time) stands."""
    flow, backend, _ = world([100.0])
    flow.send(artifact(flow, "0.10.1"))

    def reordered(ctx: str) -> list[Event]:
        pause = steering(flow, ctx, "pause", 1)
        resume = steering(flow, ctx, "resume", 2)  # later time
        return [*flow.gatekeeper.handle(resume), *flow.gatekeeper.handle(pause)]

    during_route(flow, backend, 25, reordered)
    (done,) = dones(flow.send(artifact(flow, "0.10.3")))
    assert done.data.outcome == "promoted"  # type: ignore[attr-defined]


STEER = st.sampled_from(["pause", "resume", "abort"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.tuples(st.sampled_from([10, 25, 50, None]), STEER, st.integers(1, 3)), min_size=1, max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_property_steering_while_weights_are_set_under_duplicates_and_reorder(
    plan: list[tuple[int | None, str, int]], order: object,
) -> None:
    """Steering events (each sent 1-3 times, the copies of all in a shuffled order) arrive while a
    step's weight is set (10/25/50) or after the walk was started (None). Whatever the order:
    one outcome; an abort that arrived before the promotion began ends rolled_back at weight 0
    naming the aborter; otherwise after resuming what is held, the candidate is promoted;
    the lane is free at the end."""
    import random

    assert isinstance(order, random.Random)
    flow, backend, _ = world([100.0])
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()
    pending: dict[int | None, list[Event]] = {}
    n = 0
    original = backend.route
    aborted_early = [False]

    def copies(ctx: str, at: int | None) -> list[Event]:
        nonlocal n
        out: list[Event] = []
        for when, decision, times in plan:
            if when != at:
                continue
            n += 1
            event = steering(flow, ctx, decision, n)
            out.extend([event] * times)
        order.shuffle(out)
        return out

    def route(placement, canary_weight):  # type: ignore[no-untyped-def]
        run = Ledger(flow.records).lane(PROD).active
        if run is not None and run.phase is Phase.DEPLOYING and canary_weight in (10, 25, 50) \
                and canary_weight not in pending:
            pending[canary_weight] = []
            for event in copies(run.context, canary_weight):
                if event.data.decision == "abort":  # type: ignore[attr-defined]
                    aborted_early[0] = True
                pending[canary_weight].extend(flow.gatekeeper.handle(event))
        return original(placement, canary_weight)

    backend.route = route  # type: ignore[method-assign]
    events = flow.send(artifact(flow, "0.10.3"))
    for answered in pending.values():
        events += flow.send(*answered)
    context = events[0].shkeptncontext
    late = copies(context, None)
    still_running = Ledger(flow.records).lane(PROD).active is not None
    aborted_late = still_running and any(e.data.decision == "abort" for e in late)  # type: ignore[attr-defined]
    events += flow.send(*late)
    for i in range(6):  # a person resumes whatever is still held
        run = Ledger(flow.records).lane(PROD).active
        if run is None:
            break
        assert run.phase is Phase.HELD, run.phase  # nothing else waits: the flow ran to its end
        events += flow.send(steering(flow, context, "resume", 100 + i))
    lane = Ledger(flow.records).lane(PROD)
    assert lane.active is None and not lane.queue
    outcomes = {d.id: d.data.outcome for d in dones(events)}  # type: ignore[attr-defined]
    assert len(outcomes) == 1, outcomes
    (outcome,) = outcomes.values()
    walked = routes(backend)
    if aborted_early[0] or aborted_late:
        assert outcome == "rolled_back" and walked[-1] == 0 and 100 not in walked
        assert lane.serving.primary_image.endswith(":0.10.1") and lane.serving.canary_weight == 0
        assert "aborted by alice" in lane.finished[-1].reason
        if aborted_early[0]:  # aborted while a weight was set: no later step was set
            first = min(w for w, d, _ in plan if d == "abort" and w is not None)
            assert max(walked) == first
    else:
        assert outcome == "promoted" and lane.serving.primary_image.endswith(":0.10.3")
        assert [w for i, w in enumerate(walked) if i == 0 or walked[i - 1] != w] == [10, 25, 50, 100, 0]


def test_an_abort_of_a_held_step_rolls_back_and_names_the_person() -> None:
    """Paused, judged and held: an abort then is a roll-back at weight 0 (not a decline), once."""
    flow, backend, _ = world([100.0])
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()
    during_route(flow, backend, 10, lambda ctx: flow.gatekeeper.handle(steering(flow, ctx, "pause", 1)))
    flow.send(artifact(flow, "0.10.3"))
    run = Ledger(flow.records).lane(PROD).active
    assert run is not None and run.phase is Phase.HELD
    abort = steering(flow, run.context, "abort", 2)
    (done,) = dones(flow.send(abort))
    assert done.data.outcome == "rolled_back" and "aborted by alice at canary step 1 (10 %)" in done.data.message  # type: ignore[attr-defined]
    assert routes(backend)[-1] == 0 and dones(flow.send(abort)) in ([], [done])


def test_pauses_and_resumes_past_the_limit_are_refused_and_the_lane_stays_bounded() -> None:
    """Each remembered pause/resume is a key on the run: past STEERING_LIMIT more are refused."""
    from sluice.core.ledger import STEERING_LIMIT

    flow, _backend, _ = world([100.0], tests="none")
    context = flow.send(artifact(flow, "0.10.1"))[0].shkeptncontext  # soaks at 10 %
    for n in range(STEERING_LIMIT + 5):
        flow.send(steering(flow, context, "pause" if n % 2 else "resume", n))
    run = Ledger(flow.records).lane(PROD).active
    assert run is not None and run.steered() == STEERING_LIMIT
    assert run.canary is not None and run.canary.paused  # the last one applied: n = 63, a pause
    assert run.canary.steered.endswith(f"|pause-{STEERING_LIMIT - 1}")  # the later ones changed nothing
