"""Cold start of every Sluice function beside a bare functions-framework hello, in the same run.

    .venv/bin/python bench/coldstart.py [--rounds 40] [--only deploy ...] [--imports] [--no-bytecode]
    .venv/bin/python bench/coldstart.py --against /path/to/other/checkout   # before/after, same run

What is timed: from the spawn of ``functions-framework`` to the first answer to a real event — the
event a broker would deliver to that function, against an onboarded ``sockshop`` project in a
fresh local state directory (backend ``noop``: no sample service is started, so what is timed is
the function, not a deployment). The reference is a bare hello (a function that imports nothing
and answers "hello") served by the same ``functions-framework`` executable, with the same
options, environment and bytecode state as the functions. Aim: every function ≤ 1.15× the hello.

How, on a machine shared with other work: each round spawns, for every function in a shuffled
order, a *pair* — the hello and the function, back to back in a random order — so both run under
the same load, and the ratio is taken per pair. The figure is the median of those per-pair ratios,
printed with a 95 % confidence interval for it (``[low–high]``, between two order statistics: no
assumption on how the ratios are spread); the absolute medians are printed beside them. The aim is
judged on the wall ratio: *met* when its whole interval is at or below 1.15, *missed* when it is
above, *undecided* when it straddles 1.15 (on this shared 2-core machine single pairs vary by
±15 %, so 40 pairs give an interval of about ±0.07, 150 pairs about ±0.035). Each process runs in a session of its own at ``nice -15`` when
allowed (root; with the kernel's autogroups plain nice only counts inside a session).

Three measures, each as absolute median and as per-pair ratio:

- ``wall``: spawn → first answer (what the aim names; on a loaded machine it measures the
  neighbours too — the per-pair ratio cancels most of that, the spread shows what is left).
- ``CPU``: the CPU time the whole process tree (master and worker) used through to its exit.
- ``CPU to answer``: the CPU time the tree had used when the answer came, without the framework's
  shutdown: what a cold start costs before the event is answered (read per thread from
  ``/proc/<pid>/task/<tid>/schedstat`` in nanoseconds; from ``/proc/<pid>/stat`` in clock ticks
  where schedstat is missing; Linux only).

``--against DIR`` also times another checkout's functions (DIR/functions served by DIR/.venv's
``functions-framework``, cwd DIR) in the same rounds: each round's hello is then paired with
both, so before and after are measured under the same load. Every checkout's ``functions/`` runs
from a copy in a temporary directory (nothing is written into a checkout); the unmeasured first
start of each target compiles its bytecode there (and caches its ``@frozen`` classes' compiled
``__init__`` beside it, as the image's build does with ``sluice.functions.warm``), unless
``--no-bytecode``.

``--no-bytecode`` runs the functions with ``PYTHONDONTWRITEBYTECODE=1`` (the hello too), so their
copy never gets a ``__pycache__``: what an image without compiled bytecode (or cached inits) paid
on every cold start (the Dockerfile makes both now).

``--instructions`` also counts, with valgrind (``callgrind``; skipped when valgrind is missing),
the instructions on the path from the spawn to the first answer, on the real path: the same
``functions-framework`` command (gunicorn master and worker) under ``valgrind --trace-children``,
its counts dumped (``callgrind_control --dump``) the moment the answer is back. The figure is the
worker's count, which includes what the master ran before forking it (importing the framework,
loading the source): everything the answer waited for. A fresh copy of the state each time; a
figure that does not move with the machine's load (PYTHONHASHSEED=0). It is a proxy —
instructions are not time (an fsync, for one, costs none) — printed beside the hello's count.
(An earlier proxy ran ``create_app`` and a test client in one process: there the framework's
imports for the test client set off a full garbage collection before the answer, which the real
path makes only at exit, so that count differed from the real path's by some 50 million.)

``--imports`` also runs each target once with ``-X importtime`` and prints the ten slowest
top-level imports it made by its first answer (``python -X importtime`` is how to find what a
function loads but does not need).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
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


def framework(python: str = sys.executable) -> str:
    """The ``functions-framework`` executable beside ``python`` (a virtualenv's), else on PATH."""
    beside = Path(python).with_name("functions-framework")
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


def _process_cpu(pid: int) -> float:
    """CPU seconds of one process: the sum of its threads' schedstat (ns), else its stat (ticks)."""
    try:
        return sum(int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
                   for task in os.listdir(f"/proc/{pid}/task")) / 1e9
    except (OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by ``pid`` and its descendants (``/proc``; None elsewhere)."""
    try:
        return _process_cpu(pid) + sum(tree_cpu(child) or 0.0 for child in children(pid))
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The pids of the processes ``pid``'s threads started (``/proc``)."""
    return [int(child) for task in os.listdir(f"/proc/{pid}/task")
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]


def wait_listening(proc: subprocess.Popen[str], port: int, target: str, within: float, pause: float) -> None:
    """Return once ``proc`` accepts connections on ``port``; ``SystemExit`` (with its stderr) when
    it exits first or does not listen ``within`` seconds."""
    began = time.perf_counter()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.perf_counter() - began > within:
                raise SystemExit(f"{target} did not listen within {within:g} s:\n{stop(proc, 10)[-1500:]}") from None
            time.sleep(pause)


class Tree:
    """A checkout whose functions are timed: its ``functions/main.py``, served by its virtualenv."""

    def __init__(self, root: Path, python: str, label: str) -> None:
        self.root, self.python, self.label = root, python, label
        self.main_py = root / "functions" / "main.py"


class Spawn:
    """One cold start: seconds to the first answer, its status, stderr (with the answer's body when
    it is not a success), the CPU seconds the tree used through to its exit, and those it had used
    when the answer came (None without ``/proc``)."""

    def __init__(self, wall: float, status: int, err: str, cpu: float, at_answer: float | None) -> None:
        self.wall, self.status, self.err, self.cpu, self.at_answer = wall, status, err, cpu, at_answer


def first_answer(target: str, source: Path, env: dict[str, str], request: tuple[str, str, dict[str, str], bytes],
                 python: str = sys.executable, cwd: Path = ROOT, importtime: bool = False) -> Spawn:
    """Spawn ``target`` from ``source`` with ``python``'s functions-framework and time its first answer."""
    port = free_port()
    cmd = [framework(python), "--source", str(source), "--target", target, "--host", "127.0.0.1", "--port", str(port)]
    if importtime:
        cmd = [python, "-X", "importtime", *cmd]
    method, path, headers, body = request
    cpu_before = _children_cpu()
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=boosted)
    try:
        wait_listening(proc, port, target, 60, 0.002)
        response = httpx.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, content=body, timeout=60)
        elapsed = time.perf_counter() - began
        at_answer = tree_cpu(proc.pid)
    finally:
        err = stop(proc, 10)
    if response.status_code >= 300:
        err = f"{err}\nanswer {response.status_code}: {response.text[:500]}"
    return Spawn(elapsed, response.status_code, err or "", _children_cpu() - cpu_before, at_answer)


