"""Latency the weighted local router adds per request, beside a direct call in the same run.

Run: ``.venv/bin/python bench/router_overhead.py [requests]``

Deploys the sample service (carts 0.10.1 as primary, 0.10.3 as canary at 50 %) through the
``local`` backend, then sends ``requests`` GETs of ``/version`` alternately straight to the
primary's port and through the stage's router port, on kept-alive connections, one at a time.
Prints p50/p95 of each and what the router adds (the median of the per-pair differences).
Aim: ≤ 0.5 ms at p50.

The router and service processes run in sessions of their own; as root the bench raises their
priority (and its own) to nice -15, so that on a machine shared with other work the figures
measure the router, not the neighbours.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sluice.adapters.backends.local import LocalBackend
from sluice.ports.backend import Placement, Slot

IMAGES = Path(__file__).resolve().parents[1] / "examples" / "sockshop" / "images.yaml"
NICE = -15


def boost(pid: int) -> None:
    """Raise ``pid``'s priority and its session's (autogroup) when allowed."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(NICE))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, NICE)


def pids(runtime: Path) -> list[int]:
    found = []
    for path in runtime.rglob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("pid"), int):
                found.append(data["pid"])
    return found


def interleaved(direct: str, routed: str, n: int) -> tuple[list[float], list[float]]:
    with httpx.Client() as a, httpx.Client() as b:
        a.get(direct).raise_for_status()
        b.get(routed).raise_for_status()
        straight, via = [], []
        for _ in range(n):
            began = time.perf_counter()
            a.get(direct).raise_for_status()
            straight.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            b.get(routed).raise_for_status()
            via.append((time.perf_counter() - began) * 1000)
    return straight, via


def quantile(ms: list[float], q: float) -> float:
    ordered = sorted(ms)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    boost(os.getpid())
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "runtime"
        backend = LocalBackend(IMAGES, runtime)
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
            for pid in pids(runtime):
                boost(pid)
            straight, via = interleaved(direct + "/version", stage + "/version", n)
            added = statistics.median(v - s for s, v in zip(straight, via, strict=True))
            print(f"load average {os.getloadavg()[0]:.1f}; {n} requests each, interleaved, kept-alive")
            print(f"   direct /version      p50 {statistics.median(straight):6.3f} ms   p95 {quantile(straight, 0.95):6.3f} ms")
            print(f"   via router /version  p50 {statistics.median(via):6.3f} ms   p95 {quantile(via, 0.95):6.3f} ms")
            print(f"   the router adds      p50 {statistics.median(via) - statistics.median(straight):+6.3f} ms   "
                  f"(median of per-pair differences {added:+.3f} ms; aim ≤ 0.5 ms)")
        finally:
            backend.stop_all()


if __name__ == "__main__":
    main()
