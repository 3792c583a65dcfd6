"""Fixtures of the browser tests: the stories in a state directory, the bridge served for real by
functions-framework, a fake broker that records what the bridge publishes, and Debian's Chromium
driven by Playwright.

Chromium must be installed (``make system-deps`` or ``apt-get install chromium``): when it is
missing these tests fail with that instruction instead of being skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.support.stories import Stories, write_stories

from sluice.embedded.broker.processes import functions_framework
from sluice.embedded.host import free_port
from sluice.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]
START_TIMEOUT_S = 30.0
#: The header an auth proxy in front of the bridge would set; the tests play that proxy.
IDENTITY_HEADER = "X-Forwarded-User"


class FakeBroker:
    """A broker ingress that answers 202 and keeps every CloudEvent POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = json.loads(body) if body else {}
                if "ce-type" in self.headers:  # binary mode
                    event = {"type": self.headers["ce-type"], "shkeptncontext": self.headers.get("ce-shkeptncontext"), "data": event}
                with broker.lock:
                    broker.received.append(event)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sluice/default"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, event_type: str, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                for event in self.received:
                    if event.get("type") == event_type:
                        return event
            time.sleep(0.05)
        raise AssertionError(f"the broker received no {event_type} within {timeout_s:g} s; it got {self.received}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
            "(run 'make system-deps', or 'apt-get install -y chromium chromium-driver' as root)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Stories:
    return write_stories(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def bridge_url(stories: Stories, broker: FakeBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bridge function served by functions-framework on 127.0.0.1, reading the stories."""
    try:
        framework = functions_framework()
    except ConfigurationError as err:
        pytest.fail(str(err), pytrace=False)
    port = free_port()
    env = {**os.environ, "SLUICE_STATE_DIR": str(stories.state_dir), "SLUICE_STATE": "local", "SLUICE_BROKER_URL": broker.url,
           "SLUICE_BRIDGE_IDENTITY_HEADER": IDENTITY_HEADER}
    env.pop("K_SINK", None)
    log = (tmp_path_factory.mktemp("bridge") / "bridge.log").open("w+")
    proc = subprocess.Popen(
        [framework, "--source", str(ROOT / "functions" / "main.py"), "--target", "bridge", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/", timeout=2.0) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"the bridge did not answer on {url} within {START_TIMEOUT_S:g} s:\n{log.read()[-3000:]}", pytrace=False)
        time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


class Requests:
    """Every URL the browser asked for; anything not on 127.0.0.1 is aborted and kept apart."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.outside: list[str] = []


@pytest.fixture(scope="module")
def browser_context(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium per test module: sync_playwright runs an event loop in the main thread until
    it exits, and a session-long one broke every later asyncio.run() (tests/integration/embedded/
    broker/test_journal.py failed after the browser tests in a full run)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860}, timeout=START_TIMEOUT_S * 1000,
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def requests_log() -> Requests:
    return Requests()


@pytest.fixture
def page(browser_context: Any, requests_log: Requests) -> Iterator[Any]:
    from urllib.parse import urlsplit

    def route(route: Any) -> None:
        url = route.request.url
        requests_log.seen.append(url)
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            requests_log.outside.append(url)
            route.abort()

    tab = browser_context.new_page()
    tab.route("**/*", route)
    yield tab
    with contextlib.suppress(Exception):
        tab.close()
