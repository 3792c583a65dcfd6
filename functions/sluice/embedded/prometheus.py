"""A real Prometheus for local mode: started on 127.0.0.1, scraping every local deployment.

:func:`ensure_prometheus` starts Debian's ``prometheus`` binary (``apt-get install prometheus``)
as a detached process with its configuration, data and log under ``<state-dir>/prometheus/``,
waits (bounded) until ``/-/ready`` answers, and returns its URL; a running one is reused.
Its scrape targets come from a ``file_sd`` file (``targets.json``) that :func:`write_targets`
replaces atomically; Prometheus notices the change within a second.

With ``watch=True`` (the default) a small watcher process follows the local deployment
backend's slot records (``<state-dir>/runtime/slots/*.json``, see
:mod:`sluice.adapters.backends.local`), polling every 0.25 s, and serves a *relay* on
127.0.0.1: Prometheus scrapes ``<relay>/metrics/<project>/<stage>/<service>/<slot>`` and the
relay forwards to the slot's current process. One target per slot, kept when the slot's
process is replaced (a new image on a new port), so a new deployment is scraped at the next
scrape (1 s) rather than after Prometheus' target discovery (5-10 s, longer than a short load
test). A replaced process is a counter reset of the same series, which ``rate`` handles only
within a range that holds no sample of the predecessor: so a query's range must not reach
before the window of the build it measures (``$DURATION_SECONDS`` is rounded down for that,
:func:`sluice.core.sli_config.duration_placeholder`). Every deployment the
local backend runs is scraped with the labels a Kubernetes scrape config would give it:

- ``job``: ``<service>-<project>-<stage>`` (primary and direct slots) or
  ``<service>-<project>-<stage>-canary`` (canary slot) — :func:`job_name`;
- ``namespace`` (``<project>-<stage>``), ``project``, ``stage``, ``service``, ``slot``;
  ``instance`` is ``<service>-<slot>.<project>-<stage>``.

Without the watcher, :func:`write_targets` / :func:`sync_targets` write targets at the slots'
own ports (each new port is then a new target, found after discovery's delay).

The watcher exits by itself when Prometheus stops. :func:`stop_prometheus` stops both.

Layout::

    <state-dir>/prometheus/
      prometheus.yml   the configuration (scrape interval, file_sd of targets.json)
      targets.json     the scrape targets (file_sd format)
      state.json       pid, start ticks, port and URL of Prometheus and of the watcher
      data/            the TSDB
      prometheus.log, watcher.log
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sluice.adapters.sli.prometheus import job_name
from sluice.core.frozen import frozen
from sluice.embedded.host import flock, free_port, pid_alive, read_json, start_ticks, tail, write_json
from sluice.errors import ConfigurationError, PermanentError, RetryableError

__all__ = [
    "ScrapeTarget",
    "ensure_prometheus",
    "prometheus_url",
    "stop_prometheus",
    "sync_targets",
    "targets_from_runtime",
    "write_targets",
]

INSTALL_HINT = (
    "install Debian's package (apt-get update && apt-get install -y prometheus) "
    "or run 'make system-deps' (make test does it)"
)
_POLL_S = 0.05
_SAFE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@frozen
class ScrapeTarget:
    """One endpoint to scrape: ``address`` (host:port) with its ``job`` and extra labels."""

    job: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"

    def to_file_sd(self) -> dict[str, Any]:
        labels = {**self.labels, "job": self.job}
        if self.metrics_path != "/metrics":
            labels["__metrics_path__"] = self.metrics_path
        return {"targets": [self.address], "labels": dict(sorted(labels.items()))}


def folder(state_dir: str | Path) -> Path:
    """Where the local Prometheus keeps its files."""
    return Path(state_dir) / "prometheus"


def slot_keys(runtime_dir: str | Path) -> dict[tuple[str, str, str, str], int]:
    """(project, stage, service, slot) → port of every slot the local backend recorded."""
    found = {}
    for path in sorted((Path(runtime_dir) / "slots").glob("*.json")):
        record = read_json(path)
        try:
            key = (str(record["project"]), str(record["stage"]), str(record["service"]), str(record["slot"]))
            found[key] = int(record["port"])
        except (ValueError, KeyError, TypeError):
            continue  # being written, or not a slot record
    return found


def _target(key: tuple[str, str, str, str], address: str, metrics_path: str = "/metrics") -> ScrapeTarget:
    project, stage, service, slot = key
    labels = {"namespace": f"{project}-{stage}", "project": project, "stage": stage, "service": service, "slot": slot}
    if metrics_path != "/metrics":
        labels["instance"] = f"{service}-{slot}.{project}-{stage}"
    return ScrapeTarget(job_name(project, stage, service, slot), address, labels, metrics_path)


def targets_from_runtime(runtime_dir: str | Path) -> list[ScrapeTarget]:
    """The scrape targets of every slot the local backend has recorded, at the slots' own ports."""
    return [_target(key, f"127.0.0.1:{port}") for key, port in slot_keys(runtime_dir).items()]


