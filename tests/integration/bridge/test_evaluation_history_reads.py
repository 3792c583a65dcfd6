"""The evaluation history is read a page at a time (issue 17): ``sluice status``, the project
page, the history page, an evaluation's page and the API read the history's head record (and
the one chunk an older evaluation lives in), so what they read does not grow with the history;
the history itself reads the same, whatever its records' layout."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.counting import CountingStore

from sluice.adapters.state.memory import MemoryStore
from sluice.bridge.app import HISTORY_PAGE, Bridge
from sluice.ports.state import Record
from sluice.services import readmodel
from sluice.services.records import HISTORY_HEAD, HISTORY_LIMIT, RECORD_BUDGET, Records

SHIPYARD = "stages:\n  - name: staging\n    deployment_strategy: blue_green_service\n"
WHERE = ("sockshop", "staging", "carts")


def evaluation(n: int) -> dict[str, Any]:
    """An evaluation of about a kilobyte, like the demo's."""
    return {"id": f"00000000-0000-0000-0000-{n:012d}", "time": f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
            "result": "pass", "score": 100.0, "image": f"carts:0.{n}", "context": f"ctx-{n}", "slo_file": "objectives: []",
            "indicators": [{"name": f"sli_{i}", "value": 100.0 + n, "status": "pass", "score": 1.0,
                            "targets": [{"criteria": "<600", "targetValue": 600, "violated": False}],
                            "message": "x" * 120} for i in range(4)]}


def world(count: int) -> tuple[CountingStore, Records, Bridge]:
    store = CountingStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    for n in range(count):
        records.append_evaluation(*WHERE, evaluation(n))
    return store, records, Bridge(records, lambda e: None)


def reads(count: int) -> dict[str, tuple[int, int]]:
    """(records, bytes) each read reads with ``count`` evaluations appended."""
    store, records, bridge = world(count)
    newest = readmodel.evaluations(records, *WHERE)[0]["id"]
    plan = {
        "status": lambda: readmodel.project_status(records, "sockshop"),
        "history page": lambda: bridge.handle("GET", "/history/sockshop/staging/carts", {}, {}),
        "evaluation page": lambda: bridge.handle("GET", f"/evaluation/sockshop/staging/carts/{newest}", {}, {}),
        "api evaluations": lambda: bridge.handle("GET", "/api/projects/sockshop/stages/staging/services/carts/evaluations", {}, {}),
    }
    out = {}
    for name, read in plan.items():
        store.reset()
        read()
        out[name] = (store.records_read, store.bytes_read)
    return out


def test_reads_of_the_history_do_not_grow_with_it() -> None:
    """With 100, 104 or 300 evaluations appended, each read reads the same records and at most
    1.5 × the bytes it reads with a head just short of its first seal (14): before chunks, the
    whole history was one record (7 × the bytes at 100)."""
    small = reads(HISTORY_HEAD + 4)
    for count in (HISTORY_LIMIT, HISTORY_LIMIT + 4, 3 * HISTORY_LIMIT):
        large = reads(count)
        for name, (records_read, bytes_read) in large.items():
            assert records_read == small[name][0], (name, count, large[name], small[name])
            assert bytes_read <= 1.5 * small[name][1], (name, count, large[name], small[name])


def test_an_older_evaluation_is_two_reads() -> None:
    """An evaluation past the head is found through the head's index: its chunk is the only other read."""
    store, _records, bridge = world(HISTORY_LIMIT)
    oldest = "00000000-0000-0000-0000-000000000000"
    store.reset()
    body, status, _ = bridge.handle("GET", f"/evaluation/sockshop/staging/carts/{oldest}", {}, {})
    assert status == 200 and "carts:0.0" in str(body)
    assert store.records_read == 2


def ids_of(html: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"/evaluation/sockshop/staging/carts/([0-9a-f-]{36})", html)))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3 * HISTORY_LIMIT // 2), st.integers(1, 30), st.integers(0, 120))
def test_pages_cover_the_history_newest_first(count: int, limit: int, offset: int) -> None:
    """Any page (limit, offset) of the API is that slice of the history, newest first; the history
    holds the newest ``HISTORY_LIMIT`` appended, each once, oldest first."""
    _store, records, bridge = world(count)
    everything = [e["id"] for e in records.evaluations(*WHERE)]
    assert everything == [evaluation(n)["id"] for n in range(max(0, count - HISTORY_LIMIT), count)]
    body, status, _ = bridge.handle("GET", "/api/projects/sockshop/stages/staging/services/carts/evaluations",
                                    {"limit": str(limit), "offset": str(offset)}, {})
    assert status == 200
    assert [e["id"] for e in json.loads(str(body))] == list(reversed(everything))[offset:offset + limit]
    assert all(e["slo_file"] == "objectives: []" for e in json.loads(str(body)))


