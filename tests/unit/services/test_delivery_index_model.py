"""The deliveries index in a head and sealed chunks behaves as the one-record index it replaced
(issue 17), under any sequence of new deliveries (of several projects and of none, in time order
or not, some older than the age bound), repeats of any event, and crashes between a chunk's copy
and the head's write or between the head's write and the log's:

- ``contexts(project, service, limit=k)`` is the newest k of the logical index (the one-record
  algorithm, run beside it as the model), and so is every page of ``context_page``;
- without a project, the newest k of every index by start time;
- retired deliveries' logs are gone, and only those; a repeat changes nothing;
- every record stays within ``RECORD_BUDGET``; an index keeps at most its slots of chunks.

The bounds are made small (a limit of 23, chunks of 4 behind a head of 3) so that every branch
(sealing, a full set of slots, partial and whole chunks retired by count and by age) is reached."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sluice.adapters.state.memory import MemoryStore
from sluice.core.ledger import after, before
from sluice.ports.state import Record
from sluice.services import records as records_module
from sluice.services.records import RECORD_BUDGET, Records

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"
PROJECTS = ("alpha", "beta", "")  # "": events naming no project (the shared index)
LIMIT, MAX_AGE, HEAD, CHUNK = 23, 600.0, 3, 4
SLOTS = -(-LIMIT // CHUNK) + 2
BASE = datetime(2026, 1, 1, tzinfo=UTC)


class Crash(Exception):
    """A process dying in the middle of a write."""


class CrashingStore(MemoryStore):
    """Raises ``Crash`` (nothing written) on the next write of a record named ``crash_on``; runs
    ``racer`` (another writer) just before the next write of ``race_on``, which then conflicts."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_on = self.race_on = ""
        self.racer: Callable[[], None] | None = None

    def put(self, record: Record) -> Record:
        if record.name == self.crash_on:
            self.crash_on = ""
            raise Crash(record.name)
        if record.name == self.race_on and self.racer is not None:
            racer, self.racer = self.racer, None
            racer()
        return super().put(record)


def index_of(project: str) -> str:
    return f"deliveries.{project}" if project else "deliveries"


class Model:
    """The one-record index (the algorithm before chunks) and which logs exist."""

    def __init__(self) -> None:
        self.index: dict[str, list[dict[str, str]]] = {index_of(p): [] for p in PROJECTS}
        self.logs: set[str] = set()

    def add(self, project: str, context: str, service: str, started: str) -> list[str]:
        index = self.index[index_of(project)]
        if any(d["context"] == context for d in index):
            return []
        index.append({"context": context, "service": service, "started": started})
        newest = ""
        for d in index:
            newest = d["started"] if not newest or before(newest, d["started"]) else newest
        horizon = after(newest, -MAX_AGE)
        dropped = [d for i, d in enumerate(index) if i < len(index) - LIMIT or before(d["started"], horizon)]
        index[:] = [d for d in index if d not in dropped]
        return [d["context"] for d in dropped]

    def newest(self, project: str | None, service: str, limit: int | None) -> list[str]:
        if project is None:
            every = [d for name in sorted(self.index) for d in self.index[name]]
            every.sort(key=lambda d: d["started"])
        else:
            every = self.index[index_of(project)]
        found = [d["context"] for d in every if not service or d["service"] == service]
        return found[-limit:] if limit else found


