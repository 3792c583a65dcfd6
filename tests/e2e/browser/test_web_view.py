"""What a person sees in the web view, in headless Chromium, after the tutorial story ran.

The bridge is served for real by functions-framework (``--target bridge``) over a local state
directory; approvals go to a fake broker. Screenshots land in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.browser.conftest import IDENTITY_HEADER, FakeBroker, Requests
from tests.support.stories import HOSTILE, Stories

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

CARTS = "docker.io/keptnexamples/carts"


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def card(page: Any, stage: str, service: str = "carts") -> Any:
    return page.locator(f'section.stage[data-stage="{stage}"] .service[data-service="{service}"]')


def test_project_page_shows_versions_and_verdicts(page: Any, bridge_url: str, artifacts: Path) -> None:
    """Each stage column shows carts' primary version and the last verdict as a coloured chip."""
    page.goto(f"{bridge_url}/project/sockshop")
    assert [t.lower() for t in page.locator("section.stage h2").all_inner_texts()] == ["dev", "staging", "production"]
    for stage in ("dev", "staging", "production"):
        primary = card(page, stage).locator(".version.primary")
        assert primary.is_visible()
        assert primary.inner_text().strip().endswith(f"{CARTS}:0.10.3"), f"{stage}: {primary.inner_text()}"
    staging_chip = card(page, "staging").locator(".last-eval .chip")
    assert staging_chip.get_attribute("data-status") == "pass"
    assert staging_chip.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(47, 133, 90)"
    assert page.locator('meta[http-equiv="refresh"]').count() == 0, "nothing runs: the page must not refresh"
    shot(page, artifacts, "project-sockshop")


def test_deliveries_list_links_to_the_rollback(page: Any, bridge_url: str, stories: Stories, artifacts: Path) -> None:
    """From the project page, carts' deliveries list shows 0.10.2 red in staging; its event stream shows the rollback."""
    page.goto(f"{bridge_url}/project/sockshop")
    card(page, "staging").locator("h3 a").click()
    page.wait_for_url(re.compile(r"/project/sockshop/service/carts$"))
    rows = page.locator("tr.delivery")
    assert rows.count() == 3
    slow = page.locator("tr.delivery", has_text=f"{CARTS}:0.10.2")
    assert slow.locator('.chip[data-status="fail"]').inner_text() == "staging"
    assert slow.locator('.chip:has-text("production")').count() == 0
    shot(page, artifacts, "deliveries-carts")
    slow.locator("a").first.click()
    page.wait_for_url(re.compile(f"/delivery/{stories.contexts[('sockshop', '0.10.2')]}$"))
    banner = page.locator(".banner.rollback")
    assert banner.is_visible() and "ROLLED BACK" in banner.inner_text()
    rollback = page.locator("li.event.rollback")
    assert rollback.count() >= 1 and rollback.first.is_visible()
    assert "staging" in rollback.first.inner_text()
    separators = page.locator("li.separator")
    assert [separators.nth(i).get_attribute("data-stage") for i in range(separators.count())] == ["", "dev", "staging"]
    assert separators.nth(2).locator('.chip[data-status="fail"]').is_visible()
    assert page.locator("pre:visible").count() == 0, "raw events stay folded until asked for"
    first = page.locator("li.event").first
    first.locator("summary").click()
    raw = first.locator("pre")
    assert raw.is_visible() and stories.contexts[("sockshop", "0.10.2")] in raw.inner_text()
    assert "<b>" in raw.inner_text() and page.locator("pre b").count() == 0, "labels are shown escaped"
    shot(page, artifacts, "delivery-0.10.2")


