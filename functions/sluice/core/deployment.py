"""What a stage serves, and how it changes when a delivery is set and released (pure); the
backend steps that change it are ``sluice.core.plans`` (only the deploy function plans them).

``Serving`` keeps apart what the seed mixed up: the primary image (serving), the candidate
image (under test), the traffic weight, and the last image that passed the gate. Which
delivery holds the stage, and who waits for it, is the ledger's (``sluice.core.ledger``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.strategies import DeploymentStrategy


class Slot(FastStrEnum):
    """Which deployment of a stage: blue/green and canary have a primary and a canary; a direct
    stage has one. The values name the URLs a deployment reports (``urls["primary"]``)."""

    PRIMARY = "primary"
    CANARY = "canary"
    DIRECT = "direct"


#: The key of a stage's stable public URL among the slots' URLs.
PUBLIC = "public"


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
