"""The ledger: every transition of a lane, each in one compare-and-swap write.

Services ask it for a transition of one delivery's run (``advance``): in one write it checks
the run's phase, applies the effect and stores the events the transition caused. Asked again —
a duplicate of any age, a redelivery after a crash, the loser of a race — it changes nothing
and returns what the winner stored; asked from a wrong phase it changes nothing at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sluice.core.events import Event
from sluice.core.ledger import Lane, Run, Transition, record
from sluice.errors import SluiceError
from sluice.ports.backend import Placement
from sluice.services.records import KIND, PROJECT, SERVICE, STAGE, Records

log = logging.getLogger("sluice.ledger")

R = TypeVar("R")
KEY = "lane"
LANE_KIND = "stage"

#: A transition's effect: (lane, the run as found) → (new lane, events caused).
Effect = Callable[[Lane, Run], tuple[Lane, list[dict[str, Any]]]]


@dataclass(frozen=True)
class Advanced:
    """What a transition did: ``applied`` now, or not (``replies`` are then the ones the winner
    stored — empty when the run is unknown or in a phase the transition does not start from)."""

    applied: bool
    replies: list[dict[str, Any]]
    known: bool = True

    def events(self) -> list[Event]:
        return [Event.from_json_dict(e) for e in self.replies]


@dataclass(frozen=True)
class LaneRecord:
    """A lane as read, with where it lives."""

    placement: Placement
    lane: Lane


class Ledger:
    """Typed reads and one-write transitions of the lanes (``stage.<p>.<s>.<svc>`` records)."""

    def __init__(self, records: Records) -> None:
        self.records = records

    @staticmethod
    def name(placement: Placement) -> tuple[str, dict[str, str]]:
        return Records.scoped(LANE_KIND, placement.project, placement.stage, placement.service)

    # --- reads ---------------------------------------------------------------------------------
    def lane(self, placement: Placement) -> Lane:
        record = self.records.store.get(self.name(placement)[0])
        if record is None or KEY not in record.data:
            return Lane()
        return Lane.from_dict(json.loads(record.data[KEY]))

    def lanes(self, **labels: str) -> Iterator[LaneRecord]:
        """Every lane (optionally of one project/stage/service); an unreadable one is reported
        and skipped, so one bad record never stops a tick for everyone else."""
        selector = {KIND: LANE_KIND}
        for key, label in (("project", PROJECT), ("stage", STAGE), ("service", SERVICE)):
            if labels.get(key):
                selector[label] = labels[key]
        for stored in self.records.store.list(selector):
            try:
                placement = Placement(stored.labels[PROJECT], stored.labels[STAGE], stored.labels[SERVICE])
                yield LaneRecord(placement, Lane.from_dict(json.loads(stored.data[KEY])))
            except (KeyError, ValueError, TypeError) as err:
                log.error("lane record %s is unreadable, skipped: %s: %s", stored.name, type(err).__name__, err)

    # --- writes --------------------------------------------------------------------------------
    def change(self, placement: Placement, mutate: Callable[[Lane], tuple[Lane, R]]) -> R:
        """Apply ``mutate`` to the lane and write it back in one compare-and-swap (retried on
        conflicts; ``mutate`` must be pure). The lane is kept within its byte budget."""
        name, labels = self.name(placement)

        def apply(data: dict[str, str], _exists: bool) -> R:
            lane = Lane.from_dict(json.loads(data[KEY])) if KEY in data else Lane()
            new, result = mutate(lane)
            if new != lane:
                data[KEY] = new.encode()
            return result

        return self.records.update_data(name, labels, apply)

    def advance(self, placement: Placement, context: str, step: Transition, effect: Effect) -> Advanced:
        """Transition ``context``'s run by ``step`` (see the module docstring)."""

        def mutate(lane: Lane) -> tuple[Lane, Advanced]:
            run = lane.run(context)
            if run is None:
                return lane, Advanced(False, [], known=False)
            stored = run.stored(step)
            if stored is not None:
                return lane, Advanced(False, stored)
            if not run.can(step):
                return lane, Advanced(False, [])
            new, replies = effect(lane, run)
            return _remember(new, context, step, replies), Advanced(True, replies)

        return self.change(placement, mutate)


def _remember(lane: Lane, context: str, step: Transition, replies: list[dict[str, Any]]) -> Lane:
    """Store ``replies`` under ``step`` on ``context``'s run wherever it now is."""
    run = lane.run(context)
    if run is None:
        raise SluiceError(f"ledger: the run of {context} vanished during its own transition {step.value}")
    updated = record(run, step, replies)
    if any(f.context == context for f in lane.finished):
        return replace(lane, finished=tuple(updated if f.context == context else f for f in lane.finished))
    return lane.put(updated)
