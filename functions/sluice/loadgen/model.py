"""What the load generator is asked to do (``LoadProfile``) and what it measured (``LoadReport``)."""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from sluice.core.frozen import frozen


class Mode(enum.StrEnum):
    """Open loop (a fixed arrival rate) or closed loop (virtual users that wait for answers)."""

    CONSTANT_ARRIVAL_RATE = "constant-arrival-rate"
    VIRTUAL_USERS = "virtual-users"


@frozen
class LoadRequest:
    """One entry of the request mix. ``expected_status`` None means "any status below 400"."""

    path: str
    method: str = "GET"
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    expected_status: int | None = None

    def is_error(self, status: int) -> bool:
        if self.expected_status is None:
            return status >= 400
        return status != self.expected_status


@frozen
class LoadProfile:
    """A bounded load: it stops by itself after ``duration_s`` or ``max_requests``, whichever first.

    ``rate`` (requests/s) is used by the constant-arrival-rate mode; ``vus`` and
    ``think_time_s`` by the virtual-users mode. ``timeout_s`` bounds each request.
    ``max_connections`` bounds the open connections; a request that waits for one still has its
    latency counted from its intended send time. ``workers`` is the number of processes that
    share the load (None: as many as the rate needs, one per ``ONE_CORE_RATE`` requests/s, at
    most one per usable core; a closed loop uses one unless told).
    """

    requests: tuple[LoadRequest, ...]
    duration_s: float
    mode: Mode = Mode.CONSTANT_ARRIVAL_RATE
    rate: float = 10.0
    vus: int = 1
    think_time_s: float = 0.0
    timeout_s: float = 5.0
    max_requests: int | None = None
    max_connections: int = 512
    workers: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.requests:
            problems.append("requests: expected at least one request, found none")
        if any(r.weight <= 0 for r in self.requests):
            problems.append("requests: expected every weight > 0")
        if self.duration_s <= 0:
            problems.append(f"duration_s: expected > 0, found {self.duration_s}")
        if self.mode is Mode.CONSTANT_ARRIVAL_RATE and self.rate <= 0:
            problems.append(f"rate: expected > 0, found {self.rate}")
        if self.mode is Mode.VIRTUAL_USERS and self.vus < 1:
            problems.append(f"vus: expected >= 1, found {self.vus}")
        if self.timeout_s <= 0:
            problems.append(f"timeout_s: expected > 0, found {self.timeout_s}")
        if self.max_requests is not None and self.max_requests < 1:
            problems.append(f"max_requests: expected >= 1, found {self.max_requests}")
        if self.workers is not None and self.workers < 1:
            problems.append(f"workers: expected >= 1, found {self.workers}")
        if self.max_connections < 1:
            problems.append(f"max_connections: expected >= 1, found {self.max_connections}")
        if problems:
            raise ValueError("invalid load profile: " + "; ".join(problems))

    def planned_requests(self) -> int | None:
        """How many requests the profile will send (open loop), or its cap (closed loop)."""
        if self.mode is Mode.CONSTANT_ARRIVAL_RATE:
            planned = max(1, round(self.rate * self.duration_s))
            return planned if self.max_requests is None else min(planned, self.max_requests)
        return self.max_requests

    def worker_count(self) -> int:
        """How many processes run this profile (see ``workers``)."""
        if self.workers is not None:
            return self.workers
        if self.mode is not Mode.CONSTANT_ARRIVAL_RATE:
            return 1
        return max(1, min(usable_cores(), math.ceil(self.rate / ONE_CORE_RATE)))


#: The open-loop rate one process sends on one core with room to spare (``bench/loadgen.py``
#: measures what it reaches); above it a run is spread over more processes.
ONE_CORE_RATE = 12_000.0


def usable_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@frozen
class SlotReport:
    """The answers one slot gave during a run on a stage's public address (the weighted local
    router names the slot in ``x-sluice-slot``): the same figures as the run's, for that share.
    Times in milliseconds; ``throughput`` is the slot's answers per second of the whole run."""

    requests: int
    errors: int
    throughput: float
    error_rate: float
    response_time_avg: float | None
    response_time_p50: float | None
    response_time_p90: float | None
    response_time_p95: float | None
    response_time_p99: float | None
    latency_histogram_us: tuple[tuple[int, int], ...] = ()

    def measurements(self) -> dict[str, Any]:
        """The builtin SLI values of this slot and what stands behind them (as ``LoadReport``'s)."""
        values: dict[str, Any] = {
            "throughput": self.throughput,
            "error_rate": self.error_rate,
            "response_time_p50": self.response_time_p50,
            "response_time_p90": self.response_time_p90,
            "response_time_p95": self.response_time_p95,
            "response_time_p99": self.response_time_p99,
            "response_time_avg": self.response_time_avg,
        }
        return {
            **{key: value for key, value in values.items() if value is not None},
            "requests": self.requests, "errors": self.errors,
            "latency_histogram_us": [list(p) for p in self.latency_histogram_us],
        }


