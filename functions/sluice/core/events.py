"""The event contract: one enum of types, one frozen payload per type, one envelope.

No raw event dicts go past the edge: a function decodes the CloudEvent into an ``Event``
(``Event.from_parts``), works on typed payloads, and encodes its replies with
``Event.to_attributes`` / ``payload.to_dict``. Payload keys are the seed's (Keptn 0.6) names.

Pure: no clock, no randomness. Reply ids are derived from the cause (uuid5), so a duplicate
delivery produces byte-identical replies; times are passed in by the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from sluice.core.validation import context_id, dns_label_problem, image_problem, rfc3339_problem
from sluice.errors import ValidationError

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class EventType(StrEnum):
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


class CanaryAction(StrEnum):
    SET = "set"
    PROMOTE = "promote"
    DISCARD = "discard"


class Result(StrEnum):
    PASS = "pass"
    WARNING = "warning"
    FAIL = "fail"


class Decision(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    #: Steering a running canary (core.canary): hold it at its next step, let it go on, stop it now.
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


class Outcome(StrEnum):
    """How a stage's part of a delivery ended (``sh.keptn.events.done``)."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    STOPPED = "stopped"
    DECLINED = "declined"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    EVALUATED = "evaluated"  # a quality gate without a deployment ended (``result`` is its verdict)


# --- field helpers -------------------------------------------------------------------------

_Check = Callable[[str, object], "str | None"]


def _f(key: str, default: Any = MISSING, check: _Check | None = None) -> Any:
    """A payload field stored under the seed's (possibly dotted) ``key``."""
    meta = {"key": key, "check": check}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, dict | list):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)  # type: ignore[misc]
    return field(default=default, metadata=meta)


def _enum_check(enum: type[StrEnum]) -> _Check:
    def check(name: str, value: object) -> str | None:
        valid = [e.value for e in enum]
        if value not in valid:
            return f"{name}: expected one of {', '.join(valid)}, found {value!r}"
        return None

    return check


def _optional(check: _Check) -> _Check:
    def wrapped(name: str, value: object) -> str | None:
        return None if value in (None, "") else check(name, value)

    return wrapped


def _str_check(name: str, value: object) -> str | None:
    return None if isinstance(value, str) else f"{name}: expected a string, found {value!r}"


def _int_0_100(name: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        return f"{name}: expected a whole number from 0 to 100, found {value!r}"
    return None


def _mapping_check(name: str, value: object) -> str | None:
    return None if isinstance(value, dict) else f"{name}: expected an object, found {type(value).__name__}"


def _labels_check(name: str, value: object) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return f"{name}: expected an object of strings, found {type(value).__name__}"
    return None


def _shape_problem(data: Mapping[str, Any], dotted: str) -> str | None:
    """Problem when a parent of a dotted key is present but not an object (``"canary": "set"``)."""
    node: Any = data
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            return None
        node = node[part]
        if not isinstance(node, Mapping):
            return f"{'.'.join(parts[: i + 1])}: expected an object, found {type(node).__name__}"
    return None


def _strings_check(name: str, value: object) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"{name}: expected a list of strings, found {type(value).__name__}"
    return None


def _filters_check(name: str, value: object) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(f, dict) and isinstance(f.get("key"), str) and isinstance(f.get("value", ""), str) for f in value
    ):
        return f"{name}: expected a list of {{key, value}} objects of strings"
    return None


