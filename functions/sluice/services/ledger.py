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
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.core.frozen import frozen
from sluice.core.ledger import FINISHED_LIMIT, Lane, Phase, Run, Transition, before, record
from sluice.errors import SluiceError
from sluice.ports.backend import Placement
from sluice.services.records import KIND, PROJECT, SERVICE, STAGE, Records, newer_chunk
from sluice.services.state import cas_update

if TYPE_CHECKING:
    from sluice.core.events import Event

log = logging.getLogger("sluice.ledger")

R = TypeVar("R")
KEY = "lane"
#: The lane's finished runs are stored under a key of their own (same record, same write), and
#: the few of them the status views read under another, so a read that does not look up old
#: runs parses no history: ``head``.
FINISHED = "finished"
RECENT = "recent"
#: Older finished runs leave the lane record in sealed chunks (same scheme as the evaluation
#: history, ``Records.append_evaluation``): the lane keeps its newest ``FINISHED_HEAD`` finished
#: runs (and up to ``FINISHED_CHUNK`` - 1 more); when it holds ``FINISHED_HEAD + FINISHED_CHUNK``
#: its oldest ``FINISHED_CHUNK`` are first copied into a free slot (``stage.<p>.<s>.<svc>.<slot>``,
#: the same content whoever writes it) and the lane's own write drops them and lists their
#: contexts under ``chunks``. Chunks are read only to answer a duplicate of an old delivery;
#: the lane, its chunks together remember at most ``FINISHED_LIMIT`` runs (older ones move the horizon).
CHUNKS = "chunks"
FINISHED_HEAD = 10
FINISHED_CHUNK = 5
FINISHED_SLOTS = -(-FINISHED_LIMIT // FINISHED_CHUNK) + 2
CHUNK_KIND = "stage-chunk"
LANE_KIND = "stage"
GATE_KIND = "gate"
#: Label of a lane record: "true" while a run or a gate is in the lane (written in the same
#: write as the lane), so ticks list only those and never read the idle lanes' histories.
BUSY = "sluice.dev/busy"
#: A record whose presence says every lane record carries ``BUSY`` (lanes written before the
#: label existed are labelled by the first tick that does not find it).
LABELLED = "ledger.busy-labels"

#: Bytes of runs a sealed chunk holds at most, and of finished runs the lane keeps before it seals
#: some (a ConfigMap holds 1 MiB; the lane's own budget, ``LANE_BUDGET``, is 700 KiB).
LANE_BUDGET_OF_CHUNK = 350 * 1024

#: A transition's effect: (lane, the run as found) → (new lane, events caused).
Effect = Callable[[Lane, Run], tuple[Lane, list[dict[str, Any]]]]


@frozen
class Advanced:
    """What a transition did: ``applied`` now, or not (``replies`` are then the ones the winner
    stored — empty when the run is unknown or in a phase the transition does not start from)."""

    applied: bool
    replies: list[dict[str, Any]]
    known: bool = True

    def events(self) -> list[Event]:
        from sluice.core.events import Event  # cold start: a page of the web view reads no event

        return [Event.from_json_dict(e) for e in self.replies]


@frozen
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
        """``context``'s run in this stage: in the lane (or its sealed chunks), else its running quality gate."""
        found = self.lane_run(placement, context)
        return found if found is not None else self.lane(placement, context).run(context)

    def lane_run(self, placement: Placement, context: str, lane: Lane | None = None) -> Run | None:
        """``context``'s run in the lane (``lane`` when given, as read), or in the sealed chunk
        holding it (one more read)."""
        lane = self.lane(placement) if lane is None else lane
        found = lane.run(context)
        if found is not None or context not in lane.sealed:
            return found
        name = self.name(placement)[0]
        lane_record = self.records.store.get(name)
        for ref in _index(lane_record.data if lane_record else {}).get("live", []):
            if context in ref["runs"]:
                chunk = self.records.store.get(f"{name}.{ref['slot']}")
                if chunk is None or chunk.data.get("seq") != str(ref["seq"]):
                    return None
                runs = Lane.from_dict({"finished": json.loads(chunk.data.get(FINISHED, "[]"))}).finished
                return next((r for r in runs if r.context == context), None)
        return None

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
                encode(new, data, lambda seq, slot, runs: self._seal(name, labels, seq, slot, runs))  # an absent lane left as it was is not created
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
        gated = self._advance(placement, context, step, effect, context, key)
        if gated.known:
            return gated
        old = self.lane_run(placement, context)  # a duplicate for a run in a sealed chunk: what it stored
        if old is None:
            return gated
        return Advanced(False, list((old.replies.get(key) if key else old.stored(step)) or []))

    def _seal(self, name: str, labels: Mapping[str, str], seq: int, slot: int, runs: list[dict[str, Any]]) -> None:
        """Write sealed chunk ``seq`` of the lane ``name`` into ``slot`` (before the lane's own write)."""
        data = {"seq": str(seq), FINISHED: json.dumps(runs, separators=(",", ":"), sort_keys=True)}
        chunk_labels = {k: v for k, v in labels.items() if k != BUSY} | {KIND: CHUNK_KIND}
        cas_update(self.records.store, f"{name}.{slot}", lambda record: newer_chunk(record, f"{name}.{slot}", data, chunk_labels, seq))

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
        self.change(placement, lambda lane: (lane if lane.knows(context) or context in lane.sealed else lane.remember(ended), None))
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


def _index(data: Mapping[str, str]) -> dict[str, Any]:
    """The lane's sealed chunks: ``{"seq": last sealed, "live": [{"slot", "seq", "runs": [contexts], "newest": event time}]}``."""
    index: dict[str, Any] = json.loads(data[CHUNKS]) if CHUNKS in data else {"seq": 0, "live": []}
    return index


def decode(data: Mapping[str, str], finished: str = FINISHED) -> Lane:
    """The lane stored in a record's ``data`` (with the finished runs under ``finished``, and the
    contexts of its sealed chunks)."""
    doc = json.loads(data[KEY])
    if finished in data:
        doc["finished"] = json.loads(data[finished])
    lane = Lane.from_dict(doc)
    if CHUNKS not in data:
        return lane
    return replace(lane, sealed=frozenset(c for ref in _index(data)["live"] for c in ref["runs"]))


def encode(lane: Lane, data: dict[str, str], seal: Callable[[int, int, list[dict[str, Any]]], None] | None = None) -> None:
    """Store ``lane`` (within its budgets) in ``data``: the lane, its finished runs, the recent
    ones; with ``seal`` (which writes a chunk: seq, slot, runs), the oldest finished runs leave
    in sealed chunks (see ``CHUNKS``)."""
    doc = json.loads(lane.encode())
    finished = doc.pop("finished", [])
    kept = {r["context"] for r in finished}  # what status shows may come from a sealed run
    shown = [*(r for r in json.loads(data.get(RECENT, "[]")) if r.get("context") not in kept), *finished]
    if seal is not None:
        index = _index(data)
        live: list[dict[str, Any]] = index["live"]
        sizes = [len(json.dumps(r, separators=(",", ":"))) for r in finished]
        while len(finished) >= FINISHED_HEAD + FINISHED_CHUNK or (len(finished) > 1 and sum(sizes) > LANE_BUDGET_OF_CHUNK):
            taken = 1  # the oldest FINISHED_CHUNK, fewer if their bytes say so, never the newest
            while taken < min(FINISHED_CHUNK, len(finished) - 1) and sum(sizes[:taken + 1]) <= LANE_BUDGET_OF_CHUNK:
                taken += 1
            used = {ref["slot"] for ref in live}
            while len(used) >= FINISHED_SLOTS:  # every slot holds remembered runs: the oldest chunk is forgotten
                doc["horizon"] = _horizon(doc.get("horizon", ""), live.pop(0)["newest"])
                used = {ref["slot"] for ref in live}
            index["seq"] += 1
            slot = min(set(range(FINISHED_SLOTS)) - used)
            seal(index["seq"], slot, finished[:taken])
            live.append({"slot": slot, "seq": index["seq"], "runs": [r["context"] for r in finished[:taken]],
                         "newest": _horizon("", *(r.get("event_time", "") for r in finished[:taken]))})
            del finished[:taken], sizes[:taken]
        excess = len(finished) + sum(len(ref["runs"]) for ref in live) - FINISHED_LIMIT
        while excess > 0 and live:  # the oldest sealed runs are forgotten: they move the horizon
            gone, live[0]["runs"] = live[0]["runs"][:excess], live[0]["runs"][excess:]
            doc["horizon"] = _horizon(doc.get("horizon", ""), live[0]["newest"])  # the chunk's newest: its rest is sealed (stale) anyway
            excess -= len(gone)
            if not live[0]["runs"]:
                live.pop(0)
        data[CHUNKS] = json.dumps(index, separators=(",", ":"), sort_keys=True)
    data[KEY] = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    data[FINISHED] = json.dumps(finished, separators=(",", ":"), sort_keys=True)
    data[RECENT] = json.dumps(recent(shown), separators=(",", ":"), sort_keys=True)


def _horizon(horizon: str, *forgotten: str) -> str:
    """The horizon moved to the newest of the event times ``forgotten``."""
    for event_time in forgotten:
        if event_time and (not horizon or before(horizon, event_time)):
            horizon = event_time
    return horizon


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
