"""The test spec of a stage/service (``tests.yaml``): health check, functional requests, load profile.

Pure: parses an already-loaded mapping (the YAML edge is ``sluice.services.testspecs``) and
reports every problem at once in one ``ValidationError``, each naming the field, what was
expected and what was found. The format is documented in ``docs/tests-format.md``::

    health:        {path: /health, expected_status: 200, wait: 30s}
    functional:
      - {name: add item, method: POST, path: /carts/1/items, body: {itemId: a1}, expected_status: 201}
      - {method: GET, path: /carts/1/items, expected_text: a1}
    performance:
      mode: constant-arrival-rate      # or virtual-users (vus, think_time)
      rate: 20                         # requests per second
      duration: 60s
      max_error_rate: 10%              # default 10 %
      timeout: 5s                      # per request
      requests:
        - {method: GET, path: /carts/1/items, weight: 4}
        - {method: POST, path: /carts/1/items, body: {itemId: a1}, weight: 1}

Keptn's JMeter plans may stand in for the requests (``jmeter`` section, Keptn's layout; the
plans themselves are resources added under ``jmeter/<name>.jmx``)::

    jmeter:
      health: jmeter/basiccheck.jmx    # run after the health check, before either strategy's plan
      functional: jmeter/functional.jmx
      performance: jmeter/load.jmx
      max_error_rate: 10%              # performance plans (default 10 %); other plans: no errors
      properties: {VUCount: 10, LoopCount: 100}   # extra -J properties (server, port, protocol are Sluice's)

A stage without a spec gets :func:`default_test_spec` (health ``/health`` → 200, functional
``GET /`` → 200, performance 20 req/s of ``GET /`` for 30 s), and says so.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import ValidationError

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DEFAULT_MAX_ERROR_RATE = 0.10
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_HEALTH_WAIT_S = 30.0
#: Upper bounds that keep one test bounded (a typo must not start a day-long load).
MAX_DURATION_S = 3600.0
MAX_RATE = 100_000.0
MAX_VUS = 10_000

#: How the default spec names itself in messages (the "said so" of a stage without tests.yaml).
DEFAULT_SPEC_SOURCE = (
    "the default test spec (no tests.yaml: health GET /health → 200; functional GET / → 200; "
    "performance 20 req/s of GET / for 30 s)"
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class LoadMode(enum.StrEnum):
    """Open loop at a fixed arrival rate, or closed loop with virtual users."""

    CONSTANT_ARRIVAL_RATE = "constant-arrival-rate"
    VIRTUAL_USERS = "virtual-users"


@dataclass(frozen=True)
class HealthCheck:
    """``GET path`` must answer ``expected_status``; it is polled for up to ``wait_s`` seconds."""

    path: str = "/health"
    expected_status: int = 200
    wait_s: float = DEFAULT_HEALTH_WAIT_S
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request and what its answer must be. ``expected_text`` is a substring of the body.

    ``weight`` only matters in a performance request mix, ``timeout_s`` only in the functional
    list (a load uses its profile's timeout). ``body`` is the exact text sent
    (a mapping or list in YAML is sent as JSON with ``Content-Type: application/json``).
    """

    path: str
    method: str = "GET"
    name: str = ""
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    expected_status: int = 200
    expected_text: str | None = None
    weight: float = 1.0
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def label(self) -> str:
        return self.name or f"{self.method} {self.path}"


@dataclass(frozen=True)
class PerformanceProfile:
    """The load: a mode, its rate or virtual users, a duration, a weighted request mix and limits."""

    requests: tuple[RequestSpec, ...]
    duration_s: float
    mode: LoadMode = LoadMode.CONSTANT_ARRIVAL_RATE
    rate: float = 20.0
    vus: int = 10
    think_time_s: float = 0.0
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    timeout_s: float = DEFAULT_TIMEOUT_S


#: A JMeter plan's resource URI (Keptn's layout: ``jmeter/<name>.jmx``).
JMX_URI = re.compile(r"^jmeter/[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.jmx$")
#: ``-J`` properties Sluice sets itself (the target), as Keptn's jmeter-service did.
JMETER_TARGET_PROPERTIES = ("server", "port", "protocol")
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")


@dataclass(frozen=True)
class JMeterPlans:
    """The JMeter plans of a spec by role (resource URIs), their error limit and extra properties."""

    health: str | None = None
    functional: str | None = None
    performance: str | None = None
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    properties: Mapping[str, str] = field(default_factory=dict)

    def plans(self, strategy: str) -> tuple[str, ...]:
        """The plans a strategy runs, in order (the health plan first)."""
        own = self.functional if strategy == "functional" else self.performance if strategy == "performance" else None
        return tuple(p for p in (self.health, own) if p)


