"""The deploy service's contract (services/deploy.py), against the memory store and the noop
backend: it reads the project (shipyard, onboarded services) and the stage's lane; a ``set``
claims a free stage (or queues behind the delivery that holds it) in one write, runs the plan of
core/deployment.py on the backend and answers one deployment-finished; ``promote``/``discard``
are obeyed only for a run the gatekeeper moved there, and release the stage to the next queued
delivery in the same write; a tick ends a deployment that never finished."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.phase_walk import CONTEXT, IMAGE, STAGING, World, artifact, runner, walk

from sluice.core.events import (
    ConfigurationChange,
    DeploymentFinished,
    Done,
    Event,
    GetSli,
    Outcome,
    Ping,
)
from sluice.core.inconclusive import ATTEMPT_LABEL
from sluice.core.ledger import QUEUE_LIMIT, Phase
from sluice.core.verdict import Verdict
from sluice.errors import NotFoundError, RetryableError, ValidationError
from sluice.ports.backend import Slot
from sluice.services.ledger import Ledger

OTHER = "docker.io/keptnexamples/carts:0.10.1"


def another(n: int, image: str = OTHER) -> Event:
    """A second delivery's set for the same stage."""
    change = ConfigurationChange(project="sockshop", service="carts", image=image)
    return Event.new(change, source="test", id=f"artifact-other-{n}", time=f"2026-01-01T00:00:{n % 60:02d}.000Z")


def lane(world: World):  # type: ignore[no-untyped-def]
    return Ledger(world.records).lane(STAGING)


def test_a_set_on_a_free_stage_claims_it_deploys_and_answers_once() -> None:
    """An empty blue/green stage: primary and canary get the image, the canary all traffic; one
    deployment-finished (pass, URLs, strategies); the run is ``deployed``; the serving state recorded."""
    world = World()
    (answer,) = world.deploy.handle(artifact())
    data = answer.data
    assert isinstance(data, DeploymentFinished) and data.result == Verdict.PASS.value
    assert (data.image, data.tag) == ("docker.io/keptnexamples/carts", "0.10.3")
    assert data.deploymentURILocal == "http://carts-canary.sockshop-staging"
    assert data.deploymentURIPublic == "http://carts.sockshop-staging"
    assert (data.teststrategy, data.deploymentstrategy) == ("performance", "blue_green_service")
    assert answer.triggeredid == artifact().id and answer.shkeptncontext == CONTEXT
    assert [(c.method, c.slot, c.image, c.canary_weight) for c in world.backend.calls] == [
        ("deploy", Slot.PRIMARY, IMAGE, None), ("deploy", Slot.CANARY, IMAGE, None), ("route", None, None, 100)]
    found = lane(world)
    assert found.active is not None and found.active.phase is Phase.DEPLOYED
    assert (found.serving.primary_image, found.serving.candidate_image, found.serving.canary_weight) == (IMAGE, IMAGE, 100)


def test_a_duplicate_set_answers_the_stored_event_and_deploys_nothing() -> None:
    world = World()
    first = [e.to_json_dict() for e in world.deploy.handle(artifact())]
    calls = len(world.backend.calls)
    assert [e.to_json_dict() for e in world.deploy.handle(artifact())] == first
    assert len(world.backend.calls) == calls


def test_a_set_while_the_stage_is_held_queues_and_answers_nothing() -> None:
    """A second delivery waits (first come, first served): no backend call, no event; its
    duplicate is not queued twice."""
    world, _ = walk(until=Phase.DEPLOYED)
    calls = len(world.backend.calls)
    assert world.deploy.handle(another(1)) == []
    assert world.deploy.handle(another(1)) == []
    assert [q.image for q in lane(world).queue] == [OTHER]
    assert len(world.backend.calls) == calls


