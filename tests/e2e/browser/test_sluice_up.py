"""``sluice up`` serves the web view through the local broker (``/bridge/…``), in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.browser.conftest import ROOT, Requests, free_port
from tests.support.stories import Stories

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

CARTS = "docker.io/keptnexamples/carts"


def sluice(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sluice.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def up(stories: Stories, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``sluice up`` over a copy of the stories; yields (its output, the broker's base URL)."""
    state = tmp_path / "state"
    shutil.copytree(stories.state_dir, state)
    port = free_port()
    started = sluice("up", "--state-dir", str(state), "--port", str(port), "--tick", "0")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield started.stdout, f"http://127.0.0.1:{port}"
    finally:
        sluice("down", "--state-dir", str(state), timeout=60.0)


def test_sluice_up_serves_the_web_view(up: tuple[str, str], page: Any, requests_log: Requests, artifacts: Path) -> None:
    """Behind the broker's /bridge prefix every link, the stylesheet and the pages work."""
    output, base = up
    page.goto(f"{base}/bridge/")
    page.locator("ul.projects a", has_text="sockshop").click()
    page.wait_for_url(f"{base}/bridge/project/sockshop")
    assert page.locator("header").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(26, 54, 93)"
    primary = page.locator('section.stage[data-stage="production"] .version.primary').inner_text()
    assert primary.strip().endswith(f"{CARTS}:0.10.3")
    page.locator("tr.delivery", has_text=f"{CARTS}:0.10.2").locator("a").click()
    page.wait_for_url(re.compile(f"^{re.escape(base)}/bridge/delivery/"))
    assert page.locator(".banner.rollback").is_visible()
    shot = artifacts / "sluice-up-delivery.png"
    page.screenshot(path=str(shot), full_page=True)
    assert requests_log.outside == []
    assert all(url.startswith(f"{base}/bridge/") for url in requests_log.seen), requests_log.seen
    print(output)
