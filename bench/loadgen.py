"""Benchmark: Sluice's load generator beside wrk, on one core each, against nginx and our own target.

    .venv/bin/python bench/loadgen.py [--seconds 5] [--connections 50] [--rate 10000]

Prints, measured in the same run:

1. closed loop, highest throughput on one core: ``wrk -t1 -cN`` and ours with N virtual users,
   against nginx (Debian ``nginx-light``, started here on 127.0.0.1 with one worker) and against
   ``tests.support.httptarget`` (the target the tests use). Besides requests/s (wall clock, which
   on a shared machine depends on what else runs) it prints requests per CPU-second of the client
   process, which does not: it is what one dedicated core would reach.
2. open loop on one core (one worker process): asked ``--rate`` and a few other rates: sent,
   dropped, p50/p99 measured from the intended send time, and the CPU the client used.
3. open loop asked for more than one core sends: the run is spread over one process per core and
   the histograms merged (``workers`` column).
4. latency side by side at a low rate (200 and 1,000 req/s on nginx, 200 req/s on a route of our
   target that answers 20 ms late): ours (open loop, from the intended send time) and wrk paced to
   the same rate by a Lua ``delay()`` over one schedule (closed loop, from the actual send),
   alternating for a few rounds; the medians of their p50s side by side. Ours also prints how late
   its requests went out and its latency from the actual send (instrumented here, as wrk measures).
   Our percentiles are the midpoint of a bucket 0.78 % wide (half a bucket: ±0.39 %); wrk's are
   exact to the microsecond. (An earlier version paced wrk with a fixed delay per connection, so
   on the 20 ms route wrk sent 137 req/s while ours sent 200: the two did not load the target alike.)
   On the 20 ms route the two p50s may differ by up to about ±0.5 ms from one run to the next (either
   sign): the target's asyncio loop waits in epoll, which rounds every wait up to the next
   millisecond, so how late its 20 ms timers fire depends on how the arrivals fall against them.
   Served by the same target on a ``select(2)`` loop (microsecond waits) the p50s agreed within
   0.11 ms, inside our half bucket, both on ``/delay/20`` and ``/delay/22.5`` (session 4).

The target runs pinned to one CPU, the clients to another (``sched_setaffinity``), both at
``nice -15`` when allowed (root): on a machine shared with other work a normal process gets only
its share of a core and the wall-clock figures would measure the neighbours; the req-per-CPU-second
figures do not depend on it. On a one-CPU machine everything shares it and the figures mean less. ``make bench`` installs
wrk and nginx-light (Debian); without them their rows say so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CPUS = sorted(os.sched_getaffinity(0))
CLIENT_CPU = CPUS[0]
TARGET_CPU = CPUS[1] if len(CPUS) > 1 else CPUS[0]
#: The niceness of clients and target (negative: ahead of the machine's other work; needs root).
NICE = -15


def boosted(cpu: int | None) -> None:
    """preexec_fn: pin to ``cpu`` (None: any) and raise the priority when allowed. With the
    kernel's autogroups, niceness only counts inside a session, so the process gets a session
    of its own and that session's group gets the niceness too."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    with suppress(OSError):
        os.setsid()
    with suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(NICE))
    with suppress(PermissionError):
        os.nice(NICE)


def boost_note() -> str:
    return f"nice {NICE}" if os.geteuid() == 0 else "normal priority (not root: the figures share the CPUs)"


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ return 200 "hello\\n"; }}
  }}
}}
"""

WRK_SCRIPT = """
-- Paced to {rate} req/s over all connections: each delay() claims the next free slot of one
-- schedule (1000 / rate ms apart) read from CLOCK_MONOTONIC through LuaJIT's FFI, so the rate holds
-- whatever the latency (a fixed delay per connection would send at conns / (delay + latency)).
local rate = {rate}
local ffi = require("ffi")
ffi.cdef[[ typedef struct {{ long tv_sec; long tv_nsec; }} sluice_timespec; int clock_gettime(int, sluice_timespec *); ]]
local ts = ffi.new("sluice_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local slot = nil
function delay()
  if rate <= 0 then return 0 end
  local now = now_ms()
  if slot == nil or slot < now then slot = now end
  local wait = slot - now
  slot = slot + 1000 / rate
  return math.floor(wait + 0.5)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "JSON {{\\"requests\\": %d, \\"seconds\\": %f, \\"errors\\": %d, \\"p50\\": %f, \\"p95\\": %f, \\"p99\\": %f}}\\n",
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def nginx() -> Iterator[str | None]:
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", tmp], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, preexec_fn=lambda: boosted(TARGET_CPU))
        try:
            url = f"http://127.0.0.1:{port}"
            import socket

            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"nginx did not start: {proc.stderr.read() if proc.stderr else ''}") from None
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextmanager
def our_target() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.httptarget", "--port", "0"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True, preexec_fn=lambda: boosted(TARGET_CPU),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    try:
        if not line.startswith("http://"):
            raise SystemExit(f"target did not start: {line!r}")
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(url: str, seconds: float, *, rate: float = 0, vus: int = 0, path: str = "/",
         workers: int | None = 1, pin: bool = True) -> dict[str, Any]:
    """Run our generator in a child process (pinned to the client CPU unless spread); its report
    as a dict, plus ``cpu_s``, the CPU time the client processes used."""
    mode = "virtual-users" if vus else "constant-arrival-rate"
    code = (
        "import json\n"
        "from sluice.loadgen import LoadProfile, LoadRequest, Mode, run_load_sync\n"
        f"profile = LoadProfile((LoadRequest({path!r}),), duration_s={seconds}, mode=Mode({mode!r}), "
        f"rate={rate or 1}, vus={vus or 1}, timeout_s=10, max_connections=1024, workers={workers!r})\n"
        f"print(json.dumps(run_load_sync({url!r}, profile).to_dict()))\n"
    )
    before = _child_cpu()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 90,
                         preexec_fn=lambda: boosted(CLIENT_CPU if pin else None))
    if out.returncode != 0:
        raise SystemExit(f"our load generator failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_s"] = _child_cpu() - before
    return result


