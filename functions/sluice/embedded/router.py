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

How it is fast: the stage listeners are a lean HTTP/1.1 reverse proxy on ``asyncio`` protocols
(``_Front`` for the client's connection, ``_Upstream`` for a pooled keep-alive connection to an
upstream): a request's head is parsed once and re-written, its body and the answer's body are
passed through as they arrive (chunked answers stay chunked), with no ASGI or HTTP-client layer
in between; the process runs on uvloop when it is installed. ``bench/router_overhead.py``
measures what it adds per request. The control endpoint stays a small Starlette app (it is not
on the request path).

Run: ``python -m sluice.embedded.router --runtime-dir DIR``.
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
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sluice.core.validation import dns_label_problem
from sluice.embedded.host import ROUTER_INFO, ROUTER_STAGES, read_json, write_json
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
    server: asyncio.AbstractServer | None = None

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
        self.pools: dict[str, _Pool] = {}
        self.fronts: set[_Front] = set()
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
        for stage in self.stages.values():
            if stage.server is not None:
                stage.server.close()
        if self._control is not None:
            self._control.should_exit = True
        if self._control_task is not None:
            await asyncio.wait([self._control_task], timeout=10)
        deadline = time.monotonic() + 5
        while any(front.busy for front in self.fronts) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for front in list(self.fronts):
            front.close()
        for pool in self.pools.values():
            pool.close()
        info = read_json(self.runtime_dir / ROUTER_INFO)
        if info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (self.runtime_dir / ROUTER_INFO).unlink()

    # -- stages ----------------------------------------------------------------------------

    async def _open_stage(self, key: str, port: int) -> Stage:
        sock = _listen(port)
        stage = Stage(key=key, port=sock.getsockname()[1])
        loop = asyncio.get_running_loop()
        try:
            stage.server = await loop.create_server(lambda: _Front(self, stage), sock=sock)
        except OSError:
            sock.close()
            raise
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
        if stage.server is not None:
            stage.server.close()
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
                pool = self.pools.pop(url, None)
                if pool is not None:
                    pool.close()

        task = asyncio.create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def pool(self, url: str) -> _Pool:
        pool = self.pools.get(url)
        if pool is None:
            pool = self.pools[url] = _Pool(url)
        return pool

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


# -- the proxy: a lean HTTP/1.1 reverse proxy on asyncio protocols ----------------------------

#: A request or response head larger than this is refused (431 / 502).
MAX_HEAD_BYTES = 64 * 1024
#: A request body is read whole before it is sent on (so a refused upstream can be retried
#: elsewhere); larger bodies are refused with 413.
MAX_BODY_BYTES = 64 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0
_HOP_BY_HOP_B = frozenset(h.encode() for h in HOP_BY_HOP)
_NOT_FORWARDED_B = _HOP_BY_HOP_B | {b"host", b"content-length", b"expect"}


class BadRequest(ValueError):
    """A request the proxy cannot pass on; ``status`` is the answer (400, 413, 431, 501)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ProxyRequest:
    """One parsed client request: its head's parts, its whole body, and how the connection goes on."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {t.strip().lower() for name, value in headers if name.lower() == b"connection" for t in value.split(b",")}


def parse_request_head(head: bytes) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]:
    """(method, target, version, headers) of a request head (without its final CRLF CRLF);
    ``BadRequest`` for anything malformed or ambiguous."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper() or not parts[1] or b"\n" in head.replace(b"\r\n", b""):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest(400 if not version.startswith(b"HTTP/") else 505, f"unsupported version {version!r}")
    if not (target.startswith(b"/") or target == b"*") or any(c < 0x21 or c == 0x7F for c in target):
        raise BadRequest(400, "the request target must be a path (origin form)")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name or b"\r" in line:
            raise BadRequest(400, f"malformed header line {line[:60]!r}")
        headers.append((name, value.strip()))
    return method, target, version, headers


def body_framing(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request body's length, or None when it is chunked; ``BadRequest`` when the framing is
    ambiguous (both, several different lengths) or unsupported."""
    lengths = {v for n, v in headers if n.lower() == b"content-length"}
    encodings = [v.lower() for n, v in headers if n.lower() == b"transfer-encoding"]
    if encodings:
        if lengths:
            raise BadRequest(400, "both Content-Length and Transfer-Encoding")
        if encodings != [b"chunked"]:
            raise BadRequest(501, "only Transfer-Encoding: chunked is supported")
        return None
    if not lengths:
        return 0
    if len(lengths) > 1 or not next(iter(lengths)).isdigit():
        raise BadRequest(400, "invalid Content-Length")
    length = int(next(iter(lengths)))
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes")
    return length


