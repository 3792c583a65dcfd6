"""Benchmark: Sluice's load generator beside wrk, against the same fast local target, one core each.

    .venv/bin/python bench/loadgen.py [--seconds 5] [--rate 1000] [--connections 50]

Prints:

1. the highest throughput each reaches on one core — wrk (closed loop, ``-t1 -cN``) and ours as
   closed-loop virtual users (N users) and as an open loop asked for far more than it can send;
   and the ratio ours/wrk;
2. the constant rates ours sustains on one core (achieved rate, p50 and p99 at each step);
3. at a fixed rate below both limits, p50/p95/p99 side by side, on a fast route and on a route
   that answers 20 ms late. wrk 4 has no rate option and is closed loop: each of its connections
   waits ``connections / rate`` seconds between requests (a Lua ``delay()``), and its latency is
   measured from the actual send, where ours is measured from the intended send time.

The target (``sluice.testing.httptarget``) runs pinned to one CPU, the clients to another
(``sched_setaffinity``); on a one-CPU machine everything shares it and the figures mean less.
wrk comes from the Debian package (``apt-get install wrk``); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CPUS = sorted(os.sched_getaffinity(0))
CLIENT_CPU = CPUS[0]
TARGET_CPU = CPUS[1] if len(CPUS) > 1 else CPUS[0]

WRK_SCRIPT = """
local conns = {connections}
local rate = {rate}
function delay()
  if rate > 0 then return math.floor(1000 * conns / rate) end
  return 0
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "JSON {{\\"requests\\": %d, \\"seconds\\": %f, \\"errors\\": %d, \\"p50\\": %f, \\"p95\\": %f, \\"p99\\": %f}}\\n",
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def start_target() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.testing.httptarget", "--port", "0"],
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {TARGET_CPU}),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise SystemExit(f"target did not start: {line!r}")
    return proc, line


def ours(url: str, mode: str, seconds: float, rate: float = 0, vus: int = 0, path: str = "/") -> dict[str, Any]:
    """Run our generator in a child process pinned to the client CPU; its report as a dict."""
    code = (
        "import json, os\n"
        f"os.sched_setaffinity(0, {{{CLIENT_CPU}}})\n"
        "from sluice.loadgen import LoadProfile, LoadRequest, Mode, run_load_sync\n"
        f"profile = LoadProfile((LoadRequest({path!r}),), duration_s={seconds}, mode=Mode({mode!r}), "
        f"rate={rate or 1}, vus={vus or 1}, timeout_s=10, max_connections=1024)\n"
        f"print(json.dumps(run_load_sync({url!r}, profile).to_dict()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 60, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def wrk(url: str, seconds: float, connections: int, rate: float = 0, path: str = "/") -> dict[str, Any] | None:
    """Run wrk pinned to the client CPU (paced to ``rate`` when > 0); requests, throughput, p50/p95/p99 ms."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(connections=connections, rate=rate))
    try:
        out = subprocess.run(
            ["taskset", "-c", str(CLIENT_CPU), binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "--latency", "-s", script.name, url + path],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )
    finally:
        Path(script.name).unlink()
    match = re.search(r"^JSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["throughput"] = result["requests"] / result["seconds"]
    return result


def compare_at_rate(url: str, seconds: float, rate: float, path: str, connections: int) -> None:
    what = "fast route" if path == "/" else "a route answering late"
    print(f"\n3. at {rate:,.0f} req/s on {path} ({what}): latency side by side (ms)")
    mine = ours(url, "constant-arrival-rate", seconds, rate=rate, path=path)
    paced = wrk(url, seconds, connections, rate=rate, path=path)
    print("                                 req/s      p50      p95      p99")
    print(f"   ours (open loop, intended)  {mine['throughput']:>7,.0f}  {mine['response_time_p50']:>7.3f}  "
          f"{mine['response_time_p95']:>7.3f}  {mine['response_time_p99']:>7.3f}")
    if paced is None:
        print("   wrk not installed: apt-get install wrk")
        return
    print(f"   wrk -c{connections:<3} paced (closed)    {paced['throughput']:>7,.0f}  {paced['p50']:>7.3f}  "
          f"{paced['p95']:>7.3f}  {paced['p99']:>7.3f}")
    print(f"   ratio ours/wrk: p50 {mine['response_time_p50'] / paced['p50']:.2f}, "
          f"p95 {mine['response_time_p95'] / paced['p95']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sluice's load generator beside wrk")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--rate", type=float, default=1000.0, help="the fixed rate of the latency comparison")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections / our virtual users")
    args = parser.parse_args(argv)
    seconds, conns = args.seconds, args.connections

    target, url = start_target()
    print(f"target {url} on CPU {TARGET_CPU}; clients on CPU {CLIENT_CPU}; {seconds:g} s per run")
    try:
        time.sleep(0.5)
        print("\n1. highest throughput on one core")
        theirs = wrk(url, seconds, conns)
        closed = ours(url, "virtual-users", seconds, vus=conns)
        opened = ours(url, "constant-arrival-rate", seconds, rate=100_000)
        if theirs is not None:
            print(f"   wrk  -t1 -c{conns} (closed loop)            {theirs['throughput']:>9,.0f} req/s")
        print(f"   ours {conns} virtual users (closed loop)       {closed['throughput']:>9,.0f} req/s")
        print(f"   ours open loop asked for 100,000 req/s     {opened['throughput']:>9,.0f} req/s")
        if theirs is not None:
            print(f"   ratio ours/wrk: closed {closed['throughput'] / theirs['throughput']:.2f}, "
                  f"open {opened['throughput'] / theirs['throughput']:.2f}")

        print("\n2. constant rates ours sustains on one core (open loop)")
        print("   asked     achieved   errors   p50 ms   p99 ms")
        for rate in (1000, 2000, 3000, 4000, 6000):
            r = ours(url, "constant-arrival-rate", seconds, rate=rate)
            print(f"   {rate:>6,}  {r['throughput']:>9,.0f}   {r['errors']:>6}   {r['response_time_p50']:>6.2f}   "
                  f"{r['response_time_p99']:>6.2f}")

        compare_at_rate(url, seconds, args.rate, "/", 10)
        compare_at_rate(url, seconds, args.rate, "/delay/20", 40)
    finally:
        target.terminate()
        target.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
