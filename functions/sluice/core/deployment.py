"""A stage's deployment state and its transitions (pure).

The record keeps apart what the seed mixed up: the primary image (serving), the candidate
image (under test), the traffic weight, and the last image that passed the gate. One delivery
(``active_context``) owns a stage at a time; a later delivery waits in ``queue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

#: How many handled event keys a record remembers (to answer duplicates identically).
PROCESSED_LIMIT = 64


class Step(StrEnum):
    """What the deploy service asks the backend to do."""

    DEPLOY_PRIMARY = "deploy_primary"
    DEPLOY_CANARY = "deploy_canary"
    DEPLOY_DIRECT = "deploy_direct"
    ROUTE = "route"
    SCALE_CANARY_TO_ZERO = "scale_canary_to_zero"


@dataclass(frozen=True)
class Action:
    step: Step
    image: str = ""
    weight: int = 0


@dataclass(frozen=True)
class Queued:
    """A delivery waiting for the stage: the event that asked for it, kept to re-send later."""

    context: str
    image: str
    event: dict[str, Any]
    queued_at: str


@dataclass(frozen=True)
class StageState:
    strategy: str = "direct"
    primary_image: str = ""
    candidate_image: str = ""
    canary_weight: int = 0
    last_good_image: str = ""
    active_context: str = ""
    active_image: str = ""
    public_url: str = ""
    primary_url: str = ""
    candidate_url: str = ""
    updated: str = ""
    queue: tuple[Queued, ...] = ()
    processed: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def blue_green(self) -> bool:
        return self.strategy == "blue_green_service"

    @property
    def busy(self) -> bool:
        return bool(self.active_context)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["queue"] = [asdict(q) for q in self.queue]
        out["processed"] = dict(self.processed)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> StageState:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in doc.items() if k in known}
        values["queue"] = tuple(Queued(**q) for q in doc.get("queue", []))
        values["processed"] = dict(doc.get("processed", {}))
        return cls(**values)

    def remember(self, key: str, replies: list[dict[str, Any]]) -> StageState:
        """Record that the event ``key`` was handled with ``replies`` (bounded, oldest dropped)."""
        processed = dict(self.processed)
        processed[key] = replies
        while len(processed) > PROCESSED_LIMIT:
            processed.pop(next(iter(processed)))
        return replace(self, processed=processed)

    def forget(self, key: str) -> StageState:
        processed = dict(self.processed)
        processed.pop(key, None)
        return replace(self, processed=processed)


def claim(state: StageState, context: str, image: str, now: str) -> StageState:
    """The delivery ``context`` takes the stage (the caller checked it is free or already its own)."""
    return replace(state, active_context=context, active_image=image, updated=now)


def enqueue(state: StageState, item: Queued) -> StageState:
    """A later delivery waits; a newer one for the same image replaces nothing, a waiting one of
    another context stays (first come, first served)."""
    if any(q.context == item.context for q in state.queue):
        return state
    return replace(state, queue=(*state.queue, item))


def plan_set(state: StageState, image: str, weight: int) -> list[Action]:
    """Backend steps to run ``image`` as the stage's new version."""
    if not state.blue_green:
        return [Action(Step.DEPLOY_DIRECT, image), Action(Step.ROUTE, weight=100)]
    if not state.primary_image:  # an empty stage: the first image becomes both
        return [Action(Step.DEPLOY_PRIMARY, image), Action(Step.DEPLOY_CANARY, image), Action(Step.ROUTE, weight=weight)]
    return [Action(Step.DEPLOY_CANARY, image), Action(Step.ROUTE, weight=weight)]


def after_set(state: StageState, image: str, weight: int, urls: Mapping[str, str], now: str) -> StageState:
    if not state.blue_green:
        return replace(
            state, primary_image=image, candidate_image=image, canary_weight=0, updated=now,
            public_url=urls.get("public", state.public_url), primary_url=urls.get("direct", state.primary_url),
            candidate_url=urls.get("direct", state.candidate_url),
        )
    return replace(
        state,
        primary_image=state.primary_image or image,
        candidate_image=image,
        canary_weight=weight,
        updated=now,
        public_url=urls.get("public", state.public_url),
        primary_url=urls.get("primary", state.primary_url),
        candidate_url=urls.get("canary", state.candidate_url),
    )


def plan_promote(state: StageState) -> list[Action]:
    """The primary takes the candidate's image (ready before traffic moves), then traffic goes
    to the primary and the candidate scales to zero."""
    if not state.blue_green:
        return []
    if not state.candidate_image:
        return [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]
    return [
        Action(Step.DEPLOY_PRIMARY, state.candidate_image),
        Action(Step.ROUTE, weight=0),
        Action(Step.SCALE_CANARY_TO_ZERO),
    ]


def plan_discard(state: StageState) -> list[Action]:
    """Traffic back to the primary, candidate to zero; a direct stage goes back to its last
    good image when it has one."""
    if not state.blue_green:
        if state.last_good_image and state.last_good_image != state.primary_image:
            return [Action(Step.DEPLOY_DIRECT, state.last_good_image), Action(Step.ROUTE, weight=100)]
        return []
    return [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]


def release(state: StageState, now: str, *, promoted: bool) -> tuple[StageState, Queued | None]:
    """End the active delivery; returns the new state and the next queued delivery, if any."""
    if promoted:
        image = state.candidate_image or state.primary_image
        state = replace(state, primary_image=image, last_good_image=image)
    elif not state.blue_green and state.last_good_image:
        state = replace(state, primary_image=state.last_good_image)
    state = replace(
        state,
        candidate_image="",
        canary_weight=0,
        candidate_url="" if state.blue_green else state.candidate_url,
        active_context="",
        active_image="",
        updated=now,
    )
    if not state.queue:
        return state, None
    head, rest = state.queue[0], state.queue[1:]
    return replace(state, queue=rest), head
