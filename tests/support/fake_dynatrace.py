"""A fake Dynatrace tenant: the Metrics API v2 query endpoint as a real local HTTP server.

Built from Dynatrace's documented shapes (no Dynatrace is reachable from here):

- ``GET /api/v2/metrics/query`` with ``metricSelector`` (required), ``entitySelector``,
  ``from``, ``to``, ``resolution``; or with ``nextPageKey`` *alone* (any other parameter next to
  it is a 400, as documented for paged requests).
- ``Authorization: Api-Token <token>``; a missing or wrong token → 401.
- 200 body: ``{"totalCount": n, "nextPageKey": key|null, "resolution": "Inf", "result":
  [{"metricId": selector, "data": [{"dimensions": [...], "dimensionMap": {...},
  "timestamps": [ms...], "values": [number|null...]}]}]}``
- errors: ``{"error": {"code": status, "message": "..."}}``.

Series are served from ``series[(metricSelector, entitySelector)]``; ``page_size`` series per
page. Every request is kept in ``requests`` (its path, query parameters and headers).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeDynatrace:
    token: str = "dt0c01.TESTTOKEN.SECRETPART"
    page_size: int = 100
    series: dict[tuple[str, str], list[list[float | None]]] = field(default_factory=dict)
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # metricSelector → (status, message)
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = fake.answer(self.path, {k.lower(): v for k, v in self.headers.items()})
                data = json.dumps(body).encode()
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeDynatrace:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"code": status, "message": message}}

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.requests.append({"path": parts.path, "params": params, "headers": headers})
        if parts.path != "/api/v2/metrics/query":
            return self._error(404, f"no such endpoint {parts.path}")
        auth = headers.get("authorization", "")
        if not auth.startswith("Api-Token "):
            return self._error(401, "Missing authorization parameter.")
        if auth.removeprefix("Api-Token ") != self.token:
            return self._error(401, "Token Authentication failed")
        if "nextPageKey" in params:
            if set(params) != {"nextPageKey"}:
                return self._error(400, "nextPageKey must be the only query parameter of a paged request")
            pages = self._pages.get(params["nextPageKey"])
            if not pages:
                return self._error(400, "invalid nextPageKey")
            return 200, self._page(pages, params["nextPageKey"])
        selector = params.get("metricSelector", "")
        if not selector:
            return self._error(400, "Constraints violated. metricSelector: must not be null")
        try:
            if int(params["from"]) >= int(params["to"]):
                return self._error(400, "from must be before to")
        except (KeyError, ValueError):
            return self._error(400, "from and to: expected milliseconds since the epoch")
        if selector in self.fail:
            return self._error(*self.fail[selector])
        found = self.series.get((selector, params.get("entitySelector", "")), [])
        data = [{"dimensions": [f"SERVICE-{i}"], "dimensionMap": {"dt.entity.service": f"SERVICE-{i}"},
                 "timestamps": [int(params["to"])] * len(values), "values": values} for i, values in enumerate(found)]
        chunks = [data[i:i + self.page_size] for i in range(0, len(data), self.page_size)] or [[]]
        pages = [{"totalCount": len(data), "resolution": params.get("resolution", ""),
                  "result": [{"metricId": selector, "data": chunk}]} for chunk in chunks]
        key = f"page-{len(self.requests)}"
        self._pages[key] = pages
        return 200, self._page(pages, key)

    def _page(self, pages: list[dict[str, Any]], key: str) -> dict[str, Any]:
        page = dict(pages.pop(0))
        page["nextPageKey"] = key if pages else None
        return page