def stop(proc: subprocess.Popen[str], timeout: float) -> str:
    """Terminate ``proc`` (killed when it has not exited within ``timeout`` s); its stderr."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=timeout)[1] or ""
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1] or ""


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


def instructions(target: str, source: Path, env: dict[str, str], request: tuple[str, str, dict[str, str], bytes],
                 python: str, cwd: Path) -> tuple[float, int]:
    """Millions of instructions (valgrind callgrind) from the spawn of ``target`` to its first
    answer, on the real path (see the module's doc): the worker's count, and the answer's status."""
    method, path, headers, body = request
    port = free_port()
    with tempfile.TemporaryDirectory() as out:
        cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-line=no",
               f"--callgrind-out-file={out}/cg.%p", framework(python), "--source", str(source), "--target", target,
               "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(cmd, env={**env, "PYTHONHASHSEED": "0"}, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            began = time.perf_counter()
            wait_listening(proc, port, f"{target} under valgrind", 600, 0.05)
            status = httpx.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, content=body,
                                   timeout=600).status_code
            workers = children(proc.pid)
            if len(workers) != 1:
                raise SystemExit(f"{target} under valgrind: expected one gunicorn worker, found {workers}")
            subprocess.run(["callgrind_control", "--dump", str(workers[0])], capture_output=True, timeout=120)
            dump = Path(out) / f"cg.{workers[0]}.1"
            while not dump.exists() or "totals:" not in dump.read_text():
                if time.perf_counter() - began > 900:
                    raise SystemExit(f"{target} under valgrind: no dump of worker {workers[0]}")
                time.sleep(0.1)
            found = re.search(r"^totals:\s+(\d+)", dump.read_text(), re.M)
            assert found is not None
            return int(found.group(1)) / 1e6, status
        finally:
            stop(proc, 120)


