"""The prometheus SLI provider against a real Prometheus scraping carts under load.

The provider's values are compared with the load generator's own measurements. The two do not
measure the same thing exactly: the load generator times each request at the client, carts
times it in the server, and Prometheus estimates a quantile by linear interpolation inside a
histogram bucket. So "agrees" means: within one bucket of carts' histogram.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from tests.support.prometheus import PromStack, carts_buckets, require_prometheus

from sluice.adapters.sli.prometheus import PrometheusConnection, PrometheusSliProvider
from sluice.embedded.prometheus import ensure_prometheus, stop_prometheus
from sluice.loadgen import LoadProfile, LoadReport, LoadRequest, run_load_sync
from sluice.ports.backend import Placement, Slot
from sluice.ports.sli import SliQuery, SliValue

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

PLACEMENT = Placement("sockshop", "staging", "carts")
JOB = "carts-sockshop-staging-canary"
INDICATORS = ("throughput", "error_rate", "response_time_p50", "response_time_p90", "response_time_p95")
BUCKETS = carts_buckets()


@dataclass
class Measured:
    report: LoadReport
    values: dict[str, SliValue]
    provider: PrometheusSliProvider


def bucket(value: float) -> tuple[float, float]:
    """The (lower, upper] bounds of the carts histogram bucket holding ``value``."""
    lower = 0.0
    for upper in BUCKETS:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, float("inf")


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def window_query(report: LoadReport, *indicators: str, **filters: str) -> SliQuery:
    return SliQuery("sockshop", "staging", "carts", indicators or INDICATORS, report.start, report.end,
                    deployment="canary", filters=filters)


def measure(stack: PromStack, image: str, version: str, seconds: float = 5.0) -> Measured:
    """Deploy ``image`` as the staging canary, load it at 20 req/s, fetch every built-in SLI."""
    url = stack.backend.deploy(PLACEMENT, Slot.CANARY, image, 30.0)
    stack.wait_for(f'carts_info{{job="{JOB}",version="{version}"}}', f"Prometheus scraping canary {version}")
    profile = LoadProfile((LoadRequest("/carts/1/items"),), duration_s=seconds, rate=20.0, timeout_s=5.0)
    report = run_load_sync(url, profile)
    assert report.requests > 0 and report.error_rate == 0.0, report.to_dict()
    # the samples up to `end` are in once Prometheus has scraped the canary after `end`
    stack.wait_for(f'timestamp(carts_info{{job="{JOB}",version="{version}"}}) > {epoch(report.end):.3f}',
                   "a scrape after the load", timeout_s=15.0)
    provider = PrometheusSliProvider(PrometheusConnection(stack.url), {}, timeout_s=10.0)
    values = provider.fetch(window_query(report))
    figures = ", ".join(f"{v.metric}={v.value if v.value is None else round(v.value, 2)}" for v in values)
    print(f"\n{version}: load generator p50={report.response_time_p50} p95={report.response_time_p95} "
          f"throughput={report.throughput:.2f}/s; prometheus {figures}")
    return Measured(report, {v.metric: v for v in values}, provider)


@pytest.fixture(scope="module")
def fast(prom_stack: PromStack) -> Measured:
    return measure(prom_stack, "docker.io/keptnexamples/carts:0.10.3", "0.10.3")


def test_every_builtin_indicator_is_measured(fast: Measured) -> None:
    """All five built-ins come back as numbers for a canary under load."""
    assert all(v.success for v in fast.values.values()), [v.message for v in fast.values.values()]
    assert fast.values["error_rate"].value == 0.0


def test_fast_build_p95_agrees_with_the_load_generator(fast: Measured) -> None:
    """carts 0.10.3: the server-side p95 estimate lies at or below the bucket of the client's p95
    and on the same side of the tutorial's 600 ms objective.

    With no delay, the client's p95 is mostly the client's and the machine's own overhead
    (a few ms when idle, tens of ms on a busy CI machine), which the server never sees; so
    only the upper side is a sound check here. The slow builds below check both sides."""
    client_p95 = fast.report.response_time_p95
    prom_p95 = fast.values["response_time_p95"].value
    assert client_p95 is not None and prom_p95 is not None
    lower, upper = bucket(client_p95)
    # the server's time is part of the client's: its estimate cannot lie above the client's bucket
    assert 0 < prom_p95 <= upper, (prom_p95, client_p95, (lower, upper))
    assert (prom_p95 < 600) == (client_p95 < 600)


def test_throughput_agrees_with_the_load_generator(fast: Measured) -> None:
    """The request rate Prometheus computes is close to the rate the load generator achieved."""
    prom = fast.values["throughput"].value
    assert prom is not None
    assert fast.report.throughput * 0.6 <= prom <= fast.report.throughput * 1.4, (prom, fast.report.throughput)


@pytest.mark.parametrize(
    ("image", "version"),
    [("docker.io/keptnexamples/carts:0.10.2", "0.10.2"), ("test.local/carts:delay-1600", "0.0.0-delay1600")],
)
def test_slow_build_p95_within_one_bucket(prom_stack: PromStack, fast: Measured, image: str, version: str) -> None:
    """A build answering 1 s / 1.6 s late: Prometheus' p95 is within one histogram bucket of the
    load generator's, and the tutorial verdict (p95 < 600 ms) is the same from both.

    The delays are chosen in the middle of carts' buckets, (1000, 1500] and (1500, 2000], so a
    busy machine's client-side overhead (up to a few hundred ms) cannot move the client's p95
    out of the server's bucket; smaller delays (200 ms) proved flaky under load for that reason."""
    slow = measure(prom_stack, image, version)
    client_p95 = slow.report.response_time_p95
    prom_p95 = slow.values["response_time_p95"].value
    assert client_p95 is not None and prom_p95 is not None, slow.values["response_time_p95"].message
    lower, upper = bucket(client_p95)
    assert abs(prom_p95 - client_p95) <= upper - lower, (prom_p95, client_p95, (lower, upper))
    assert (prom_p95 < 600) == (client_p95 < 600)
    p50 = slow.values["response_time_p50"].value
    assert p50 is not None and p50 <= prom_p95


