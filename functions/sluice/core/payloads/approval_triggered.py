"""The ``ApprovalTriggered`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import EventType, Scoped, _f, _verdict
from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict


@frozen(kw_only=True)
class ApprovalTriggered(Scoped):
    """A promotion waits for a person: approve or decline with ``approval.finished``."""

    TYPE: ClassVar[EventType] = EventType.APPROVAL_TRIGGERED
    image: str = _f("image", "")
    result: Verdict = _f("result", Verdict.PASS, read=_verdict)
    message: str = _f("message", "")