@frozen
class LoadReport:
    """What one load run measured. Times in milliseconds; ``error_rate`` is a fraction 0..1.

    Latency percentiles are None when no request got an answer or timed out. ``start`` and
    ``end`` (RFC 3339 UTC) bound the measurement window: first intended send to last answer.
    ``statuses`` counts answers per HTTP status; status 0 stands for no answer (see
    ``error_kinds``: ``timeout``, ``connection``, ``cancelled``). ``dropped`` counts requests of
    an open-loop run that were due but never sent (not counted in ``requests``); of them,
    ``dropped_busy`` were unsent because every one of ``max_connections`` was busy when sending
    ended (the target did not keep up). ``behind`` counts the requests the generator could not send
    on schedule through its own fault — started by its scheduler more than ``LATE_S`` (50 ms)
    after their due time, or never sent while connections were free (``dropped - dropped_busy``) —
    and ``worst_lag_ms`` is the longest its scheduler ran behind: when this process is starved of
    CPU, the latencies (counted from the due times) include its own delay, so a run with many
    requests ``behind`` measured the generator as much as the target. ``workers`` is the number of
    processes that sent the load (their histograms merged exactly). ``slots``: the answers per
    slot that named one (``x-sluice-slot``; empty when the target does not say), merged exactly
    across the processes like the totals; ``unattributed()`` counts the requests that got no
    answer and so cannot be put down to a slot.
    """

    mode: Mode
    requests: int
    errors: int
    start: str
    end: str
    duration_s: float
    throughput: float
    error_rate: float
    response_time_avg: float | None
    response_time_min: float | None
    response_time_max: float | None
    response_time_p50: float | None
    response_time_p90: float | None
    response_time_p95: float | None
    response_time_p99: float | None
    statuses: Mapping[int, int] = field(default_factory=dict)
    error_kinds: Mapping[str, int] = field(default_factory=dict)
    target_rate: float | None = None
    dropped: int = 0
    dropped_busy: int = 0
    behind: int = 0
    worst_lag_ms: float = 0.0
    latency_histogram_us: tuple[tuple[int, int], ...] = ()
    workers: int = 1
    slots: Mapping[str, SlotReport] = field(default_factory=dict)

    def planned(self) -> int:
        """The requests the run was asked to send and could have: sent plus dropped."""
        return self.requests + self.dropped

    def unattributed(self) -> int:
        """Requests whose answer named no slot (no answer at all, or a target that does not say)."""
        return self.requests - sum(s.requests for s in self.slots.values())

    def samples(self) -> dict[str, Any]:
        """What stands behind the measurements, for the builtin SLI provider: the number of
        requests and the latency histogram (``[µs, count]`` pairs, bounded: see
        ``LogLinearHistogram.compact``)."""
        return {"requests": self.requests, "latency_histogram_us": [list(p) for p in self.latency_histogram_us]}

    def measurements(self) -> dict[str, float]:
        """The builtin SLI values this run provides (a key is left out when it was not measured)."""
        values: dict[str, float | None] = {
            "throughput": self.throughput,
            "error_rate": self.error_rate,
            "response_time_p50": self.response_time_p50,
            "response_time_p90": self.response_time_p90,
            "response_time_p95": self.response_time_p95,
            "response_time_p99": self.response_time_p99,
            "response_time_avg": self.response_time_avg,
        }
        return {key: value for key, value in values.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "requests": self.requests,
            "errors": self.errors,
            "start": self.start,
            "end": self.end,
            "duration_s": round(self.duration_s, 3),
            "target_rate": self.target_rate,
            "dropped": self.dropped,
            "dropped_busy": self.dropped_busy,
            "behind": self.behind,
            "worst_lag_ms": self.worst_lag_ms,
            "workers": self.workers,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_kinds": dict(sorted(self.error_kinds.items())),
            "response_time_min": self.response_time_min,
            "response_time_max": self.response_time_max,
            **self.measurements(),
            **({"slots": {name: {"requests": slot.requests, "errors": slot.errors,
                                 "response_time_p95": slot.response_time_p95}
                          for name, slot in self.slots.items()}} if self.slots else {}),
        }
