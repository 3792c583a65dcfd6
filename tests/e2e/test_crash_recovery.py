"""`sluice up` after a crash: local deployments whose processes died are started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.carts import free_port

from sluice.adapters.backends.local import LocalBackend
from sluice.ports.backend import Placement, Slot

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_up_restarts_deployments_killed_in_a_crash(tmp_path: Path) -> None:
    """A stage whose carts process was killed serves its recorded version again after `sluice up`."""
    state = tmp_path / "state"
    backend = LocalBackend(ROOT / "examples" / "sockshop" / "images.yaml", state / "runtime")
    staging = Placement("sockshop", "staging", "carts")
    backend.deploy(staging, Slot.PRIMARY, "docker.io/keptnexamples/carts:0.10.3", 30)
    url = backend.route(staging, 0)
    for record in (state / "runtime" / "slots").glob("*.json"):
        os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)  # the crash
    router = json.loads((state / "runtime" / "router.json").read_text())
    os.kill(router["pid"], signal.SIGKILL)
    time.sleep(0.3)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/version", timeout=2)
    sluice = [sys.executable, "-m", "sluice.cli.main"]
    up = subprocess.run([*sluice, "up", "--state-dir", str(state), "--port", str(free_port()), "--tick", "0"],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert httpx.get(f"{url}/version", timeout=5).json()["version"] == "0.10.3"
    finally:
        subprocess.run([*sluice, "down", "--state-dir", str(state)], cwd=ROOT, capture_output=True, timeout=120)


def test_down_then_up_serves_every_recorded_url_again(tmp_path: Path) -> None:
    """After `sluice down` then `sluice up`, every stage and slot URL the backend returned serves its version
    again (defect 10: 32 of 32 stage URLs refused connections after down/up)."""
    state = tmp_path / "state"
    backend = LocalBackend(ROOT / "examples" / "sockshop" / "images.yaml", state / "runtime")
    staging, dev = Placement("sockshop", "staging", "carts"), Placement("sockshop", "dev", "carts")
    urls = {
        "staging primary": (backend.deploy(staging, Slot.PRIMARY, "docker.io/keptnexamples/carts:0.10.1", 30), "0.10.1"),
        "staging canary": (backend.deploy(staging, Slot.CANARY, "docker.io/keptnexamples/carts:0.10.3", 30), "0.10.3"),
        "dev direct": (backend.deploy(dev, Slot.DIRECT, "docker.io/keptnexamples/carts:0.10.3", 30), "0.10.3"),
    }
    urls["staging"] = (backend.route(staging, 0), "0.10.1")
    urls["dev"] = (backend.route(dev, 100), "0.10.3")
    sluice = [sys.executable, "-m", "sluice.cli.main"]
    up = [*sluice, "up", "--state-dir", str(state), "--port", str(free_port()), "--tick", "0"]
    try:
        assert subprocess.run(up, cwd=ROOT, capture_output=True, text=True, timeout=120).returncode == 0
        down = subprocess.run([*sluice, "down", "--state-dir", str(state)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert "local deployment" in down.stdout
        for url, _ in urls.values():
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{url}/version", timeout=2)
        again = subprocess.run(up, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        served = {name: httpx.get(f"{url}/version", timeout=5).json()["version"] for name, (url, _) in urls.items()}
        assert served == {name: v for name, (_, v) in urls.items()}
    finally:
        subprocess.run([*sluice, "down", "--state-dir", str(state)], cwd=ROOT, capture_output=True, timeout=120)
        backend.stop_all(forget=True)
