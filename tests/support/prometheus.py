"""A real Prometheus (Debian's binary) on 127.0.0.1 scraping carts run by the local backend.

When the ``prometheus`` binary is missing these tests FAIL (they are never skipped): ``make
test`` installs it (``make system-deps``, which runs ``apt-get install prometheus`` as root).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sluice.adapters.backends.local import LocalBackend
from sluice.embedded.prometheus import ensure_prometheus, stop_prometheus

ROOT = Path(__file__).resolve().parents[2]
CARTS = ROOT / "examples" / "sockshop" / "carts" / "app.py"


def carts_buckets() -> tuple[float, ...]:
    """The histogram buckets (ms) the carts service exports."""
    spec = importlib.util.spec_from_file_location("carts_app_for_buckets", CARTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.BUCKETS_MS)


def _image(version: str, delay_ms: int) -> dict[str, Any]:
    return {"command": ["{python}", str(CARTS), "--app-version", version, "--delay-ms", str(delay_ms), "--port", "{port}"],
            "health": "/health"}


#: Builds the tests deploy: the tutorial's slow 0.10.2 (1 s late), a 1.6 s one, the fast 0.10.3.
IMAGES = {
    "images": {
        "docker.io/keptnexamples/carts:0.10.2": _image("0.10.2", 1000),
        "test.local/carts:delay-1600": _image("0.0.0-delay1600", 1600),
        "docker.io/keptnexamples/carts:0.10.3": _image("0.10.3", 0),
        "test.local/carts:replaced": _image("0.0.0-replaced", 0),
    }
}


def require_prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the 'prometheus' binary is not installed, so the Prometheus SLI tests cannot run: "
            "'make test' installs it (make system-deps: apt-get install -y prometheus)",
            pytrace=False,
        )
    return binary


@dataclass
class PromStack:
    """The running Prometheus and the local backend whose slots it scrapes."""

    url: str
    state_dir: Path
    backend: LocalBackend

    def query(self, expr: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as r:
            return list(json.load(r)["data"]["result"])

    def wait_for(self, expr: str, what: str, timeout_s: float = 40.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it has a result; fail naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                targets = (self.state_dir / "prometheus" / "targets.json").read_text()
                pytest.fail(f"{what}: no result for {expr} within {timeout_s:g} s; targets: {targets}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def prom_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromStack]:
    require_prometheus()
    state_dir = tmp_path_factory.mktemp("prom-state")
    url = ensure_prometheus(state_dir, 0, scrape_interval_s=1.0, timeout_s=60.0)
    backend = LocalBackend(IMAGES, state_dir / "runtime", python=sys.executable)
    try:
        yield PromStack(url, state_dir, backend)
    finally:
        backend.stop_all()
        stop_prometheus(state_dir)
