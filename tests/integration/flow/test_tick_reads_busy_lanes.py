"""A tick reads only the lanes with a run in them (issue 17): idle lanes, whatever their
history, are not read; lanes stored before the busy label existed are still looked at."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import yaml
from tests.support.flow import FakeClock, Flow, by_type

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event, EventType
from sluice.ports.state import Record
from sluice.services.ledger import BUSY, LABELLED
from sluice.services.records import KIND, Records
from sluice.services.testflow import TestOutcome

SHIPYARD = """
stages:
  - name: dev
    deployment_strategy: direct
    test_strategy: functional
  - name: staging
    deployment_strategy: blue_green_service
    test_strategy: performance
"""


class CountingStore(MemoryStore):
    """Counts the lane records handed out by label-selected lists."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes_listed = 0

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        found = super().list(labels)
        if labels.get(KIND) == "stage":
            self.lanes_listed += len(found)
        return found


def runner(deployed, context):  # type: ignore[no-untyped-def]
    return TestOutcome(result="pass", start="2026-01-01T00:00:00Z", end="2026-01-01T00:01:00Z",
                       measurements={"response_time_p95": 50.0, "error_rate": 0.0})


def world() -> tuple[CountingStore, Records, Flow]:
    store = CountingStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    return store, records, Flow(records, NoopBackend(), runner, FakeClock())


def artifact(tag: str) -> Event:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"docker.io/keptnexamples/carts:{tag}")
    return Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z")


def test_a_tick_reads_no_idle_lane() -> None:
    """After finished deliveries, a tick (deploy, test, evaluate, gatekeeper) lists no lane record."""
    store, _records, flow = world()
    for tag in ("0.10.1", "0.10.3"):
        assert [e.data.outcome for e in by_type(flow.send(artifact(tag)), EventType.DONE)] == ["promoted", "promoted"]  # type: ignore[attr-defined]
    flow.tick()  # the first tick may label lanes stored before the label existed
    store.lanes_listed = 0
    flow.tick()
    assert store.lanes_listed == 0


def test_a_tick_reads_the_lane_a_delivery_holds() -> None:
    """While a delivery's tests run, its lane is labelled busy and the tick reads that lane only."""
    store, records, flow = world()
    flow.send(artifact("0.10.1"))
    flow.hold_units = True
    flow.send(artifact("0.10.3"))
    busy = {r.name for r in records.store.list({KIND: "stage", BUSY: "true"})}
    assert busy == {"stage.sockshop.dev.carts"}
    flow.tick()
    store.lanes_listed = 0
    flow.tick()
    assert store.lanes_listed == 4  # deploy, test, evaluate, gatekeeper: the one busy lane each


def test_a_lane_stored_without_the_label_is_still_expired() -> None:
    """A lane written before the busy label existed (an upgrade) is labelled by the first tick,
    so a run stuck in it still ends at its deadline."""
    store, records, flow = world()
    flow.hold_units = True  # the tests never report
    flow.send(artifact("0.10.1"))
    for record in records.store.list({KIND: "stage"}):  # as an older version stored it
        labels = {k: v for k, v in record.labels.items() if k != BUSY}
        store.put(Record(record.name, record.data, labels, record.resource_version))
    assert records.store.get(LABELLED) is None
    flow.units.clear()
    flow.clock.advance(3600)  # type: ignore[attr-defined]
    ended = flow.tick()
    assert [(e.data.stage, e.data.outcome) for e in by_type(ended, EventType.DONE)] == [("dev", "stopped")]  # type: ignore[attr-defined]
    assert records.store.get(LABELLED) is not None
