"""Sluice's records in the state store, by name, with typed access.

| record name                              | holds                                                   |
|------------------------------------------|---------------------------------------------------------|
| ``project.<p>``                          | ``shipyard.yaml``, the same parsed (``shipyard.parsed``, |
|                                          | JSON), ``services`` (JSON list)                         |
| ``lighthouse-config-<p>``                | ``sli-provider`` (Keptn's name, kept)                   |
| ``resources.<p>[.<stage>[.<svc>]]``      | resources by URI (``sluice.core.resources.READ_URIS``); an |
|                                          | ``slo.yaml`` also parsed (``slo.yaml.parsed``, JSON)   |
| ``stage.<p>.<stage>.<svc>``              | the lane: what the stage serves, the delivery holding it (a |
|                                          | typed run with its phase), the queue (``sluice.core.ledger``) |
| ``evaluations.<p>.<stage>.<svc>``        | evaluation history: its newest entries (``history``, newest last, |
|                                          | bounded in bytes; SLO texts once each by hash in ``slos``; the newest |
|                                          | again in ``last``; older entries' chunks by id in ``chunks``) |
| ``evaluations.<p>.<stage>.<svc>.<slot>`` | a sealed chunk of older entries (``HISTORY_CHUNK``, with their SLOs) |
| ``measurements.<p>.<stage>.<svc>``       | the tests' measurements by delivery context (bounded)   |
| ``deliveries.<p>``                       | the project's recent deliveries, newest last (bounded: older |
|                                          | event logs are archived or deleted)                     |
| ``context.<uuid>``                       | one delivery's event log (``events`` JSON list, bounded in bytes) |
| ``workload.<p>.<stage>.<svc>``           | the user's workload rendered for the stage by ``onboard --chart`` / |
|                                          | ``--manifests`` (``objects`` JSON list, ``source``, ``digest``; |
|                                          | at most ``RECORD_BUDGET`` bytes, refused at onboard beyond) |

Each record is small and written with compare-and-swap (``cas_update``). Names use dots
between DNS-1123 labels, so no two keys collide. Every record stays under its byte budget
(``RECORD_BUDGET``), far below a ConfigMap's 1 MiB.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.errors import NotFoundError, SluiceError, TooLargeError, ValidationError
from sluice.ports.archive import Archive
from sluice.ports.state import Record, StateStore
from sluice.services.state import cas_update

if TYPE_CHECKING:
    from sluice.core.shipyard import Shipyard
    from sluice.core.workload import UserWorkload

R = TypeVar("R")
log = logging.getLogger("sluice.records")

KIND = "sluice.dev/kind"
PROJECT = "sluice.dev/project"
STAGE = "sluice.dev/stage"
SERVICE = "sluice.dev/service"

#: Evaluations kept per project/stage/service in the store (older ones go to the archive).
HISTORY_LIMIT = 100
#: A history's head record holds its newest ``HISTORY_HEAD`` evaluations (and up to
#: ``HISTORY_CHUNK`` - 1 more); older ones are sealed ``HISTORY_CHUNK`` at a time into chunk
#: records, at most ``CHUNK_SLOTS`` of them. A page of the newest ``HISTORY_HEAD`` reads the head alone.
HISTORY_HEAD = 10
HISTORY_CHUNK = 5
CHUNK_SLOTS = -(-HISTORY_LIMIT // HISTORY_CHUNK) + 2
#: Events kept per delivery context.
EVENTS_LIMIT = 400
#: Dead letters kept (a cluster broker's dead-letter sink posts them to the eventlog function).
DEAD_LETTERS_LIMIT = 200
#: Measurements kept per project/stage/service (by delivery context).
MEASUREMENTS_LIMIT = 20
#: Bytes a list record (history, event log) may hold; the oldest entries leave first.
RECORD_BUDGET = 800 * 1024
#: Deliveries remembered per project (count) and for how long; older event logs are archived
#: (with an archive) and deleted.
DELIVERIES_LIMIT = 1000
DELIVERIES_MAX_AGE_S = 30 * 24 * 3600.0


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), sort_keys=True))


def _with_slo(history: list[dict[str, Any]], slos: Mapping[str, str]) -> list[dict[str, Any]]:
    """Stored evaluations with their SLO text (``slo_file``) in place of its hash."""
    for entry in history:
        if "slo_hash" in entry:
            entry["slo_file"] = slos.get(entry.pop("slo_hash"), "")
    return history


def newer_chunk(record: Record | None, name: str, data: Mapping[str, str], labels: Mapping[str, str], seq: int) -> Record | None:
    """Chunk ``seq`` written into its slot, unless the slot holds that chunk or a newer one already
    (a writer that read an old head never overwrites a chunk sealed after it)."""
    held = record.data.get("seq", "") if record is not None else ""
    if held.isdigit() and int(held) >= seq:
        return None
    return Record(name, dict(data), dict(labels), record.resource_version if record else None)


def slo_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resource_key(uri: str) -> str:
    """A resource URI as a ConfigMap data key (``[-._a-zA-Z0-9]+``)."""
    key = uri.strip("/").replace("/", "__")
    if not key or any(not (c.isalnum() or c in "-._") for c in key):
        raise ValidationError("resourceUri", [f"{uri!r}: expected a path of letters, digits, '-', '.', '_' and '/'"])
    return key


@dataclass(frozen=True)
class Project:
    name: str
    shipyard: Shipyard
    shipyard_text: str
    services: tuple[str, ...]


#: The project record's key holding its shipyard already parsed (JSON, with the digest of the text
#: it came from), so that reading a project needs no YAML parser: a function's cold start skips it.
SHIPYARD_PARSED = "shipyard.parsed"


#: Resources stored parsed beside their text too (key ``<key>.parsed``, the same JSON form as
#: ``shipyard.parsed``): the SLO, which the evaluate function reads on its first event, so that it
#: needs no YAML parser then. Only for texts of at most ``PARSED_MAX_BYTES``.
PARSED_RESOURCES = frozenset({"slo.yaml"})
PARSED_SUFFIX = ".parsed"
PARSED_MAX_BYTES = 64 * 1024


def _parsed_form(text: str, doc: object) -> str | None:
    """The parsed form to store beside a YAML text (shipyard, SLO); None when JSON does not hold
    the document as it is (dates, keys that are not strings): readers then parse the text."""
    try:
        body = json.dumps(doc, separators=(",", ":"))
        if json.loads(body) != doc:
            return None
        return json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(), "doc": doc}, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _stored_doc(text: str, parsed: str | None) -> object | None:
    """The stored parsed document when it was made from ``text`` (a writer that knows no parsed
    form may have changed the text since), else None."""
    if parsed is None:
        return None
    try:
        stored = json.loads(parsed)
    except ValueError:
        return None
    if not isinstance(stored, dict) or stored.get("sha256") != hashlib.sha256(text.encode()).hexdigest():
        return None
    return stored.get("doc")


def _parsed_resource(key: str, text: str) -> str | None:
    """The parsed form of a resource in ``PARSED_RESOURCES`` (None for the others, and for a text
    that does not parse to a mapping: the function that reads it reports the problem)."""
    if key not in PARSED_RESOURCES or len(text.encode()) > PARSED_MAX_BYTES:
        return None
    from sluice.services.yamldoc import load_document  # YAML: only when a resource is written

    try:
        doc = load_document(text, key)
    except ValidationError:
        return None
    return _parsed_form(text, doc) if isinstance(doc, Mapping) else None


class Records:
    """Typed reads and compare-and-swap writes of Sluice's records."""

    def __init__(self, store: StateStore, archive: Archive | None = None) -> None:
        self.store = store
        self.archive = archive

    def _archive_overflow(
        self, prefix: str, items: list[dict[str, Any]], limit: int, key: str, budget: int = RECORD_BUDGET,
        full: Callable[[dict[str, Any]], dict[str, Any]] = dict,
    ) -> None:
        """Trim ``items`` to its newest ``limit`` and to ``budget`` bytes (the newest always
        stays); with an archive, the trimmed ones (as ``full`` makes them) are written there
        first (an archive failure raises, so nothing is dropped from the store)."""
        keep = min(len(items), limit)
        total = sum(_size(i) for i in items[len(items) - keep:])
        while keep > 1 and total > budget:
            total -= _size(items[len(items) - keep])
            keep -= 1
        overflow = items[: len(items) - keep]
        if not overflow:
            return
        if self.archive is not None:
            for item in overflow:
                self.archive.put(f"{prefix}/{item.get(key)}.json", json.dumps(full(item), sort_keys=True))
        del items[: len(overflow)]

    # --- generic JSON records -------------------------------------------------------------
    def read_json(self, name: str, key: str, default: Any) -> Any:
        record = self.store.get(name)
        if record is None or key not in record.data:
            return default
        return json.loads(record.data[key])

    def update_data(
        self, name: str, labels: Mapping[str, str], mutate: Callable[[dict[str, str], bool], R]
    ) -> R:
        """Let ``mutate`` change record ``name``'s data in place (its second argument says whether
        the record exists) and return a result; write it back with compare-and-swap, retried on
        conflicts, adding ``labels``. ``mutate`` may run more than once: no side effects. An absent
        record that ``mutate`` leaves empty is not created (nothing a request names appears)."""
        outcome: list[R] = []

        def apply(record: Record | None) -> Record | None:
            data = dict(record.data) if record is not None else {}
            outcome.clear()
            outcome.append(mutate(data, record is not None))
            if record is None and not data:
                return None
            return Record(
                name=name,
                data=data,
                labels={**(record.labels if record else {}), **labels},
                resource_version=record.resource_version if record else None,
            )

        cas_update(self.store, name, apply)
        return outcome[0]

    def update_json(
        self, name: str, key: str, default: Any, labels: Mapping[str, str], mutate: Callable[[Any], R]
    ) -> R:
        """Read ``key`` of record ``name`` as JSON, let ``mutate`` change it in place and return
        a result, then write it back (``update_data``)."""

        def change(data: dict[str, str], _exists: bool) -> R:
            value = json.loads(data[key]) if key in data else default
            result = mutate(value)
            data[key] = json.dumps(value, separators=(",", ":"), sort_keys=True)
            return result

        return self.update_data(name, labels, change)

    @staticmethod
    def scoped(kind: str, project: str, stage: str = "", service: str = "") -> tuple[str, dict[str, str]]:
        parts = [p for p in (project, stage, service) if p]
        labels = {KIND: kind, PROJECT: project}
        if stage:
            labels[STAGE] = stage
        if service:
            labels[SERVICE] = service
        return ".".join([kind, *parts]), labels

    # --- projects --------------------------------------------------------------------------
    def create_project(self, project: str, shipyard_text: str, shipyard_doc: object) -> Project:
        from sluice.core.shipyard import parse_shipyard

        parse_shipyard(shipyard_doc, "shipyard")
        name, labels = self.scoped("project", project)
        parsed = _parsed_form(shipyard_text, shipyard_doc)

        def change(data: dict[str, str], _exists: bool) -> None:
            data["shipyard.yaml"] = shipyard_text
            data.pop(SHIPYARD_PARSED, None)
            if parsed is not None:
                data[SHIPYARD_PARSED] = parsed
            data.setdefault("services", "[]")

        self.update_data(name, labels, change)
        return self.project(project)

    def project(self, project: str) -> Project:
        from sluice.core.shipyard import parse_shipyard

        record = self.store.get(f"project.{project}")
        if record is None:
            known = [r.labels.get(PROJECT, "") for r in self.store.list({KIND: "project"})]
            raise NotFoundError(f"project {project!r} does not exist (projects: {', '.join(known) or 'none'})")
        text = record.data.get("shipyard.yaml", "")
        source = f"shipyard of project {project}"
        doc = _stored_doc(text, record.data.get(SHIPYARD_PARSED))
        if doc is None:
            from sluice.services.yamldoc import (
                load_document,  # YAML: only a project stored without its parsed form
            )

            doc = load_document(text, source)
        shipyard = parse_shipyard(doc, source)
        return Project(project, shipyard, text, tuple(json.loads(record.data.get("services", "[]"))))

    def projects(self) -> list[str]:
        return [r.labels.get(PROJECT, "") for r in self.store.list({KIND: "project"})]

    def onboard(self, project: str, service: str) -> None:
        name, labels = self.scoped("project", project)

        def change(data: dict[str, str], exists: bool) -> None:
            if not exists:
                raise NotFoundError(f"project {project!r} does not exist")
            services = json.loads(data.get("services", "[]"))
            if service not in services:
                data["services"] = json.dumps([*services, service])

        self.project(project)  # must exist, with a valid shipyard
        self.update_data(name, labels, change)

    def require_service(self, project: str, service: str) -> Project:
        info = self.project(project)
        if service not in info.services:
            raise NotFoundError(
                f"service {service!r} is not onboarded in project {project!r} "
                f"(services: {', '.join(info.services) or 'none'}); run 'sluice onboard service {service} --project {project}'"
            )
        return info

    # --- resources and settings ------------------------------------------------------------
    def put_resource(self, project: str, stage: str, service: str, uri: str, text: str) -> str:
        """Store a resource; ``ValidationError`` for a URI Sluice does not read (listing those it
        reads, ``sluice.core.resources``), and for a service without its stage."""
        if service and not stage:
            raise ValidationError("add-resource", ["--service needs --stage (resources belong to a service in a stage)"])
        from sluice.core.resources import check_resource_uri

        name, labels = self.scoped("resources", project, stage, service)
        key = resource_key(check_resource_uri(uri))
        parsed = _parsed_resource(key, text)

        def change(data: dict[str, str], _exists: bool) -> None:
            data[key] = text
            data.pop(key + PARSED_SUFFIX, None)
            if parsed is not None:
                data[key + PARSED_SUFFIX] = parsed

        self.update_data(name, labels, change)
        return name

    def resource(self, project: str, stage: str, service: str, uri: str) -> str | None:
        """The most specific resource: service in stage, then stage, then project."""
        found = self.resource_document(project, stage, service, uri)
        return found[0] if found is not None else None

    def resource_document(self, project: str, stage: str, service: str, uri: str) -> tuple[str, object | None] | None:
        """The most specific resource (as ``resource``) with its stored parsed document when it has
        one made from that text (``PARSED_RESOURCES``), else None in its place; None when absent."""
        key = resource_key(uri)
        for parts in ((project, stage, service), (project, stage), (project,)):
            if any(not p for p in parts):
                continue
            record = self.store.get(".".join(["resources", *parts]))
            if record is not None and key in record.data:
                text = record.data[key]
                return text, _stored_doc(text, record.data.get(key + PARSED_SUFFIX))
        return None

    def resource_levels(self, project: str, stage: str, service: str, uri: str) -> tuple[str | None, ...]:
        """(project, stage, service) level texts of one resource, for merging (e.g. sli.yaml)."""
        key = resource_key(uri)
        out: list[str | None] = []
        for parts in ((project,), (project, stage), (project, stage, service)):
            record = self.store.get(".".join(["resources", *parts]))
            out.append(record.data.get(key) if record else None)
        return tuple(out)

    def put_workload(self, project: str, stage: str, service: str, workload: UserWorkload) -> str:
        """Store the user's workload of a service in a stage (replacing the one before);
        ``TooLargeError`` past ``RECORD_BUDGET`` bytes (nothing is written then)."""
        objects = json.dumps(list(workload.objects), separators=(",", ":"), sort_keys=True)
        if len(objects) > RECORD_BUDGET:
            raise TooLargeError(
                f"{workload.source}: the rendered objects take {len(objects):,} bytes as JSON; a service's workload "
                f"may take at most {RECORD_BUDGET:,} (it is kept in one ConfigMap, limit 1 MiB)")
        name, labels = self.scoped("workload", project, stage, service)
        self.update_data(name, labels, lambda data, _: data.update(
            {"objects": objects, "source": workload.source, "digest": workload.digest}))
        return name

    def workload(self, project: str, stage: str, service: str) -> UserWorkload | None:
        """The user's workload of the service in the stage, ``None`` when it was onboarded without one."""
        record = self.store.get(f"workload.{project}.{stage}.{service}")
        if record is None or "objects" not in record.data:
            return None
        from sluice.core.workload import UserWorkload  # only here: most events read no workload

        objects = json.loads(record.data["objects"])
        return UserWorkload(record.data.get("source", "workload"), tuple(objects), record.data.get("digest", ""))

    def project_setting(self, project: str, key: str) -> str | None:
        record = self.store.get(f"lighthouse-config-{project}")
        return record.data.get(key) if record else None

    def set_project_setting(self, project: str, key: str, value: str) -> None:
        labels = {KIND: "lighthouse-config", PROJECT: project}
        self.update_data(f"lighthouse-config-{project}", labels, lambda data, _: data.update({key: value}))

    # --- event log ---------------------------------------------------------------------------
    def append_event(self, context: str, event: Mapping[str, Any]) -> bool:
        """Add ``event`` (structured JSON form) to its delivery's log; False when already there.

        A new delivery is first entered in its project's index (``deliveries.<p>``); deliveries
        that fall out of the index (count or age) have their logs archived and deleted."""
        data = event.get("data") or {}
        labels = {KIND: "context", "sluice.dev/context": context}
        for label, key in ((PROJECT, "project"), (SERVICE, "service")):
            if isinstance(data, Mapping) and isinstance(data.get(key), str) and data.get(key):
                labels[label] = str(data[key])
        if self.store.get(f"context.{context}") is None:
            self._index_delivery(context, labels.get(PROJECT, ""), labels.get(SERVICE, ""), str(event.get("time") or ""))

        def mutate(events: list[dict[str, Any]]) -> bool:
            if any(e.get("id") == event.get("id") and e.get("source") == event.get("source") for e in events):
                return False
            events.append(dict(event))
            self._archive_overflow(f"events/{context}", events, EVENTS_LIMIT, "id")
            return True

        return self.update_json(f"context.{context}", "events", [], labels, mutate)

    def _index_name(self, project: str) -> tuple[str, dict[str, str]]:
        """A known project's index, or the shared one (events naming no existing project)."""
        if project and self.store.get(f"project.{project}") is not None:
            return f"deliveries.{project}", {KIND: "deliveries", PROJECT: project}
        return "deliveries", {KIND: "deliveries"}

    def _index_delivery(self, context: str, project: str, service: str, started: str) -> None:
        from sluice.core.ledger import after, before  # times: shared with the ledger

        name, labels = self._index_name(project)

        def mutate(index: list[dict[str, Any]]) -> list[str]:
            if any(d.get("context") == context for d in index):
                return []
            index.append({"context": context, "service": service, "started": started})
            newest = max((d["started"] for d in index if d.get("started")), default="")
            horizon = after(newest, -DELIVERIES_MAX_AGE_S) if newest else ""
            dropped = [
                d for i, d in enumerate(index)
                if i < len(index) - DELIVERIES_LIMIT or (horizon and d.get("started") and before(d["started"], horizon))
            ]
            index[:] = [d for d in index if d not in dropped]
            return [d["context"] for d in dropped]

        for old in self.update_json(name, "deliveries", [], labels, mutate):
            self._retire_delivery(old)

    def _retire_delivery(self, context: str) -> None:
        """An old delivery's log leaves the store (to the archive first, when there is one)."""
        try:
            if self.archive is not None:
                self.archive.put(f"events/{context}/log.json", json.dumps(self.events(context), sort_keys=True))
            self.store.delete(f"context.{context}")
        except SluiceError as err:  # the next retention pass tries again; nothing else depends on it
            log.warning("could not retire the event log of delivery %s: %s", context, err)

    def events(self, context: str) -> list[dict[str, Any]]:
        return list(self.read_json(f"context.{context}", "events", []))

    def contexts(self, project: str = "", service: str = "", limit: int | None = None) -> list[str]:
        """Recent deliveries of ``project`` (optionally of one service), oldest first, from the
        project's index: one read, whatever the length of history. ``limit``: the newest N.
        Without ``project``: of every project, from all the indexes (one list: one index per
        project and the one of events that named none), by start time."""
        if not project:
            index = [d for r in self.store.list({KIND: "deliveries"}) for d in json.loads(r.data.get("deliveries", "[]"))]
            index.sort(key=lambda d: str(d.get("started", "")))
        else:
            index = self.read_json(f"deliveries.{project}", "deliveries", [])
        found = [d["context"] for d in index if not service or d.get("service") == service]
        return found[-limit:] if limit else found

    def append_dead_letter(self, letter: Mapping[str, Any]) -> bool:
        """Keep a dead-lettered delivery (bounded; the newest stay); False when already kept."""

        def mutate(letters: list[dict[str, Any]]) -> bool:
            if any(x.get("key") == letter.get("key") for x in letters):
                return False
            letters.append(dict(letter))
            del letters[:-DEAD_LETTERS_LIMIT]
            return True

        return self.update_json("dead-letters", "letters", [], {KIND: "dead-letters"}, mutate)

    def dead_letters(self) -> list[dict[str, Any]]:
        return list(self.read_json("dead-letters", "letters", []))

    # --- evaluations and measurements ------------------------------------------------------
    # The history of a stage's service is a *head* record (``evaluations.<p>.<s>.<svc>``: the
    # newest entries, the newest again under ``last``, and under ``chunks`` which older entries
    # live in which sealed chunk) and up to ``CHUNK_SLOTS`` sealed *chunks*
    # (``evaluations.<p>.<s>.<svc>.<slot>``: ``HISTORY_CHUNK`` entries each, never changed once
    # the head refers to them). An append is one compare-and-swap write of the head; when the head
    # holds ``HISTORY_HEAD + HISTORY_CHUNK`` entries its oldest ``HISTORY_CHUNK`` are first copied into a free
    # slot (the same content whoever writes it, so a lost or repeated copy is harmless), and the
    # head's write drops them. A page reads the head and the chunks it shows, whatever the length
    # of the history. A head written before chunks existed reads as it is and is split by its
    # next append.
    def _history_head(self, project: str, stage: str, service: str) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
        """The head's entries (oldest first, SLO texts resolved), its SLO texts and its chunk list."""
        record = self.store.get(f"evaluations.{project}.{stage}.{service}")
        if record is None:
            return [], {}, []
        history = json.loads(record.data.get("history", "[]"))
        slos = json.loads(record.data.get("slos", "{}"))
        return _with_slo(history, slos), slos, list(json.loads(record.data.get("chunks", "{}")).get("live", []))

    def _chunk(self, project: str, stage: str, service: str, ref: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The live entries of one sealed chunk (oldest first); none when the slot holds another chunk."""
        record = self.store.get(f"evaluations.{project}.{stage}.{service}.{ref['slot']}")
        if record is None or record.data.get("seq") != str(ref["seq"]):
            log.warning("evaluation history of %s/%s/%s: chunk %s is missing", project, stage, service, ref)
            return []
        live = set(ref["ids"])
        entries = _with_slo(json.loads(record.data.get("history", "[]")), json.loads(record.data.get("slos", "{}")))
        return [e for e in entries if e.get("id") in live]

    def evaluations(self, project: str, stage: str, service: str) -> list[dict[str, Any]]:
        """The stored evaluation history, oldest first, each with its SLO text (``slo_file``):
        the head and every chunk (at most ``HISTORY_LIMIT`` entries)."""
        head, _slos, chunks = self._history_head(project, stage, service)
        return [e for ref in chunks for e in self._chunk(project, stage, service, ref)] + head

    def evaluations_back(
        self, project: str, stage: str, service: str, enough: Callable[[list[dict[str, Any]]], bool],
    ) -> list[dict[str, Any]]:
        """The newest part of the history (oldest first) that satisfies ``enough``: the head, then
        older sealed chunks one at a time, newest first, until ``enough(entries)`` holds or the
        history ends — a reader that needs the newest few reads one record, not every chunk."""
        head, _slos, chunks = self._history_head(project, stage, service)
        entries = head
        for ref in reversed(chunks):
            if enough(entries):
                break
            entries = self._chunk(project, stage, service, ref) + entries
        return entries

    def evaluation_page(self, project: str, stage: str, service: str, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The ``limit`` newest evaluations after skipping the ``offset`` newest, newest first,
        and how many the history holds: the head and only the chunks the page shows."""
        head, _slos, chunks = self._history_head(project, stage, service)
        total = len(head) + sum(len(ref["ids"]) for ref in chunks)
        newest_first = list(reversed(head))
        seen = len(head)
        for ref in reversed(chunks):
            if seen >= offset + limit:
                break
            if seen + len(ref["ids"]) > offset:
                newest_first[seen:] = reversed(self._chunk(project, stage, service, ref))
            else:
                newest_first[seen:] = [{}] * len(ref["ids"])  # skipped unread
            seen += len(ref["ids"])
        return newest_first[offset:offset + limit], total

    def evaluation(self, project: str, stage: str, service: str, evaluation_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The evaluation ``evaluation_id`` (or None) and the entries read to find it (the head,
        and the one chunk holding it): at most two records."""
        head, _slos, chunks = self._history_head(project, stage, service)
        found = next((e for e in head if e.get("id") == evaluation_id), None)
        if found is not None:
            return found, head
        ref = next((r for r in chunks if evaluation_id in r["ids"]), None)
        if ref is None:
            return None, head
        chunk = self._chunk(project, stage, service, ref)
        return next((e for e in chunk if e.get("id") == evaluation_id), None), [*chunk, *head]

    def last_evaluation(self, project: str, stage: str, service: str) -> dict[str, Any] | None:
        """The newest evaluation (without its SLO text), or None: its own key, so the history is not parsed."""
        record = self.store.get(f"evaluations.{project}.{stage}.{service}")
        if record is None:
            return None
        if "last" in record.data:
            last: dict[str, Any] = json.loads(record.data["last"])
            last.pop("slo_hash", None)
            return last
        history = json.loads(record.data.get("history", "[]"))  # stored before the key existed
        return {k: v for k, v in history[-1].items() if k != "slo_hash"} if history else None

    def append_evaluation(self, project: str, stage: str, service: str, evaluation: Mapping[str, Any]) -> bool:
        """Add ``evaluation`` once (by id); its SLO text is kept once per distinct text in each
        record. The history stays within ``HISTORY_LIMIT`` entries and every record within its
        byte budget (the oldest leave, to the archive); see the block comment above."""
        name, labels = self.scoped("evaluations", project, stage, service)
        prefix = f"evaluations/{project}/{stage}/{service}"

        def change(data: dict[str, str], _exists: bool) -> bool:
            history = json.loads(data.get("history", "[]"))
            index = json.loads(data.get("chunks", "{}"))
            chunks: list[dict[str, Any]] = list(index.get("live", []))
            if any(e.get("id") == evaluation.get("id") for e in history) or any(
                    evaluation.get("id") in ref["ids"] for ref in chunks):
                return False
            slos = json.loads(data.get("slos", "{}"))
            entry = dict(evaluation)
            text = str(entry.pop("slo_file", "") or "")
            entry["slo_hash"] = slo_hash(text)
            slos[entry["slo_hash"]] = text
            history.append(entry)
            sealed = int(index.get("seq", 0))
            while len(history) >= HISTORY_HEAD + HISTORY_CHUNK or (len(history) > 1 and _size(history) + _size(slos) > RECORD_BUDGET // 2):
                sealed += 1
                taken = self._seal(name, labels, prefix, history, slos, chunks, sealed)
                del history[:taken]
            self._trim_history(name, prefix, history, slos, chunks)
            budget = RECORD_BUDGET - _size(slos) - _size(entry) - _size(chunks)  # the newest is stored twice (``last``)
            chunked = sum(len(ref["ids"]) for ref in chunks)
            self._archive_overflow(prefix, history, max(1, HISTORY_LIMIT - chunked), "id", budget,
                                   full=lambda old: {**old, "slo_file": slos.get(old.get("slo_hash"), "")})
            used = {e.get("slo_hash") for e in history}
            data["history"] = json.dumps(history, separators=(",", ":"), sort_keys=True)
            data["last"] = json.dumps(history[-1], separators=(",", ":"), sort_keys=True)  # read by last_evaluation
            data["slos"] = json.dumps({h: t for h, t in slos.items() if h in used}, separators=(",", ":"), sort_keys=True)
            data["chunks"] = json.dumps({"seq": sealed, "live": chunks}, separators=(",", ":"), sort_keys=True)
            return True

        return self.update_data(name, labels, change)

    def _seal(self, name: str, labels: Mapping[str, str], prefix: str, history: list[dict[str, Any]],
              slos: Mapping[str, str], chunks: list[dict[str, Any]], seq: int) -> int:
        """Copy the head's oldest entries (``HISTORY_CHUNK``, fewer if their bytes say so, at least
        one) into a free slot as chunk ``seq`` and add it to ``chunks``; how many were taken. With
        every slot in use, the oldest chunk is forgotten first (archived)."""
        def cost(entry: Mapping[str, Any], counted: set[Any]) -> int:  # the entry, and its SLO text the first time
            text = slos.get(str(entry.get("slo_hash")), "") if entry.get("slo_hash") not in counted else ""
            counted.add(entry.get("slo_hash"))
            return _size(entry) + len(text)

        counted: set[Any] = set()
        taken, size = 1, cost(history[0], counted)
        while taken < min(HISTORY_CHUNK, len(history) - 1) and size + cost(history[taken], set(counted)) <= RECORD_BUDGET // 2:
            size += cost(history[taken], counted)
            taken += 1
        used = {ref["slot"] for ref in chunks}
        while len(used) >= CHUNK_SLOTS:
            self._forget_chunk(name, prefix, chunks)
            used = {ref["slot"] for ref in chunks}
        slot = min(set(range(CHUNK_SLOTS)) - used)
        entries = history[:taken]
        own = {str(e.get("slo_hash")): slos.get(str(e.get("slo_hash")), "") for e in entries}
        data = {"seq": str(seq), "history": json.dumps(entries, separators=(",", ":"), sort_keys=True),
                "slos": json.dumps(own, separators=(",", ":"), sort_keys=True)}
        chunk_labels = {**labels, KIND: "evaluations-chunk"}
        cas_update(self.store, f"{name}.{slot}", lambda record: newer_chunk(record, f"{name}.{slot}", data, chunk_labels, seq))
        chunks.append({"slot": slot, "seq": seq, "ids": [e.get("id") for e in entries]})
        return taken

    def _trim_history(self, name: str, prefix: str, history: list[dict[str, Any]], slos: Mapping[str, str],
                      chunks: list[dict[str, Any]]) -> None:
        """Forget the oldest chunked entries while the history holds more than ``HISTORY_LIMIT``."""
        excess = len(history) + sum(len(ref["ids"]) for ref in chunks) - HISTORY_LIMIT
        while excess > 0 and chunks:
            oldest = chunks[0]
            if len(oldest["ids"]) <= excess:
                excess -= len(oldest["ids"])
                self._forget_chunk(name, prefix, chunks)
                continue
            self._archive_ids(name, prefix, oldest, oldest["ids"][:excess])
            chunks[0] = {**oldest, "ids": oldest["ids"][excess:]}
            excess = 0

    def _forget_chunk(self, name: str, prefix: str, chunks: list[dict[str, Any]]) -> None:
        self._archive_ids(name, prefix, chunks[0], chunks[0]["ids"])
        del chunks[0]

    def _archive_ids(self, name: str, prefix: str, ref: Mapping[str, Any], ids: list[str]) -> None:
        """Entries ``ids`` of a chunk leave the store: to the archive first, when there is one."""
        if self.archive is None or not ids:
            return
        record = self.store.get(f"{name}.{ref['slot']}")
        if record is None or record.data.get("seq") != str(ref["seq"]):
            return
        entries = _with_slo(json.loads(record.data.get("history", "[]")), json.loads(record.data.get("slos", "{}")))
        for entry in entries:
            if entry.get("id") in ids:
                self.archive.put(f"{prefix}/{entry.get('id')}.json", json.dumps(entry, sort_keys=True))

    def archived_evaluations(self, project: str, stage: str, service: str) -> list[dict[str, Any]]:
        """Evaluations that left the store for the archive (oldest first); empty without one."""
        if self.archive is None:
            return []
        docs = [json.loads(self.archive.get(k)) for k in self.archive.list(f"evaluations/{project}/{stage}/{service}/")]
        return sorted(docs, key=lambda d: str(d.get("time", "")))

    def put_measurements(self, project: str, stage: str, service: str, context: str, values: Mapping[str, Any]) -> None:
        name, labels = self.scoped("measurements", project, stage, service)

        def mutate(by_context: dict[str, Any]) -> None:
            by_context[context] = dict(values)
            for old in list(by_context)[:-MEASUREMENTS_LIMIT]:
                del by_context[old]

        self.update_json(name, "measurements", {}, labels, mutate)

    def measurements(self, project: str, stage: str, service: str, context: str) -> Mapping[str, float] | None:
        by_context = self.read_json(f"measurements.{project}.{stage}.{service}", "measurements", {})
        return by_context.get(context)
