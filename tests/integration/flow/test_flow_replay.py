"""Re-posting every event of old, finished deliveries changes nothing (issue 13, defect 6).

The broker delivers at least once, and a duplicate can come back long after its delivery ended
(a dead-letter replay, an operator re-posting events). Here the real services run some
deliveries to their end, then newer ones, more than a stage remembers (``records_view.small_bounds``
shrinks that memory to 4 runs, so "many" is a dozen, not a hundred); then every event of the old
deliveries is posted again, in any order. The old deliveries' event logs, the records of their
stages and their evaluations must stay exactly as they were, and so must what each stage serves.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tests.integration.flow.model import records_view
from tests.integration.flow.model.world import PROJECT, SERVICES, World, libyaml

from sluice.ports.backend import Placement

SPEED = st.sampled_from(["fast", "medium", "slow"])


def _serving(world: World) -> dict[str, str]:
    return {
        f"{stage.name}/{service}": world.backend.noop.serving(Placement(PROJECT, stage.name, service))
        for stage in world.shipyard.stages for service in SERVICES
    }


@pytest.mark.timeout(1200)
@settings(
    max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(
    old=st.lists(SPEED, min_size=1, max_size=3),
    newer=st.lists(st.tuples(st.sampled_from(SERVICES[:2]), SPEED), min_size=0, max_size=12),
    order=st.randoms(use_true_random=False),
)
def test_replaying_old_deliveries_changes_nothing(old, newer, order) -> None:  # type: ignore[no-untyped-def]
    """After many newer deliveries, re-posting all events of old finished ones (in any order)
    leaves their event log, deploy records and evaluations, and every stage's serving image, as
    they were."""
    with records_view.small_bounds(), libyaml():
        world = World()
        old_contexts = []
        for speed in old:
            old_contexts.append(world.new_artifact("carts", speed).context)
            world.drain()
        for service, speed in newer:
            world.new_artifact(service, speed)
            world.drain()
        assert all(world.delivery_ended(c) for c in world.deliveries)
        before = {c: records_view.snapshot(world.store, PROJECT, c) for c in old_contexts}
        serving = _serving(world)
        replay = [e for e in world.history if e.shkeptncontext in before]
        order.shuffle(replay)
        for event in replay:
            world.duplicate(event)
            world.drain()
        after = {c: records_view.snapshot(world.store, PROJECT, c) for c in old_contexts}
        for context in old_contexts:
            assert after[context]["events"] == before[context]["events"], f"the event log of {context} changed"
            assert after[context]["deploy"] == before[context]["deploy"], f"deploy records changed by {context}'s events"
            assert after[context]["evaluations"] == before[context]["evaluations"], f"evaluations of {context} changed"
        assert _serving(world) == serving, "a stage serves another image after the replay"
        world.finish()  # and nothing is left claimed or waiting
