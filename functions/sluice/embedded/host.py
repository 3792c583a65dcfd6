"""Host helpers of the embedded default, shared by the local backend, the router, the local
Prometheus and the broker: the runtime directory's JSON files (read tolerantly — a missing or
half-written file is empty — and written atomically), free ports, process liveness by pid and
start time, termination of a process group, the tail of a log, and file locks with a deadline."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sluice.errors import RetryableError

#: Written by the router: its pid and control URL.
ROUTER_INFO = "router.json"
#: Written by the router: each stage's port, upstreams and weight.
ROUTER_STAGES = "router-stages.json"


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


# -- processes on this host ------------------------------------------------------------------

_POLL_S = 0.05


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), ``None`` if unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux ``/proc``), to tell it from a reused pid."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def pid_alive(pid: object, ticks: object = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``ticks`` is known, is the process started then.

    Any non-integer ``pid`` (a missing or damaged state file) is simply not alive."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    if Path("/proc/self/stat").exists():
        fields = _stat_fields(pid)
        if not fields or fields[0] in ("Z", "X"):
            return False
        return ticks is None or (len(fields) > 19 and fields[19] == str(ticks))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, ticks: int | None, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group of ``pid``, SIGKILL after ``timeout_s``; no-op when it is gone."""
    if not pid_alive(pid, ticks):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=_POLL_S)
            else:
                time.sleep(_POLL_S)
            if not pid_alive(pid, ticks):
                return


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a process's log (for an error message)."""
    try:
        text = path.read_bytes()[-8192:].decode("utf-8", "replace")
    except OSError:
        return "(no output recorded)"
    last = text.splitlines()[-lines:]
    return "\n".join(last) if last else "(no output)"


@contextlib.contextmanager
def flock(path: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``what`` it guards names it in the error), waiting at
    most ``timeout_s``: past it a :class:`RetryableError` (someone else is busy, try later)."""
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as err:
                if time.monotonic() >= deadline:
                    raise RetryableError(
                        f"another process has been changing {what} for more than {timeout_s:g} s (lock {path})"
                    ) from err
                time.sleep(_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