class DeliveryIndex(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = CrashingStore()
        self.records = Records(self.store)
        for project in PROJECTS[:2]:
            self.records.create_project(project, SHIPYARD, yaml.safe_load(SHIPYARD))
        self.model = Model()
        self.sent: list[tuple[str, dict[str, Any]]] = []  # every event sent once (context, event)
        self.clock = 0

    def event(self, project: str, service: str, moved: int) -> tuple[str, dict[str, Any]]:
        self.clock += moved
        context = f"00000000-0000-0000-0000-{len(self.sent):012d}"
        time = (BASE + timedelta(seconds=self.clock)).isoformat().replace("+00:00", "Z")
        data = {"service": service, **({"project": project} if project else {})}
        return context, {"id": f"e{len(self.sent)}", "source": "test", "type": "t", "time": time, "data": data}

    def send(self, context: str, event: dict[str, Any], crash: str) -> None:
        """Append as the eventlog does; ``crash``: "" (none), "head" (after any chunk's copy,
        before the head's write) or "log" (after the head's write, before the log's)."""
        data = event["data"]
        project = data.get("project", "")
        self.store.crash_on = {"head": index_of(project), "log": f"context.{context}"}.get(crash, "")
        try:
            self.records.append_event(context, event)
        except Crash:
            if crash == "log" and context not in self.model.logs:  # the index was written, and retired what it dropped
                self.model.logs -= set(self.model.add(project, context, data["service"], event["time"]))
            return
        finally:
            self.store.crash_on = ""
        if context not in self.model.logs:
            self.model.logs -= set(self.model.add(project, context, data["service"], event["time"]))
            self.model.logs.add(context)

    @initialize(size=st.integers(0, 40))
    def legacy(self, size: int) -> None:
        """An index of alpha stored in one record, before chunks existed (within the bounds)."""
        entries = []
        for _ in range(size):
            context, event = self.event("alpha", "a", 1)
            self.sent.append((context, event))
            entries.append({"context": context, "service": "a", "started": event["time"]})
        for d in entries[-LIMIT:]:
            self.store.put(Record(f"context.{d['context']}", {"events": "[]"}, {"sluice.dev/kind": "context"}))
            self.model.index["deliveries.alpha"].append(d)
            self.model.logs.add(d["context"])
        if entries:
            self.store.put(Record("deliveries.alpha", {"deliveries": json.dumps(entries[-LIMIT:])},
                                  {"sluice.dev/kind": "deliveries", "sluice.dev/project": "alpha"}))

    @rule(project=st.sampled_from(PROJECTS), service=st.sampled_from(["a", "b", "c"]),
          moved=st.one_of(st.integers(0, 30), st.integers(-40, 0), st.just(700)),
          crash=st.sampled_from(["", "", "", "head", "log"]))
    def deliver(self, project: str, service: str, moved: int, crash: str) -> None:
        """A new delivery (its time moved on, back, or past the age bound), perhaps crashing."""
        context, event = self.event(project, service, moved)
        self.sent.append((context, event))
        self.send(context, event, crash)

    @rule(project=st.sampled_from(PROJECTS), services=st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["a", "c"])),
          moved=st.integers(0, 5))
    def race(self, project: str, services: tuple[str, str], moved: int) -> None:
        """Two new deliveries of one index at once: the second writes the head (and any chunk)
        between the first's read of it (and its chunk's copy) and its write, which conflicts and
        is retried on the new head."""
        first, first_event = self.event(project, services[0], moved)
        self.sent.append((first, first_event))
        second, second_event = self.event(project, services[1], moved)
        self.sent.append((second, second_event))
        self.store.race_on = index_of(project)
        self.store.racer = lambda: self.send(second, second_event, "")
        self.send(first, first_event, "")
        assert self.store.racer is None
        self.store.race_on = ""

    @precondition(lambda self: bool(self.sent))
    @rule(pick=st.integers(0, 10_000), crash=st.sampled_from(["", "", "head", "log"]))
    def repeat(self, pick: int, crash: str) -> None:
        """Any event sent before, again (the broker delivers at least once)."""
        context, event = self.sent[pick % len(self.sent)]
        self.send(context, event, crash)

    @invariant()
    def reads_are_the_models(self) -> None:
        for project in ["alpha", "beta", None]:  # None: all, the shared index among them (it cannot be read alone)
            for service in ("", "a"):
                for limit in (1, 3, 8, None):
                    wanted = self.model.newest(project, service, limit)
                    assert self.records.contexts(project or "", service, limit) == wanted, (project, service, limit)
                if project is not None:
                    whole = list(reversed(self.model.newest(project, service, None)))
                    for offset in (0, 2, 7):
                        assert self.records.context_page(project, service, 5, offset) == (whole[offset:offset + 5], len(whole))

    @invariant()
    def logs_are_those_of_the_index(self) -> None:
        stored = {r.name.removeprefix("context.") for r in self.store.list({"sluice.dev/kind": "context"})}
        assert stored == self.model.logs

    @invariant()
    def records_are_bounded(self) -> None:
        every = self.store.list({})
        assert all(r.size() <= RECORD_BUDGET for r in every)
        for project in PROJECTS:
            base = f"deliveries.{project}." if project else "deliveries-none."
            assert sum(1 for r in every if r.name.startswith(base)) <= SLOTS
        assert [r.name for r in self.store.list({"sluice.dev/kind": "deliveries"})] == sorted(
            r.name for r in every if r.name in {index_of(p) for p in PROJECTS})


@pytest.fixture(autouse=True)
def small_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("DELIVERIES_LIMIT", LIMIT), ("DELIVERIES_MAX_AGE_S", MAX_AGE), ("DELIVERIES_HEAD", HEAD),
                        ("DELIVERIES_CHUNK", CHUNK), ("DELIVERY_SLOTS", SLOTS)):
        monkeypatch.setattr(records_module, name, value)


TestDeliveryIndex = DeliveryIndex.TestCase
TestDeliveryIndex.settings = settings(max_examples=150, stateful_step_count=60, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def test_a_chunk_forgotten_for_its_slot_retires_its_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every slot in use (too few slots for the count bound, as disordered times can make
    it), the oldest chunk's deliveries leave the index and their logs are deleted, as its record."""
    monkeypatch.setattr(records_module, "DELIVERY_SLOTS", 2)
    machine = DeliveryIndex()
    for _ in range(HEAD + 3 * CHUNK):
        context, event = machine.event("beta", "a", 1)
        machine.records.append_event(context, event)
        machine.sent.append((context, event))
    contexts = [c for c, _ in machine.sent]
    assert machine.records.contexts("beta") == contexts[CHUNK:]
    logs = {r.name.removeprefix("context.") for r in machine.store.list({"sluice.dev/kind": "context"})}
    assert logs == set(contexts[CHUNK:])
    assert sorted(r.name for r in machine.store.list({"sluice.dev/kind": "deliveries-chunk"})) == [
        "deliveries.beta.0", "deliveries.beta.1"]
