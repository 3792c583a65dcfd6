"""The test service: ``deployment-finished`` → a test unit → ``tests-finished``.

Long tests must not hang on one HTTP request: the function claims the run (so a duplicate
delivery starts nothing), hands the event to a launcher (locally a worker process; on a
cluster a Job) and acknowledges. The unit runs the tests under a hard time limit, stores
the measurements for the builtin SLI provider and reports ``tests-finished``. A unit that never
reports is failed on a PingSource tick after its deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sluice.core.events import DeploymentFinished, Event, Ping, Result, TestsFinished
from sluice.errors import ConfigurationError, PermanentError, ValidationError
from sluice.ports.testunit import Launcher
from sluice.services.records import KIND, Records

log = logging.getLogger("sluice.test")

FINISHED_LIMIT = 32
#: Extra time a unit gets past its hard limit before a tick declares it lost.
GRACE_S = 30.0


@dataclass(frozen=True)
class TestOutcome:
    """What a test unit measured."""

    __test__ = False
    result: str
    start: str
    end: str
    message: str = ""
    measurements: Mapping[str, float] = field(default_factory=dict)


#: Runs the tests for a deployment: (deployment-finished payload, its context) → outcome.
Runner = Callable[[DeploymentFinished, str], TestOutcome]


class TestService:
    __test__ = False

    def __init__(
        self, records: Records, now: Callable[[], str], source: str, launcher: Launcher, limit_s: float = 600.0
    ) -> None:
        self.records = records
        self.now = now
        self.source = source
        self.launcher = launcher
        self.limit_s = limit_s

    def handle(self, event: Event) -> list[Event]:
        if isinstance(event.data, Ping):
            return self._expire()
        deployed = event.data
        assert isinstance(deployed, DeploymentFinished)
        now = self.now()
        if deployed.result == Result.FAIL.value:
            return [self._reply(event, deployed, Result.FAIL.value, now, now, f"not tested: {deployed.message}")]
        if not deployed.teststrategy:
            return [self._reply(event, deployed, Result.PASS.value, now, now, "no test (test_strategy none)")]
        name, labels = self.records.scoped("tests", deployed.project, deployed.stage, deployed.service)
        deadline = datetime.fromisoformat(now) + timedelta(seconds=self.limit_s + GRACE_S)
        entry = {"state": "running", "started": now, "deadline": deadline.isoformat(), "event": event.to_json_dict()}

        def claim(runs: dict[str, Any]) -> bool:
            if event.dedup_key in runs:
                return False
            runs[event.dedup_key] = entry
            return True

        if not self.records.update_json(name, "runs", {}, labels, claim):
            log.info("tests for %s already started: duplicate delivery ignored", event.id)
            return []
        self.launcher(event.to_json_dict())
        return []

    def _reply(self, event: Event, deployed: DeploymentFinished, result: str, start: str, end: str, message: str) -> Event:
        payload = TestsFinished(
            project=deployed.project, stage=deployed.stage, service=deployed.service, start=start, end=end,
            result=result, image=deployed.image, tag=deployed.tag, teststrategy=deployed.teststrategy,
            deploymentstrategy=deployed.deploymentstrategy, message=message, labels=deployed.labels,
        )
        return event.reply(payload, source=self.source, time=self.now())

    def run_unit(self, event: Event, runner: Runner) -> Event:
        """The unit of work: run, store measurements, record the outcome, return tests-finished."""
        deployed = event.data
        assert isinstance(deployed, DeploymentFinished)
        name, labels = self.records.scoped("tests", deployed.project, deployed.stage, deployed.service)
        done = self.records.read_json(name, "runs", {}).get(event.dedup_key, {})
        if done.get("state") == "finished":
            return Event.from_json_dict(done["reply"])
        try:
            outcome = runner(deployed, event.shkeptncontext)
        except (ValidationError, PermanentError, ConfigurationError) as err:  # e.g. an invalid tests.yaml
            now = self.now()
            outcome = TestOutcome(Result.FAIL.value, now, now, f"tests could not run: {err}")
        if outcome.measurements:
            self.records.put_measurements(
                deployed.project, deployed.stage, deployed.service, event.shkeptncontext, outcome.measurements
            )
        reply = self._reply(event, deployed, outcome.result, outcome.start, outcome.end, outcome.message)
        self._close(name, labels, event.dedup_key, reply)
        return reply

    def _close(self, name: str, labels: dict[str, str], key: str, reply: Event) -> None:
        def close(runs: dict[str, Any]) -> None:
            runs[key] = {"state": "finished", "reply": reply.to_json_dict()}
            finished = [k for k, v in runs.items() if v.get("state") == "finished"]
            for old in finished[:-FINISHED_LIMIT]:
                del runs[old]

        self.records.update_json(name, "runs", {}, labels, close)

    def _expire(self) -> list[Event]:
        now = self.now()
        replies = []
        for record in self.records.store.list({KIND: "tests"}):
            for key, run in self.records.read_json(record.name, "runs", {}).items():
                if run.get("state") != "running" or datetime.fromisoformat(run["deadline"]) > datetime.fromisoformat(now):
                    continue
                cause = Event.from_json_dict(run["event"])
                deployed = cause.data
                assert isinstance(deployed, DeploymentFinished)
                reply = self._reply(
                    cause, deployed, Result.FAIL.value, run["started"], now,
                    f"the test unit did not report within its limit of {self.limit_s:g} s (lost or killed)",
                )
                self._close(record.name, dict(record.labels), key, reply)
                replies.append(reply)
        return replies
