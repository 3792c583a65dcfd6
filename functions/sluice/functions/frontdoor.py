"""The front door: one validating entrance for Sluice events from people and scripts.

``POST /intake/events`` (locally ``http://127.0.0.1:8080/intake/events``; on a cluster the
``intake`` Knative Service's URL + ``/events``) takes a CloudEvent in binary or structured mode
and checks it completely before anything is published: that it is a CloudEvent 1.0, a Sluice
type, a valid payload, and that the project, the stage (when given) and the service it names
exist. Any problem: ``400`` with every problem named (JSON ``{"status", "message",
"problems"}``), nothing published. All well: the event is published to the broker (``K_SINK``)
and the answer is ``202`` with ``{"status", "message", "id", "type", "shkeptncontext"}``.

The broker's own ingress stays what a Knative Broker is (any valid CloudEvent: 202) for
integrators; this door is where people get their mistakes named. When a secret is set for the
``cloudevents`` intake source (``sluice set intake-secret --source cloudevents``, as you should
when intake is reachable from outside the cluster), the door requires it too (``X-Sluice-Token``,
``Authorization: Bearer``, or ``?token=``); without one it is as open as the broker's ingress.
Other errors are answered by intake with ``sluice.errors.status_for``'s status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sluice.core.cloudevent import REQUIRED
from sluice.core.events import Event, EventType
from sluice.errors import NotFoundError, RetryableError, ValidationError, status_for
from sluice.functions.http import decode
from sluice.functions.runtime import Runtime
from sluice.services.records import Records

#: The path segment of the door under the intake function.
PATH = "events"
#: The intake source whose secret, when set, the door requires.
TOKEN_SOURCE = "cloudevents"
_JSON = {"Content-Type": "application/json"}


def check(headers: Mapping[str, str], body: bytes, records: Records) -> Event:
    """The event, if it is a Sluice event whose project, stage and service exist; else
    ``ValidationError`` naming every problem found."""
    problems = _attribute_problems(headers, body)
    event: Event | None = None
    if not problems:
        try:
            event = decode(headers, body)
        except ValidationError as err:
            problems.extend(err.problems)
    if event is not None and event.type is EventType.PING:
        problems.append(f"type: {event.type.value} is the broker's tick, not an event to send through the front door")
    problems.extend(existence_problems(_data(headers, body) if event is None else event.data.to_dict(), records))
    if problems or event is None:
        raise ValidationError("event", problems or ["not a Sluice event"])
    return event


def _attribute_problems(headers: Mapping[str, str], body: bytes) -> list[str]:
    """The required attributes a binary or structured event lacks (named before the SDK decodes)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "ce-specversion" in lower or "ce-type" in lower or "ce-id" in lower:
        attrs = {k[3:]: v for k, v in lower.items() if k.startswith("ce-")}
        where = "header ce-"
    else:
        try:
            doc = json.loads(body) if body else None
        except ValueError as err:
            return [f"the body is not JSON (structured mode), and there are no ce- headers (binary mode): {err}"]
        if not isinstance(doc, dict):
            return ["not a CloudEvent: no ce- headers (binary mode) and the body is not a JSON object (structured mode)"]
        attrs, where = {k: v for k, v in doc.items() if isinstance(v, str)}, ""
    return [f"{where}{name}: required CloudEvent attribute, missing" for name in REQUIRED if not attrs.get(name)]


def _data(headers: Mapping[str, str], body: bytes) -> object:
    """The event's data as far as it can be read (to name more problems when decoding failed)."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None
    lower = {k.lower() for k in headers}
    return doc if "ce-specversion" in lower else (doc.get("data") if isinstance(doc, dict) else None)


def existence_problems(data: object, records: Records) -> list[str]:
    """What a payload names that does not exist: its project, its stage, its service."""
    if not isinstance(data, Mapping):
        return []
    project, stage, service = (data.get(k) for k in ("project", "stage", "service"))
    if not isinstance(project, str) or not project:
        return []
    try:
        info = records.project(project)
    except NotFoundError as err:
        return [f"data.project: {err}"]
    except ValidationError as err:
        return [f"data.project: the project's shipyard is invalid: {err}"]
    problems = []
    names = [s.name for s in info.shipyard.stages]
    if isinstance(stage, str) and stage and stage not in names:
        problems.append(f"data.stage: stage {stage!r} is not in project {project!r} (stages: {', '.join(names)})")
    if isinstance(service, str) and service and service not in info.services:
        problems.append(
            f"data.service: service {service!r} is not onboarded in project {project!r} "
            f"(services: {', '.join(info.services) or 'none'})"
        )
    return problems


def _answer(status: int, message: str, **extra: Any) -> tuple[str, int, dict[str, str]]:
    return json.dumps({"status": status, "message": message, **extra}), status, _JSON


def handle(request: Any, runtime: Runtime, body: bytes) -> tuple[str, int, dict[str, str]]:
    """One request to the door (``body`` already read within the size limit)."""
    from sluice.services.intake import authenticate, get_secret

    headers = {k.lower(): v for k, v in request.headers.items()}
    secret = get_secret(runtime.secrets, TOKEN_SOURCE)  # the secret store, never a state record
    if secret:
        reason = authenticate(TOKEN_SOURCE, secret, headers, dict(request.args.items()), body)
        if reason:
            return _answer(401, f"events: unauthenticated: {reason}")
    try:
        event = check(headers, body, runtime.records)
    except ValidationError as err:
        return _answer(status_for(err), str(err), problems=list(err.problems))
    try:
        runtime.emit([event])
    except RetryableError as err:
        return _answer(status_for(err), f"the broker did not take event {event.id}; retry: {err}")
    return _answer(
        202, f"accepted: {event.type.value} {event.id} published to the broker",
        id=event.id, type=event.type.value, shkeptncontext=event.shkeptncontext,
    )
