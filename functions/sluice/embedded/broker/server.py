"""The broker process: the composition root of ``sluice up`` and ``python -m sluice.embedded.broker``.

Reads the manifests, starts the local deployments the records say should run (``local``
backend), starts the functions (each with the settings' environment and ``K_SINK`` = the
ingress URL), serves the broker on 127.0.0.1 with its journal (``<state-dir>/broker/
journal.jsonl``: what a previous run accepted and had not finished is delivered again), and
stops the functions when it ends (SIGTERM / SIGINT). While it runs, a supervisor restarts a
function that exits and re-starts local deployments whose process died (every
``RECONCILE_EVERY_S``), and ``<state-dir>/broker/state.json`` records its pid, port, URL and the
functions' pids and ports; logs go to ``<state-dir>/logs/``.

uvicorn, the broker's app and its process helpers are imported when the broker starts: the CLI
imports this module for its options and state file (``sluice status``, ``sluice down``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sluice
from sluice.config import Settings
from sluice.core.frozen import frozen
from sluice.embedded.host import read_json, write_json
from sluice.errors import ConfigurationError, SluiceError

log = logging.getLogger("sluice.embedded.broker")

CHECKOUT = Path(sluice.__file__).resolve().parents[2]
DEFAULT_SOURCE = Path(sluice.__file__).resolve().parents[1] / "main.py"
DEFAULT_PORT = 8080
DEFAULT_TICK_S = 5.0
STATE_FILE = Path("broker") / "state.json"
#: Idle keep-alive of ingress connections (uvicorn's default of 5 s makes busy clients race it).
KEEP_ALIVE_S = 75
#: How often the broker re-starts local deployments whose process died (0: only at start).
RECONCILE_EVERY_S = 15.0


def default_dir(name: str) -> Path:
    """``./<name>`` when the working directory has it, else the checkout's."""
    here = Path(name)
    return here.resolve() if here.is_dir() else CHECKOUT / name


def add_serve_args(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``sluice up`` and ``python -m sluice.embedded.broker``."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="ingress port on 127.0.0.1 (default 8080)")
    parser.add_argument("--state-dir", help="local state directory (default .sluice, or SLUICE_STATE_DIR)")
    parser.add_argument("--tick", type=float, default=DEFAULT_TICK_S,
                        help="seconds between PingSource ticks (default 5; 0 = no ticks)")
    parser.add_argument("--backend", help="deployment backend for the functions (default local, or SLUICE_BACKEND)")
    parser.add_argument("--sli-provider", help="SLI provider (default: the project's, else builtin)")
    parser.add_argument("--perf-duration", type=float, help="seconds of each performance test (SLUICE_PERF_DURATION)")
    parser.add_argument("--knative", type=Path, help="directory of the Broker, Services, PingSource (default knative/)")
    parser.add_argument("--triggers", type=Path, help="directory of the Trigger manifests (default triggers/)")
    parser.add_argument("--source", type=Path, help="functions-framework source (default functions/main.py)")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for the functions")
    parser.add_argument("--max-event-bytes", type=int, default=1024 * 1024,
                        help="largest event the ingress accepts, in bytes (default 1 MiB; larger: 413)")


@frozen
class ServeOptions:
    port: int
    tick_s: float
    knative_dir: Path
    triggers_dir: Path
    source: Path
    ready_timeout_s: float
    settings: Settings
    max_event_bytes: int = 1024 * 1024

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.state_dir)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> ServeOptions:
        settings = Settings.from_env(
            environ, state_dir=args.state_dir, backend=args.backend, sli_provider=args.sli_provider,
            performance_duration_s=args.perf_duration,
        )
        if args.tick < 0:
            raise ConfigurationError(f"--tick: expected seconds ≥ 0, found {args.tick:g}")
        if args.max_event_bytes < 1024:
            raise ConfigurationError(f"--max-event-bytes: expected at least 1024, found {args.max_event_bytes}")
        return cls(
            port=args.port,
            tick_s=args.tick,
            knative_dir=(args.knative or default_dir("knative")).resolve(),
            triggers_dir=(args.triggers or default_dir("triggers")).resolve(),
            source=(args.source or DEFAULT_SOURCE).resolve(),
            ready_timeout_s=args.ready_timeout,
            settings=settings.with_(state_dir=str(Path(settings.state_dir).resolve())),
            max_event_bytes=args.max_event_bytes,
        )

    def forward(self) -> list[str]:
        """These options as ``python -m sluice.embedded.broker`` arguments (for the daemon)."""
        s = self.settings
        argv = ["--port", str(self.port), "--state-dir", s.state_dir, "--tick", f"{self.tick_s:g}",
                "--knative", str(self.knative_dir), "--triggers", str(self.triggers_dir),
                "--source", str(self.source), "--ready-timeout", f"{self.ready_timeout_s:g}",
                "--backend", s.backend, "--max-event-bytes", str(self.max_event_bytes)]
        if s.sli_provider:
            argv += ["--sli-provider", s.sli_provider]
        if s.performance_duration_s:
            argv += ["--perf-duration", f"{s.performance_duration_s:g}"]
        return argv


