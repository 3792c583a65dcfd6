"""The test runner (health, functional, performance) against real local servers, and the carts example."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.carts import run_carts
from tests.support.httptarget import Reply, TargetServer, default_handler

from sluice.core.testspec import parse_test_spec
from sluice.errors import ValidationError
from sluice.services.testing import NO_TEST_MESSAGE, run_tests
from sluice.services.testspecs import load_test_spec

CARTS = Path(__file__).resolve().parents[3] / "examples" / "sockshop" / "carts"

SPEC = parse_test_spec({
    "health": {"wait": "2s"},
    "functional": [
        {"name": "echo", "method": "POST", "path": "/echo", "body": {"item": "sock"}, "expected_text": "sock"},
        {"path": "/"},
    ],
    "performance": {"rate": 50, "duration": "1s", "timeout": "1s",
                    "requests": [{"path": "/", "weight": 1}]},
})
BUILTIN = {"throughput", "error_rate", "response_time_avg", "response_time_p50", "response_time_p90",
           "response_time_p95", "response_time_p99"}


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


def test_no_strategy_passes_without_contacting_the_service(target: TargetServer) -> None:
    """An empty strategy is a pass that says no test ran, and sends nothing."""
    report = run_tests(SPEC, "", target.url, 10)
    assert report.passed and report.message == NO_TEST_MESSAGE
    assert target.requests == 0


def test_functional_passes_when_every_request_passes(target: TargetServer) -> None:
    """Functional: the health check, then every request in order; all pass → pass, with measurements."""
    report = run_tests(SPEC, "functional", target.url, 10)
    assert report.passed, report.message
    assert [o.name for o in report.outcomes] == ["health check", "echo", "GET /"]
    assert set(report.measurements) == BUILTIN | {"requests", "latency_histogram_us"}
    assert report.measurements["requests"] == 2  # what stands behind the values, for the evaluation
    assert sum(c for _, c in report.measurements["latency_histogram_us"]) == 2
    assert not report.used_default_spec and "spec: tests.yaml" in report.message


def test_functional_fails_on_status_or_text(target: TargetServer) -> None:
    """A wrong status or a missing expected text fails the test, and the message says which request and why."""
    spec = parse_test_spec({"functional": [
        {"path": "/status/500"},
        {"method": "POST", "path": "/echo", "body": "abc", "expected_text": "xyz"},
        {"path": "/"},
    ]})
    report = run_tests(spec, "functional", target.url, 10)
    assert not report.passed
    assert "2 of 3 request(s) failed" in report.message
    assert "GET /status/500: expected status 200, found 500" in report.message
    assert "expected the answer to contain 'xyz'" in report.message
    assert [o.passed for o in report.outcomes] == [True, False, False, True]


def test_default_spec_is_used_and_said(target: TargetServer) -> None:
    """Without a spec the default runs (health + GET /) and the report says the default was used."""
    report = run_tests(None, "functional", target.url, 10)
    assert report.passed and report.used_default_spec
    assert "the default test spec" in report.message
    assert [o.path for o in report.outcomes] == ["/health", "/"]


def test_health_check_waits_for_the_service() -> None:
    """The health check polls until the service answers the expected status."""
    calls = 0

    def handler(method: str, path: str, body: bytes) -> Reply:
        nonlocal calls
        if path == "/health":
            calls += 1
            return Reply(503 if calls < 3 else 200, b"")
        return default_handler(method, path, body)

    with TargetServer(handler) as server:
        report = run_tests(SPEC, "functional", server.url, 20)
    assert report.passed, report.message
    assert calls == 3


def test_unhealthy_service_fails_before_any_test(target: TargetServer) -> None:
    """A health check that never passes fails the test; no functional request is sent."""
    spec = parse_test_spec({"health": {"path": "/status/503", "wait": "1s"}, "functional": [{"path": "/"}]})
    report = run_tests(spec, "functional", target.url, 10)
    assert not report.passed
    assert "health check failed: GET /status/503: expected status 200, found 503" in report.message
    assert [o.path for o in report.outcomes] == ["/status/503"]


def test_performance_passes_under_the_error_limit(target: TargetServer) -> None:
    """Performance: the load runs, the builtin measurements and the load report come back."""
    report = run_tests(SPEC, "performance", target.url, 20)
    assert report.passed, report.message
    assert set(report.measurements) == BUILTIN | {"requests", "latency_histogram_us"}
    assert report.measurements["requests"] == 50
    assert sum(c for _, c in report.measurements["latency_histogram_us"]) == 50  # every latency, bounded buckets
    assert report.load is not None and report.load["requests"] == 50
    assert "50 requests (50 req/s for 1 s), error rate 0.0%" in report.message


def test_performance_fails_above_the_error_limit(target: TargetServer) -> None:
    """More errors than max_error_rate fails the performance test and names the error kinds."""
    spec = parse_test_spec({"performance": {"rate": 40, "duration": "1s", "max_error_rate": "10%",
                                            "requests": [{"path": "/", "weight": 1}, {"path": "/status/500", "weight": 1}]}})
    report = run_tests(spec, "performance", target.url, 20)
    assert not report.passed
    assert "error rate above the limit" in report.message and "status 500" in report.message
    assert report.measurements["error_rate"] > 0.1


def test_duration_setting_overrides_the_file(target: TargetServer) -> None:
    """The duration argument replaces the spec's duration."""
    report = run_tests(SPEC, "performance", target.url, 20, duration_s=0.4)
    assert report.load is not None and report.load["requests"] == 20


