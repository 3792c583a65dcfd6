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
from dataclasses import field

from sluice.core.frozen import frozen
from sluice.core.validation import Problems, Reader, parse_duration, shown
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



class LoadMode(enum.StrEnum):
    """Open loop at a fixed arrival rate, or closed loop with virtual users."""

    CONSTANT_ARRIVAL_RATE = "constant-arrival-rate"
    VIRTUAL_USERS = "virtual-users"


@frozen
class HealthCheck:
    """``GET path`` must answer ``expected_status``; it is polled for up to ``wait_s`` seconds."""

    path: str = "/health"
    expected_status: int = 200
    wait_s: float = DEFAULT_HEALTH_WAIT_S
    timeout_s: float = DEFAULT_TIMEOUT_S


@frozen
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


@frozen
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


@frozen
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


@frozen
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


def _duration(r: Reader, key: str, default: float | None, low: float, high: float) -> float | None:
    """Seconds under ``key`` (a number or ``500ms``, ``30s``, ``2m``, ``1h``), within ``low`` < s <= ``high``."""
    value = r.raw(key)
    if value is None:
        return default
    seconds = parse_duration(value)
    if seconds is None:
        r.fail(f"expected a duration like 30s, 500ms, 2m or a number of seconds, found {shown(value)}", key)
        return None
    if not low < seconds <= high:
        r.fail(f"expected more than {low:g} s and at most {high:g} s, found {shown(value)}", key)
        return None
    return seconds


def _status(r: Reader, key: str) -> int | None:
    value = r.raw(key)
    if value is None:
        return 200
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        r.fail(f"expected an HTTP status code 100..599, found {shown(value)}", key)
        return None
    return value


