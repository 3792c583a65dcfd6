"""The ONE place where the model test reads Sluice's internal records (and knows their bounds).

Everything else in ``tests/integration/flow/model`` talks to the services through ``handle(event)`` and to
the ``NoopBackend``; only this module knows how the services keep their waits (the ledger's
lanes and gate records, ``sluice.services.ledger``), so porting the model to another state layer means porting
this file.

It answers four questions, in the model's own small types:

- ``claims``: which delivery holds each stage, and until when (its deadline, if any);
- ``waits``: everything that waits for a delivery in a stage (the active run in its phase, a
  queued delivery, a quality gate), with its deadline, if any;
- ``stored_evaluations``: the evaluation history, as (stage, service, context, result, id);
  ``verdicts``: the same for the verdicts the ledger keeps on its runs;
- ``snapshot``: a delivery's event log, its stages' lanes and its evaluations, to compare
  before and after a replay.

``small_bounds`` shrinks the bounded memories of ended runs while a test runs, so the model
reaches their wrap-around (and the lane's horizon) within a few dozen steps (the small-scope
hypothesis); it is a no-op for every bound that no longer exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sluice.core.inconclusive import attempt_of
from sluice.core.ledger import Phase, Run, parse_time
from sluice.ports.backend import Placement
from sluice.ports.state import StateStore
from sluice.services.ledger import LaneRecord, Ledger
from sluice.services.records import KIND, PROJECT, SERVICE, STAGE, Records

#: A queued delivery waits for the claim ahead of it (no deadline of its own); other waits are
#: named by the phase of the run that waits.
QUEUED = "queued"


@dataclass(frozen=True)
class Claim:
    """Stage ``stage`` of ``service`` is held by delivery ``context`` until ``deadline`` (None: none)."""

    service: str
    stage: str
    context: str
    deadline: datetime | None


@dataclass(frozen=True)
class Wait:
    """Something of delivery ``context`` waits in ``stage`` of ``service`` (``kind``: see above)."""

    kind: str
    service: str
    stage: str
    context: str
    deadline: datetime | None


@dataclass(frozen=True)
class StoredEvaluation:
    service: str
    stage: str
    context: str
    result: str  # ``unreliable`` for one measured by a starved load generator: never a pass
    id: str
    attempt: int = 1  # the run's attempt (a stage with ``on_inconclusive: retry`` runs again)


def _lanes(store: StateStore, project: str) -> Iterator[LaneRecord]:
    """The lanes of ``project``, then the records of its running quality gates (lane-shaped)."""
    ledger = Ledger(Records(store))
    yield from ledger.lanes(project=project)
    yield from (found for found in ledger.gates() if found.placement.project == project)


def _time(text: str) -> datetime | None:
    return parse_time(text) if text else None


def _run_wait(kind: str, placement: Placement, run: Run) -> Wait:
    return Wait(kind, placement.service, placement.stage, run.context, _time(run.deadline))


def waits(store: StateStore, project: str) -> list[Wait]:
    """The active run of each lane (its kind is its phase), its queue, and the quality gates."""
    out: list[Wait] = []
    for found in _lanes(store, project):
        lane, placement = found.lane, found.placement
        if lane.active is not None:
            out.append(_run_wait(lane.active.phase.value, placement, lane.active))
        out.extend(Wait(QUEUED, placement.service, placement.stage, q.context, None) for q in lane.queue)
        out.extend(_run_wait(f"gate-{g.phase.value}", placement, g) for g in lane.gates if g.phase is not Phase.DONE)
    return out


def claims(store: StateStore, project: str) -> list[Claim]:
    """The stage claims: the active run of each lane, with its phase's deadline."""
    return [
        Claim(found.placement.service, found.placement.stage, found.lane.active.context, _time(found.lane.active.deadline))
        for found in _lanes(store, project) if found.lane.active is not None
    ]


#: The model's result for an evaluation whose measurement the tests called unreliable (a starved
#: load generator): whatever Keptn's verdict, it is no pass a build may be promoted on without a person.
UNRELIABLE = "unreliable"


def unreliable(sluice_record: Mapping[str, Any]) -> bool:
    """Whether an evaluation record (``evaluationdetails.sluice``) says its measurement was unreliable."""
    reasons = sluice_record.get("inconclusive_reasons") or []
    return any(isinstance(r, Mapping) and r.get("kind") == "unreliable_measurement" for r in reasons)


def verdicts(store: StateStore, project: str) -> list[StoredEvaluation]:
    """The gate verdicts the ledger keeps on its runs (active, gates and remembered finished
    ones); ``id`` is the evaluation's id."""
    out: list[StoredEvaluation] = []
    for found in _lanes(store, project):
        lane, placement = found.lane, found.placement
        runs = [*([lane.active] if lane.active is not None else []), *lane.gates, *lane.finished]
        out.extend(
            StoredEvaluation(
                placement.service, placement.stage, run.context,
                UNRELIABLE if run.verdict.unreliable else run.verdict.result, run.verdict.evaluation_id, run.attempt,
            )
            for run in runs if run.verdict is not None
        )
    return out


def stored_evaluations(store: StateStore, project: str) -> list[StoredEvaluation]:
    records = Records(store)
    out: list[StoredEvaluation] = []
    for record in store.list({KIND: "evaluations", PROJECT: project}):
        stage, service = record.labels.get(STAGE, ""), record.labels.get(SERVICE, "")
        for doc in records.evaluations(project, stage, service):
            out.append(StoredEvaluation(
                service, stage, str(doc.get("context", "")), UNRELIABLE if unreliable(doc) else str(doc.get("result")),
                str(doc.get("id")), attempt_of(doc.get("labels") or {}),
            ))
    return out


def snapshot(store: StateStore, project: str, context: str) -> dict[str, Any]:
    """What a replay of old events must not change: the delivery's event log, the lanes of the
    stages it went through and its evaluations."""
    records = Records(store)
    events = records.events(context)
    stages = {str((e.get("data") or {}).get("stage") or "") for e in events} - {""}
    services = {str((e.get("data") or {}).get("service") or "") for e in events} - {""}
    ledger = Ledger(records)
    lanes = {
        f"{stage}/{service}": ledger.lane(Placement(project, stage, service)).to_dict()
        for stage in sorted(stages) for service in sorted(services)
    }
    evaluations = sorted(
        (e.stage, e.service, e.result, e.id) for e in stored_evaluations(store, project) if e.context == context
    )
    return {"events": events, "deploy": lanes, "evaluations": evaluations}


@contextlib.contextmanager
def small_bounds(processed: int = 4, finished: int = 4) -> Iterator[None]:
    """Shrink the bounded memories of ended runs (the lane's ``FINISHED_LIMIT``; before the
    ledger: deploy's ``PROCESSED_LIMIT`` and the finished entries of evaluate and test) for the
    duration; bounds that do not exist are skipped."""
    import importlib

    wanted = {
        ("sluice.core.ledger", "FINISHED_LIMIT"): processed,
        ("sluice.core.deployment", "PROCESSED_LIMIT"): processed,
        ("sluice.services.evaluate", "FINISHED_LIMIT"): finished,
        ("sluice.services.testflow", "FINISHED_LIMIT"): finished,
    }
    saved: list[tuple[Any, str, Any]] = []
    for (module_name, attribute), value in wanted.items():
        module = importlib.import_module(module_name)
        if hasattr(module, attribute):
            saved.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, value)
    try:
        yield
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)
