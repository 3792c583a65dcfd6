"""An evaluation reads only as much history as its SLO compares with (issue 17): with
``compare_with: single_result`` it needs the newest passing evaluation, which the history's head
holds — not the head and every sealed chunk. Where the head holds too few admitted results it
reads older chunks, newest first, until it has them: the verdicts are those of the whole history."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.integration.bridge.test_evaluation_history_reads import evaluation
from tests.support.counting import CountingStore
from tests.support.flow import FakeClock, Flow, by_type
from tests.support.sockshop import CARTS, SHIPYARD, SLO, fake_runner, seed_project

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event, EventType
from sluice.services.records import Records

CHUNK_PREFIX = "evaluations.sockshop.staging.carts."


def deliver(flow: Flow, tag: str) -> list[Event]:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z"))


def staging(events: list[Event]) -> str:
    [done] = [e.data.outcome for e in by_type(events, EventType.DONE) if e.data.stage == "staging"]  # type: ignore[attr-defined]
    return str(done)


def world(slo: str) -> tuple[CountingStore, Records, Flow]:
    store = CountingStore()
    records = Records(store)
    seed_project(records, SHIPYARD)
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", slo)
    return store, records, Flow(records, NoopBackend(), fake_runner, FakeClock())


def test_a_single_result_comparison_reads_no_sealed_chunk() -> None:
    store, records, flow = world(SLO)
    for n in range(40):
        assert staging(deliver(flow, f"1.0.{n}")) == "promoted"
    assert len(records.evaluations("sockshop", "staging", "carts")) == 40
    store.reset()
    assert staging(deliver(flow, "1.0.40")) == "promoted"
    assert store.read_of(CHUNK_PREFIX) == 0


def test_older_chunks_are_read_until_the_baseline_is_found() -> None:
    """The only passing evaluation is the oldest: the slow build's failures since then fill the
    head, so the comparison reads back to it — and compares with it, as with the whole history."""
    store, _records, flow = world(SLO)
    first = deliver(flow, "0.10.1")
    assert staging(first) == "promoted"
    [baseline] = [e.data for e in by_type(first, EventType.EVALUATION_DONE) if e.data.stage == "staging"]  # type: ignore[attr-defined]
    for _ in range(30):
        assert staging(deliver(flow, "0.10.2")) == "rolled_back"
    store.reset()
    events = deliver(flow, "0.10.3")
    assert staging(events) == "promoted"
    [evaluation] = [e.data for e in by_type(events, EventType.EVALUATION_DONE) if e.data.stage == "staging"]  # type: ignore[attr-defined]
    compared = evaluation.evaluationdetails["sluice"]["comparison"]["compared_evaluations"]  # type: ignore[attr-defined]
    assert compared == [baseline.evaluationdetails["evaluationId"]]  # type: ignore[attr-defined]
    assert store.read_of(CHUNK_PREFIX) >= 1


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 120), wanted=st.integers(0, 130))
def test_the_slice_read_back_is_the_newest_part_of_the_whole_history(count: int, wanted: int) -> None:
    """Whatever the history's length and layout, the slice is a suffix of the whole history that
    satisfies the reader, or the whole history when none shorter does."""
    records = Records(MemoryStore())
    seed_project(records, SHIPYARD)
    for n in range(count):
        records.append_evaluation("sockshop", "staging", "carts", evaluation(n))
    whole = records.evaluations("sockshop", "staging", "carts")
    part = records.evaluations_back("sockshop", "staging", "carts", lambda docs: len(docs) >= wanted)
    assert part == whole[len(whole) - len(part):]
    assert len(part) >= wanted or part == whole
