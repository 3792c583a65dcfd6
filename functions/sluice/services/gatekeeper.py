"""The gatekeeper: ``evaluation-done`` → promote this stage and deliver to the next one, hold
for approval, or roll back; ``approval.finished`` → carry out the held decision.

Its replies have ids derived from the event they answer, so a duplicate delivery sends the
same events again, which every consumer de-duplicates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sluice.core.approval_auth import APPROVER_ATTRIBUTE, KeyLookup, check_approval
from sluice.core.events import (
    ApprovalFinished,
    ApprovalRejected,
    ApprovalTriggered,
    ConfigurationChange,
    Decision,
    Done,
    EvaluationDone,
    Event,
    Outcome,
    Result,
)
from sluice.core.gate import GateDecision, decide
from sluice.core.shipyard import Shipyard
from sluice.core.validation import join_image
from sluice.services.records import Records


def _parse_now(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _approved_by(reply: Event, approver: str) -> Event:
    """A decision event of an approval names who approved (SECURITY, issue 14)."""
    if isinstance(reply.data, ConfigurationChange):
        return dataclasses.replace(reply, data=dataclasses.replace(reply.data, approver=approver))
    return reply


class GatekeeperService:
    def __init__(
        self, records: Records, now: Callable[[], str], source: str, approver_keys: KeyLookup | None = None
    ) -> None:
        self.records = records
        self.now = now
        self.source = source
        #: SECURITY (issue 14): project -> approver key; None → every approval is refused.
        self.approver_keys: KeyLookup = approver_keys or (lambda project: None)

    def handle(self, event: Event) -> list[Event]:
        if isinstance(event.data, EvaluationDone):
            return self._evaluated(event, event.data)
        if isinstance(event.data, ApprovalFinished):
            return self._approval(event, event.data)
        return []

    def _gate_name(self, project: str, stage: str, service: str) -> tuple[str, dict[str, str]]:
        return self.records.scoped("gate", project, stage, service)

    def _evaluated(self, event: Event, done: EvaluationDone) -> list[Event]:
        shipyard = self.records.project(done.project).shipyard
        stage = shipyard.stage(done.stage)
        image = join_image(done.image, done.tag)
        decision = decide(done.result, stage)
        if decision is GateDecision.HOLD:
            name, labels = self._gate_name(done.project, done.stage, done.service)
            held = {"image": image, "result": done.result, "evaluation_event": event.id, "held_at": self.now()}

            def hold(pending: dict[str, Any]) -> None:
                pending.setdefault(event.shkeptncontext, held)

            self.records.update_json(name, "pending", {}, labels, hold)
            triggered = ApprovalTriggered(
                project=done.project, stage=done.stage, service=done.service, image=image, result=done.result,
                message=f"{image} {done.result}ed the gate in {done.stage}; promotion waits for approval "
                f"(sluice send event approval --context {event.shkeptncontext} --stage {done.stage} --approve|--decline)",
                labels=done.labels,
            )
            return [event.reply(triggered, source=self.source, time=self.now())]
        return self._carry_out(event, shipyard, done.project, done.stage, done.service, image, decision, done.labels)

    def _approval(self, event: Event, approval: ApprovalFinished) -> list[Event]:
        # --- SECURITY HOOK (issue 14): an approval is obeyed only when it proves its sender. ---
        # Unsigned, badly signed or stale → nothing changes; the rejection is answered (and so
        # recorded in the delivery's event log) with the reason. Carry this into the new gatekeeper
        # before any state is read or written; pass ``check.approver`` into the decision events.
        check = check_approval(event, self.approver_keys, _parse_now(self.now()))
        if not check.ok:
            rejected = ApprovalRejected(
                project=approval.project, stage=approval.stage, service=approval.service, labels=approval.labels,
                decision=approval.decision, approver=event.extensions.get(APPROVER_ATTRIBUTE, "")[:128],
                reason=check.reason,
            )
            return [event.reply(rejected, source=self.source, time=self.now())]
        return [_approved_by(reply, check.approver) for reply in self._obey_approval(event, approval)]
        # --- end of SECURITY HOOK --------------------------------------------------------------

    def _obey_approval(self, event: Event, approval: ApprovalFinished) -> list[Event]:
        name, labels = self._gate_name(approval.project, approval.stage, approval.service)

        def take(pending: dict[str, Any]) -> Mapping[str, Any] | None:
            return pending.pop(event.shkeptncontext, None)

        held = self.records.update_json(name, "pending", {}, labels, take)
        base: dict[str, Any] = {"project": approval.project, "stage": approval.stage, "service": approval.service, "labels": approval.labels}
        if held is None:
            done = Done(
                **base, outcome=Outcome.FAILED.value, result=Result.FAIL.value,
                message=f"no promotion of delivery {event.shkeptncontext} waits for approval in {approval.stage}",
            )
            return [event.reply(done, source=self.source, time=self.now())]
        shipyard = self.records.project(approval.project).shipyard
        decision = GateDecision.PROMOTE if approval.decision == Decision.APPROVE.value else GateDecision.DISCARD
        return self._carry_out(
            event, shipyard, approval.project, approval.stage, approval.service, str(held["image"]), decision, approval.labels
        )

    def _carry_out(
        self, event: Event, shipyard: Shipyard, project: str, stage: str, service: str, image: str,
        decision: GateDecision, labels: Mapping[str, str],
    ) -> list[Event]:
        base: dict[str, Any] = {"project": project, "service": service, "labels": dict(labels)}
        now = self.now()
        if decision is GateDecision.DISCARD:
            discard = ConfigurationChange(**base, stage=stage, image=image, action="discard", value=0)
            return [event.reply(discard, source=self.source, time=now, discriminator="discard")]
        replies = [
            event.reply(
                ConfigurationChange(**base, stage=stage, image=image, action="promote", value=0),
                source=self.source, time=now, discriminator="promote",
            )
        ]
        following = shipyard.next_stage(stage)
        if following is not None:
            replies.append(
                event.reply(
                    ConfigurationChange(**base, stage=following.name, image=image, action="set", value=100),
                    source=self.source, time=now, discriminator=f"set:{following.name}",
                )
            )
        return replies
