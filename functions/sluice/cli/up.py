"""``sluice up`` / ``sluice down``: the local system (broker + functions) on this machine.

``sluice up`` starts the local broker as a background process (``python -m sluice.embedded.broker``),
which starts every subscribed function, and returns once all answer, printing the broker URL
(its pid, port and the functions' are in ``<state-dir>/broker/state.json``; logs in
``<state-dir>/logs/``). ``--foreground`` stays attached instead (Ctrl-C stops it).

On a system that is up, or half up, ``sluice up`` repairs it: a function the broker reports not
``ok`` is waited for (its supervisor restarts it) and named; local deployments whose process died
are started again; a broker that no longer answers ``/health`` is stopped and started again (its
journal keeps what it had accepted). ``sluice down`` stops the broker, any function it left
behind, and the local deployment backend's processes (their records stay, so the next ``sluice
up`` starts them again behind the same URLs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sluice.config import Settings
from sluice.embedded.broker import server
from sluice.errors import SluiceError

#: Extra seconds ``sluice up`` waits beyond the functions' ready timeout (imports, the server).
START_MARGIN_S = 30.0


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="start the local broker and the functions (no cluster needed)")
    server.add_serve_args(up)
    up.add_argument("--foreground", action="store_true", help="stay attached (Ctrl-C stops everything)")
    up.set_defaults(func=run_up)
    down = subparsers.add_parser("down", help="stop what 'sluice up' started")
    down.add_argument("--state-dir", help="local state directory (default .sluice, or SLUICE_STATE_DIR)")
    down.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a graceful stop")
    down.set_defaults(func=run_down)


def _cmdline(pid: int) -> str | None:
    """The command line of a live (non-zombie) process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return None


def _alive(pid: object, marker: str) -> bool:
    cmd = _cmdline(pid) if isinstance(pid, int) and pid > 0 else None
    return cmd is not None and marker in cmd


def _health(port: object) -> dict[str, Any] | None:
    """The broker's ``/health`` document, or None when it does not answer."""
    import json
    import urllib.error  # here, not at the top: every ``sluice`` command imports this module
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2.0) as response:
            doc = json.loads(response.read())
            return doc if response.status == 200 and isinstance(doc, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _healthy(port: object) -> bool:
    return _health(port) is not None


def _not_ok(health: dict[str, Any]) -> dict[str, str]:
    functions = health.get("function_health") or {}
    return {name: str(f.get("state")) for name, f in functions.items() if isinstance(f, dict) and f.get("state") != "ok"}


def _repair(options: server.ServeOptions, state: dict[str, Any]) -> int:
    """``sluice up`` on a system that is up: bring back what is down, say what was done."""
    port = state.get("port")
    health = _health(port) or {}
    down = _not_ok(health)
    repaired = []
    if down:
        print("not ok: " + ", ".join(f"{name} ({what})" for name, what in sorted(down.items())), flush=True)
        deadline = time.monotonic() + options.ready_timeout_s + START_MARGIN_S
        while down and time.monotonic() < deadline:
            time.sleep(0.25)
            health = _health(port) or {}
            down = {n: w for n, w in _not_ok(health).items() if w != "unresponsive"}
        if down:
            logs = options.state_dir / "logs"
            print(f"sluice up: still not ok: {', '.join(sorted(down))}; see {logs}/<function>.log", file=sys.stderr)
            return 1
        repaired.append("functions restarted by the broker's supervisor")
    repaired += server.reconcile_deployments(options.settings)
    if repaired:
        print("repaired: " + "; ".join(repaired), flush=True)
        print(f"sluice is up: broker at {state.get('url')} (pid {state.get('pid')})")
    else:
        print(f"sluice is already up: broker at {state.get('url')} (pid {state.get('pid')})")
    return 0


def _announce(url: str, state: dict[str, Any], logs: Path) -> None:
    functions = state.get("functions") or {}
    pid = state.get("pid", "?")
    print(f"sluice is up: broker (pid {pid}) and {len(functions)} functions; logs in {logs}/", flush=True)
    targets = {f.get("target") for f in functions.values() if isinstance(f, dict)}
    root = url.split("/", 3)[:3]
    if "bridge" in targets:
        print(f"web view: {'/'.join(root)}/bridge/", flush=True)
    if "intake" in targets:
        print(f"registry webhooks: {'/'.join(root)}/intake/<dockerhub|harbor|github|ecr|cloudevents>", flush=True)
    print(url, flush=True)  # last line: the broker URL (scripts read it)


def _answers(port: object, tries: int = 3) -> bool:
    for attempt in range(tries):
        if _healthy(port):
            return True
        if attempt < tries - 1:
            time.sleep(1.0)
    return False


def run_up(args: argparse.Namespace) -> int:
    options = server.ServeOptions.from_args(args, os.environ)
    logs = options.state_dir / "logs"
    state = server.read_state(options.state_dir)
    if state and _alive(state.get("pid"), "sluice.embedded.broker"):
        if state.get("ready") and _answers(state.get("port")):
            return _repair(options, state)
        started = float(state.get("started") or 0)
        if not state.get("ready") and time.time() - started < options.ready_timeout_s + START_MARGIN_S:
            print(f"sluice is starting already (pid {state.get('pid')}); see {state.get('log')}")
            return 0
        print(f"the broker (pid {state.get('pid')}) does not answer; stopping it and starting again "
              "(its journal keeps what it accepted)", flush=True)
        _stop_pid(int(state["pid"]), 10.0)
    if state:  # a broker that was killed: its functions may still run
        _stop_functions_of(state)
    if args.foreground:
        print(f"starting the broker and the functions (logs in {logs}/); Ctrl-C stops them", flush=True)
        return server.serve(
            options, os.environ, announce=lambda url: _announce(url, server.read_state(options.state_dir), logs)
        )
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "broker.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sluice.embedded.broker", *options.forward()],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + options.ready_timeout_s + START_MARGIN_S
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            from sluice.embedded.broker.processes import tail

            print(f"sluice up: the broker exited with code {code} while starting; last lines of {log_path}:",
                  file=sys.stderr)
            print(tail(log_path, 20), file=sys.stderr)
            return 1
        state = server.read_state(options.state_dir)
        if state and state.get("pid") == process.pid and state.get("ready") and _healthy(options.port):
            _announce(str(state["url"]), state, logs)
            return 0
        time.sleep(0.1)
    _stop_pid(process.pid, 10.0)
    print(f"sluice up: not ready within {options.ready_timeout_s + START_MARGIN_S:g} s; stopped it; see {log_path}",
          file=sys.stderr)
    return 1


