"""Reads of the deliveries index do not grow with history (issue 17): ``contexts(limit=10)`` and
``sluice get event`` without ``--context`` read the index's head (and the logs they show), not
every delivery the index remembers; a page of one service reads only the chunks it shows; an
index stored in one record before chunks existed reads the same and is split by its next write."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from tests.support.counting import CountingStore

from sluice.cli import common
from sluice.cli.main import main
from sluice.ports.state import Record
from sluice.services import readmodel
from sluice.services.records import Records

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"


def event(n: int, project: str = "sockshop", service: str = "carts") -> tuple[str, dict[str, Any]]:
    context = f"00000000-0000-0000-0000-{n:012d}"
    return context, {"id": f"e{n}", "source": "test", "type": "sh.keptn.events.configuration-change",
                     "shkeptncontext": context, "time": f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
                     "data": {"project": project, "service": service}}


def world(deliveries: int, every: int = 0) -> tuple[CountingStore, Records]:
    """``deliveries`` deliveries of sockshop (of carts; of orders every ``every``-th)."""
    store = CountingStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    for n in range(deliveries):
        records.append_event(*event(n, service="orders" if every and n % every == 0 else "carts"))
    store.reset()
    return store, records


def read(records: Records, how: Any) -> tuple[Any, int, int]:
    store = records.store
    assert isinstance(store, CountingStore)
    store.reset()
    found = how(records)
    return found, store.records_read, store.bytes_read


@pytest.mark.parametrize("project", ["sockshop", ""])
def test_the_newest_ten_read_the_same_at_any_length_of_history(project: str) -> None:
    """The newest 10 deliveries read one record, and no more bytes after 3,000 deliveries than after 30
    (beyond the few hundred bytes by which the head's list of chunks grows)."""
    figures = {}
    for deliveries in (30, 3000):
        _store, records = world(deliveries)
        found, count, size = read(records, lambda r: r.contexts(project, limit=10))
        assert found == [event(n)[0] for n in range(deliveries - 10, deliveries)]
        figures[deliveries] = (count, size)
    assert figures[30][0] == figures[3000][0] == 1
    assert figures[3000][1] <= 1.5 * figures[30][1] + 6 * 1024, figures


def test_get_event_reads_the_same_at_any_length_of_history(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``sluice get event --project`` (and of all projects) reads as many records and bytes after
    3,000 deliveries as after 30, within the head's list of chunks."""
    figures: dict[tuple[int, str], tuple[int, int]] = {}
    for deliveries in (30, 3000):
        _store, records = world(deliveries)
        monkeypatch.setattr(common, "records", lambda _args, records=records: records)
        for argv in (["--project", "sockshop"], []):
            _found, count, size = read(records, lambda _r, argv=argv: main(["get", "event", "--output", "json", *argv]))
            shown = json.loads(capsys.readouterr().out)
            assert [e["id"] for e in shown] == [f"e{n}" for n in range(deliveries - 10, deliveries)]
            figures[deliveries, " ".join(argv)] = (count, size)
    for argv in ("--project sockshop", ""):
        assert figures[3000, argv][0] == figures[30, argv][0], figures
        assert figures[3000, argv][1] <= 1.5 * figures[30, argv][1] + 6 * 1024, figures


def test_a_page_of_a_rare_service_reads_only_the_chunks_it_shows() -> None:
    """Of 3,000 deliveries, one in 100 of orders: a page of 10 of them reads the head and the
    chunks holding those 10 (about 1,000 deliveries back), and the counts for the page links."""
    _store, records = world(3000, every=100)
    (page, total), count, _size = read(records, lambda r: r.context_page("sockshop", "orders", 5, 3))
    kept = [n for n in range(2000, 3000) if n % 100 == 0]
    assert total == len(kept)
    assert page == [event(n)[0] for n in reversed(kept)][3:8]
    assert count <= 1 + 500 // 50 + 1  # the head and the chunks from the newest back to the 8th delivery of orders


def test_an_index_in_one_record_reads_the_same_and_is_split_by_its_next_write() -> None:
    store, records = world(0)
    legacy = [{"context": event(n)[0], "service": "carts", "started": event(n)[1]["time"]} for n in range(300)]
    store.put(Record("deliveries.sockshop", {"deliveries": json.dumps(legacy)}, {"sluice.dev/kind": "deliveries",
                                                                                "sluice.dev/project": "sockshop"}))
    for n in range(300):
        store.put(Record(f"context.{event(n)[0]}", {"events": json.dumps([event(n)[1]])}, {"sluice.dev/kind": "context"}))
    assert records.contexts("sockshop", limit=5) == [event(n)[0] for n in range(295, 300)]
    assert records.contexts("sockshop") == [event(n)[0] for n in range(300)]
    records.append_event(*event(300))
    head = store.get("deliveries.sockshop")
    assert head is not None and len(json.loads(head.data["deliveries"])) < 70
    assert records.contexts("sockshop") == [event(n)[0] for n in range(301)]
    assert readmodel.delivery_page(records, "sockshop", "carts", 3, 0)[1] == 301
    assert len([r for r in store.list({"sluice.dev/kind": "deliveries"})]) == 1  # chunks are not listed as heads


def test_get_evaluations_shows_a_page(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``sluice get evaluations`` shows the newest 10 by default, ``--limit``/``--offset`` page
    further, and a bad value is an argparse error naming the option."""
    _store, records = world(0)
    records.onboard("sockshop", "carts")
    for n in range(30):
        records.append_evaluation("sockshop", "dev", "carts", {"id": f"ev{n}", "time": f"2026-01-01T00:00:{n:02d}Z",
                                                               "result": "pass", "score": 100.0, "slo_file": ""})
    monkeypatch.setattr(common, "records", lambda _args: records)
    base = ["get", "evaluations", "--project", "sockshop", "--stage", "dev", "--service", "carts", "--output", "json"]
    assert main(base) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == [f"ev{n}" for n in range(29, 19, -1)]
    assert main([*base, "--limit", "3", "--offset", "25"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == ["ev4", "ev3", "ev2"]
    for option, value in (("--limit", "0"), ("--limit", "101"), ("--offset", "-1"), ("--limit", "x"), ("--offset", "²")):
        with pytest.raises(SystemExit) as exit_:
            main([*base, option, value])
        assert exit_.value.code == 2
        assert f"argument {option}" in capsys.readouterr().err



def test_the_newest_of_all_projects_read_only_the_heads_when_start_times_repeat() -> None:
    """Deliveries started at one of three times (as bench/scale.py clones them): the newest 10
    of all projects are still the heads' own (the older chunks rank below them), read in one list."""
    store = CountingStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    for n in range(600):
        context, sent = event(n)
        records.append_event(context, {**sent, "time": f"2026-01-01T00:00:0{n % 3}Z"})
    found, count, _size = read(records, lambda r: r.contexts("", limit=10))
    assert count == 1
    assert found == [event(n)[0] for n in range(600) if n % 3 == 2][-10:]
