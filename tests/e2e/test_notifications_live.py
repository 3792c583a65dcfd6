"""Notifications through `sluice up`: a receiver that hangs does not hold the delivery.

The real broker, function processes and local backend; the receiver is a real HTTP server on
127.0.0.1 that does not answer until the test lets it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.carts import free_port
from tests.support.insight_world import Receiver

from sluice.adapters.state.local import LocalStore
from sluice.services.insight import outbox_entries
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sockshop"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def until(check: Callable[[], Any], what: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s:g} s")


def test_a_hanging_receiver_does_not_hold_the_delivery(tmp_path: Path) -> None:
    """While the receiver hangs, the delivery still ends in production; the message waits
    (timed out, retried on ticks) and is sent once the receiver answers."""
    state, port = tmp_path / "state", free_port()
    sluice = [sys.executable, "-m", "sluice.cli.main"]
    env_args = ["--state-dir", str(state)]

    def run(*argv: str) -> None:
        done = subprocess.run([*sluice, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    receiver = Receiver()
    receiver.gate.clear()  # hangs until the test opens it
    try:
        run("create", "project", "sockshop", "--shipyard", str(EXAMPLE / "shipyard.yaml"), *env_args)
        run("onboard", "service", "carts", "--project", "sockshop", *env_args)
        run("add", "notification", "--project", "sockshop", "--url", receiver.url, "--on", "promoted",
            "--stage", "dev", "--format", "cloudevent", *env_args)
        run("up", "--port", str(port), "--tick", "1", "--perf-duration", "2", *env_args)
        run("send", "event", "new-artifact", "--project", "sockshop", "--service", "carts",
            "--image", "docker.io/keptnexamples/carts", "--tag", "0.10.3",
            "--broker", f"http://127.0.0.1:{port}/sluice/default", *env_args)
        records = Records(LocalStore(state))

        def production_done() -> bool:
            return any(e["type"] == "sh.keptn.events.done" and e["data"]["stage"] == "production"
                       for c in records.contexts("sockshop", "carts") for e in records.events(c))

        until(production_done, "the delivery's end in production while the receiver hangs", timeout_s=100)
        assert receiver.received == [], "the receiver has not answered anything yet"
        [entry] = outbox_entries(records, "sockshop")
        assert entry["phase"] in ("pending", "sending") and entry["attempts"] >= 1
        receiver.gate.set()
        until(lambda: outbox_entries(records, "sockshop")[0]["phase"] == "sent", "the message sent after the receiver answers")
        assert {r["headers"]["Idempotency-Key"] for r in receiver.received} == {receiver.received[0]["headers"]["Idempotency-Key"]}
        assert receiver.received[0]["body"]["data"]["stage"] == "dev" and receiver.received[0]["body"]["data"]["outcome"] == "promoted"
    finally:
        receiver.close()
        subprocess.run([*sluice, "down", *env_args], cwd=ROOT, capture_output=True, timeout=120)
