"""The broker itself: ingress, routing by Trigger, delivery with retries, replies, dead letters.

``Broker`` holds no HTTP server; ``create_app(broker)`` is the Starlette application around it:

- ``POST /<namespace>/<broker>``: a CloudEvent (binary or structured) → ``202``; an invalid one
  → ``400`` with the reason, and nothing is delivered.
- ``GET /health``: readiness, the functions' URLs, the triggers and the counters (JSON); hop
  latency per trigger over the recent window, or over the last N hops with ``?last=N``.
- ``/bridge/…``: proxied to the ``bridge`` function (with ``X-Forwarded-Prefix: /bridge``);
  ``/intake/…`` likewise to ``intake`` (registry webhooks: ``/intake/dockerhub``, …).

Each accepted event is delivered to the subscriber of every matching Trigger, concurrently and
independently (binary mode unless the Trigger's delivery says ``format: json``). A 2xx reply
with a CloudEvent is published back into the broker as if it came through ingress; 2xx with an
empty body ends the delivery; a 2xx whose body is not a CloudEvent, or a reply that fails
validation, is dead-lettered without retry. Failures are retried per the Trigger's delivery
(Knative's rules: 5xx, 404, 408, 409, 429, timeouts and connection errors), then dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sluice.broker import deadletters
from sluice.broker.cloudevent import STRUCTURED, RawEvent, parse
from sluice.broker.delivery import is_retryable
from sluice.broker.manifests import PROXIED_TARGETS, PingSourceSpec, Topology, TriggerSpec, resolve
from sluice.errors import ConfigurationError, ValidationError
from sluice.functions.runtime import now_rfc3339

log = logging.getLogger("sluice.broker")

#: Recent hop latencies kept per trigger for ``/health`` and the bench.
LATENCY_WINDOW = 20000
PROXY_TIMEOUT_S = 60.0
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding"})


def remember_missing_sniffio() -> None:
    """httpcore tries ``import sniffio`` on every request; without sniffio installed (anyio 4
    does not need it) each try searches sys.path again — a third of the broker's time under
    load. Recording it as missing makes the failed import instant (httpcore then assumes
    asyncio, which is what runs here)."""
    import importlib.util
    import sys

    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass
class Metrics:
    """In-process counters (reset when the broker starts)."""

    accepted: int = 0  # through ingress
    rejected: int = 0
    replies: int = 0  # reply events published back
    pings: int = 0
    delivered: Counter[str] = field(default_factory=Counter)  # 2xx per trigger
    failed_attempts: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    hop_s: dict[str, deque[float]] = field(default_factory=dict)

    def hop(self, trigger: str, seconds: float) -> None:
        self.hop_s.setdefault(trigger, deque(maxlen=LATENCY_WINDOW)).append(seconds)

    def snapshot(self, last: int = 0) -> dict[str, Any]:
        """The counters, and hop latency over the whole window or the ``last`` N hops per trigger."""
        latency = {}
        for trigger, values in self.hop_s.items():
            ordered = sorted(list(values)[-last:] if last > 0 else values)
            n = len(ordered)
            latency[trigger] = {
                "count": n,
                "mean_ms": 1000 * sum(ordered) / n,
                "p50_ms": 1000 * ordered[n // 2],
                "p95_ms": 1000 * ordered[min(n - 1, int(n * 0.95))],
            }
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "replies": self.replies,
            "pings": self.pings,
            "delivered": dict(self.delivered),
            "failed_attempts": dict(self.failed_attempts),
            "dead_lettered": dict(self.dead_lettered),
            "in_flight": self.in_flight,
            "hop_latency": latency,
        }


class Broker:
    """Routing and delivery over a ``Topology``; ``function_urls`` maps Knative Service → base URL."""

    def __init__(
        self,
        topology: Topology,
        function_urls: Mapping[str, str],
        dead_letter_path: Path,
        ingress_url: str,
        *,
        tick_s: float = 0.0,
        max_concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.topology = topology
        self.function_urls = dict(function_urls)
        self.dead_letter_path = dead_letter_path
        self.ingress_url = ingress_url
        self.tick_s = tick_s
        self.metrics = Metrics()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.max_concurrency = max_concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        missing = {t.subscriber.service for t in topology.triggers if t.subscriber.service} - set(self.function_urls)
        if missing:
            raise ConfigurationError(f"no running function for Knative Services {', '.join(sorted(missing))}")

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        remember_missing_sniffio()
        # functions-framework's gunicorn closes idle connections after 2 s: drop ours after 1 s,
        # so a delivery never races a server closing the connection it reuses
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=1.0)
        self._client = httpx.AsyncClient(transport=self._transport, limits=limits, timeout=None)
        if self.tick_s > 0 and self.topology.pingsources:
            self._ticker = asyncio.create_task(self._tick_loop())

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._ticker] if self._ticker else []), return_exceptions=True)
        if self._client:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("Broker.start() was not awaited")
        return self._client

    # --- ingress and routing ---------------------------------------------------------------

    def ingest(self, headers: Mapping[str, str], body: bytes) -> RawEvent:
        """Validate one event from ingress and start its deliveries; ValidationError if invalid."""
        try:
            raw = parse(headers, body)
        except ValidationError:
            self.metrics.rejected += 1
            raise
        self.metrics.accepted += 1
        self.publish(raw)
        return raw

    def publish(self, raw: RawEvent) -> int:
        """Start a delivery to every matching Trigger; returns how many matched."""
        matched = 0
        for trigger in self.topology.triggers:
            if trigger.matches(raw.attributes):
                matched += 1
                self._spawn(self._deliver(trigger, raw))
        return matched

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    # --- delivery --------------------------------------------------------------------------

    def subscriber_url(self, trigger: TriggerSpec) -> str:
        sub = trigger.subscriber
        if sub.service:
            return resolve(self.function_urls[sub.service], sub.uri)
        return sub.uri

    def _slots_for(self, trigger: TriggerSpec) -> asyncio.Semaphore:
        """Requests in flight to one subscriber are bounded, as a revision's containerConcurrency
        bounds them on a cluster (and never above what one local process serves at once)."""
        key = trigger.subscriber.service or trigger.subscriber.uri
        if key not in self._slots:
            service = self.topology.services.get(trigger.subscriber.service)
            wanted = service.concurrency if service is not None and service.concurrency > 0 else self.max_concurrency
            self._slots[key] = asyncio.Semaphore(max(1, min(wanted, self.max_concurrency)))
        return self._slots[key]

    async def _deliver(self, trigger: TriggerSpec, raw: RawEvent) -> None:
        spec = trigger.delivery
        url = self.subscriber_url(trigger)
        slots = self._slots_for(trigger)
        if spec.format == "json":
            headers, body = raw.to_structured()
        else:
            headers, body = raw.to_binary(), raw.data
        attempts = 0
        self.metrics.in_flight += 1
        try:
            while True:
                attempts += 1
                try:
                    async with slots:
                        started = time.monotonic()
                        response = await self.client.post(url, headers=headers, content=body, timeout=spec.timeout_s)
                except httpx.TimeoutException:
                    status, reason = 0, f"no answer within {spec.timeout_s:g} s (delivery timeout)"
                    retryable = True
                except httpx.TransportError as err:
                    status, reason = 0, f"{type(err).__name__}: {err or 'connection failed'}"
                    retryable = True
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        problem = self._reply(trigger, raw, response)
                        if problem is None:
                            self.metrics.delivered[trigger.name] += 1
                            self.metrics.hop(trigger.name, time.monotonic() - started)
                            return
                        await self._dead_letter(trigger, raw, status, problem, attempts, response)
                        return
                    reason = f"{status} {response.text[:300].strip()}".strip()
                    retryable = is_retryable(status)
                self.metrics.failed_attempts[trigger.name] += 1
                if not retryable or attempts > spec.retry:
                    final = "final status, not retried" if not retryable else f"gave up after {attempts} attempt(s)"
                    await self._dead_letter(trigger, raw, status, f"{reason} ({final})", attempts, None)
                    return
                log.info("trigger %s: event %s attempt %d failed (%s); retrying", trigger.name, raw.id, attempts, reason)
                await asyncio.sleep(spec.backoff_s(attempts))
        finally:
            self.metrics.in_flight -= 1

    def _reply(self, trigger: TriggerSpec, cause: RawEvent, response: httpx.Response) -> str | None:
        """Publish a 2xx reply's event; the reason it cannot be, or None when all is well."""
        content_type = response.headers.get("content-type", "")
        is_event = "ce-specversion" in response.headers or content_type.startswith(STRUCTURED)
        if not is_event:
            if not response.content:
                return None
            return (
                f"reply {response.status_code} with a body that is not a CloudEvent "
                "(answer a CloudEvent, or 202/204 with an empty body; not retried)"
            )
        try:
            reply = parse(response.headers, response.content)
        except ValidationError as err:
            return f"reply to event {cause.id} is not a valid event (not retried): {err}"
        self.metrics.replies += 1
        self.publish(reply)
        return None

    async def _dead_letter(
        self, trigger: TriggerSpec, raw: RawEvent, status: int, reason: str, attempts: int,
        reply: httpx.Response | None,
    ) -> None:
        self.metrics.dead_lettered[trigger.name] += 1
        record: dict[str, Any] = {
            "time": now_rfc3339(),
            "trigger": trigger.name,
            "subscriber": trigger.subscriber.describe(),
            "status": status,
            "reason": reason,
            "attempts": attempts,
            "event": raw.to_json_dict(),
        }
        if reply is not None:
            record["reply"] = {
                "headers": {k: v for k, v in reply.headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"},
                "body": reply.content[:2000].decode(errors="replace"),
            }
        sink = trigger.delivery.dead_letter_sink
        if sink is not None:
            record["dead_letter_sink"] = await self._send_to_sink(sink.ref_name, sink.uri, raw, status, reason)
        log.warning("trigger %s: event %s (%s) dead-lettered after %d attempt(s): %s",
                    trigger.name, raw.id, raw.type, attempts, reason)
        deadletters.append(self.dead_letter_path, record)

    async def _send_to_sink(self, ref: str, uri: str, raw: RawEvent, status: int, reason: str) -> dict[str, Any]:
        """One attempt to hand the event to the dead-letter sink, with Knative's error extensions."""
        url = resolve(self.function_urls[ref], uri) if ref else uri
        headers = raw.to_binary()
        headers["ce-knativeerrordest"] = url
        headers["ce-knativeerrorcode"] = str(status)
        headers["ce-knativeerrordata"] = base64.b64encode(reason.encode()[:1024]).decode()
        try:
            response = await self.client.post(url, headers=headers, content=raw.data, timeout=30.0)
        except httpx.HTTPError as err:
            return {"url": url, "status": 0, "error": f"{type(err).__name__}: {err}"}
        return {"url": url, "status": response.status_code}

    # --- PingSource ------------------------------------------------------------------------

    def ping(self, source: PingSourceSpec) -> RawEvent | None:
        """Emit one tick of ``source`` into the broker (as Knative's PingSource would)."""
        data, content_type = source.data.encode() or b"{}", source.content_type or "application/json"
        try:
            is_object = isinstance(json.loads(data), dict)
        except ValueError:
            is_object = False
        if not is_object:  # Sluice's ping payload is an object: plain text becomes its message
            data, content_type = json.dumps({"message": source.data}).encode(), "application/json"
        headers = {
            "ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-source": source.source,
            "ce-id": str(uuid.uuid4()), "ce-time": now_rfc3339(), "content-type": content_type,
        }
        try:
            raw = parse(headers, data)
        except ValidationError as err:
            log.warning("PingSource %s: its event is invalid, not emitted: %s", source.name, err)
            return None
        self.metrics.pings += 1
        self.publish(raw)
        return raw

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            for source in self.topology.pingsources:
                self.ping(source)

    # --- bridge proxy ----------------------------------------------------------------------

    def function_url(self, target: str) -> str | None:
        """Where the function with ``FUNCTION_TARGET`` ``target`` runs, if it does."""
        for name, service in self.topology.services.items():
            if service.target == target and name in self.function_urls:
                return self.function_urls[name]
        return None

    def health(self, last: int = 0) -> dict[str, Any]:
        return {
            "status": "ok",
            "broker": self.ingress_url,
            "functions": dict(self.function_urls),
            "triggers": [
                {"name": t.name, "subscriber": t.subscriber.describe(), "retry": t.delivery.retry}
                for t in self.topology.triggers
            ],
            "pingsources": [p.name for p in self.topology.pingsources],
            "tick_s": self.tick_s,
            "metrics": self.metrics.snapshot(last),
        }


def create_app(broker: Broker, on_startup: Callable[[], Awaitable[None]] | None = None) -> Starlette:
    """The HTTP face of ``broker`` (``on_startup`` runs once the broker is started)."""
    path = broker.topology.broker.path

    async def ingress(request: Request) -> Response:
        body = await request.body()
        try:
            broker.ingest(request.headers, body)
        except ValidationError as err:
            return PlainTextResponse(f"{err}\n", status_code=400)
        return Response(status_code=202)

    async def health(request: Request) -> Response:
        last = request.query_params.get("last", "0")
        return JSONResponse(broker.health(int(last) if last.isdecimal() and len(last) < 10 else 0))

    def proxy(target: str) -> Callable[[Request], Awaitable[Response]]:
        prefix = f"/{target}"

        async def forward(request: Request) -> Response:
            base = broker.function_url(target)
            if base is None:
                return PlainTextResponse(
                    f"no {target} function is running (no Knative Service with FUNCTION_TARGET {target})\n", 404
                )
            rest = request.url.path[len(prefix):] or "/"
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            headers["x-forwarded-prefix"] = prefix
            try:
                upstream = await broker.client.request(
                    request.method, base.rstrip("/") + rest, params=request.query_params, headers=headers,
                    content=await request.body(), timeout=PROXY_TIMEOUT_S,
                )
            except httpx.InvalidURL as err:  # e.g. a NUL in the path (/bridge/delivery/%00)
                return PlainTextResponse(f"not a valid path for the {target} function: {err}\n", 400)
            except httpx.HTTPError as err:
                return PlainTextResponse(f"{target} function unreachable: {type(err).__name__}: {err}\n", 502)
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS | {"content-encoding"}}
            return Response(upstream.content, status_code=upstream.status_code, headers=out)

        return forward

    async def elsewhere(request: Request) -> Response:
        return PlainTextResponse(
            f"no broker at {request.url.path}; this one is {path} (POST a CloudEvent to {broker.ingress_url})\n", 404
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broker.start()
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            await broker.close()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        Route(path, ingress, methods=["POST"]),
        Route(path + "/", ingress, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        *(
            route
            for target in PROXIED_TARGETS
            for route in (
                Route(f"/{target}", proxy(target), methods=methods),
                Route(f"/{target}/{{rest:path}}", proxy(target), methods=methods),
            )
        ),
        Route("/{rest:path}", elsewhere, methods=methods),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
