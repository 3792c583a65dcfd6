"""The ``GetSli`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.deployment import Slot
from sluice.core.events import EventType, Staged, _enum, _f, _filters, _strings, _time
from sluice.core.frozen import frozen


@frozen(kw_only=True)
class GetSli(Staged):
    """Ask a provider for indicator values over a window."""

    TYPE: ClassVar[EventType] = EventType.GET_SLI
    sliProvider: str = _f("sliProvider")
    start: str = _f("start", read=_time)
    end: str = _f("end", read=_time)
    indicators: list[str] = _f("indicators", [], read=_strings)
    customFilters: list[dict[str, str]] = _f("customFilters", [], read=_filters)
    #: Which deployment to measure: the candidate (``canary``) of a split stage, else ``direct``.
    deployment: Slot = _f("deployment", Slot.DIRECT, read=_enum(Slot))