def test_missing_section_fails_with_a_reason(target: TargetServer) -> None:
    """A strategy whose section the spec lacks fails and says so (no silent pass)."""
    spec = parse_test_spec({})
    assert "declares no performance section" in run_tests(spec, "performance", target.url, 10).message
    assert "declares no functional requests" in run_tests(spec, "functional", target.url, 10).message


def test_load_that_cannot_fit_the_hard_limit_fails_before_starting(target: TargetServer) -> None:
    """A load longer than the hard limit is refused up front with the numbers."""
    spec = parse_test_spec({"performance": {"rate": 1, "duration": "60s", "requests": [{"path": "/"}]}})
    report = run_tests(spec, "performance", target.url, 10)
    assert not report.passed and "does not fit" in report.message
    assert target.requests == 1  # the health check only


def test_bad_input_is_a_validation_error() -> None:
    """An unknown strategy or a URL without scheme is the caller's error, not a failed test."""
    with pytest.raises(ValidationError, match="expected one of"):
        run_tests(SPEC, "chaos", "http://127.0.0.1:1", 10)
    with pytest.raises(ValidationError, match="base URL"):
        run_tests(SPEC, "functional", "localhost:8080", 10)


def test_functional_through_an_injected_client() -> None:
    """The health and functional requests use the injected httpx client (a mock transport here)."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, text="sock")

    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        report = run_tests(SPEC, "functional", "http://carts.test", 10, client=client)
    assert report.passed, report.message
    assert seen == ["GET /health", "POST /echo", "GET /"]


# --- the carts example, run as the tutorial's builds --------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _carts(*args: str) -> Iterator[str]:
    with run_carts(*args) as url:
        yield url


@pytest.fixture
def carts_0_10_2() -> Iterator[str]:
    yield from _carts("--app-version", "0.10.2", "--delay-ms", "1000")


@pytest.fixture
def carts_0_10_3() -> Iterator[str]:
    yield from _carts("--app-version", "0.10.3")


@pytest.mark.slow
def test_carts_functional_tests_pass_on_0_10_3(carts_0_10_3: str) -> None:
    """The carts tests.yaml functional requests (add an item, read it back) pass on 0.10.3."""
    spec = load_test_spec((CARTS / "tests.yaml").read_text(), "tests.yaml")
    report = run_tests(spec, "functional", carts_0_10_3, 60)
    assert report.passed, report.message


@pytest.mark.slow
def test_carts_0_10_2_is_slow_and_0_10_3_is_fast(carts_0_10_2: str, carts_0_10_3: str) -> None:
    """Under the carts performance profile, 0.10.2 measures p95 above 1,000 ms and 0.10.3 well below 600 ms."""
    spec = load_test_spec((CARTS / "tests.yaml").read_text(), "tests.yaml")
    slow = run_tests(spec, "performance", carts_0_10_2, 60, duration_s=3)
    fast = run_tests(spec, "performance", carts_0_10_3, 60, duration_s=3)
    assert slow.passed and fast.passed, (slow.message, fast.message)  # slow, but no errors
    assert slow.measurements["response_time_p95"] > 1000
    assert fast.measurements["response_time_p95"] < 300


def test_undelivered_load_fails_the_performance_test(monkeypatch: pytest.MonkeyPatch, target: TargetServer) -> None:
    """A load the generator could not deliver (requests dropped above the error limit) fails the test."""
    import dataclasses

    import sluice.services.testing as testing
    from sluice.core.testspec import PerformanceProfile
    from sluice.loadgen import LoadProfile

    real = testing.load_profile

    def narrow(profile: PerformanceProfile) -> LoadProfile:
        return dataclasses.replace(real(profile), max_connections=2)

    monkeypatch.setattr(testing, "load_profile", narrow)
    spec = parse_test_spec({"performance": {"rate": 40, "duration": "0.5s", "timeout": "3s",
                                            "requests": [{"path": "/delay/1500"}]}})
    report = run_tests(spec, "performance", target.url, 20)
    assert not report.passed
    assert "dropped" in report.message and "the declared load was not delivered" in report.message
