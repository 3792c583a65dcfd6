"""eventlog: every event (a catch-all Trigger) into its delivery's log."""

from __future__ import annotations

from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.services.eventlog import EventLogService


def handle(event: Event, runtime: Runtime) -> list[Event]:
    return EventLogService(runtime.records).handle(event)


def main(request: Any) -> Any:
    return serve(request, "eventlog", handle)
