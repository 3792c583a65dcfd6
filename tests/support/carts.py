"""The example carts service as a real process for tests (on a free 127.0.0.1 port)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sluice.embedded.host import free_port

APP = Path(__file__).resolve().parents[2] / "examples" / "sockshop" / "carts" / "app.py"
START_TIMEOUT_S = 10.0


@contextmanager
def run_carts(*args: str) -> Iterator[str]:
    """Start ``carts/app.py`` with ``args`` and yield its URL once /health answers (bounded)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(APP), "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"carts exited at start: {proc.stderr.read() if proc.stderr else ''!r}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"carts did not answer /health within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