def _path(r: Reader, key: str, default: str | None = None) -> str | None:
    value = r.raw(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        r.fail(f"expected a URL path starting with '/' and without spaces, found {shown(value)}", key)
        return None
    return value


def _positive(r: Reader, key: str, high: float, *, integer: bool = False, required: bool = True) -> float | None:
    """A number > 0 (a whole one when ``integer``) and at most ``high``."""
    value = r.raw(key)
    if value is None:
        if required:
            r.fail("required, missing", key)
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value <= 0:
        r.fail(f"expected {'a whole number' if integer else 'a number'} > 0, found {shown(value)}", key)
        return None
    if value > high:
        r.fail(f"expected at most {high:g}, found {shown(value)}", key)
        return None
    return float(value)


def _fraction(r: Reader, key: str, default: float) -> float | None:
    """A fraction 0..1, or a percentage string like ``10%``."""
    value = r.raw(key)
    if value is None:
        return default
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
        r.fail(f"expected a fraction 0..1 or a percentage like '10%', found {shown(value)}", key)
        return None
    return number


_REQUEST_KEYS = ("name", "method", "path", "body", "headers", "expected_status", "expected_text")


def _request(r: Reader, *, weighted: bool) -> RequestSpec | None:
    if not isinstance(r.value, Mapping):
        r.fail(f"expected a mapping with at least 'path', found {type(r.value).__name__} {shown(r.value)}")
        return None
    r.unknown_keys((*_REQUEST_KEYS, "weight" if weighted else "timeout"))
    start = len(r.problems.messages)
    path = _path(r, "path")
    method = r.string("method", "GET")
    if method.upper() not in METHODS:
        r.fail(f"expected one of {', '.join(sorted(METHODS))}, found {shown(method)}", "method")
    name = r.string("name")
    headers = _headers(r)
    body = _body(r, headers)
    status = _status(r, "expected_status")
    text = r.raw("expected_text")
    if text is not None and not isinstance(text, str):
        r.fail(f"expected a string (a substring of the answer), found {shown(text)}", "expected_text")
    weight = (_positive(r, "weight", 1e6, required=False) or 0.0) if weighted and r.has("weight") else 1.0
    timeout = DEFAULT_TIMEOUT_S if weighted else _duration(r, "timeout", DEFAULT_TIMEOUT_S, 0.0, 300.0)
    if len(r.problems.messages) > start or path is None or status is None:
        return None
    return RequestSpec(
        path=path, method=method.upper(), name=name, body=body, headers=headers, expected_status=status,
        expected_text=text if isinstance(text, str) else None, weight=weight, timeout_s=timeout or DEFAULT_TIMEOUT_S,
    )


def _headers(r: Reader) -> dict[str, str]:
    raw = r.raw("headers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool) for k, v in raw.items()
    ):
        r.fail(f"expected a mapping of header names to strings, found {shown(raw)}", "headers")
        return {}
    return {k: str(v) for k, v in raw.items()}


def _body(r: Reader, headers: dict[str, str]) -> str | None:
    """The request body: a string as it is, a mapping or a list as JSON (with its content type)."""
    raw = r.raw("body")
    if isinstance(raw, Mapping | list):
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return json.dumps(raw, separators=(",", ":"))
    if raw is not None and not isinstance(raw, str):
        r.fail(f"expected a string, a mapping or a list, found {shown(raw)}", "body")
        return None
    return raw


def _health(r: Reader) -> HealthCheck:
    if r.value is None:
        return HealthCheck()
    if not isinstance(r.value, Mapping):
        r.fail(f"expected a mapping (path, expected_status, wait, timeout), found {shown(r.value)}")
        return HealthCheck()
    r.unknown_keys(("path", "expected_status", "wait", "timeout"))
    wait = _duration(r, "wait", DEFAULT_HEALTH_WAIT_S, -1e-9, MAX_DURATION_S)
    return HealthCheck(
        path=_path(r, "path", "/health") or "/health",
        expected_status=_status(r, "expected_status") or 200,
        wait_s=DEFAULT_HEALTH_WAIT_S if wait is None else wait,
        timeout_s=_duration(r, "timeout", DEFAULT_TIMEOUT_S, 0.0, 300.0) or DEFAULT_TIMEOUT_S,
    )


_PERFORMANCE_KEYS = ("mode", "rate", "vus", "think_time", "duration", "requests", "max_error_rate", "timeout")


def _performance(r: Reader) -> PerformanceProfile | None:
    if r.value is None:
        return None
    if not isinstance(r.value, Mapping):
        r.fail(f"expected a mapping (mode, rate or vus, duration, requests, ...), found {shown(r.value)}")
        return None
    r.unknown_keys(_PERFORMANCE_KEYS)
    start = len(r.problems.messages)
    mode = r.enum("mode", LoadMode, LoadMode.CONSTANT_ARRIVAL_RATE) or LoadMode.CONSTANT_ARRIVAL_RATE
    rate, vus, think = 20.0, 10, 0.0
    if mode is LoadMode.CONSTANT_ARRIVAL_RATE:
        if not r.has("rate"):
            r.fail("required for mode constant-arrival-rate (requests per second), missing", "rate")
        rate = _positive(r, "rate", MAX_RATE, required=False) or 0.0
        for key in ("vus", "think_time"):
            if r.has(key):
                r.fail("only valid for mode virtual-users, found it with constant-arrival-rate", key)
    else:
        if not r.has("vus"):
            r.fail("required for mode virtual-users (number of virtual users), missing", "vus")
        vus = int(_positive(r, "vus", MAX_VUS, integer=True, required=False) or 1)
        think = _duration(r, "think_time", 0.0, -1e-9, 3600.0) or 0.0
        if r.has("rate"):
            r.fail("only valid for mode constant-arrival-rate, found it with virtual-users", "rate")
    if not r.has("duration"):
        r.fail("required (e.g. 60s), missing", "duration")
    duration = _duration(r, "duration", None, 0.0, MAX_DURATION_S)
    max_error = _fraction(r, "max_error_rate", DEFAULT_MAX_ERROR_RATE) or 0.0
    timeout = _duration(r, "timeout", DEFAULT_TIMEOUT_S, 0.0, 300.0)
    raw_requests = r.raw("requests")
    requests: list[RequestSpec] = []
    if not isinstance(raw_requests, list) or not raw_requests:
        r.fail(f"expected a non-empty list of requests (method, path, weight, ...), found {shown(raw_requests)}", "requests")
    else:
        requests = [q for q in (_request(i, weighted=True) for i in r.items("requests")) if q is not None]
    if len(r.problems.messages) > start or duration is None:
        return None
    return PerformanceProfile(
        requests=tuple(requests), duration_s=duration, mode=mode, rate=rate, vus=vus, think_time_s=think,
        max_error_rate=max_error, timeout_s=timeout or DEFAULT_TIMEOUT_S,
    )


def parse_test_spec(data: object, source: str = "tests.yaml") -> TestSpec:
    """A ``TestSpec`` from a loaded ``tests.yaml`` mapping; ``ValidationError`` lists every problem."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationError(source, [f"expected a mapping with health, functional, performance, found {type(data).__name__}"])
    problems = Problems(source)
    r = Reader(data, "", problems)
    r.unknown_keys(("health", "functional", "performance", "jmeter"))
    health = _health(r.at("health"))
    functional = [
        q for q in (_request(i, weighted=False) for i in r.items("functional", what="a list of requests")) if q is not None
    ]
    performance = _performance(r.at("performance"))
    jmeter = _jmeter(r.at("jmeter"))
    problems.raise_if_any()
    return TestSpec(health=health, functional=tuple(functional), performance=performance, source=source, jmeter=jmeter)


def _jmeter(r: Reader) -> JMeterPlans | None:
    if r.value is None:
        return None
    if not isinstance(r.value, Mapping):
        r.fail(f"expected a mapping of health/functional/performance → jmeter/<name>.jmx, found {shown(r.value)}")
        return None
    r.unknown_keys(("health", "functional", "performance", "max_error_rate", "properties"))
    plans: dict[str, str | None] = {}
    for role in ("health", "functional", "performance"):
        value = r.raw(role)
        if value is not None and (not isinstance(value, str) or not JMX_URI.fullmatch(value)):
            r.fail(f"expected a resource URI like jmeter/load.jmx, found {shown(value)}", role)
            value = None
        plans[role] = value
    if not any(plans.values()):
        r.fail("names no plan (health, functional or performance)")
    limit = _fraction(r, "max_error_rate", DEFAULT_MAX_ERROR_RATE) or 0.0
    return JMeterPlans(plans["health"], plans["functional"], plans["performance"], limit, _properties(r.at("properties")))


def _properties(r: Reader) -> dict[str, str]:
    properties: dict[str, str] = {}
    if r.value is None:
        return properties
    if not isinstance(r.value, Mapping):
        r.fail(f"expected a mapping of name → value, found {shown(r.value)}")
        return properties
    for key, value in r.value.items():
        if not isinstance(key, str) or not _PROPERTY.fullmatch(key) or key in JMETER_TARGET_PROPERTIES:
            r.fail(f"{shown(key)} is not a property name Sluice passes "
                   f"(letters, digits, '_', '.'; {', '.join(JMETER_TARGET_PROPERTIES)} are set by Sluice)")
        elif isinstance(value, bool) or not isinstance(value, str | int | float) or any(ord(c) < 32 for c in str(value)):
            r.fail(f"expected a one-line string or number, found {shown(value)}", key)
        else:
            properties[key] = str(value)
    return properties


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
