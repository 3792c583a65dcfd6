"""A real broker process (``python -m sluice.embedded.broker``) over test manifests and test functions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sluice.embedded.broker.processes import free_port

T = TypeVar("T")
START_TIMEOUT_S = 60.0


def wait_for(probe: Callable[[], T], timeout_s: float = 20.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class RunningBroker:
    def __init__(self, root: Path, process: subprocess.Popen[bytes], port: int, record: Path) -> None:
        self.root = root
        self.process = process
        self.port = port
        self.record = record
        self.state_dir = root / "state"
        self.url = f"http://127.0.0.1:{port}/sluice/default"

    @property
    def dead_letter_file(self) -> Path:
        return self.state_dir / "broker" / "dead-letters.jsonl"

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as response:
            return dict(json.loads(response.read()))

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "broker" / "state.json").read_text()))

    def post(self, headers: dict[str, str], body: bytes | str, path: str | None = None) -> httpx.Response:
        return httpx.post(path or self.url, headers=headers, content=body, timeout=10)

    def received(self, event_id: str, target: str | None = None) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.record)
                if r["attrs"].get("id") == event_id and (target is None or r["target"] == target)]

    def dead_letters(self, event_id: str) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.dead_letter_file) if r["event"].get("id") == event_id]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise


def start_broker(root: Path, record: Path, source: Path, *, tick: float = 0.0, extra_env: dict[str, str] | None = None,
                 port: int | None = None) -> RunningBroker:
    port = port or free_port()
    state_dir = root / "state"
    cmd = [sys.executable, "-m", "sluice.embedded.broker", "--port", str(port), "--state-dir", str(state_dir),
           "--knative", str(root / "knative"), "--triggers", str(root / "triggers"), "--source", str(source),
           "--tick", str(tick), "--ready-timeout", "45"]
    log = open(root / "broker.out", "wb")  # noqa: SIM115 - closed with the process
    env = {**os.environ, **(extra_env or {})}
    env.pop("SLUICE_STATE_DIR", None)
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    broker = RunningBroker(root, process, port, record)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"broker exited with {process.returncode}:\n{(root / 'broker.out').read_text()}")
        try:
            return bool(broker.state().get("ready")) and broker.health()["status"] == "ok"
        except (OSError, ValueError, KeyError):
            return False

    try:
        wait_for(ready, START_TIMEOUT_S, "the broker to be ready")
    except BaseException:
        broker.stop()
        raise
    return broker


@pytest.fixture
def ping_headers() -> Callable[..., dict[str, str]]:
    def make(event_id: str, source: str, **extra: str) -> dict[str, str]:
        headers = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-source": source,
                   "ce-id": event_id, "content-type": "application/json"}
        headers.update({f"ce-{k}": v for k, v in extra.items()})
        return headers

    return make
