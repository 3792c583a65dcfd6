"""The test runner: health check, then the stage's strategy, under a hard time limit.

``run_tests(spec, strategy, base_url, hard_limit_s)`` never raises for the target's behaviour:
a refused connection, a wrong status or too many errors is a ``fail`` report with a message.
It raises ``ValidationError`` only for its own bad input (an unknown strategy, a URL that is not
http(s)).

- always first: the health check (polled until it answers the expected status or its wait ends);
- ``functional``: every declared request in order; each must answer the expected status and
  contain the expected text;
- ``performance``: the load profile (``sluice.loadgen``); fails above ``max_error_rate`` of
  errors, or of requests left unsent because the target kept every connection busy. When the
  load generator itself fell behind its schedule (this machine starved it of CPU) on more than
  ``MAX_BEHIND`` (1 %) of the planned requests, the test does not fail: it passes the measurement
  on with ``inconclusive`` set to why, and the evaluation is inconclusive;
- ``""``: no test, a pass that says so.

``measurements`` carries the builtin SLI values (``throughput``, ``error_rate``,
``response_time_avg``, ``response_time_p50/p90/p95/p99`` — milliseconds, requests/s, a fraction)
and what stands behind them: ``requests`` (how many) and ``latency_histogram_us`` (bounded
``[µs, count]`` pairs), so the evaluation can tell too few samples and noise from a regression.
A performance test measures the load; a functional test measures its own few requests. A load
on a stage's public address behind the weighted router also stores each slot's share
(``slots``: ``primary``/``canary``, the same keys each) and ``unattributed`` (requests that got
no answer, so no slot).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import field, replace
from typing import Any

import httpx

from sluice.core.frozen import frozen
from sluice.core.strategies import TestStrategy
from sluice.core.testspec import (
    HealthCheck,
    LoadMode,
    PerformanceProfile,
    RequestSpec,
    TestSpec,
    default_test_spec,
)
from sluice.core.verdict import Verdict
from sluice.errors import ValidationError
from sluice.loadgen import LoadProfile, LoadRequest, LogLinearHistogram, Mode, rfc3339, run_load_sync

__all__ = ["MAX_BEHIND", "NO_TEST_MESSAGE", "ProgressCallback", "RequestOutcome", "TestReport", "run_tests"]

NO_TEST_MESSAGE = "no test (test_strategy none)"
#: Seconds kept back from the hard limit for draining requests and reporting.
SLACK_S = 2.0
HEALTH_POLL_S = 0.5
#: The share of a load's planned requests the generator may start late through its own fault
#: (``LoadReport.behind``) before its measurement is unreliable. Their latencies include its delay
#: and land in the slowest part of the histogram: the slowest 1 % is what a p99 reads, so with more
#: late requests than that every percentile the builtin provider reports (p50…p99) may measure the
#: generator rather than the target. (Measured under CPU starvation: one 358 ms stall made 62 of
#: 1,200 requests late, 5.2 %, and moved a canary's p95 from 15 ms to 138 ms.)
MAX_BEHIND = 0.01

#: Progress: (phase ``health`` | ``functional`` | ``performance``, done, total or None).
ProgressCallback = Callable[[str, int, int | None], None]
Clock = Callable[[], float]


@frozen
class RequestOutcome:
    """One checked request: what was sent, what came back, and whether it passed (with why not)."""

    name: str
    method: str
    path: str
    passed: bool
    status: int | None = None
    latency_ms: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "method": self.method, "path": self.path, "passed": self.passed,
            "status": self.status, "latency_ms": self.latency_ms, "message": self.message,
        }


@frozen
class TestReport:
    """The outcome of one test run. ``result`` is ``pass`` or ``fail``; ``start``/``end`` RFC 3339 UTC.

    ``message`` says what was run, against what spec (including "the default test spec" when the
    stage had none) and why it failed. ``load`` is the full load report (performance only).
    """

    __test__ = False
    result: Verdict
    start: str
    end: str
    message: str
    strategy: str = ""
    used_default_spec: bool = False
    outcomes: tuple[RequestOutcome, ...] = ()
    measurements: Mapping[str, Any] = field(default_factory=dict)
    load: Mapping[str, Any] | None = None
    #: Why the measurement cannot be trusted although the test did not fail (empty: it can): the
    #: load generator fell behind its own schedule. The evaluation is then inconclusive with this
    #: reason, and the stage's ``on_inconclusive`` decides (docs/slo-format.md).
    inconclusive: str = ""

    @property
    def passed(self) -> bool:
        return self.result == Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value, "start": self.start, "end": self.end, "message": self.message,
            "inconclusive": self.inconclusive,
            "strategy": self.strategy, "used_default_spec": self.used_default_spec,
            "outcomes": [o.to_dict() for o in self.outcomes], "measurements": dict(self.measurements),
            "load": dict(self.load) if self.load is not None else None,
        }


def _strategy(value: str | TestStrategy) -> TestStrategy:
    try:
        return TestStrategy(value or "")
    except ValueError as err:
        valid = ", ".join(repr(s.value) for s in TestStrategy)
        raise ValidationError("test strategy", [f"expected one of {valid}, found {value!r}"]) from err


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")


class _Run:
    def __init__(self, base_url: str, hard_limit_s: float, client: httpx.Client, clock: Clock,
                 on_progress: ProgressCallback | None) -> None:
        self.base_url = base_url
        self.client = client
        self.clock = clock
        self.deadline = clock() + hard_limit_s
        self.on_progress = on_progress

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def progress(self, phase: str, done: int, total: int | None) -> None:
        if self.on_progress is not None:
            self.on_progress(phase, done, total)

    def health(self, check: HealthCheck) -> RequestOutcome:
        """Poll until the expected status, the check's wait, or the hard limit."""
        began = self.clock()
        give_up = min(began + check.wait_s, self.deadline - SLACK_S)
        attempts = 0
        while True:
            attempts += 1
            outcome = self.send(
                RequestSpec(path=check.path, name="health check", expected_status=check.expected_status),
                check.timeout_s,
            )
            self.progress("health", attempts, None)
            if outcome.passed or self.clock() + HEALTH_POLL_S > give_up:
                if not outcome.passed:
                    waited = self.clock() - began
                    outcome = replace(outcome, message=f"{outcome.message} (after {attempts} attempt(s) in {waited:.1f} s)")
                return outcome
            time.sleep(HEALTH_POLL_S)

    def send(self, request: RequestSpec, timeout_s: float) -> RequestOutcome:
        timeout = max(0.05, min(timeout_s, self.remaining()))
        began = time.perf_counter()
        try:
            response = self.client.request(
                request.method, _join(self.base_url, request.path),
                content=request.body.encode() if request.body is not None else None,
                headers=dict(request.headers), timeout=timeout, follow_redirects=False,
            )
        except httpx.TimeoutException:
            return RequestOutcome(request.label, request.method, request.path, False, None,
                                  round((time.perf_counter() - began) * 1000, 3),
                                  f"{request.method} {request.path}: no answer within {timeout:g} s")
        except httpx.HTTPError as err:
            return RequestOutcome(request.label, request.method, request.path, False, None, None,
                                  f"{request.method} {request.path}: {type(err).__name__}: {err}")
        latency = round((time.perf_counter() - began) * 1000, 3)
        problems = []
        if response.status_code != request.expected_status:
            problems.append(f"expected status {request.expected_status}, found {response.status_code}")
        if request.expected_text is not None and request.expected_text not in response.text:
            problems.append(f"expected the answer to contain {request.expected_text!r}, found {response.text[:200]!r}")
        message = f"{request.method} {request.path}: " + "; ".join(problems) if problems else ""
        return RequestOutcome(request.label, request.method, request.path, not problems, response.status_code,
                              latency, message)


