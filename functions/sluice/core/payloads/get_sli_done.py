"""The ``GetSliDone`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import Any, ClassVar

from sluice.core.events import EventType, Scoped, _f, _indicator_values, _time
from sluice.core.frozen import frozen


@frozen(kw_only=True)
class GetSliDone(Scoped):
    """Indicator values: ``[{metric, value, success, message}]``."""

    TYPE: ClassVar[EventType] = EventType.GET_SLI_DONE
    start: str = _f("start", read=_time)
    end: str = _f("end", read=_time)
    indicatorValues: list[dict[str, Any]] = _f("indicatorValues", [], read=_indicator_values)
    sliProvider: str = _f("sliProvider", "")
    message: str = _f("message", "")
