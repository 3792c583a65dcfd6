"""The web view's actions: only an authenticated user, from this site, with the page's CSRF token,
approving something that waits — anything else is a 4xx that sends and stores nothing."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from tests.support.flow import by_type
from tests.support.security_world import KEY, held_world, keys

from sluice.bridge.app import Bridge
from sluice.bridge.guard import Auth
from sluice.core.approval_auth import check_approval, sign
from sluice.core.events import Event, EventType

CSRF = "ab" * 16
SITE = {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080", "Cookie": f"sluice_csrf={CSRF}"}
TOKEN = "a-bearer-token-of-the-bridge-0123"


def snapshot(records: Any) -> list[tuple[str, dict[str, str], dict[str, str], str | None]]:
    return [(r.name, dict(r.data), dict(r.labels), r.resource_version) for r in records.store.list({})]


@pytest.fixture
def web():  # type: ignore[no-untyped-def]
    records, _backend, flow, context = held_world()
    sent: list[Event] = []
    bridge = Bridge(
        records, sent.append,
        auth=Auth(token=lambda: (TOKEN, "ci-bot"), identity_header="X-Forwarded-User"),
        sign=lambda event, user: sign(event, KEY, user),
    )
    form = {"project": "sockshop", "stage": "production", "service": "carts", "context": context,
            "decision": "approve", "csrf": CSRF}
    return bridge, sent, records, flow, form


def test_a_signed_in_user_approves_and_the_gate_obeys(web) -> None:  # type: ignore[no-untyped-def]
    """Same site, CSRF token, proxy identity: the approval is signed for that user and promotes."""
    bridge, sent, _records, flow, form = web
    _, status, headers = bridge.handle("POST", "/approve", {}, form, {**SITE, "X-Forwarded-User": "alice"})
    assert status == 303 and headers["Location"] == "/project/sockshop"
    (event,) = sent
    now = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    assert check_approval(event, keys, now).approver == "alice"
    flow.clock.current = now
    after = flow.send(event)
    (promote,) = by_type(after, EventType.CONFIGURATION_CHANGE)
    assert promote.data.approver == "alice"  # type: ignore[attr-defined]


def test_a_bearer_token_approves_through_the_api_without_a_browser(web) -> None:  # type: ignore[no-untyped-def]
    """A script with the bridge's token needs neither Origin nor CSRF token."""
    bridge, sent, *_ , form = web
    _, status, _ = bridge.handle("POST", "/api/approve", {}, {k: v for k, v in form.items() if k != "csrf"},
                                 {"Authorization": f"Bearer {TOKEN}"})
    assert status == 202 and sent[0].extensions["sluiceapprover"] == "ci-bot"


@pytest.mark.parametrize(
    ("headers", "form_change", "status", "says"),
    [
        ({**SITE, "Origin": "http://evil.example", "X-Forwarded-User": "alice"}, {}, 403, "cross-origin"),
        ({**SITE, "Origin": "null", "X-Forwarded-User": "alice"}, {}, 403, "null"),
        ({"Host": "127.0.0.1:8080", "Cookie": f"sluice_csrf={CSRF}", "X-Forwarded-User": "alice"}, {}, 403, "Origin"),
        ({**SITE, "Referer": "http://evil.example/x", "Origin": "", "X-Forwarded-User": "alice"}, {}, 403, "cross-origin"),
        ({**SITE, "X-Forwarded-User": "alice"}, {"csrf": "cd" * 16}, 403, "CSRF"),
        ({**SITE, "X-Forwarded-User": "alice"}, {"csrf": ""}, 403, "CSRF"),
        ({**SITE, "Cookie": "", "X-Forwarded-User": "alice"}, {}, 403, "CSRF cookie"),
        (SITE, {}, 401, "authenticated user"),
        ({**SITE, "X-Forwarded-User": "<script>"}, {}, 401, "user name"),
        ({"Authorization": "Bearer wrong"}, {}, 403, "Origin"),
        ({**SITE, "Authorization": "Bearer wrong"}, {}, 401, "bearer token"),
    ],
)
def test_a_request_that_fails_a_check_changes_nothing(web, headers, form_change, status, says) -> None:  # type: ignore[no-untyped-def]
    """Cross-origin, no or wrong CSRF token, no user: a 4xx naming why; nothing sent, nothing stored."""
    bridge, sent, records, _flow, form = web
    before = snapshot(records)
    for path in ("/approve", "/api/approve"):
        body, got, _ = bridge.handle("POST", path, {}, {**form, **form_change}, headers)
        assert got == status and says in str(body)
    assert sent == [] and snapshot(records) == before


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"project": "nosuchproject"}, "nosuchproject"),
        ({"stage": "x"}, "no stage x"),
        ({"service": "y"}, "no service y"),
        ({"context": "0f6ad3c2-6b48-4b7e-9c43-123456789abc"}, "0f6ad3c2-6b48-4b7e-9c43-123456789abc"),
        ({"project": "Not_A_Name"}, "project"),
        ({"decision": "maybe"}, "decision"),
    ],
)
def test_approving_what_does_not_exist_creates_nothing(web, change, names) -> None:  # type: ignore[no-untyped-def]
    """Unknown project, stage, service or delivery: 404/400 naming it; no record created, nothing sent."""
    bridge, sent, records, _flow, form = web
    before = snapshot(records)
    body, status, _ = bridge.handle("POST", "/approve", {}, {**form, **change}, {**SITE, "X-Forwarded-User": "alice"})
    assert status in (400, 404) and names in str(body)
    assert sent == [] and snapshot(records) == before


@pytest.mark.parametrize("path", ["/", "/project/sockshop", "/project/sockshop/service/carts", "/nothing",
                                  "/api/projects", "/assets/sluice.css"])
def test_every_answer_carries_the_security_headers(web, path: str) -> None:  # type: ignore[no-untyped-def]
    """Strict CSP without any script, no framing, no sniffing — on pages, errors, API and assets."""
    bridge, *_ = web
    _, _, headers = bridge.handle("GET", path, {}, {})
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_every_form_carries_the_csrf_token_of_its_cookie(web) -> None:  # type: ignore[no-untyped-def]
    """A first visit gets a fresh HttpOnly SameSite=Strict cookie; each form posts the same value."""
    bridge, *_ = web
    html, _, headers = bridge.handle("GET", "/project/sockshop", {}, {})
    token = re.match(r"sluice_csrf=([0-9a-f]{32}); Path=/; HttpOnly; SameSite=Strict", headers["Set-Cookie"])
    assert token
    forms = re.findall(r"<form\b.*?</form>", str(html), re.S)
    assert forms and all(f'name="csrf" value="{token.group(1)}"' in f for f in forms)
    html, _, headers = bridge.handle("GET", "/project/sockshop", {}, {}, {"Cookie": f"sluice_csrf={CSRF}"})
    assert "Set-Cookie" not in headers and f'value="{CSRF}"' in str(html)


def test_a_forged_prefix_cannot_redirect_elsewhere(web) -> None:  # type: ignore[no-untyped-def]
    """X-Forwarded-Prefix '//evil.example' is not a path: links and redirects stay on this site."""
    _bridge, sent, records, _flow, form = web
    bridge = Bridge(records, sent.append, base="//evil.example", auth=Auth(identity_header="X-Forwarded-User"),
                    sign=lambda event, user: event)
    _, status, headers = bridge.handle("POST", "/approve", {}, form, {**SITE, "X-Forwarded-User": "alice"})
    assert status == 303 and headers["Location"] == "/project/sockshop"