def test_metric_that_does_not_exist(prom_stack: PromStack, fast: Measured) -> None:
    """A query over a metric nobody exports fails its indicator as an empty result."""
    p = PrometheusSliProvider(PrometheusConnection(prom_stack.url), {"x": "sum(rate(no_such_metric_total[$DURATION_SECONDS]))"})
    [value] = p.fetch(window_query(fast.report, "x"))
    assert not value.success and "empty result" in value.message and "no_such_metric_total" in value.message


def test_bad_promql(prom_stack: PromStack, fast: Measured) -> None:
    """Invalid PromQL fails its indicator with Prometheus' parse error."""
    p = PrometheusSliProvider(PrometheusConnection(prom_stack.url), {"x": "sum(rate(http_requests_total[$DURATION_SECONDS]"})
    [value] = p.fetch(window_query(fast.report, "x"))
    assert not value.success and "bad_data" in value.message and "parse error" in value.message


def test_heavy_query_times_out(prom_stack: PromStack, fast: Measured) -> None:
    """A query heavier than the timeout fails its indicator as timed out; it fails no other
    indicator of the fetch for another reason, and the provider still answers afterwards.

    (21.6 million subquery steps take seconds, and Prometheus may go on computing them after the
    timeout: on a busy 2-core machine the light query fetched right after can itself run out of
    its half second — seen in a CI run. So the light one may time out too, but only time out; and
    once Prometheus has finished, the same provider answers it.)"""
    p = PrometheusSliProvider(
        PrometheusConnection(prom_stack.url), {"heavy": "count_over_time(vector(1)[6h:1ms])"}, timeout_s=0.5, retries=0
    )
    heavy, error_rate = p.fetch(window_query(fast.report, "heavy", "error_rate"))
    assert not heavy.success and "timed out" in heavy.message
    assert error_rate.success or "timed out" in error_rate.message, error_rate.message
    deadline = time.monotonic() + 60
    while not (after := p.fetch(window_query(fast.report, "error_rate"))[0]).success and time.monotonic() < deadline:
        assert "timed out" in after.message, after.message
        time.sleep(0.5)
    assert after.success, after.message


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A 127.0.0.1 socket that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    sock.close()


