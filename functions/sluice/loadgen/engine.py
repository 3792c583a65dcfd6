"""The load engine: one event loop (uvloop when installed), callbacks instead of tasks.

Open loop (``constant-arrival-rate``): request *i* is due at ``t0 + i / rate``. The scheduler
starts every due request on time whether or not earlier ones have answered, and a request's
latency is measured from its *intended* send time, so a slow or stalled target (or a scheduler
that fell behind) shows up in the percentiles instead of silently lowering the send rate
(no coordinated omission).

Closed loop (``virtual-users``): ``vus`` connections each send, wait for the answer, think,
repeat; latency is measured from the actual send. Closed loop is what wrk and JMeter do; it
under-reports latency when the target stalls, so the open loop is the default.

Both stop by themselves: no request is started after ``duration_s`` (or ``max_requests``), the
ones in flight get ``timeout_s`` to finish, and whatever is still running at the hard limit is
aborted and counted as an error (``cancelled``). At most ``max_connections`` requests are in
flight; when the target (or this process) cannot keep up, due requests wait for a free
connection with their latency still counted from their intended time, and those still unsent
when sending ends are reported as ``dropped`` (the load asked for was not delivered).

How it is fast: requests are pre-encoded, each connection is an ``asyncio.Protocol``
(``sluice.loadgen.client``) that reports its answer by a plain method call, the open-loop
scheduler is one callback that starts every due request, and uvloop runs the loop when it is
installed. Clocks are ``time.monotonic()`` (nanosecond resolution; uvloop's ``loop.time()`` is
cached in milliseconds), the same clock in every process of the machine, so the worker
processes of ``sluice.loadgen.workers`` share one schedule. When one core is not enough, that
module spreads a run over one process per core and merges the histograms exactly.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
import socket
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sluice.core.frozen import frozen
from sluice.loadgen.client import Connection, encode_request
from sluice.loadgen.histogram import LogLinearHistogram
from sluice.loadgen.model import LoadProfile, LoadReport, LoadRequest, Mode, SlotReport

#: The last stretch before a request's due time is spent yielding to the loop (still serving
#: I/O), not sleeping: a timer wakes up to a millisecond late and that lateness would count as
#: latency.
_SPIN_S = 0.002
#: How often requests in flight are checked against their timeout.
_SWEEP_S = 0.01
#: At most this many connections are being opened at once: after a stall (this process
#: descheduled, the target slow) many requests fall due together, and opening a connection for
#: each at once costs more than they wait for the connections already open.
_MAX_OPENING = 16
#: A request the open-loop scheduler itself starts more than this long after its due time was
#: late because this process fell behind its own schedule (descheduled, starved of CPU, its loop
#: blocked), not because the target was slow: its latency, counted from the due time, includes
#: the generator's own delay. Such requests are counted apart (``Tally.behind``).
LATE_S = 0.05

ProgressCallback = Callable[[int, int | None, float], None]
"""Called about four times a second with (requests finished, requests planned or None, seconds elapsed)."""


def rfc3339(epoch_s: float) -> str:
    """An RFC 3339 UTC timestamp with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: At most this many distinct slot names are tallied apart (the router has three); answers
#: naming further ones count as unattributed.
MAX_SLOTS = 8


@dataclass
class SlotTally:
    """The answers one slot gave (``x-sluice-slot``): count, errors and latencies."""

    histogram: LogLinearHistogram = field(default_factory=LogLinearHistogram)
    finished: int = 0
    errors: int = 0

    def merge(self, other: SlotTally) -> None:
        self.histogram.merge(other.histogram)
        self.finished += other.finished
        self.errors += other.errors


