"""The shared adapter between functions-framework's ``http`` signature and a Sluice handler.

functions-framework's ``cloud_event`` signature always answers "OK" and cannot reply with an
event, so it cannot sit behind a Knative broker. This adapter decodes the CloudEvent (binary or
structured mode, with the one codec ``sluice.core.cloudevent``) into a typed ``Event``, calls
one handler, and answers:

- the handler's first event as a binary-mode CloudEvent reply (200); further events are posted
  to the sink (the broker) before replying;
- ``202`` with an empty body when the handler has nothing to say;
- an error the handler could not turn into a failure event with ``sluice.errors.status_for``
  (the one map of every HTTP entry point): ``400`` with the reason for bad input, ``422`` for a
  permanent or a configuration error (an unknown ``SLUICE_*`` setting included), both final
  (the broker dead-letters them, no retry); ``503`` for a transient failure (the broker
  retries); ``500`` for a bug (retried, then dead-lettered).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sluice.core.cloudevent import RawEvent, parse
from sluice.core.events import Event, EventType
from sluice.errors import STATUS_BUG, ValidationError, status_for
from sluice.functions.runtime import Runtime, runtime_for

log = logging.getLogger("sluice.functions")

Handler = Callable[[Event, Runtime], Sequence[Event]]

#: The event types each function consumes (its Triggers in ``triggers/``); another type sent to
#: it is misrouted and answered 400. Functions not listed (eventlog, echo) take every type.
CONSUMES: dict[str, frozenset[EventType]] = {
    "deploy": frozenset({EventType.CONFIGURATION_CHANGE, EventType.PING}),
    "test": frozenset({EventType.DEPLOYMENT_FINISHED, EventType.PING}),
    "evaluate": frozenset({EventType.TESTS_FINISHED, EventType.START_EVALUATION, EventType.GET_SLI_DONE, EventType.PING}),
    "sli": frozenset({EventType.GET_SLI}),
    "gatekeeper": frozenset({EventType.EVALUATION_DONE, EventType.APPROVAL_FINISHED, EventType.PING}),
}
Response = tuple[bytes | str, int, dict[str, str]]

_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


#: Largest CloudEvent accepted (attributes and data): larger ones are refused with 400.
MAX_EVENT_BYTES = 1024 * 1024


def decode(headers: Any, body: bytes) -> Event:
    """CloudEvent over HTTP (binary or structured) → typed ``Event``; ValidationError if bad."""
    if len(body) > MAX_EVENT_BYTES:
        raise ValidationError("request", [f"body of {len(body)} bytes is over the limit of {MAX_EVENT_BYTES}"])
    try:
        return _decode(headers, body)
    except RecursionError as err:
        raise ValidationError("request", ["body: JSON nested too deeply"]) from err


def _decode(headers: Any, body: bytes) -> Event:
    raw = parse(dict(headers), body, strings_only=True)  # a CloudEvent, else ValidationError
    return Event.from_parts(raw.attributes, raw.json_data())


def encode_binary(event: Event) -> tuple[dict[str, str], bytes]:
    """Binary-mode headers and body for a reply."""
    raw = RawEvent.of(event.to_attributes(), event.data.to_dict())
    return raw.to_binary(), raw.data


def serve(request: Any, function: str, handler: Handler) -> Response:
    """Handle one functions-framework (flask) request for ``function``."""
    if request.method == "GET":
        return json.dumps({"function": function, "ready": True}), 200, {"Content-Type": "application/json"}
    if request.method != "POST":
        return f"{function}: only POST of a CloudEvent is accepted", 405, _TEXT
    try:
        event = decode(request.headers, request.get_data())
    except ValidationError as err:
        return error_answer(function, "a request", err)
    accepted = CONSUMES.get(function)
    if accepted is not None and event.type not in accepted:
        log.warning("%s: 400 for %s: misrouted %s", function, event.id, event.type.value)
        return (f"{function} consumes {', '.join(sorted(t.value for t in accepted))}, not {event.type.value}",
                400, _TEXT)
    try:
        runtime = runtime_for(function)  # the first request reads the settings
        events = list(handler(event, runtime))
        if len(events) > 1:
            runtime.emit(events[1:])
    except Exception as err:
        return error_answer(function, event.id, err)
    if not events:
        return b"", 202, {}
    headers, body = encode_binary(events[0])
    return body, 200, headers


def error_answer(function: str, what: str, err: Exception) -> Response:
    """``status_for(err)`` with the error's message (a bug's type only), logged once."""
    status = status_for(err)
    if status == STATUS_BUG:
        log.exception("%s: 500 for %s", function, what)
        return f"{function}: internal error: {type(err).__name__}", status, _TEXT
    (log.warning if status in (400, 503) else log.error)("%s: %d for %s: %s", function, status, what, err)
    return str(err), status, _TEXT
