"""The gatekeeper's decision (pure): promote, hold for a person, or roll back."""

from __future__ import annotations

from sluice.core.fastenum import FastStrEnum
from sluice.core.shipyard import Stage
from sluice.core.strategies import Approval
from sluice.core.verdict import Verdict


class GateDecision(FastStrEnum):
    PROMOTE = "promote"
    HOLD = "hold"
    DISCARD = "discard"


def decide(result: Verdict, stage: Stage) -> GateDecision:
    """``pass`` and ``warning`` promote unless the stage's approval strategy asks a person for
    that result; ``fail`` discards the candidate."""
    if result is Verdict.PASS:
        return GateDecision.HOLD if stage.approval_pass is Approval.MANUAL else GateDecision.PROMOTE
    if result is Verdict.WARNING:
        return GateDecision.HOLD if stage.approval_warning is Approval.MANUAL else GateDecision.PROMOTE
    return GateDecision.DISCARD
