"""The deploy service: ``configuration.change`` → backend → ``deployment-finished`` / ``done``.

Claim, act, record: the delivery first claims the stage with a compare-and-swap write (a
later delivery is queued instead), then drives the backend (every step idempotent), then
records the outcome together with the handled event's key, so a duplicate delivery changes
nothing and gets the same reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.core import deployment as dep
from sluice.core.events import (
    CanaryAction,
    ConfigurationChange,
    DeploymentFinished,
    Done,
    Event,
    Outcome,
    Result,
)
from sluice.core.shipyard import Stage
from sluice.core.validation import split_image
from sluice.errors import PermanentError
from sluice.ports.backend import DeploymentBackend, Placement, Slot
from sluice.services.records import Records

log = logging.getLogger("sluice.deploy")


@dataclass
class _Claim:
    kind: str  # "replay" | "queued" | "go" | "stale"
    state: dep.StageState
    replies: list[dict[str, Any]]


class DeployService:
    def __init__(
        self,
        records: Records,
        backend: DeploymentBackend,
        now: Callable[[], str],
        source: str,
        timeout_s: float = 60.0,
    ) -> None:
        self.records = records
        self.backend = backend
        self.now = now
        self.source = source
        self.timeout_s = timeout_s

    # --- entry -------------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Event]:
        change = event.data
        assert isinstance(change, ConfigurationChange)
        project = self.records.require_service(change.project, change.service)
        stage = project.shipyard.stage(change.stage) if change.stage else project.shipyard.first
        placement = Placement(change.project, stage.name, change.service)
        if change.canary_action is CanaryAction.SET:
            return self._set(event, change, stage, placement)
        return self._finish(event, change, stage, placement, promote=change.canary_action is CanaryAction.PROMOTE)

    # --- state helpers -----------------------------------------------------------------------
    def _name(self, placement: Placement) -> tuple[str, dict[str, str]]:
        return self.records.scoped("deploy", placement.project, placement.stage, placement.service)

    def _update(self, placement: Placement, stage: Stage, mutate: Callable[[dep.StageState], tuple[dep.StageState, Any]]) -> Any:
        name, labels = self._name(placement)

        def apply(doc: dict[str, Any]) -> Any:
            state = dep.StageState.from_dict(doc) if doc else dep.StageState(strategy=stage.deployment_strategy.value)
            new_state, result = mutate(state)
            doc.clear()
            doc.update(new_state.to_dict())
            return result

        return self.records.update_json(name, "state", {}, labels, apply)

    def _run(self, placement: Placement, actions: list[dep.Action]) -> dict[str, str]:
        urls: dict[str, str] = {}
        for action in actions:
            if action.step is dep.Step.DEPLOY_PRIMARY:
                urls["primary"] = self.backend.deploy(placement, Slot.PRIMARY, action.image, self.timeout_s)
            elif action.step is dep.Step.DEPLOY_CANARY:
                urls["canary"] = self.backend.deploy(placement, Slot.CANARY, action.image, self.timeout_s)
            elif action.step is dep.Step.DEPLOY_DIRECT:
                urls["direct"] = self.backend.deploy(placement, Slot.DIRECT, action.image, self.timeout_s)
            elif action.step is dep.Step.ROUTE:
                urls["public"] = self.backend.route(placement, action.weight)
            elif action.step is dep.Step.SCALE_CANARY_TO_ZERO:
                self.backend.scale_to_zero(placement, Slot.CANARY)
        return urls

    # --- set -----------------------------------------------------------------------------------
    def _set(self, event: Event, change: ConfigurationChange, stage: Stage, placement: Placement) -> list[Event]:
        key, context, now = event.dedup_key, event.shkeptncontext, self.now()

        def claim(state: dep.StageState) -> tuple[dep.StageState, _Claim]:
            if key in state.processed:
                return state, _Claim("replay", state, state.processed[key])
            if state.busy and state.active_context != context:
                queued = dep.Queued(context, change.image, event.to_json_dict(), now)
                new = dep.enqueue(state, queued).remember(key, [])
                return new, _Claim("queued", new, [])
            new = dep.claim(state, context, change.image, now)
            return new, _Claim("go", new, [])

        claimed: _Claim = self._update(placement, stage, claim)
        if claimed.kind == "replay":
            return [Event.from_json_dict(e) for e in claimed.replies]
        if claimed.kind == "queued":
            log.info("%s: %s waits for stage %s (held by %s)", change.service, change.image, stage.name, claimed.state.active_context)
            return []
        repo, tag = split_image(change.image)
        common: Mapping[str, Any] = {
            "project": change.project, "stage": stage.name, "service": change.service, "image": repo, "tag": tag,
            "teststrategy": stage.test_strategy.value, "deploymentstrategy": stage.deployment_strategy.value,
            "labels": change.labels,
        }
        weight = change.value if stage.blue_green else 100
        try:
            urls = self._run(placement, dep.plan_set(claimed.state, change.image, weight))
            candidate = urls.get("canary") or urls.get("direct") or ""
            payload = DeploymentFinished(
                **common, deploymentURILocal=candidate, deploymentURIPublic=urls.get("public", ""),
                result=Result.PASS.value,
                message=f"{change.image} runs in {stage.name}"
                + (f" beside the primary, with {weight} % of the traffic" if stage.blue_green else ""),
            )
        except PermanentError as err:
            urls = {}
            payload = DeploymentFinished(**common, result=Result.FAIL.value, message=f"deployment of {change.image} failed: {err}")
        reply = event.reply(payload, source=self.source, time=self.now())

        def record(state: dep.StageState) -> tuple[dep.StageState, list[dict[str, Any]]]:
            if key in state.processed:
                return state, state.processed[key]
            new = dep.after_set(state, change.image, weight, urls, self.now()) if urls else state
            replies = [reply.to_json_dict()]
            return new.remember(key, replies), replies

        stored = self._update(placement, stage, record)
        return [Event.from_json_dict(e) for e in stored]

    # --- promote / discard ---------------------------------------------------------------------
    def _finish(
        self, event: Event, change: ConfigurationChange, stage: Stage, placement: Placement, *, promote: bool
    ) -> list[Event]:
        key, context = event.dedup_key, event.shkeptncontext

        def check(state: dep.StageState) -> tuple[dep.StageState, _Claim]:
            if key in state.processed:
                return state, _Claim("replay", state, state.processed[key])
            if state.active_context != context:
                return state, _Claim("stale", state, [])
            return state, _Claim("go", state, [])

        claimed: _Claim = self._update(placement, stage, check)
        if claimed.kind == "replay":
            return [Event.from_json_dict(e) for e in claimed.replies]
        state = claimed.state
        base: dict[str, Any] = {"project": change.project, "stage": stage.name, "service": change.service, "labels": change.labels}
        if claimed.kind == "stale":
            stale = Done(
                **base, outcome=Outcome.FAILED.value, result=Result.FAIL.value, image=change.image,
                message=f"nothing to {change.action} in {stage.name}: the stage is not held by delivery {context} "
                f"(held by {state.active_context or 'nobody'})",
            )
            return [event.reply(stale, source=self.source, time=self.now())]
        image = state.active_image or state.candidate_image
        try:
            if promote:
                self._run(placement, dep.plan_promote(state))
                outcome, result = Outcome.PROMOTED, Result.PASS
                message = f"{image} is now the primary of {stage.name}"
            else:
                actions = dep.plan_discard(state)
                self._run(placement, actions)
                rolled_to = state.primary_image if stage.blue_green else state.last_good_image
                if actions:
                    outcome, message = Outcome.ROLLED_BACK, f"rolled back: {stage.name} serves {rolled_to} again; {image} discarded"
                else:
                    serving = f"{stage.name} keeps serving {state.primary_image}" if state.primary_image else "nothing to roll back to"
                    outcome, message = Outcome.STOPPED, f"delivery of {image} stopped in {stage.name}; {serving}"
                result = Result.FAIL
        except PermanentError as err:
            promote = False
            outcome, result = Outcome.FAILED, Result.FAIL
            message = f"{change.action} of {image} in {stage.name} failed: {err}"
        done = event.reply(
            Done(**base, outcome=outcome.value, result=result.value, image=image, message=message),
            source=self.source, time=self.now(),
        )

        def record(current: dep.StageState) -> tuple[dep.StageState, list[dict[str, Any]]]:
            if key in current.processed:
                return current, current.processed[key]
            released, head = dep.release(current, self.now(), promoted=promote)
            replies = [done.to_json_dict()]
            if head is not None:
                queued = Event.from_json_dict(head.event)
                released = released.forget(queued.dedup_key)
                replies.append(head.event)
            return released.remember(key, replies), replies

        stored = self._update(placement, stage, record)
        return [Event.from_json_dict(e) for e in stored]
