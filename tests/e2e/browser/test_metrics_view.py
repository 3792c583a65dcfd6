"""The delivery metrics on a service's page, in headless Chromium.

Its own bridge (functions-framework, ``--target bridge``) over a state directory where the
tutorial's three builds ran an hour ago (the page shows the last 30 days).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.insight_world import make_world

from sluice.adapters.state.local import LocalStore
from sluice.embedded.broker.processes import functions_framework
from sluice.embedded.host import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def metrics_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("metrics-state")
    world = make_world(store=LocalStore(state), start=datetime.now(UTC) - timedelta(hours=1))
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        world.deliver(tag)
    port = free_port()
    env = {**os.environ, "SLUICE_STATE_DIR": str(state), "SLUICE_STATE": "local"}
    log = (state.parent / "metrics-bridge.log").open("w+")
    proc = subprocess.Popen(
        [functions_framework(), "--source", str(ROOT / "functions" / "main.py"), "--target", "bridge",
         "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"the bridge did not answer: {log.read()[-2000:]}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_service_page_shows_delivery_metrics(page: Any, metrics_bridge: str, artifacts: Path) -> None:
    """Deployments, lead time, time per stage, staging's catch rate and its evaluations: each a
    number and a visible chart whose bars say what they count."""
    page.goto(f"{metrics_bridge}/project/sockshop/service/carts")
    section = page.locator("section#metrics")
    assert section.is_visible()
    deploys = section.locator('figure[data-metric="deployment-frequency"]')
    assert deploys.locator(".metric-number").inner_text() == "2"
    assert deploys.locator("svg").is_visible()
    bars = deploys.locator("svg rect.bar")
    assert sum(float(bars.nth(i).get_attribute("data-value")) for i in range(bars.count())) == 2
    catch = section.locator('figure[data-metric="catch-rate-staging"]')
    assert catch.locator(".metric-number").inner_text() == "33 %"
    assert "evaluation fail 1" in catch.inner_text()
    parts = catch.locator("svg rect.bar")
    assert [parts.nth(i).locator("title").text_content() for i in range(parts.count())] == ["promoted: 2", "evaluation_fail: 1"]
    box = catch.locator("svg").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 10
    evals = section.locator('figure[data-metric="evaluations-staging"]')
    assert evals.locator(".metric-number").inner_text() == "fail 1 · pass 2"
    assert section.locator('figure[data-metric="lead-time"] .metric-number').inner_text().startswith("median ")
    assert section.locator('figure[data-metric="stage-time"] svg rect.bar').count() == 3
    page.screenshot(path=str(artifacts / "metrics-carts.png"), full_page=True)
