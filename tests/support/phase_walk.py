"""A run walked through every phase by the real services (memory store, noop backend, a
deterministic clock and ids): a blue/green stage whose passing builds wait for a person.

``walk(until=phase)`` gives a world whose one delivery waits in ``phase``; every walk emits the
same events, so an event of one walk is the right (or the repeated) event for another world.
Used by the phase table and the services' own tests (tests/unit/services).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from tests.support.flow import FakeClock

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.approval_auth import sign
from sluice.core.events import (
    ApprovalFinished,
    CanaryAction,
    ConfigurationChange,
    Decision,
    DeploymentFinished,
    Event,
    GetSli,
    GetSliDone,
)
from sluice.core.ledger import Phase
from sluice.errors import RetryableError
from sluice.ports.backend import Placement, Slot
from sluice.services.deploy import DeployService
from sluice.services.evaluate import EvaluateService
from sluice.services.gatekeeper import GatekeeperService
from sluice.services.ledger import Ledger
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome, TestService

KEY = b"a" * 32
IMAGE = "docker.io/keptnexamples/carts:0.10.3"
SHIPYARD = """
stages:
  - name: staging
    deployment_strategy: blue_green_service
    test_strategy: performance
    approval_strategy: {pass: manual, warning: manual}
"""
SLO = """
objectives:
  - sli: response_time_p95
    pass:
      - criteria: ["<600"]
