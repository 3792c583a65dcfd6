"""carts — the example service of the Sluice tutorial (a tiny shopping-cart API).

Standard library only, one file, so it starts in a few tens of milliseconds as a local
process of the ``local`` deployment backend.

Endpoints:

- ``GET /``                      an HTML info page (version, endpoints)
- ``GET /health``                ``{"status": "UP", ...}`` — never delayed (readiness probe)
- ``GET /version``               ``{"service": "carts", "version": "0.10.2"}``
- ``GET /carts/{id}/items``      the items of cart ``id`` (JSON list)
- ``POST /carts/{id}/items``     add an item (JSON object) to cart ``id``; answers 201
- ``DELETE /carts/{id}``         empty cart ``id``; answers 202
- ``GET /metrics``               Prometheus text exposition — never delayed:
  ``http_requests_total`` (counter) and ``http_response_time_milliseconds`` (histogram),
  both labelled ``method``, ``handler`` (the route template) and ``status``.

``--delay-ms N`` makes every request except ``/health`` and ``/metrics`` answer ``N`` ms late
(the tutorial's slow build 0.10.2 runs with ``--delay-ms 1000``). The delay is part of the
measured response time.

Run: ``python app.py --app-version 0.10.1 --port 8080`` (flags fall back to the environment
variables ``CARTS_VERSION``, ``CARTS_DELAY_MS``, ``PORT``; it binds 127.0.0.1 unless
``--host`` says otherwise). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

SERVICE = "carts"
BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 750, 1000, 1500, 2000, 5000)
UNDELAYED = frozenset({"/health", "/metrics"})
MAX_BODY = 64 * 1024

_CART_ITEMS = re.compile(r"^/carts/([^/]+)/items/?$")
_CART = re.compile(r"^/carts/([^/]+)/?$")


class Metrics:
    """Thread-safe request counter and response-time histogram, in Prometheus text format."""

    def __init__(self, buckets: Sequence[float] = BUCKETS_MS) -> None:
        self._buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._hist: dict[tuple[str, str, str], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, method: str, handler: str, status: int, elapsed_ms: float) -> None:
        key = (method, handler, str(status))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            row = self._hist.setdefault(key, [0.0] * (len(self._buckets) + 2))
            for i, bound in enumerate(self._buckets):
                if elapsed_ms <= bound:
                    row[i] += 1
            row[-2] += elapsed_ms
            row[-1] += 1

    def exposition(self, version: str) -> str:
        lines = [
            "# HELP carts_info The running build of the carts service.",
            "# TYPE carts_info gauge",
            f'carts_info{{version="{_escape(version)}"}} 1',
            "# HELP http_requests_total Requests answered, by method, handler and status.",
            "# TYPE http_requests_total counter",
        ]
        with self._lock:
            counts = dict(self._counts)
            hist = {key: list(row) for key, row in self._hist.items()}
        for key in sorted(counts):
            lines.append(f"http_requests_total{{{_labels(key)}}} {counts[key]}")
        lines += [
            "# HELP http_response_time_milliseconds Response time in milliseconds, by method, handler and status.",
            "# TYPE http_response_time_milliseconds histogram",
        ]
        for key in sorted(hist):
            row, labels = hist[key], _labels(key)
            for i, bound in enumerate(self._buckets):
                lines.append(f'http_response_time_milliseconds_bucket{{{labels},le="{_num(bound)}"}} {_num(row[i])}')
            lines.append(f'http_response_time_milliseconds_bucket{{{labels},le="+Inf"}} {_num(row[-1])}')
            lines.append(f"http_response_time_milliseconds_sum{{{labels}}} {row[-2]:.3f}")
            lines.append(f"http_response_time_milliseconds_count{{{labels}}} {_num(row[-1])}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(key: tuple[str, str, str]) -> str:
    method, handler, status = key
    return f'method="{_escape(method)}",handler="{_escape(handler)}",status="{_escape(status)}"'


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Carts:
    """The service's state: carts in memory, the build's version and delay, its metrics."""

    def __init__(self, version: str, delay_ms: int) -> None:
        self.version = version
        self.delay_ms = delay_ms
        self.started = time.time()
        self.metrics = Metrics()
        self._lock = threading.Lock()
        self._carts: dict[str, list[dict[str, Any]]] = {}

    def items(self, cart_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._carts.get(cart_id, []))

    def add(self, cart_id: str, item: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            cart = self._carts.setdefault(cart_id, [])
            stored = {"id": f"{cart_id}-{len(cart) + 1}", **item}
            cart.append(stored)
            return stored

    def empty(self, cart_id: str) -> None:
        with self._lock:
            self._carts.pop(cart_id, None)


def make_handler(carts: Carts) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to one ``Carts`` instance."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms delayed-ACK stalls
        server_version = f"carts/{carts.version}"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log
            return

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def _handle(self, method: str) -> None:
            began = time.perf_counter()
            path = self.path.split("?", 1)[0]
            handler = _route(path)
            body = self._read_body()
            if carts.delay_ms > 0 and handler not in UNDELAYED:
                time.sleep(carts.delay_ms / 1000)
            status, content_type, payload = self._dispatch(method, path, handler, body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Carts-Version", carts.version)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)
            elapsed_ms = (time.perf_counter() - began) * 1000
            carts.metrics.observe(method, handler, status, elapsed_ms)

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

        def _dispatch(self, method: str, path: str, handler: str, body: bytes) -> tuple[int, str, bytes]:
            if handler == "/health" and method in ("GET", "HEAD"):
                return _json(200, {"status": "UP", "service": SERVICE, "version": carts.version})
            if handler == "/version" and method in ("GET", "HEAD"):
                return _json(200, {"service": SERVICE, "version": carts.version})
            if handler == "/metrics" and method in ("GET", "HEAD"):
                text = carts.metrics.exposition(carts.version)
                return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode()
            if handler == "/" and method in ("GET", "HEAD"):
                return 200, "text/html; charset=utf-8", _info_page(carts).encode()
            if handler == "/carts/{id}/items":
                match = _CART_ITEMS.match(path)
                assert match is not None
                cart_id = match.group(1)
                if method in ("GET", "HEAD"):
                    return _json(200, carts.items(cart_id))
                if method == "POST":
                    try:
                        item = json.loads(body or b"{}")
                    except ValueError:
                        return _json(400, {"error": "the body is not JSON"})
                    if not isinstance(item, dict):
                        return _json(400, {"error": "expected a JSON object, found " + type(item).__name__})
                    return _json(201, carts.add(cart_id, item))
            if handler == "/carts/{id}" and method == "DELETE":
                match = _CART.match(path)
                assert match is not None
                carts.empty(match.group(1))
                return _json(202, {"deleted": match.group(1)})
            if handler == "unknown":
                return _json(404, {"error": f"no such path: {path}"})
            return _json(405, {"error": f"method {method} not allowed on {handler}"})

    return Handler


def _route(path: str) -> str:
    """The route template of ``path`` (the ``handler`` label), or ``unknown``."""
    if path in ("/", "/health", "/version", "/metrics"):
        return path
    if _CART_ITEMS.match(path):
        return "/carts/{id}/items"
    if _CART.match(path):
        return "/carts/{id}"
    return "unknown"


def _json(status: int, value: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(value).encode()


def _info_page(carts: Carts) -> str:
    delay = f"{carts.delay_ms} ms added to every request" if carts.delay_ms else "none"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>carts {carts.version}</title></head>
<body>
<h1>carts <span id="version">{carts.version}</span></h1>
<p>The example service of the Sluice tutorial.</p>
<ul>
<li>slowdown: {delay} (not on /health and /metrics)</li>
<li>up since: {time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(carts.started))}</li>
</ul>
<h2>Endpoints</h2>
<ul>
<li><a href="/health">GET /health</a></li>
<li><a href="/version">GET /version</a></li>
<li><a href="/carts/1/items">GET /carts/{{id}}/items</a>, POST /carts/{{id}}/items, DELETE /carts/{{id}}</li>
<li><a href="/metrics">GET /metrics</a></li>
</ul>
</body></html>
"""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="carts", description="The carts example service.")
    parser.add_argument("--app-version", default=os.environ.get("CARTS_VERSION", "0.0.0-dev"))
    parser.add_argument("--delay-ms", type=int, default=int(os.environ.get("CARTS_DELAY_MS", "0")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error(f"--delay-ms must be 0 or more, found {args.delay_ms}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    carts = Carts(args.app_version, args.delay_ms)
    server = Server((args.host, args.port), make_handler(carts))

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"carts {carts.version} listening on http://{args.host}:{server.server_port} "
          f"(delay {carts.delay_ms} ms)", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
