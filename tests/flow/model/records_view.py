"""The ONE place where the model test reads Sluice's internal records (and knows their bounds).

Everything else in ``tests/flow/model`` talks to the services through ``handle(event)`` and to
the ``NoopBackend``; only this module knows how the deploy, test, evaluate and gatekeeper
services keep their waits, so porting the model to another state layer means porting this file.

It answers four questions, in the model's own small types:

- ``claims``: which delivery holds each stage, and until when (its deadline, if any);
- ``waits``: everything that waits for a delivery in a stage (a queued delivery, a running test,
  a pending evaluation, a held promotion), with its deadline, if any;
- ``stored_evaluations``: the evaluation history, as (stage, service, context, result, id);
- ``snapshot``: a delivery's event log, its stages' deploy records and its evaluations, to
  compare before and after a replay.

``small_bounds`` shrinks the bounded memories of handled events while a test runs, so the model
reaches their wrap-around within a few dozen steps (the small-scope hypothesis); it is a no-op
for every bound that no longer exists.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sluice.ports.state import StateStore

#: Waits without a deadline of their own: a queued delivery waits for the claim ahead of it.
QUEUED, TEST_RUN, EVALUATION, APPROVAL = "queued", "test-run", "evaluation", "approval"


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
    result: str
    id: str


def _json(store: StateStore, name: str, key: str, default: Any) -> Any:
    record = store.get(name)
    if record is None or key not in record.data:
        return default
    return json.loads(record.data[key])


def _scope(name: str, project: str) -> tuple[str, str] | None:
    """``<kind>.<project>.<stage>.<service>`` → (stage, service)."""
    parts = name.split(".")
    if len(parts) != 4 or parts[1] != project:
        return None
    return parts[2], parts[3]


def _records(store: StateStore, kind: str, project: str) -> Iterator[tuple[str, str, str]]:
    for record in store.list({"sluice.dev/kind": kind, "sluice.dev/project": project}):
        scope = _scope(record.name, project)
        if scope is not None:
            yield record.name, *scope


def _time(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


def waits(store: StateStore, project: str) -> list[Wait]:
    out: list[Wait] = []
    for name, stage, service in _records(store, "deploy", project):
        for queued in _json(store, name, "state", {}).get("queue", []):
            out.append(Wait(QUEUED, service, stage, queued["context"], None))
    for name, stage, service in _records(store, "tests", project):
        for run in _json(store, name, "runs", {}).values():
            if run.get("state") == "running":
                out.append(Wait(TEST_RUN, service, stage, run["event"]["shkeptncontext"], _time(run.get("deadline"))))
    for name, stage, service in _records(store, "pending", project):
        for context, entry in _json(store, name, "pending", {}).items():
            if entry.get("state") == "waiting":
                out.append(Wait(EVALUATION, service, stage, context, _time(entry.get("deadline"))))
    for name, stage, service in _records(store, "gate", project):
        for context, held in _json(store, name, "pending", {}).items():
            out.append(Wait(APPROVAL, service, stage, context, _time(held.get("deadline"))))
    return out


def claims(store: StateStore, project: str) -> list[Claim]:
    """The stage claims. The current deploy record has no deadline of its own: a claim's deadline
    is the earliest deadline of what waits for its delivery in that stage."""
    pending = waits(store, project)
    out: list[Claim] = []
    for name, stage, service in _records(store, "deploy", project):
        context = _json(store, name, "state", {}).get("active_context", "")
        if not context:
            continue
        deadlines = [
            w.deadline for w in pending
            if (w.service, w.stage, w.context) == (service, stage, context) and w.deadline is not None
        ]
        out.append(Claim(service, stage, context, min(deadlines) if deadlines else None))
    return out


def stored_evaluations(store: StateStore, project: str) -> list[StoredEvaluation]:
    out: list[StoredEvaluation] = []
    for name, stage, service in _records(store, "evaluations", project):
        for doc in _json(store, name, "history", []):
            out.append(StoredEvaluation(service, stage, str(doc.get("context", "")), str(doc.get("result")), str(doc.get("id"))))
    return out


def snapshot(store: StateStore, project: str, context: str) -> dict[str, Any]:
    """What a replay of old events must not change: the delivery's event log, the deploy records
    of the stages it went through and its evaluations."""
    events = _json(store, f"context.{context}", "events", [])
    stages = {str((e.get("data") or {}).get("stage") or "") for e in events} - {""}
    services = {str((e.get("data") or {}).get("service") or "") for e in events} - {""}
    deploy = {
        f"{stage}/{service}": _json(store, f"deploy.{project}.{stage}.{service}", "state", {})
        for stage in sorted(stages) for service in sorted(services)
    }
    for state in deploy.values():
        state.pop("processed", None)  # the handled-event memory is bookkeeping, not the stage's state
    evaluations = sorted(
        (e.stage, e.service, e.result, e.id) for e in stored_evaluations(store, project) if e.context == context
    )
    return {"events": events, "deploy": deploy, "evaluations": evaluations}


@contextlib.contextmanager
def small_bounds(processed: int = 4, finished: int = 4) -> Iterator[None]:
    """Shrink the bounded memories of handled events (deploy ``PROCESSED_LIMIT``, the finished
    entries of evaluate and test) for the duration; bounds that no longer exist are skipped."""
    import importlib

    wanted = {
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