def _functional_measurements(outcomes: list[RequestOutcome], seconds: float) -> dict[str, Any]:
    histogram = LogLinearHistogram()
    for outcome in outcomes:
        if outcome.latency_ms is not None:
            histogram.record(int(outcome.latency_ms * 1000))
    values: dict[str, Any] = {
        "throughput": round(len(outcomes) / max(seconds, 1e-9), 3),
        "error_rate": round(sum(not o.passed for o in outcomes) / len(outcomes), 6),
        "requests": len(outcomes),
        "latency_histogram_us": histogram.compact(),
    }
    for name, value in (
        ("response_time_avg", histogram.mean()), ("response_time_p50", histogram.percentile(50)),
        ("response_time_p90", histogram.percentile(90)), ("response_time_p95", histogram.percentile(95)),
        ("response_time_p99", histogram.percentile(99)),
    ):
        if value is not None:
            values[name] = round(value / 1000.0, 3)
    return values


def load_profile(profile: PerformanceProfile) -> LoadProfile:
    """The load generator's profile for a spec's performance section."""
    return LoadProfile(
        requests=tuple(
            LoadRequest(path=r.path, method=r.method, body=r.body.encode() if r.body is not None else None,
                        headers=dict(r.headers), weight=r.weight, expected_status=r.expected_status)
            for r in profile.requests
        ),
        duration_s=profile.duration_s,
        mode=Mode(profile.mode.value),
        rate=profile.rate,
        vus=profile.vus,
        think_time_s=profile.think_time_s,
        timeout_s=profile.timeout_s,
    )


