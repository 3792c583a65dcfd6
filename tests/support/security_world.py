"""A delivery held for approval in production (memory store, noop backend), for the security tests."""

from __future__ import annotations

import uuid
from typing import Any

import yaml
from tests.support.flow import FakeClock, Flow, by_type
from tests.support.sockshop import CARTS, SHIPYARD, fake_runner

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event, EventType
from sluice.services.records import Records

KEY = b"0123456789abcdef0123456789abcdef"
MANUAL = SHIPYARD + "    approval_strategy: {pass: manual, warning: manual}\n"


def keys(project: str) -> bytes | None:
    return KEY if project == "sockshop" else None


def held_world(
    tag: str = "0.10.1", labels: dict[str, str] | None = None, records: Records | None = None
) -> tuple[Records, NoopBackend, Flow, str]:
    """``tag`` passed staging and waits for approval to enter production: (records, backend, flow, context)."""
    records = records or Records(MemoryStore())
    records.create_project("sockshop", MANUAL, yaml.safe_load(MANUAL))
    records.onboard("sockshop", "carts")
    backend = NoopBackend()
    clock = FakeClock()
    flow = Flow(records, backend, fake_runner, clock, approver_keys=keys)
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}", labels=labels or {})
    events = flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time=clock()))
    held: Any = next(by_type(events, EventType.APPROVAL_TRIGGERED))
    assert held.data.stage == "production"
    return records, backend, flow, events[0].shkeptncontext
