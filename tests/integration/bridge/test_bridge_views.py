"""The web view's HTML: hostile text escaped on every page, plain-words states, readable chart axes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.adapters.state.memory import MemoryStore
from sluice.bridge import views
from sluice.bridge.app import Bridge
from sluice.services.records import Records

EVIL = '<img src=x onerror="alert(1)">'


def evaluation(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "ev-1", "image": f"carts:{EVIL}", "result": "fail", "score": 0.0, "context": "ctx-1", "time": "2026-01-01T00:00:00.000Z",
        "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z", "sli_provider": EVIL, "notes": [EVIL],
        "total_score": {"pass": 90.0, "warning": 75.0}, "score_arithmetic": {"text": EVIL}, "slo_file": EVIL,
        "comparison": {"compare_with": "single_result", "include_result_with_score": "pass", "aggregate_function": "avg",
                       "number_of_comparison_results": 1, "compared_evaluations": ["ev-0"]},
        "indicators": [{"name": EVIL, "display_name": EVIL, "value": 1050.0, "status": "fail", "score": 0.0, "message": EVIL,
                        "key_sli": True, "targets": [{"criteria": EVIL, "kind": "pass", "targetValue": 600.0, "violated": True}],
                        "comparison": {"value": 48.0, "aggregate_function": "avg", "values": [48.0], "evaluations": ["ev-0"]}}],
    }
    doc.update(over)
    return doc


def assert_escaped(html: str) -> None:
    assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_evaluation_page_escapes_everything_from_outside() -> None:
    """SLI names, criteria, messages, the SLO and the provider are shown as text, never as markup."""
    older = evaluation(id="ev-0", image="carts:0.10.1")
    html = views.evaluation_page("", "p", "staging", "carts", evaluation(), [older])
    assert_escaped(html)
    assert 'href="/evaluation/p/staging/carts/ev-0">0.10.1</a>' in html, "comparison values link to where they came from"


def test_history_and_delivery_pages_escape_everything_from_outside() -> None:
    """Heatmap, chart labels and the event stream escape names, images and messages."""
    html = views.history_page("", "p", "staging", "carts", [evaluation(), evaluation(id="ev-0", image=EVIL)], 0)
    assert_escaped(html)
    delivery = {"context": "c", "project": "p", "service": "carts", "image": EVIL, "started": "2026-01-01T00:00:00Z",
                "stages": [{"stage": "staging", "status": "fail", "outcome": "rolled_back"}],
                "events": [{"type": "sh.keptn.events.done", "source": EVIL, "time": "2026-01-01T00:00:01Z", "summary": EVIL,
                            "data": {"stage": "staging", "outcome": "rolled_back", "message": EVIL}}]}
    html = views.delivery_page("", delivery, 0)
    assert_escaped(html)
    assert "ROLLED BACK in staging" in html


def test_project_page_escapes_and_says_queued_and_waiting() -> None:
    """Queued and held deliveries are spelled out, with an approval form that carries the context."""
    svc = {"name": "carts", "primary": {"image": EVIL}, "candidate": {"image": "carts:2"}, "traffic": {"primary": 0, "canary": 100},
           "active_delivery": {"context": "c1", "image": "carts:2"}, "queued": [{"context": "c2", "image": EVIL, "since": ""}],
           "waiting_for_approval": [{"context": "c1", "image": "carts:2", "result": "warning", "since": ""}], "last_evaluation": None}
    view = {"project": "p", "stages": [{"name": "staging", "deployment_strategy": "blue_green_service", "test_strategy": "performance",
                                        "approval_strategy": {"pass": "automatic", "warning": "manual"}, "services": [svc]}]}
    recent = [{"context": "c2", "service": "carts", "image": EVIL, "started": "", "stages": [
        {"stage": "dev", "status": "pass", "outcome": "promoted"}, {"stage": "staging", "status": "running", "outcome": ""}]}]
    html = views.project_page("/bridge", view, 3, recent)
    assert_escaped(html)
    assert 'class="notice waiting"' in html and 'name="context" value="c1"' in html and 'action="/bridge/approve"' in html
    assert 'class="notice queued"' in html and "queued for staging" in html
    assert 'class="notice running"' not in html, "the held delivery is not also reported as running"
    assert '<meta http-equiv="refresh" content="3">' in html


@pytest.mark.parametrize(
    ("stages", "state"),
    [
        ([{"stage": "dev", "status": "pass", "outcome": "promoted"}, {"stage": "staging", "status": "fail", "outcome": "rolled_back"}],
         "rolled back in staging"),
        ([{"stage": "dev", "status": "pass", "outcome": "promoted"}, {"stage": "staging", "status": "waiting", "outcome": ""}],
         "waiting for approval in staging"),
        ([{"stage": "dev", "status": "running", "outcome": ""}], "running in dev"),
        ([{"stage": "production", "status": "pass", "outcome": "promoted"}], "promoted in production"),
        ([], "started"),
    ],
)
def test_delivery_state_in_plain_words(stages: list[dict[str, str]], state: str) -> None:
    """A delivery's state reads as where it stands."""
    assert views.delivery_state({"stages": stages}) == state


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False))
def test_chart_axis_top_is_round_and_above_the_data(value: float) -> None:
    """The y axis ends at a round number at or above the largest value, less than 4/3 × above it."""
    top = views._nice_top(value)
    assert value <= top < value * 4 / 3 + 1e-9
    mantissa = top / 10 ** int(f"{top:e}".split("e")[1])
    assert round(mantissa, 6) in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)


def test_stylesheet_is_served_under_assets_and_static() -> None:
    """The page links /assets/sluice.css (functions-framework's Flask shadows /static/); both paths answer."""
    bridge = Bridge(Records(MemoryStore()), lambda event: None, base="/bridge")
    html, status, _ = bridge.handle("GET", "/", {}, {})
    assert status == 200 and re.search(r'href="/bridge/assets/sluice\.css"', str(html))
    for path in ("/assets/sluice.css", "/static/sluice.css"):
        css, status, headers = bridge.handle("GET", path, {}, {})
        assert status == 200 and headers["Content-Type"].startswith("text/css") and ".chip" in str(css)
    assert bridge.handle("GET", "/assets/other.js", {}, {})[1] == 404


def test_approval_with_the_broker_down_says_so() -> None:
    """When the broker cannot take the approval the person sees a 503 page with the reason, not a redirect."""
    from sluice.errors import RetryableError

    def down(event: object) -> None:
        raise RetryableError("broker http://127.0.0.1:9/sluice/default unreachable")

    from tests.support.security_world import held_world

    from sluice.bridge.guard import Auth

    records, _, _, context = held_world()
    bridge = Bridge(records, down, auth=Auth(identity_header="X-Forwarded-User"), sign=lambda event, user: event)
    form = {"project": "sockshop", "stage": "production", "service": "carts", "context": context,
            "decision": "approve", "csrf": "0" * 32}
    headers = {"Origin": "http://b.test", "Host": "b.test", "Cookie": f"sluice_csrf={'0' * 32}", "X-Forwarded-User": "al"}
    html, status, headers = bridge.handle("POST", "/approve", {}, form, headers)
    assert status == 503 and "Location" not in headers and "unreachable" in str(html)
