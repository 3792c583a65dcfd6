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
| ``deliveries.<p>``                       | the project's recent deliveries: the newest (``deliveries``, |
|                                          | newest last) and which chunks hold older ones (``chunks``); |
|                                          | bounded: older event logs are archived or deleted       |
| ``deliveries.<p>.<slot>``                | a sealed chunk of older deliveries (``DELIVERIES_CHUNK``) |
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
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.core.frozen import frozen
from sluice.core.times import after, before
from sluice.errors import NotFoundError, SluiceError, TooLargeError, ValidationError
from sluice.ports.state import Record, StateStore
from sluice.services.state import cas_update

if TYPE_CHECKING:  # the archive port is a type here: only a configured archive loads its adapter
    from sluice.core.shipyard import Shipyard
    from sluice.core.workload import UserWorkload
    from sluice.ports.archive import Archive

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
#: A deliveries index's head holds its newest ``DELIVERIES_HEAD`` deliveries (and up to
#: ``DELIVERIES_CHUNK`` - 1 more); older ones are sealed ``DELIVERIES_CHUNK`` at a time into chunk
#: records, at most ``DELIVERY_SLOTS`` of them. A page of the newest ``DELIVERIES_HEAD`` reads the head alone.
DELIVERIES_HEAD = 20
DELIVERIES_CHUNK = 50
DELIVERY_SLOTS = -(-DELIVERIES_LIMIT // DELIVERIES_CHUNK) + 2
#: The base of the names of the sealed chunks of the index of events naming no project (``deliveries``).
SHARED_CHUNKS = "deliveries-none"


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


def _taken(items: list[Any], most: int, cost: Callable[[Any, set[Any]], int]) -> int:
    """How many of the oldest ``items`` go into one sealed chunk: ``most``, fewer when their
    ``cost`` (bytes; it may count a shared part once, in the set it is given) passes half a
    record, at least one, never the newest."""
    counted: set[Any] = set()
    taken, size = 1, cost(items[0], counted)
    while taken < min(most, len(items) - 1) and size + cost(items[taken], set(counted)) <= RECORD_BUDGET // 2:
        size += cost(items[taken], counted)
        taken += 1
    return taken


def _index_ref(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What an index's head keeps of a sealed chunk's live ``entries``: their count, count per
    service, first and last start (as text, the order pages sort by) and latest and earliest (as times)."""
    services: dict[str, int] = {}
    for d in entries:
        services[str(d.get("service", ""))] = services.get(str(d.get("service", "")), 0) + 1
    starts = [str(d.get("started", "")) for d in entries]
    dated = [s for s in starts if s]
    earliest = latest = dated[0] if dated else ""
    for started in dated:
        earliest = started if before(started, earliest) else earliest
        latest = started if before(latest, started) else latest
    return {"count": len(entries), "services": services, "first": min(starts, default=""), "last": max(starts, default=""),
            "earliest": earliest, "latest": latest}


def slo_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resource_key(uri: str) -> str:
    """A resource URI as a ConfigMap data key (``[-._a-zA-Z0-9]+``)."""
    key = uri.strip("/").replace("/", "__")
    if not key or any(not (c.isalnum() or c in "-._") for c in key):
        raise ValidationError("resourceUri", [f"{uri!r}: expected a path of letters, digits, '-', '.', '_' and '/'"])
    return key


@frozen
class Project:
    """A project: its shipyard (parsed, and its text) and its services."""

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


def _stage_names(doc: object) -> tuple[str, ...] | None:
    """The stage names of a parsed shipyard document, in order; None when it has not the form
    every valid shipyard has (a non-empty list of stages, each a mapping with a name)."""
    stages = doc.get("stages") if isinstance(doc, Mapping) else None
    if not isinstance(stages, list) or not stages:
        return None
    names: list[str] = []
    for stage in stages:
        name = stage.get("name") if isinstance(stage, Mapping) else None
        if not isinstance(name, str) or not name:
            return None
        names.append(name)
    return tuple(names)


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

    def stage_names(self, project: str) -> tuple[str, ...]:
        """The names of a project's stages, in order, as ``project()`` would give them: read from
        the stored parsed shipyard (validated when it was written, and made from the text the
        record holds) without building the stages; else from the full read (which raises as it does)."""
        record = self.store.get(f"project.{project}")
        if record is not None:
            doc = _stored_doc(record.data.get("shipyard.yaml", ""), record.data.get(SHIPYARD_PARSED))
            names = _stage_names(doc)
            if names is not None:
                return names
        return tuple(stage.name for stage in self.project(project).shipyard.stages)

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
        found = self._resource_record(project, stage, service, uri)
        return found[0].data[found[1]] if found is not None else None

    def resource_document(self, project: str, stage: str, service: str, uri: str) -> tuple[str, object | None] | None:
        """The most specific resource (as ``resource``) with its stored parsed document when it has
        one made from that text (``PARSED_RESOURCES``), else None in its place; None when absent."""
        found = self._resource_record(project, stage, service, uri)
        if found is None:
            return None
        record, key = found
        return record.data[key], _stored_doc(record.data[key], record.data.get(key + PARSED_SUFFIX))

    def _resource_record(self, project: str, stage: str, service: str, uri: str) -> tuple[Record, str] | None:
        """The most specific record holding resource ``uri`` (service in stage, then stage, then
        project), and its key there."""
        key = resource_key(uri)
        for parts in ((project, stage, service), (project, stage), (project,)):
            if any(not p for p in parts):
                continue
            record = self.store.get(".".join(["resources", *parts]))
            if record is not None and key in record.data:
                return record, key
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

    # --- the deliveries index ----------------------------------------------------------------
    # Laid out as an evaluation history is (see below): a *head* (``deliveries.<p>``, or
    # ``deliveries`` for events naming no project) holds the newest entries under ``deliveries``
    # and, under ``chunks``, which sealed *chunks* (``deliveries.<p>.<slot>``, kind
    # ``deliveries-chunk``, so that a list of heads does not return them) hold the older ones:
    # for each, which of its entries are live (``skip``: the first ones are not; ``after``: none
    # started before it is) and what they are (``_index_ref``: count, per service, first and
    # last start), so that a page skips chunks unread and a new delivery reads none. A new
    # delivery is one compare-and-swap write of the head; when the head is full its oldest
    # ``DELIVERIES_CHUNK`` are first copied into a free slot (the same content whoever writes
    # it). A head written before chunks existed reads as it is and is split by its next write.
    def _index_name(self, project: str) -> tuple[str, str, dict[str, str]]:
        """A known project's index (head, the base of its chunks' names, labels), or the shared
        one (events naming no existing project)."""
        if project and self.store.get(f"project.{project}") is not None:
            return f"deliveries.{project}", f"deliveries.{project}", {KIND: "deliveries", PROJECT: project}
        return "deliveries", SHARED_CHUNKS, {KIND: "deliveries"}

    def _index_delivery(self, context: str, project: str, service: str, started: str) -> None:
        name, base, labels = self._index_name(project)
        forgotten: list[dict[str, Any]] = []

        def change(data: dict[str, str], _exists: bool) -> list[dict[str, Any]]:
            head: list[dict[str, Any]] = json.loads(data.get("deliveries", "[]"))
            index = json.loads(data.get("chunks", "{}"))
            live: list[dict[str, Any]] = list(index.get("live", []))
            forgotten.clear()
            if any(d.get("context") == context for d in head) or any(  # a repeat: only a chunk of its start can hold it
                    ref["first"] <= started <= ref["last"] and any(d.get("context") == context for d in self._index_chunk(base, ref))
                    for ref in live):
                return []
            head.append({"context": context, "service": service, "started": started})
            evicted: list[dict[str, Any]] = []  # a chunk's entries forgotten for its slot (none while the count bounds them)

            def forget() -> None:
                evicted.extend(self._index_chunk(base, live[0]))
                forgotten.append(live.pop(0))

            sealed = int(index.get("seq", 0))
            while len(head) >= DELIVERIES_HEAD + DELIVERIES_CHUNK or (len(head) > 1 and _size(head) > RECORD_BUDGET // 2):
                sealed += 1
                taken = _taken(head, DELIVERIES_CHUNK, lambda d, _counted: _size(d))
                entries = head[:taken]
                self._write_chunk(base, {**labels, KIND: "deliveries-chunk"}, live, DELIVERY_SLOTS, sealed,
                                  {"deliveries": json.dumps(entries, separators=(",", ":"), sort_keys=True)}, forget)
                live[-1].update(_index_ref(entries), skip=0, after="")
                del head[:taken]
            dropped = evicted + self._retire_from_index(base, head, live, forgotten)
            data["deliveries"] = json.dumps(head, separators=(",", ":"), sort_keys=True)
            data["chunks"] = json.dumps({"seq": sealed, "live": live}, separators=(",", ":"), sort_keys=True)
            return dropped

        dropped = self.update_data(name, labels, change)
        for ref in forgotten:  # their entries are retired; a slot taken since holds a newer chunk and stays
            self._delete_chunk(base, ref)
        for old in dropped:
            self._retire_delivery(old["context"])

    def _retire_from_index(self, base: str, head: list[dict[str, Any]], live: list[dict[str, Any]],
                           forgotten: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop from the index (in place) the deliveries past ``DELIVERIES_LIMIT`` (the oldest) or
        started ``DELIVERIES_MAX_AGE_S`` before the newest; the dropped entries. A chunk is read
        only when some of its entries may go; a chunk left empty is ``forgotten``."""
        newest = ""
        for started in [d["started"] for d in head if d.get("started")] + [r["latest"] for r in live if r.get("latest")]:
            newest = started if not newest or before(newest, started) else newest
        horizon = after(newest, -DELIVERIES_MAX_AGE_S) if newest else ""

        def old(started: object) -> bool:
            return bool(horizon and started and before(str(started), horizon))

        excess = len(head) + sum(ref["count"] for ref in live) - DELIVERIES_LIMIT
        dropped: list[dict[str, Any]] = []
        for ref in list(live):
            if excess <= 0 and not old(ref.get("earliest")):
                continue
            entries = self._index_chunk(base, ref, positions=True)
            going = [(i, d) for n, (i, d) in enumerate(entries) if n < excess or old(d.get("started"))]
            if excess > 0 and entries:
                ref["skip"] = entries[min(excess, len(entries)) - 1][0] + 1
            if any(old(d.get("started")) for _, d in going):
                ref["after"] = horizon
            excess -= min(max(excess, 0), len(entries))
            if len(going) == len(entries):
                forgotten.append(ref)
                live.remove(ref)
            elif going:
                ref.update(_index_ref([d for i, d in entries if (i, d) not in going]))
            dropped += [d for _, d in going]
        going_head = [d for i, d in enumerate(head) if i < excess or old(d.get("started"))]
        head[:] = [d for d in head if d not in going_head]
        return dropped + going_head

    def _index_chunk(self, base: str, ref: Mapping[str, Any], positions: bool = False) -> list[Any]:
        """The live entries of one sealed chunk of an index (oldest first); with ``positions``,
        as (position in the chunk, entry)."""
        record = self._sealed(base, ref)
        entries = json.loads(record.data.get("deliveries", "[]")) if record is not None else []
        horizon = str(ref.get("after", ""))
        found = [(i, d) for i, d in enumerate(entries) if i >= int(ref.get("skip", 0))
                 and not (horizon and d.get("started") and before(str(d["started"]), horizon))]
        return found if positions else [d for _, d in found]

    def _delete_chunk(self, base: str, ref: Mapping[str, Any]) -> None:
        """Delete a forgotten chunk, unless its slot holds another one by now."""
        try:
            record = self._sealed(base, ref, warn=False)
            if record is not None:
                self.store.delete(record.name, record.resource_version)
        except SluiceError as err:  # a later seal overwrites the slot anyway
            log.warning("could not delete the forgotten chunk %s.%s: %s", base, ref["slot"], err)

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
        """Recent deliveries of ``project`` (optionally of one service), oldest first; ``limit``:
        the newest N. Without ``project``: of every project (and of events naming none), by start time."""
        return list(reversed(self.context_page(project, service, limit)[0]))

    def context_page(self, project: str = "", service: str = "", limit: int | None = None,
                     offset: int = 0) -> tuple[list[str], int]:
        """The ``limit`` newest deliveries (all without a limit) after skipping the ``offset``
        newest, newest first, and how many the index holds (of ``service`` when given). Reads the
        index's head and only the sealed chunks that hold what is shown (see the block comment
        above); without ``project``, one list of every index's head, and chunks only when the
        heads hold too few."""
        wanted = offset + limit if limit else None

        def count(ref: Mapping[str, Any]) -> int:
            return int(ref["services"].get(service, 0)) if service else int(ref["count"])

        def matches(d: Mapping[str, Any]) -> bool:
            return not service or d.get("service") == service

        if project:
            record = self.store.get(f"deliveries.{project}")
            heads = [record] if record is not None else []
        else:
            heads = list(self.store.list({KIND: "deliveries"}))
        # (start, record, chunk, position): the order of the logical index, sorted by start across indexes
        found: list[tuple[str, str, int, int, str]] = []
        unread: list[tuple[str, str, int, str, dict[str, Any]]] = []  # (its last start, record, chunk, base, ref)
        total = 0
        for record in heads:
            base = record.name if record.name != "deliveries" else SHARED_CHUNKS
            live = list(json.loads(record.data.get("chunks", "{}")).get("live", []))
            head = [d for d in json.loads(record.data.get("deliveries", "[]")) if matches(d)]
            found += [(str(d.get("started", "")), record.name, len(live), i, str(d["context"])) for i, d in enumerate(head)]
            unread += [(str(ref["last"]), record.name, n, base, ref) for n, ref in enumerate(live) if count(ref)]
            total += len(head) + sum(count(ref) for ref in live)
        if project:  # one index: its own order, the newest chunk first; chunks before the page are skipped unread
            newest_first = [c for *_, c in reversed(found)]
            for *_, base, ref in reversed(unread):
                if wanted is not None and len(newest_first) >= wanted:
                    break
                if wanted is not None and len(newest_first) + count(ref) <= offset:
                    newest_first += [""] * count(ref)
                    continue
                newest_first += [str(d["context"]) for d in reversed(self._index_chunk(base, ref)) if matches(d)]
            return newest_first[offset:wanted], total
        unread.sort(key=lambda u: u[:3])
        while unread:  # the chunk that may rank highest next, while it may hold one of the newest ``wanted``
            if wanted is not None and len(found) >= wanted and unread[-1][:3] < sorted(found)[-wanted][:3]:
                break
            _last, name, n, base, ref = unread.pop()
            found += [(str(d.get("started", "")), name, n, i, str(d["context"]))
                      for i, d in enumerate(self._index_chunk(base, ref)) if matches(d)]
        return [c for *_, c in sorted(found, reverse=True)][offset:wanted], total

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
        record = self._sealed(f"evaluations.{project}.{stage}.{service}", ref)
        if record is None:
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

        taken = _taken(history, HISTORY_CHUNK, cost)
        entries = history[:taken]
        own = {str(e.get("slo_hash")): slos.get(str(e.get("slo_hash")), "") for e in entries}
        data = {"history": json.dumps(entries, separators=(",", ":"), sort_keys=True),
                "slos": json.dumps(own, separators=(",", ":"), sort_keys=True)}
        self._write_chunk(name, {**labels, KIND: "evaluations-chunk"}, chunks, CHUNK_SLOTS, seq, data,
                          lambda: self._forget_chunk(name, prefix, chunks))
        chunks[-1]["ids"] = [e.get("id") for e in entries]
        return taken

    def _write_chunk(self, base: str, labels: Mapping[str, str], chunks: list[dict[str, Any]], slots: int, seq: int,
                     data: Mapping[str, str], forget: Callable[[], None]) -> None:
        """Write ``data`` as sealed chunk ``seq`` into the lowest free of ``slots`` slots
        (``<base>.<slot>``; ``forget`` frees one, the oldest, while none is free) and add its
        reference (slot, seq) to ``chunks``. A slot only takes a newer chunk (``newer_chunk``)."""
        used = {ref["slot"] for ref in chunks}
        while len(used) >= slots:
            forget()
            used = {ref["slot"] for ref in chunks}
        slot = min(set(range(slots)) - used)
        name, content = f"{base}.{slot}", {"seq": str(seq), **data}
        cas_update(self.store, name, lambda record: newer_chunk(record, name, content, labels, seq))
        chunks.append({"slot": slot, "seq": seq})

    def _sealed(self, base: str, ref: Mapping[str, Any], warn: bool = True) -> Record | None:
        """The sealed chunk ``ref`` names (``<base>.<slot>``), or None when the slot holds another one."""
        record = self.store.get(f"{base}.{ref['slot']}")
        if record is None or record.data.get("seq") != str(ref["seq"]):
            if warn:
                log.warning("%s: sealed chunk %s is missing", base, ref)
            return None
        return record

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
        record = self._sealed(name, ref, warn=False)
        if record is None:
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
