"""The ledger's records and transitions (pure): one *lane* per service in a stage.

A lane (record ``stage.<project>.<stage>.<service>``) holds everything that waits in that
stage for that service, so every state change is one compare-and-swap write of one record:

- ``serving``: what the stage runs (primary, candidate, weights, last good image, URLs);
- ``active``: the delivery that holds the stage — a ``Run`` with an explicit ``Phase`` and a
  deadline for that phase; ``queue``: the deliveries waiting for it (first come, first served);
- ``gates``: quality gates without a deployment (``start-evaluation``), each a ``Run`` too;
- ``finished``: a bounded memory of ended runs, and ``horizon``: the newest event time among
  the runs it forgot. A ``set`` for a delivery the lane does not know and that is older than
  the horizon is a stale duplicate: it is refused, never re-run.

A run moves through the phases in one direction only::

    DEPLOYING → DEPLOYED → TESTING → TESTED → EVALUATING → EVALUATED → HELD ┐
        │           └────────────→ TESTED        └────────→ EVALUATED      ├→ PROMOTING ┐
        └ (every phase has a deadline; a tick ends an expired phase with     └→ DISCARDING ┴→ DONE
           an explicit failure, which moves it on like any other outcome)

Each transition is a ``Transition``. A transition stores the events it caused under its step
(``Run.replies``); asked again — a duplicate delivery, the loser of a race (a timeout tick and
a late answer), a redelivery after a crash between the write and the reply — it changes
nothing and returns those stored events. A transition from any other phase changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field, fields, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.core.deployment import Serving
from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.strategies import DeploymentStrategy, OnTimeout, TestStrategy
from sluice.core.times import after as after
from sluice.core.times import before as before
from sluice.core.times import parse_time as parse_time
from sluice.core.verdict import Verdict

if TYPE_CHECKING:  # loaded where a run has a canary (run_from_dict): most runs have none
    from sluice.core.canary import CanaryState
    from sluice.core.events import Outcome  # loaded where a stored run has ended (``_run``)

    # loaded where a run has one (``sluice.core.ledger_parts``): as if defined here, for mypy too
    from sluice.core.ledger_parts import Hold as Hold
    from sluice.core.ledger_parts import PendingEvaluation as PendingEvaluation
    from sluice.core.ledger_parts import Queued as Queued
    from sluice.core.ledger_parts import TestRun as TestRun

#: Byte budget of a lane (a ConfigMap holds 1 MiB; the rest is headroom for keys and labels).
LANE_BUDGET = 700 * 1024
#: Finished runs remembered per lane at most (older ones only move the horizon).
FINISHED_LIMIT = 100
#: Deliveries that may wait for one stage; a later one is refused with an explicit event.
QUEUE_LIMIT = 50
#: Quality gates without a deployment kept per lane.
GATES_LIMIT = 20
#: Size limit of an SLO file (it travels in the evaluation-done event, as Keptn's does).
SLO_MAX_BYTES = 64 * 1024


class Phase(FastStrEnum):
    """Where a run is; the name says what it waits for."""

    DEPLOYING = "deploying"  # the backend deploys the candidate
    DEPLOYED = "deployed"  # deployment-finished sent: waits for the test function
    TESTING = "testing"  # a test unit runs
    TESTED = "tested"  # tests-finished sent: waits for the evaluate function
    EVALUATING = "evaluating"  # get-sli sent: waits for the SLI provider
    EVALUATED = "evaluated"  # evaluation-done sent: waits for the gatekeeper
    HELD = "held"  # the promotion waits for a person
    PROMOTING = "promoting"  # promote sent: waits for the deploy function
    DISCARDING = "discarding"  # discard sent: waits for the deploy function
    DONE = "done"


class Transition(FastStrEnum):
    """A transition; a run stores the events each step caused."""

    DEPLOYED = "deployed"
    TESTING = "testing"
    TESTED = "tested"
    EVALUATING = "evaluating"
    EVALUATED = "evaluated"
    DECIDED = "decided"
    APPROVED = "approved"
    FINISHED = "finished"
    PAUSED = "paused"  # a canary: hold at the next judged step
    RESUMED = "resumed"  # a paused canary that was not held yet goes on
    ABORTED = "aborted"  # a canary stopped by a person: weight back to 0, candidate discarded, rolled_back


#: The phases each step starts from.
SOURCES: Mapping[Transition, frozenset[Phase]] = {
    Transition.DEPLOYED: frozenset({Phase.DEPLOYING}),
    Transition.TESTING: frozenset({Phase.DEPLOYED}),
    Transition.TESTED: frozenset({Phase.DEPLOYED, Phase.TESTING}),
    Transition.EVALUATING: frozenset({Phase.TESTED}),
    Transition.EVALUATED: frozenset({Phase.TESTED, Phase.EVALUATING}),
    Transition.DECIDED: frozenset({Phase.EVALUATED}),
    Transition.APPROVED: frozenset({Phase.HELD}),
    Transition.FINISHED: frozenset({Phase.PROMOTING, Phase.DISCARDING}),
    # a canary is steered while a step is under way, the weight-setting (deploying) included: a
    # pause or resume is recorded at once (the newest by its signed time stands); an abort while
    # the backend sets a weight is recorded and carried out when the setting ends (the deployed
    # transition discards instead); a held step may be aborted too (a resume there approves it)
    Transition.PAUSED: frozenset({Phase.DEPLOYING, Phase.DEPLOYED, Phase.TESTING, Phase.TESTED, Phase.EVALUATING,
                                  Phase.EVALUATED}),
    Transition.RESUMED: frozenset({Phase.DEPLOYING, Phase.DEPLOYED, Phase.TESTING, Phase.TESTED, Phase.EVALUATING,
                                   Phase.EVALUATED}),
    Transition.ABORTED: frozenset({Phase.DEPLOYING, Phase.DEPLOYED, Phase.TESTING, Phase.TESTED, Phase.EVALUATING,
                                   Phase.EVALUATED, Phase.HELD}),
}

#: Steering transitions are not one per attempt: a pause and a resume may come many times in
#: one step, so each steering event is its own step (keyed by its id, ``steering_key``), and an
#: abort is one per run. At most this many steering events are remembered per run.
STEERING_LIMIT = 64


def steering_key(step: Transition, event_id: str) -> str:
    """Where a steering event's outcome is stored on the run: pause/resume per event, abort once."""
    return step.value if step is Transition.ABORTED else f"{step.value}:{event_id}"