def test_failing_evaluation_marks_the_violated_criterion(page: Any, bridge_url: str, stories: Stories, artifacts: Path) -> None:
    """The staging evaluation of 0.10.2 says FAIL and marks response_time_p95's '<600' as violated."""
    page.goto(f"{bridge_url}/delivery/{stories.contexts[('sockshop', '0.10.2')]}")
    page.locator('li.event[data-type="sh.keptn.events.evaluation-done"]', has_text="staging").locator("a.open").click()
    page.wait_for_url(re.compile(r"/evaluation/sockshop/staging/carts/"))
    assert page.locator(".verdict .chip").inner_text() == "FAIL"
    row = page.locator('tr.indicator[data-sli="response_time_p95"]')
    assert row.get_attribute("data-status") == "fail"
    violated = row.locator(".target.violated").all_inner_texts()
    assert any(t.startswith("<600") and "violated" in t for t in violated), violated
    assert any(t.startswith("<=+10% (52.8)") for t in violated), "the relative criterion shows what it resolved to"
    assert row.locator(".target.violated").first.evaluate("el => getComputedStyle(el).color") == "rgb(197, 48, 48)"
    assert row.locator("td.value").inner_text() == "1,050"
    comparison = row.locator("td").nth(5)
    assert comparison.inner_text().startswith("48 = avg of 48 from 0.10.1")
    comparison.locator("a").click()
    page.wait_for_url(re.compile(r"/evaluation/sockshop/staging/carts/"))
    assert page.locator("h1").inner_text().endswith("0.10.1 in staging"), "the comparison value links to where it came from"
    page.go_back()
    shot(page, artifacts, "evaluation-0.10.2-staging")


def test_heatmap_cell_opens_its_evaluation(page: Any, bridge_url: str, artifacts: Path) -> None:
    """Clicking the red cell of the history heatmap opens the evaluation it stands for."""
    page.goto(f"{bridge_url}/history/sockshop/staging/carts")
    charts = page.locator("figure.sli-chart")
    assert [charts.nth(i).get_attribute("data-sli") for i in range(charts.count())] == ["response_time_p95", "error_rate", "throughput"]
    chart = page.locator('figure.sli-chart[data-sli="response_time_p95"]')
    assert chart.locator("circle").count() == 3
    ticks = chart.locator("text.tick").all_text_contents()
    assert ticks[:3] == ["0", "600", "1,200"] and ticks[3:] == ["0.10.1", "0.10.2", "0.10.3"], ticks
    assert chart.locator("text.threshold-label").all_text_contents() == ["pass <600", "warning <=800"]
    shot(page, artifacts, "history-staging")
    red = page.locator('tr[data-sli="response_time_p95"] td.cell.fail a')
    assert red.count() == 1
    red.click()
    page.wait_for_url(re.compile(r"/evaluation/sockshop/staging/carts/"))
    assert page.locator(".verdict .chip").inner_text() == "FAIL"
    assert page.locator("h1").inner_text().endswith("0.10.2 in staging")


def test_approve_sends_approval_finished(page: Any, bridge_url: str, stories: Stories, broker: FakeBroker, artifacts: Path) -> None:
    """A signed-in user (the auth proxy's header) clicks Approve: approval.finished, signed for that user."""
    page.set_extra_http_headers({IDENTITY_HEADER: "alice"})
    page.goto(f"{bridge_url}/project/approvals")
    staging = card(page, "staging")
    assert "waiting for approval" in staging.locator(".notice.waiting").inner_text()
    assert f"{CARTS}:0.10.3" in staging.locator(".notice.queued").inner_text()
    queued_row = page.locator(f'tr.delivery[data-context="{stories.contexts[("approvals", "0.10.3")]}"]')
    assert queued_row.locator("td").last.inner_text() == "queued for staging"
    assert queued_row.locator('.chip[data-status="queued"]').inner_text() == "staging"
    assert "candidate 100 %" in staging.locator(".traffic").inner_text()
    shot(page, artifacts, "project-approvals")
    staging.locator("button.approve").click()
    page.wait_for_load_state()
    event = broker.wait_for("sh.keptn.event.approval.finished")
    assert event["shkeptncontext"] == stories.contexts[("approvals", "0.10.1")]
    assert event["data"]["approval"]["decision"] == "approve"
    assert (event["data"]["project"], event["data"]["stage"], event["data"]["service"]) == ("approvals", "staging", "carts")
    assert event["sluiceapprover"] == "alice" and event["sluiceapproval"].startswith("v1=")
    assert re.search(r"/project/approvals(\?.*)?$", page.url)


