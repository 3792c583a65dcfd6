"""The event contract: one enum of types, one frozen payload per type, one envelope.

No raw event dicts go past the edge: a function decodes the CloudEvent into an ``Event``
(``Event.from_parts``), works on typed payloads, and encodes its replies with
``Event.to_attributes`` / ``payload.to_dict``. Payload keys are the seed's (Keptn 0.6) names.

Pure: no clock, no randomness. Reply ids are derived from the cause (uuid5), so a duplicate
delivery produces byte-identical replies; times are passed in by the caller.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.strategies import DeploymentStrategy, TestStrategy
from sluice.core.validation import (
    Check,
    Problems,
    Reader,
    context_id,
    dns_label_problem,
    rfc3339_problem,
)
from sluice.core.verdict import Verdict
from sluice.errors import ValidationError

if TYPE_CHECKING:
    from sluice.core.payloads.approval_finished import ApprovalFinished as ApprovalFinished
    from sluice.core.payloads.approval_rejected import ApprovalRejected as ApprovalRejected
    from sluice.core.payloads.approval_triggered import ApprovalTriggered as ApprovalTriggered
    from sluice.core.payloads.configuration_change import ConfigurationChange as ConfigurationChange
    from sluice.core.payloads.deployment_finished import DeploymentFinished as DeploymentFinished
    from sluice.core.payloads.done import Done as Done
    from sluice.core.payloads.evaluation_done import EvaluationDone as EvaluationDone
    from sluice.core.payloads.get_sli import GetSli as GetSli
    from sluice.core.payloads.get_sli_done import GetSliDone as GetSliDone
    from sluice.core.payloads.ping import Ping as Ping
    from sluice.core.payloads.start_evaluation import StartEvaluation as StartEvaluation
    from sluice.core.payloads.tests_finished import TestsFinished as TestsFinished

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class EventType(FastStrEnum):
    """Every CloudEvent type Sluice produces or consumes (DESIGN §2)."""

    CONFIGURATION_CHANGE = "sh.keptn.event.configuration.change"
    DEPLOYMENT_FINISHED = "sh.keptn.events.deployment-finished"
    TESTS_FINISHED = "sh.keptn.events.tests-finished"
    START_EVALUATION = "sh.keptn.event.start-evaluation"
    GET_SLI = "sh.keptn.internal.event.get-sli"
    GET_SLI_DONE = "sh.keptn.internal.event.get-sli.done"
    EVALUATION_DONE = "sh.keptn.events.evaluation-done"
    APPROVAL_TRIGGERED = "sh.keptn.event.approval.triggered"
    APPROVAL_FINISHED = "sh.keptn.event.approval.finished"
    APPROVAL_REJECTED = "sh.keptn.event.approval.rejected"
    DONE = "sh.keptn.events.done"
    PING = "dev.knative.sources.ping"


class CanaryAction(FastStrEnum):
    SET = "set"
    PROMOTE = "promote"
    DISCARD = "discard"


class Decision(FastStrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    #: Steering a running canary (core.canary): hold it at its next step, let it go on, stop it now.
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


class Outcome(FastStrEnum):
    """How a stage's part of a delivery ended (``sh.keptn.events.done``)."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    STOPPED = "stopped"
    DECLINED = "declined"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    EVALUATED = "evaluated"  # a quality gate without a deployment ended (``result`` is its verdict)


# --- fields: each decoded once by the core's reader, encoded back to the same JSON ----------

_Read = Callable[[Reader, str], Any]
_E = TypeVar("_E", bound=StrEnum)


def _f(key: str, default: Any = MISSING, read: _Read | None = None, encode: Callable[[Any], Any] | None = None) -> Any:
    """A payload field stored under the seed's (possibly dotted) ``key``, read by ``read``
    (a string by default) and written by ``encode`` (enums as their values by default)."""
    meta = {"key": key, "read": read or _text, "encode": encode}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, dict | list):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)  # type: ignore[misc]
    return field(default=default, metadata=meta)


def _text(r: Reader, key: str) -> str:
    return r.string(key)


def _checked(check: Check, *, optional: bool = False) -> _Read:
    def read(r: Reader, key: str) -> str:
        if optional and r.raw(key) == "":
            return ""
        return r.string(key, check=check)

    return read


@frozen
class _EnumRead:
    """Reads a member of ``kind`` (``aliases`` map wire spellings to values; with ``empty_none``
    an empty string is ``None``). Payloads built in-process with plain strings go through it too
    (``Payload.__post_init__``), so a field always holds the member the services compare with ``is``."""

    kind: type[StrEnum]
    aliases: Mapping[str, str] | None = None
    empty_none: bool = False

    def __call__(self, r: Reader, key: str) -> StrEnum | None:
        if self.empty_none and r.raw(key) == "":
            return None
        return r.enum(key, self.kind, aliases=self.aliases)