@dataclass(frozen=True)
class TestSpec:
    """A whole ``tests.yaml``. ``source`` names where it came from (for messages);
    ``is_default`` is True for :func:`default_test_spec`."""

    __test__ = False
    health: HealthCheck = field(default_factory=HealthCheck)
    functional: tuple[RequestSpec, ...] = ()
    performance: PerformanceProfile | None = None
    source: str = "tests.yaml"
    is_default: bool = False
    jmeter: JMeterPlans | None = None

    def with_duration(self, duration_s: float) -> TestSpec:
        """The same spec with the performance duration replaced (a setting overrides the file)."""
        if self.performance is None:
            return self
        if not 0 < duration_s <= MAX_DURATION_S:
            raise ValidationError("duration override", [f"expected 0 < seconds <= {MAX_DURATION_S:g}, found {duration_s}"])
        return dataclasses.replace(self, performance=dataclasses.replace(self.performance, duration_s=duration_s))


def default_test_spec() -> TestSpec:
    """The documented default for a stage without ``tests.yaml`` (see ``docs/tests-format.md``)."""
    root = RequestSpec(path="/", method="GET", expected_status=200)
    return TestSpec(
        health=HealthCheck(),
        functional=(root,),
        performance=PerformanceProfile(requests=(root,), duration_s=30.0, rate=20.0),
        source=DEFAULT_SPEC_SOURCE,
        is_default=True,
    )


# --- parsing --------------------------------------------------------------------------------


def parse_duration(value: object) -> float | None:
    """Seconds from a number (seconds) or a string like ``500ms``, ``30s``, ``2m``, ``1h``; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None


def _unknown(where: str, data: Mapping[str, Any], known: set[str], problems: list[str]) -> None:
    for key in data:
        if key not in known:
            field_name = f"{where}.{key}" if where else key
            problems.append(f"{field_name}: unknown field (valid: {', '.join(sorted(known))})")


def _duration(where: str, value: object, problems: list[str], low: float, high: float) -> float | None:
    seconds = parse_duration(value)
    if seconds is None:
        problems.append(f"{where}: expected a duration like 30s, 500ms, 2m or a number of seconds, found {value!r}")
        return None
    if not low < seconds <= high:
        problems.append(f"{where}: expected more than {low:g} s and at most {high:g} s, found {value!r}")
        return None
    return seconds


def _status(where: str, value: object, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        problems.append(f"{where}: expected an HTTP status code 100..599, found {value!r}")
        return None
    return value


def _path(where: str, value: object, problems: list[str]) -> str | None:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        problems.append(f"{where}: expected a URL path starting with '/' and without spaces, found {value!r}")
        return None
    return value


def _number(where: str, value: object, problems: list[str], low: float, high: float, *, integer: bool = False) -> float | None:
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
        problems.append(f"{where}: expected {'an integer' if integer else 'a number'} in {low:g}..{high:g}, found {value!r}")
        return None
    if not low <= value <= high:
        problems.append(f"{where}: expected {low:g}..{high:g}, found {value!r}")
        return None
    return float(value)


def _fraction(where: str, value: object, problems: list[str]) -> float | None:
    """A fraction 0..1, or a percentage string like ``10%``."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100.0
        except ValueError:
            number = -1.0
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        problems.append(f"{where}: expected a fraction 0..1 or a percentage like '10%', found {value!r}")
        return None
    return number


