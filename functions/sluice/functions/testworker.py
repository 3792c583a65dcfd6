"""A test unit: ``python -m sluice.functions.testworker`` with a deployment-finished event on stdin
(locally) or in ``SLUICE_TEST_EVENT`` (a Kubernetes Job).

Runs the stage's tests (``tests.yaml`` of the service in the stage, else the documented default)
under a hard time limit, stores the measurements for the builtin SLI provider, and posts
``tests-finished`` to the broker (retrying a few times: the event's id is stable, so a repeated
post is a duplicate the consumers ignore).

The test runners (load generator, JMeter) are imported when tests run: a unit whose delivery
no longer waits for them exits without loading them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sluice.core.events import DeploymentFinished, Event
from sluice.errors import RetryableError, SluiceError
from sluice.functions.runtime import Runtime, runtime_for
from sluice.functions.test import service
from sluice.services.testflow import Runner, TestOutcome

if TYPE_CHECKING:
    from sluice.core.testspec import TestSpec

log = logging.getLogger("sluice.testworker")

POST_ATTEMPTS = 5


def loads_public_address(deployed: DeploymentFinished) -> bool:
    """True when the tests go to the stage's public address rather than the candidate's own URL:
    the performance test of a canary step, so the load is split like the real traffic and the
    builtin provider judges the candidate by its share of it (docs/canary.md). Functional tests
    keep checking the candidate itself (through the split, most requests would reach the primary)."""
    return (deployed.deploymentstrategy == "canary" and deployed.teststrategy == "performance"
            and bool(deployed.deploymentURIPublic))


def run_stage_tests(deployed: DeploymentFinished, spec: TestSpec | None, limit_s: float, *,
                    duration_s: float | None = None, plans: Mapping[str, str] | None = None,
                    jmeter: str = "") -> TestOutcome:
    """Run a stage's tests for ``deployed`` where they belong (``loads_public_address``); a load on
    the public address is stored as such, so the builtin provider reads only the slots' shares."""
    from sluice.services.testing import run_tests

    public = loads_public_address(deployed)
    report = run_tests(spec, deployed.teststrategy, deployed.deploymentURIPublic if public else deployed.deploymentURILocal,
                       limit_s, duration_s=duration_s, plans=plans, jmeter=jmeter)
    measurements = dict(report.measurements)
    if public and measurements:
        measurements["measured_at"] = "public"
    return TestOutcome(result=report.result, start=report.start, end=report.end, message=report.message,
                       measurements=measurements, inconclusive=report.inconclusive,
                       lag_ms=float((report.load or {}).get("worst_lag_ms") or 0.0))


def make_runner(runtime: Runtime) -> Runner:
    def run(deployed: DeploymentFinished, context: str) -> TestOutcome:
        from sluice.services.testspecs import load_test_spec

        records = runtime.records
        text = records.resource(deployed.project, deployed.stage, deployed.service, "tests.yaml")
        where = f"tests.yaml of {deployed.service} in {deployed.project}/{deployed.stage}"
        spec = load_test_spec(text, where) if text is not None else None  # None: the documented default
        plans: dict[str, str] = {}
        for uri in spec.jmeter.plans(deployed.teststrategy) if spec is not None and spec.jmeter else ():
            plan = records.resource(deployed.project, deployed.stage, deployed.service, uri)
            if plan is not None:
                plans[uri] = plan
        return run_stage_tests(deployed, spec, runtime.settings.test_limit_s,
                               duration_s=runtime.settings.performance_duration_s or None, plans=plans,
                               jmeter=runtime.settings.jmeter)

    return run


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s testworker %(levelname)s %(message)s")
    runtime = runtime_for("test")
    raw = os.environ.get("SLUICE_TEST_EVENT")  # a Job passes the event in its environment
    event = Event.from_json_dict(json.loads(raw) if raw else json.load(sys.stdin))
    try:
        reply = service(runtime).run_unit(event, make_runner(runtime))
    except SluiceError as err:
        log.error("test unit for %s failed: %s", event.id, err)
        return 1
    if reply is None:
        log.info("test unit for %s: its delivery no longer waits for these tests; nothing to report", event.id)
        return 0
    for attempt in range(1, POST_ATTEMPTS + 1):
        try:
            runtime.publish(reply)
            log.info("tests-finished %s posted for %s (%s)", reply.id, event.id, reply.data.to_dict().get("result"))
            return 0
        except RetryableError as err:
            log.warning("posting tests-finished failed (attempt %d): %s", attempt, err)
            time.sleep(min(2.0**attempt, 10.0))
    return 1


if __name__ == "__main__":
    sys.exit(main())