class _Chunks:
    """Incremental reader of a chunked body: ``feed`` returns where the body ends, or None."""

    __slots__ = ("left", "line", "state")

    def __init__(self) -> None:
        self.state = 0  # 0 size line, 1 chunk data (+ CRLF), 2 trailer lines
        self.left = 0
        self.line = bytearray()

    def feed(self, data: bytes | bytearray, start: int = 0, out: bytearray | None = None) -> int | None:
        i, n = start, len(data)
        while i < n:
            if self.state == 1:
                take = min(self.left, n - i)
                if out is not None:
                    out += data[i: i + min(take, max(0, self.left - 2))]
                i += take
                self.left -= take
                if self.left == 0:
                    self.state = 0
                continue
            j = data.find(b"\n", i)
            if j < 0:
                self.line += data[i:]
                if len(self.line) > MAX_HEAD_BYTES:
                    raise ValueError("chunk line too long")
                return None
            line = bytes(self.line) + bytes(data[i:j])
            self.line.clear()
            i = j + 1
            line = line.rstrip(b"\r")
            if self.state == 0:
                size = int(line.split(b";", 1)[0].strip(), 16)  # ValueError: malformed
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    self.state = 2
                else:
                    self.state, self.left = 1, size + 2
            elif not line:
                return i
        return None


