"""The shape every remote provider's ``fetch`` shares: the window and its placeholders, then one
value per indicator, where one indicator's failure is that indicator's ``success=False``.

A provider gives :func:`fetch_each` a ``session``: a context manager, entered once per request
with the window and the indicators (it may open a client or make one batched call up front),
that yields the per-indicator measure. ``Unmeasured`` from the measure becomes that indicator's
failure with the message ``"<indicator>: <reason>"``; nothing else is caught.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sluice.core.frozen import frozen
from sluice.core.sli_config import duration_placeholder, placeholder_values
from sluice.errors import ValidationError
from sluice.ports.sli import SliQuery, SliValue

__all__ = ["Session", "Unmeasured", "Window", "fetch_each"]


class Unmeasured(Exception):
    """One indicator could not be measured; the message says why."""


@frozen
class Window:
    """The request's test window and the placeholder → value table of its queries."""

    start: datetime
    end: datetime
    placeholders: Mapping[str, str]

    @classmethod
    def of(cls, query: SliQuery) -> Window:
        """``ValueError`` or ``ValidationError`` for a window or placeholder value that cannot be used."""
        start = datetime.fromisoformat(query.start)
        end = datetime.fromisoformat(query.end)
        values = placeholder_values(query.project, query.stage, query.service, query.deployment,
                                    duration_placeholder(start.timestamp(), end.timestamp()), query.filters)
        return cls(start, end, values)


#: (window, indicators) → a context yielding the measure of one indicator.
Session = Callable[[Window, Sequence[str]], AbstractContextManager[Callable[[str], SliValue]]]


def fetch_each(query: SliQuery, vendor: str, session: Session) -> list[SliValue]:
    """One value per requested indicator, in order; ``vendor`` names the backend in the message
    when the window itself cannot be queried (then every indicator fails with that reason)."""
    try:
        window = Window.of(query)
    except (ValueError, ValidationError) as err:
        return [SliValue(n, None, False, f"{n}: cannot query {vendor} for this window: {err}") for n in query.indicators]
    out: list[SliValue] = []
    with session(window, query.indicators) as measure:
        for name in query.indicators:
            try:
                out.append(measure(name))
            except Unmeasured as err:
                out.append(SliValue(name, None, False, f"{name}: {err}"))
    return out
