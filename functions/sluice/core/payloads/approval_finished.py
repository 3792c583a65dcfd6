"""The ``ApprovalFinished`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import Decision, EventType, Scoped, _enum, _f
from sluice.core.frozen import frozen


@frozen(kw_only=True)
class ApprovalFinished(Scoped):
    """A person's decision on a held promotion (``approve`` or ``decline``), or on a running canary
    (``pause``, ``resume``, ``abort``)."""

    TYPE: ClassVar[EventType] = EventType.APPROVAL_FINISHED
    decision: Decision = _f("approval.decision", read=_enum(Decision))
    message: str = _f("message", "")
