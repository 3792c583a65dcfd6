"""Insight figures: what folding one event into the delivery metrics costs, beside what the
event log's own write of the same event costs (the reference: both run in the eventlog function).

The metrics record is first brought to its steady state (``OPEN_LIMIT`` deliveries remembered,
days of counts), then the events of further deliveries are folded in one by one.

Run: .venv/bin/python bench/insight.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.insight_world import make_world

from sluice.adapters.state.local import LocalStore
from sluice.core import delivery_metrics as dm
from sluice.core.events import Event
from sluice.services.insight import record_name


def replayed(events: list[Event], n: int) -> list[Event]:
    out = []
    for e in events:
        doc = e.to_json_dict()
        t = dm.parse_time(doc["time"]) + timedelta(hours=n)  # type: ignore[operator]
        doc.update(id=f"{n}-{doc['id']}", time=dm.iso(t), shkeptncontext=f"{n:08d}-0000-4000-8000-{'0' * 12}")
        out.append(Event.from_json_dict(doc))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(store=LocalStore(Path(tmp)))
        template = world.deliver("0.10.2")  # a delivery caught in staging: every kind of event
        world.clock.advance((dm.OPEN_LIMIT + 30) * 3600)  # the replayed deliveries lie in the past
        for n in range(1, dm.OPEN_LIMIT + 1):
            for e in replayed(template, n):
                world.insight.observe(e)
        record = world.records.store.get(record_name("sockshop", "carts"))
        assert record is not None
        events = [e for n in range(dm.OPEN_LIMIT + 1, dm.OPEN_LIMIT + 21) for e in replayed(template, n)]
        start = time.perf_counter()
        for e in events:
            world.insight.observe(e)
        insight_ms = (time.perf_counter() - start) / len(events) * 1000
        start = time.perf_counter()
        for e in events:
            world.records.append_event(e.shkeptncontext, e.to_json_dict())
        log_ms = (time.perf_counter() - start) / len(events) * 1000
        doc = json.loads(record.data["metrics"])
        print(f"metrics record at steady state: {record.size() / 1024:7.1f} KiB  "
              f"({len(doc['open'])} deliveries remembered, budget {dm.BYTES_BUDGET // 1024} KiB)")
        print(f"local file store, per event:    insight {insight_ms:6.2f} ms   event log (reference) {log_ms:6.2f} ms   "
              f"({len(events)} events of {len(events) // len(template)} deliveries)")


if __name__ == "__main__":
    main()
