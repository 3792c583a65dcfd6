"""The strategies a shipyard names for a stage: how it deploys, tests, and approves (enums only).

Parsing a shipyard is ``sluice.core.shipyard``'s; events, lanes and deployments name a stage's
strategies without loading the shipyard's parser (and the test, canary and inconclusive rules
it reads).
"""

from __future__ import annotations

from sluice.core.fastenum import FastStrEnum

__all__ = ["SPLIT_STRATEGIES", "Approval", "DeploymentStrategy", "OnTimeout", "TestStrategy"]


class DeploymentStrategy(FastStrEnum):
    DIRECT = "direct"
    BLUE_GREEN = "blue_green_service"
    CANARY = "canary"


#: The strategies that run a candidate beside the primary (its SLIs are the ``canary`` slot's).
SPLIT_STRATEGIES = frozenset({DeploymentStrategy.BLUE_GREEN, DeploymentStrategy.CANARY})


class TestStrategy(FastStrEnum):
    __test__ = False
    FUNCTIONAL = "functional"
    PERFORMANCE = "performance"
    NONE = ""


class Approval(FastStrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class OnTimeout(FastStrEnum):
    """What a held promotion that nobody decided in time becomes."""

    DECLINE = "decline"
    APPROVE = "approve"
