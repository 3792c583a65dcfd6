"""intake: registry push webhooks → ``configuration.change`` for the first stage.

Not a CloudEvent consumer behind a Trigger but a plain HTTP function (registries post their
own JSON), routed by the last path segment: ``/dockerhub``, ``/harbor``, ``/github``, ``/ecr``
(an EventBridge API destination), ``/cloudevents`` (Knative sources; binary or structured),
and ``/events``: the validating front door for Sluice events (``sluice.functions.frontdoor``).
The events it starts are posted to the sink (the broker); the registry gets a small JSON answer
(see ``sluice.services.intake`` for the status codes) — except on ``/cloudevents``, where a
success or "nothing to do" is 202 with an empty body (what a broker Trigger or a Knative
source expects of a sink). ``GET`` answers readiness. An error the service could not answer
itself gets ``sluice.errors.status_for``'s status: 503 for a temporary one (the registry
retries), 422 for a permanent or a configuration error (final: a retry cannot succeed).
"""

from __future__ import annotations

import json
import logging
import weakref
from typing import TYPE_CHECKING, Any

from sluice.config import Settings
from sluice.errors import RetryableError, SluiceError, status_for
from sluice.functions.runtime import Runtime, runtime_for
from sluice.services.intake import MAX_BODY_BYTES, IntakeRequest, IntakeResponse, IntakeService

if TYPE_CHECKING:  # cold start: the port is a Protocol, for the type checker only
    from sluice.ports.registry import DigestResolver

log = logging.getLogger("sluice.functions")

_JSON = {"Content-Type": "application/json"}
_SERVICES: weakref.WeakKeyDictionary[Runtime, IntakeService] = weakref.WeakKeyDictionary()
#: The last path segment of the validating front door (``sluice.functions.frontdoor.PATH``,
#: imported when that path is called: a registry's webhook does not need it).
FRONT_DOOR = "events"


class _ResolverOnFirstUse:
    """The digest resolver of ``sluice.compose.build_resolver``, built when it is first asked
    (cold start: only an ECR push resolves a digest)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resolver: DigestResolver | None = None

    def resolve(self, repository: str, tag: str, digest: str | None, *, registry_id: str, region: str) -> str:
        if self._resolver is None:
            from sluice.compose import build_resolver

            self._resolver = build_resolver(self._settings)
        return self._resolver.resolve(repository, tag, digest, registry_id=registry_id, region=region)


def service_for(runtime: Runtime) -> IntakeService:
    """The process's intake service (its digest resolver from ``sluice.compose.build_resolver``)."""
    if runtime not in _SERVICES:
        _SERVICES[runtime] = IntakeService(runtime.store, runtime.emit, runtime.now, runtime.source,
                                           resolver=_ResolverOnFirstUse(runtime.settings), secrets=runtime.secrets)
    return _SERVICES[runtime]


def _read_body(request: Any, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (read no further than limit + 1)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    data: bytes = request.stream.read(limit + 1) if length is None else request.get_data()
    return None if len(data) > limit else data


def main(request: Any) -> Any:
    if request.method == "GET":
        return json.dumps({"function": "intake", "ready": True}), 200, _JSON
    if request.method != "POST":
        return json.dumps({"status": 405, "message": "intake: only POST of a registry notification"}), 405, _JSON
    source = request.path.rstrip("/").rpartition("/")[2]
    body = _read_body(request, MAX_BODY_BYTES)
    if body is None:
        response = IntakeResponse(413, f"body over the limit of {MAX_BODY_BYTES} bytes")
        return response.to_json(), response.status, _JSON
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = {k: v for k, v in request.args.items()}
    try:
        runtime = runtime_for("intake")  # the first request reads the settings
        if source == FRONT_DOOR:  # the validating front door for Sluice events (not a registry)
            from sluice.functions import frontdoor  # cold start: a registry's webhook does not load it

            return frontdoor.handle(request, runtime, body)
        response = service_for(runtime).handle(IntakeRequest(source, headers, query, body))
    except RetryableError as err:
        log.warning("intake %s: %d %s", source, status_for(err), err)
        response = IntakeResponse(status_for(err), f"temporary failure, retry: {err}")
    except SluiceError as err:
        log.error("intake %s: %d %s", source, status_for(err), err)
        response = IntakeResponse(status_for(err), f"intake cannot handle this ({type(err).__name__}): {err}")
    if source == "cloudevents" and response.status in (200, 202):
        # Behind a broker Trigger a 2xx must be a CloudEvent or empty: the events went to the sink.
        return b"", 202, {}
    return response.to_json(), response.status, _JSON
