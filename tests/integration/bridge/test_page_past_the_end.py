"""A page number past the last page of a paged view is a 404 that says how many pages there are
(it said "No evaluation yet." of a service with a history, or showed an empty list of
deliveries); the last page and the first page of an empty view are still answered."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.state.memory import MemoryStore
from sluice.bridge.app import HISTORY_PAGE, RECENT, Bridge
from sluice.services.records import Records

SHIPYARD = "stages:\n  - name: staging\n    deployment_strategy: direct\n"


def world(deliveries: int, evaluations: int) -> Bridge:
    records = Records(MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    for n in range(deliveries):
        context = f"00000000-0000-0000-0000-{n:012d}"
        records.append_event(context, {"id": str(n), "source": "t", "type": "sh.keptn.event.configuration.change",
                                       "shkeptncontext": context, "time": f"2026-01-01T00:{n % 60:02d}:00Z",
                                       "data": {"project": "sockshop", "service": "carts", "stage": "staging"}})
    for n in range(evaluations):
        entry: dict[str, Any] = {"id": f"00000000-0000-0000-0000-{n:012d}", "time": f"2026-01-01T00:{n % 60:02d}:00Z",
                                 "image": f"carts:0.0.{n}", "result": "pass", "score": 100.0, "indicators": [],
                                 "slo_file": "objectives: []"}
        records.append_evaluation("sockshop", "staging", "carts", entry)
    return Bridge(records, lambda event: None)


PAGED = (("/history/sockshop/staging/carts", HISTORY_PAGE, "evaluation"), ("/project/sockshop/service/carts", RECENT, "deliver"))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 3 * HISTORY_PAGE), st.integers(1, 6))
def test_past_the_last_page_is_a_404_naming_the_page(count: int, number: int) -> None:
    bridge = world(count, count)
    for path, per_page, noun in PAGED:
        pages = max(1, -(-count // per_page))
        body, status, _ = bridge.handle("GET", path, {"page": str(number)}, {})
        if number <= pages:
            assert status == 200, (path, number, body)
        else:
            assert status == 404, (path, number, status)
            assert f"page {number}" in str(body) and f"{pages} page" in str(body) and noun in str(body), body
