"""A candidate's Prometheus SLIs hold none of the build that ran in its slot before it.

Both candidates of a slot are one series in Prometheus (the same ``job`` and ``instance``: the
local Prometheus scrapes each slot through a relay, so a replaced process is a counter reset of
the same series). A query range that reaches back before the window's start then takes in the
predecessor's last sample, and ``rate`` extrapolates the buckets in which the predecessor had
counts (everything above 1 s for the slow 0.10.2) to the range's start while the buckets in
which it had none stay put: the fast build's p95 lands in (1000, 1500]. That is how 0.10.3 was
judged at 1,031 ms and 1,214 ms in staging and rolled back (the tutorial test, fresh-clone CI).
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from tests.support.prometheus import PromStack, carts_buckets

from sluice.adapters.sli.prometheus import PrometheusConnection, PrometheusSliProvider
from sluice.loadgen import LoadProfile, LoadRequest, run_load_sync
from sluice.loadgen.engine import rfc3339
from sluice.ports.backend import Placement, Slot
from sluice.ports.sli import SliQuery

pytestmark = [pytest.mark.prometheus, pytest.mark.slow, pytest.mark.timeout(180)]

PLACEMENT = Placement("sockshop", "qa", "carts")  # a stage of its own: the session's Prometheus is shared
JOB = "carts-sockshop-qa-canary"
SLOW, FAST = "docker.io/keptnexamples/carts:0.10.2", "docker.io/keptnexamples/carts:0.10.3"


def last_scrape(stack: PromStack, version: str) -> float:
    result = stack.wait_for(f'timestamp(carts_info{{job="{JOB}",version="{version}"}})', f"a scrape of {version}")
    return float(result[0]["value"][1])


def upper_bound(value_ms: float) -> float:
    """The upper bound of the carts histogram bucket holding ``value_ms``."""
    return next((b for b in carts_buckets() if value_ms <= b), float("inf"))


def test_a_candidate_is_measured_without_its_predecessor(prom_stack: PromStack) -> None:
    """The slow 0.10.2 serves a load in the canary slot, then 0.10.3 replaces it right after a
    scrape of 0.10.2 and serves a load over a window of 4.02 s: Prometheus' p95 of that window
    finds no more slow requests than the load generator saw (none, unless the machine stalled)."""
    stack = prom_stack
    url = stack.backend.deploy(PLACEMENT, Slot.CANARY, SLOW, 30.0)
    try:
        last_scrape(stack, "0.10.2")
        slow = run_load_sync(url, LoadProfile((LoadRequest("/carts/1/items"),), duration_s=2.0, rate=10.0, timeout_s=5.0))
        assert slow.requests > 0 and slow.error_rate == 0.0, slow.to_dict()
        # replace it right after one of its scrapes, so its last sample lies just before the window
        seen = last_scrape(stack, "0.10.2")
        deadline = time.monotonic() + 15.0
        while last_scrape(stack, "0.10.2") == seen and time.monotonic() < deadline:
            time.sleep(0.02)
        stack.backend.deploy(PLACEMENT, Slot.CANARY, FAST, 30.0)
        start = time.time()
        fast = run_load_sync(url, LoadProfile((LoadRequest("/carts/1/items"),), duration_s=3.0, rate=20.0, timeout_s=5.0))
        end = start + 4.02  # not whole seconds: a range rounded up would reach 0.98 s before the start
        time.sleep(max(0.0, end - time.time()))
        stack.wait_for(f'timestamp(carts_info{{job="{JOB}",version="0.10.3"}}) > {end:.3f}', "a scrape after the window")
        provider = PrometheusSliProvider(PrometheusConnection(stack.url), {}, timeout_s=10.0)
        [p95] = provider.fetch(SliQuery("sockshop", "qa", "carts", ("response_time_p95",), rfc3339(start), rfc3339(end),
                                        deployment="canary"))
    finally:
        stack.backend.scale_to_zero(PLACEMENT, Slot.CANARY)
    client_p95 = fast.response_time_p95
    assert p95.success and p95.value is not None and client_p95 is not None, (p95.message, fast.to_dict())
    print(f"\n0.10.3 after 0.10.2 in one slot: prometheus p95 {p95.value:.2f} ms, load generator p95 {client_p95} ms"
          f" (window {datetime.fromtimestamp(start).time()} + {end - start:.2f} s)")
    # every request's server time is part of its client time: the server's p95 cannot lie above
    # the bucket of the client's, nor above 1 s when the client saw 95 % of them within 1 s
    assert p95.value <= max(1000.0, upper_bound(client_p95)), (p95.value, client_p95)
