"""The functions as local processes: one functions-framework server per Knative Service.

Each runs ``functions-framework --source <main.py> --target <FUNCTION_TARGET> --host 127.0.0.1
--port <free>`` in its own process group (gunicorn's workers stop with it), logging to
``<logs>/<service>.log``; it is ready when ``GET /`` answers 200. Starting is bounded
(``ready_timeout_s``); a lost race for a free port is retried on another port.
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
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sluice.broker.manifests import ServiceSpec
from sluice.errors import ConfigurationError, RetryableError

log = logging.getLogger("sluice.broker")

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def functions_framework() -> str:
    """The functions-framework executable beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("functions-framework")
    if beside.exists():
        return str(beside)
    found = shutil.which("functions-framework")
    if not found:
        raise ConfigurationError("functions-framework: not found beside the interpreter nor on PATH; pip install functions-framework")
    return found


def _spawn(service: ServiceSpec, source: Path, env: Mapping[str, str], log_dir: Path) -> FunctionProcess:
    port = free_port()
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