def wrk(url: str, seconds: float, connections: int, rate: float = 0, path: str = "/") -> dict[str, Any] | None:
    """Run wrk pinned to the client CPU (paced to ``rate`` when > 0); requests, throughput, p50/p95/p99 ms, cpu_s."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(connections=connections, rate=rate))
    before = _child_cpu()
    try:
        out = subprocess.run(
            [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "--latency", "-s", script.name, url + path],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
            preexec_fn=lambda: boosted(CLIENT_CPU),
        )
    finally:
        Path(script.name).unlink()
    match = re.search(r"^JSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["throughput"] = result["requests"] / result["seconds"]
    result["cpu_s"] = _child_cpu() - before
    return result


#: Our run, instrumented (bench only): each answer also records how late its request went out
#: (actual send - intended send) and its latency from the actual send, as wrk measures.
_INSTRUMENT = """
import time
from sluice.loadgen import engine
from sluice.loadgen.histogram import LogLinearHistogram
LATE, FROM_SEND = LogLinearHistogram(), LogLinearHistogram()
_answered = engine._Run.answered
def _timed(self, connection, status):
    done = time.monotonic()
    LATE.record(max(0, int((connection.sent_at - connection.intended) * 1e6)))
    FROM_SEND.record(max(0, int((done - connection.sent_at) * 1e6)))
    return _answered(self, connection, status)