#: How long a run may stay in a phase that waits for the next function (the broker's retries
#: take minutes at most); phases with their own length (deploying, testing, evaluating, held)
#: get their deadline from the settings or the test's length.
HANDOFF_S = 300.0


class HoldDecision(FastStrEnum):
    """How a held promotion ended."""

    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"


@frozen
class Judgement:
    """The gate's verdict for a run (stored with the transition that produced it, as ``verdict``);
    an ``inconclusive`` one could not be judged (the reasons say why), whatever its result."""

    result: Verdict
    score: float
    evaluation_id: str
    inconclusive: bool = False
    reasons: tuple[str, ...] = ()
    #: A reason says the measurement itself was unreliable (``unreliable_measurement``): under
    #: ``on_inconclusive: fail`` the stage fails whatever the verdict (it was computed from it).
    unreliable: bool = False


@frozen
class Run:
    """One delivery (``context``) of ``image`` through one stage."""

    context: str
    image: str
    phase: Phase
    since: str  # when the run entered its phase
    deadline: str  # when the phase expires ('' = never: only DONE)
    event_time: str = ""  # time of the event that started the run (for the horizon)
    labels: Mapping[str, str] = field(default_factory=dict)
    test: TestRun | None = None
    evaluation: PendingEvaluation | None = None
    verdict: Judgement | None = None
    hold: Hold | None = None
    #: How the run ended, once DONE (stored as ``""`` before).
    outcome: Outcome | None = field(default=None, metadata={"none_as": ""})
    reason: str = ""
    attempt: int = 1  # raised when an inconclusive evaluation re-runs the tests (on_inconclusive: retry) and by each canary step
    canary: CanaryState | None = None  # a canary stage's run: its step, weight and judged steps (core.canary)
    replies: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    def key(self, step: Transition) -> str:
        """Where ``step``'s events are stored: per attempt, so a re-run passes the same steps again."""
        return step.value if self.attempt == 1 else f"{step.value}@{self.attempt}"

    def stored(self, step: Transition) -> list[dict[str, Any]] | None:
        return self.replies.get(self.key(step))

    def can(self, step: Transition, key: str = "") -> bool:
        return self.phase in SOURCES[step] and (key or self.key(step)) not in self.replies

    def steered(self) -> int:
        """How many steering events (pause/resume) the run remembers."""
        return sum(1 for k in self.replies if k.startswith((Transition.PAUSED.value + ":", Transition.RESUMED.value + ":")))


