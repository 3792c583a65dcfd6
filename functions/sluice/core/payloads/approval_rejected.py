"""The ``ApprovalRejected`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import EventType, Scoped, _f
from sluice.core.frozen import frozen


@frozen(kw_only=True)
class ApprovalRejected(Scoped):
    """An ``approval.finished`` the gate refused (unsigned, badly signed, stale): it changed nothing."""

    TYPE: ClassVar[EventType] = EventType.APPROVAL_REJECTED
    #: The refused decision as it was sent (it may be no valid decision at all).
    decision: str = _f("approval.decision", "")
    approver: str = _f("approval.approver", "")
    reason: str = _f("reason")
