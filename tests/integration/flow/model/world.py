"""The model's world: the real services over a memory store, with a broker of our own.

The broker is a bag of events in flight. The model picks which one to deliver, in any order,
delivers duplicates of any event ever emitted, loses replies after a handler wrote ("crash"),
runs two deliveries concurrently with one paused just before one of its writes ("race"), lets
test units run or die, answers SLI requests late or never, and injects adapter errors. A handler
that raises is treated like the functions' HTTP adapter answers a broker: validation, permanent
and configuration errors (400/422) are dead-lettered at once; retryable errors and bugs
(503/500) are retried later, or dead-lettered when the broker's retries are used up.

The world only knows the services through ``handle(event)`` (and ``TestService.run_unit``),
the ``NoopBackend`` (what runs where) and the events they emit; ``records_view`` is the one place
that reads internal records. The invariants are methods ``check_*`` that raise
``AssertionError`` naming what broke.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from tests.integration.flow.model import records_view
from tests.support.flow import FakeClock

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.sli.builtin import BuiltinSliProvider
from sluice.adapters.state.memory import MemoryStore
from sluice.core.approval_auth import sign
from sluice.core.events import (
    ApprovalFinished,
    ConfigurationChange,
    Decision,
    DeploymentFinished,
    Event,
    EventType,
    GetSli,
    Ping,
    StartEvaluation,
)
from sluice.core.gate import GateDecision, decide
from sluice.core.inconclusive import attempt_of
from sluice.core.shipyard import Shipyard, Stage
from sluice.core.verdict import Verdict
from sluice.errors import ConfigurationError, PermanentError, RetryableError, ValidationError
from sluice.ports.backend import Placement, Slot
from sluice.ports.sli import SliProvider, SliQuery, SliValue
from sluice.ports.state import MAX_RECORD_BYTES, Record
from sluice.services.deploy import DeployService
from sluice.services.evaluate import EvaluateService
from sluice.services.eventlog import EventLogService
from sluice.services.gatekeeper import GatekeeperService
from sluice.services.records import Records
from sluice.services.sli import SliService
from sluice.services.testflow import TestOutcome, TestService

PROJECT = "shop"
APPROVER_KEY = b"model-approver-key-" + b"0" * 13
SERVICES = ("carts", "orders", "users")
REPO = "docker.io/sluice-model"
#: p95 response time a build answers with: fast passes the staging SLO, medium is a warning, slow fails.
SPEEDS: Mapping[str, float] = {"fast": 50.0, "medium": 700.0, "slow": 1050.0}
SLI_TIMEOUT_S = 120.0
#: Clock jumps a tick may make: nothing, short, past the SLI timeout (120 s), past the test
#: deadline (600 + 30 s), an hour, past the default approval timeout (24 h).
ADVANCES = (0, 30, 121, 631, 3600, 86_401)
#: Errors a deployment backend can raise (a bug is any other exception).
BACKEND_FAULTS: Mapping[str, type[Exception]] = {
    "permanent": PermanentError,
    "configuration": ConfigurationError,
    "retryable": RetryableError,
    "bug": RuntimeError,
}
SLI_FAULTS: Mapping[str, type[Exception] | None] = {
    "configuration": ConfigurationError,
    "retryable": RetryableError,
    "bug": RuntimeError,
    "no-data": None,  # the provider answers, but could not measure anything (inconclusive)
}
#: Event types nobody consumes but the event log (they are never "in flight").
TERMINAL = frozenset({EventType.DONE, EventType.APPROVAL_TRIGGERED})
PASSING = frozenset({"pass", "warning"})
#: Names of the invariants (``World.check_<name>``; ``finish`` is the liveness check at the end).
CHECKS = ("sizes", "once", "promotions", "claims", "waits", "deadlines", "finish")


@contextlib.contextmanager
def libyaml() -> Iterator[None]:
    """While the model runs, ``yaml.safe_load`` uses libyaml's loader (the same documents, parsed
    some 30 times faster than by PyYAML's pure-Python loader, which the services use), so the
    model can afford big SLO files in many examples."""
    if not getattr(yaml, "__with_libyaml__", False):
        yield
        return
    pure = yaml.safe_load

    def fast(stream: Any) -> Any:
        return yaml.load(stream, Loader=yaml.CSafeLoader)

    yaml.safe_load = fast
    try:
        yield
    finally:
        yaml.safe_load = pure


def shipyard_text(manual_production: bool, manual_warning: bool, inconclusive: str = "fail") -> str:
    """dev (direct) → staging (blue/green, the SLO; ``on_inconclusive``) → production (blue/green)."""
    approvals = ""
    if manual_warning:
        approvals = "    approval_strategy: {pass: automatic, warning: manual}\n"
    approvals += f"    on_inconclusive: {inconclusive}\n"
    production = "    approval_strategy: {pass: manual, warning: manual}\n" if manual_production else ""
    return (
        "stages:\n"
        "  - name: dev\n    deployment_strategy: direct\n    test_strategy: functional\n"
        "  - name: staging\n    deployment_strategy: blue_green_service\n    test_strategy: performance\n"
        + approvals
        + "  - name: production\n    deployment_strategy: blue_green_service\n"
        + production
    )


@functools.cache
def slo_text(objectives: int, name_length: int = 0) -> str:
    """A staging SLO with ``objectives`` copies of the p95 objective (same verdict, bigger
    records), each with a display name of at least ``name_length`` characters."""
    doc = {
        "spec_version": "0.1.1",
        "comparison": {"compare_with": "single_result", "include_result_with_score": "pass", "aggregate_function": "avg"},
        "objectives": [
            {
                "sli": "response_time_p95",
                "displayName": f"p95 response time, objective {i} of {objectives}".ljust(name_length, "."),
                "pass": [{"criteria": ["<600"]}],
                "warning": [{"criteria": ["<=800"]}],
            }
            for i in range(objectives)
        ],
        "total_score": {"pass": "90%", "warning": "75%"},
    }
    return yaml.safe_dump(doc, sort_keys=False, width=1 << 20)


@dataclass(frozen=True)
class View:
    """What ``records_view`` reads from the store, at one version of it."""

    claims: list[records_view.Claim]
    waits: list[records_view.Wait]
    evaluations: list[records_view.StoredEvaluation]
    verdicts: list[records_view.StoredEvaluation]


@dataclass(frozen=True)
class Delivery:
    context: str
    service: str
    image: str
    speed: str


@dataclass(eq=False)
class Flight:
    """An event the broker still has to deliver (``attempts``: failed deliveries so far)."""

    event: Event
    attempts: int = 0


@dataclass
class Invocation:
    """What one handler call did: ``status`` ok / retry (5xx) / dead (4xx), its replies."""

    status: str
    replies: list[Event] = field(default_factory=list)
    error: BaseException | None = None


class WatchedStore:
    """The memory store, plus the size of every write it was asked for and a pause point.

    ``pause(thread, before_put, reached, go)``: the thread ``thread`` stops right before its
    ``before_put``-th write (0 = its first), sets ``reached`` and waits for ``go``.
    """

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.refused: list[tuple[str, int]] = []  # writes over MAX_RECORD_BYTES: (name, bytes)
        self.writes = 0  # successful writes and deletes so far (a version of the whole store)
        self._pause: tuple[int, list[int], threading.Event, threading.Event] | None = None

    def get(self, name: str) -> Record | None:
        return self.inner.get(name)

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        return self.inner.list(labels)

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        deleted = self.inner.delete(name, resource_version)
        self.writes += 1
        return deleted

    def put(self, record: Record) -> Record:
        pause = self._pause
        if pause is not None and pause[0] == threading.get_ident():
            if pause[1][0] == 0:
                self._pause = None
                pause[2].set()
                pause[3].wait(timeout=60)
            else:
                pause[1][0] -= 1
        size = record.size()
        if size > MAX_RECORD_BYTES:
            self.refused.append((record.name, size))
        kept = self.inner.put(record)
        self.writes += 1
        return kept

    def pause(self, thread: int, before_put: int, reached: threading.Event, go: threading.Event) -> None:
        self._pause = (thread, [before_put], reached, go)

    def unpause(self) -> None:
        self._pause = None


class FaultyBackend:
    """The noop backend, made to raise ``fault`` on its ``countdown``-th next call (0 = the next).
    ``on_call`` is told of every call that went through (for attributing calls to deliveries)."""

    def __init__(self, on_call: Callable[[str], None]) -> None:
        self.noop = NoopBackend()
        self.fault: tuple[type[Exception], int] | None = None
        self.on_call = on_call

    def _enter(self, method: str) -> None:
        if self.fault is not None:
            kind, countdown = self.fault
            if countdown == 0:
                self.fault = None
                raise kind(f"model: the backend fails the {method} call ({kind.__name__})")
            self.fault = (kind, countdown - 1)
        self.on_call(method)

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        self._enter("deploy")
        return self.noop.deploy(placement, slot, image, timeout_s)

    def route(self, placement: Placement, canary_weight: int) -> str:
        self._enter("route")
        return self.noop.route(placement, canary_weight)

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        self._enter("scale_to_zero")
        self.noop.scale_to_zero(placement, slot)


class FaultySli:
    """The builtin provider over the tests' measurements, made to raise ``fault`` once, or (with
    ``no_data``) to answer once that it could not measure anything."""

    def __init__(self, records: Records) -> None:
        self.builtin = BuiltinSliProvider(records.measurements)
        self.fault: type[Exception] | None = None
        self.no_data = False

    def arm(self, kind: str) -> None:
        if SLI_FAULTS[kind] is None:
            self.no_data = True
        else:
            self.fault = SLI_FAULTS[kind]

    def disarm(self) -> None:
        self.fault, self.no_data = None, False

    def __call__(self, name: str, request: GetSli) -> SliProvider:
        if self.fault is not None:
            fault, self.fault = self.fault, None
            raise fault(f"model: the SLI provider {name!r} fails ({fault.__name__})")
        return self

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        if self.no_data:
            self.no_data = False
            return [SliValue(name, None, False, "model: no data for the window") for name in query.indicators]
        return self.builtin.fetch(query)


#: What a test unit whose load generator was starved of CPU reports (``TestOutcome.inconclusive``).
STARVED = "model: the load generator fell behind its schedule on 40 of 120 request(s): starved of CPU"


def runner(deployed: DeploymentFinished, context: str) -> TestOutcome:
    """A test unit: the build's speed is the suffix of its tag (``1.4.0-slow``)."""
    speed = deployed.tag.rsplit("-", 1)[-1]
    return TestOutcome(
        result=Verdict.PASS, start="2026-01-01T00:00:00Z", end="2026-01-01T00:01:00Z",
        measurements={"response_time_p95": SPEEDS.get(speed, 50.0), "error_rate": 0.0},
    )


