"""The functions as local processes: one functions-framework server per Knative Service.

Each runs ``functions-framework --source <main.py> --target <FUNCTION_TARGET> --host 127.0.0.1
--port <free>`` in its own process group (gunicorn's workers stop with it), logging to
``<logs>/<service>.log``; it is ready when ``GET /`` answers 200. Starting is bounded
(``ready_timeout_s``); a lost race for a free port is retried on another port.

While the broker runs, ``Supervisor`` keeps them running: a process that exits is started
again (on the same port when it is free) after a backoff that doubles from 1 s to 30 s while it
keeps failing, and each function's health (``ok``, ``restarting``, ``dead``, ``unresponsive``)
is what ``GET /health`` of the broker reports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sluice.embedded.broker.manifests import ServiceSpec
from sluice.embedded.host import free_port
from sluice.errors import ConfigurationError, RetryableError

log = logging.getLogger("sluice.embedded.broker")

PORT_ATTEMPTS = 3


@dataclass
class FunctionProcess:
    service: ServiceSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.process.pid


def functions_framework() -> str:
    """The functions-framework executable beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("functions-framework")
    if beside.exists():
        return str(beside)
    found = shutil.which("functions-framework")
    if not found:
        raise ConfigurationError("functions-framework: not found beside the interpreter nor on PATH; pip install functions-framework")
    return found


