"""The builtin SLI provider and the SLI provider registry."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from sluice.adapters.sli.builtin import INDICATORS, BuiltinSliProvider
from sluice.errors import RetryableError
from sluice.ports.sli import SliQuery

STORED = {
    ("sockshop", "staging", "carts", "ctx-1"): {
        "throughput": 19.9, "error_rate": 0.0, "response_time_p50": 1002.1, "response_time_p90": 1003.0,
        "response_time_p95": 1004.2, "response_time_p99": 1010.0, "response_time_avg": 1002.5,
    },
    ("sockshop", "dev", "carts", "ctx-1"): {"throughput": 5.0, "error_rate": 0.0},
}


def load(project: str, stage: str, service: str, context: str) -> Mapping[str, float] | None:
    return STORED.get((project, stage, service, context))


def query(*indicators: str, stage: str = "staging", context: str = "ctx-1") -> SliQuery:
    return SliQuery("sockshop", stage, "carts", indicators, "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z",
                    context=context)


def test_returns_stored_values_in_order() -> None:
    """Each requested builtin indicator comes back with the stored value, in the requested order."""
    values = BuiltinSliProvider(load).fetch(query("response_time_p95", "throughput", "error_rate"))
    assert [(v.metric, v.value, v.success) for v in values] == [
        ("response_time_p95", 1004.2, True), ("throughput", 19.9, True), ("error_rate", 0.0, True)]


def test_every_builtin_indicator_is_answered() -> None:
    """All seven builtin indicators are answered from a performance test's measurements."""
    values = BuiltinSliProvider(load).fetch(query(*INDICATORS))
    assert all(v.success and v.value is not None for v in values)
    assert len(values) == 7


def test_unknown_indicator_fails_alone_with_the_valid_names() -> None:
    """An indicator the provider does not know fails with a message listing the valid ones; the others pass."""
    values = BuiltinSliProvider(load).fetch(query("cpu_usage", "throughput"))
    assert values[0].success is False and values[0].value is None
    assert "cpu_usage: not a builtin indicator" in values[0].message and "response_time_p95" in values[0].message
    assert values[1].success is True


def test_no_measurements_says_which_and_why() -> None:
    """Without stored measurements every indicator fails, naming the service, stage and context."""
    values = BuiltinSliProvider(load).fetch(query("response_time_p95", context="other"))
    assert values[0].success is False
    assert "no test measurements stored for sockshop/staging/carts, context other" in values[0].message


def test_indicator_not_measured_by_that_test() -> None:
    """An indicator the stored test did not measure fails and names what was measured."""
    values = BuiltinSliProvider(load).fetch(query("response_time_p95", stage="dev"))
    assert values[0].success is False
    assert "not measured" in values[0].message and "error_rate, throughput" in values[0].message


def test_broken_store_fails_each_indicator_but_retryable_propagates() -> None:
    """A store that cannot be read yields failed values with the reason; a retryable error is raised for a retry."""

    def broken(*_: str) -> Mapping[str, float] | None:
        raise OSError("disk gone")

    values = BuiltinSliProvider(broken).fetch(query("throughput"))
    assert values[0].success is False and "disk gone" in values[0].message

    def busy(*_: str) -> Mapping[str, float] | None:
        raise RetryableError("store busy")

    with pytest.raises(RetryableError):
        BuiltinSliProvider(busy).fetch(query("throughput"))


def test_non_numeric_stored_value_is_not_a_value() -> None:
    """A stored value that is not a finite number is reported as could-not-measure, never passed on."""
    values = BuiltinSliProvider(lambda *_: {"throughput": float("nan")}).fetch(query("throughput"))
    assert values[0].success is False and "not a finite number" in values[0].message

