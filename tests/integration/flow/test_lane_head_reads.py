"""``sluice status`` reads each lane's head (issue 17): the lane without its finished history,
plus the runs the views show of the past. These tests check it shows exactly what the whole
lane shows, and that lanes stored before the split still read."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.support.flow import FakeClock, Flow

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.approval_auth import sign
from sluice.core.events import ApprovalFinished, ConfigurationChange, Event
from sluice.ports.backend import Placement
from sluice.ports.state import Record
from sluice.services import readmodel
from sluice.services.ledger import FINISHED, KEY, RECENT, Ledger, recent
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

KEY_BYTES = b"k" * 32
SHIPYARD = """
stages:
  - name: dev
    deployment_strategy: direct
  - name: staging
    deployment_strategy: blue_green_service
  - name: production
    deployment_strategy: blue_green_service
"""


class World:
    def __init__(self, shipyard: str = SHIPYARD) -> None:
        self.records = Records(MemoryStore())
        self.records.create_project("sockshop", shipyard, yaml.safe_load(shipyard))
        self.records.onboard("sockshop", "carts")
        self.clock = FakeClock()
        self.flow = Flow(self.records, NoopBackend(), self.runner, self.clock, approver_keys={"sockshop": KEY_BYTES}.get)
        self.ledger = Ledger(self.records)

    @staticmethod
    def runner(deployed, context):  # type: ignore[no-untyped-def]
        return TestOutcome("pass", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")

    def artifact(self, tag: str) -> Event:
        change = ConfigurationChange(project="sockshop", service="carts", image=f"docker.io/keptnexamples/carts:{tag}")
        return Event.new(change, source="test", id=str(uuid.uuid4()), time=self.clock())

    def approval(self, context: str, decision: str) -> Event:
        payload = ApprovalFinished(project="sockshop", stage="production", service="carts", decision=decision)
        return sign(Event.new(payload, source="test", id=str(uuid.uuid4()), time=self.clock(), context=context),
                    KEY_BYTES, "alice")


def status_from_whole_lanes(world: World, monkeypatch: pytest.MonkeyPatch) -> dict:  # type: ignore[type-arg]
    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "head", Ledger.lane)
        return readmodel.project_status(world.records, "sockshop")


def test_status_from_heads_equals_status_from_whole_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    """After approvals (a decision among older runs) and several deliveries, the status built from
    the heads is the status built from the whole lanes, and the head holds fewer runs."""
    manual = SHIPYARD + "    approval_strategy: {pass: manual}\n"
    world = World(manual)
    for tag in ("0.10.1", "0.10.3", "0.10.4"):
        first = world.flow.send(world.artifact(tag))
        if tag != "0.10.4":
            world.flow.send(world.approval(first[0].shkeptncontext, "approve"))
    world.flow.send(world.artifact("0.10.2"))  # held for approval now
    assert readmodel.project_status(world.records, "sockshop") == status_from_whole_lanes(world, monkeypatch)
    production = Placement("sockshop", "production", "carts")
    whole, head = world.ledger.lane(production), world.ledger.head(production)
    assert len(head.finished) < len(whole.finished)
    assert head.finished[-1].hold is not None and head.finished[-1].hold.decision is not None


def test_a_lane_stored_before_the_split_still_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane record holding its finished runs inside ``lane`` (the older form) reads the same,
    in whole and as head, and the next write stores it split."""
    world = World()
    world.flow.send(world.artifact("0.10.1"))
    world.flow.send(world.artifact("0.10.3"))
    placement = Placement("sockshop", "staging", "carts")
    name = Ledger.name(placement)[0]
    stored = world.records.store.get(name)
    assert stored is not None and {KEY, FINISHED, RECENT} <= set(stored.data)
    whole = world.ledger.lane(placement)
    old = {KEY: json.dumps({**json.loads(stored.data[KEY]), "finished": json.loads(stored.data[FINISHED])})}
    world.records.store.put(Record(name, old, stored.labels, stored.resource_version))
    assert world.ledger.lane(placement) == whole
    assert readmodel.project_status(world.records, "sockshop") == status_from_whole_lanes(world, monkeypatch)
    world.flow.send(world.artifact("0.10.4"))
    again = world.records.store.get(name)
    assert again is not None and FINISHED in again.data
    assert [r.context for r in world.ledger.lane(placement).finished][:2] == [r.context for r in whole.finished]


runs = st.lists(st.fixed_dictionaries({
    "context": st.uuids().map(str),
    "hold": st.one_of(st.none(), st.fixed_dictionaries({"decision": st.one_of(st.none(), st.just("approved"))})),
    "canary": st.one_of(st.none(), st.just({"step": 0})),
}), max_size=12)


@given(runs)
def test_recent_keeps_the_newest_decided_and_the_newest_canary_in_order(finished: list[dict]) -> None:  # type: ignore[type-arg]
    """``recent`` is, in their order, the last run with a decision and the last with a canary."""
    decided = [i for i, r in enumerate(finished) if (r["hold"] or {}).get("decision") is not None]
    canary = [i for i, r in enumerate(finished) if r["canary"] is not None]
    expected = sorted({*decided[-1:], *canary[-1:]})
    assert recent(finished) == [finished[i] for i in expected]
