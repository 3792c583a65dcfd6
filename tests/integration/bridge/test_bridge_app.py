"""The web view's pages and JSON API over the read-model, after the tutorial story ran in-process."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import yaml
from tests.support.flow import FakeClock, Flow
from tests.support.sockshop import CARTS, SHIPYARD, SLO, fake_runner

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.bridge.app import Bridge
from sluice.bridge.guard import Auth
from sluice.core.events import ConfigurationChange, Event
from sluice.services.records import Records


@pytest.fixture(scope="module")
def story():  # type: ignore[no-untyped-def]
    records = Records(MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    flow = Flow(records, NoopBackend(), fake_runner, FakeClock())
    contexts = {}
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        if tag == "0.10.2":
            records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
        change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}", labels={"note": "<script>x</script>"})
        events = flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z"))
        contexts[tag] = events[0].shkeptncontext
    sent: list[Event] = []
    return Bridge(records, sent.append), contexts, sent, records


def get(bridge: Bridge, path: str) -> tuple[str, int]:
    body, status, _ = bridge.handle("GET", path, {}, {})
    return str(body), status


def test_project_page_shows_versions_and_verdicts(story) -> None:  # type: ignore[no-untyped-def]
    """The project page has a column per stage with the primary versions and the last verdict."""
    bridge, *_ = story
    html, status = get(bridge, "/project/sockshop")
    assert status == 200
    assert [m for m in re.findall(r'<section class="stage" data-stage="([a-z]+)"', html)] == ["dev", "staging", "production"]
    assert html.count(f"{CARTS}:0.10.3") >= 3
    assert 'data-status="pass"' in html


def test_delivery_page_makes_the_rollback_obvious(story) -> None:  # type: ignore[no-untyped-def]
    """The 0.10.2 delivery's event stream has stage separators, a rollback banner and raw events."""
    bridge, contexts, *_ = story
    html, status = get(bridge, f"/delivery/{contexts['0.10.2']}")
    assert status == 200
    assert "ROLLED BACK" in html and 'class="event rollback"' in html
    assert "stage staging" in html and "raw CloudEvent" in html
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


def test_evaluation_card_marks_the_violated_criteria(story) -> None:  # type: ignore[no-untyped-def]
    """The failed staging evaluation lists response_time_p95 with its violated criterion."""
    bridge, _contexts, _, records = story
    failed = next(e for e in records.evaluations("sockshop", "staging", "carts") if e["result"] == "fail")
    html, status = get(bridge, f"/evaluation/sockshop/staging/carts/{failed['id']}")
    assert status == 200
    row = re.search(r'<tr class="indicator" data-sli="response_time_p95" data-status="fail">.*?</tr>', html)
    assert row and "violated" in row.group(0) and "&lt;600" in row.group(0)


def test_history_heatmap_links_to_evaluations(story) -> None:  # type: ignore[no-untyped-def]
    """The heatmap has a score row and one row per SLI; every cell links to its evaluation."""
    bridge, *_ = story
    html, status = get(bridge, "/history/sockshop/staging/carts")
    assert status == 200 and 'class="score-row"' in html and 'data-sli="response_time_p95"' in html
    assert "<svg" in html
    for link in re.findall(r'href="(/evaluation/[^"]+)"', html):
        assert get(bridge, link)[1] == 200


def test_api_serves_the_same_read_model(story) -> None:  # type: ignore[no-untyped-def]
    """/api/projects/<p> is the read-model the CLI prints with --output json."""
    bridge, _, _, records = story
    from sluice.services.readmodel import project_status

    body, status = get(bridge, "/api/projects/sockshop")
    assert status == 200 and json.loads(body) == json.loads(json.dumps(project_status(records, "sockshop"), default=str))
    body, status = get(bridge, "/api/deliveries/nope")
    assert status == 404 and "no delivery" in json.loads(body)["error"]


def test_approving_a_delivery_that_does_not_wait_sends_nothing(story) -> None:  # type: ignore[no-untyped-def]
    """Even for a signed-in user, approving what waits for no approval is a 404 and sends nothing
    (the approvals that do go through: tests/integration/bridge/test_bridge_guard.py)."""
    records = story[3]
    sent: list[Event] = []
    bridge = Bridge(records, sent.append, auth=Auth(identity_header="X-Forwarded-User"), sign=lambda e, user: e)
    form = {"project": "sockshop", "stage": "production", "service": "carts", "context": story[1]["0.10.3"],
            "decision": "approve", "csrf": "0" * 32}
    headers = {"Origin": "http://bridge.test", "Host": "bridge.test", "Cookie": f"sluice_csrf={'0' * 32}",
               "X-Forwarded-User": "alice"}
    body, status, _ = bridge.handle("POST", "/approve", {}, form, headers)
    assert status == 404 and "waits for approval" in str(body) and sent == []


def test_unknown_pages_are_404(story) -> None:  # type: ignore[no-untyped-def]
    """Deep links to things that do not exist answer 404 with a readable page."""
    bridge, *_ = story
    assert get(bridge, "/project/nope")[1] == 404
    assert get(bridge, "/nothing/here")[1] == 404