engine._Run.answered = _timed
"""


def ours_timed(url: str, seconds: float, rate: float, path: str) -> dict[str, Any]:
    """``ours`` at an open-loop ``rate``, with ``late_p50``/``late_p99`` and ``send_p50``/``send_p95``/``send_p99`` (ms)."""
    code = (
        _INSTRUMENT + "import json\n"
        "from sluice.loadgen import LoadProfile, LoadRequest, Mode, run_load_sync\n"
        f"profile = LoadProfile((LoadRequest({path!r}),), duration_s={seconds}, mode=Mode('constant-arrival-rate'), "
        f"rate={rate}, timeout_s=10, max_connections=1024, workers=1)\n"
        f"report = run_load_sync({url!r}, profile).to_dict()\n"
        "report.update({f'late_p{p}': LATE.percentile(p) / 1000 for p in (50, 99)})\n"
        "report.update({f'send_p{p}': FROM_SEND.percentile(p) / 1000 for p in (50, 95, 99)})\n"
        "print(json.dumps(report))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 90,
                         preexec_fn=lambda: boosted(CLIENT_CPU))
    if out.returncode != 0:
        raise SystemExit(f"our load generator failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def closed_loop(name: str, url: str, seconds: float, conns: int) -> None:
    print(f"\n1. closed loop, one core, {conns} connections, against {name} ({url})")
    print("                                      req/s   req per CPU-s   errors")
    theirs = wrk(url, seconds, conns)
    mine = ours(url, seconds, vus=conns)
    if theirs is None:
        print("   wrk not installed (apt-get install wrk)")
    else:
        print(f"   wrk -t1 -c{conns:<4}                 {theirs['throughput']:>9,.0f}   "
              f"{theirs['requests'] / theirs['cpu_s']:>13,.0f}   {theirs['errors']:>6}")
    print(f"   ours, {conns} virtual users         {mine['throughput']:>9,.0f}   "
          f"{mine['requests'] / mine['cpu_s']:>13,.0f}   {mine['errors']:>6}")
    if theirs is not None:
        print(f"   ratio ours/wrk: req/s {mine['throughput'] / theirs['throughput']:.2f}, "
              f"per CPU-second {(mine['requests'] / mine['cpu_s']) / (theirs['requests'] / theirs['cpu_s']):.2f}")


def open_loop(url: str, seconds: float, rates: list[float]) -> None:
    print(f"\n2. open loop, one core, one worker process, against nginx ({seconds:g} s per rate)")
    print("      asked       sent   dropped   errors   p50 ms   p99 ms   client CPU")
    for rate in rates:
        r = ours(url, seconds, rate=rate)
        sent = r["requests"] / seconds
        planned = r["requests"] + r["dropped"]
        print(f"   {rate:>8,.0f}  {sent:>9,.0f}   {r['dropped'] / planned:>6.2%}   {r['errors']:>6}   "
              f"{r['response_time_p50']:>6.2f}   {r['response_time_p99']:>6.2f}   {r['cpu_s'] / seconds:>9.0%}")


def spread(url: str, seconds: float, rate: float) -> None:
    print(f"\n3. open loop asked {rate:,.0f} req/s, spread over one process per core (not pinned)")
    r = ours(url, seconds, rate=rate, workers=None, pin=False)
    planned = r["requests"] + r["dropped"]
    print(f"   workers {r['workers']}: sent {r['requests'] / seconds:,.0f} req/s, dropped {r['dropped'] / planned:.2%}, "
          f"errors {r['errors']}, p50 {r['response_time_p50']:.2f} ms, p99 {r['response_time_p99']:.2f} ms")


def latency(name: str, url: str, seconds: float, rate: float, path: str, connections: int, rounds: int = 5) -> None:
    """Ours and wrk at the same rate, alternating, ``rounds`` times; the medians of their p50s."""
    print(f"\n4. at {rate:,.0f} req/s on {path} of {name}: latency side by side (ms), {rounds} rounds alternating")
    print("                                    req/s      p50      p95      p99")
    mine_p50, theirs_p50, late, from_send = [], [], [], []
    for _ in range(rounds):
        mine = ours_timed(url, seconds, rate, path)
        paced = wrk(url, seconds, connections, rate=rate, path=path)
        print(f"   ours (open loop, intended)    {mine['throughput']:>7,.0f}  {mine['response_time_p50']:>7.3f}  "
              f"{mine['response_time_p95']:>7.3f}  {mine['response_time_p99']:>7.3f}   sent late p50 {mine['late_p50']:.3f} "
              f"p99 {mine['late_p99']:.3f}; from the actual send p50 {mine['send_p50']:.3f}")
        mine_p50.append(mine["response_time_p50"])
        late.append(mine["late_p50"])
        from_send.append(mine["send_p50"])
        if paced is None:
            print("   wrk not installed: apt-get install wrk")
            return
        print(f"   wrk -c{connections:<3} paced to the rate  {paced['throughput']:>7,.0f}  {paced['p50']:>7.3f}  "
              f"{paced['p95']:>7.3f}  {paced['p99']:>7.3f}")
        theirs_p50.append(paced["p50"])
    ours_p50, wrk_p50 = sorted(mine_p50)[rounds // 2], sorted(theirs_p50)[rounds // 2]
    print(f"   median p50: ours {ours_p50:.3f}, wrk {wrk_p50:.3f}: ours - wrk {ours_p50 - wrk_p50:+.3f} ms; "
          f"our half bucket at this value ±{ours_p50 / 256:.3f} ms (wrk's: 1 µs); our requests went out "
          f"{sorted(late)[rounds // 2] * 1000:.0f} µs late (p50) and measured from the actual send ours is "
          f"{sorted(from_send)[rounds // 2] - wrk_p50:+.3f} ms from wrk")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sluice's load generator beside wrk")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections / our virtual users")
    parser.add_argument("--rate", type=float, default=10_000.0, help="the open-loop rate one core must deliver")
    args = parser.parse_args(argv)
    seconds, conns = args.seconds, args.connections
    print(f"target on CPU {TARGET_CPU}; clients on CPU {CLIENT_CPU}; {boost_note()}; {seconds:g} s per run; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with nginx() as fast, our_target() as ours_url:
        if fast is None:
            print("\nnginx not installed (apt-get install nginx-light): its rows are skipped")
        else:
            closed_loop("nginx", fast, seconds, conns)
        closed_loop("tests.support.httptarget", ours_url, seconds, conns)
        if fast is not None:
            open_loop(fast, seconds, [args.rate / 2, args.rate, args.rate * 1.5])
            if len(CPUS) > 1:
                spread(fast, seconds, args.rate * 1.5)
        if fast is not None:
            latency("nginx", fast, seconds, 1000, "/", 10)
            latency("nginx", fast, seconds, 200, "/", 10)
        latency("our target", ours_url, seconds, 200, "/delay/20", 10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