class World:
    def __init__(
        self, manual_production: bool = False, manual_warning: bool = False, objectives: int = 1, name_length: int = 0,
        checks: Iterable[str] | None = None, inconclusive: str = "fail",
    ) -> None:
        self.store = WatchedStore()
        self.records = Records(self.store)
        text = shipyard_text(manual_production, manual_warning, inconclusive)
        self.records.create_project(PROJECT, text, yaml.safe_load(text))
        for service in SERVICES:
            self.records.onboard(PROJECT, service)
            self.records.put_resource(PROJECT, "staging", service, "slo.yaml", slo_text(objectives, name_length))
        self.shipyard: Shipyard = self.records.project(PROJECT).shipyard
        self.clock = FakeClock()
        self.backend = FaultyBackend(self._backend_called)
        self.sli_provider = FaultySli(self.records)
        self.units: list[dict[str, Any]] = []
        self.deploy = DeployService(self.records, self.backend, self.clock, "sluice/deploy")
        self.test = TestService(self.records, self.clock, "sluice/test", self.units.append)
        self.evaluate = EvaluateService(self.records, self.clock, "sluice/evaluate", sli_timeout_s=SLI_TIMEOUT_S)
        self.sli = SliService(self.sli_provider, self.clock, "sluice/sli")
        self.gatekeeper = GatekeeperService(
            self.records, self.clock, "sluice/gatekeeper", approver_keys=lambda project: APPROVER_KEY
        )
        self.eventlog = EventLogService(self.records)
        self.routes: Mapping[EventType, Callable[[Event], list[Event]]] = {
            EventType.CONFIGURATION_CHANGE: self.deploy.handle,
            EventType.DEPLOYMENT_FINISHED: self.test.handle,
            EventType.TESTS_FINISHED: self.evaluate.handle,
            EventType.START_EVALUATION: self.evaluate.handle,
            EventType.GET_SLI: self.sli.handle,
            EventType.GET_SLI_DONE: self.evaluate.handle,
            EventType.EVALUATION_DONE: self.gatekeeper.handle,
            EventType.APPROVAL_FINISHED: self.gatekeeper.handle,
        }
        # --- the broker ---
        self.bag: list[Flight] = []
        self.history: list[Event] = []  # every consumable event ever emitted, for duplicates
        self.dead_letters: list[tuple[Event, BaseException | None]] = []
        self.tick_errors: list[BaseException] = []
        self.counter = 0
        #: How many of the next test units report a starved load generator (``generator_starved``).
        self.starved = 0
        # --- what the model learnt from the events ---
        self.deliveries: dict[str, Delivery] = {}
        self.by_image: dict[str, Delivery] = {}
        #: (ctx, stage) → {evaluation-done id: (attempt, result)}
        self.verdicts: dict[tuple[str, str], dict[str, tuple[int, str]]] = defaultdict(dict)
        self.dones: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)  # (ctx, stage) → {event id: outcome}
        self.decisions: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.held: list[tuple[str, str, str]] = []  # (context, stage, service) of approval.triggered
        #: (ctx, stage, action) → ids of the events whose handling drove the backend to completion
        self.effects: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self._calls: dict[int, list[str]] = {}
        self._view: tuple[int, View] | None = None
        #: The invariants checked (all by default; a subset helps to tell defects apart).
        self.checks = set(checks) if checks is not None else set(CHECKS)

    # --- helpers ------------------------------------------------------------------------------
    def view(self) -> View:
        if self._view is None or self._view[0] != self.store.writes:
            view = View(
                records_view.claims(self.store, PROJECT),
                records_view.waits(self.store, PROJECT),
                records_view.stored_evaluations(self.store, PROJECT),
                records_view.verdicts(self.store, PROJECT),
            )
            self._view = (self.store.writes, view)
        return self._view[1]

    def _next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def stage_of(self, event: Event) -> str:
        stage = str(getattr(event.data, "stage", "") or "")
        if not stage and event.type is EventType.CONFIGURATION_CHANGE:
            return self.shipyard.first.name
        return stage

    def _backend_called(self, method: str) -> None:
        calls = self._calls.get(threading.get_ident())
        if calls is not None:
            calls.append(method)

    # --- emitting and delivering ----------------------------------------------------------------
    def emit(self, events: Iterable[Event]) -> None:
        for event in events:
            self.eventlog.handle(event)
            self._learn(event)
            if event.type in self.routes:
                self.history.append(event)
                self.bag.append(Flight(event))

    def _learn(self, event: Event) -> None:
        key = (event.shkeptncontext, self.stage_of(event))
        data: Any = event.data
        if event.type is EventType.EVALUATION_DONE:
            result = records_view.UNRELIABLE if records_view.unreliable(data.evaluationdetails.get("sluice") or {}) else data.result
            self.verdicts[key][event.id] = (attempt_of(data.labels), result)  # the label, where events carry it
        elif event.type is EventType.DONE:
            self.dones[key][event.id] = data.outcome
        elif event.type is EventType.APPROVAL_FINISHED and event.extensions:  # signed ones only
            self.decisions[key].add(data.decision)
        elif event.type is EventType.APPROVAL_TRIGGERED:
            self.held.append((*key, data.service))

    def invoke(self, event: Event) -> Invocation:
        """Hand ``event`` to its consumer, as the functions' HTTP adapter would."""
        calls: list[str] = []
        self._calls[threading.get_ident()] = calls
        try:
            replies = self.routes[event.type](event)
        except (ValidationError, PermanentError, ConfigurationError) as err:
            return Invocation("dead", error=err)  # 400 / 422: final
        except Exception as err:  # RetryableError → 503, a bug → 500: retried
            return Invocation("retry", error=err)
        finally:
            self._calls.pop(threading.get_ident(), None)
        if calls and event.type is EventType.CONFIGURATION_CHANGE:
            action = str(event.data.action)  # type: ignore[attr-defined]
            self.effects[(event.shkeptncontext, self.stage_of(event), action)].add(event.id)
        return Invocation("ok", replies)

    def settle(self, flight: Flight, done: Invocation, *, give_up: bool = False, crash: bool = False) -> None:
        """The broker's part after a delivery: drop, retry later, dead-letter, or lose the replies."""
        if done.status == "ok" and not crash:
            self._remove(flight)
            self.emit(done.replies)
            return
        flight.attempts += 1
        if done.status == "dead" or (done.status == "retry" and give_up):
            self._remove(flight)
            self.dead_letters.append((flight.event, done.error))

    def _remove(self, flight: Flight) -> None:
        self.bag = [f for f in self.bag if f is not flight]

    def deliver(self, flight: Flight, *, give_up: bool = False, crash: bool = False) -> None:
        self.settle(flight, self.invoke(flight.event), give_up=give_up, crash=crash)

    def duplicate(self, event: Event) -> None:
        """The broker delivers ``event`` once more (at least once: any event, any age)."""
        self.eventlog.handle(event)
        flight = Flight(event)
        self.bag.append(flight)
        self.deliver(flight)

    def race(self, first: Flight, second: Callable[[], None], pause_at: int) -> None:
        """Deliver ``first`` on a thread that stops right before its ``pause_at``-th write, run
        ``second`` to its end meanwhile, then let ``first`` finish (two function instances)."""
        reached, go = threading.Event(), threading.Event()
        outcome: list[Invocation] = []

        def run() -> None:
            self.store.pause(threading.get_ident(), pause_at, reached, go)
            try:
                outcome.append(self.invoke(first.event))
            finally:
                self.store.unpause()
                reached.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if not reached.wait(timeout=60):
            raise RuntimeError("model: the first delivery of a race neither paused nor finished")
        try:
            second()
        finally:
            go.set()
            thread.join(timeout=60)
        if thread.is_alive() or not outcome:
            raise RuntimeError("model: the first delivery of a race did not finish")
        self.settle(first, outcome[0])

    def run_unit(self, index: int) -> None:
        unit = self.units.pop(index)
        event = Event.from_json_dict(unit)
        reply = self.test.run_unit(event, self._runner)
        self.emit([reply] if reply is not None else [])

    def _runner(self, deployed: DeploymentFinished, context: str) -> TestOutcome:
        """``runner``, but the next ``starved`` units report that their load generator fell behind."""
        outcome = runner(deployed, context)
        if self.starved > 0:
            self.starved -= 1
            return replace(outcome, inconclusive=STARVED)
        return outcome

    def tick(self, advance: float) -> None:
        """A PingSource tick after ``advance`` seconds, to every service that owns deadlines."""
        self.clock.advance(advance)
        ping = Event.new(Ping(), source="sluice/tick", id=self._next("tick"), time=self.clock())
        for service in (self.deploy, self.test, self.evaluate, self.gatekeeper):
            try:
                replies = service.handle(ping)
            except Exception as err:  # PingSource does not retry; the next tick comes anyway
                self.tick_errors.append(err)
                continue
            self.emit(replies)

    # --- inputs --------------------------------------------------------------------------------
    def new_artifact(self, service: str, speed: str) -> Delivery:
        number = self.counter + 1
        image = f"{REPO}/{service}:1.{number}.0-{speed}"
        change = ConfigurationChange(project=PROJECT, service=service, image=image)
        event = Event.new(change, source="model/ci", id=self._next("artifact"), time=self.clock())
        delivery = Delivery(event.shkeptncontext, service, image, speed)
        self.deliveries[delivery.context] = delivery
        self.by_image[image] = delivery
        self.emit([event])
        return delivery

    def quality_gate(self, service: str) -> None:
        """``sluice evaluate`` on staging: a start-evaluation, run until its evaluation is stored."""
        gate = StartEvaluation(
            project=PROJECT, stage="staging", service=service, start="2026-01-01T00:00:00Z", end="2026-01-01T00:01:00Z"
        )
        event = Event.new(gate, source="model/cli", id=self._next("evaluate"), time=self.clock())
        self.emit([event])
        chain = [f for f in self.bag if f.event is event]
        while chain and chain[0].event.type is not EventType.EVALUATION_DONE:
            flight = chain[0]
            self.deliver(flight)
            if any(f is flight for f in self.bag):
                return  # it failed: the broker retries later
            chain = [f for f in self.bag if f.event.triggeredid == flight.event.id]

    def approval(self, context: str, stage: str, service: str, decision: str, forged: bool = False) -> None:
        """A person's decision, signed with the project's approver key (``forged``: unsigned)."""
        payload = ApprovalFinished(project=PROJECT, stage=stage, service=service, decision=Decision(decision))
        event = Event.new(payload, source="model/person", id=self._next("approval"), time=self.clock(), context=context)
        self.emit([event if forged else sign(event, APPROVER_KEY, "model-approver")])

    def unknown_context(self) -> str:
        return Event.new(Ping(), source="model", id=self._next("nobody"), time=self.clock()).shkeptncontext

    # --- what the model knows ------------------------------------------------------------------
    def in_flight(self, context: str, stage: str) -> bool:
        """Something the broker or a test unit still carries would move (context, stage) on."""
        if any(f.event.shkeptncontext == context and self.stage_of(f.event) == stage for f in self.bag):
            return True
        return any(u.get("shkeptncontext") == context and (u.get("data") or {}).get("stage") == stage for u in self.units)

    def ended(self, context: str, stage: str) -> bool:
        return bool(self.dones.get((context, stage)))

    def delivery_ended(self, context: str) -> bool:
        for stage in self.shipyard.stages:
            outcomes = set(self.dones.get((context, stage.name), {}).values())
            if not outcomes:
                return False
            if outcomes != {"promoted"}:
                return True
        return True

    def attempts(self, context: str, stage: str) -> int:
        """How many attempts the ledger's run of ``context`` in ``stage`` made (``on_inconclusive:
        retry`` runs tests and evaluation again); 1 when it does not say."""
        return max([v.attempt for v in self.view().verdicts if (v.context, v.stage) == (context, stage)], default=1)

    def passed(self, context: str, stage: Stage, stored: Sequence[records_view.StoredEvaluation]) -> str:
        """'' when the delivery passed ``stage``'s gate, else why not — or a person approved the
        promotion of a held one. The verdict is the ledger's for the run's last attempt when it
        still keeps the run; otherwise every evaluation the model saw emitted or stored must pass."""
        approved = "approve" in self.decisions.get((context, stage.name), set())
        kept = [v for v in self.view().verdicts if (v.context, v.stage) == (context, stage.name)]
        if kept:
            last = max(v.attempt for v in kept)
            results = sorted({v.result for v in kept if v.attempt == last})
        else:
            results = sorted({r for _, r in self.verdicts.get((context, stage.name), {}).values()}
                             | {e.result for e in stored if (e.context, e.stage) == (context, stage.name)})
        if not results:
            return f"no evaluation of {stage.name} was ever emitted or stored"
        if any(r not in PASSING for r in results):
            return "" if approved else f"its evaluations of {stage.name} were {results}"
        if any(decide(r, stage) is GateDecision.HOLD for r in results) and not approved:
            return f"{stage.name} held it for approval and nobody approved it"
        return ""

    # --- invariants ----------------------------------------------------------------------------
    def check_promotions(self) -> None:
        """No build is primary in a stage unless it passed the gate of every earlier stage."""
        if "promotions" not in self.checks:
            return
        stored = [*self.view().evaluations, *self.view().verdicts]
        for service in SERVICES:
            for index, stage in enumerate(self.shipyard.stages):
                if index == 0:
                    continue
                slot = Slot.PRIMARY if stage.blue_green else Slot.DIRECT
                image = self.backend.noop.images.get((Placement(PROJECT, stage.name, service), slot))
                if not image:
                    continue
                delivery = self.by_image.get(image)
                assert delivery is not None, f"{stage.name}/{service} runs {image}, which no delivery brought"
                for earlier in self.shipyard.stages[:index]:
                    why = self.passed(delivery.context, earlier, stored)
                    assert not why, f"{image} is primary in {stage.name}/{service}, but {why} (delivery {delivery.context})"

    def check_claims(self) -> None:
        """At most one claim per stage, and a claim belongs to a delivery whose part in that stage
        has not ended."""
        if "claims" not in self.checks:
            return
        claims = self.view().claims
        per_stage = Counter((c.service, c.stage) for c in claims)
        assert all(n == 1 for n in per_stage.values()), f"a stage is claimed more than once: {per_stage}"
        for claim in claims:
            assert not self.ended(claim.context, claim.stage), (
                f"{claim.stage}/{claim.service} is claimed by delivery {claim.context}, whose part in {claim.stage} "
                f"has ended ({sorted(self.dones[(claim.context, claim.stage)].values())})"
            )

    def check_waits(self) -> None:
        """Nothing waits for a delivery whose part in that stage has ended."""
        if "waits" not in self.checks:
            return
        for wait in self.view().waits:
            assert not self.ended(wait.context, wait.stage), (
                f"a {wait.kind} of delivery {wait.context} in {wait.stage}/{wait.service} waits, but that "
                f"delivery's part in {wait.stage} has ended ({sorted(self.dones[(wait.context, wait.stage)].values())})"
            )

    def check_deadlines(self) -> None:
        """Every claim and every wait has a deadline (a claim may instead have something in flight
        that moves it on; a queued delivery waits for the claim ahead of it)."""
        if "deadlines" not in self.checks:
            return
        for claim in self.view().claims:
            assert claim.deadline is not None or self.in_flight(claim.context, claim.stage), (
                f"{claim.stage}/{claim.service} is claimed by delivery {claim.context} with no deadline and nothing "
                "in flight that would move it on: it stays claimed for ever"
            )
        for wait in self.view().waits:
            assert wait.kind == records_view.QUEUED or wait.deadline is not None, (
                f"a {wait.kind} of delivery {wait.context} in {wait.stage}/{wait.service} waits with no deadline"
            )

    def check_once(self) -> None:
        """Each evaluation, promotion and discard happens at most once per delivery and stage,
        and a delivery's part in a stage ends one way."""
        if "once" not in self.checks:
            return
        stored = Counter((e.context, e.stage) for e in self.view().evaluations)
        twice = {k: n for k, n in stored.items() if n > self.attempts(*k)}
        assert not twice, f"evaluations stored more than once per attempt for (delivery, stage): {twice}"
        emitted = {k: sorted(v.values()) for k, v in self.verdicts.items() if len(v) > self.attempts(*k)}
        assert not emitted, f"more than one evaluation-done per attempt for (delivery, stage): {emitted}"
        for (context, stage, action), ids in self.effects.items():
            if action == "set":
                continue
            assert len(ids) == 1, f"{action} of delivery {context} in {stage} was carried out {len(ids)} times"
            other = "discard" if action == "promote" else "promote"
            assert not self.effects.get((context, stage, other)), f"delivery {context} was both promoted and discarded in {stage}"
        split = {k: sorted(v.values()) for k, v in self.dones.items() if len(set(v.values())) > 1}
        assert not split, f"a delivery's part in a stage ended in more than one way: {split}"

    def check_sizes(self) -> None:
        """No record exceeds 1 MiB (and no service ever tried to write one that does)."""
        if "sizes" not in self.checks:
            return
        for record in self.store.list({}):
            assert record.size() <= MAX_RECORD_BYTES, f"record {record.name} holds {record.size()} bytes"
        assert not self.store.refused, f"writes refused for passing {MAX_RECORD_BYTES} bytes: {self.store.refused[:3]}"

    def check_all(self) -> None:
        self.check_sizes()
        self.check_once()
        self.check_promotions()
        self.check_claims()
        self.check_waits()
        self.check_deadlines()

    # --- liveness ------------------------------------------------------------------------------
    def drain(self, budget: int = 20_000) -> None:
        """Deliver everything in flight (oldest first) and run every test unit, until quiet."""
        while self.bag or self.units:
            budget -= 1
            assert budget > 0, "the flow does not quieten: events keep coming"
            if self.units:
                self.run_unit(0)
                continue
            flight = self.bag[0]
            self.deliver(flight, give_up=flight.attempts >= 3)

    def finish(self) -> None:
        """Inputs stop: no more faults; deliver everything, tick past every deadline, repeat. Every
        delivery must reach a terminal ``done`` within a bounded number of ticks, and nothing may
        stay claimed or waiting."""
        self.backend.fault = None
        self.sli_provider.disarm()
        ticks = len(self.deliveries) * len(self.shipyard.stages) + 3
        for _ in range(ticks):
            self.drain()
            self.check_all()
            view = self.view()
            if all(self.delivery_ended(c) for c in self.deliveries) and not view.claims and not view.waits:
                break
            self.tick(2 * 86_400)
        self.drain()
        self.check_all()
        if "finish" not in self.checks:
            return
        stuck = sorted(
            f"{d.service} {d.image} ({d.context}): "
            + ", ".join(f"{s.name}={sorted(set(self.dones.get((d.context, s.name), {}).values()))}" for s in self.shipyard.stages)
            for d in self.deliveries.values() if not self.delivery_ended(d.context)
        )
        assert not stuck, f"deliveries without a terminal done after {ticks} ticks past every deadline: {stuck}"
        claims = self.view().claims
        assert not claims, f"stages still claimed after every delivery ended: {claims}"
        waits = self.view().waits
        assert not waits, f"waits left after every delivery ended: {waits}"
