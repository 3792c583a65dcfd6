"""Local broker figures: per-hop latency and events per second, Sluice function vs bare echo.

One hop = broker → function → reply → broker: the broker posts the event (binary mode), the
function answers with a reply CloudEvent, and the broker validates the reply and publishes it
back (the reply matches no Trigger here, so each event makes exactly one hop). The broker
measures each hop from the start of the POST to the reply being published (``/health``).

Two functions run behind the same broker in the same run:
- ``bare``: a bare functions-framework function (no Sluice import) that echoes the event's
  headers and body back with a new ``source`` and ``id`` — the floor;
- ``sluice``: a function on Sluice's adapter (``sluice.functions.http.serve``): it decodes and
  validates the event into a typed ``Event`` and replies with ``event.reply(Ping(...))``.

Run: .venv/bin/python bench/broker.py [--events 400] [--sequential 100] [--concurrency 16] [--rounds 3]
Aim: the Sluice hop within 1.5× of the bare hop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from sluice.embedded.broker.app import remember_missing_sniffio
from sluice.embedded.broker.processes import free_port
from sluice.embedded.broker.server import read_state

FUNCTIONS = '''
import json


def bare(request):
    """Echo: the request's CloudEvent headers and body, with a new source and id."""
    if request.method == "GET":
        return "ready", 200
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("ce-")}
    headers["ce-source"] = "bench/bare-reply"
    headers["ce-id"] = "r-" + request.headers.get("ce-id", "")
    headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
    return request.get_data(), 200, headers


def _reply(event, runtime):
    from sluice.core.events import Ping

    return [event.reply(Ping(message="pong"), source="bench/sluice-reply", time=runtime.now())]


def sluice(request):
    from sluice.functions.http import serve

    return serve(request, "bench", _reply)