@dataclass
class Tally:
    """What one process measured; tallies of several processes add up exactly (``merge``).

    ``slots``: the answers per slot that said which one it was (``x-sluice-slot``, set by the
    weighted local router); every answer is in the totals as well. A request without an answer
    (timeout, refused or broken connection) cannot be attributed to a slot."""

    histogram: LogLinearHistogram = field(default_factory=LogLinearHistogram)
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    finished: int = 0
    errors: int = 0
    launched: int = 0
    dropped: int = 0
    #: Requests the generator could not send on schedule through its own fault: started by the
    #: scheduler more than ``LATE_S`` after their due time, or never sent while a connection was
    #: free (``dropped - dropped_busy``). The target's slowness is never counted here.
    behind: int = 0
    #: Of ``dropped``: unsent because every one of ``max_connections`` was busy when sending ended
    #: (the target did not keep up).
    dropped_busy: int = 0
    #: The longest the scheduler ran behind its schedule (seconds): due time to the moment it
    #: looked at the request.
    worst_lag: float = 0.0
    first: float = math.inf  # monotonic time the measurement window starts (t0)
    last_done: float = 0.0
    slots: dict[str, SlotTally] = field(default_factory=dict)

    def merge(self, other: Tally) -> None:
        self.histogram.merge(other.histogram)
        self.statuses.update(other.statuses)
        self.kinds.update(other.kinds)
        self.finished += other.finished
        self.errors += other.errors
        self.launched += other.launched
        self.dropped += other.dropped
        self.behind += other.behind
        self.dropped_busy += other.dropped_busy
        self.worst_lag = max(self.worst_lag, other.worst_lag)
        self.first = min(self.first, other.first)
        self.last_done = max(self.last_done, other.last_done)
        for name, slot in other.slots.items():
            mine = self.slots.get(name)
            if mine is not None:
                mine.merge(slot)
            elif len(self.slots) < MAX_SLOTS:
                self.slots[name] = slot

    def slot(self, raw: bytes) -> SlotTally | None:
        """The tally of the slot named ``raw`` (created on its first answer); None past ``MAX_SLOTS``."""
        name = raw.decode("ascii", "replace")
        found = self.slots.get(name)
        if found is None and len(self.slots) < MAX_SLOTS:
            found = self.slots[name] = SlotTally()
        return found

    def failure(self, kind: str, latency_s: float | None, done: float) -> None:
        self.finished += 1
        self.errors += 1
        self.statuses[0] += 1
        self.kinds[kind] += 1
        if latency_s is not None:
            self.histogram.record(max(0, int(latency_s * 1_000_000)))
        if done > self.last_done:
            self.last_done = done


@frozen
class Share:
    """This process's part of a run spread over ``of`` processes: every ``of``-th request of the
    open-loop schedule starting at ``index``, and its part of the connections and users."""

    index: int = 0
    of: int = 1


@frozen
class _Entry:
    request: LoadRequest
    data: bytes
    head_only: bool


class _Picker:
    """Weighted choice of the next request, reproducible with a seed."""

    def __init__(self, entries: list[_Entry], weights: list[float], seed: int | None) -> None:
        self._entries = entries
        self._cumulative = list(itertools.accumulate(weights))
        self._random = random.Random(seed)
        self.next: Callable[[], _Entry] = (lambda: entries[0]) if len(entries) == 1 else self._draw

    def _draw(self) -> _Entry:
        point = self._random.random() * self._cumulative[-1]
        return self._entries[min(bisect.bisect_right(self._cumulative, point), len(self._entries) - 1)]


@frozen
class Target:
    """Where the load goes: scheme, host, port and the pre-encoded request mix."""

    host: str
    port: int
    tls: bool
    entries: tuple[_Entry, ...]