def test_history_pages_link_to_older_and_newer() -> None:
    """The history page shows ``HISTORY_PAGE`` evaluations a page, with links; every page together is the history."""
    _store, records, bridge = world(25)
    seen: list[str] = []
    for number in (1, 2, 3):
        body, status, _ = bridge.handle("GET", "/history/sockshop/staging/carts", {"page": str(number)}, {})
        assert status == 200
        assert (f"page={number + 1}" in str(body)) == (number < 3) and (f"page={number - 1}" in str(body)) == (number > 1)
        seen += list(reversed(ids_of(str(body))))  # the heatmap runs oldest → newest
    assert seen == [e["id"] for e in readmodel.evaluations(records, *WHERE)]
    assert len(ids_of(str(bridge.handle("GET", "/history/sockshop/staging/carts", {}, {})[0]))) == HISTORY_PAGE


def test_a_history_stored_in_one_record_reads_the_same_and_is_split_by_the_next_append() -> None:
    """A history written before chunks (every entry in the one record) reads as it is; the next
    append seals it into chunks and the history is then the same plus the new one."""
    store, records, _bridge = world(0)
    entries = [{**{k: v for k, v in evaluation(n).items() if k != "slo_file"}, "slo_hash": "h"} for n in range(HISTORY_LIMIT)]
    store.put(Record("evaluations.sockshop.staging.carts",
                     {"history": json.dumps(entries), "slos": json.dumps({"h": "objectives: []"})},
                     {"sluice.dev/kind": "evaluations"}))
    before = records.evaluations(*WHERE)
    assert [e["id"] for e in before] == [e["id"] for e in entries]
    assert readmodel.evaluation_page(records, *WHERE, 3, 1)[0] == list(reversed(before))[1:4]
    records.append_evaluation(*WHERE, evaluation(HISTORY_LIMIT))
    after = records.evaluations(*WHERE)
    assert [e["id"] for e in after] == [e["id"] for e in before[1:]] + [evaluation(HISTORY_LIMIT)["id"]]
    head = store.get("evaluations.sockshop.staging.carts")
    assert head is not None and len(json.loads(head.data["history"])) < HISTORY_HEAD + 5


def test_a_repeated_evaluation_is_stored_once_even_after_it_was_sealed() -> None:
    _store, records, _bridge = world(40)
    assert records.append_evaluation(*WHERE, evaluation(0)) is False
    assert records.append_evaluation(*WHERE, evaluation(39)) is False
    assert len(records.evaluations(*WHERE)) == 40


def test_every_record_stays_within_its_budget_with_large_slos() -> None:
    """Each evaluation with its own 60 KiB SLO text: the head and every chunk stay under ``RECORD_BUDGET``."""
    store = MemoryStore()
    records = Records(store)
    for n in range(40):
        records.append_evaluation(*WHERE, {**evaluation(n), "slo_file": f"# {n}\n" + "y" * 60 * 1024})
    for record in store.list({}):
        assert sum(len(k) + len(v) for k, v in record.data.items()) < RECORD_BUDGET, record.name
    history = records.evaluations(*WHERE)
    assert [e["id"] for e in history] == [evaluation(n)["id"] for n in range(40)]
    assert all(e["slo_file"].startswith(f"# {n}\n") for n, e in zip(range(40), history, strict=True))


@pytest.mark.parametrize("path", ["/history/sockshop/staging/carts"])
@pytest.mark.parametrize("page", ["0", "-1", "x", "10001", ""])
def test_a_bad_history_page_is_a_400_naming_it(path: str, page: str) -> None:
    _store, _records, bridge = world(3)
    body, status, _ = bridge.handle("GET", path, {"page": page}, {})
    assert (status == 200) if page == "" else (status == 400 and "page" in str(body))


def test_a_stale_writer_never_overwrites_a_newer_chunk() -> None:
    """A slot holding chunk 7 is not overwritten by chunk 7 again nor by chunk 3 (a writer that
    read an old head); chunk 8 replaces it (the slot was freed)."""
    from sluice.services.records import newer_chunk

    held = Record("evaluations.p.s.svc.0", {"seq": "7", "history": "[]"}, {}, "12")
    assert newer_chunk(held, held.name, {"seq": "7"}, {}, 7) is None
    assert newer_chunk(held, held.name, {"seq": "3"}, {}, 3) is None
    replaced = newer_chunk(held, held.name, {"seq": "8"}, {}, 8)
    assert replaced is not None and replaced.data == {"seq": "8"} and replaced.resource_version == "12"
    assert newer_chunk(None, held.name, {"seq": "1"}, {}, 1) is not None