'''

MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: sluice}
"""
SERVICE = """
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: bench-%(t)s, namespace: sluice}
spec:
  template:
    spec:
      containers:
        - image: bench
          env: [{name: FUNCTION_TARGET, value: %(t)s}]
"""
TRIGGER = """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: %(t)s-hop, namespace: sluice}
spec:
  broker: default
  filters: [{exact: {source: bench/%(t)s}}]
  delivery: {retry: 2, backoffDelay: PT0.01S}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: bench-%(t)s}}
"""
FLAVOURS = ("bare", "sluice")


def write_setup(root: Path) -> Path:
    (root / "knative").mkdir()
    (root / "triggers").mkdir()
    (root / "knative" / "all.yaml").write_text(MANIFESTS + "".join(SERVICE % {"t": t} for t in FLAVOURS))
    for t in FLAVOURS:
        (root / "triggers" / f"{t}.yaml").write_text(TRIGGER % {"t": t})
    source = root / "benchfunctions.py"
    source.write_text(FUNCTIONS)
    return source


def headers_for(flavour: str) -> dict[str, str]:
    return {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-source": f"bench/{flavour}",
            "ce-id": str(uuid.uuid4()), "ce-time": "2026-01-01T00:00:00Z", "content-type": "application/json"}


BODY = json.dumps({"message": "ping"}).encode()


async def health(client: httpx.AsyncClient, port: int, last: int = 1) -> dict[str, Any]:
    """The broker's counters; hop latency over the ``last`` N hops (1 keeps polling cheap)."""
    response = await client.get(f"http://127.0.0.1:{port}/health", params={"last": last})
    return dict(response.json()["metrics"])


async def wait_delivered(client: httpx.AsyncClient, port: int, trigger: str, target: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = await health(client, port)
        if metrics["delivered"].get(trigger, 0) >= target:
            return
        if metrics["dead_lettered"].get(trigger):
            raise SystemExit(f"bench: {trigger} dead-lettered events: {metrics['dead_lettered']}")
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {trigger} delivered {metrics['delivered'].get(trigger, 0)}/{target} in {timeout_s} s")
        await asyncio.sleep(0.005)


async def sequential_hops(client: httpx.AsyncClient, port: int, url: str, flavour: str, n: int) -> dict[str, float]:
    """``n`` events one at a time; the broker's hop latency over exactly these ``n`` hops."""
    trigger = f"{flavour}-hop"
    for _ in range(n):
        before = (await health(client, port))["delivered"].get(trigger, 0)
        response = await client.post(url, headers=headers_for(flavour), content=BODY)
        assert response.status_code == 202, response.text
        await wait_delivered(client, port, trigger, before + 1)
    return dict((await health(client, port, last=n))["hop_latency"][trigger])


async def throughput(client: httpx.AsyncClient, port: int, url: str, flavour: str, n: int, concurrency: int) -> float:
    """Events per second for ``n`` events posted with ``concurrency`` in flight, until all hopped."""
    trigger = f"{flavour}-hop"
    before = (await health(client, port))["delivered"].get(trigger, 0)
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            response = await client.post(url, headers=headers_for(flavour), content=BODY)
            assert response.status_code == 202, response.text

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    await wait_delivered(client, port, trigger, before + n)
    return n / (time.perf_counter() - started)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def run(port: int, n: int, sequential: int, concurrency: int, rounds: int) -> None:
    remember_missing_sniffio()  # the load generator shares the 2 cores: keep its httpx lean too
    url = f"http://127.0.0.1:{port}/sluice/default"
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for flavour in FLAVOURS:  # warm-up: imports, connections
            await throughput(client, port, url, flavour, 50, 8)
        hops: dict[str, list[dict[str, float]]] = {f: [] for f in FLAVOURS}
        rates: dict[str, list[float]] = {f: [] for f in FLAVOURS}
        for _ in range(rounds):  # interleaved, so drift hits both alike
            for flavour in FLAVOURS:
                hops[flavour].append(await sequential_hops(client, port, url, flavour, sequential))
            for flavour in FLAVOURS:
                rates[flavour].append(await throughput(client, port, url, flavour, n, concurrency))
        final = await health(client, port)

    print(f"local broker, one hop = broker → function → reply → broker ({os.cpu_count()} cores; "
          "functions-framework 1 gunicorn worker each)")
    print(f"  hop latency: {sequential} sequential events × {rounds} rounds (median of rounds); "
          f"load: {n} events × {rounds} rounds, {concurrency} in flight")
    print(f"  {'function':28}  {'hop p50':>9}  {'hop p95':>9}  {'hop mean':>9}  {'events/s':>9}")
    summary: dict[str, dict[str, float]] = {}
    labels = {"bare": "bare functions-framework echo", "sluice": "Sluice adapter (http.serve)"}
    for flavour in FLAVOURS:
        summary[flavour] = {k: median([h[f"{k}_ms"] for h in hops[flavour]]) for k in ("p50", "p95", "mean")}
        summary[flavour]["rate"] = median(rates[flavour])
        s = summary[flavour]
        print(f"  {labels[flavour]:28}  {s['p50']:6.2f} ms  {s['p95']:6.2f} ms  {s['mean']:6.2f} ms  {s['rate']:9.0f}")
    ratio = summary["sluice"]["p50"] / summary["bare"]["p50"]
    rate_ratio = summary["bare"]["rate"] / summary["sluice"]["rate"]
    verdict = "within" if ratio <= 1.5 else "OVER"
    print(f"  Sluice hop / bare hop (p50): {ratio:.2f}× ({verdict} the 1.5× aim); "
          f"bare / Sluice events per second under load: {rate_ratio:.2f}×")
    print(f"  broker totals: accepted {final['accepted']}, replies {final['replies']}, failed attempts "
          f"{sum(final['failed_attempts'].values())} (retried), dead-lettered {sum(final['dead_lettered'].values())}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400, help="events per load batch (default 400)")
    parser.add_argument("--sequential", type=int, default=100, help="sequential events per round (default 100)")
    parser.add_argument("--concurrency", type=int, default=16, help="events in flight under load (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-broker-") as tmp:
        root = Path(tmp)
        source = write_setup(root)
        port = free_port()
        cmd = [sys.executable, "-m", "sluice.embedded.broker", "--port", str(port), "--state-dir", str(root / "state"),
               "--knative", str(root / "knative"), "--triggers", str(root / "triggers"), "--source", str(source),
               "--tick", "0"]
        log = root / "broker.log"
        with open(log, "wb") as out:
            broker = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not read_state(root / "state").get("ready"):
                if broker.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.05)
            asyncio.run(run(port, args.events, args.sequential, args.concurrency, args.rounds))
        finally:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                broker.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