def _spawn(service: ServiceSpec, source: Path, env: Mapping[str, str], log_dir: Path, port: int = 0) -> FunctionProcess:
    port = port or free_port()
    log_path = log_dir / f"{service.name}.log"
    cmd = [functions_framework(), "--source", str(source), "--target", service.target,
           "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            cmd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return FunctionProcess(service, port, process, log_path)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_functions(
    services: Sequence[ServiceSpec], source: Path, env: Mapping[str, str], log_dir: Path, ready_timeout_s: float = 60.0
) -> list[FunctionProcess]:
    """Start every service and wait until all answer ``GET /`` with 200 (or raise, none left running)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if not source.is_file():
        raise ConfigurationError(f"functions-framework source {source}: no such file")
    spawned: list[FunctionProcess] = []

    def spawn(service: ServiceSpec) -> FunctionProcess:
        proc = _spawn(service, source, env, log_dir)
        spawned.append(proc)
        return proc

    try:
        pending = [spawn(s) for s in services]
        ready: list[FunctionProcess] = []
        attempts = {p.service.name: 1 for p in pending}
        deadline = time.monotonic() + ready_timeout_s
        while pending:
            waiting = []
            for proc in pending:
                if proc.process.poll() is not None:
                    if attempts[proc.service.name] < PORT_ATTEMPTS and "in use" in tail(proc.log_path, 5):
                        attempts[proc.service.name] += 1
                        waiting.append(spawn(proc.service))
                        continue
                    raise RetryableError(
                        f"function {proc.service.name} (target {proc.service.target}) exited with "
                        f"{proc.process.returncode} while starting; last lines of {proc.log_path}:\n{tail(proc.log_path)}"
                    )
                if _ready(proc.port):
                    log.info("function %s (target %s) ready at %s", proc.service.name, proc.service.target, proc.url)
                    ready.append(proc)
                else:
                    waiting.append(proc)
            pending = waiting
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.service.name for p in pending)
                raise RetryableError(f"functions {names} did not answer GET / within {ready_timeout_s:g} s; see {log_dir}")
            if pending:
                time.sleep(0.1)
    except BaseException:
        stop_functions(spawned)
        raise
    return ready


def stop_functions(processes: Sequence[FunctionProcess], timeout_s: float = 5.0) -> None:
    """SIGTERM each process group, SIGKILL what is left after ``timeout_s``."""
    for proc in processes:
        if proc.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in processes:
        try:
            proc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.process.wait(timeout=2.0)
        # the group may still hold a worker whose master is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


#: Backoff before restarting a function that exited: doubles from the first to the last.
RESTART_BACKOFF_S = (1.0, 30.0)
#: How often the supervisor probes a running function's ``GET /`` (and after how many misses
#: in a row it reports it ``unresponsive``; it is not restarted for that: it may be busy).
PROBE_EVERY_S = 5.0
PROBE_MISSES = 2


@dataclass
class Supervised:
    """One function under supervision, and what ``/health`` says about it."""

    proc: FunctionProcess
    state: str = "ok"  # ok | restarting | dead | unresponsive
    restarts: int = 0
    failures: int = 0  # restarts in a row that did not become ready
    last_exit: int | None = None
    retry_at: float = 0.0
    started: float = field(default_factory=time.monotonic)
    next_probe: float = 0.0
    misses: int = 0


class Supervisor:
    """Keeps the function processes running (one background thread); see the module docstring.

    ``on_change(name, process)`` is called after a function was started again (its URL may be
    new when its old port was taken)."""

    def __init__(
        self, processes: Sequence[FunctionProcess], source: Path, env: Mapping[str, str], log_dir: Path,
        ready_timeout_s: float = 60.0, on_change: Callable[[str, FunctionProcess], None] | None = None,
        interval_s: float = 0.25,
    ) -> None:
        self.source, self.env, self.log_dir = source, dict(env), log_dir
        self.ready_timeout_s = ready_timeout_s
        self.on_change = on_change
        self.interval_s = interval_s
        self._functions = {p.service.name: Supervised(p) for p in processes}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def processes(self) -> list[FunctionProcess]:
        with self._lock:
            return [f.proc for f in self._functions.values()]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sluice-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def health(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {
                name: {
                    "state": f.state, "url": f.proc.url, "pid": f.proc.pid, "restarts": f.restarts,
                    "last_exit": f.last_exit,
                }
                for name, f in self._functions.items()
            }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # the supervisor must outlive any one bad pass
                log.exception("supervisor: a check failed")

    def check(self, now: float | None = None) -> None:
        """One pass over every function: notice exits, restart after the backoff, probe."""
        for name, f in list(self._functions.items()):
            now = time.monotonic() if now is None else now
            code = f.proc.process.poll()
            if f.state == "restarting":
                if code is None and _ready(f.proc.port):
                    with self._lock:
                        f.state, f.started, f.misses = "ok", now, 0
                    log.warning("supervisor: function %s is back at %s (pid %d)", name, f.proc.url, f.proc.pid)
                    if self.on_change is not None:
                        self.on_change(name, f.proc)
                elif code is not None or now - f.started > self.ready_timeout_s:
                    self._failed(name, f, code, now)
                continue
            if code is not None and f.state != "dead":
                log.error("supervisor: function %s (pid %d) exited with %s; last lines of %s:\n%s",
                          name, f.proc.pid, code, f.proc.log_path, tail(f.proc.log_path, 5))
                self._failed(name, f, code, now, first=True)
                continue
            if f.state == "dead":
                if now >= f.retry_at:
                    self._restart(name, f, now)
                continue
            if now >= f.next_probe:
                f.next_probe = now + PROBE_EVERY_S
                answered = _ready(f.proc.port)
                with self._lock:
                    f.misses = 0 if answered else f.misses + 1
                    f.state = "unresponsive" if f.misses >= PROBE_MISSES else "ok"

    def _failed(self, name: str, f: Supervised, code: int | None, now: float, first: bool = False) -> None:
        if code is None:  # started but never ready: stop it before the next try
            stop_functions([f.proc], timeout_s=2.0)
            code = f.proc.process.returncode
        lo, hi = RESTART_BACKOFF_S
        with self._lock:
            f.failures = 0 if first and now - f.started > 60 else f.failures + (0 if first else 1)
            f.state, f.last_exit = "dead", code
            f.retry_at = now + min(hi, lo * 2 ** f.failures)

    def _restart(self, name: str, f: Supervised, now: float) -> None:
        service = f.proc.service
        stop_functions([f.proc], timeout_s=1.0)  # what is left of its process group
        port = f.proc.port if _port_free(f.proc.port) else 0
        try:
            proc = _spawn(service, self.source, self.env, self.log_dir, port)
        except OSError as err:
            log.error("supervisor: cannot start function %s again: %s", name, err)
            with self._lock:
                f.failures += 1
                f.retry_at = now + min(RESTART_BACKOFF_S[1], RESTART_BACKOFF_S[0] * 2 ** f.failures)
            return
        log.warning("supervisor: starting function %s again (restart %d) on port %d", name, f.restarts + 1, proc.port)
        with self._lock:
            f.proc, f.state, f.started = proc, "restarting", now
            f.restarts += 1


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
