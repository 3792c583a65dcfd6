"""The asyncio load engine (aiohttp client).

Open loop (``constant-arrival-rate``): request *i* is due at ``t0 + i / rate``. The scheduler
starts every due request on time whether or not earlier ones have answered, and a request's
latency is measured from its *intended* send time, so a slow or stalled target (or a scheduler
that fell behind) shows up in the percentiles instead of silently lowering the send rate
(no coordinated omission).

Closed loop (``virtual-users``): ``vus`` workers each send, wait for the answer, think, repeat;
latency is measured from the actual send. Closed loop is what wrk and JMeter do; it under-reports
latency when the target stalls, so the open loop is the default.

Both stop by themselves: no request is started after ``duration_s`` (or ``max_requests``), the
ones in flight get ``timeout_s`` to finish, and whatever is still running at the hard limit is
cancelled and counted as an error (``cancelled``). At most ``max_connections`` requests are in
flight; when the target (or this process) cannot keep up, due requests wait for a free slot with
their latency still counted from their intended time, and those still unsent when sending ends
are reported as ``dropped`` (the load asked for was not delivered).

Why aiohttp and not httpx: on this machine (one core for the client, one for a fast target)
aiohttp sustained ~13,000 req/s with 50 connections where httpx 0.28's pool reached ~500-1,200
req/s; see ``bench/loadgen.py``. httpx stays the client for the few functional requests.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from sluice.loadgen.histogram import LogLinearHistogram
from sluice.loadgen.model import LoadProfile, LoadReport, LoadRequest, Mode

#: The last stretch before a request's due time is spent yielding to the loop, not sleeping.
_SPIN_S = 0.002

ProgressCallback = Callable[[int, int | None, float], None]
"""Called about four times a second with (requests finished, requests planned or None, seconds elapsed)."""


def rfc3339(epoch_s: float) -> str:
    """An RFC 3339 UTC timestamp with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Recorder:
    __slots__ = ("errors", "finished", "histogram", "kinds", "last_done", "statuses")

    def __init__(self) -> None:
        self.histogram = LogLinearHistogram()
        self.statuses: Counter[int] = Counter()
        self.kinds: Counter[str] = Counter()
        self.finished = 0
        self.errors = 0
        self.last_done = 0.0

    def answer(self, status: int, error: bool, latency_s: float, done: float) -> None:
        self.finished += 1
        self.statuses[status] += 1
        if error:
            self.errors += 1
            self.kinds[f"status {status}"] += 1
        self.histogram.record(max(0, int(latency_s * 1_000_000)))
        self.last_done = max(self.last_done, done)

    def failure(self, kind: str, latency_s: float | None, done: float) -> None:
        self.finished += 1
        self.errors += 1
        self.statuses[0] += 1
        self.kinds[kind] += 1
        if latency_s is not None:
            self.histogram.record(max(0, int(latency_s * 1_000_000)))
        self.last_done = max(self.last_done, done)


class _Picker:
    """Weighted choice of the next request, reproducible with a seed."""

    def __init__(self, requests: tuple[LoadRequest, ...], urls: list[URL], seed: int | None) -> None:
        self._entries = list(zip(requests, urls, strict=True))
        self._cumulative = list(itertools.accumulate(r.weight for r in requests))
        self._random = random.Random(seed)

    def next(self) -> tuple[LoadRequest, URL]:
        if len(self._entries) == 1:
            return self._entries[0]
        point = self._random.random() * self._cumulative[-1]
        return self._entries[min(bisect.bisect_right(self._cumulative, point), len(self._entries) - 1)]


def _join(base_url: str, path: str) -> URL:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, found {base_url!r}")
    return URL(base_url.rstrip("/") + "/" + path.lstrip("/"))


