"""The ledger: every transition of a lane, each in one compare-and-swap write.

Services ask it for a transition of one delivery's run (``advance``): in one write it checks
the run's phase, applies the effect and stores the events the transition caused. Asked again —
a duplicate of any age, a redelivery after a crash, the loser of a race — it changes nothing
and returns what the winner stored; asked from a wrong phase it changes nothing at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sluice.core.events import Event
from sluice.core.ledger import Lane, Phase, Run, Transition, record
from sluice.errors import SluiceError
from sluice.ports.backend import Placement
from sluice.services.records import KIND, PROJECT, SERVICE, STAGE, Records

log = logging.getLogger("sluice.ledger")

R = TypeVar("R")
KEY = "lane"
#: The lane's finished runs are stored under a key of their own (same record, same write), and
#: the few of them the status views read under another, so a read that does not look up old
#: runs parses no history: ``head``.
FINISHED = "finished"
RECENT = "recent"
LANE_KIND = "stage"
GATE_KIND = "gate"
#: Label of a lane record: "true" while a run or a gate is in the lane (written in the same
#: write as the lane), so ticks list only those and never read the idle lanes' histories.
BUSY = "sluice.dev/busy"
#: A record whose presence says every lane record carries ``BUSY`` (lanes written before the
#: label existed are labelled by the first tick that does not find it).
LABELLED = "ledger.busy-labels"

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
    name: str = ""


class Ledger:
    """Typed reads and one-write transitions of the lanes (``stage.<p>.<s>.<svc>`` records)."""

    def __init__(self, records: Records) -> None:
        self.records = records

    @staticmethod
    def name(placement: Placement, gate: str = "") -> tuple[str, dict[str, str]]:
        """The lane's record, or (``gate``: a context) the record of one quality gate without a
        deployment: each gate is a record of its own while it runs, so no number of concurrent
        gates can push a lane past its budget."""
        if not gate:
            return Records.scoped(LANE_KIND, placement.project, placement.stage, placement.service)
        name, labels = Records.scoped(GATE_KIND, placement.project, placement.stage, placement.service)
        return f"{name}.{gate}", {**labels, "sluice.dev/context": gate}

    # --- reads ---------------------------------------------------------------------------------
    def lane(self, placement: Placement, gate: str = "") -> Lane:
        record = self.records.store.get(self.name(placement, gate)[0])
        if record is None or KEY not in record.data:
            return Lane()
        return decode(record.data)

    def head(self, placement: Placement) -> Lane:
        """The lane with only the finished runs the status views read (the newest with an
        approval decision, the newest with a canary): its history is not parsed."""
        record = self.records.store.get(self.name(placement)[0])
        if record is None or KEY not in record.data:
            return Lane()
        if FINISHED not in record.data:  # stored before the split
            lane = decode(record.data)
            return replace(lane, finished=tuple(Lane.from_dict({"finished": recent(_plain_runs(lane))}).finished))
        return decode(record.data, finished=RECENT)

    def run(self, placement: Placement, context: str) -> Run | None:
        """``context``'s run in this stage: in the lane, else its running quality gate."""
        found = self.lane(placement).run(context)
        return found if found is not None else self.lane(placement, context).run(context)

    def lanes(self, **labels: str) -> Iterator[LaneRecord]:
        """Every lane (optionally of one project/stage/service); an unreadable one is reported
        and skipped, so one bad record never stops a tick for everyone else."""
        return self._records(LANE_KIND, labels)

    def busy(self) -> Iterator[LaneRecord]:
        """The lanes with a run or a quality gate in them (what a tick looks at), by a
        label-selected list: idle lanes are not read, whatever their history."""
        if self.records.store.get(LABELLED) is None:
            self._label_lanes()
        return self._records(LANE_KIND, {}, {BUSY: "true"})

    def _label_lanes(self) -> None:
        """Label every lane written before ``BUSY`` existed (one full list, once per store)."""
        for stored in self.records.store.list({KIND: LANE_KIND}):
            if BUSY not in stored.labels and {PROJECT, STAGE, SERVICE} <= set(stored.labels):
                placement = Placement(stored.labels[PROJECT], stored.labels[STAGE], stored.labels[SERVICE])
                self.change(placement, lambda lane: (lane, None))
        self.records.update_data(LABELLED, {KIND: "ledger"}, lambda data, _exists: data.update(lanes="labelled"))

    def gates(self) -> Iterator[LaneRecord]:
        """Every running quality gate (each in a record of its own)."""
        return self._records(GATE_KIND, {})

    def _records(self, kind: str, labels: dict[str, str], extra: dict[str, str] | None = None) -> Iterator[LaneRecord]:
        selector = {KIND: kind, **(extra or {})}
        for key, label in (("project", PROJECT), ("stage", STAGE), ("service", SERVICE)):
            if labels.get(key):
                selector[label] = labels[key]
        for stored in self.records.store.list(selector):
            try:
                placement = Placement(stored.labels[PROJECT], stored.labels[STAGE], stored.labels[SERVICE])
                yield LaneRecord(placement, decode(stored.data), stored.name)
            except (KeyError, ValueError, TypeError) as err:
                log.error("lane record %s is unreadable, skipped: %s: %s", stored.name, type(err).__name__, err)

    # --- writes --------------------------------------------------------------------------------
    def change(self, placement: Placement, mutate: Callable[[Lane], tuple[Lane, R]], gate: str = "") -> R:
        """Apply ``mutate`` to the lane (or a gate's record) and write it back in one
        compare-and-swap (retried on conflicts; ``mutate`` must be pure), within its byte budget.
        The record's ``BUSY`` label is set from the new lane in the same write."""
        name, labels = self.name(placement, gate)

        def apply(data: dict[str, str], exists: bool) -> R:
            lane = decode(data) if KEY in data else Lane()
            new, result = mutate(lane)
            if new != lane or (exists and FINISHED not in data):  # an older lane moves to the split layout
                encode(new, data)  # an absent lane left as it was is not created
            labels[BUSY] = "true" if new.active is not None or new.gates else "false"  # read by update_data after apply
            return result

        return self.records.update_data(name, labels, apply)

    def advance(self, placement: Placement, context: str, step: Transition, effect: Effect, key: str = "") -> Advanced:
        """Transition ``context``'s run by ``step`` (see the module docstring): the run in the
        lane, else its quality gate's record. ``key``: where the step's events are stored when
        not ``Run.key(step)`` (steering: ``core.ledger.steering_key``)."""
        done = self._advance(placement, context, step, effect, "", key)
        if done.known:
            return done
        return self._advance(placement, context, step, effect, context, key)

    def open_gate(self, placement: Placement, run: Run) -> bool:
        """Start a quality gate without a deployment (its own record); False when this stage
        knows the delivery already, or it is older than everything the lane remembers."""
        lane = self.lane(placement)
        if lane.knows(run.context) or lane.stale(run.context, run.event_time):
            return False
        return self.change(placement, lambda gate: (gate, False) if gate.run(run.context) else (gate.put(run), True),
                           gate=run.context)

    def close_gate(self, placement: Placement, context: str) -> None:
        """A gate that ended: its summary joins the lane's finished runs, its record goes."""
        ended = self.lane(placement, context).run(context)
        if ended is None or ended.phase is not Phase.DONE:
            return
        self.change(placement, lambda lane: (lane if lane.knows(context) else lane.remember(ended), None))
        self.records.store.delete(self.name(placement, context)[0])

    def _advance(self, placement: Placement, context: str, step: Transition, effect: Effect, gate: str,
                 given_key: str = "") -> Advanced:
        if gate and self.records.store.get(self.name(placement, gate)[0]) is None:
            return Advanced(False, [], known=False)

        def mutate(lane: Lane) -> tuple[Lane, Advanced]:
            run = lane.run(context)
            if run is None:
                return lane, Advanced(False, [], known=False)
            stored = run.replies.get(given_key) if given_key else run.stored(step)
            if stored is not None:
                return lane, Advanced(False, stored)
            if not run.can(step, given_key):
                return lane, Advanced(False, [])
            key = given_key or run.key(step)  # the attempt the step belongs to, before the effect (a retry raises it)
            new, replies = effect(lane, run)
            return _remember(new, context, key, replies), Advanced(True, replies)

        return self.change(placement, mutate, gate=gate)


