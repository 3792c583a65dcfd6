"""The builtin SLI provider says what stands behind each value: the request count, and the latency
histogram behind the response times — or nothing when the test run did not store them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.adapters.sli.builtin import BuiltinSliProvider
from sluice.ports.sli import SliQuery

RUN: dict[str, Any] = {
    "throughput": 50.0, "error_rate": 0.0, "response_time_p95": 6.1, "requests": 300,
    "latency_histogram_us": [[4500, 100], [5500, 180], [6100, 20]],
}


def fetch(stored: Mapping[str, Any] | None, *names: str) -> list[dict[str, object]]:
    provider = BuiltinSliProvider(lambda *_: stored)
    return [v.to_dict() for v in provider.fetch(SliQuery("p", "s", "svc", names, "", "", context="c"))]


def test_samples_on_every_indicator_and_the_histogram_on_latencies() -> None:
    """Every value carries the request count; response times carry the histogram in milliseconds."""
    p95, err = fetch(RUN, "response_time_p95", "error_rate")
    assert p95["samples"] == 300 and err["samples"] == 300
    assert p95["distribution"] == {"buckets": [[4.5, 100], [5.5, 180], [6.1, 20]]}
    assert "distribution" not in err


def test_older_runs_without_samples_give_plain_values() -> None:
    """A stored run without count or histogram (older records): the value alone, exactly as before."""
    (p95,) = fetch({"response_time_p95": 6.1}, "response_time_p95")
    assert p95 == {"metric": "response_time_p95", "value": 6.1, "success": True, "message": ""}


def test_malformed_count_or_histogram_is_dropped_not_guessed() -> None:
    """A malformed count or histogram is left out; the value itself still comes back."""
    (p95,) = fetch({**RUN, "requests": "many", "latency_histogram_us": [[1, "x"]]}, "response_time_p95")
    assert p95["value"] == 6.1 and "samples" not in p95 and "distribution" not in p95


def test_not_measured_names_only_indicators() -> None:
    """The "it measured …" hint lists indicators, not the count or the histogram."""
    (p99,) = fetch(RUN, "response_time_p99")
    assert p99["success"] is False and "requests" not in str(p99["message"]) and "latency_histogram" not in str(p99["message"])