def relay_targets(keys: Iterable[tuple[str, str, str, str]], relay_address: str) -> list[ScrapeTarget]:
    """Targets that scrape each slot through the relay (``/metrics/<project>/<stage>/<service>/<slot>``).

    A slot keeps its target (and series) when its process is replaced, so a new deployment is
    scraped at the next scrape instead of after Prometheus' target discovery (5-10 s). Each
    placement gets the targets of its sibling slots too (primary and canary go together).
    """
    wanted: set[tuple[str, str, str, str]] = set()
    for project, stage, service, slot in keys:
        siblings = ("primary", "canary") if slot in ("primary", "canary") else (slot,)
        wanted.update((project, stage, service, s) for s in siblings)
    return [_target(key, relay_address, "/metrics/" + "/".join(key)) for key in sorted(wanted)]


def write_targets(state_dir: str | Path, targets: Iterable[ScrapeTarget]) -> bool:
    """Replace ``targets.json`` atomically with ``targets``; False when it already held them."""
    where = folder(state_dir)
    where.mkdir(parents=True, exist_ok=True)
    text = json.dumps([t.to_file_sd() for t in sorted(targets, key=lambda t: (t.job, t.address))], indent=1) + "\n"
    path = where / "targets.json"
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    tmp = where / f".targets.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def sync_targets(state_dir: str | Path, runtime_dir: str | Path | None = None) -> list[ScrapeTarget]:
    """Write the targets of the local backend's slots (``<state-dir>/runtime`` by default):
    through the relay when the watcher runs (keeping every slot seen before), else directly."""
    runtime = Path(runtime_dir) if runtime_dir is not None else Path(state_dir) / "runtime"
    relay_port = _read_state(folder(state_dir)).get("relay_port")
    if isinstance(relay_port, int) and relay_port > 0:
        known = set(_known_keys(Path(state_dir))) | set(slot_keys(runtime))
        targets = relay_targets(known, f"127.0.0.1:{relay_port}")
    else:
        targets = targets_from_runtime(runtime)
    write_targets(state_dir, targets)
    return targets


def prometheus_url(state_dir: str | Path) -> str | None:
    """The URL of the local Prometheus of ``state_dir`` when it runs and is ready, else None."""
    state = _read_state(folder(state_dir))
    if _running(state) and _ready(str(state["url"]), 2.0):
        return str(state["url"])
    return None