def target_for(base_url: str, requests: tuple[LoadRequest, ...]) -> Target:
    """Parse ``base_url`` and encode every request of the mix; ``ValueError`` names what is wrong."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, found {base_url!r}")
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise ValueError(f"base URL has no host: {base_url!r}")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as err:
        raise ValueError(f"base URL has a bad port: {base_url!r}") from err
    default = (443 if tls else 80) == port
    host_header = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if not default:
        host_header += f":{port}"
    prefix = parts.path.rstrip("/")
    entries = []
    for request in requests:
        path = prefix + "/" + request.path.lstrip("/")
        data = encode_request(request.method.upper(), path, host_header, request.headers, request.body)
        entries.append(_Entry(request, data, request.method.upper() == "HEAD"))
    return Target(parts.hostname, port, tls, tuple(entries))


class _Timers:
    """The timers a run has armed and not yet seen fire, to cancel at its end. A timer lets go of
    its handle when it fires, so a run keeps the handful still pending however long it lasts (the
    sweep alone arms one every ``_SWEEP_S``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[int, asyncio.TimerHandle] = {}
        self.ids = itertools.count()

    def later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        key = next(self.ids)
        self.pending[key] = self.loop.call_later(delay, self._fire, key, callback, args)

    def _fire(self, key: int, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.pending.pop(key, None)
        callback(*args)

    def cancel(self) -> None:
        for timer in self.pending.values():
            timer.cancel()
        self.pending.clear()

    def __len__(self) -> int:
        return len(self.pending)


class _Run:
    """One process's run: connections, the schedule, the tally. Everything happens in callbacks.

    A connection's ``request`` holds ``(user, retried, entry)``: whether a virtual user owns it,
    whether its request is a resend, and the request of the mix in flight.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, target: Target, address: tuple[str, int],
                 profile: LoadProfile, share: Share, t0: float, send_end: float, drain_end: float,
                 seed: int | None, on_progress: ProgressCallback | None) -> None:
        self.loop = loop
        self.target = target
        self.address = address
        self.profile = profile
        self.share = share
        self.t0, self.send_end, self.drain_end = t0, send_end, drain_end
        self.picker = _Picker(list(target.entries), [e.request.weight for e in target.entries], seed)
        self.tally = Tally(first=t0, last_done=t0)
        self.histogram = self.tally.histogram
        self.statuses = self.tally.statuses
        self.open_loop = profile.mode is Mode.CONSTANT_ARRIVAL_RATE
        self.ssl = ssl.create_default_context() if target.tls else None
        self.on_progress = on_progress
        self.done: asyncio.Future[None] = loop.create_future()
        self.connections: set[Connection] = set()
        self.opening: dict[asyncio.Task[Any], float] = {}  # connect attempts and when they began
        self.why_cancelled: dict[asyncio.Task[Any], str] = {}
        self.idle: list[Connection] = []
        # requests waiting for a connection: (due time, whether the scheduler reached it late)
        self.queue: deque[tuple[float, bool]] = deque()
        self.sending = True
        self.stopped = False
        self.all_dispatched = False
        self.timers = _Timers(loop)
        # Open loop: this process sends requests index, index + of, index + 2·of, … of the schedule.
        self.planned = profile.planned_requests() or 0
        self.interval = 1.0 / profile.rate
        self.next_index = share.index
        self.stride = share.of
        self.my_planned = len(range(share.index, self.planned, share.of))
        self.limit = max(1, _split(profile.max_connections, share))
        self.issued = 0
        self.think = profile.think_time_s
        self.max_issued = None if profile.max_requests is None else _split(profile.max_requests, share)

    # -- the open-loop schedule -------------------------------------------------------------
    def tick(self) -> None:
        if not self.sending or self.all_dispatched:
            return
        now = time.monotonic()
        t0, interval, planned, stride = self.t0, self.interval, self.planned, self.stride
        index = self.next_index
        due = t0 + index * interval
        send_end = self.send_end
        if due <= now and due < send_end and index < planned and now - due > self.tally.worst_lag:
            self.tally.worst_lag = now - due  # the oldest request due in this tick waited longest
        late_before = now - LATE_S
        while index < planned and due <= now and due < send_end:
            self.dispatch(due, due < late_before)
            index += stride
            due = t0 + index * interval
        self.next_index = index
        if index >= planned or due >= send_end or now >= send_end:
            # Everything due is dispatched; requests still waiting for a connection may take one
            # until sending ends.
            self.all_dispatched = True
            if self.queue and now < send_end:
                self.timers.later(send_end - now, self.stop_sending)
            else:
                self.stop_sending()
            return
        gap = due - time.monotonic()
        if gap > _SPIN_S:
            self.timers.later(gap - _SPIN_S, self.tick)
        else:
            self.loop.call_soon(self.tick)

    def dispatch(self, due: float, late: bool) -> None:
        """Start the request due at ``due`` on a free connection, else queue it; ``late``: the
        scheduler itself reached it more than ``LATE_S`` after its due time."""
        if self.idle:
            self.tally.launched += 1
            self.tally.behind += late
            self._write(self.idle.pop(), due, False)
        elif self.may_open():
            self.tally.launched += 1
            self.tally.behind += late
            self.connect(due, False)
        else:
            self.queue.append((due, late))

    def may_open(self) -> bool:
        opening = len(self.opening)
        return opening < _MAX_OPENING and len(self.connections) + opening < self.limit

    def grow(self) -> None:
        """Open connections for requests waiting in the queue, as far as the limits allow."""
        while self.queue and self.sending and self.may_open():
            self.take_queued(None)

    def take_queued(self, connection: Connection | None) -> bool:
        """Give the oldest waiting request to ``connection`` (None: a new one); False if none waits."""
        if not (self.queue and self.sending):
            return False
        due, late = self.queue.popleft()
        self.tally.launched += 1
        self.tally.behind += late
        if connection is None:
            self.connect(due, False)
        else:
            self._write(connection, due, False)
        if self.all_dispatched and not self.queue:
            self.stop_sending()
        return True

    def stop_sending(self) -> None:
        if not self.sending:
            return
        self.sending = False
        if self.open_loop:
            # Requests still waiting for a connection were never sent: dropped, not counted. They
            # are the target's doing when every connection is in use; otherwise (connections were
            # free, only the opening of new ones was paced, or the scheduler never reached them)
            # the generator fell behind.
            if len(self.opening) + sum(1 for c in self.connections if c.busy) >= self.limit:
                self.tally.dropped_busy = len(self.queue)
            self.queue.clear()
            span = self.send_end - self.t0
            due_total = min(self.planned, max(0, math.ceil(span / self.interval)))
            while due_total > 0 and (due_total - 1) * self.interval >= span:
                due_total -= 1
            mine = len(range(self.share.index, due_total, self.stride))
            self.tally.dropped = max(0, mine - self.tally.launched)
            self.tally.dropped_busy = min(self.tally.dropped_busy, self.tally.dropped)
            self.tally.behind += self.tally.dropped - self.tally.dropped_busy
        for connection in self.idle:
            connection.close()
        self.idle.clear()
        self.check_done()

    # -- the closed loop --------------------------------------------------------------------
    def start_users(self) -> None:
        for _ in range(_split(self.profile.vus, self.share)):
            if self.may_issue():
                self.issued += 1
                self.connect(time.monotonic(), True)
        self.timers.later(max(0.0, self.send_end - time.monotonic()), self.stop_sending)
        self.check_done()

    def may_issue(self) -> bool:
        return self.sending and (self.max_issued is None or self.issued < self.max_issued)

    def next_for_user(self, connection: Connection | None) -> None:
        """A user is free: it sends again (after its think time), or stops when sending is over."""
        if not self.may_issue():
            if connection is not None:
                connection.close()
            self.check_done()
            return
        think = self.profile.think_time_s
        if think > 0:
            self.timers.later(think, self._user_sends, connection)
        else:
            self._user_sends(connection)

    def _user_sends(self, connection: Connection | None) -> None:
        if not self.may_issue():
            if connection is not None:
                connection.close()
            self.check_done()
            return
        self.issued += 1
        if connection is None or connection.gone:
            self.connect(time.monotonic(), True)
        else:
            self._write(connection, time.monotonic(), True)

    # -- connections ------------------------------------------------------------------------
    def connect(self, intended: float, user: bool, retried: bool = False) -> None:
        connection = Connection(self)
        connection.request = (user, retried, None)
        connection.intended = intended
        task = self.loop.create_task(self.loop.create_connection(
            lambda: connection, self.address[0], self.address[1], ssl=self.ssl,
            server_hostname=self.target.host if self.ssl else None,
        ))
        self.opening[task] = time.monotonic()
        task.add_done_callback(lambda t: self._connected(t, connection))

    def _connected(self, task: asyncio.Task[Any], connection: Connection) -> None:
        self.opening.pop(task, None)
        why = self.why_cancelled.pop(task, "cancelled")
        user, retried, _ = connection.request
        now = time.monotonic()
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            if task.cancelled():
                self.tally.failure(why, now - connection.intended if why == "timeout" else None, now)
            else:
                self.tally.failure("timeout" if isinstance(error, TimeoutError) else "connection", None, now)
            if user:
                self.next_for_user(None)
            else:
                self.grow()
            self.check_done()
            return
        if self.stopped:
            connection.abort()
            self.tally.failure("cancelled", None, now)
            self.check_done()
            return
        self.connections.add(connection)
        self._write(connection, connection.intended, user, retried)
        if not user:
            self.grow()

    def _write(self, connection: Connection, intended: float, user: bool, retried: bool = False) -> None:
        entry = self.picker.next()
        connection.request = (user, retried, entry)
        now = time.monotonic()
        connection.intended = now if user else intended
        connection.sent_at = now
        connection.send(entry.data, entry.head_only)

    # -- what connections report (sluice.loadgen.client.Owner) --------------------------------
    def answered(self, connection: Connection, status: int) -> None:
        done = time.monotonic()
        user, _, entry = connection.request
        tally = self.tally
        tally.finished += 1
        self.statuses[status] += 1
        error = entry.request.is_error(status)
        if error:
            tally.errors += 1
            tally.kinds[f"status {status}"] += 1
        latency = done - connection.intended
        micros = int(latency * 1_000_000) if latency > 0 else 0
        self.histogram.record(micros)
        if connection.slot and (slot := tally.slot(connection.slot)) is not None:
            slot.finished += 1
            slot.errors += error
            slot.histogram.record(micros)
        if done > tally.last_done:
            tally.last_done = done
        if user:
            if (not connection.gone and self.sending and self.think == 0
                    and (self.max_issued is None or self.issued < self.max_issued)):
                # The closed loop's hot path: the user sends again at once, on the same connection.
                self.issued += 1
                entry = self.picker.next()
                connection.request = (True, False, entry)
                connection.intended = connection.sent_at = done
                connection.send(entry.data, entry.head_only)
            else:
                self.next_for_user(connection)
        elif connection.gone:
            return  # the server closed it: ``closed`` hands its slot on
        elif self.take_queued(connection):
            return
        elif self.sending:
            self.idle.append(connection)
        else:
            connection.close()
            self.check_done()

    def lost(self, connection: Connection, answered_nothing: bool) -> None:
        user, retried, _ = connection.request
        if answered_nothing and connection.served > 0 and not retried:
            # A kept-alive connection the server had closed while it was idle: the request never
            # reached it. Resend it once on a new connection (as browsers and HTTP clients do).
            self.connect(connection.intended, user, retried=True)
            return
        self.tally.failure("connection", None, time.monotonic())
        if user:
            self.next_for_user(None)

    def closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        if not connection.request[0]:
            self.grow()
        self.check_done()

    # -- timeouts, the end, progress ---------------------------------------------------------
    def sweep(self) -> None:
        now = time.monotonic()
        timeout = self.profile.timeout_s
        for connection in [c for c in self.connections if c.busy and now - c.sent_at >= timeout]:
            user = connection.request[0]
            connection.abort()
            self.tally.failure("timeout", now - connection.intended, now)
            if user:
                self.next_for_user(None)
        for task, began in list(self.opening.items()):
            if now - began >= timeout and task not in self.why_cancelled:
                self.why_cancelled[task] = "timeout"
                task.cancel()
        self.check_done()
        if not self.done.done():
            self.timers.later(_SWEEP_S, self.sweep)

    def check_done(self) -> None:
        if self.sending or self.done.done() or self.opening:
            return
        if not any(c.busy for c in self.connections):
            self.done.set_result(None)

    def hard_stop(self) -> None:
        """Drain time is over: what is still in flight is aborted and counted as cancelled."""
        self.stop_sending()
        self.stopped = True
        now = time.monotonic()
        for connection in [c for c in self.connections if c.busy]:
            connection.abort()
            self.tally.failure("cancelled", None, now)
        for task in self.opening:
            self.why_cancelled.setdefault(task, "cancelled")
            task.cancel()
        self.check_done()

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.tally.finished, self.my_planned if self.open_loop else self.max_issued,
                             time.monotonic() - self.t0)
        if not self.done.done():
            self.timers.later(0.25, self.progress)

    async def run(self) -> Tally:
        self.timers.later(max(0.0, self.drain_end - time.monotonic()), self.hard_stop)
        delay = self.t0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            self.sweep()
            if self.on_progress is not None:
                self.progress()
            if self.open_loop:
                self.tick()
            else:
                self.start_users()
            await self.done
        finally:
            self.timers.cancel()
            for connection in list(self.connections):
                connection.close()
        self.tally.last_done = max(self.tally.last_done, self.t0)
        return self.tally


def _split(total: int, share: Share) -> int:
    """This process's part of ``total`` (the parts of all processes add up to ``total``)."""
    return total // share.of + (1 if share.index < total % share.of else 0)


async def resolve(target: Target) -> tuple[str, int]:
    """The address to connect to, resolved once for the whole run."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {target.host}")
    address = infos[0][4]
    return str(address[0]), int(address[1])


async def run_share(base_url: str, profile: LoadProfile, share: Share, t0: float | None = None, *,
                    on_progress: ProgressCallback | None = None, hard_limit_s: float | None = None,
                    seed: int | None = None) -> Tally:
    """Run this process's ``share`` of ``profile`` starting at monotonic time ``t0`` (default: now)."""
    target = target_for(base_url, profile.requests)
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    try:
        address = await resolve(target)
    except OSError:
        address = (target.host, target.port)  # connecting fails the same way: reported per request
    t0 = start + 0.005 if t0 is None else t0
    send_end = t0 + profile.duration_s
    drain_end = send_end + profile.timeout_s + 0.5
    if hard_limit_s is not None:
        send_end = min(send_end, start + hard_limit_s)
        drain_end = min(drain_end, start + hard_limit_s)
    run = _Run(loop, target, address, profile, share, t0, send_end, drain_end,
               None if seed is None else seed * 1_000 + share.index, on_progress)
    return await run.run()


def report(profile: LoadProfile, tally: Tally, wall_offset: float, workers: int = 1) -> LoadReport:
    """The report of a run from its (merged) tally; ``wall_offset`` turns monotonic into epoch time."""
    histogram = tally.histogram
    t0 = tally.first
    end = max(tally.last_done, t0)
    elapsed = max(end - t0, 1e-9)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value / 1000.0, 3)

    answered_or_timed_out = histogram.count > 0
    return LoadReport(
        mode=profile.mode,
        requests=tally.finished,
        errors=tally.errors,
        start=rfc3339(t0 + wall_offset),
        end=rfc3339(end + wall_offset),
        duration_s=elapsed,
        throughput=round(tally.finished / elapsed, 3) if tally.finished else 0.0,
        error_rate=round(tally.errors / tally.finished, 6) if tally.finished else 1.0,
        response_time_avg=ms(histogram.mean()),
        response_time_min=ms(float(histogram.min)) if answered_or_timed_out else None,
        response_time_max=ms(float(histogram.max)) if answered_or_timed_out else None,
        response_time_p50=ms(histogram.percentile(50)),
        response_time_p90=ms(histogram.percentile(90)),
        response_time_p95=ms(histogram.percentile(95)),
        response_time_p99=ms(histogram.percentile(99)),
        statuses=dict(tally.statuses),
        error_kinds=dict(tally.kinds),
        target_rate=profile.rate if profile.mode is Mode.CONSTANT_ARRIVAL_RATE else None,
        dropped=tally.dropped,
        dropped_busy=tally.dropped_busy,
        behind=tally.behind,
        worst_lag_ms=round(tally.worst_lag * 1000.0, 3),
        latency_histogram_us=tuple((v, c) for v, c in histogram.compact()),
        workers=workers,
        slots={name: _slot_report(slot, elapsed) for name, slot in sorted(tally.slots.items())},
    )


def _slot_report(slot: SlotTally, elapsed: float) -> SlotReport:
    histogram = slot.histogram

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value / 1000.0, 3)

    return SlotReport(
        requests=slot.finished,
        errors=slot.errors,
        throughput=round(slot.finished / elapsed, 3) if slot.finished else 0.0,
        error_rate=round(slot.errors / slot.finished, 6) if slot.finished else 1.0,
        response_time_avg=ms(histogram.mean()),
        response_time_p50=ms(histogram.percentile(50)),
        response_time_p90=ms(histogram.percentile(90)),
        response_time_p95=ms(histogram.percentile(95)),
        response_time_p99=ms(histogram.percentile(99)),
        latency_histogram_us=tuple((v, c) for v, c in histogram.compact()),
    )