def _indicator_values_check(name: str, value: object) -> str | None:
    if not isinstance(value, list):
        return f"{name}: expected a list, found {type(value).__name__}"
    for i, v in enumerate(value):
        if not isinstance(v, dict) or not isinstance(v.get("metric"), str):
            return f"{name}[{i}]: expected an object with a string metric"
        number = v.get("value")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            return f"{name}[{i}].value: expected a number or null, found {type(number).__name__}"
        if not isinstance(v.get("success", True), bool) or not isinstance(v.get("message", ""), str):
            return f"{name}[{i}]: success must be true/false and message a string"
    return None


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def _put(out: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


P = TypeVar("P", bound="Payload")


@dataclass(frozen=True)
class Payload:
    """Base of the typed payloads: ``from_dict`` validates and reports every problem at once."""

    TYPE: ClassVar[EventType]

    @classmethod
    def from_dict(cls: type[P], data: object, subject: str | None = None) -> P:
        subject = subject or f"event {cls.TYPE.value}"
        if not isinstance(data, Mapping):
            raise ValidationError(subject, [f"data: expected a JSON object, found {type(data).__name__}"])
        problems: list[str] = []
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.metadata["key"]
            if (shape := _shape_problem(data, key)) and shape not in problems:
                problems.append(shape)
                continue
            raw = _get(data, key)
            if raw is MISSING or raw is None:
                if f.default is MISSING and f.default_factory is MISSING:
                    problems.append(f"{key}: required, missing")
                continue
            check = f.metadata["check"]
            problem = check(key, raw) if check else None
            if problem:
                problems.append(problem)
                continue
            values[f.name] = raw
        problems.extend(cls._extra_problems(values))
        if problems:
            raise ValidationError(subject, problems)
        return cls(**values)

    @classmethod
    def _extra_problems(cls, values: Mapping[str, Any]) -> list[str]:
        return []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, StrEnum):
                value = value.value
            _put(out, f.metadata["key"], value)
        return out


_label = dns_label_problem
_opt_label = _optional(dns_label_problem)
_time = rfc3339_problem
_opt_time = _optional(rfc3339_problem)
_result = _enum_check(Result)
_opt_str = _str_check


@dataclass(frozen=True, kw_only=True)
class Scoped(Payload):
    """A payload about one service in one stage of a project (most of them)."""

    project: str = _f("project", check=_label)
    stage: str = _f("stage", check=_label)
    service: str = _f("service", check=_label)
    labels: dict[str, str] = _f("labels", {}, check=_labels_check)


