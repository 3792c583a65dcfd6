"""The deployment backend port: where a stage's versions run and how traffic reaches them.

Backends: ``local`` (processes + weighted router, the embedded default), ``kubernetes``
(Deployments + Services / Istio VirtualService), ``knative`` (revisions + traffic tags),
``noop`` (records nothing, runs nothing; for tests of the flow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sluice.core.deployment import Slot
from sluice.core.frozen import frozen

if TYPE_CHECKING:  # only for annotations: a function that reads no workload does not load it
    from sluice.core.workload import UserWorkload

__all__ = ["DeploymentBackend", "Placement", "Slot"]


@frozen
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


#: The user's workload of a placement as ``sluice onboard --chart/--manifests`` stored it, or
#: ``None`` (the backend generates its own); may raise ``RetryableError`` (the store is unreachable).
WorkloadSource = Callable[[Placement], "UserWorkload | None"]


class DeploymentBackend(Protocol):
    """Runs images in slots and splits a stage's traffic between primary and canary.

    Every method is idempotent (repeating a call with the same arguments changes nothing)
    and bounded by a timeout. Failures: ``PermanentError`` with the reason (unknown image,
    crash loop, image pull error, not ready within the timeout); ``RetryableError`` when the
    platform cannot be reached; ``ValidationError`` for a weight outside 0..100 (and a malformed
    image: ``ValidationError`` or ``PermanentError``), before any change. Vendor exceptions never
    escape.

    What the deploy service relies on (tests/contract/test_deployment_backend.py checks it for
    every backend): the same image deployed again in a slot starts no second rollout and answers
    the same URL; a promotion (deploy the primary with the candidate's image, route 0, scale the
    canary to zero) or a discard (route 0, scale the canary to zero) done twice leaves the state
    of once; a discard where nothing or only the primary runs is no error; after an image that
    never gets ready the traffic stays where it was.
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
        weights switch. Returns the stage's stable public URL (the same for every weight).
        Where nothing runs yet, ``route(0)`` changes nothing (a backend that learns the URL only
        from the platform answers ``''``); a weight above 0 is then an error.
        """
        ...

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        """Stop ``slot`` (no-op when it is not running)."""
        ...
