"""The weighted local router: a stable URL per stage, traffic split between primary and canary.

The stand-in for Istio's VirtualService or Knative's traffic split on a laptop. One asyncio
process (started on demand by :class:`sluice.adapters.backends.local.LocalBackend`) serves:

- one listening port per stage (``127.0.0.1:<port>``, the stage's public URL). Each request
  is proxied to one upstream of the stage, picked when the request starts: the canary with
  ``canary_weight`` % of the requests (smooth, deterministic: weight 100 sends every request
  to the canary, 0 none), the rest to the primary (or the direct slot of a direct stage).
  When only one upstream is registered, every request goes to it; with none, 503.
  New weights and upstreams apply to new requests; requests in flight finish on the upstream
  they started on. A request whose upstream refuses the connection is retried once on the
  stage's other upstream (the request was never sent, so this is safe for any method).
- a control endpoint on ``127.0.0.1:<control_port>`` (JSON):

  - ``GET /health`` → ``{"ok": true, "pid": ...}``
  - ``GET /stages`` → ``{"<project>/<stage>/<service>": {"url", "port", "upstreams",
    "canary_weight", "inflight"}}``
  - ``PUT /stages/<project>/<stage>/<service>`` with ``{"upstreams": {"primary"|"canary"|
    "direct": url or null}, "canary_weight": 0-100}`` (both optional; given slots replace,
    ``null`` removes) → the stage (binds its port on first use)
  - ``POST /stages/<project>/<stage>/<service>/drain`` with ``{"url": upstream,
    "timeout_s": s}`` → ``{"drained": bool, "inflight": n}`` once no request is in flight
    to that upstream, or when the timeout passes
  - ``DELETE /stages/<project>/<stage>/<service>`` → stops serving the stage
  - ``POST /shutdown`` → the router exits (SIGTERM does the same)

State files in the runtime directory: ``router.json`` (``pid``, ``control_port``,
``control_url``; written once the control port listens) and ``router-stages.json`` (each
stage's port, upstreams and weight; rewritten atomically on each change and read at start,
so a restarted router serves each stage on the same port when that port is free).

Run: ``python -m sluice.adapters.backends.router --runtime-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sluice.adapters.backends._files import ROUTER_INFO, ROUTER_STAGES, read_json, write_json
from sluice.core.validation import dns_label_problem
from sluice.ports.backend import Slot

log = logging.getLogger("sluice.router")

SLOTS = tuple(slot.value for slot in Slot)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers not passed on: hop-by-hop ones and Host (the upstream gets its own).
_NOT_FORWARDED = HOP_BY_HOP | {"host"}

Scope = dict[str, Any]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the router (several share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Stage:
    """One stage's listener and routing table."""

    key: str
    port: int
    upstreams: dict[str, str] = field(default_factory=dict)
    canary_weight: int = 0
    credit: int = 0
    server: _Server | None = None
    task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pick(self, exclude: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        """The (slot, url) for the next request, by weight; ``None`` when there is none."""
        live = {slot: url for slot, url in self.upstreams.items() if url not in exclude}
        canary = live.get("canary")
        base_slot = "primary" if "primary" in live else "direct"
        base = live.get(base_slot)
        if canary and base:
            self.credit += self.canary_weight
            if self.credit >= 100:
                self.credit -= 100
                return "canary", canary
            return base_slot, base
        if canary:
            return "canary", canary
        if base:
            return base_slot, base
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "upstreams": dict(self.upstreams), "canary_weight": self.canary_weight}