def test_a_full_queue_refuses_with_an_explicit_done() -> None:
    """Past QUEUE_LIMIT waiting deliveries, a set is answered by done (failed) naming why; nothing queued."""
    world, _ = walk(until=Phase.DEPLOYED)
    for n in range(QUEUE_LIMIT):
        world.deploy.handle(another(n))
    (refused,) = world.deploy.handle(another(QUEUE_LIMIT))
    assert isinstance(refused.data, Done) and refused.data.outcome == Outcome.FAILED.value
    assert f"{QUEUE_LIMIT} deliveries already wait" in refused.data.message
    assert len(lane(world).queue) == QUEUE_LIMIT


def test_a_set_for_a_service_that_is_not_onboarded_creates_nothing() -> None:
    """Unknown project or service: NotFoundError naming it; no record is written."""
    world = World()
    before = world.snapshot()
    for project, service in (("ghost", "carts"), ("sockshop", "orders")):
        change = ConfigurationChange(project=project, service=service, image=IMAGE)
        with pytest.raises(NotFoundError, match=project if project == "ghost" else service):
            world.deploy.handle(Event.new(change, source="test", id=f"x-{project}-{service}", time="2026-01-01T00:00:00Z"))
    unknown_stage = ConfigurationChange(project="sockshop", service="carts", image=IMAGE, stage="nowhere")
    with pytest.raises(ValidationError, match="nowhere"):
        world.deploy.handle(Event.new(unknown_stage, source="test", id="x-stage", time="2026-01-01T00:00:00Z"))
    assert world.snapshot() == before and world.backend.calls == []


def test_a_candidate_that_never_gets_ready_is_reported_not_left_claimed() -> None:
    """A permanent backend error: deployment-finished (fail, naming the image); the run moves on to ``deployed``."""
    world = World()
    world.backend.fail_images.add(IMAGE)
    (answer,) = world.deploy.handle(artifact())
    assert isinstance(answer.data, DeploymentFinished) and answer.data.result == Verdict.FAIL.value
    assert IMAGE in answer.data.message and world.phase() is Phase.DEPLOYED
    assert lane(world).serving.primary_image == "", "a failed deployment changes no serving state"


def test_an_unreachable_platform_is_retried_then_ended_by_the_tick() -> None:
    """A retryable error propagates (the broker retries), the run stays ``deploying``; a redelivery
    deploys; past the phase's deadline a tick answers deployment-finished (fail) instead."""
    world, _ = walk(until=Phase.DEPLOYING)
    assert world.phase() is Phase.DEPLOYING
    with pytest.raises(RetryableError):
        world.deploy.handle(artifact())
    tick = Event.new(Ping(), source="tick", id="t1", time=world.clock())
    assert world.deploy.handle(tick) == [], "not yet expired"
    world.clock.advance(world.deploy.phase_s + 1)
    (answer,) = world.deploy.handle(tick)
    assert isinstance(answer.data, DeploymentFinished) and answer.data.result == Verdict.FAIL.value
    assert "did not finish within" in answer.data.message and world.phase() is Phase.DEPLOYED


def test_promote_is_obeyed_only_for_a_promoting_run() -> None:
    """A promote for a run in any other phase changes nothing and calls no backend."""
    world, seen = walk(until=Phase.PROMOTING)
    promote = next(e for e in seen.last if isinstance(e.data, ConfigurationChange))
    early, _ = walk(until=Phase.HELD)
    calls = len(early.backend.calls)
    before = early.snapshot()
    assert early.deploy.handle(promote) == []
    assert early.snapshot() == before and len(early.backend.calls) == calls
    (done,) = world.deploy.handle(promote)
    assert isinstance(done.data, Done) and done.data.outcome == Outcome.PROMOTED.value
    assert [(c.method, c.slot, c.image, c.canary_weight) for c in world.backend.calls[-3:]] == [
        ("deploy", Slot.PRIMARY, IMAGE, None), ("route", None, None, 0), ("scale_to_zero", Slot.CANARY, None, None)]
    released = lane(world)
    assert released.active is None and released.finished[-1].outcome == Outcome.PROMOTED.value
    assert (released.serving.primary_image, released.serving.last_good_image, released.serving.candidate_image) == (
        IMAGE, IMAGE, "")


