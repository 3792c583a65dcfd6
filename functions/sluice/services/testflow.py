"""The test service: ``deployment-finished`` → a test unit → ``tests-finished``.

Long tests must not hang on one HTTP request: the function moves the run to ``testing`` (so a
duplicate delivery starts nothing), hands the event to a launcher (locally a worker process; on
a cluster a Job) and acknowledges. The unit runs the tests under a hard time limit, stores the
measurements for the builtin SLI provider and records ``tested``. The run's deadline follows the
test's own length (its health wait, requests or load, plus a grace): a unit that never reports
is failed on a PingSource tick after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

from sluice.core.events import DeploymentFinished, Event, TestsFinished
from sluice.core.frozen import frozen
from sluice.core.ledger import HANDOFF_S, Lane, Phase, Run, Transition, enter, expired
from sluice.core.strategies import DeploymentStrategy
from sluice.core.verdict import Verdict
from sluice.errors import ConfigurationError, PermanentError, SluiceError, ValidationError
from sluice.ports.backend import Placement
from sluice.ports.testunit import Launcher
from sluice.services.ledger import Ledger
from sluice.services.records import Records

log = logging.getLogger("sluice.test")

#: Extra time a unit gets past the test's own length before a tick declares it lost (start-up,
#: storing measurements, reporting).
GRACE_S = 30.0


@frozen
class TestOutcome:
    """What a test unit measured."""

    __test__ = False
    result: Verdict
    start: str
    end: str
    message: str = ""
    measurements: Mapping[str, float] = field(default_factory=dict)
    #: Why the measurement cannot be trusted (empty: it can); see ``TestsFinished.inconclusive``.
    inconclusive: str = ""
    #: The load generator's worst stall in ms: the most a latency it measured is over-stated by.
    lag_ms: float = 0.0


#: Runs the tests for a deployment: (deployment-finished payload, its context) → outcome.
Runner = Callable[[DeploymentFinished, str], TestOutcome]


class TestService:
    __test__ = False

    def __init__(
        self, records: Records, now: Callable[[], str], source: str, launcher: Launcher, limit_s: float = 600.0,
        duration_s: float | None = None,
    ) -> None:
        self.records = records
        self.ledger = Ledger(records)
        self.now = now
        self.source = source
        self.launcher = launcher
        self.limit_s = limit_s
        self.duration_s = duration_s

    def handle(self, event: Event) -> list[Event]:
        if not isinstance(event.data, DeploymentFinished):
            # cold start: only a tick's payload is not a deployment-finished
            from sluice.core.events import Ping

            if isinstance(event.data, Ping):
                return self._expire()
        deployed = event.data
        assert isinstance(deployed, DeploymentFinished)
        placement = Placement(deployed.project, deployed.stage, deployed.service)
        context, now = event.shkeptncontext, self.now()
        if deployed.result != Verdict.FAIL and not deployed.teststrategy and deployed.deploymentstrategy is DeploymentStrategy.CANARY:
            return self._soak(event, deployed, placement)
        if deployed.result == Verdict.FAIL or not deployed.teststrategy:
            message = f"not tested: {deployed.message}" if deployed.result == Verdict.FAIL else "no test (test_strategy none)"
            result = Verdict.FAIL if deployed.result == Verdict.FAIL else Verdict.PASS
            reply = self._reply(event, deployed, result, now, now, message)
            return self._record_tested(placement, context, reply)
        limit = self._length(deployed)
        from sluice.core.ledger import TestRun  # cold start: only a run that is tested has a unit

        unit = TestRun(event.dedup_key, now, "", limit, event.to_json_dict())

        def start(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            return lane.put(enter(run, Phase.TESTING, now, limit + GRACE_S, test=unit)), []

        started = self.ledger.advance(placement, context, Transition.TESTING, start)
        if not started.applied:
            log.info("tests for %s not started: %s", event.id, "duplicate delivery" if started.known else
                     "its delivery does not wait for tests in this stage")
            tested = self.ledger.lane(placement).run(context)
            return [Event.from_json_dict(e) for e in (tested.stored(Transition.TESTED) or []) if tested] if tested else []
        try:
            self.launcher(event.to_json_dict())
        except (SluiceError, OSError) as err:  # the unit cannot start: the run must not wait for it
            reply = self._reply(event, deployed, Verdict.FAIL, now, self.now(), f"the test unit could not start: {err}")
            return self._record_tested(placement, context, reply)
        return []

    def _soak(self, event: Event, deployed: DeploymentFinished, placement: Placement) -> list[Event]:
        """A canary step without tests waits ``step_duration`` under real traffic: the run is
        ``testing`` until then, and the tick moves it on with that window (``_expire_run``)."""
        stage = self.records.project(deployed.project).shipyard.stage(deployed.stage)
        wait = stage.canary.step_duration_s if stage.canary is not None else 0.0
        now = self.now()
        from sluice.core.ledger import TestRun  # cold start: only a run that is tested (or soaks) has a unit

        unit = TestRun(event.dedup_key, now, "", wait, event.to_json_dict(), soak=True)

        def start(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            return lane.put(enter(run, Phase.TESTING, now, wait, test=unit)), []

        started = self.ledger.advance(placement, event.shkeptncontext, Transition.TESTING, start)
        if not started.applied:
            tested = self.ledger.lane(placement).run(event.shkeptncontext)
            return [Event.from_json_dict(e) for e in (tested.stored(Transition.TESTED) or [])] if tested else []
        return []

    def _length(self, deployed: DeploymentFinished) -> float:
        """The test's own length (capped by the hard limit); an unreadable spec fails fast in the unit."""
        # cold start: only a run that is tested reads its test spec
        from sluice.core.testspec import default_test_spec, expected_length_s
        from sluice.services.testspecs import load_test_spec

        text = self.records.resource(deployed.project, deployed.stage, deployed.service, "tests.yaml")
        try:
            spec = load_test_spec(text) if text is not None else default_test_spec()
        except ValidationError:
            return min(self.limit_s, 60.0)
        return min(self.limit_s, expected_length_s(spec, deployed.teststrategy, self.duration_s))

    def _reply(self, event: Event, deployed: DeploymentFinished, result: Verdict, start: str, end: str, message: str,
               inconclusive: str = "", lag_ms: float = 0.0) -> Event:
        payload = TestsFinished(
            project=deployed.project, stage=deployed.stage, service=deployed.service, start=start, end=end,
            result=result, image=deployed.image, tag=deployed.tag, teststrategy=deployed.teststrategy,
            deploymentstrategy=deployed.deploymentstrategy, message=message, labels=deployed.labels,
            inconclusive=inconclusive, lag_ms=lag_ms if inconclusive else 0.0,
        )
        return event.reply(payload, source=self.source, time=self.now())

    def _record_tested(self, placement: Placement, context: str, reply: Event) -> list[Event]:
        now = self.now()

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            return lane.put(enter(run, Phase.TESTED, now, HANDOFF_S)), [reply.to_json_dict()]

        return self.ledger.advance(placement, context, Transition.TESTED, effect).events()

    def run_unit(self, event: Event, runner: Runner) -> Event | None:
        """The unit of work: run, store measurements, record ``tested``, return tests-finished
        (the stored one when the run was already decided, e.g. by the tick; None when its
        delivery no longer waits for it)."""
        deployed = event.data
        assert isinstance(deployed, DeploymentFinished)
        placement = Placement(deployed.project, deployed.stage, deployed.service)
        run = self.ledger.lane(placement).run(event.shkeptncontext)
        if run is None:
            return None
        if run.phase is not Phase.TESTING or run.test is None or run.test.key != event.dedup_key:
            stored = run.stored(Transition.TESTED)
            return Event.from_json_dict(stored[0]) if stored else None
        try:
            outcome = runner(deployed, event.shkeptncontext)
        except (ValidationError, PermanentError, ConfigurationError) as err:  # e.g. an invalid tests.yaml
            now = self.now()
            outcome = TestOutcome(Verdict.FAIL, now, now, f"tests could not run: {err}")
        if outcome.measurements:
            self.records.put_measurements(
                deployed.project, deployed.stage, deployed.service, event.shkeptncontext, outcome.measurements
            )
        reply = self._reply(event, deployed, outcome.result, outcome.start, outcome.end, outcome.message,
                            outcome.inconclusive, outcome.lag_ms)
        recorded = self._record_tested(placement, event.shkeptncontext, reply)
        return recorded[0] if recorded else None

    def _expire(self) -> list[Event]:
        """Fail runs whose tests never started (deployment-finished was lost) or whose unit never
        reported within the test's length and a grace."""
        now = self.now()
        replies: list[Event] = []
        for found in self.ledger.busy():
            run = found.lane.active
            if run is None or run.phase not in (Phase.DEPLOYED, Phase.TESTING) or not expired(run, now):
                continue
            try:
                replies.extend(self._expire_run(found.placement, run, now))
            except (SluiceError, KeyError, ValueError) as err:
                log.error("tick: could not end the %s run of %s in %s: %s", run.phase.value, run.context, found.placement, err)
        return replies

    def _expire_run(self, placement: Placement, run: Run, now: str) -> list[Event]:
        if run.phase is Phase.TESTING and run.test is not None and run.test.soak:
            cause = Event.from_json_dict(run.test.event)
            soaked = cause.data
            assert isinstance(soaked, DeploymentFinished)
            weight = f" with {run.canary.weight} % of the traffic" if run.canary is not None else ""
            message = f"no tests: the candidate served real traffic{weight} for {run.test.limit_s:g} s"
            reply = self._reply(cause, soaked, Verdict.PASS, run.test.started, now, message)
            return self._record_tested(placement, run.context, reply)
        if run.phase is Phase.TESTING and run.test is not None:
            cause = Event.from_json_dict(run.test.event)
            message = f"the test unit did not report within {run.test.limit_s + GRACE_S:g} s (the test's length and a grace): lost or killed"
            start = run.test.started
        else:
            deployed = run.stored(Transition.DEPLOYED)
            if not deployed:
                return []
            cause = Event.from_json_dict(deployed[0])
            message = f"the tests never started within {HANDOFF_S:g} s of the deployment"
            start = run.since
        data = cause.data
        assert isinstance(data, DeploymentFinished)
        return self._record_tested(placement, run.context, self._reply(cause, data, Verdict.FAIL, start, now, message))