@frozen
class Lane:
    """Everything that waits in one stage for one service (one record)."""

    serving: Serving = field(default_factory=Serving)
    active: Run | None = None
    queue: tuple[Queued, ...] = ()
    gates: tuple[Run, ...] = ()
    finished: tuple[Run, ...] = ()
    horizon: str = ""
    #: Contexts of older finished runs the store keeps beside the lane (sealed chunks, read only
    #: to answer a duplicate): not in ``finished``, and a ``set`` for one of them is stale.
    sealed: frozenset[str] = frozenset()

    # --- lookups ---------------------------------------------------------------------------
    def run(self, context: str) -> Run | None:
        """The run of ``context`` here: active, a gate, or finished."""
        if self.active is not None and self.active.context == context:
            return self.active
        for run in (*self.gates, *reversed(self.finished)):
            if run.context == context:
                return run
        return None

    def knows(self, context: str) -> bool:
        return self.run(context) is not None or any(q.context == context for q in self.queue)

    def stale(self, context: str, event_time: str) -> bool:
        """True for a delivery this lane forgot: unknown, and no newer than the horizon (the
        newest event time among the forgotten, which is itself forgotten)."""
        if self.knows(context):
            return False
        return context in self.sealed or (bool(self.horizon and event_time) and not before(self.horizon, event_time))

    # --- changes ---------------------------------------------------------------------------
    def put(self, run: Run) -> Lane:
        """``run`` replaces the run of its context (the active one, or a gate)."""
        if self.active is not None and self.active.context == run.context:
            return replace(self, active=run)
        gates = tuple(run if g.context == run.context else g for g in self.gates)
        if gates == self.gates and all(g.context != run.context for g in self.gates):
            gates = (*self.gates, run)[-GATES_LIMIT:]
        return replace(self, gates=gates)

    def retire(self, run: Run) -> Lane:
        """``run`` has ended: keep a small summary of it among the finished ones."""
        active = None if self.active is not None and self.active.context == run.context else self.active
        gates = tuple(g for g in self.gates if g.context != run.context)
        return replace(self, active=active, gates=gates).remember(run)

    def remember(self, run: Run) -> Lane:
        """Add an ended ``run`` (as a small summary: its outcome and last events) to the finished."""
        summary = replace(
            run, test=None, evaluation=None,
            replies={k: v for k, v in run.replies.items() if k.split("@")[0] == Transition.FINISHED.value},
        )
        return replace(self, finished=(*self.finished, summary)).bounded()

    def bounded(self) -> Lane:
        """Forget the oldest finished runs until the lane fits its count and byte budgets; the
        horizon moves to the newest event time among the forgotten."""
        drop = max(0, len(self.finished) - FINISHED_LIMIT)
        excess = self.size() - LANE_BUDGET
        while excess > 0 and drop < len(self.finished):
            excess -= len(json.dumps(_plain(self.finished[drop]), separators=(",", ":")))
            drop += 1
        if not drop:
            return self
        horizon = self.horizon
        for forgotten in self.finished[:drop]:
            if forgotten.event_time and (not horizon or before(horizon, forgotten.event_time)):
                horizon = forgotten.event_time
        return replace(self, finished=self.finished[drop:], horizon=horizon)

    def size(self) -> int:
        return len(self.to_json())

    def encode(self) -> str:
        """The stored form, within the lane's budgets (serialised once when nothing is dropped)."""
        text = self.to_json()
        if len(text) <= LANE_BUDGET and len(self.finished) <= FINISHED_LIMIT:
            return text
        return self.bounded().to_json()

    # --- encoding --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The stored form (``sealed`` is kept by the store beside the lane, not in it)."""
        doc: dict[str, Any] = _plain(self)
        doc.pop("sealed", None)
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Lane:
        return Lane(
            serving=_serving(doc.get("serving") or {}),
            active=_run(doc.get("active")),
            queue=tuple(_load(_part("Queued"), q) for q in doc.get("queue") or ()),
            gates=tuple(r for r in (_run(g) for g in doc.get("gates") or ()) if r is not None),
            finished=tuple(r for r in (_run(g) for g in doc.get("finished") or ()) if r is not None),
            horizon=str(doc.get("horizon") or ""),
        )


# --- time ----------------------------------------------------------------------------------

# ``parse_time``, ``before``, ``after``: in ``sluice.core.times`` (imported above, so names of this
# module too), which the records' delivery index uses without loading the ledger.


def expired(run: Run, now: str) -> bool:
    return bool(run.deadline) and run.phase is not Phase.DONE and not before(now, run.deadline)


# --- transitions (pure) ---------------------------------------------------------------------