def test_the_end_of_a_run_hands_the_stage_to_the_next_queued_delivery() -> None:
    """finished releases the stage and claims it for the head of the queue in the same write; the
    queued set is answered again so the deploy function deploys it."""
    world, seen = walk(until=Phase.PROMOTING)
    queued = another(7)
    world.deploy.handle(queued)
    promote = next(e for e in seen.last if isinstance(e.data, ConfigurationChange))
    done, again = world.deploy.handle(promote)
    assert isinstance(done.data, Done) and again.to_json_dict() == queued.to_json_dict()
    found = lane(world)
    assert found.active is not None and found.active.context == queued.shkeptncontext
    assert found.active.phase is Phase.DEPLOYING and found.queue == ()
    (deployed,) = world.deploy.handle(again)
    assert isinstance(deployed.data, DeploymentFinished) and deployed.data.tag == "0.10.1"


def test_discard_rolls_back_to_the_primary() -> None:
    """A discard of a declined run: traffic back to the primary, candidate to zero; done (declined)."""
    world, seen = walk(until=Phase.DISCARDING, decline=True)
    discard = next(e for e in seen.last if isinstance(e.data, ConfigurationChange))
    (done,) = world.deploy.handle(discard)
    assert isinstance(done.data, Done) and done.data.outcome == Outcome.DECLINED.value
    assert [(c.method, c.slot, c.canary_weight) for c in world.backend.calls[-2:]] == [
        ("route", None, 0), ("scale_to_zero", Slot.CANARY, None)]
    assert lane(world).serving.candidate_image == ""


def test_a_stale_duplicate_of_a_forgotten_delivery_is_refused() -> None:
    """A set older than the lane's horizon (a delivery it forgot) is not re-run."""
    world = World()
    ledger = Ledger(world.records)
    ledger.change(STAGING, lambda lane: (dataclasses.replace(lane, horizon="2026-06-01T00:00:00.000Z"), None))
    assert world.deploy.handle(artifact()) == []
    assert world.backend.calls == [] and lane(world).active is None


def test_a_label_that_claims_an_attempt_does_not_derail_the_delivery() -> None:
    """The attempt label is the ledger's (retries, canary steps): a user's set carrying
    ``sluice.sh/attempt: 2`` must not make the delivery's own tests-finished look like another
    attempt's (the evaluation would never start and the tick would fail a good build)."""
    world = World()
    change = ConfigurationChange(project="sockshop", service="carts", image=IMAGE,
                                 labels={ATTEMPT_LABEL: "2", "team": "carts"})
    (deployed,) = world.deploy.handle(Event.new(change, source="test", id="labelled", time="2026-01-01T00:00:00Z"))
    assert isinstance(deployed.data, DeploymentFinished) and deployed.data.labels.get("team") == "carts"
    assert world.test.handle(deployed) == []
    finished = world.test.run_unit(Event.from_json_dict(world.units[-1]), runner)
    assert finished is not None
    (request,) = world.evaluate.handle(finished)
    assert isinstance(request.data, GetSli), "the evaluation started"


@settings(max_examples=40, deadline=None)
@given(labels=st.dictionaries(st.one_of(st.just(ATTEMPT_LABEL), st.text(max_size=30)),
                              st.text(max_size=30), max_size=5))
def test_any_labels_travel_with_the_delivery_and_never_stop_it(labels: dict[str, str]) -> None:
    """Whatever labels a set carries, its delivery reaches the evaluation, and the labels (but the
    ledger's attempt label) travel with every event."""
    world = World()
    change = ConfigurationChange(project="sockshop", service="carts", image=IMAGE, labels=labels)
    (deployed,) = world.deploy.handle(Event.new(change, source="test", id="any", time="2026-01-01T00:00:00Z"))
    world.test.handle(deployed)
    finished = world.test.run_unit(Event.from_json_dict(world.units[-1]), runner)
    assert finished is not None
    (request,) = world.evaluate.handle(finished)
    assert isinstance(request.data, GetSli)
    own = {k: v for k, v in labels.items() if k != ATTEMPT_LABEL}
    for event in (deployed, finished, request):
        assert event.data.labels == own  # type: ignore[attr-defined]
