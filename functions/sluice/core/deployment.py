"""What a stage serves and the backend steps that change it (pure).

``Serving`` keeps apart what the seed mixed up: the primary image (serving), the candidate
image (under test), the traffic weight, and the last image that passed the gate. Which
delivery holds the stage, and who waits for it, is the ledger's (``sluice.core.ledger``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum

from sluice.core.frozen import frozen
from sluice.core.strategies import DeploymentStrategy


class Slot(StrEnum):
    """Which deployment of a stage: blue/green and canary have a primary and a canary; a direct
    stage has one. The values name the URLs a deployment reports (``urls["primary"]``)."""

    PRIMARY = "primary"
    CANARY = "canary"
    DIRECT = "direct"


#: The key of a stage's stable public URL among the slots' URLs.
PUBLIC = "public"


class Step(StrEnum):
    """What the deploy service asks the backend to do."""

    DEPLOY_PRIMARY = "deploy_primary"
    DEPLOY_CANARY = "deploy_canary"
    DEPLOY_DIRECT = "deploy_direct"
    ROUTE = "route"
    SCALE_CANARY_TO_ZERO = "scale_canary_to_zero"


@frozen
class Action:
    step: Step
    image: str = ""
    weight: int = 0


@frozen
class Serving:
    """What a stage runs for one service: primary, candidate, weight, last good image, URLs."""

    strategy: DeploymentStrategy = DeploymentStrategy.DIRECT
    primary_image: str = ""
    candidate_image: str = ""
    canary_weight: int = 0
    last_good_image: str = ""
    public_url: str = ""
    primary_url: str = ""
    candidate_url: str = ""
    updated: str = ""

    @property
    def blue_green(self) -> bool:
        return self.strategy is DeploymentStrategy.BLUE_GREEN

    @property
    def canary(self) -> bool:
        return self.strategy is DeploymentStrategy.CANARY

    @property
    def split(self) -> bool:
        """A primary and a candidate side by side, traffic split by weight (blue/green, canary)."""
        return self.blue_green or self.canary


def plan_set(state: Serving, image: str, weight: int) -> list[Action]:
    """Backend steps to run ``image`` as the stage's new version."""
    if not state.split:
        return [Action(Step.DEPLOY_DIRECT, image), Action(Step.ROUTE, weight=100)]
    if not state.primary_image:  # an empty stage: the first image becomes both
        return [Action(Step.DEPLOY_PRIMARY, image), Action(Step.DEPLOY_CANARY, image), Action(Step.ROUTE, weight=weight)]
    return [Action(Step.DEPLOY_CANARY, image), Action(Step.ROUTE, weight=weight)]


def after_set(state: Serving, image: str, weight: int, urls: Mapping[str, str], now: str) -> Serving:
    if not state.split:
        return replace(
            state, primary_image=image, candidate_image=image, canary_weight=0, updated=now,
            public_url=urls.get(PUBLIC, state.public_url), primary_url=urls.get(Slot.DIRECT, state.primary_url),
            candidate_url=urls.get(Slot.DIRECT, state.candidate_url),
        )
    return replace(
        state,
        primary_image=state.primary_image or image,
        candidate_image=image,
        canary_weight=weight,
        updated=now,
        public_url=urls.get(PUBLIC, state.public_url),
        primary_url=urls.get(Slot.PRIMARY, state.primary_url),
        candidate_url=urls.get(Slot.CANARY, state.candidate_url),
    )


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


def release(state: Serving, now: str, *, promoted: bool) -> Serving:
    """The stage after its delivery ended: promoted, the candidate is the new primary and last
    good image; otherwise a direct stage goes back to its last good image."""
    if promoted:
        image = state.candidate_image or state.primary_image
        state = replace(state, primary_image=image, last_good_image=image)
    elif not state.split and state.last_good_image:
        state = replace(state, primary_image=state.last_good_image)
    return replace(
        state,
        candidate_image="",
        canary_weight=0,
        candidate_url="" if state.split else state.candidate_url,
        updated=now,
    )