def test_approving_without_signing_in_is_refused(page: Any, bridge_url: str, broker: FakeBroker) -> None:
    """No identity: clicking Approve answers 401 with how to sign in, and nothing reaches the broker."""
    before = len(broker.received)
    page.goto(f"{bridge_url}/project/approvals")
    with page.expect_response(re.compile(r"/approve$")) as answer:
        card(page, "staging").locator("button.approve").click()
    assert answer.value.status == 401
    assert "authenticated user" in page.locator("main").inner_text()
    assert len(broker.received) == before


def test_markup_from_events_shows_as_text_and_never_runs(page: Any, bridge_url: str, stories: Stories) -> None:
    """Script, event handlers and markup in a delivery's tags, messages, labels and sources: shown as
    text, nothing executes (no dialog, the title untouched), and the CSP forbids script anyway."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    context = stories.contexts[("hostile", "0.10.9")]
    for path in (f"/delivery/{context}", "/project/hostile", "/project/hostile/service/carts"):
        response = page.goto(bridge_url + path)
        assert response is not None and response.status == 200, path
        assert "script-src" not in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_load_state("load")
        assert page.title() != "pwned" and dialogs == [], path
        assert page.locator("main script, main img[src=x], main svg[onload]").count() == 0, path
    page.goto(f"{bridge_url}/delivery/{context}")
    assert HOSTILE.split("<img")[0] in page.locator("main").inner_text()


def test_pages_of_running_deliveries_refresh(page: Any, bridge_url: str) -> None:
    """A project with a delivery in flight reloads itself (meta refresh) and says it is live."""
    page.goto(f"{bridge_url}/project/approvals")
    assert page.locator('meta[http-equiv="refresh"]').count() == 1
    assert page.locator("header .live").is_visible()
    with page.expect_event("load", timeout=15_000):
        pass  # the refresh navigates the page again


def test_deep_links_load_directly(page: Any, bridge_url: str, stories: Stories) -> None:
    """Every page answers 200 when opened cold from its URL; an unknown one answers a readable 404."""
    ctx = stories.contexts[("sockshop", "0.10.2")]
    with urllib.request.urlopen(f"{bridge_url}/api/projects/sockshop/stages/staging/services/carts/evaluations", timeout=10) as r:
        evaluation_id = json.load(r)[0]["id"]
    for path in ("/", "/project/sockshop", "/project/sockshop/service/carts", f"/delivery/{ctx}",
                 f"/evaluation/sockshop/staging/carts/{evaluation_id}", "/history/sockshop/staging/carts",
                 "/api/projects/sockshop"):
        response = page.goto(bridge_url + path)
        assert response is not None and response.status == 200, path
    response = page.goto(f"{bridge_url}/delivery/no-such-context")
    assert response is not None and response.status == 404
    assert "no delivery no-such-context" in page.locator("main").inner_text()


def test_no_request_leaves_localhost(page: Any, bridge_url: str, stories: Stories, requests_log: Requests) -> None:
    """Every asset of every page comes from the bridge on 127.0.0.1: nothing from a CDN."""
    for path in ("/", "/project/sockshop", "/project/approvals", "/project/sockshop/service/carts",
                 f"/delivery/{stories.contexts[('sockshop', '0.10.2')]}", "/history/sockshop/staging/carts"):
        page.goto(bridge_url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("header").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(26, 54, 93)", "CSS served"
    assert requests_log.outside == []
    assert any(url.endswith("/assets/sluice.css") for url in requests_log.seen)