def _request(where: str, data: object, problems: list[str], *, weighted: bool) -> RequestSpec | None:
    if not isinstance(data, Mapping):
        problems.append(f"{where}: expected a mapping with at least 'path', found {type(data).__name__} {data!r}")
        return None
    known = {"name", "method", "path", "body", "headers", "expected_status", "expected_text"}
    known.add("weight" if weighted else "timeout")
    _unknown(where, data, known, problems)
    start = len(problems)
    path = _path(f"{where}.path", data.get("path"), problems)
    method = data.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        problems.append(f"{where}.method: expected one of {', '.join(sorted(METHODS))}, found {method!r}")
        method = "GET"
    name = data.get("name", "")
    if not isinstance(name, str):
        problems.append(f"{where}.name: expected a string, found {name!r}")
    headers_raw = data.get("headers", {})
    headers: dict[str, str] = {}
    if not isinstance(headers_raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool) for k, v in headers_raw.items()
    ):
        problems.append(f"{where}.headers: expected a mapping of header names to strings, found {headers_raw!r}")
    else:
        headers = {k: str(v) for k, v in headers_raw.items()}
    body_raw = data.get("body")
    body: str | None = None
    if isinstance(body_raw, Mapping | list):
        body = json.dumps(body_raw, separators=(",", ":"))
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body_raw, str):
        body = body_raw
    elif body_raw is not None:
        problems.append(f"{where}.body: expected a string, a mapping or a list, found {body_raw!r}")
    status = _status(f"{where}.expected_status", data.get("expected_status", 200), problems)
    text = data.get("expected_text")
    if text is not None and not isinstance(text, str):
        problems.append(f"{where}.expected_text: expected a string (a substring of the answer), found {text!r}")
    weight = 1.0
    if weighted:
        value = _number(f"{where}.weight", data.get("weight", 1), problems, 0.0, 1e6)
        if value is not None and value <= 0:
            problems.append(f"{where}.weight: expected a number > 0, found {data.get('weight')!r}")
        weight = value or 0.0
    timeout = DEFAULT_TIMEOUT_S
    if not weighted and "timeout" in data:
        timeout = _duration(f"{where}.timeout", data["timeout"], problems, 0.0, 300.0) or DEFAULT_TIMEOUT_S
    if len(problems) > start or path is None or status is None:
        return None
    return RequestSpec(
        path=path, method=method.upper(), name=name if isinstance(name, str) else "", body=body, headers=headers,
        expected_status=status, expected_text=text, weight=weight, timeout_s=timeout,
    )


def _health(data: object, problems: list[str]) -> HealthCheck:
    if data is None:
        return HealthCheck()
    if not isinstance(data, Mapping):
        problems.append(f"health: expected a mapping (path, expected_status, wait, timeout), found {data!r}")
        return HealthCheck()
    _unknown("health", data, {"path", "expected_status", "wait", "timeout"}, problems)
    path = _path("health.path", data.get("path", "/health"), problems) or "/health"
    status = _status("health.expected_status", data.get("expected_status", 200), problems) or 200
    wait = _duration("health.wait", data.get("wait", DEFAULT_HEALTH_WAIT_S), problems, -1e-9, MAX_DURATION_S)
    timeout = _duration("health.timeout", data.get("timeout", DEFAULT_TIMEOUT_S), problems, 0.0, 300.0)
    return HealthCheck(
        path=path, expected_status=status, wait_s=DEFAULT_HEALTH_WAIT_S if wait is None else wait,
        timeout_s=timeout or DEFAULT_TIMEOUT_S,
    )


def _performance(data: object, problems: list[str]) -> PerformanceProfile | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        problems.append(f"performance: expected a mapping (mode, rate or vus, duration, requests, ...), found {data!r}")
        return None
    known = {"mode", "rate", "vus", "think_time", "duration", "requests", "max_error_rate", "timeout"}
    _unknown("performance", data, known, problems)
    start = len(problems)
    mode_raw = data.get("mode", LoadMode.CONSTANT_ARRIVAL_RATE.value)
    try:
        mode = LoadMode(mode_raw)
    except ValueError:
        problems.append(f"performance.mode: expected one of {', '.join(m.value for m in LoadMode)}, found {mode_raw!r}")
        mode = LoadMode.CONSTANT_ARRIVAL_RATE
    rate = 20.0
    vus = 10
    think = 0.0
    if mode is LoadMode.CONSTANT_ARRIVAL_RATE:
        if "rate" not in data:
            problems.append("performance.rate: required for mode constant-arrival-rate (requests per second), missing")
        else:
            value = _number("performance.rate", data["rate"], problems, 0.0, MAX_RATE)
            if value is not None and value <= 0:
                problems.append(f"performance.rate: expected a number > 0, found {data['rate']!r}")
            rate = value or 0.0
        for key in ("vus", "think_time"):
            if key in data:
                problems.append(f"performance.{key}: only valid for mode virtual-users, found it with constant-arrival-rate")
    else:
        if "vus" not in data:
            problems.append("performance.vus: required for mode virtual-users (number of virtual users), missing")
        else:
            vus = int(_number("performance.vus", data["vus"], problems, 1, MAX_VUS, integer=True) or 1)
        if "think_time" in data:
            think = _duration("performance.think_time", data["think_time"], problems, -1e-9, 3600.0) or 0.0
        if "rate" in data:
            problems.append("performance.rate: only valid for mode constant-arrival-rate, found it with virtual-users")
    duration = None
    if "duration" not in data:
        problems.append("performance.duration: required (e.g. 60s), missing")
    else:
        duration = _duration("performance.duration", data["duration"], problems, 0.0, MAX_DURATION_S)
    max_error = DEFAULT_MAX_ERROR_RATE
    if "max_error_rate" in data:
        max_error = _fraction("performance.max_error_rate", data["max_error_rate"], problems) or 0.0
    timeout = _duration("performance.timeout", data.get("timeout", DEFAULT_TIMEOUT_S), problems, 0.0, 300.0)
    raw_requests = data.get("requests")
    requests: list[RequestSpec] = []
    if not isinstance(raw_requests, list) or not raw_requests:
        problems.append(f"performance.requests: expected a non-empty list of requests (method, path, weight, ...), found {raw_requests!r}")
    else:
        for i, raw in enumerate(raw_requests):
            request = _request(f"performance.requests[{i}]", raw, problems, weighted=True)
            if request is not None:
                requests.append(request)
    if len(problems) > start or duration is None:
        return None
    return PerformanceProfile(
        requests=tuple(requests), duration_s=duration, mode=mode, rate=rate, vus=vus, think_time_s=think,
        max_error_rate=max_error, timeout_s=timeout or DEFAULT_TIMEOUT_S,
    )


