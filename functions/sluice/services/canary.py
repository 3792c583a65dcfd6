"""Whether a deployment backend can run a project's canary stages (asked at ``create project``).

A canary stage needs a *weighted* split of the real traffic. A backend that cannot give a
candidate 10 % of the requests says so with ``weighted_split() -> False`` (the kubernetes
backend without Istio); a project asking for a canary there is refused rather than faked with
replica ratios. Backends without the method split by weight (local router, Knative, noop).
"""

from __future__ import annotations

from sluice.core.shipyard import Shipyard
from sluice.core.strategies import DeploymentStrategy
from sluice.errors import ValidationError


def check_canary_support(shipyard: Shipyard, backend: object, backend_name: str) -> None:
    """Raise ``ValidationError`` naming each canary stage when ``backend`` cannot split by weight."""
    canary = [s.name for s in shipyard.stages if s.deployment_strategy is DeploymentStrategy.CANARY]
    check = getattr(backend, "weighted_split", None)
    if not canary or check is None or check():
        return
    raise ValidationError("shipyard", [
        f"stage {name!r}: deployment_strategy canary needs a weighted router, and the {backend_name} backend has none "
        "(Istio's networking.istio.io API is not served by this cluster); install Istio, use the knative backend, "
        "or choose blue_green_service — Sluice does not fake a traffic split with replica ratios"
        for name in canary
    ])