def _stop_pid(pid: int, timeout_s: float, group: bool = False) -> None:
    """SIGTERM (the group), then SIGKILL after ``timeout_s``."""
    kill = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _cmdline(pid) is not None:
        time.sleep(0.05)
    if _cmdline(pid) is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    if group:  # workers whose master is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def run_down(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ, state_dir=args.state_dir)
    state_dir = Path(settings.state_dir).resolve()
    state = server.read_state(state_dir)
    said = False
    if state:
        pid = state.get("pid")
        if isinstance(pid, int) and _alive(pid, "sluice.embedded.broker"):
            _stop_pid(pid, args.timeout)
            print(f"stopped the broker (pid {pid})")
            said = True
        left = _stop_functions_of(state)
        if left:
            print(f"stopped {left} function process(es) the broker left behind")
            said = True
        with contextlib.suppress(OSError):
            server.state_path(state_dir).unlink()
    stopped = _stop_deployments(settings.with_(state_dir=str(state_dir)))
    from sluice.embedded.prometheus import stop_prometheus

    if stop_prometheus(str(state_dir)):
        print("stopped Prometheus")
        said = True
    if stopped:
        print(f"stopped {stopped} local deployment process(es)")
        said = True
    if not said:
        print(f"sluice is not up (nothing running for {state_dir})")
    return 0


def _stop_functions_of(state: dict[str, Any]) -> int:
    """Stop the function processes a state file lists that still run; how many there were."""
    left = 0
    for info in (state.get("functions") or {}).values():
        fpid = info.get("pid") if isinstance(info, dict) else None
        if isinstance(fpid, int) and _alive(fpid, "functions-framework"):
            _stop_pid(fpid, 5.0, group=True)
            left += 1
    return left


def _stop_deployments(settings: Settings) -> int:
    """The deployment backend's ``stop_all`` hook (the local backend's processes), if it has one."""
    if settings.backend != "local" or not (settings.state_path / "runtime").is_dir():
        return 0
    from sluice.compose import build_backend

    try:
        stop_all = getattr(build_backend(settings), "stop_all", None)
        return len(stop_all()) if callable(stop_all) else 0
    except SluiceError as err:
        print(f"sluice down: could not stop the local deployments: {err}", file=sys.stderr)
        return 0
