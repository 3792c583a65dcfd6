"""The backend steps that change what a stage serves (pure): only the deploy function plans
them, so the other functions (which read a stage's ``Serving`` in the ledger) never create these
classes on a cold start.
"""

from __future__ import annotations

from sluice.core.deployment import Serving
from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen


class Step(FastStrEnum):
    """What the deploy service asks the backend to do."""

    DEPLOY_PRIMARY = "deploy_primary"
    DEPLOY_CANARY = "deploy_canary"
    DEPLOY_DIRECT = "deploy_direct"
    ROUTE = "route"
    SCALE_CANARY_TO_ZERO = "scale_canary_to_zero"


@frozen
class Action:
    """One backend step of a plan, with the image it deploys and the weight it routes."""

    step: Step
    image: str = ""
    weight: int = 0


def plan_set(state: Serving, image: str, weight: int) -> list[Action]:
    """Backend steps to run ``image`` as the stage's new version."""
    if not state.split:
        return [Action(Step.DEPLOY_DIRECT, image), Action(Step.ROUTE, weight=100)]
    if not state.primary_image:  # an empty stage: the first image becomes both
        return [Action(Step.DEPLOY_PRIMARY, image), Action(Step.DEPLOY_CANARY, image), Action(Step.ROUTE, weight=weight)]
    return [Action(Step.DEPLOY_CANARY, image), Action(Step.ROUTE, weight=weight)]


def plan_promote(state: Serving) -> list[Action]:
    """The primary takes the candidate's image (ready before traffic moves), then traffic goes
    to the primary and the candidate scales to zero."""
    if not state.split:
        return []
    if not state.candidate_image:
        return [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]
    # a canary takes all of the traffic first (100 %), while the primary gets its image
    full = [Action(Step.ROUTE, weight=100)] if state.canary else []
    return [
        *full,
        Action(Step.DEPLOY_PRIMARY, state.candidate_image),
        Action(Step.ROUTE, weight=0),
        Action(Step.SCALE_CANARY_TO_ZERO),
    ]


def plan_discard(state: Serving) -> list[Action]:
    """Traffic back to the primary, candidate to zero; a direct stage goes back to its last
    good image when it has one."""
    if not state.split:
        if state.last_good_image and state.last_good_image != state.primary_image:
            return [Action(Step.DEPLOY_DIRECT, state.last_good_image), Action(Step.ROUTE, weight=100)]
        return []
    return [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]
