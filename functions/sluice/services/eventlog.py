"""The event log: every event of a delivery, in the order it arrived, under its context."""

from __future__ import annotations

from collections.abc import Callable

from sluice.core.events import Event
from sluice.services.records import Records


class EventLogService:
    def __init__(self, records: Records, observe: Callable[[Event], None] | None = None) -> None:
        self.records = records
        self.observe = observe or (lambda event: None)  # metrics and notifications (sluice.services.insight)

    def handle(self, event: Event) -> list[Event]:
        """Record ``event`` once (a duplicate delivery is recognised by source and id)."""
        if not event.data.TYPE.value.startswith("dev.knative.sources.ping"):  # ticks belong to no delivery
            self.records.append_event(event.shkeptncontext, event.to_json_dict())
        self.observe(event)
        return []