def _enum(kind: type[_E], aliases: Mapping[str, str] | None = None) -> _Read:
    return _EnumRead(kind, aliases)


_deployment_strategy = _EnumRead(DeploymentStrategy, empty_none=True)


_ENUM_FIELDS: dict[str, tuple[tuple[str, str, _EnumRead], ...]] = {}


def _enum_fields(cls: type[Any]) -> tuple[tuple[str, str, _EnumRead], ...]:
    """(attribute, wire key, reader) of each enum field of a payload class (computed once)."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name not in _ENUM_FIELDS:
        _ENUM_FIELDS[name] = tuple((f.name, f.metadata["key"], f.metadata["read"]) for f in fields(cls)
                                   if isinstance(f.metadata.get("read"), _EnumRead))
    return _ENUM_FIELDS[name]


def _percent(r: Reader, key: str) -> int | None:
    return r.integer(key, minimum=0, maximum=100)


def _labels(r: Reader, key: str) -> dict[str, str]:
    return r.string_map(key)


def _object(r: Reader, key: str) -> dict[str, Any]:
    node = r.mapping(key)
    return dict(node.value) if isinstance(node.value, Mapping) else {}


def _strings(r: Reader, key: str) -> list[str]:
    return r.strings(key)


def _filters(r: Reader, key: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for item in r.items(key, what="a list of {key, value} objects"):
        if item.expect_mapping("a {key, value} object of strings"):
            out.append({"key": item.string("key", required=True), "value": item.string("value")})
    return out


def _indicator_values(r: Reader, key: str) -> list[dict[str, Any]]:
    """``[{metric, value, success, message, …}]``: checked, and kept whole (a provider may add
    ``samples``, ``distribution``)."""
    out: list[dict[str, Any]] = []
    for item in r.items(key):
        if item.expect_mapping("an object with a string metric") and isinstance(item.value, Mapping):
            item.string("metric", required=True)
            item.number("value")
            item.boolean("success", True)
            item.string("message")
            out.append(dict(item.value))
    return out


def _lag(r: Reader, key: str) -> float:
    value = r.number(key, 0.0, finite=True)
    return max(0.0, value or 0.0)


def _absent_as_empty(value: object) -> object:
    return "" if value is None else value


P = TypeVar("P", bound="Payload")


@frozen
class Payload:
    """Base of the typed payloads: ``from_dict`` validates and reports every problem at once."""

    TYPE: ClassVar[EventType]

    def __post_init__(self) -> None:
        for name, key, read in _enum_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, read.kind):
                problems = Problems(f"event {self.TYPE.value}")
                parent, _, leaf = key.rpartition(".")
                member = read(Reader({leaf: value}, parent, problems), leaf)
                problems.raise_if_any()
                object.__setattr__(self, name, member)

    @classmethod
    def from_dict(cls: type[P], data: object, subject: str | None = None) -> P:
        subject = subject or f"event {cls.TYPE.value}"
        if not isinstance(data, Mapping):
            raise ValidationError(subject, [f"data: expected a JSON object, found {type(data).__name__}"])
        problems = Problems(subject)
        root = Reader(data, "", problems)
        values: dict[str, Any] = {}
        for f in fields(cls):
            *parents, key = f.metadata["key"].split(".")
            node = root
            for part in parents:
                node = node.mapping(part)
            if not node.has(key):
                if f.default is MISSING and f.default_factory is MISSING:
                    node.fail("required, missing", key)
                continue
            before = len(problems.messages)
            value = f.metadata["read"](node, key)
            if len(problems.messages) == before:
                values[f.name] = value
        problems.extend(cls._extra_problems(values))
        problems.raise_if_any()
        return cls(**values)

    @classmethod
    def _extra_problems(cls, values: Mapping[str, Any]) -> list[str]:
        return []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["encode"] is not None:
                value = f.metadata["encode"](value)
            if isinstance(value, StrEnum):
                value = value.value
            _put(out, f.metadata["key"], value)
        return out


def _put(out: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


_label = _checked(dns_label_problem)
_opt_label = _checked(dns_label_problem, optional=True)
_time = _checked(rfc3339_problem)
_verdict = _enum(Verdict)


@frozen(kw_only=True)
class Scoped(Payload):
    """A payload about one service in one stage of a project (most of them)."""

    project: str = _f("project", read=_label)
    stage: str = _f("stage", read=_label)
    service: str = _f("service", read=_label)
    labels: dict[str, str] = _f("labels", {}, read=_labels)


@frozen(kw_only=True)
class Staged(Scoped):
    """A payload about the artifact under delivery in a stage, and the stage's strategies."""

    image: str = _f("image", "")
    tag: str = _f("tag", "")
    teststrategy: TestStrategy = _f("teststrategy", TestStrategy.NONE, read=_enum(TestStrategy, {"none": ""}))
    #: ``None`` when the payload does not say (``""`` on the wire).
    deploymentstrategy: DeploymentStrategy | None = _f(
        "deploymentstrategy", None, read=_deployment_strategy, encode=_absent_as_empty
    )