def run_tests(
    spec: TestSpec | None,
    strategy: str | TestStrategy,
    base_url: str,
    hard_limit_s: float,
    *,
    duration_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    client: httpx.Client | None = None,
    clock: Clock = time.monotonic,
    wall: Clock = time.time,
    plans: Mapping[str, str] | None = None,
    jmeter: str = "",
) -> TestReport:
    """Run ``spec`` (None → the default spec) by ``strategy`` against ``base_url`` within ``hard_limit_s``.

    ``duration_s`` overrides the performance duration (a setting beats the file). ``client`` is
    the HTTP client for the health check and functional requests (tests pass one over
    ``httpx.MockTransport``); the load itself goes through ``sluice.loadgen``. When the spec's
    ``jmeter`` section names plans for the strategy, those run instead of the spec's requests
    (``plans``: their texts by resource URI; ``jmeter``: SLUICE_JMETER, see ``sluice.services.jmeter``).
    """
    chosen = _strategy(strategy)
    problems = []
    if not base_url.startswith(("http://", "https://")):
        problems.append(f"base URL: expected http://… or https://…, found {base_url!r}")
    if not hard_limit_s > 0:
        problems.append(f"hard limit: expected > 0 seconds, found {hard_limit_s!r}")
    if problems:
        raise ValidationError("test run", problems)
    start = rfc3339(wall())
    if chosen is TestStrategy.NONE:
        return TestReport(Verdict.PASS, start, start, NO_TEST_MESSAGE, strategy=chosen.value)
    spec = default_test_spec() if spec is None else spec
    if duration_s is not None:
        spec = spec.with_duration(duration_s)
    about = spec.source
    own_client = client is None
    http = client if client is not None else httpx.Client()
    run = _Run(base_url, hard_limit_s, http, clock, on_progress)

    def report(passed: bool, message: str, outcomes: list[RequestOutcome], measurements: Mapping[str, Any] | None = None,
               load: Mapping[str, Any] | None = None, inconclusive: str = "") -> TestReport:
        verdict = Verdict.PASS if passed else Verdict.FAIL
        said = f"{verdict}, inconclusive" if inconclusive else str(verdict)
        return TestReport(
            verdict, start, rfc3339(wall()), f"{chosen.value} test {said}: {message}; spec: {about}",
            strategy=chosen.value, used_default_spec=spec.is_default, outcomes=tuple(outcomes),
            measurements=dict(measurements or {}), load=load, inconclusive=inconclusive,
        )

    try:
        health = run.health(spec.health)
        if not health.passed:
            return report(False, f"health check failed: {health.message}", [health])
        if spec.jmeter is not None and spec.jmeter.plans(chosen.value):
            return _jmeter(run, spec, chosen, health, report, plans or {}, jmeter)
        if chosen is TestStrategy.FUNCTIONAL:
            return _functional(run, spec, health, report)
        return _performance(run, spec, health, report)
    finally:
        if own_client:
            http.close()