async def run_load(
    base_url: str,
    profile: LoadProfile,
    *,
    on_progress: ProgressCallback | None = None,
    hard_limit_s: float | None = None,
    seed: int | None = None,
) -> LoadReport:
    """Run ``profile`` against ``base_url`` and report what was measured.

    Never raises for the target's failures (they are errors in the report); raises
    ``ValueError`` for a malformed base URL. ``hard_limit_s`` cuts the whole run short
    (sending and draining) after that many seconds.
    """
    urls = [_join(base_url, r.path) for r in profile.requests]
    picker = _Picker(profile.requests, urls, seed)
    recorder = _Recorder()
    loop = asyncio.get_running_loop()
    mono_ref, wall_ref = loop.time(), time.time()
    t0 = mono_ref + 0.005
    send_end = t0 + profile.duration_s
    drain_end = send_end + profile.timeout_s + 0.5
    if hard_limit_s is not None:
        send_end = min(send_end, mono_ref + hard_limit_s)
        drain_end = min(drain_end, mono_ref + hard_limit_s)
    recorder.last_done = t0
    planned = profile.planned_requests()

    connector = aiohttp.TCPConnector(limit=profile.max_connections, limit_per_host=0, ttl_dns_cache=300)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=profile.timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )

    async def one(request: LoadRequest, url: URL, intended: float) -> None:
        try:
            async with session.request(
                request.method, url, data=request.body, headers=request.headers or None, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except asyncio.CancelledError:
            recorder.failure("cancelled", None, loop.time())
            raise
        except TimeoutError:
            done = loop.time()
            recorder.failure("timeout", done - intended, done)
        except (aiohttp.ClientError, OSError):
            recorder.failure("connection", None, loop.time())
        else:
            done = loop.time()
            recorder.answer(status, request.is_error(status), done - intended, done)

    in_flight: set[asyncio.Task[None]] = set()
    launched = 0
    slot: list[asyncio.Future[None]] = []  # the scheduler's wait for a free slot, when it waits

    def finished(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if slot and not slot[0].done():
            slot[0].set_result(None)

    def launch(request: LoadRequest, url: URL, intended: float) -> None:
        nonlocal launched
        launched += 1
        task = loop.create_task(one(request, url, intended))
        in_flight.add(task)
        task.add_done_callback(finished)

    async def open_loop() -> None:
        # At most ``max_connections`` requests are in flight; a request due while all slots are
        # taken is started as soon as one frees up, its latency still counted from its intended
        # time. What is still unsent when sending ends is reported as ``dropped``.
        assert planned is not None
        interval = 1.0 / profile.rate
        index = 0
        while index < planned:
            now = loop.time()
            due = t0 + index * interval
            if due >= send_end or now >= send_end:
                return
            if due > now:
                # The selector rounds a timer up to the next millisecond, so a plain sleep wakes
                # up to ~1 ms late and that lateness would count as latency. Sleep until just
                # before the due time, then yield to the loop (still serving I/O) until it is due.
                gap = due - now
                await asyncio.sleep(gap - _SPIN_S if gap > _SPIN_S else 0)
                continue
            if len(in_flight) >= profile.max_connections:
                waiter: asyncio.Future[None] = loop.create_future()
                slot[:] = [waiter]
                await asyncio.wait((waiter,), timeout=max(0.0, send_end - now))
                slot.clear()
                continue
            while (index < planned and due <= now and due < send_end
                   and len(in_flight) < profile.max_connections):
                request, url = picker.next()
                launch(request, url, due)
                index += 1
                due = t0 + index * interval
            await asyncio.sleep(0)

    issued = 0

    async def virtual_user() -> None:
        nonlocal issued
        while loop.time() < send_end and (profile.max_requests is None or issued < profile.max_requests):
            issued += 1
            request, url = picker.next()
            await one(request, url, loop.time())
            if profile.think_time_s > 0:
                await asyncio.sleep(profile.think_time_s)

    async def ticker() -> None:
        while True:
            if on_progress is not None:
                on_progress(recorder.finished, planned, loop.time() - t0)
            await asyncio.sleep(0.25)

    progress = loop.create_task(ticker()) if on_progress is not None else None
    try:
        delay = t0 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if profile.mode is Mode.CONSTANT_ARRIVAL_RATE:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(open_loop(), timeout=max(0.0, send_end - loop.time()) + 1.0)
        else:
            users = [loop.create_task(virtual_user()) for _ in range(profile.vus)]
            for user in users:
                in_flight.add(user)
                user.add_done_callback(finished)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=max(0.0, drain_end - loop.time()))
        leftover = set(in_flight)
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=1.0)
        # A request cancelled before it even started was never counted by ``one``.
        for _ in range(launched - recorder.finished if profile.mode is Mode.CONSTANT_ARRIVAL_RATE else 0):
            recorder.failure("cancelled", None, loop.time())
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        await session.close()

    dropped = 0
    if profile.mode is Mode.CONSTANT_ARRIVAL_RATE and planned is not None:
        interval = 1.0 / profile.rate
        due_count = max(0, math.ceil((send_end - t0) / interval))
        while due_count > 0 and t0 + (due_count - 1) * interval >= send_end:
            due_count -= 1
        dropped = max(0, min(planned, due_count) - launched)
    end_mono = max(recorder.last_done, t0)
    if on_progress is not None:
        on_progress(recorder.finished, planned, end_mono - t0)
    return _report(profile, recorder, t0, end_mono, wall_ref - mono_ref, dropped)


def _report(
    profile: LoadProfile, recorder: _Recorder, t0: float, end: float, wall_offset: float, dropped: int
) -> LoadReport:
    histogram = recorder.histogram
    elapsed = max(end - t0, 1e-9)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value / 1000.0, 3)

    answered_or_timed_out = histogram.count > 0
    return LoadReport(
        mode=profile.mode,
        requests=recorder.finished,
        errors=recorder.errors,
        start=rfc3339(t0 + wall_offset),
        end=rfc3339(end + wall_offset),
        duration_s=elapsed,
        throughput=round(recorder.finished / elapsed, 3) if recorder.finished else 0.0,
        error_rate=round(recorder.errors / recorder.finished, 6) if recorder.finished else 1.0,
        response_time_avg=ms(histogram.mean()),
        response_time_min=ms(float(histogram.min)) if answered_or_timed_out else None,
        response_time_max=ms(float(histogram.max)) if answered_or_timed_out else None,
        response_time_p50=ms(histogram.percentile(50)),
        response_time_p90=ms(histogram.percentile(90)),
        response_time_p95=ms(histogram.percentile(95)),
        response_time_p99=ms(histogram.percentile(99)),
        statuses=dict(recorder.statuses),
        error_kinds=dict(recorder.kinds),
        target_rate=profile.rate if profile.mode is Mode.CONSTANT_ARRIVAL_RATE else None,
        dropped=dropped,
        latency_histogram_us=tuple((v, c) for v, c in histogram.compact()),
    )


def run_load_sync(
    base_url: str,
    profile: LoadProfile,
    *,
    on_progress: ProgressCallback | None = None,
    hard_limit_s: float | None = None,
    seed: int | None = None,
) -> LoadReport:
    """``run_load`` on a fresh event loop, for synchronous callers. When this thread already runs
    a loop (an embedding application, a browser driver in tests), the load runs on its own
    thread with its own loop, so it never competes with the caller's."""

    def run() -> LoadReport:
        return asyncio.run(run_load(base_url, profile, on_progress=on_progress, hard_limit_s=hard_limit_s, seed=seed))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-load") as pool:
        return pool.submit(run).result()
