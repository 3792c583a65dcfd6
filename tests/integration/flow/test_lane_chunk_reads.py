"""A lane's older finished runs live in sealed chunks beside it (issue 17): ``sluice status``
and the project page read the lane record alone, so what they read does not grow with the
number of deliveries; a duplicate of an old delivery is still refused, and a duplicate of an
old promote or discard still gets the events its run stored."""

from __future__ import annotations

import json
import uuid

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.counting import CountingStore
from tests.support.flow import FakeClock, Flow

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event, EventType, Outcome
from sluice.core.ledger import FINISHED_LIMIT, Hold, HoldDecision, Lane, Phase, Run, Transition
from sluice.core.shipyard import OnTimeout
from sluice.core.verdict import Verdict
from sluice.ports.backend import Placement
from sluice.ports.state import Record
from sluice.services import readmodel
from sluice.services.ledger import FINISHED, FINISHED_HEAD, KEY, Ledger
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"
WHERE = Placement("sockshop", "dev", "carts")


def context(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def at(n: int) -> str:
    return f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z"


def done(n: int) -> Run:
    """An ended run of about a kilobyte (its outcome events stored), every seventh decided by a person."""
    hold = Hold(Verdict.WARNING, at(n), at(n + 1), OnTimeout.DECLINE, HoldDecision.APPROVED, "alice", at(n), "ok") if n % 7 == 0 else None
    replies = {Transition.FINISHED.value: [{"id": f"done-{n}", "type": EventType.DONE.value, "data": {"message": "m" * 600}}]}
    return Run(context(n), f"carts:0.{n}", Phase.DONE, at(n), "", event_time=at(n), outcome=Outcome.PROMOTED, hold=hold,
               replies=replies)


def lane_after(count: int) -> tuple[CountingStore, Records, Ledger]:
    """A project whose one lane saw ``count`` runs end, each in its own write."""
    store = CountingStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    ledger = Ledger(records)
    for n in range(count):
        ledger.change(WHERE, lambda lane, n=n: (lane.remember(done(n)), None))
    return store, records, ledger


def status_reads(count: int) -> tuple[int, int]:
    store, records, _ledger = lane_after(count)
    store.records_read = store.bytes_read = 0
    readmodel.project_status(records, "sockshop")
    return store.records_read, store.bytes_read


def test_status_reads_do_not_grow_with_the_finished_runs() -> None:
    """With 100, 104 or 300 runs ended, status reads the same records and at most 1.5 × the bytes
    it reads with the lane just short of its first seal (14 runs): before chunks, every remembered
    run was in the lane record (100 runs: 6 × the bytes)."""
    records_small, bytes_small = status_reads(FINISHED_HEAD + 4)
    for count in (FINISHED_LIMIT, FINISHED_LIMIT + 4, 3 * FINISHED_LIMIT):
        records_read, bytes_read = status_reads(count)
        assert records_read == records_small and bytes_read <= 1.5 * bytes_small, (count, bytes_read, bytes_small)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2 * FINISHED_LIMIT))
def test_old_runs_are_remembered_refused_and_answered(count: int) -> None:
    """After any number of ended runs: the newest ``FINISHED_LIMIT`` are found with what they
    stored (from the lane or its chunk), a ``set`` for any of them is known or stale, as for a forgotten one,
    a duplicate promote of a remembered one gets its stored events without running the effect, and
    the status shows the newest decision."""
    _store, records, ledger = lane_after(count)
    lane = ledger.lane(WHERE)
    remembered = range(max(0, count - FINISHED_LIMIT), count)
    for n in range(count):
        assert lane.knows(context(n)) or lane.stale(context(n), at(n))
    assert not lane.stale(str(uuid.uuid4()), at(count + 1))
    for n in remembered:
        run = ledger.lane_run(WHERE, context(n))
        assert run is not None and run.replies == done(n).replies
        again = ledger.advance(WHERE, context(n), Transition.FINISHED, effect=lambda *_: (_ for _ in ()).throw(AssertionError))
        assert not again.applied and again.replies == done(n).replies[Transition.FINISHED.value]
    for n in range(max(0, count - FINISHED_LIMIT)):
        assert ledger.lane_run(WHERE, context(n)) is None
    decided = [n for n in range(count) if n % 7 == 0]
    shown = readmodel.project_status(records, "sockshop")["stages"][0]["services"][0]["last_decision"]
    assert (shown or {}).get("context") == (context(decided[-1]) if decided else None)


def test_a_lane_holding_every_run_reads_the_same_and_is_sealed_by_its_next_write() -> None:
    """A lane record written before chunks (100 finished runs in it) reads as it is; its next
    write seals the older runs, and every run is still found."""
    store, _records, ledger = lane_after(0)
    lane = Lane(finished=tuple(done(n) for n in range(FINISHED_LIMIT)))
    doc = json.loads(lane.encode())
    finished = doc.pop("finished")
    name, labels = Ledger.name(WHERE)
    store.put(Record(name, {KEY: json.dumps(doc), FINISHED: json.dumps(finished)}, labels))
    assert [r.context for r in ledger.lane(WHERE).finished] == [context(n) for n in range(FINISHED_LIMIT)]
    ledger.change(WHERE, lambda lane: (lane.remember(done(FINISHED_LIMIT)), None))
    stored = store.get(name)
    assert stored is not None and len(json.loads(stored.data[FINISHED])) < FINISHED_HEAD + 5
    for n in range(1, FINISHED_LIMIT + 1):
        found = ledger.lane_run(WHERE, context(n))
        assert found is not None and found.replies == done(n).replies
    assert ledger.lane(WHERE).stale(context(0), at(0))


def test_every_record_stays_within_a_configmap() -> None:
    """Runs of 60 KiB each: the lane and every chunk stay under 1 MiB."""
    store, _records, ledger = lane_after(0)
    for n in range(60):
        big = Run(context(n), "carts", Phase.DONE, at(n), "", event_time=at(n), outcome=Outcome.PROMOTED,
                  replies={Transition.FINISHED.value: [{"id": str(n), "data": {"message": "x" * 60 * 1024}}]})
        ledger.change(WHERE, lambda lane, big=big: (lane.remember(big), None))
    for record in store.list({}):
        assert sum(len(k) + len(v) for k, v in record.data.items()) < 1024 * 1024, record.name
    assert ledger.lane_run(WHERE, context(59)) is not None and ledger.lane_run(WHERE, context(5)) is not None


def test_a_duplicate_of_a_sealed_delivery_is_not_deployed_again() -> None:
    """Through the real services: after enough deliveries that the first one's run was sealed, its
    configuration change delivered again deploys nothing."""
    records = Records(MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    clock = FakeClock()

    def runner(deployed, ctx):  # type: ignore[no-untyped-def]
        return TestOutcome("pass", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")

    flow = Flow(records, NoopBackend(), runner, clock)
    first = None
    for n in range(FINISHED_HEAD + 6):
        change = ConfigurationChange(project="sockshop", service="carts", image=f"docker.io/keptnexamples/carts:0.{n}")
        event = Event.new(change, source="test", id=str(uuid.uuid4()), time=clock())
        first = first or event
        flow.send(event)
    ledger = Ledger(records)
    assert first is not None and first.shkeptncontext in ledger.lane(WHERE).sealed
    assert flow.send(first) == [] or all(e.type != EventType.DEPLOYMENT_FINISHED for e in flow.send(first))
    assert ledger.lane(WHERE).active is None
