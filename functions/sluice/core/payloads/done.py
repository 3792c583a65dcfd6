"""The ``Done`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import EventType, Outcome, Scoped, _enum, _f, _verdict
from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict


@frozen(kw_only=True)
class Done(Scoped):
    """A stage's part of a delivery has ended, with its outcome."""

    TYPE: ClassVar[EventType] = EventType.DONE
    outcome: Outcome = _f("outcome", read=_enum(Outcome))
    result: Verdict = _f("result", Verdict.PASS, read=_verdict)
    image: str = _f("image", "")
    message: str = _f("message", "")