def enter(run: Run, phase: Phase, now: str, wait_s: float | None, **changes: Any) -> Run:
    """``run`` in ``phase`` from ``now`` on, with a deadline ``wait_s`` later (None: no deadline)."""
    deadline = after(now, wait_s) if wait_s is not None else ""
    return replace(run, phase=phase, since=now, deadline=deadline, **changes)


def record(run: Run, key: str, replies: list[dict[str, Any]]) -> Run:
    """Store the events a step caused under its ``key`` (``Run.key``): a duplicate gets them again."""
    return replace(run, replies={**run.replies, key: list(replies)})


# --- generic (de)serialisation of the frozen records ----------------------------------------

T = TypeVar("T")


_NAMES: dict[type, tuple[str, ...]] = {}
_NONE_AS: dict[type, dict[str, object]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """A record class's field names (looked up once per class: loading a lane is frequent)."""
    if cls not in _NAMES:
        _NAMES[cls] = tuple(f.name for f in fields(cls))
        _NONE_AS[cls] = {f.name: f.metadata["none_as"] for f in fields(cls) if "none_as" in f.metadata}
    return _NAMES[cls]


def _plain(value: Any) -> Any:
    """JSON-ready form of a record: dataclasses and tuples of them converted (enums as their
    values, an absent value as its field's ``none_as``); mappings and lists inside a record
    (labels, stored events) are JSON already and pass as they are."""
    if hasattr(value, "__dataclass_fields__"):
        names = _names(type(value))
        none_as = _NONE_AS[type(value)]
        return {
            name: none_as[name] if name in none_as and getattr(value, name) is None else _plain(getattr(value, name))
            for name in names
        }
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping) and not isinstance(value, dict):
        return dict(value)
    return value


def _load(cls: type[T], doc: Mapping[str, Any]) -> T:
    known = _names(cls)
    return cls(**{k: v for k, v in doc.items() if k in known})


def _run(doc: object) -> Run | None:
    if not isinstance(doc, Mapping):
        return None
    known = _names(Run)
    values = {k: v for k, v in doc.items() if k in known}
    values["phase"] = Phase(values["phase"])
    if values.get("outcome"):
        from sluice.core.events import Outcome  # cold start: only an ended run has an outcome

        values["outcome"] = Outcome(values["outcome"])
    else:
        values["outcome"] = None
    values["test"] = _load(_part("TestRun"), doc["test"]) if doc.get("test") else None
    values["evaluation"] = _pending(doc["evaluation"]) if doc.get("evaluation") else None
    if doc.get("verdict"):
        verdict = dict(doc["verdict"])
        verdict["result"] = Verdict(verdict["result"])
        verdict["reasons"] = tuple(verdict.get("reasons") or ())
        values["verdict"] = _load(Judgement, verdict)
    else:
        values["verdict"] = None
    if doc.get("hold"):
        hold = dict(doc["hold"])
        hold["result"] = Verdict(hold["result"])
        hold["on_timeout"] = OnTimeout(hold.get("on_timeout") or OnTimeout.DECLINE.value)
        hold["decision"] = HoldDecision(hold["decision"]) if hold.get("decision") else None
        values["hold"] = _load(_part("Hold"), hold)
    values["canary"] = None
    if isinstance(doc.get("canary"), Mapping):
        from sluice.core.canary import CanaryState

        values["canary"] = CanaryState.from_dict(doc["canary"])
    values["labels"] = dict(doc.get("labels") or {})
    values["replies"] = {str(k): list(v) for k, v in (doc.get("replies") or {}).items()}
    return Run(**values)



def _pending(doc: Mapping[str, Any]) -> PendingEvaluation:
    values = dict(doc)
    values["teststrategy"] = TestStrategy(values.get("teststrategy") or "")
    values["deploymentstrategy"] = DeploymentStrategy(values["deploymentstrategy"]) if values.get("deploymentstrategy") else None
    return _load(_part("PendingEvaluation"), values)


def _serving(doc: Mapping[str, Any]) -> Serving:
    values = dict(doc)
    if values.get("strategy"):
        values["strategy"] = DeploymentStrategy(values["strategy"])
    return _load(Serving, values)


# --- the parts most events never build (``sluice.core.ledger_parts``), loaded on first use -----

_PARTS = frozenset({"TestRun", "PendingEvaluation", "Hold", "Queued"})


def _part(name: str) -> Any:
    import sluice.core.ledger_parts as parts  # cold start: only a run that has one loads them

    value = getattr(parts, name)
    globals()[name] = value  # later lookups find it without this function
    return value


if not TYPE_CHECKING:  # for mypy the names are the TYPE_CHECKING imports above

    def __getattr__(name: str) -> Any:
        if name in _PARTS:
            return _part(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