def ensure_prometheus(
    state_dir: str | Path,
    port: int = 0,
    *,
    binary: str = "prometheus",
    scrape_interval_s: float = 1.0,
    timeout_s: float = 30.0,
    watch: bool = True,
    runtime_dir: str | Path | None = None,
) -> str:
    """Start (or reuse) the local Prometheus of ``state_dir`` on ``127.0.0.1:port``; its URL.

    ``port`` 0 picks a free port. A Prometheus already running for ``state_dir`` is reused as it
    is (whatever its port). ``watch`` starts the watcher that keeps the targets equal to the
    local backend's slots under ``runtime_dir`` (default ``<state-dir>/runtime``).

    Raises ``ConfigurationError`` when the binary is missing, ``PermanentError`` when it exits
    while starting (with the end of its log), ``RetryableError`` when it is not ready within
    ``timeout_s`` (it is stopped then).
    """
    where = folder(state_dir).resolve()
    where.mkdir(parents=True, exist_ok=True)
    runtime = Path(runtime_dir) if runtime_dir is not None else Path(state_dir) / "runtime"
    with flock(where / "lock", timeout_s, "the local Prometheus"):
        state = _read_state(where)
        if _running(state) and _ready(str(state["url"]), 2.0):
            if watch and not pid_alive(state.get("watcher_pid"), state.get("watcher_ticks")):
                state.update(_start_watcher(where, runtime, state))
                _write_state(where, state)
            return str(state["url"])
        _stop(state, timeout_s)
        executable = shutil.which(binary)
        if executable is None:
            raise ConfigurationError(f"Prometheus is not installed ({binary!r} is not on PATH): {INSTALL_HINT}")
        chosen = port or free_port()
        url = f"http://127.0.0.1:{chosen}"
        _write_config(where, scrape_interval_s)
        relay_port = free_port() if watch else 0
        if watch:  # the relay's targets first, so Prometheus scrapes known slots from its start
            known = set(_known_keys(where.parent)) | set(slot_keys(runtime))
            write_targets(where.parent, relay_targets(known, f"127.0.0.1:{relay_port}"))
        elif not (where / "targets.json").exists():
            write_targets(state_dir, [])
        log_path = where / "prometheus.log"
        argv = [
            executable, f"--config.file={where / 'prometheus.yml'}", f"--storage.tsdb.path={where / 'data'}",
            f"--web.listen-address=127.0.0.1:{chosen}", "--storage.tsdb.retention.time=2d",
        ]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=where
            )
        state = {"pid": process.pid, "start_ticks": start_ticks(process.pid), "port": chosen, "url": url,
                 "log": str(log_path), "started_at": time.time(), "relay_port": relay_port}
        _write_state(where, state)
        deadline = time.monotonic() + timeout_s
        while True:
            code = process.poll()
            if code is not None:
                _clear_state(where)
                raise PermanentError(
                    f"Prometheus ({executable}) exited with code {code} while starting on 127.0.0.1:{chosen}; "
                    f"end of {log_path}:\n{tail(log_path)}"
                )
            if _ready(url, 1.0):
                break
            if time.monotonic() > deadline:
                _stop(state, 10.0)
                _clear_state(where)
                raise RetryableError(
                    f"Prometheus on 127.0.0.1:{chosen} was not ready within {timeout_s:g} s (stopped it); "
                    f"end of {log_path}:\n{tail(log_path)}"
                )
            time.sleep(_POLL_S * 2)
        if watch:
            state.update(_start_watcher(where, runtime, state))
        _write_state(where, state)
        return url


def stop_prometheus(state_dir: str | Path, timeout_s: float = 10.0) -> bool:
    """Stop the local Prometheus of ``state_dir`` and its watcher; False when none ran."""
    where = folder(state_dir)
    if not where.is_dir():
        return False
    with flock(where / "lock", timeout_s + 5.0, "the local Prometheus"):
        state = _read_state(where)
        was_running = _running(state)
        _stop(state, timeout_s)
        _clear_state(where)
        return was_running


# -- the watcher -------------------------------------------------------------------------------


