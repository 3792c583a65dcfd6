"""The ``DeploymentFinished`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import ClassVar

from sluice.core.events import EventType, Staged, _f, _verdict
from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict


@frozen(kw_only=True)
class DeploymentFinished(Staged):
    """The candidate is reachable at ``deploymentURILocal`` — or the deployment failed."""

    TYPE: ClassVar[EventType] = EventType.DEPLOYMENT_FINISHED
    deploymentURILocal: str = _f("deploymentURILocal", "")
    deploymentURIPublic: str = _f("deploymentURIPublic", "")
    result: Verdict = _f("result", Verdict.PASS, read=_verdict)
    message: str = _f("message", "")
