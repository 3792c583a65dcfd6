"""eventlog: every event (a catch-all Trigger) into its delivery's log; ``/dead-letter`` is the
Broker's dead-letter sink: what the broker gave up on is kept with Knative's error attributes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sluice.config import Settings
from sluice.core.cloudevent import parse
from sluice.core.events import Event
from sluice.errors import ValidationError, status_for
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime, runtime_for
from sluice.services.eventlog import EventLogService

if TYPE_CHECKING:
    from sluice.ports.notify import SecretReader


def handle(event: Event, runtime: Runtime) -> list[Event]:
    return EventLogService(runtime.records, _insight(runtime)).handle(event)


def _insight(runtime: Runtime) -> Callable[[Event], None]:
    """Metrics and notifications (``sluice.services.insight``) fed by every event."""
    from sluice.compose import webhook_sender
    from sluice.services.insight import InsightService, observer

    service = InsightService(
        runtime.records, lambda: datetime.now(UTC), sender=webhook_sender,
        secrets=_NotificationSecrets(runtime.settings), bridge_url=web_view_url(runtime.settings),
    )
    return observer(service)


class _NotificationSecrets:
    """``sluice.compose.build_notification_secrets``, built when a message first reads a secret
    (cold start: most events send nothing, and a message without a secret reads none)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._files: SecretReader | None = None

    def secret(self, name: str) -> str | None:
        if self._files is None:
            from sluice.compose import build_notification_secrets

            self._files = build_notification_secrets(self._settings)
        return self._files.secret(name)


def web_view_url(settings: Settings) -> str:
    """Where people open the web view (links in messages): ``bridge_url``; when it is left at its
    default and the broker is a local one on another port, that broker's ``/bridge``."""
    from urllib.parse import urlsplit

    if settings.bridge_url != Settings().bridge_url:
        return settings.bridge_url
    broker = urlsplit(settings.broker_url)
    if broker.hostname in ("127.0.0.1", "localhost") and broker.port:
        return f"{broker.scheme}://{broker.hostname}:{broker.port}/bridge"
    return settings.bridge_url


def dead_letter(request: Any) -> Any:
    """Keep a dead-lettered CloudEvent as it came, valid or not (it may be why it died)."""
    try:
        raw = parse(dict(request.headers), request.get_data())
    except ValidationError as err:
        return f"dead-letter sink: not a CloudEvent: {err}", status_for(err), {"Content-Type": "text/plain"}
    attributes = dict(raw.attributes)
    letter = {
        "key": f"{attributes.get('source')}#{attributes.get('id')}#{attributes.get('knativeerrordest', '')}",
        "time": attributes.get("time", ""),
        "trigger": attributes.get("knativeerrordest", ""),
        "status": attributes.get("knativeerrorcode", ""),
        "reason": attributes.get("knativeerrordata", ""),
        "event": raw.to_json_dict(),
    }
    runtime_for("eventlog").records.append_dead_letter(json.loads(json.dumps(letter, default=str)))
    return b"", 202, {}


def main(request: Any) -> Any:
    if request.path.rstrip("/").endswith("/dead-letter"):
        return dead_letter(request)
    return serve(request, "eventlog", handle)
