"""Latency the weighted local router adds, and the cost of a deploy (prints figures).

Run: ``.venv/bin/python bench/router_overhead.py [requests]``
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sluice.adapters.backends.local import LocalBackend
from sluice.ports.backend import Placement, Slot

IMAGES = Path(__file__).resolve().parents[1] / "examples" / "sockshop" / "images.yaml"


def timings(url: str, n: int) -> list[float]:
    with httpx.Client() as client:
        client.get(url)
        out = []
        for _ in range(n):
            began = time.perf_counter()
            client.get(url).raise_for_status()
            out.append((time.perf_counter() - began) * 1000)
    return out


def summary(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[int(len(ms) * 0.95) - 1]
    print(f"{name:<22} n={len(ms)}  p50={statistics.median(ms):6.2f} ms  p95={p95:6.2f} ms")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(IMAGES, Path(tmp) / "runtime")
        placement = Placement("bench", "staging", "carts")
        try:
            began = time.perf_counter()
            direct = backend.deploy(placement, Slot.PRIMARY, "docker.io/keptnexamples/carts:0.10.1", 30)
            print(f"first deploy (process + router start): {(time.perf_counter() - began) * 1000:.0f} ms")
            began = time.perf_counter()
            backend.deploy(placement, Slot.CANARY, "docker.io/keptnexamples/carts:0.10.3", 30)
            print(f"second deploy (process only):          {(time.perf_counter() - began) * 1000:.0f} ms")
            began = time.perf_counter()
            stage = backend.route(placement, 50)
            print(f"route:                                 {(time.perf_counter() - began) * 1000:.1f} ms")
            summary("direct /version", timings(direct + "/version", n))
            summary("via router /version", timings(stage + "/version", n))
        finally:
            backend.stop_all()


if __name__ == "__main__":
    main()
