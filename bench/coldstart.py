"""Cold start of every Sluice function beside a bare functions-framework hello, in the same run.

    .venv/bin/python bench/coldstart.py [--rounds 5] [--imports]

Each round spawns, in a shuffled order, a bare hello (``functions-framework`` serving a function
that imports nothing and answers "hello") and every Sluice function target
(``functions/main.py``), and times from the spawn to the first answer to a real event: the
event a broker would deliver to that function, against an onboarded ``sockshop`` project in a
fresh local state directory (backend ``noop``: no sample service is started, so what is timed is
the function, not a deployment). The figure is the median over the rounds; the ratio is to the
hello's median. Aim: every function ≤ 1.15× the hello.

On a machine shared with other work the wall-clock figures measure the neighbours too, so each
spawned process runs in a session of its own at ``nice -15`` when allowed (root; with the kernel's
autogroups plain nice only counts inside a session), and the CPU time the whole process tree
used (master and worker, through to its exit) is printed beside it: that figure does not depend
on the machine's load. So is the CPU time the tree had used when the answer came (read from
``/proc``, Linux only): what a cold start costs before the event is answered, without the
framework's shutdown (about half of the hello's whole CPU time).

``--no-bytecode`` runs the functions from a copy of ``functions/`` without ``__pycache__`` and with
``PYTHONDONTWRITEBYTECODE=1``: what an image without compiled bytecode paid on every cold start
(the Dockerfile compiles it now).

``--imports`` also runs each target once with ``-X importtime`` and prints the ten slowest
top-level imports it made by its first answer (``python -X importtime`` is how to find what a
function loads but does not need).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "functions" / "main.py"
EXAMPLE = ROOT / "examples" / "sockshop"

HELLO = '''
def hello(request):
    return "hello"
'''

START, END = "2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z"
IMAGE = "docker.io/keptnexamples/carts"


def event(kind: str, data: dict[str, object]) -> tuple[dict[str, str], bytes]:
    """A binary-mode CloudEvent as a broker delivers it."""
    headers = {
        "ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-source": "bench/coldstart",
        "ce-type": kind, "ce-time": START, "ce-shkeptncontext": str(uuid.uuid4()), "ce-triggeredid": "",
        "content-type": "application/json",
    }
    return headers, json.dumps(data).encode()


SCOPE = {"project": "sockshop", "service": "carts"}
SECRET = "bench-intake-secret"


def requests_for() -> dict[str, tuple[str, str, dict[str, str], bytes]]:
    """target → (method, path, headers, body) of its first real event."""
    ev = "sh.keptn.event"
    evs = "sh.keptn.events"
    out: dict[str, tuple[str, str, dict[str, str], bytes]] = {}

    def post(target: str, kind: str, data: dict[str, object], path: str = "/") -> None:
        headers, body = event(kind, data)
        out[target] = ("POST", path, headers, body)

    post("deploy", f"{ev}.configuration.change",
         {**SCOPE, "stage": "dev", "valuesCanary": {"image": f"{IMAGE}:0.10.1"}})
    post("test", f"{evs}.deployment-finished",
         {**SCOPE, "stage": "dev", "image": IMAGE, "tag": "0.10.1", "result": "fail", "message": "bench"})
    post("evaluate", f"{ev}.start-evaluation", {**SCOPE, "stage": "staging", "start": START, "end": END})
    post("sli", "sh.keptn.internal.event.get-sli",
         {**SCOPE, "stage": "staging", "sliProvider": "builtin", "start": START, "end": END,
          "indicators": ["response_time_p95"]})
    post("gatekeeper", f"{evs}.evaluation-done",
         {**SCOPE, "stage": "dev", "image": IMAGE, "tag": "0.10.1", "result": "pass"})
    post("eventlog", f"{evs}.done", {**SCOPE, "stage": "dev", "result": "pass", "outcome": "promoted"})
    out["intake"] = ("POST", "/dockerhub", {"content-type": "application/json", "x-sluice-token": SECRET}, json.dumps({
        "push_data": {"tag": "0.10.1"}, "repository": {"repo_name": "keptnexamples/carts"}}).encode())
    out["bridge"] = ("GET", "/project/sockshop", {}, b"")
    hello_headers, hello_body = event(f"{ev}.configuration.change", {**SCOPE, "stage": "dev"})
    out["hello"] = ("POST", "/", hello_headers, hello_body)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def framework() -> str:
    beside = Path(sys.executable).with_name("functions-framework")
    return str(beside) if beside.exists() else (shutil.which("functions-framework") or "functions-framework")


NICE = -15


def boosted() -> None:
    """preexec_fn: a session of its own at a higher priority (root only; else unchanged)."""
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(NICE))
    with contextlib.suppress(PermissionError):
        os.nice(NICE)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by ``pid`` and its descendants (``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / _TICK
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                used += tree_cpu(int(child)) or 0.0
        return used
    except (OSError, IndexError, ValueError):
        return None


def first_answer(target: str, source: Path, env: dict[str, str], request: tuple[str, str, dict[str, str], bytes],
                 importtime: bool = False) -> tuple[float, int, str, float, float | None]:
    """Spawn ``target``; seconds from the spawn to its first answer, the status, stderr (with the
    answer's body when it is not a success), the CPU seconds its process tree used through to its
    exit, and those it had used when the answer came (None without ``/proc``)."""
    port = free_port()
    cmd = [framework(), "--source", str(source), "--target", target, "--host", "127.0.0.1", "--port", str(port)]
    if importtime:
        cmd = [sys.executable, "-X", "importtime", *cmd]
    method, path, headers, body = request
    cpu_before = _children_cpu()
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=boosted)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"{target} exited: {proc.stderr.read() if proc.stderr else ''}") from None
                if time.perf_counter() - began > 60:
                    raise SystemExit(f"{target} did not listen within 60 s") from None
                time.sleep(0.002)
        response = httpx.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, content=body, timeout=60)
        elapsed = time.perf_counter() - began
        at_answer = tree_cpu(proc.pid)
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if response.status_code >= 300:
        err = f"{err}\nanswer {response.status_code}: {response.text[:500]}"
    return elapsed, response.status_code, err or "", _children_cpu() - cpu_before, at_answer


def prepare(state_dir: Path) -> None:
    """An onboarded sockshop project (shipyard, carts, tests and SLO), as the demo sets it up."""
    from sluice.cli.main import main as sluice

    steps = [
        ["create", "project", "sockshop", "--shipyard", str(EXAMPLE / "shipyard.yaml")],
        ["onboard", "service", "carts", "--project", "sockshop"],
        ["add-resource", "--project", "sockshop", "--stage", "staging", "--service", "carts",
         "--resource", str(EXAMPLE / "slo.yaml"), "--resourceUri", "slo.yaml"],
    ]
    for step in steps:
        if sluice([*step, "--state-dir", str(state_dir)]) != 0:
            raise SystemExit(f"bench setup failed: sluice {' '.join(step)}")
    cli = Path(sys.executable).with_name("sluice")
    subprocess.run([str(cli), "add-trigger", "--project", "sockshop", "--service", "carts", "--repository", IMAGE,
                    "--source", "dockerhub", "--state-dir", str(state_dir)], check=True, capture_output=True)
    subprocess.run([str(cli), "set", "intake-secret", "--source", "dockerhub", "--state-dir", str(state_dir)],
                   input=SECRET + "\n", text=True, check=True, capture_output=True)


class _Sink(BaseHTTPRequestHandler):
    """The broker's ingress, as far as a function that posts events needs it: 202."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def top_imports(stderr: str, n: int = 10) -> list[tuple[int, str]]:
    """The slowest top-level imports (cumulative µs) in ``-X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(3)) == 1:
            rows.append((int(match.group(2)), match.group(4)))
    return sorted(rows, reverse=True)[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cold start of each function beside a bare hello")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--imports", action="store_true", help="also print each target's slowest imports")
    parser.add_argument("--only", nargs="*", default=None, help="only these targets (and the hello)")
    parser.add_argument("--no-bytecode", action="store_true", help="functions without compiled bytecode")
    args = parser.parse_args(argv)
    requests = requests_for()
    targets = [t for t in requests if t != "hello" and (args.only is None or t in args.only)]
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "state"
        prepare(state_dir)
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        env = {**os.environ, "SLUICE_STATE_DIR": str(state_dir), "SLUICE_BACKEND": "noop",
               "SLUICE_BROKER_URL": f"http://127.0.0.1:{sink.server_address[1]}/sluice/default"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        main_py = MAIN
        if args.no_bytecode:
            copy = Path(tmp) / "functions"
            shutil.copytree(MAIN.parent, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            main_py = copy / "main.py"
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        # One unmeasured start of each, so every round finds the bytecode compiled and the files cached.
        for target in ["hello", *targets]:
            _, status, err, _, _ = first_answer(target, hello if target == "hello" else main_py, env, requests[target])
            if status >= 300:
                print(f"{target}: answered {status} to its first event:\n{err[-1500:]}")
        times: dict[str, list[float]] = {t: [] for t in ["hello", *targets]}
        cpu: dict[str, list[float]] = {t: [] for t in times}
        answer_cpu: dict[str, list[float]] = {t: [] for t in times}
        statuses: dict[str, set[int]] = {t: set() for t in times}
        for _ in range(args.rounds):
            order = ["hello", *targets]
            random.shuffle(order)
            for target in order:
                seconds, status, _, used, at_answer = first_answer(target, hello if target == "hello" else main_py, env,
                                                        requests[target])
                times[target].append(seconds)
                cpu[target].append(used)
                if at_answer is not None:
                    answer_cpu[target].append(at_answer)
                statuses[target].add(status)
        floor = statistics.median(times["hello"])
        cpu_floor = statistics.median(cpu["hello"])
        print(f"cold start: spawn → first answer to a real event, median of {args.rounds} rounds, interleaved "
              f"(load average {os.getloadavg()[0]:.1f}; spawned at nice {NICE} when root)")
        answer_floor = statistics.median(answer_cpu["hello"]) if answer_cpu["hello"] else 0.0
        print(f"   {'target':<11} {'wall ms':>8} {'min ms':>7} {'× hello':>8}   {'CPU ms':>7} {'× hello':>8}   "
              f"{'CPU to answer':>13} {'× hello':>8}  status")
        for target, values in times.items():
            ratio = statistics.median(values) / floor
            cpu_ratio = statistics.median(cpu[target]) / cpu_floor
            answer_ratio = statistics.median(answer_cpu[target]) / answer_floor if answer_cpu[target] and answer_floor else 0.0
            flag = "" if target == "hello" or max(ratio, cpu_ratio, answer_ratio) <= 1.15 else "  above 1.15×"
            to_answer = (f"{statistics.median(answer_cpu[target]) * 1000:>13.0f} {answer_ratio:>7.2f}×"
                         if answer_ratio else f"{'—':>13} {'—':>8}")
            print(f"   {target:<11} {statistics.median(values) * 1000:>8.0f} {min(values) * 1000:>7.0f} {ratio:>7.2f}×   "
                  f"{statistics.median(cpu[target]) * 1000:>7.0f} {cpu_ratio:>7.2f}×   {to_answer}  "
                  f"{','.join(map(str, sorted(statuses[target])))}{flag}")
        if args.imports:
            for target in targets:
                _, _, err, _, _ = first_answer(target, main_py, env, requests[target], importtime=True)
                print(f"\n{target}: slowest top-level imports by its first answer (cumulative ms)")
                for micros, name in top_imports(err):
                    print(f"   {micros / 1000:>7.1f}  {name}")
    sink.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