def parse_test_spec(data: object, source: str = "tests.yaml") -> TestSpec:
    """A ``TestSpec`` from a loaded ``tests.yaml`` mapping; ``ValidationError`` lists every problem."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationError(source, [f"expected a mapping with health, functional, performance, found {type(data).__name__}"])
    _unknown("", data, {"health", "functional", "performance", "jmeter"}, problems)
    health = _health(data.get("health"), problems)
    functional: list[RequestSpec] = []
    raw_functional = data.get("functional")
    if raw_functional is not None:
        if not isinstance(raw_functional, list):
            problems.append(f"functional: expected a list of requests, found {raw_functional!r}")
        else:
            for i, raw in enumerate(raw_functional):
                request = _request(f"functional[{i}]", raw, problems, weighted=False)
                if request is not None:
                    functional.append(request)
    performance = _performance(data.get("performance"), problems)
    jmeter = _jmeter(data.get("jmeter"), problems)
    if problems:
        raise ValidationError(source, problems)
    return TestSpec(health=health, functional=tuple(functional), performance=performance, source=source, jmeter=jmeter)


def _jmeter(data: object, problems: list[str]) -> JMeterPlans | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        problems.append(f"jmeter: expected a mapping of health/functional/performance → jmeter/<name>.jmx, found {data!r}")
        return None
    _unknown("jmeter", data, {"health", "functional", "performance", "max_error_rate", "properties"}, problems)
    plans: dict[str, str | None] = {}
    for role in ("health", "functional", "performance"):
        value = data.get(role)
        if value is not None and (not isinstance(value, str) or not JMX_URI.fullmatch(value)):
            problems.append(f"jmeter.{role}: expected a resource URI like jmeter/load.jmx, found {value!r}")
            value = None
        plans[role] = value
    if not any(plans.values()):
        problems.append("jmeter: names no plan (health, functional or performance)")
    limit = DEFAULT_MAX_ERROR_RATE
    if "max_error_rate" in data:
        limit = _fraction("jmeter.max_error_rate", data["max_error_rate"], problems) or 0.0
    properties: dict[str, str] = {}
    raw = data.get("properties") or {}
    if not isinstance(raw, Mapping):
        problems.append(f"jmeter.properties: expected a mapping of name → value, found {raw!r}")
    else:
        for key, value in raw.items():
            if not isinstance(key, str) or not _PROPERTY.fullmatch(key) or key in JMETER_TARGET_PROPERTIES:
                problems.append(f"jmeter.properties: {key!r} is not a property name Sluice passes "
                                f"(letters, digits, '_', '.'; {', '.join(JMETER_TARGET_PROPERTIES)} are set by Sluice)")
            elif isinstance(value, bool) or not isinstance(value, str | int | float) or any(ord(c) < 32 for c in str(value)):
                problems.append(f"jmeter.properties.{key}: expected a one-line string or number, found {value!r}")
            else:
                properties[key] = str(value)
    return JMeterPlans(plans["health"], plans["functional"], plans["performance"], limit, properties)


def expected_length_s(spec: TestSpec, strategy: str, duration_s: float | None = None) -> float:
    """How long a run of ``spec`` by ``strategy`` takes at most (health wait and timeouts
    included; ``duration_s`` overrides the performance duration): a unit's deadline follows it."""
    health = spec.health.wait_s + spec.health.timeout_s
    if spec.jmeter is not None and spec.jmeter.plans(strategy):
        return MAX_DURATION_S  # a plan's length is its own: the hard limit bounds it
    if strategy == "functional":
        return health + sum(r.timeout_s for r in spec.functional)
    if strategy == "performance" and spec.performance is not None:
        profile = spec.performance
        return health + (duration_s or profile.duration_s) + profile.timeout_s
    return health