Reporter = Callable[..., TestReport]


def _jmeter(run: _Run, spec: TestSpec, chosen: TestStrategy, health: RequestOutcome, report: Reporter,
            plans: Mapping[str, str], jmeter: str) -> TestReport:
    """The strategy's JMeter plans in order (the health plan first), each within what is left of
    the hard limit; a health or functional plan may have no failed sample, a performance plan
    at most ``max_error_rate``."""
    from sluice.services.jmeter import JMeterMissing, find_jmeter, run_plan

    config = spec.jmeter
    assert config is not None
    names = config.plans(chosen.value)
    missing = [n for n in names if n not in plans]
    if missing:
        return report(False, f"{', '.join(missing)} (named in the jmeter section) is not stored: add it with "
                             f"'sluice add-resource --resource=<file> --resourceUri={missing[0]}' "
                             "(for 'sluice test': put it beside the spec)", [health])
    try:
        binary = find_jmeter(jmeter)
    except JMeterMissing as err:
        return report(False, str(err), [health])
    summaries: list[str] = []
    measurements: Mapping[str, Any] = {}
    for name in names:
        left = run.remaining() - SLACK_S / 2
        if left <= 0:
            return report(False, "; ".join([*summaries, f"{name}: not run, the hard time limit was reached"]), [health], measurements)
        result = run_plan(binary, name, plans[name], run.base_url, left, config.properties)
        measurements = result.measurements
        limit = config.max_error_rate if name == config.performance and chosen is TestStrategy.PERFORMANCE else 0.0
        p95 = result.measurements.get("response_time_p95")
        summary = f"{name}: {result.requests} requests, {result.errors} errors ({result.error_rate:.1%}), p95 {p95} ms"
        problem = ""
        if not result.finished:
            problem = f"stopped at the hard time limit ({left:.0f} s left for it)"
        elif result.exit_code != 0:
            problem = f"jmeter exited with code {result.exit_code}: {result.log_tail[-500:]}"
        elif result.requests == 0:
            problem = f"the plan sent no request; jmeter's log ends: {result.log_tail[-500:]}"
        elif result.error_rate > limit:
            problem = f"error rate above the limit ({limit:.1%}): {'; '.join(result.failures)}"
        summaries.append(f"{summary}: {problem}" if problem else summary)
        if problem:
            return report(False, "; ".join(summaries), [health], measurements)
        run.progress(chosen.value, len(summaries), len(names))
    return report(True, "; ".join(summaries), [health], measurements)


def _functional(run: _Run, spec: TestSpec, health: RequestOutcome, report: Reporter) -> TestReport:
    if not spec.functional:
        return report(False, "strategy functional, but the spec declares no functional requests", [health])
    outcomes: list[RequestOutcome] = []
    began = run.clock()
    for index, request in enumerate(spec.functional):
        if run.remaining() <= 0:
            outcomes.append(RequestOutcome(request.label, request.method, request.path, False,
                                           message="not sent: the hard time limit was reached"))
            continue
        outcomes.append(run.send(request, request.timeout_s))
        run.progress("functional", index + 1, len(spec.functional))
    measurements = _functional_measurements(outcomes, run.clock() - began)
    failed = [o for o in outcomes if not o.passed]
    if failed:
        detail = "; ".join(o.message if o.name == f"{o.method} {o.path}" else f"{o.name}: {o.message}" for o in failed)
        return report(False, f"{len(failed)} of {len(outcomes)} request(s) failed: {detail}", [health, *outcomes],
                      measurements)
    return report(True, f"all {len(outcomes)} request(s) passed", [health, *outcomes], measurements)


