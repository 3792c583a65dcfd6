"""The open loop tells a generator that fell behind its own schedule (this process starved of CPU,
its loop blocked) apart from a target that keeps every connection busy: the first is counted as
``behind`` with the worst stall, the second as ``dropped_busy``.

The starvation is made deterministic by blocking the generator's own event loop with
``time.sleep`` from a callback while the target (another thread) stays free to answer.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from tests.support.httptarget import TargetServer

from sluice.loadgen import LoadProfile, LoadReport, LoadRequest
from sluice.loadgen.engine import LATE_S, Tally, new_loop, report, run_load

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


def profile(rate: float, duration_s: float, max_connections: int = 64, timeout_s: float = 2.0) -> LoadProfile:
    return LoadProfile(requests=(LoadRequest("/"),), duration_s=duration_s, rate=rate, timeout_s=timeout_s,
                       max_connections=max_connections, workers=1)


def starved(url: str, asked: LoadProfile, block_at_s: float, block_s: float) -> LoadReport:
    """Run ``asked`` on a loop that is blocked for ``block_s`` seconds ``block_at_s`` after the start."""

    async def run() -> LoadReport:
        asyncio.get_running_loop().call_later(block_at_s, time.sleep, block_s)
        return await run_load(url, asked)

    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(run())


def test_a_stalled_generator_is_behind_not_busy(target: TargetServer) -> None:
    """A 0.6 s stall mid-run with 64 connections free: the requests due during it are counted as
    the generator's lag (about 0.6 s × 100 req/s), the stall is reported, and no connection was busy."""
    load = starved(target.url, profile(rate=100, duration_s=1.5), block_at_s=0.3, block_s=0.6)
    assert load.dropped_busy == 0
    assert load.behind >= 40  # at least the requests due in the first 0.55 s of the stall (~55)
    assert load.worst_lag_ms >= 500
    assert load.to_dict()["behind"] == load.behind and load.to_dict()["worst_lag_ms"] == load.worst_lag_ms


def test_a_stall_past_the_end_drops_requests_as_behind(target: TargetServer) -> None:
    """A stall that outlasts the sending window: the requests the scheduler reached only after the
    end are dropped, and with connections free they are the generator's lag, not 'connections busy'."""
    load = starved(target.url, profile(rate=200, duration_s=1.0), block_at_s=0.4, block_s=1.0)
    assert load.dropped > 0
    assert load.dropped_busy == 0
    assert load.behind >= load.dropped
    assert load.requests + load.dropped == 200


def test_a_target_that_never_answers_keeps_every_connection_busy() -> None:
    """A listener that accepts and never answers, 4 connections: the unsent requests are dropped
    because every connection was busy (the target's doing), and at most the 4 sent can be behind."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes connections; nobody ever reads
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with asyncio.Runner(loop_factory=new_loop) as runner:
            load = runner.run(run_load(url, profile(rate=100, duration_s=0.5, max_connections=4, timeout_s=0.5)))
    assert load.dropped >= 40
    assert load.dropped_busy == load.dropped
    assert load.behind <= 4
    assert load.error_kinds.get("timeout") == 4


def test_tallies_of_worker_processes_merge_lag_exactly() -> None:
    """Merging: counts add up, the worst stall is the worst of any process."""
    one = Tally(first=0.0, behind=3, dropped=5, dropped_busy=2, worst_lag=0.2)
    two = Tally(first=0.0, behind=7, dropped=1, dropped_busy=1, worst_lag=0.9)
    one.merge(two)
    assert (one.behind, one.dropped, one.dropped_busy, one.worst_lag) == (10, 6, 3, 0.9)
    merged = report(profile(rate=10, duration_s=1), one, 0.0, workers=2)
    assert (merged.behind, merged.dropped_busy, merged.worst_lag_ms) == (10, 3, 900.0)


def test_late_bound_is_documented_as_fifty_ms() -> None:
    """The bound the docs and the report's message name."""
    assert LATE_S == 0.05
