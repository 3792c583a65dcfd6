"""The deployment backend port: where a stage's versions run and how traffic reaches them.

Backends: ``local`` (processes + weighted router, the embedded default), ``kubernetes``
(Deployments + Services / Istio VirtualService), ``knative`` (revisions + traffic tags),
``noop`` (records nothing, runs nothing; for tests of the flow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sluice.core.deployment import Slot

__all__ = ["DeploymentBackend", "Placement", "Slot"]


@dataclass(frozen=True)
class Placement:
    """A service in a stage of a project. Kubernetes namespace: ``<project>-<stage>``."""

    project: str
    stage: str
    service: str

    @property
    def namespace(self) -> str:
        return f"{self.project}-{self.stage}"

    def __str__(self) -> str:
        return f"{self.project}/{self.stage}/{self.service}"


class DeploymentBackend(Protocol):
    """Runs images in slots and splits a stage's traffic between primary and canary.

    Every method is idempotent (repeating a call with the same arguments changes nothing)
    and bounded by a timeout. Failures: ``PermanentError`` with the reason (unknown image,
    crash loop, image pull error, not ready within the timeout); ``RetryableError`` when the
    platform cannot be reached. Vendor exceptions never escape.
    """

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        """Run ``image`` (full reference with tag) in ``slot`` and wait until it is ready.

        Returns the slot's own URL (reachable by the test function). When the slot already
        runs ``image`` and is ready, returns at once.
        """
        ...

    def route(self, placement: Placement, canary_weight: int) -> str:
        """Send ``canary_weight`` % (0–100) of the stage's traffic to the canary slot.

        For a direct stage the weight is ignored. Requests in flight must not fail while the
        weights switch. Returns the stage's stable public URL.
        """
        ...

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        """Stop ``slot`` (no-op when it is not running)."""
        ...