def state_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / STATE_FILE


def read_state(state_dir: str | Path) -> dict[str, Any]:
    """The running broker's record; ``{}`` when there is none (or it is half-written)."""
    return read_json(state_path(state_dir))


def _write_state(state_dir: Path, data: dict[str, Any]) -> None:
    path = state_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            raise ConfigurationError(
                f"port {port} on 127.0.0.1 is in use ({err.strerror}); stop what listens there or pass --port"
            ) from err


def function_threads(env: Mapping[str, str]) -> int:
    """How many requests one functions-framework process serves at once (its gunicorn threads)."""
    threads = env.get("THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else (os.cpu_count() or 1) * 4


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM is how ``sluice down`` asks us to stop: unwind (stopping the functions), exit 0."""
    raise SystemExit(0)


def reconcile_deployments(settings: Settings) -> list[str]:
    """Start again the local deployments the records say should run (after ``sluice down`` or a
    crash: their URLs serve again); what was done, one line per slot that was not running."""
    from sluice.compose import build_backend

    if settings.backend != "local" or not (Path(settings.state_dir) / "runtime" / "slots").is_dir():
        return []
    done = []
    try:
        for slot in build_backend(settings).reconcile():  # type: ignore[attr-defined]
            if slot.state != "running":
                line = f"{slot.placement.project}/{slot.placement.stage} {slot.placement.service} {slot.slot.value}: {slot.state}"
                log.info("local deployment %s", line)
                done.append(line)
    except SluiceError as err:
        log.warning("could not reconcile the local deployments: %s", err)
        done.append(f"could not reconcile the local deployments: {err}")
    return done


def _reconcile_loop(settings: Settings, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        try:
            reconcile_deployments(settings)
        except Exception:  # keep supervising whatever one pass met
            log.exception("reconciling the local deployments failed")


def serve(options: ServeOptions, environ: Mapping[str, str], announce: Callable[[str], None] | None = None) -> int:
    """Run the broker and its functions until SIGTERM / SIGINT; ``announce(url)`` once ready."""
    import uvicorn

    from sluice.embedded.broker.app import create_app
    from sluice.embedded.broker.manifests import load_topology

    logs = options.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    topology = load_topology(options.knative_dir, options.triggers_dir)
    url = f"http://127.0.0.1:{options.port}{topology.broker.path}"
    _check_port(options.port)
    settings = _with_local_prometheus(options.settings.with_(broker_url=url), options.state_dir)
    reconcile_deployments(settings)
    env = function_env(environ, settings, url)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # functions started below are stopped on the way out
    running = _Running.start(options, topology, settings, env, url, logs, announce)
    config = uvicorn.Config(
        create_app(running.broker, on_startup=running.ready), host="127.0.0.1", port=options.port,
        log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=KEEP_ALIVE_S,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        running.stop()
    return 0


def _with_local_prometheus(settings: Settings, state_dir: Path) -> Settings:
    """With SLI provider ``prometheus`` on the ``local`` backend: a real Prometheus scraping every
    local deployment (stopped by ``sluice down``), and the settings pointing at it."""
    if settings.sli_provider != "prometheus" or settings.backend != "local":
        return settings
    from sluice.embedded.prometheus import ensure_prometheus

    prometheus = ensure_prometheus(str(state_dir), 0, runtime_dir=str(state_dir / "runtime"))
    log.info("Prometheus at %s scrapes the local deployments", prometheus)
    return settings.with_(prometheus_url=prometheus)


def function_env(environ: Mapping[str, str], settings: Settings, url: str) -> dict[str, str]:
    """The environment of each function process: ours, the settings and the ingress as sink
    (``sluice.compose.child_env``), without what functions-framework would take as its own."""
    from sluice.compose import child_env

    env = {**environ, **child_env(settings, url), "PYTHONUNBUFFERED": "1"}
    for inherited in ("FUNCTION_TARGET", "FUNCTION_SOURCE", "PORT"):
        env.pop(inherited, None)
    return env


class _Running:
    """The started functions, their supervisor, the broker over them and the state file saying so."""

    def __init__(self, options: ServeOptions, settings: Settings, broker: Any, supervisor: Any,
                 state: dict[str, Any], announce: Callable[[str], None] | None) -> None:
        self.options = options
        self.settings = settings
        self.broker = broker
        self.supervisor = supervisor
        self.state = state
        self.announce = announce
        self.is_ready = threading.Event()
        self.stop_reconciling = threading.Event()
        supervisor.on_change = self.restarted

    @classmethod
    def start(cls, options: ServeOptions, topology: Any, settings: Settings, env: Mapping[str, str], url: str,
              logs: Path, announce: Callable[[str], None] | None) -> _Running:
        """Start the functions, record them (not ready yet), and build the broker over them."""
        from sluice.embedded.broker import deadletters
        from sluice.embedded.broker.app import Broker
        from sluice.embedded.broker.journal import Journal
        from sluice.embedded.broker.journal import path_for as journal_path
        from sluice.embedded.broker.processes import Supervisor, start_functions

        state_dir = options.state_dir
        services = topology.subscribed_services()
        log.info("starting %d functions: %s", len(services), ", ".join(f"{s.name}({s.target})" for s in services))
        processes = start_functions(services, options.source, env, logs, options.ready_timeout_s)
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "port": options.port,
            "url": url,
            "started": time.time(),
            "state_dir": str(state_dir),
            "log": str(logs / "broker.log"),
            "functions": {p.service.name: _function_record(p) for p in processes},
        }
        _write_state(state_dir, {**state, "ready": False})
        supervisor = Supervisor(processes, options.source, env, logs, options.ready_timeout_s)
        broker = Broker(
            topology, {p.service.name: p.url for p in processes}, deadletters.path_for(state_dir), url,
            tick_s=options.tick_s, max_concurrency=function_threads(env), journal=Journal(journal_path(state_dir)),
            max_event_bytes=options.max_event_bytes, function_health=supervisor.health,
        )
        return cls(options, settings, broker, supervisor, state, announce)

    def restarted(self, name: str, proc: Any) -> None:
        """A function the supervisor started again: route to its new URL, record its new pid."""
        self.broker.function_urls[name] = proc.url
        self.state["functions"][name] = _function_record(proc)
        _write_state(self.options.state_dir, {**self.state, "ready": self.is_ready.is_set()})

    async def ready(self) -> None:
        """The ingress listens: say so, start supervising and reconciling, announce the URL."""
        self.is_ready.set()
        _write_state(self.options.state_dir, {**self.state, "ready": True})
        self.supervisor.start()
        if self.settings.backend == "local" and RECONCILE_EVERY_S > 0:
            threading.Thread(
                target=_reconcile_loop, args=(self.settings, self.stop_reconciling, RECONCILE_EVERY_S),
                name="sluice-reconcile", daemon=True,
            ).start()
        if self.announce is not None:
            self.announce(self.state["url"])

    def stop(self) -> None:
        """Stop reconciling and supervising, stop the functions, remove our state file."""
        from sluice.embedded.broker.processes import stop_functions

        self.stop_reconciling.set()
        self.supervisor.stop()
        stop_functions(self.supervisor.processes)
        if read_state(self.options.state_dir).get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                state_path(self.options.state_dir).unlink()


def _function_record(proc: Any) -> dict[str, Any]:
    return {"pid": proc.pid, "port": proc.port, "target": proc.service.target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluice.embedded.broker", description="The local Knative broker stand-in.")
    add_serve_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        options = ServeOptions.from_args(args, os.environ)
        return serve(options, os.environ, announce=lambda url: print(f"broker ready at {url}", flush=True))
    except ConfigurationError as err:
        print(f"sluice broker: {err}", file=sys.stderr)
        return 2
    except SluiceError as err:  # a function that would not start, …
        print(f"sluice broker: {err}", file=sys.stderr)
        return 1
