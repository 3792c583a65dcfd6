"""The ``Ping`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import EventType, Payload, _f
from sluice.core.frozen import frozen


@frozen
class Ping(Payload):
    """A PingSource tick: time-driven work (timeouts of waits) runs on it."""

    TYPE: ClassVar[EventType] = EventType.PING
    message: str = _f("message", "")
