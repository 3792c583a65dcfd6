"""The what-if replay in the web view, in headless Chromium: paste or upload an SLO on a service's
history page and see the heatmap recoloured, changed cells marked, inconclusive in its own colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.e2e.browser.conftest import Requests

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
TUTORIAL_SLO = (ROOT / "examples" / "sockshop" / "slo.yaml").read_text()
LOOSER = TUTORIAL_SLO.replace('"<600"', '"<1200"').replace('- "<=+10%"', "").replace(
    "    comparison:\n      method: mann_whitney\n      confidence: 0.95\n", "")
STRICTER = TUTORIAL_SLO.replace('"<=+10%"', '"<=+5%"')
GREEN, RED, TEAL = "rgb(47, 133, 90)", "rgb(197, 48, 48)", "rgb(44, 122, 123)"


def background(locator: Any) -> str:
    return str(locator.evaluate("el => getComputedStyle(el).backgroundColor"))


def score_cell(page: Any, tag_index: int) -> Any:
    return page.locator("tr.score-row td.cell").nth(tag_index)


def test_pasted_looser_slo_turns_the_slow_build_green(page: Any, bridge_url: str, artifacts: Path,
                                                     requests_log: Requests) -> None:
    """Pasting a looser SLO: 0.10.2's red cells turn green and are marked ◆ (was fail); the others keep their colour."""
    page.goto(f"{bridge_url}/history/sockshop/staging/carts")
    assert background(score_cell(page, 1)) == RED
    page.locator("form.replay textarea").fill(LOOSER)
    page.locator("form.replay button[type=submit]").click()
    page.wait_for_selector(".replay-summary")
    assert "1 fail→pass" in page.locator(".replay-summary").inner_text()
    changed = page.locator("td.cell.changed")
    assert changed.count() == 2
    slow = score_cell(page, 1)
    assert slow.get_attribute("data-was") == "fail" and background(slow) == GREEN
    assert slow.inner_text().startswith("◆")
    assert background(score_cell(page, 0)) == GREEN and background(score_cell(page, 2)) == GREEN
    row = page.locator('tr.replayed-build[data-transition="fail→pass"]')
    assert "response_time_p95: fail → pass" in row.inner_text()
    assert page.locator("form.replay textarea").input_value() == LOOSER  # the SLO stays for the next try
    page.screenshot(path=str(artifacts / "replay-looser.png"), full_page=True)
    assert requests_log.outside == []


def test_uploaded_stricter_slo_turns_the_fast_build_red(page: Any, bridge_url: str, artifacts: Path, tmp_path: Path) -> None:
    """Uploading a stricter SLO file: 0.10.3 flips pass → fail and is marked."""
    path = tmp_path / "stricter.yaml"
    path.write_text(STRICTER, encoding="utf-8")
    page.goto(f"{bridge_url}/history/sockshop/staging/carts")
    page.locator("form.replay input[type=file]").set_input_files(str(path))
    page.locator("form.replay button[type=submit]").click()
    page.wait_for_selector(".replay-summary")
    assert "1 pass→fail" in page.locator(".replay-summary").inner_text()
    fast = score_cell(page, 2)
    assert fast.get_attribute("data-was") == "pass" and background(fast) == RED
    page.screenshot(path=str(artifacts / "replay-stricter.png"), full_page=True)


def test_indicator_not_measured_then_is_inconclusive_in_its_own_colour(page: Any, bridge_url: str, artifacts: Path) -> None:
    """An SLO naming response_time_p99 (never measured): every build is inconclusive — teal score cells
    with '?', and the summary says which indicator was not measured then."""
    p99 = TUTORIAL_SLO.replace("  - sli: error_rate", '  - sli: response_time_p99\n    pass: [{criteria: ["<800"]}]\n  - sli: error_rate')
    page.goto(f"{bridge_url}/history/sockshop/staging/carts")
    page.locator("form.replay textarea").fill(p99)
    page.locator("form.replay button[type=submit]").click()
    page.wait_for_selector(".replay-summary")
    assert "not measured then" in page.locator(".replay-summary").inner_text()
    assert "response_time_p99" in page.locator(".replay-summary").inner_text()
    for i in range(3):
        assert background(score_cell(page, i)) == TEAL and score_cell(page, i).inner_text().endswith("?")
    assert page.locator('tr[data-sli="response_time_p99"] td.cell.error').count() == 3
    page.screenshot(path=str(artifacts / "replay-p99.png"), full_page=True)


def test_an_invalid_slo_is_named_on_the_page(page: Any, bridge_url: str) -> None:
    """An invalid SLO: the page says what is wrong (status 400) and keeps the text."""
    page.goto(f"{bridge_url}/history/sockshop/staging/carts")
    page.locator("form.replay textarea").fill("objectives: []\n")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("form.replay button[type=submit]").click()
    assert answer.value.status == 400
    assert "total_score" in page.locator(".replay-problem").inner_text()
    assert page.locator("form.replay textarea").input_value() == "objectives: []\n"
