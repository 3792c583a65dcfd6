"""What-if replay over the stored history (read-only): ``sluice evaluate --replay`` and the web view.

Reads a service's stored evaluations in a stage (the archive first, then the store; oldest
first, each once) and hands them to the pure :func:`sluice.core.replay.replay` with the new SLO
and the stage's data rules. Writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sluice.core.replay import ReplayReport, StoredEvaluation, replay
from sluice.core.scoring import EvaluationResult
from sluice.core.slo import Slo
from sluice.errors import NotFoundError, ValidationError
from sluice.services.records import Records

__all__ = ["replay_history", "stored_evaluations"]

log = logging.getLogger("sluice.replay")


def stored_evaluations(docs: Iterable[Mapping[str, Any]], source: str) -> tuple[list[StoredEvaluation], list[str]]:
    """The readable stored evaluations of ``docs`` (oldest first, each id once) and a sentence for
    each one skipped as unreadable."""
    out: list[StoredEvaluation] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for i, doc in enumerate(docs):
        ident = str(doc.get("id", "")) if isinstance(doc, Mapping) else ""
        if ident and ident in seen:
            continue
        try:
            result = EvaluationResult.from_dict(doc, f"{source}[{i}]")
        except ValidationError as err:
            skipped.append(f"skipped an unreadable stored evaluation: {err}")
            continue
        seen.add(ident)
        out.append(StoredEvaluation(result, image=str(doc.get("image", "")), time=str(doc.get("time", ""))))
    return out, skipped


def replay_history(
    records: Records, project: str, stage: str, service: str, slo: Slo, last: int | None = None,
    *, include_archive: bool = True,
) -> tuple[ReplayReport, list[str]]:
    """Replay the stage's whole stored history of ``service`` under ``slo``; show the newest ``last``.

    ``include_archive=False`` replays only what the store keeps (bounded: the web view's page must
    read a bounded number of records; the CLI reads the archive too).

    ``NotFoundError`` when the project, stage or service does not exist (nothing is created).
    Returns the report and the notes on stored evaluations it had to skip.
    """
    info = records.require_service(project, service)
    stages = {s.name: s for s in info.shipyard.stages}
    if stage not in stages:
        raise NotFoundError(f"stage {stage!r} is not in the shipyard of project {project!r} (stages: {', '.join(stages)})")
    rules = stages[stage].inconclusive.rules
    archived = records.archived_evaluations(project, stage, service) if include_archive else []
    docs = [*archived, *records.evaluations(project, stage, service)]
    stored, skipped = stored_evaluations(docs, f"evaluations of {service} in {project}/{stage}")
    for note in skipped:
        log.warning("%s", note)
    report = replay(slo, stored, rules=rules)
    return report.last(last), skipped
