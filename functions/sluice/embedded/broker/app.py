"""The broker itself: ingress, routing by Trigger, delivery with retries, replies, dead letters.

``Broker`` holds no HTTP server; ``create_app(broker)`` is the Starlette application around it:

- ``POST /<namespace>/<broker>``: any valid CloudEvent (binary or structured; any type, any
  payload) → ``202`` once it is persisted in the journal (``journal``); not a CloudEvent →
  ``400`` naming every problem; larger than ``max_event_bytes`` → ``413``; another path →
  ``404``; another method → ``405``. An event no Trigger matches is recorded in
  ``<state-dir>/broker/unmatched.jsonl`` and goes nowhere.
- ``GET /health``: readiness, the functions' URLs and health, the triggers and the counters
  (JSON); hop latency per trigger over the recent window, or over the last N hops with
  ``?last=N``. ``status`` is ``ok`` only when every function is; otherwise ``degraded``.
- ``/bridge/…``: proxied to the ``bridge`` function (with ``X-Forwarded-Prefix: /bridge``);
  ``/intake/…`` likewise to ``intake`` (registry webhooks: ``/intake/dockerhub``, …).

Each accepted event is delivered to the subscriber of every matching Trigger, concurrently and
independently (binary mode unless the Trigger's delivery says ``format: json``). A 2xx reply
with a CloudEvent is published back into the broker as if it came through ingress; 2xx with an
empty body ends the delivery; a 2xx whose body is not a CloudEvent, or a reply that fails
validation, is dead-lettered without retry. Failures are retried per the Trigger's delivery
(Knative's rules: 5xx, 404, 408, 409, 429, timeouts and connection errors), then dead-lettered.
Each ended delivery is marked in the journal; at start, ``recover()`` redelivers every event
whose deliveries had not all ended (at least once: a delivery may happen twice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.cookiejar
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

from sluice.core.cloudevent import STRUCTURED, RawEvent, parse
from sluice.embedded.broker import deadletters
from sluice.embedded.broker.delivery import is_retryable
from sluice.embedded.broker.journal import DEAD_LETTERED, DELIVERED, Journal
from sluice.embedded.broker.manifests import PROXIED_TARGETS, PingSourceSpec, Topology, TriggerSpec, resolve
from sluice.errors import ConfigurationError, RetryableError, ValidationError, status_for
from sluice.functions.runtime import now_rfc3339

log = logging.getLogger("sluice.embedded.broker")

#: Recent hop latencies kept per trigger for ``/health`` and the bench.
LATENCY_WINDOW = 20000
PROXY_TIMEOUT_S = 60.0
#: Largest request body the ingress accepts (413 beyond); ``--max-event-bytes`` changes it.
MAX_EVENT_BYTES = 1024 * 1024
#: The unmatched-events log is rotated (one previous file kept) beyond this size.
UNMATCHED_LOG_BYTES = 1024 * 1024
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
    unmatched: int = 0  # accepted (or replies) that matched no Trigger
    redelivered: int = 0  # journal entries redelivered at start
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
            "unmatched": self.unmatched,
            "redelivered": self.redelivered,
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
        journal: Journal | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        function_health: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.topology = topology
        self.function_urls = dict(function_urls)
        self.dead_letter_path = dead_letter_path
        self.unmatched_path = dead_letter_path.with_name("unmatched.jsonl")
        self.ingress_url = ingress_url
        self.tick_s = tick_s
        self.journal = journal
        self.max_event_bytes = max_event_bytes
        self.function_health = function_health
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
        # No cookie jar: the /bridge proxy is shared by every browser, so a cookie one of them is
        # given (the web view's CSRF token) must never be stored and sent along for another.
        no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self._client = httpx.AsyncClient(transport=self._transport, limits=limits, timeout=None, cookies=no_cookies)
        self.recover()
        if self.tick_s > 0 and self.topology.pingsources:
            self._ticker = asyncio.create_task(self._tick_loop())

    def recover(self) -> int:
        """Redeliver what the journal holds from a previous run (each open Trigger once more)."""
        if self.journal is None:
            return 0
        by_name = {t.name: t for t in self.topology.triggers}
        count = 0
        for entry in self.journal.open():
            for name in sorted(entry.open):
                trigger = by_name.get(name)
                if trigger is None:
                    log.warning("journal: event %s was for trigger %s, which no longer exists; dropped", entry.event.id, name)
                    self.journal.finish(entry.seq, name, "trigger-gone")
                    continue
                count += 1
                self._spawn(self._deliver(trigger, entry.event, entry.seq))
        if count:
            log.info("journal: redelivering %d delivery(ies) a previous run had not finished", count)
        self.metrics.redelivered += count
        return count

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._ticker] if self._ticker else []), return_exceptions=True)
        if self._client:
            await self._client.aclose()
        if self.journal is not None:
            await self.journal.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("Broker.start() was not awaited")
        return self._client

    # --- ingress and routing ---------------------------------------------------------------

    async def ingest(self, headers: Mapping[str, str], body: bytes) -> RawEvent:
        """Check that it is a CloudEvent, persist it, start its deliveries (ValidationError if it
        is not a CloudEvent; OSError if it could not be persisted: then it was not accepted)."""
        try:
            raw = parse(headers, body)
        except ValidationError:
            self.metrics.rejected += 1
            raise
        await self.publish(raw)
        self.metrics.accepted += 1
        return raw

    async def publish(self, raw: RawEvent) -> int:
        """Persist ``raw`` and start a delivery to every matching Trigger; how many matched."""
        matched = self._route(raw)
        if not matched:
            return 0
        seq = await self.journal.accept(raw, tuple(t.name for t in matched)) if self.journal is not None else None
        for trigger in matched:
            self._spawn(self._deliver(trigger, raw, seq))
        return len(matched)

    def _route(self, raw: RawEvent) -> list[TriggerSpec]:
        """The Triggers whose filter ``raw`` passes; none: it is recorded as unmatched."""
        matched = [t for t in self.topology.triggers if t.matches(raw.attributes)]
        if not matched:
            self.metrics.unmatched += 1
            log.info("event %s (%s from %s) matches no trigger: not delivered", raw.id, raw.type, raw.attributes.get("source"))
            record = {"time": now_rfc3339(), "reason": "matched no trigger", "event": raw.to_json_dict()}
            with contextlib.suppress(OSError):
                if self.unmatched_path.stat().st_size > UNMATCHED_LOG_BYTES:
                    self.unmatched_path.replace(self.unmatched_path.with_suffix(".1.jsonl"))
            with contextlib.suppress(OSError):
                deadletters.append(self.unmatched_path, record)
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

    async def _deliver(self, trigger: TriggerSpec, raw: RawEvent, seq: int | None = None) -> None:
        outcome = await self._attempts(trigger, raw)
        if seq is not None and self.journal is not None:
            self.journal.finish(seq, trigger.name, outcome)

    async def _attempts(self, trigger: TriggerSpec, raw: RawEvent) -> str:
        """Deliver until it succeeds or is dead-lettered; ``DELIVERED`` or ``DEAD_LETTERED``."""
        spec = trigger.delivery
        url = self.subscriber_url(trigger)
        slots = self._slots_for(trigger)
        if spec.format == "json":
            headers, body = raw.to_structured()
        else:
            headers, body = raw.to_binary(), raw.data
        headers["prefer"] = "reply"  # Knative's data plane: a broker says it takes reply events
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
                        try:
                            problem = await self._reply(trigger, raw, response)
                        except OSError as err:  # the reply could not be persisted: deliver again
                            reason, retryable = f"reply not accepted by the journal: {err}", True
                        else:
                            if problem is None:
                                self.metrics.delivered[trigger.name] += 1
                                self.metrics.hop(trigger.name, time.monotonic() - started)
                                return DELIVERED
                            await self._dead_letter(trigger, raw, status, problem, attempts, response)
                            return DEAD_LETTERED
                    else:
                        reason = f"{status} {response.text[:300].strip()}".strip()
                        retryable = is_retryable(status)
                self.metrics.failed_attempts[trigger.name] += 1
                if not retryable or attempts > spec.retry:
                    final = "final status, not retried" if not retryable else f"gave up after {attempts} attempt(s)"
                    await self._dead_letter(trigger, raw, status, f"{reason} ({final})", attempts, None)
                    return DEAD_LETTERED
                log.info("trigger %s: event %s attempt %d failed (%s); retrying", trigger.name, raw.id, attempts, reason)
                await asyncio.sleep(spec.backoff_s(attempts))
        finally:
            self.metrics.in_flight -= 1

    async def _reply(self, trigger: TriggerSpec, cause: RawEvent, response: httpx.Response) -> str | None:
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
        await self.publish(reply)
        self.metrics.replies += 1
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
        for trigger in self._route(raw):  # a tick is not journaled: the next one replaces it
            self._spawn(self._deliver(trigger, raw))
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
        functions = self.function_health() if self.function_health is not None else {
            name: {"url": url, "state": "ok"} for name, url in self.function_urls.items()
        }
        degraded = sorted(name for name, f in functions.items() if f.get("state") != "ok")
        return {
            "status": "degraded" if degraded else "ok",
            "degraded": degraded,
            "broker": self.ingress_url,
            "functions": dict(self.function_urls),
            "function_health": functions,
            "journal": {
                "open": self.journal.open_entries, "bytes": self.journal.size,
            } if self.journal is not None else None,
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
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > broker.max_event_bytes:
            broker.metrics.rejected += 1
            return PlainTextResponse(_too_large(int(declared), broker.max_event_bytes), status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > broker.max_event_bytes:
                broker.metrics.rejected += 1
                return PlainTextResponse(_too_large(len(body), broker.max_event_bytes), status_code=413)
        try:
            await broker.ingest(request.headers, bytes(body))
        except ValidationError as err:
            return PlainTextResponse(f"{err}\n", status_code=status_for(err))
        except OSError as err:
            log.error("journal: cannot persist an event: %s", err)
            unsaved = RetryableError(f"the broker cannot persist the event ({err}); try again")
            return PlainTextResponse(f"{unsaved}\n", status_code=status_for(unsaved))
        return Response(status_code=202)

    async def wrong_method(request: Request) -> Response:
        return PlainTextResponse(
            f"{request.method} is not supported here: POST a CloudEvent to {broker.ingress_url}\n",
            status_code=405, headers={"Allow": "POST"},
        )

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
            headers["x-forwarded-host"] = request.headers.get("host", "")  # the web view's Origin check
            try:
                upstream = await broker.client.request(
                    request.method, base.rstrip("/") + rest, params=request.query_params, headers=headers,
                    content=await request.body(), timeout=PROXY_TIMEOUT_S,
                )
            except httpx.InvalidURL as err:  # e.g. a NUL in the path (/bridge/delivery/%00)
                return PlainTextResponse(f"not a valid path for the {target} function: {err}\n", 400)
            except httpx.HTTPError as err:
                return PlainTextResponse(f"{target} function unreachable: {type(err).__name__}: {err}\n", 502)
            # uvicorn sets its own server and date headers: the function's would be doubled
            dropped = _HOP_HEADERS | {"content-encoding", "server", "date"}
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in dropped}
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
        Route(path, wrong_method, methods=[m for m in methods if m != "POST"]),
        Route(path + "/", wrong_method, methods=[m for m in methods if m != "POST"]),
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


def _too_large(size: int, limit: int) -> str:
    return f"the event is {size} bytes or more; this broker accepts at most {limit} bytes per event (413)\n"