def _performance(run: _Run, spec: TestSpec, health: RequestOutcome, report: Reporter) -> TestReport:
    profile = spec.performance
    if profile is None:
        return report(False, "strategy performance, but the spec declares no performance section", [health])
    needed = profile.duration_s + profile.timeout_s + SLACK_S
    if needed > run.remaining():
        return report(
            False,
            f"the load ({profile.duration_s:g} s + {profile.timeout_s:g} s request timeout) does not fit the "
            f"{run.remaining():.0f} s left of the hard time limit",
            [health],
        )
    asked = load_profile(profile)
    load = run_load_sync(
        run.base_url, asked, hard_limit_s=run.remaining() - SLACK_S / 2,
        on_progress=lambda done, total, _elapsed: run.progress("performance", done, total),
    )
    measurements: dict[str, Any] = {**load.measurements(), **load.samples()}
    shares = {name: slot.measurements() for name, slot in load.slots.items() if name in ("primary", "canary")}
    if shares:  # a load through the weighted router: each slot's share apart (docs/canary.md)
        measurements["slots"] = shares
        measurements["unattributed"] = load.unattributed()
    shape = (f"{profile.rate:g} req/s" if profile.mode is LoadMode.CONSTANT_ARRIVAL_RATE
             else f"{profile.vus} virtual users") + f" for {profile.duration_s:g} s"
    summary = (f"{load.requests} requests ({shape}), error rate {load.error_rate:.1%} "
               f"(limit {profile.max_error_rate:.1%}), p95 {load.response_time_p95} ms")
    if load.dropped_busy:
        summary += f", {load.dropped_busy} request(s) dropped (all {asked.max_connections} connections busy)"
    if load.behind:
        unsent = load.dropped - load.dropped_busy
        summary += (f", the load generator fell behind its schedule on {load.behind} request(s)"
                    f"{f' ({unsent} never sent)' if unsent else ''}, worst stall {load.worst_lag_ms:.0f} ms")
    if load.slots:
        summary += "; by slot: " + ", ".join(
            f"{name} {slot.requests} ({100.0 * slot.requests / max(load.requests, 1):.1f} %, p95 {slot.response_time_p95} ms)"
            for name, slot in load.slots.items())
    if load.requests == 0:
        return report(False, f"no request was sent ({shape})", [health], measurements, load.to_dict())
    if load.error_rate > profile.max_error_rate:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(load.error_kinds.items()))
        return report(False, f"{summary}: error rate above the limit ({kinds})", [health], measurements, load.to_dict())
    planned = load.planned()
    if load.dropped_busy / planned > profile.max_error_rate:
        return report(False, f"{summary}: the declared load was not delivered (the target kept every connection "
                             "busy)", [health], measurements, load.to_dict())
    if load.behind / planned > MAX_BEHIND:
        # Not the target's fault: this machine starved the generator, so the latencies (counted
        # from the due times) include its own delay. Neither a pass nor a fail: inconclusive.
        why = (f"the load generator fell behind its schedule on {load.behind} of {planned} request(s) "
               f"({load.behind / planned:.1%}, more than {MAX_BEHIND:.0%}; "
               f"worst stall {load.worst_lag_ms:.0f} ms): the machine running the test was starved of CPU, "
               "so the measurement is not reliable")
        return report(True, f"{summary}: {why}", [health], measurements, load.to_dict(), inconclusive=why)
    return report(True, summary, [health], measurements, load.to_dict())
