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
4. latency side by side at a fixed low rate, on a route that answers 20 ms late: ours (open
   loop, from the intended send time) and wrk paced by a Lua ``delay()`` (closed loop, from the
   actual send). At a rate neither is near its limit the two should agree within the
   histogram's precision (0.78 % of the value) plus the timer's slack.

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


def latency(name: str, url: str, seconds: float, rate: float, path: str, connections: int) -> None:
    print(f"\n4. at {rate:,.0f} req/s on {path} of {name}: latency side by side (ms)")
    mine = ours(url, seconds, rate=rate, path=path)
    paced = wrk(url, seconds, connections, rate=rate, path=path)
    print("                                  req/s      p50      p95      p99")
    print(f"   ours (open loop, intended)  {mine['throughput']:>7,.0f}  {mine['response_time_p50']:>7.3f}  "
          f"{mine['response_time_p95']:>7.3f}  {mine['response_time_p99']:>7.3f}")
    if paced is None:
        print("   wrk not installed: apt-get install wrk")
        return
    print(f"   wrk -c{connections:<3} paced (closed)    {paced['throughput']:>7,.0f}  {paced['p50']:>7.3f}  "
          f"{paced['p95']:>7.3f}  {paced['p99']:>7.3f}")
    print(f"   p50 ours - wrk: {mine['response_time_p50'] - paced['p50']:+.3f} ms "
          f"(one histogram bucket at this value: {paced['p50'] / 128:.3f} ms)")


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
        latency("our target", ours_url, seconds, 200, "/delay/20", 10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