class Router:
    """The routing tables, the stage listeners and the upstream clients of one process."""

    def __init__(self, runtime_dir: Path, upstream_timeout_s: float = 60.0) -> None:
        self.runtime_dir = runtime_dir
        self.upstream_timeout_s = upstream_timeout_s
        self.stages: dict[str, Stage] = {}
        self.inflight: dict[str, int] = {}
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.stopping = asyncio.Event()
        self._control: _Server | None = None
        self._control_task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, control_port: int = 0) -> int:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        for key, saved in self._load().items():
            try:
                stage = await self._open_stage(key, int(saved.get("port", 0)))
            except (OSError, ValueError) as err:
                log.warning("stage %s: cannot serve its recorded port (%s); choosing a new one", key, err)
                stage = await self._open_stage(key, 0)
            stage.upstreams = {s: u for s, u in dict(saved.get("upstreams") or {}).items() if s in SLOTS and u}
            stage.canary_weight = _weight(saved.get("canary_weight", 0))
        self._save()
        sock = _listen(control_port)
        self._control = _Server(_config(self._control_app()))
        self._control_task = asyncio.create_task(self._control.serve(sockets=[sock]))
        port = sock.getsockname()[1]
        write_json(
            self.runtime_dir / ROUTER_INFO,
            {"pid": os.getpid(), "control_port": port, "control_url": f"http://127.0.0.1:{port}", "started_at": time.time()},
        )
        return int(port)

    async def close(self) -> None:
        servers = [s.server for s in self.stages.values() if s.server] + ([self._control] if self._control else [])
        for server in servers:
            server.should_exit = True
        tasks = [s.task for s in self.stages.values() if s.task] + ([self._control_task] if self._control_task else [])
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for client in self.clients.values():
            await client.aclose()
        info = read_json(self.runtime_dir / ROUTER_INFO)
        if info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (self.runtime_dir / ROUTER_INFO).unlink()

    # -- stages ----------------------------------------------------------------------------

    async def _open_stage(self, key: str, port: int) -> Stage:
        sock = _listen(port)
        stage = Stage(key=key, port=sock.getsockname()[1])
        stage.server = _Server(_config(self._proxy_app(stage)))
        stage.task = asyncio.create_task(stage.server.serve(sockets=[sock]))
        self.stages[key] = stage
        return stage

    async def update(self, key: str, upstreams: dict[str, str | None] | None, weight: int | None) -> Stage:
        stage = self.stages.get(key) or await self._open_stage(key, 0)
        before = set(stage.upstreams.values())
        for slot, url in (upstreams or {}).items():
            if url:
                stage.upstreams[slot] = url
            else:
                stage.upstreams.pop(slot, None)
        if weight is not None:
            stage.canary_weight = weight
            stage.credit = 0
        self._save()
        for url in before - self._all_upstreams():
            self._retire(url)
        return stage

    async def remove(self, key: str) -> bool:
        stage = self.stages.pop(key, None)
        if stage is None:
            return False
        if stage.server:
            stage.server.should_exit = True
        self._save()
        for url in set(stage.upstreams.values()) - self._all_upstreams():
            self._retire(url)
        return True

    async def drain(self, url: str, timeout_s: float) -> tuple[bool, int]:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while self.inflight.get(url, 0) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        left = self.inflight.get(url, 0)
        return left == 0, left

    def _all_upstreams(self) -> set[str]:
        return {url for stage in self.stages.values() for url in stage.upstreams.values()}

    def _retire(self, url: str) -> None:
        """Close the client of an upstream no stage uses, once its requests have finished."""

        async def retire() -> None:
            await self.drain(url, self.upstream_timeout_s)
            if url not in self._all_upstreams():
                client = self.clients.pop(url, None)
                if client is not None:
                    await client.aclose()

        task = asyncio.create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _client(self, url: str) -> httpx.AsyncClient:
        client = self.clients.get(url)
        if client is None:
            client = httpx.AsyncClient(
                base_url=url,
                timeout=httpx.Timeout(self.upstream_timeout_s, connect=5.0),
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                trust_env=False,
            )
            self.clients[url] = client
        return client

    def _load(self) -> dict[str, dict[str, Any]]:
        data = read_json(self.runtime_dir / ROUTER_STAGES)
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def _save(self) -> None:
        write_json(self.runtime_dir / ROUTER_STAGES, {k: s.to_dict() for k, s in sorted(self.stages.items())})

    def describe(self, stage: Stage) -> dict[str, Any]:
        return {
            "key": stage.key,
            "url": stage.url,
            **stage.to_dict(),
            "inflight": {slot: self.inflight.get(url, 0) for slot, url in stage.upstreams.items()},
        }

    # -- the proxy -------------------------------------------------------------------------

    def _proxy_app(self, stage: Stage) -> Any:
        async def app(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            await self._proxy(stage, scope, receive, send)

        return app

    async def _proxy(self, stage: Stage, scope: Scope, receive: Any, send: Any) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _NOT_FORWARDED]
        client_addr = scope.get("client")
        if client_addr:
            headers.append((b"x-forwarded-for", str(client_addr[0]).encode()))
        for k, v in scope["headers"]:
            if k.lower() == b"host":
                headers.append((b"x-forwarded-host", v))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        tried: set[str] = set()
        for _attempt in range(2):
            picked = stage.pick(frozenset(tried))
            if picked is None:
                break
            slot, url = picked
            self.inflight[url] = self.inflight.get(url, 0) + 1
            try:
                client = self._client(url)
                request = client.build_request(
                    scope["method"], url + target.decode("latin-1"), headers=headers, content=bytes(body)
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx.ConnectError:
                    tried.add(url)
                    continue
                except httpx.TimeoutException as err:
                    await _answer(send, 504, f"upstream {slot} ({url}) timed out: {err!r}")
                    return
                except httpx.HTTPError as err:
                    await _answer(send, 502, f"upstream {slot} ({url}) failed: {err!r}")
                    return
                try:
                    out = [(k, v) for k, v in response.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
                    out.append((b"x-sluice-slot", slot.encode()))
                    await send({"type": "http.response.start", "status": response.status_code, "headers": out})
                    async for chunk in response.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except httpx.HTTPError as err:
                    log.warning("stage %s: upstream %s broke off a response: %r", stage.key, url, err)
                finally:
                    await response.aclose()
                return
            finally:
                self.inflight[url] -= 1
        if tried:
            await _answer(send, 502, f"stage {stage.key}: no upstream accepted the connection (tried {sorted(tried)})")
        else:
            await _answer(send, 503, f"stage {stage.key}: no deployment is registered")

    # -- the control endpoint --------------------------------------------------------------

    def _control_app(self) -> Starlette:
        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True, "pid": os.getpid()})

        async def stages(request: Request) -> JSONResponse:
            return JSONResponse({key: self.describe(s) for key, s in sorted(self.stages.items())})

        async def put_stage(request: Request) -> JSONResponse:
            key = _key(request)
            if key is None:
                return _problem(400, "project, stage and service must be DNS labels")
            try:
                data = await request.json()
            except (ValueError, RecursionError):
                return _problem(400, "the body is not JSON (or is nested too deeply)")
            if not isinstance(data, dict):
                return _problem(400, "expected a JSON object")
            upstreams = data.get("upstreams")
            if upstreams is not None and (
                not isinstance(upstreams, dict)
                or any(s not in SLOTS or not (u is None or isinstance(u, str)) for s, u in upstreams.items())
            ):
                return _problem(400, f"upstreams must map {list(SLOTS)} to a URL or null, found {upstreams!r}")
            weight = data.get("canary_weight")
            if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100):
                return _problem(400, f"canary_weight must be an integer 0-100, found {weight!r}")
            try:
                stage = await self.update(key, upstreams, weight)
            except OSError as err:
                return _problem(503, f"cannot open a port for stage {key}: {err}")
            return JSONResponse(self.describe(stage))

        async def delete_stage(request: Request) -> JSONResponse:
            key = _key(request)
            if key is None:
                return _problem(400, "project, stage and service must be DNS labels")
            return JSONResponse({"removed": await self.remove(key)})

        async def drain(request: Request) -> JSONResponse:
            try:
                data = await request.json()
                url = str(data["url"])
                timeout_s = float(data.get("timeout_s", 30))
            except (ValueError, KeyError, TypeError, RecursionError):
                return _problem(400, 'expected {"url": upstream, "timeout_s": seconds}')
            drained, left = await self.drain(url, timeout_s)
            return JSONResponse({"drained": drained, "inflight": left})

        async def shutdown(request: Request) -> JSONResponse:
            self.stopping.set()
            return JSONResponse({"stopping": True})

        path = "/stages/{project}/{stage}/{service}"
        return Starlette(
            routes=[
                Route("/health", health),
                Route("/stages", stages),
                Route(path, put_stage, methods=["PUT"]),
                Route(path, delete_stage, methods=["DELETE"]),
                Route(path + "/drain", drain, methods=["POST"]),
                Route("/shutdown", shutdown, methods=["POST"]),
            ]
        )


def _key(request: Request) -> str | None:
    parts = [request.path_params[p] for p in ("project", "stage", "service")]
    return "/".join(parts) if all(dns_label_problem("name", p) is None for p in parts) else None


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _answer(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _weight(value: Any) -> int:
    try:
        return min(100, max(0, int(value)))
    except (TypeError, ValueError):
        return 0


def _listen(port: int) -> socket.socket:
    # proto IPPROTO_TCP (not 0) so that asyncio sets TCP_NODELAY on accepted connections;
    # without it every response waits ~40 ms for a delayed ACK (headers and body are two writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(256)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )


async def serve(runtime_dir: Path, control_port: int, upstream_timeout_s: float) -> None:
    router = Router(runtime_dir, upstream_timeout_s)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, router.stopping.set)
    port = await router.start(control_port)
    log.warning("sluice router pid %d: control on http://127.0.0.1:%d", os.getpid(), port)
    await router.stopping.wait()
    await router.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice-router", description="The weighted local router of Sluice.")
    parser.add_argument("--runtime-dir", type=Path, required=True)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--upstream-timeout-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.runtime_dir, args.control_port, args.upstream_timeout_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
