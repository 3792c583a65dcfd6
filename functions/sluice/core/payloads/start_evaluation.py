"""The ``StartEvaluation`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import EventType, Scoped, _f, _time
from sluice.core.frozen import frozen


@frozen(kw_only=True)
class StartEvaluation(Scoped):
    """A quality gate on a time window, without deploying."""

    TYPE: ClassVar[EventType] = EventType.START_EVALUATION
    start: str = _f("start", read=_time)
    end: str = _f("end", read=_time)