def decode(data: Mapping[str, str], finished: str = FINISHED) -> Lane:
    """The lane stored in a record's ``data`` (with the finished runs under ``finished``)."""
    doc = json.loads(data[KEY])
    if finished in data:
        doc["finished"] = json.loads(data[finished])
    return Lane.from_dict(doc)


def encode(lane: Lane, data: dict[str, str]) -> None:
    """Store ``lane`` (within its budgets) in ``data``: the lane, its finished runs, the recent ones."""
    doc = json.loads(lane.encode())
    finished = doc.pop("finished", [])
    data[KEY] = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    data[FINISHED] = json.dumps(finished, separators=(",", ":"), sort_keys=True)
    data[RECENT] = json.dumps(recent(finished), separators=(",", ":"), sort_keys=True)


def recent(finished: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of the finished runs (oldest first), the newest with an approval decision and the newest
    with a canary, oldest first: what ``readmodel.project_status`` shows of the past."""
    picks = set()
    for wanted in (lambda r: (r.get("hold") or {}).get("decision") is not None, lambda r: r.get("canary") is not None):
        picks.update([next((i for i in reversed(range(len(finished))) if wanted(finished[i])), -1)])
    return [finished[i] for i in sorted(picks - {-1})]


def _plain_runs(lane: Lane) -> list[dict[str, Any]]:
    return list(lane.to_dict().get("finished", []))


def _remember(lane: Lane, context: str, key: str, replies: list[dict[str, Any]]) -> Lane:
    """Store ``replies`` under ``key`` on ``context``'s run wherever it now is."""
    run = lane.run(context)
    if run is None:
        raise SluiceError(f"ledger: the run of {context} vanished during its own transition {key}")
    updated = record(run, key, replies)
    if any(f.context == context for f in lane.finished):
        return replace(lane, finished=tuple(updated if f.context == context else f for f in lane.finished))
    return lane.put(updated)
