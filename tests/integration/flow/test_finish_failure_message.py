"""A promotion whose backend steps fail says so: the done event names the promotion, not a roll-back."""

from __future__ import annotations

from tests.integration.flow.test_flow_story import CARTS, SHIPYARD
from tests.integration.flow.test_gate_integrity import World, outcomes
from tests.support.flow import by_type

from sluice.core.events import EventType
from sluice.core.verdict import Verdict


def test_a_failed_promotion_is_reported_as_a_failed_promotion() -> None:
    """Held for a person in production, approved, then the primary cannot take the image: the run
    fails, and the done event's message says the promotion failed (it said 'roll-back' before)."""
    world = World(SHIPYARD + "    approval_strategy: {pass: manual}\n")
    events = world.flow.send(world.artifact("0.10.1"))
    assert world.lane("production").active is not None
    world.backend.fail_images.add(f"{CARTS}:0.10.1")  # the candidate runs; its promotion to primary will fail
    done = world.flow.send(world.approval(events[0].shkeptncontext, "approve"))
    assert outcomes(done) == [("production", "failed")]
    (event,) = by_type(done, EventType.DONE)
    assert event.data.result is Verdict.FAIL  # type: ignore[attr-defined]
    assert event.data.message.startswith(f"promotion of {CARTS}:0.10.1 in production failed")  # type: ignore[attr-defined]