# --- the payload classes: one module each (``sluice.core.payloads``), created on first use ------
#
# ``from sluice.core.events import Done`` works as if they were defined here (module ``__getattr__``,
# PEP 562), and so does ``PAYLOADS[EventType.DONE]``: a function's cold start compiles the dataclass
# methods of the payloads its first event needs, not of all of them.

#: type → the name of its payload class.
_PAYLOAD_NAMES: Mapping[EventType, str] = {
    EventType.CONFIGURATION_CHANGE: "ConfigurationChange",
    EventType.DEPLOYMENT_FINISHED: "DeploymentFinished",
    EventType.TESTS_FINISHED: "TestsFinished",
    EventType.START_EVALUATION: "StartEvaluation",
    EventType.GET_SLI: "GetSli",
    EventType.GET_SLI_DONE: "GetSliDone",
    EventType.EVALUATION_DONE: "EvaluationDone",
    EventType.APPROVAL_TRIGGERED: "ApprovalTriggered",
    EventType.APPROVAL_FINISHED: "ApprovalFinished",
    EventType.APPROVAL_REJECTED: "ApprovalRejected",
    EventType.DONE: "Done",
    EventType.PING: "Ping",
}
#: payload class name → its module.
_PAYLOAD_MODULES: Mapping[str, str] = {
    "ConfigurationChange": "sluice.core.payloads.configuration_change",
    "DeploymentFinished": "sluice.core.payloads.deployment_finished",
    "TestsFinished": "sluice.core.payloads.tests_finished",
    "StartEvaluation": "sluice.core.payloads.start_evaluation",
    "GetSli": "sluice.core.payloads.get_sli",
    "GetSliDone": "sluice.core.payloads.get_sli_done",
    "EvaluationDone": "sluice.core.payloads.evaluation_done",
    "ApprovalTriggered": "sluice.core.payloads.approval_triggered",
    "ApprovalFinished": "sluice.core.payloads.approval_finished",
    "ApprovalRejected": "sluice.core.payloads.approval_rejected",
    "Done": "sluice.core.payloads.done",
    "Ping": "sluice.core.payloads.ping",
}


def _payload_class(name: str) -> type[Payload]:
    cls: type[Payload] = getattr(importlib.import_module(_PAYLOAD_MODULES[name]), name)
    globals()[name] = cls  # later lookups find it without this function
    return cls


if not TYPE_CHECKING:  # for mypy the names are the TYPE_CHECKING imports above, checked as any other

    def __getattr__(name: str) -> Any:
        if name in _PAYLOAD_MODULES:
            return _payload_class(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *_PAYLOAD_MODULES})


class _Payloads(Mapping[EventType, "type[Payload]"]):
    """The wire registry: every event type → its payload class (the class is loaded on lookup)."""

    def __getitem__(self, kind: EventType) -> type[Payload]:
        name = _PAYLOAD_NAMES[kind]
        cls = globals().get(name) or _payload_class(name)
        if cls.TYPE is not kind:
            raise TypeError(f"payload {name} declares type {cls.TYPE.value}, registered for {kind.value}")
        return cls

    def __iter__(self) -> Iterator[EventType]:
        return iter(_PAYLOAD_NAMES)

    def __len__(self) -> int:
        return len(_PAYLOAD_NAMES)


PAYLOADS: Mapping[EventType, type[Payload]] = _Payloads()

_REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
_STRING_ATTRIBUTES = ("time", "shkeptncontext", "triggeredid", "datacontenttype", "subject", "dataschema")
_EXTENSION_PREFIX = "sluice"
#: Longest attribute value accepted (an id, a source, a signature): 1 KiB is plenty.
MAX_ATTRIBUTE_LENGTH = 1024