def wall_offset() -> float:
    """Seconds to add to a ``time.monotonic()`` reading to get epoch time."""
    return time.time() - time.monotonic()


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
    (sending and draining) after that many seconds. When the profile asks for more than one
    worker process (see ``LoadProfile.worker_count``), the run is spread over them
    (``sluice.loadgen.workers``) from a thread, so this loop stays free.
    """
    target_for(base_url, profile.requests)  # a bad URL is refused before anything starts
    workers = profile.worker_count()
    if workers > 1:
        from sluice.loadgen.workers import run_spread

        return await asyncio.to_thread(run_spread, base_url, profile, workers, on_progress=on_progress,
                                       hard_limit_s=hard_limit_s, seed=seed)
    offset = wall_offset()
    tally = await run_share(base_url, profile, Share(), on_progress=on_progress, hard_limit_s=hard_limit_s,
                            seed=seed)
    if on_progress is not None:
        on_progress(tally.finished, profile.planned_requests(), max(tally.last_done, tally.first) - tally.first)
    return report(profile, tally, offset)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux, macOS), else the standard library's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


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
        with asyncio.Runner(loop_factory=new_loop) as runner:
            return runner.run(run_load(base_url, profile, on_progress=on_progress, hard_limit_s=hard_limit_s,
                                       seed=seed))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-load") as pool:
        return pool.submit(run).result()
