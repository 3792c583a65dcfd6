"""The tests.yaml model: parsing, every problem reported, the default spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.core.testspec import (
    DEFAULT_MAX_ERROR_RATE,
    LoadMode,
    TestSpec,
    default_test_spec,
    parse_duration,
    parse_test_spec,
)
from sluice.errors import ValidationError
from sluice.services.testspecs import load_test_spec

CARTS_TESTS = Path(__file__).resolve().parents[3] / "examples" / "sockshop" / "carts" / "tests.yaml"


def problems_of(data: object) -> tuple[str, ...]:
    with pytest.raises(ValidationError) as caught:
        parse_test_spec(data, "tests.yaml")
    assert caught.value.subject == "tests.yaml"
    return caught.value.problems


def test_full_spec_parses_every_section() -> None:
    """A spec with health, functional and performance sections becomes the matching typed spec."""
    spec = parse_test_spec(
        {
            "health": {"path": "/ready", "expected_status": 204, "wait": "5s", "timeout": "500ms"},
            "functional": [
                {"name": "add", "method": "post", "path": "/carts/1/items", "body": {"itemId": "a"},
                 "expected_status": 201, "expected_text": "a", "headers": {"X-Trace": 1}, "timeout": "2s"},
            ],
            "performance": {
                "mode": "constant-arrival-rate", "rate": 50, "duration": "2m", "timeout": 3,
                "max_error_rate": "5%", "requests": [{"path": "/", "weight": 3}, {"path": "/b"}],
            },
        }
    )
    assert (spec.health.path, spec.health.expected_status, spec.health.wait_s, spec.health.timeout_s) == (
        "/ready", 204, 5.0, 0.5)
    add = spec.functional[0]
    assert add.method == "POST" and add.body == '{"itemId":"a"}' and add.timeout_s == 2.0
    assert add.headers == {"X-Trace": "1", "Content-Type": "application/json"}
    assert spec.performance is not None
    assert spec.performance.mode is LoadMode.CONSTANT_ARRIVAL_RATE
    assert (spec.performance.rate, spec.performance.duration_s, spec.performance.timeout_s) == (50.0, 120.0, 3.0)
    assert spec.performance.max_error_rate == pytest.approx(0.05)
    assert [r.weight for r in spec.performance.requests] == [3.0, 1.0]
    assert not spec.is_default


def test_virtual_users_mode_takes_vus_and_think_time() -> None:
    """The virtual-users mode reads vus and think time and defaults the error limit to 10 %."""
    spec = parse_test_spec({"performance": {"mode": "virtual-users", "vus": 4, "think_time": "250ms",
                                            "duration": 10, "requests": [{"path": "/"}]}})
    assert spec.performance is not None
    assert (spec.performance.vus, spec.performance.think_time_s) == (4, 0.25)
    assert spec.performance.max_error_rate == DEFAULT_MAX_ERROR_RATE == 0.10


def test_every_problem_is_reported_with_field_and_expectation() -> None:
    """All problems of one file come back together, each naming its field and what was expected."""
    problems = problems_of({
        "extra": 1,
        "health": {"path": "health", "expected_status": 700},
        "functional": [{"method": "FETCH", "path": "/a", "expected_text": 3}, "nope"],
        "performance": {"mode": "constant-arrival-rate", "rate": -1, "vus": 3, "duration": "forever",
                        "max_error_rate": 2, "requests": [{"path": "/", "weight": 0}]},
    })
    text = "\n".join(problems)
    for expected in (
        "extra: unknown field (valid: functional, health, jmeter, performance)",
        "health.path: expected a URL path starting with '/'",
        "health.expected_status: expected an HTTP status code 100..599, found 700",
        "functional[0].method: expected one of",
        "functional[0].expected_text: expected a string",
        "functional[1]: expected a mapping",
        "performance.rate: expected",
        "performance.vus: only valid for mode virtual-users",
        "performance.duration: expected a duration like 30s",
        "performance.max_error_rate: expected a fraction 0..1 or a percentage like '10%', found 2",
        "performance.requests[0].weight: expected a number > 0, found 0",
    ):
        assert expected in text
    assert len(problems) == 11


@pytest.mark.parametrize(
    ("performance", "expected"),
    [
        ({"duration": "1m", "requests": [{"path": "/"}]}, "performance.rate: required for mode constant-arrival-rate"),
        ({"mode": "virtual-users", "duration": "1m", "requests": [{"path": "/"}]}, "performance.vus: required"),
        ({"rate": 5, "requests": [{"path": "/"}]}, "performance.duration: required"),
        ({"rate": 5, "duration": "1m"}, "performance.requests: expected a non-empty list"),
        ({"mode": "open", "rate": 5, "duration": "1m", "requests": [{"path": "/"}]}, "performance.mode: expected one of"),
        ({"rate": 5, "duration": "2h", "requests": [{"path": "/"}]}, "performance.duration: expected more than 0 s and at most 3600 s"),
    ],
)
def test_performance_requirements(performance: dict[str, object], expected: str) -> None:
    """Each missing or invalid performance setting is named."""
    assert any(expected in p for p in problems_of({"performance": performance}))


def test_not_a_mapping_is_rejected() -> None:
    """A document that is not a mapping is rejected naming what was found."""
    assert "found list" in problems_of([1, 2])[0]


def test_empty_document_gives_health_only_spec() -> None:
    """An empty mapping is a spec with just the default health check."""
    spec = parse_test_spec({})
    assert spec == TestSpec()
    assert spec.health.path == "/health" and spec.functional == () and spec.performance is None


def test_default_spec_is_documented_and_marked() -> None:
    """The default spec checks /health for 200 and GET / for 200, and says it is the default."""
    spec = default_test_spec()
    assert spec.is_default
    assert (spec.health.path, spec.health.expected_status) == ("/health", 200)
    assert [(r.method, r.path, r.expected_status) for r in spec.functional] == [("GET", "/", 200)]
    assert spec.performance is not None and spec.performance.rate == 20.0
    assert "default test spec" in spec.source


def test_duration_override_replaces_only_the_duration() -> None:
    """A duration setting replaces the file's duration and keeps everything else."""
    spec = default_test_spec()
    shorter = spec.with_duration(2.5)
    assert shorter.performance is not None and spec.performance is not None
    assert shorter.performance.duration_s == 2.5
    assert shorter.performance.rate == spec.performance.rate
    with pytest.raises(ValidationError):
        spec.with_duration(0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("7", 7.0),
     ("x", None), (True, None), (None, None), ("-1s", None)],
)
def test_parse_duration(value: object, seconds: float | None) -> None:
    """Durations are numbers of seconds or strings with ms, s, m or h."""
    assert parse_duration(value) == seconds


def test_yaml_loader_reports_syntax_and_empty_files() -> None:
    """The YAML edge names the line of a syntax error and refuses an empty file."""
    with pytest.raises(ValidationError, match=r"line \d+, column \d+: not valid YAML"):
        load_test_spec("health:\n  path: [unclosed\n", "tests.yaml")
    with pytest.raises(ValidationError, match="empty"):
        load_test_spec("", "tests.yaml")


def test_carts_example_parses() -> None:
    """The carts example tests.yaml is valid: three functional requests and a 20 req/s profile."""
    spec = load_test_spec(CARTS_TESTS.read_text(), str(CARTS_TESTS))
    assert len(spec.functional) == 3
    assert spec.performance is not None and spec.performance.rate == 20.0