total_score: {pass: "90%", warning: "75%"}
"""
STAGING = Placement("sockshop", "staging", "carts")


class Unreachable(NoopBackend):
    """The platform cannot be reached: every deploy is retryable (the run stays deploying)."""

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        raise RetryableError("the platform cannot be reached (test)")


def runner(deployed: DeploymentFinished, context: str) -> TestOutcome:
    return TestOutcome("pass", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", measurements={"response_time_p95": 50.0})


@dataclass
class World:
    """The services over one memory store, with a deterministic clock."""

    unreachable: bool = False
    shipyard: str = SHIPYARD
    #: The p95 the SLI provider answers (ms; the SLO passes below 600).
    p95: float = 50.0
    records: Records = field(init=False)
    backend: NoopBackend = field(init=False)
    units: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.records = Records(MemoryStore())
        self.records.create_project("sockshop", self.shipyard, yaml.safe_load(self.shipyard))
        self.records.onboard("sockshop", "carts")
        self.records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
        self.clock = FakeClock()
        self.backend = Unreachable() if self.unreachable else NoopBackend()
        self.deploy = DeployService(self.records, self.backend, self.clock, "sluice/deploy")
        self.test = TestService(self.records, self.clock, "sluice/test", self.units.append)
        self.evaluate = EvaluateService(self.records, self.clock, "sluice/evaluate")
        self.gatekeeper = GatekeeperService(self.records, self.clock, "sluice/gatekeeper", approver_keys={"sockshop": KEY}.get)

    def phase(self) -> Phase | None:
        run = Ledger(self.records).lane(STAGING).run(CONTEXT)
        return run.phase if run is not None else None

    def snapshot(self) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
        """Every record as stored, versions included: equal snapshots mean nothing was written."""
        return [(r.name, r.resource_version or "", dict(r.labels), dict(r.data)) for r in self.records.store.list({})]


def artifact() -> Event:
    change = ConfigurationChange(project="sockshop", service="carts", image=IMAGE)
    return Event.new(change, source="test", id="artifact-1", time="2026-01-01T00:00:00.000Z")


CONTEXT = artifact().shkeptncontext


def approval(decision: Decision) -> Event:
    payload = ApprovalFinished(project="sockshop", stage="staging", service="carts", decision=decision.value)
    event = Event.new(payload, source="test", id=f"approval-{decision.value}", time="2026-01-01T00:00:30.000Z",
                      context=CONTEXT)
    return sign(event, KEY, "alice")


def sli_answer(request: Event, p95: float = 50.0) -> Event:
    assert isinstance(request.data, GetSli)
    done = GetSliDone(
        project="sockshop", stage="staging", service="carts", start=request.data.start, end=request.data.end,
        indicatorValues=[{"metric": "response_time_p95", "value": p95, "success": True}], sliProvider="test",
    )
    return request.reply(done, source="sluice/sli", time="2026-01-01T00:00:20.000Z")


def only(events: list[Event]) -> Event:
    assert len(events) == 1, [e.type.value for e in events]
    return events[0]

@dataclass(frozen=True)
class Trigger:
    """An event of the walk, how a world receives it, the phase it is for and the phase it leads to."""

    name: str
    due: Phase
    then: Phase
    deliver: Callable[[World, Event], list[Event]]


def _unit(world: World, event: Event) -> list[Event]:
    finished = world.test.run_unit(event, runner)
    return [finished] if finished is not None else []


TRIGGERS = (
    Trigger("set", Phase.DEPLOYING, Phase.DEPLOYED, lambda w, e: w.deploy.handle(e)),
    Trigger("deployment-finished", Phase.DEPLOYED, Phase.TESTING, lambda w, e: w.test.handle(e)),
    Trigger("test unit reports", Phase.TESTING, Phase.TESTED, _unit),
    Trigger("tests-finished", Phase.TESTED, Phase.EVALUATING, lambda w, e: w.evaluate.handle(e)),
    Trigger("get-sli.done", Phase.EVALUATING, Phase.EVALUATED, lambda w, e: w.evaluate.handle(e)),
    Trigger("evaluation-done", Phase.EVALUATED, Phase.HELD, lambda w, e: w.gatekeeper.handle(e)),
    Trigger("approve", Phase.HELD, Phase.PROMOTING, lambda w, e: w.gatekeeper.handle(e)),
    Trigger("decline", Phase.HELD, Phase.DISCARDING, lambda w, e: w.gatekeeper.handle(e)),
    Trigger("promote", Phase.PROMOTING, Phase.DONE, lambda w, e: w.deploy.handle(e)),
    Trigger("discard", Phase.DISCARDING, Phase.DONE, lambda w, e: w.deploy.handle(e)),
)
BY_NAME = {t.name: t for t in TRIGGERS}


@dataclass
class Walk:
    """The reference walk: the trigger events and every event the services emitted."""

    events: dict[str, Event] = field(default_factory=dict)
    emitted: dict[str, Event] = field(default_factory=dict)
    last: list[Event] = field(default_factory=list)


def walk(until: Phase | None = None, decline: bool = False, world: World | None = None) -> tuple[World, Walk]:
    """Walk a world from nothing to ``until`` (None: to the end), approving (or declining)."""
    world = world or World(unreachable=until is Phase.DEPLOYING)
    seen = Walk()
    events = {"set": artifact()}
    order = ["set", "deployment-finished", "test unit reports", "tests-finished", "get-sli.done", "evaluation-done",
             "decline" if decline else "approve", "discard" if decline else "promote"]
    for name in order:
        if world.phase() is until and until is not None:
            break
        event = events[name] if name in events else _next(name, seen, world)
        seen.events[name] = event
        if name == "set" and world.unreachable:
            with pytest.raises(RetryableError):
                BY_NAME[name].deliver(world, event)
            continue
        out = BY_NAME[name].deliver(world, event)
        seen.emitted.update({e.id: e for e in out})
        seen.last = out
    assert until is None or world.phase() is until, f"the walk stopped at {world.phase()}, not {until}"
    return world, seen


def _next(name: str, seen: Walk, world: World) -> Event:
    last = seen.last
    if name == "test unit reports":
        return Event.from_json_dict(world.units[-1])
    if name == "get-sli.done":
        return sli_answer(only(last), world.p95)
    if name in ("approve", "decline"):
        return approval(Decision.APPROVE if name == "approve" else Decision.DECLINE)
    if name in ("promote", "discard"):
        wanted = CanaryAction.PROMOTE if name == "promote" else CanaryAction.DISCARD
        return next(e for e in last if isinstance(e.data, ConfigurationChange) and e.data.action is wanted)
    return only(last)