def top_imports(stderr: str, n: int = 10) -> list[tuple[int, str]]:
    """The slowest top-level imports (cumulative µs) in ``-X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(3)) == 1:
            rows.append((int(match.group(2)), match.group(4)))
    return sorted(rows, reverse=True)[:n]


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, median, high): the median of ``values`` and a distribution-free ``confidence``
    interval for the median they were drawn from, between two order statistics (the number of
    values below the true median is Binomial(n, ½); the interval is as narrow as that allows).
    With few values it is the whole range."""
    ordered = sorted(values)
    n = len(ordered)
    # [ordered[k], ordered[n-1-k]] holds the true median unless at most k of the n values fall on
    # one side of it: probability 2·P(Binomial(n, ½) ≤ k). The largest k that keeps it within 1 − confidence.
    tail = (1 - confidence) / 2
    k, at_most = 0, 0.5**n
    while k + 1 < n // 2 and at_most + math.comb(n, k + 1) * 0.5**n <= tail:
        k += 1
        at_most += math.comb(n, k) * 0.5**n
    return ordered[k], statistics.median(ordered), ordered[n - 1 - k]


MEASURES = (("wall", lambda s: s.wall), ("CPU", lambda s: s.cpu), ("CPU to answer", lambda s: s.at_answer))


def report(rows: dict[str, list[tuple[Spawn, Spawn]]], aim: float) -> list[str]:
    """One line per target: for each measure, the function's and its hellos' absolute medians (ms)
    and the median per-pair ratio with its 95 % interval; then which targets meet the aim on the
    wall time (the time to the first answer, what the aim names): met when the whole interval is
    at or below it, missed when it is above, undecided when it straddles (more rounds narrow it)."""
    head = "".join(f"   {name + ' ms':>15} {'hello':>5} {'× hello [95 %]':<18}" for name, _ in MEASURES)
    lines = [f"   {'target':<17}{head}  status"]
    verdicts: dict[str, list[str]] = {"met": [], "missed": [], "undecided": []}
    for target, pairs in rows.items():
        cells, verdict = [], "undecided"
        for name, get in MEASURES:
            ok = [(get(f), get(h)) for h, f in pairs if get(f) is not None and get(h)]
            if not ok:
                cells.append(f"   {'—':>15} {'—':>5} {'—':<18}")
                continue
            low, med, high = median_interval([f / h for f, h in ok])
            if name == "wall":
                verdict = "met" if high <= aim else "missed" if low > aim else "undecided"
            cells.append(f"   {statistics.median(f for f, _ in ok) * 1000:>15.0f} "
                         f"{statistics.median(h for _, h in ok) * 1000:>5.0f} {f'{med:.2f}× [{low:.2f}–{high:.2f}]':<18}")
        statuses = ",".join(map(str, sorted({f.status for _, f in pairs})))
        lines.append(f"   {target:<17}{''.join(cells)}  {statuses}  {verdict}")
        verdicts[verdict].append(target)
    lines.append(f"   aim: wall ≤ {aim}× the hello (the median per-pair ratio's 95 % interval, distribution-free)")
    for verdict, targets in verdicts.items():
        lines.append(f"   {verdict + ':':<11}{', '.join(targets) if targets else 'none'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cold start of each function beside a bare hello")
    parser.add_argument("--rounds", type=int, default=40, help="pairs (hello, function) per function")
    parser.add_argument("--imports", action="store_true", help="also print each target's slowest imports")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each target's instructions to its first answer in one process (valgrind)")
    parser.add_argument("--only", nargs="*", default=None, help="only these targets (and the hello)")
    parser.add_argument("--no-bytecode", action="store_true", help="functions without compiled bytecode")
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout (with its .venv) whose functions are timed in the same rounds")
    args = parser.parse_args(argv)
    requests = requests_for()
    targets = [t for t in requests if t != "hello" and (args.only is None or t in args.only)]
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "state"
        prepare(state_dir)
        pristine = Path(tmp) / "pristine"  # the onboarded project before any event, for --instructions
        shutil.copytree(state_dir, pristine)
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        env = {**os.environ, "SLUICE_STATE_DIR": str(state_dir), "SLUICE_BACKEND": "noop",
               "SLUICE_BROKER_URL": f"http://127.0.0.1:{sink.server_address[1]}/sluice/default"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        trees = [Tree(ROOT, sys.executable, "")]
        if args.against:
            other = args.against.resolve()
            trees.append(Tree(other, str(other / ".venv" / "bin" / "python"), f" ({other.name})"))
        # Every tree's functions run from a copy of its ``functions/`` (so nothing is written into a
        # checkout, and each starts without stale bytecode); ``main.py`` puts the copy first on sys.path.
        for n, tree in enumerate(trees):
            copy = Path(tmp) / f"functions{n}"
            shutil.copytree(tree.main_py.parent, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            tree.main_py = copy / "main.py"
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"

        def spawn(target: str, tree: Tree | None, importtime: bool = False) -> Spawn:
            if tree is None:  # the hello: this checkout's framework, the same options and environment
                return first_answer("hello", hello, env, requests["hello"], importtime=importtime)
            return first_answer(target, tree.main_py, env, requests[target], tree.python, tree.root, importtime)

        # One unmeasured start of each, so every round finds the bytecode compiled and the files cached.
        for target in ["hello", *targets]:
            for which in [None] if target == "hello" else trees:
                first = spawn(target, which)
                if first.status >= 300:
                    print(f"{target}{which.label if which else ''}: answered {first.status} to its first event:\n"
                          f"{first.err[-1500:]}")
        rows: dict[str, list[tuple[Spawn, Spawn]]] = {f"{t}{tree.label}": [] for t in targets for tree in trees}
        loads = []
        began = time.perf_counter()
        for _ in range(args.rounds):
            order = list(targets)
            random.shuffle(order)
            for target in order:
                group: list[Tree | None] = [None, *trees]
                random.shuffle(group)  # the hello and the function(s), back to back, in a random order
                spawned = {id(tree): spawn(target, tree) for tree in group}
                for tree in trees:
                    rows[f"{target}{tree.label}"].append((spawned[id(None)], spawned[id(tree)]))
            loads.append(os.getloadavg()[0])
        print(f"cold start: spawn → first answer to a real event; {args.rounds} pairs (hello, function) per function,"
              f" back to back in a random order; ratio = median of the per-pair ratios [its 95 % interval]")
        print(f"   load average {min(loads):.1f}–{max(loads):.1f} over {time.perf_counter() - began:.0f} s "
              f"({os.cpu_count()} CPUs); spawned at nice {NICE} when root; "
              f"bytecode {'off (PYTHONDONTWRITEBYTECODE=1, no __pycache__)' if args.no_bytecode else 'compiled'}")
        for line in report(rows, 1.15):
            print(line)
        if args.instructions and shutil.which("valgrind") is None:
            print("\n--instructions: valgrind is not installed (apt-get install valgrind); skipped")
        elif args.instructions:
            print("\ninstructions from the spawn to the first answer on the real path (functions-framework and "
                  "gunicorn under valgrind callgrind; the worker's count, with what the master ran before forking it; "
                  "millions; fresh state each)")
            counted: dict[str, float] = {}
            for target in ["hello", *targets]:
                for which in [None] if target == "hello" else trees:
                    fresh = Path(tmp) / "counted"
                    shutil.rmtree(fresh, ignore_errors=True)
                    shutil.copytree(pristine, fresh)
                    counted_env = {**env, "SLUICE_STATE_DIR": str(fresh), "PYTHONDONTWRITEBYTECODE": "1"}
                    if which is None:
                        mi, status = instructions("hello", hello, counted_env, requests["hello"], sys.executable, ROOT)
                    else:
                        mi, status = instructions(target, which.main_py, counted_env, requests[target], which.python,
                                                  which.root)
                    name = f"{target}{which.label if which else ''}"
                    counted[name] = mi
                    extra = f"   +{mi - counted['hello']:>6.0f} over the hello" if which else ""
                    print(f"   {name:<17} {mi:>8.0f} Mi {mi / counted['hello']:>6.2f}×{extra}   status {status}")
        if args.imports:
            for target in targets:
                for tree in trees:
                    err = spawn(target, tree, importtime=True).err
                    print(f"\n{target}{tree.label}: slowest top-level imports by its first answer (cumulative ms)")
                    for micros, name in top_imports(err):
                        print(f"   {micros / 1000:>7.1f}  {name}")
    sink.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
