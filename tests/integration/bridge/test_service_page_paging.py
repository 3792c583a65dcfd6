"""The service page shows one page of deliveries (issue 17): ten, newest first, with links to
older pages, so its reads do not grow with history; page and limit parameters are checked."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.counting import CountingStore

from sluice.bridge.app import RECENT, Bridge
from sluice.services.records import Records

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"


@pytest.fixture(scope="module")
def world() -> tuple[CountingStore, Bridge, Sequence[str]]:
    store = CountingStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    contexts = [f"00000000-0000-0000-0000-{n:012d}" for n in range(25)]
    for n, context in enumerate(contexts):
        records.append_event(context, {"id": str(n), "source": "t", "type": "sh.keptn.event.configuration.change",
                                       "shkeptncontext": context, "time": f"2026-01-01T00:{n:02d}:00Z",
                                       "data": {"project": "sockshop", "service": "carts", "stage": "dev",
                                                "valuesCanary": {"image": f"carts:{n}"}}})
    return store, Bridge(records, lambda e: None), contexts


def shown(html: str) -> list[str]:
    return re.findall(r"/delivery/([0-9a-f-]{36})", html)


def test_pages_of_ten_newest_first_with_links(world: tuple[CountingStore, Bridge, Sequence[str]]) -> None:
    """25 deliveries: pages of 10, 10 and 5, newest first, each reading only its own logs."""
    store, bridge, contexts = world
    seen = []
    for number, size in ((1, RECENT), (2, RECENT), (3, 5)):
        store.reset()
        body, status, _ = bridge.handle("GET", "/project/sockshop/service/carts", {"page": str(number)}, {})
        assert status == 200
        page = list(dict.fromkeys(shown(str(body))))
        assert len(page) == size and store.read_of("context.") == size
        assert (f"page={number + 1}" in str(body)) == (number < 3) and (f"page={number - 1}" in str(body)) == (number > 1)
        seen += page
    assert seen == list(reversed(contexts))


def test_the_api_pages_with_limit_and_offset(world: tuple[CountingStore, Bridge, Sequence[str]]) -> None:
    _store, bridge, contexts = world
    body, status, _ = bridge.handle("GET", "/api/projects/sockshop/services/carts/deliveries", {"limit": "3", "offset": "2"}, {})
    assert status == 200
    assert [d["context"] for d in json.loads(str(body))] == list(reversed(contexts))[2:5]


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.just("²"), st.text(max_size=12)).filter(
    lambda t: not (t.isascii() and t.isdigit() and 1 <= int(t) <= 10_000) and t != ""))
def test_a_bad_page_number_is_a_400_naming_it(world: tuple[CountingStore, Bridge, Sequence[str]], text: str) -> None:
    _store, bridge, _contexts = world
    body, status, _ = bridge.handle("GET", "/project/sockshop/service/carts", {"page": text}, {})
    assert status == 400 and "page" in str(body)