@frozen
class Event:
    """A CloudEvent 1.0 with Sluice's extensions and a typed payload."""

    type: EventType
    data: Payload
    source: str
    id: str
    time: str
    shkeptncontext: str
    triggeredid: str = ""
    #: Sluice's own extension attributes (``sluice…``, e.g. an approval's signature); others are dropped.
    extensions: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def new(
        cls,
        data: Payload,
        *,
        source: str,
        id: str,
        time: str,
        context: str | None = None,
        triggeredid: str = "",
    ) -> Event:
        """A new event; ``context`` defaults to one derived from ``id`` (a new delivery)."""
        return cls(
            type=data.TYPE,
            data=data,
            source=source,
            id=id,
            time=time,
            shkeptncontext=context_id(context or id),
            triggeredid=triggeredid,
        )

    def reply(self, data: Payload, *, source: str, time: str, discriminator: str = "") -> Event:
        """The event this one causes: same delivery context, ``triggeredid`` = this id, and an id
        derived from this event's source and id (a duplicate delivery yields the same reply)."""
        reply_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.source}#{self.id}#{data.TYPE.value}#{discriminator}"))
        return Event(
            type=data.TYPE,
            data=data,
            source=source,
            id=reply_id,
            time=time,
            shkeptncontext=self.shkeptncontext,
            triggeredid=self.id,
        )

    @property
    def dedup_key(self) -> str:
        """Key for de-duplicating deliveries: the broker never de-duplicates, we do."""
        return f"{self.source}#{self.id}"

    def to_attributes(self) -> dict[str, str]:
        attrs = {
            "specversion": SPEC_VERSION,
            "type": self.type.value,
            "source": self.source,
            "id": self.id,
            "time": self.time,
            "datacontenttype": CONTENT_TYPE,
            "shkeptncontext": self.shkeptncontext,
        }
        if self.triggeredid:
            attrs["triggeredid"] = self.triggeredid
        attrs.update(self.extensions)
        return attrs

    def to_json_dict(self) -> dict[str, Any]:
        """The structured-mode JSON form (attributes + ``data``)."""
        return {**self.to_attributes(), "data": self.data.to_dict()}

    @classmethod
    def from_parts(cls, attributes: Mapping[str, Any], data: object) -> Event:
        """Decode and validate; every problem of the event is reported in one ValidationError."""
        problems = [f"{a}: required CloudEvent attribute, missing" for a in _REQUIRED_ATTRIBUTES if not attributes.get(a)]
        problems.extend(
            f"{a}: expected a string, found {type(attributes[a]).__name__}"
            for a in (*_REQUIRED_ATTRIBUTES, *_STRING_ATTRIBUTES) if a in attributes and not isinstance(attributes[a], str)
        )
        problems.extend(
            f"{a}: at most {MAX_ATTRIBUTE_LENGTH} characters, found {len(v)}"
            for a, v in attributes.items() if isinstance(v, str) and len(v) > MAX_ATTRIBUTE_LENGTH
        )
        extensions = {k: v for k, v in attributes.items() if k.startswith(_EXTENSION_PREFIX)}
        problems.extend(f"{k}: expected a string, found {type(v).__name__}" for k, v in extensions.items() if not isinstance(v, str))
        spec = attributes.get("specversion")
        if spec and spec != SPEC_VERSION:
            problems.append(f"specversion: expected {SPEC_VERSION!r}, found {spec!r}")
        raw_type = attributes.get("type", "")
        subject = f"event {str(attributes.get('id', '?'))[:80]} ({str(raw_type)[:80] or 'no type'})"
        try:
            event_type = EventType(raw_type)
        except ValueError:
            if raw_type:
                known = ", ".join(t.value for t in EventType)
                problems.append(f"type: unknown event type {str(raw_type)[:80]!r}; expected one of {known}")
            raise ValidationError(subject, problems) from None
        time = attributes.get("time") or ""
        if time and (p := rfc3339_problem("time", time)):
            problems.append(p)
        payload: Payload | None = None
        try:
            payload = PAYLOADS[event_type].from_dict(data if data is not None else {}, subject)
        except ValidationError as err:
            problems.extend(f"data.{p}" for p in err.problems)
        if problems or payload is None:
            raise ValidationError(subject, problems)
        raw_context = str(attributes.get("shkeptncontext") or attributes["id"])
        return cls(
            type=event_type,
            data=payload,
            source=str(attributes["source"]),
            id=str(attributes["id"]),
            time=str(time),
            shkeptncontext=context_id(raw_context),
            triggeredid=str(attributes.get("triggeredid") or ""),
            extensions=extensions,
        )

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> Event:
        """Decode the structured-mode JSON form."""
        attrs = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
        return cls.from_parts(attrs, doc.get("data"))
