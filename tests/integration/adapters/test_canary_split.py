"""The local router's weighted split for canary steps, measured through the real router process
and real service processes (issue 19): over 1,000 requests to the stage's public URL, the
candidate's share is within ±2 points of the asked weight at every step."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sluice.adapters.backends.local import LocalBackend
from sluice.embedded.host import pid_alive
from sluice.ports.backend import Placement, Slot

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sockshop"
CARTS = "docker.io/keptnexamples/carts"
PRODUCTION = Placement("sockshop", "production", "carts")
REQUESTS = 1000


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    data = yaml.safe_load((EXAMPLE / "images.yaml").read_text())
    for entry in data["images"].values():
        entry["command"] = [arg.replace("{dir}", str(EXAMPLE)) for arg in entry["command"]]
    images = tmp_path / "images.yaml"
    images.write_text(yaml.safe_dump(data))
    b = LocalBackend(images, tmp_path / "runtime", drain_timeout_s=15, stop_timeout_s=3)
    try:
        yield b
    finally:
        runtime = tmp_path / "runtime"
        files = [*(runtime / "slots").glob("*.json"), runtime / "router.json"]
        pids = [json.loads(f.read_text())["pid"] for f in files if f.exists()]
        b.stop_all()
        for pid in pids:
            if pid_alive(pid, None):
                os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
def test_each_canary_step_splits_real_traffic_within_two_points(backend: LocalBackend) -> None:
    backend.deploy(PRODUCTION, Slot.PRIMARY, f"{CARTS}:0.10.1", 20)
    backend.deploy(PRODUCTION, Slot.CANARY, f"{CARTS}:0.10.3", 20)
    measured: dict[int, float] = {}
    with httpx.Client(timeout=10) as client:
        for weight in (0, 10, 25, 50, 100):
            url = backend.route(PRODUCTION, weight)
            seen = Counter(client.get(f"{url}/version").json()["version"] for _ in range(REQUESTS))
            assert set(seen) <= {"0.10.1", "0.10.3"}
            measured[weight] = 100.0 * seen["0.10.3"] / REQUESTS
    print("asked weight → candidate share over 1,000 requests:", measured)
    for weight, share in measured.items():
        assert abs(share - weight) <= 2.0, (weight, share)