def watch_targets(state_dir: Path, runtime_dir: Path, prometheus_pid: int, prometheus_ticks: int | None,
                  relay_port: int, interval_s: float = 0.25) -> int:
    """Serve the relay on ``127.0.0.1:relay_port`` and keep the targets covering every slot ever
    recorded, until Prometheus stops (or SIGTERM)."""
    running = True

    def stop(signum: int, frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    server = ThreadingHTTPServer(("127.0.0.1", relay_port), _relay_handler(runtime_dir))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    address = f"127.0.0.1:{server.server_port}"
    known = set(_known_keys(state_dir))
    try:
        while running and pid_alive(prometheus_pid, prometheus_ticks):
            try:
                known.update(slot_keys(runtime_dir))
                write_targets(state_dir, relay_targets(known, address))
            except OSError as err:  # a transient file-system problem: try again next round
                print(f"watcher: could not write the targets: {err}", file=sys.stderr, flush=True)
            time.sleep(interval_s)
    finally:
        server.shutdown()
        server.server_close()
    return 0


def _known_keys(state_dir: Path) -> list[tuple[str, str, str, str]]:
    """The slot keys already in targets.json (so a restarted watcher keeps their targets)."""
    try:
        groups = json.loads((folder(state_dir) / "targets.json").read_text())
        return [
            (g["labels"]["project"], g["labels"]["stage"], g["labels"]["service"], g["labels"]["slot"])
            for g in groups
            if isinstance(g, dict) and {"project", "stage", "service", "slot"} <= set(g.get("labels", {}))
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _relay_handler(runtime_dir: Path) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 5 or parts[0] != "metrics" or not all(_SAFE.fullmatch(p) for p in parts[1:]):
                return self._answer(404, b"expected /metrics/<project>/<stage>/<service>/<slot>\n")
            record = read_json(runtime_dir / "slots" / (".".join(parts[1:]) + ".json"))
            try:
                port = int(record["port"])
            except (ValueError, KeyError, TypeError):
                return self._answer(404, f"no slot {'/'.join(parts[1:])} is running\n".encode())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2.0) as response:
                    body = response.read()
                    content_type = response.headers.get("Content-Type", "text/plain; version=0.0.4")
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
                return self._answer(503, f"slot {'/'.join(parts[1:])} on port {port} did not answer: {err}\n".encode())
            return self._answer(200, body, content_type)

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Relay


def _start_watcher(where: Path, runtime: Path, state: Mapping[str, Any]) -> dict[str, Any]:
    relay_port = int(state.get("relay_port") or 0) or free_port()
    argv = [sys.executable, "-m", "sluice.embedded.prometheus", "watch",
            "--state-dir", str(where.parent), "--runtime-dir", str(Path(runtime).resolve()),
            "--pid", str(state["pid"]), "--port", str(relay_port)]
    if state.get("start_ticks") is not None:
        argv += ["--ticks", str(state["start_ticks"])]
    with open(where / "watcher.log", "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return {"watcher_pid": process.pid, "watcher_ticks": start_ticks(process.pid), "relay_port": relay_port}


# -- helpers -------------------------------------------------------------------------------------


def _write_config(where: Path, scrape_interval_s: float) -> None:
    interval = f"{max(0.1, scrape_interval_s):g}s"
    text = "\n".join([
        "# Written by sluice (sluice.embedded.prometheus); rewritten at each start.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        "  evaluation_interval: 15s",
        "scrape_configs:",
        "  - job_name: sluice-local   # each target's own job label replaces this name",
        "    file_sd_configs:",
        f"      - files: [{json.dumps(str(where / 'targets.json'))}]",
        "        refresh_interval: 5s",
        "",
    ])
    (where / "prometheus.yml").write_text(text)


def _ready(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _running(state: Mapping[str, Any]) -> bool:
    return bool(state) and "url" in state and pid_alive(state.get("pid"), state.get("start_ticks"))


def _stop(state: Mapping[str, Any], timeout_s: float) -> None:
    for pid_key, ticks_key in (("watcher_pid", "watcher_ticks"), ("pid", "start_ticks")):
        pid, ticks = state.get(pid_key), state.get(ticks_key)
        if not pid_alive(pid, ticks):
            continue
        assert isinstance(pid, int)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid, ticks) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        if pid_alive(pid, ticks):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while pid_alive(pid, ticks) and time.monotonic() < deadline:
                time.sleep(_POLL_S)


def _read_state(where: Path) -> dict[str, Any]:
    return read_json(where / "state.json")


def _write_state(where: Path, state: Mapping[str, Any]) -> None:
    write_json(where / "state.json", dict(state))


def _clear_state(where: Path) -> None:
    with contextlib.suppress(OSError):
        (where / "state.json").unlink()


def main(argv: list[str] | None = None) -> int:
    """``python -m sluice.embedded.prometheus start|stop|sync|watch --state-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m sluice.embedded.prometheus")
    parser.add_argument("command", choices=["start", "stop", "sync", "watch"])
    parser.add_argument("--state-dir", default=".sluice")
    parser.add_argument("--runtime-dir", help="the local backend's runtime dir (default <state-dir>/runtime)")
    parser.add_argument("--port", type=int, default=0, help="start: Prometheus' port; watch: the relay's port")
    parser.add_argument("--pid", type=int, help="watch: the Prometheus process to follow")
    parser.add_argument("--ticks", type=int, help="watch: its start time in clock ticks")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    runtime = Path(args.runtime_dir) if args.runtime_dir else state_dir / "runtime"
    if args.command == "watch":
        if args.pid is None:
            parser.error("watch needs --pid")
        return watch_targets(state_dir, runtime, args.pid, args.ticks, args.port)
    if args.command == "sync":
        print(f"{len(sync_targets(state_dir, runtime))} target(s) written to {folder(state_dir) / 'targets.json'}")
        return 0
    if args.command == "stop":
        print("stopped" if stop_prometheus(state_dir) else "not running")
        return 0
    try:
        print(ensure_prometheus(state_dir, args.port, runtime_dir=runtime))
    except (ConfigurationError, PermanentError, RetryableError) as err:
        print(f"prometheus: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