class _Pool:
    """Idle keep-alive connections to one upstream URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = parts.netloc.encode("latin-1")
        self.idle: list[_Upstream] = []
        self.closing = False

    async def get(self) -> tuple[_Upstream, bool]:
        """An idle connection (reused: True) or a new one; OSError / TimeoutError when refused."""
        while self.idle:
            upstream = self.idle.pop()
            if not upstream.closed:
                return upstream, True
        loop = asyncio.get_running_loop()
        _, upstream = await asyncio.wait_for(loop.create_connection(_Upstream, self.host, self.port),
                                             CONNECT_TIMEOUT_S)
        return upstream, False

    def put(self, upstream: _Upstream) -> None:
        if self.closing or upstream.closed:
            upstream.close()
        else:
            self.idle.append(upstream)

    def close(self) -> None:
        self.closing = True
        for upstream in self.idle:
            upstream.close()
        self.idle.clear()


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to an upstream: sends a request, streams the answer to a front."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.front: _Front | None = None
        self.slot = b""
        self.buf = bytearray()
        self.state = "idle"  # idle, head, length, chunked, eof
        self.left = 0
        self.chunks = _Chunks()
        self.head_only = False
        self.keep_alive = True
        self.got_bytes = False
        self.head_sent = False
        self.last_activity = 0.0
        self.done: asyncio.Future[str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, front: _Front, slot: bytes, data: bytes, head_only: bool) -> asyncio.Future[str]:
        self.front, self.slot, self.head_only = front, slot, head_only
        self.state, self.got_bytes, self.head_sent, self.keep_alive = "head", False, False, True
        self.buf.clear()
        self.last_activity = time.monotonic()
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.done

    def _finish(self, outcome: str) -> None:
        done = self.done
        self.state = "idle"
        self.front = None
        if done is not None and not done.done():
            done.set_result(outcome)

    def data_received(self, data: bytes) -> None:
        front = self.front
        if front is None or self.state == "idle":
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self.got_bytes = True
        self.last_activity = time.monotonic()
        try:
            if self.state == "head":
                self.buf += data
                end = self.buf.find(b"\r\n\r\n")
                if end > MAX_HEAD_BYTES or (end < 0 and len(self.buf) > MAX_HEAD_BYTES):
                    raise ValueError("response head too large")
                if end < 0:
                    return
                head, rest = bytes(self.buf[:end]), bytes(self.buf[end + 4:])
                self.buf.clear()
                if not self._head(front, head):
                    self.buf += rest  # an interim 1xx answer: the real head follows
                    if rest:
                        self.data_received(b"")
                    return
                data = rest
            self._body(front, data)
        except ValueError as err:
            log.warning("upstream answered malformed HTTP: %s", err)
            self._broken()

    def _head(self, front: _Front, head: bytes) -> bool:
        """Send the answer's head on to the client; False for an interim (1xx) answer."""
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12 or not status_line[9:12].isdigit():
            raise ValueError(f"bad status line {status_line[:60]!r}")
        status = int(status_line[9:12])
        if 100 <= status < 200:
            return False
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise ValueError(f"bad header line {line[:60]!r}")
            headers.append((name, value.strip()))
        tokens = _connection_tokens(headers)
        lengths = [v for n, v in headers if n.lower() == b"content-length"]
        chunked = any(n.lower() == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers)
        self.keep_alive = b"close" not in tokens and (status_line[7:8] == b"1" or b"keep-alive" in tokens)
        if self.head_only or status in (204, 304):
            self.state, self.left = "length", 0
        elif chunked:
            self.state, self.chunks = "chunked", _Chunks()
        elif lengths:
            if not lengths[0].isdigit():
                raise ValueError("bad Content-Length")
            self.state, self.left = "length", int(lengths[0])
        else:
            self.state, self.keep_alive = "eof", False
        out = [b"HTTP/1.1" + status_line[8:]]
        out += [n + b": " + v for n, v in headers
                if n.lower() not in _HOP_BY_HOP_B and n.lower() not in tokens]
        if self.state == "chunked":
            out.append(b"Transfer-Encoding: chunked")
        out.append(b"x-sluice-slot: " + self.slot)
        if not front.keep_alive or self.state == "eof":
            front.keep_alive = False
            out.append(b"Connection: close")
        front.write(b"\r\n".join(out) + b"\r\n\r\n")
        self.head_sent = True
        return True

    def _body(self, front: _Front, data: bytes) -> None:
        if self.state == "length":
            if len(data) < self.left:
                self.left -= len(data)
                front.write(data)
                return
            front.write(data[: self.left])
            if len(data) > self.left:
                self.keep_alive = False  # more than the answer: not reusable
            self._finish("ok")
        elif self.state == "chunked":
            end = self.chunks.feed(data)
            if end is None:
                front.write(data)
                return
            front.write(data[:end])
            if end < len(data):
                self.keep_alive = False
            self._finish("ok")
        elif self.state == "eof":
            front.write(data)

    def _broken(self) -> None:
        self.keep_alive = False
        self.close()
        self._finish("broken" if self.head_sent else "bad")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.state == "head":
            self._finish("bad" if self.got_bytes else "no answer")
        elif self.state == "eof":
            self._finish("ok")
        elif self.state != "idle":
            self._finish("broken")

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Front(asyncio.Protocol):
    """A client's connection to a stage port: one request at a time, in order (pipelined
    requests wait in the buffer), each sent to the upstream the stage picks."""

    def __init__(self, router: Router, stage: Stage) -> None:
        self.router = router
        self.stage = stage
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.keep_alive = True
        self.continued = False
        self.peer = b""
        self.upstream: _Upstream | None = None
        self.chunks: _Chunks | None = None  # reading a chunked request body: where it stands
        self.chunk_body = bytearray()
        self.chunk_pos = 0
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if peer else b""
        self.router.fronts.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()
        elif len(self.buf) > MAX_HEAD_BYTES and self.transport is not None:
            self.transport.pause_reading()  # pipelined requests pile up: read on when this one is done

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.router.fronts.discard(self)
        if self.upstream is not None:
            self.upstream.abort()  # the answer has nowhere to go; the connection is not reusable
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- requests --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _next(self) -> None:
        try:
            request = self._parse()
        except BadRequest as err:
            self.keep_alive = False
            self._answer(err.status, str(err))
            return
        if request is None:
            return
        self.busy = True
        self.keep_alive = request.keep_alive
        self.task = asyncio.get_running_loop().create_task(self._handle(request))

    def _parse(self) -> ProxyRequest | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES or (end < 0 and len(buf) > MAX_HEAD_BYTES):
            raise BadRequest(431, "request head too large")
        if end < 0:
            return None
        method, target, version, headers = parse_request_head(bytes(buf[:end]))
        length = body_framing(headers)
        start = end + 4
        tokens = _connection_tokens(headers)
        keep_alive = b"close" not in tokens and (version == b"HTTP/1.1" or b"keep-alive" in tokens)
        if length is None:
            if self.chunks is None:
                self.chunks = _Chunks()
                self.chunk_body = bytearray()
                self.chunk_pos = start
            try:
                done = self.chunks.feed(buf, self.chunk_pos, self.chunk_body)
            except ValueError as err:
                raise BadRequest(400, f"malformed chunked body: {err}") from err
            if len(self.chunk_body) > MAX_BODY_BYTES:
                raise BadRequest(413, f"request body over {MAX_BODY_BYTES} bytes")
            if done is None:
                self.chunk_pos = len(buf)
                self._maybe_continue(headers)
                return None
            body, consumed = bytes(self.chunk_body), done
            self.chunks = None
        else:
            if len(buf) < start + length:
                self._maybe_continue(headers)
                return None
            body, consumed = bytes(buf[start: start + length]), start + length
        del buf[:consumed]
        forwarded = [(n, v) for n, v in headers if n.lower() not in _NOT_FORWARDED_B and n.lower() not in tokens]
        host = [v for n, v in headers if n.lower() == b"host"]
        if self.peer:
            forwarded.append((b"X-Forwarded-For", self.peer))
        if host:
            forwarded.append((b"X-Forwarded-Host", host[0]))
        return ProxyRequest(method, target, forwarded, body, keep_alive)

    def _maybe_continue(self, headers: list[tuple[bytes, bytes]]) -> None:
        if not self.continued and any(n.lower() == b"expect" and v.lower() == b"100-continue" for n, v in headers):
            self.continued = True
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _done(self) -> None:
        """The answer is out: go on with the next request, or close."""
        self.busy = False
        self.upstream = None
        self.continued = False
        if not self.keep_alive or self.closed:
            self.close()
            return
        if self.transport is not None:
            self.transport.resume_reading()
        if self.buf:
            self._next()

    def _answer(self, status: int, message: str, slot: bytes = b"") -> None:
        """The router's own answer; ``slot`` names the slot it had picked (a 502/504 of that upstream)."""
        body = json.dumps({"error": message}).encode()
        reason = {400: "Bad Request", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
                  501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout", 505: "HTTP Version Not Supported"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                + ("" if self.keep_alive else "Connection: close\r\n") + "\r\n")
        if slot:
            head = head[:-2] + f"x-sluice-slot: {slot.decode()}\r\n\r\n"
        self.write(head.encode() + body)
        self._done()

    async def _handle(self, request: ProxyRequest) -> None:
        router, stage = self.router, self.stage
        tried: set[str] = set()
        try:
            for _attempt in range(2):
                picked = stage.pick(frozenset(tried))
                if picked is None:
                    break
                slot, url = picked
                router.inflight[url] = router.inflight.get(url, 0) + 1
                try:
                    outcome = await self._exchange(slot, url, request)
                finally:
                    router.inflight[url] -= 1
                if outcome == "refused":
                    tried.add(url)
                    continue
                return
            if tried:
                self._answer(502, f"stage {stage.key}: no upstream accepted the connection (tried {sorted(tried)})")
            else:
                self._answer(503, f"stage {stage.key}: no deployment is registered")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug must not leave the client waiting
            log.exception("stage %s: proxying failed", stage.key)
            self.keep_alive = False
            self._answer(502, f"proxy error: {type(err).__name__}")

    async def _exchange(self, slot: str, url: str, request: ProxyRequest) -> str:
        """Send ``request`` to ``url`` and stream its answer back; "refused" when the upstream
        could not be reached (nothing was sent: the caller may try the other upstream)."""
        pool = self.router.pool(url)
        timeout = self.router.upstream_timeout_s
        for _reuse in range(2):
            try:
                upstream, reused = await pool.get()
            except (OSError, TimeoutError):
                return "refused"
            head = [request.method + b" " + request.target + b" HTTP/1.1", b"Host: " + pool.host_header]
            head += [n + b": " + v for n, v in request.headers]
            if request.body or request.method in (b"POST", b"PUT", b"PATCH"):
                head.append(b"Content-Length: %d" % len(request.body))
            self.upstream = upstream
            done = upstream.start(self, slot.encode(), b"\r\n".join(head) + b"\r\n\r\n" + request.body,
                                  request.method == b"HEAD")
            while True:
                finished, _ = await asyncio.wait((done,), timeout=timeout)
                if finished or time.monotonic() - upstream.last_activity < timeout:
                    if finished:
                        break
                    continue
                upstream.abort()
                if upstream.head_sent:
                    log.warning("stage %s: upstream %s stalled mid-answer for %g s", self.stage.key, url, timeout)
                    self.keep_alive = False
                    self._done()
                else:
                    self._answer(504, f"upstream {slot} ({url}) did not answer within {timeout:g} s", slot.encode())
                return "done"
            outcome = done.result()
            if outcome == "no answer" and reused:
                continue  # a kept-alive connection the upstream had closed: once more on a new one
            if outcome == "ok":
                if upstream.keep_alive:
                    pool.put(upstream)
                else:
                    upstream.close()
                self._done()
            elif outcome == "broken":
                log.warning("stage %s: upstream %s broke off an answer", self.stage.key, url)
                self.keep_alive = False
                self._done()
            else:
                self._answer(502, f"upstream {slot} ({url}) closed the connection without a valid answer", slot.encode())
            return "done"
        self._answer(502, f"upstream {slot} ({url}) closed the connection without answering", slot.encode())
        return "done"



def _key(request: Request) -> str | None:
    parts = [request.path_params[p] for p in ("project", "stage", "service")]
    return "/".join(parts) if all(dns_label_problem("name", p) is None for p in parts) else None


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux, macOS), else the standard library's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice-router", description="The weighted local router of Sluice.")
    parser.add_argument("--runtime-dir", type=Path, required=True)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--upstream-timeout-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(serve(args.runtime_dir, args.control_port, args.upstream_timeout_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