@dataclass(frozen=True, kw_only=True)
class Staged(Scoped):
    """A payload about the artifact under delivery in a stage, and the stage's strategies."""

    image: str = _f("image", "", check=_opt_str)
    tag: str = _f("tag", "", check=_opt_str)
    teststrategy: str = _f("teststrategy", "", check=_opt_str)
    deploymentstrategy: str = _f("deploymentstrategy", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class ConfigurationChange(Scoped):
    """Deploy ``image`` to a stage (``set``), or ``promote`` / ``discard`` its candidate.

    ``stage`` may be empty for a new artifact: the first stage of the shipyard is meant.
    """

    TYPE: ClassVar[EventType] = EventType.CONFIGURATION_CHANGE
    stage: str = _f("stage", "", check=_opt_label)
    image: str = _f("valuesCanary.image", "", check=_optional(image_problem))
    action: str = _f("canary.action", CanaryAction.SET.value, check=_enum_check(CanaryAction))
    value: int = _f("canary.value", 100, check=_int_0_100)
    #: Who approved a held promote / discard (empty when the gate decided on its own).
    approver: str = _f("approver", "", check=_opt_str)

    @classmethod
    def _extra_problems(cls, values: Mapping[str, Any]) -> list[str]:
        if values.get("action", "set") == "set" and not values.get("image"):
            return ["valuesCanary.image: required when canary.action is 'set', missing"]
        return []

    @property
    def canary_action(self) -> CanaryAction:
        return CanaryAction(self.action)


@dataclass(frozen=True, kw_only=True)
class DeploymentFinished(Staged):
    """The candidate is reachable at ``deploymentURILocal`` — or the deployment failed."""

    TYPE: ClassVar[EventType] = EventType.DEPLOYMENT_FINISHED
    deploymentURILocal: str = _f("deploymentURILocal", "", check=_opt_str)
    deploymentURIPublic: str = _f("deploymentURIPublic", "", check=_opt_str)
    result: str = _f("result", Result.PASS.value, check=_result)
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class TestsFinished(Staged):
    """The test window and its result."""

    __test__ = False  # not a pytest test class
    TYPE: ClassVar[EventType] = EventType.TESTS_FINISHED
    start: str = _f("start", check=_time)
    end: str = _f("end", check=_time)
    result: str = _f("result", Result.PASS.value, check=_result)
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class StartEvaluation(Scoped):
    """A quality gate on a time window, without deploying."""

    TYPE: ClassVar[EventType] = EventType.START_EVALUATION
    start: str = _f("start", check=_time)
    end: str = _f("end", check=_time)


@dataclass(frozen=True, kw_only=True)
class GetSli(Staged):
    """Ask a provider for indicator values over a window."""

    TYPE: ClassVar[EventType] = EventType.GET_SLI
    sliProvider: str = _f("sliProvider", check=_str_check)
    start: str = _f("start", check=_time)
    end: str = _f("end", check=_time)
    indicators: list[str] = _f("indicators", [], check=_strings_check)
    customFilters: list[dict[str, str]] = _f("customFilters", [], check=_filters_check)
    deployment: str = _f("deployment", "direct", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class GetSliDone(Scoped):
    """Indicator values: ``[{metric, value, success, message}]``."""

    TYPE: ClassVar[EventType] = EventType.GET_SLI_DONE
    start: str = _f("start", check=_time)
    end: str = _f("end", check=_time)
    indicatorValues: list[dict[str, Any]] = _f("indicatorValues", [], check=_indicator_values_check)
    sliProvider: str = _f("sliProvider", "", check=_opt_str)
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class EvaluationDone(Staged):
    """The gate's verdict, in the seed's shape."""

    TYPE: ClassVar[EventType] = EventType.EVALUATION_DONE
    result: str = _f("result", check=_result)
    evaluationdetails: dict[str, Any] = _f("evaluationdetails", {}, check=_mapping_check)
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class ApprovalTriggered(Scoped):
    """A promotion waits for a person: approve or decline with ``approval.finished``."""

    TYPE: ClassVar[EventType] = EventType.APPROVAL_TRIGGERED
    image: str = _f("image", "", check=_opt_str)
    result: str = _f("result", Result.PASS.value, check=_result)
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class ApprovalFinished(Scoped):
    """A person's decision on a held promotion (``approve`` or ``decline``), or on a running canary
    (``pause``, ``resume``, ``abort``)."""

    TYPE: ClassVar[EventType] = EventType.APPROVAL_FINISHED
    decision: str = _f("approval.decision", check=_enum_check(Decision))
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True, kw_only=True)
class ApprovalRejected(Scoped):
    """An ``approval.finished`` the gate refused (unsigned, badly signed, stale): it changed nothing."""

    TYPE: ClassVar[EventType] = EventType.APPROVAL_REJECTED
    decision: str = _f("approval.decision", "", check=_opt_str)
    approver: str = _f("approval.approver", "", check=_opt_str)
    reason: str = _f("reason", check=_str_check)


@dataclass(frozen=True, kw_only=True)
class Done(Scoped):
    """A stage's part of a delivery has ended, with its outcome."""

    TYPE: ClassVar[EventType] = EventType.DONE
    outcome: str = _f("outcome", check=_enum_check(Outcome))
    result: str = _f("result", Result.PASS.value, check=_result)
    image: str = _f("image", "", check=_opt_str)
    message: str = _f("message", "", check=_opt_str)


@dataclass(frozen=True)
class Ping(Payload):
    """A PingSource tick: time-driven work (timeouts of waits) runs on it."""

    TYPE: ClassVar[EventType] = EventType.PING
    message: str = _f("message", "", check=_opt_str)


PAYLOADS: Mapping[EventType, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        ConfigurationChange,
        DeploymentFinished,
        TestsFinished,
        StartEvaluation,
        GetSli,
        GetSliDone,
        EvaluationDone,
        ApprovalTriggered,
        ApprovalFinished,
        ApprovalRejected,
        Done,
        Ping,
    )
}

_REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
_STRING_ATTRIBUTES = ("time", "shkeptncontext", "triggeredid", "datacontenttype", "subject", "dataschema")
_EXTENSION_PREFIX = "sluice"
#: Longest attribute value accepted (an id, a source, a signature): 1 KiB is plenty.
MAX_ATTRIBUTE_LENGTH = 1024


@dataclass(frozen=True)
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