def test_server_that_never_answers_times_out(silent_server: str, fast: Measured) -> None:
    """A server that accepts and never answers gives "timed out" for each indicator, no exception."""
    p = PrometheusSliProvider(PrometheusConnection(silent_server), {}, timeout_s=0.5, retries=0)
    values = p.fetch(window_query(fast.report, "throughput", "response_time_p95"))
    assert [v.success for v in values] == [False, False]
    assert all("timed out" in v.message and v.metric in v.message for v in values)


def test_stopped_server_is_unreachable(tmp_path: object, fast: Measured) -> None:
    """After stop_prometheus the provider reports the server unreachable for every indicator."""
    require_prometheus()
    state = f"{tmp_path}/stopped"
    url = ensure_prometheus(state, 0, watch=False)
    p = PrometheusSliProvider(PrometheusConnection(url), {"one": "vector(1)"}, timeout_s=5.0, retries=1)
    try:
        assert p.fetch(window_query(fast.report, "one"))[0].value == 1.0  # it answered while running
    finally:
        assert stop_prometheus(state) is True
    values = p.fetch(window_query(fast.report, "one", "response_time_p95"))
    assert [v.success for v in values] == [False, False]
    assert all("unreachable" in v.message and url in v.message for v in values)


def test_hostile_filter_values_cannot_change_the_query(prom_stack: PromStack, fast: Measured) -> None:
    """A filter value that tries to break out of its string only ever matches as a literal."""
    template = 'sum(increase(http_requests_total{job="$SERVICE-$PROJECT-$STAGE-$DEPLOYMENT",handler="$handler"}[$DURATION_SECONDS]))'
    p = PrometheusSliProvider(PrometheusConnection(prom_stack.url), {"requests": template})
    [honest] = p.fetch(window_query(fast.report, "requests", handler="/carts/{id}/items"))
    assert honest.success and honest.value is not None and honest.value > 0
    for hostile in ('"}[1m])) or vector(1) #', '\\"} or vector(1)', "x\n}) or vector(1"):
        [value] = p.fetch(window_query(fast.report, "requests", handler=hostile))
        assert not value.success and "empty result" in value.message, value  # parsed fine, matched nothing
    bare = PrometheusSliProvider(PrometheusConnection(prom_stack.url), {"r": "sum by ($by) (http_requests_total)"})
    [value] = bare.fetch(window_query(fast.report, "r", by="handler) (up) or vector(1"))
    assert not value.success and "outside a string" in value.message


def test_replaced_canary_is_scraped_under_the_same_job(prom_stack: PromStack, fast: Measured) -> None:
    """Replacing the canary's image keeps its job; the new process is scraped within seconds."""
    prom_stack.backend.deploy(PLACEMENT, Slot.CANARY, "test.local/carts:replaced", 30.0)
    began = time.monotonic()
    prom_stack.wait_for(f'carts_info{{job="{JOB}",version="0.0.0-replaced"}}', "the replaced canary", timeout_s=15.0)
    print(f"replaced canary scraped after {time.monotonic() - began:.1f} s")


def test_example_sli_yaml_measures_the_canary(prom_stack: PromStack, fast: Measured) -> None:
    """examples/sockshop/sli.yaml, loaded through the service edge, gives the same p95 as the built-in."""
    from sluice.services.sli_config import load_sli_config

    path = Path(__file__).resolve().parents[4] / "examples" / "sockshop" / "sli.yaml"
    config = load_sli_config(path.read_text(), str(path))
    p = PrometheusSliProvider(PrometheusConnection(prom_stack.url), config)
    values = {v.metric: v for v in p.fetch(window_query(fast.report))}
    assert all(v.success for v in values.values()), [v.message for v in values.values()]
    assert values["error_rate"].value == 0.0  # no 5xx: (errors or vector(0)) / requests = 0, measured
    builtin_p95 = fast.values["response_time_p95"].value
    assert builtin_p95 is not None and values["response_time_p95"].value == pytest.approx(builtin_p95, rel=0.05)
