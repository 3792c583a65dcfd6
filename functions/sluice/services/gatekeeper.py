"""The gatekeeper: ``evaluation-done`` → promote this stage and deliver to the next one, hold
for approval, or roll back; ``approval.finished`` → carry out the held decision; a tick expires
approvals nobody gave in time and decides runs whose evaluation-done was lost.

It decides on the verdict the ledger stored with the ``evaluated`` transition, never on the
event's own ``result``: a replayed or forged evaluation-done cannot promote a failed build. The
``decided`` and ``approved`` transitions happen once per run; a duplicate, late or replayed
event gets the stored events again and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sluice.core.events import (
    CanaryAction,
    ConfigurationChange,
    Decision,
    EvaluationDone,
    Event,
    EventType,
    Outcome,
)
from sluice.core.gate import GateDecision, decide
from sluice.core.inconclusive import ATTEMPT_LABEL, InconclusiveAction, inconclusive_action, next_attempt
from sluice.core.ledger import (
    HANDOFF_S,
    STEERING_LIMIT,
    HoldDecision,
    Lane,
    Phase,
    Run,
    Transition,
    enter,
    expired,
    parse_time,
    record,
    steering_key,
)
from sluice.core.shipyard import Shipyard, Stage
from sluice.core.strategies import OnTimeout
from sluice.core.verdict import Verdict
from sluice.errors import SluiceError
from sluice.ports.backend import Placement
from sluice.services.ledger import Ledger
from sluice.services.records import Records

if TYPE_CHECKING:  # the approval and canary rules load where an approval or a canary is handled
    from sluice.core.approval_auth import KeyLookup
    from sluice.core.events import ApprovalFinished

log = logging.getLogger("sluice.gatekeeper")


class GatekeeperService:
    def __init__(
        self, records: Records, now: Callable[[], str], source: str, approver_keys: KeyLookup | None = None,
        deploy_phase_s: float = 240.0,
    ) -> None:
        self.records = records
        self.ledger = Ledger(records)
        self.now = now
        self.source = source
        #: project -> approver key (None: no key, so every approval of that project is refused).
        self.approver_keys: KeyLookup = approver_keys or (lambda project: None)
        self.deploy_phase_s = deploy_phase_s

    def handle(self, event: Event) -> list[Event]:
        if isinstance(event.data, EvaluationDone):
            data = event.data
            return self._evaluated(event, Placement(data.project, data.stage, data.service))
        # cold start: the payloads of an approval and of a tick load when one comes
        from sluice.core.events import ApprovalFinished, Ping

        if isinstance(event.data, ApprovalFinished):
            return self._approval(event, event.data)
        if isinstance(event.data, Ping):
            return self._expire()
        return []

    # --- evaluation-done -------------------------------------------------------------------------
    def _evaluated(self, event: Event, placement: Placement) -> list[Event]:
        shipyard = self.records.project(placement.project).shipyard
        stage = shipyard.stage(placement.stage)
        now = self.now()

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            assert run.verdict is not None  # set by the evaluated transition, the only way into this phase
            verdict = run.verdict
            if any(g.context == run.context for g in lane.gates):  # a gate without a deployment ends here
                done = self._done(event, placement, run, Outcome.EVALUATED, run.verdict.result,
                                  f"quality gate {run.verdict.result} (score {run.verdict.score:g})")
                ended = enter(run, Phase.DONE, now, None, outcome=Outcome.EVALUATED)
                return lane.put(ended).retire(ended), [done]
            decision = decide(run.verdict.result, stage)
            why = ""
            step_attempt = run.canary.attempt_in_step(run.attempt) if run.canary is not None else run.attempt
            inconclusive_fail = False
            if run.verdict.inconclusive:  # the gate could not judge: the stage's on_inconclusive says what now
                action = inconclusive_action(stage.inconclusive, step_attempt)
                if action is InconclusiveAction.RETRY and (retried := self._retry(lane, event, run, now)) is not None:
                    return retried
                if action is InconclusiveAction.HOLD:
                    decision = GateDecision.HOLD
                    why = f" (inconclusive: {'; '.join(run.verdict.reasons)})"
                else:
                    inconclusive_fail = True
                    if verdict.unreliable and decision is not GateDecision.DISCARD:
                        # the verdict was computed from a measurement that cannot be trusted: under
                        # ``fail`` it never promotes (an unmeasured SLI already scored 0)
                        decision = GateDecision.DISCARD
            if run.canary is not None and stage.canary is not None:
                run, decision, stepped = self._judge_step(lane, event, placement, stage, run, decision, inconclusive_fail,
                                                          bool(why), now)
                if stepped is not None:
                    return stepped
            if decision is GateDecision.HOLD:
                # cold start: only a hold builds them
                from sluice.core.events import ApprovalTriggered
                from sluice.core.ledger import Hold

                held = enter(run, Phase.HELD, now, stage.approval_timeout_s)
                hold = Hold(verdict.result, now, held.deadline, stage.approval_on_timeout)
                waits = "promotion"
                if run.canary is not None and stage.canary is not None and not stage.canary.last(run.canary.step):
                    waits = f"the next canary step ({stage.canary.weight(run.canary.step + 1)} %)"
                triggered = ApprovalTriggered(
                    project=placement.project, stage=placement.stage, service=placement.service, image=run.image,
                    result=verdict.result,
                    message=f"{run.image} {verdict.result}ed the gate in {placement.stage}{why}; {waits} waits for "
                    f"approval until {held.deadline}, then {stage.approval_on_timeout.value}s "
                    f"(sluice send event approval --context {run.context} --stage {placement.stage} --approve|--decline)",
                    labels=dict(run.labels),
                )
                reply = event.reply(triggered, source=self.source, time=now)
                return lane.put(replace(held, hold=hold)), [reply.to_json_dict()]
            return self._act(lane, event, shipyard, placement, run, decision is GateDecision.PROMOTE, now)

        decided = self.ledger.advance(placement, event.shkeptncontext, Transition.DECIDED, effect)
        if decided.applied and any(e.get("type") == EventType.DONE.value for e in decided.replies):
            self.ledger.close_gate(placement, event.shkeptncontext)  # a gate ended: its record goes
        return decided.events()

    def _judge_step(
        self, lane: Lane, cause: Event, placement: Placement, stage: Stage, run: Run, decision: GateDecision,
        inconclusive_fail: bool, inconclusive_hold: bool, now: str,
    ) -> tuple[Run, GateDecision, tuple[Lane, list[dict[str, Any]]] | None]:
        """A canary step was judged: record it in the run's history; a passed step that is not the
        last goes on to the next one, a failed one is repeated (within ``max_failed_steps``) or
        rolled back. The stage's approval_strategy applies to the promotion after the last step
        only. Returns the run with the step recorded, the decision left to the caller
        (promote or hold after the last step, roll back, hold), and the transition when taken here."""
        assert run.canary is not None and stage.canary is not None and run.verdict is not None
        policy, state, verdict = stage.canary, run.canary, run.verdict
        # a step held for a person (inconclusive under hold) is not failed: the person decides
        failed = inconclusive_fail or (verdict.result == Verdict.FAIL and decision is not GateDecision.HOLD)
        if inconclusive_fail:
            reason = f"inconclusive ({'; '.join(verdict.reasons)})"
        else:
            reason = f"the evaluation said {verdict.result} (score {verdict.score:g})"
        from sluice.core.canary import CanaryStep

        entry = CanaryStep(state.step, state.weight, run.attempt, state.started, now, Verdict.FAIL if failed else
                           verdict.result, verdict.score, verdict.evaluation_id, reason)
        state = state.judged(entry)
        where = f"canary step {state.step + 1} of {len(policy.steps)} ({state.weight} %)"
        if failed:
            if state.failed < policy.max_failed_steps:
                return run, decision, self._next_step(lane, cause, placement, replace(run, canary=state), now, again=True)
            stopped = replace(state, stopped=f"{where} failed: {reason}")
            return replace(run, canary=stopped), GateDecision.DISCARD, None
        run = replace(run, canary=state)
        if state.paused:
            return run, GateDecision.HOLD, None  # paused by a person: the step waits for resume (approve) or abort
        if inconclusive_hold:
            return run, GateDecision.HOLD, None  # the gate could not judge the step: a person decides
        if policy.last(state.step):
            return run, decision, None  # the last step passed: promote as any stage (its approval_strategy applies)
        return run, decision, self._next_step(lane, cause, placement, run, now)

    def _next_step(
        self, lane: Lane, cause: Event, placement: Placement, run: Run, now: str, again: bool = False
    ) -> tuple[Lane, list[dict[str, Any]]]:
        """The canary's next step (or the same step ``again``) as the run's next attempt: the
        deploy function sets the new weight, then the tests and the evaluation run for it."""
        assert run.canary is not None
        stage = self.records.project(placement.project).shipyard.stage(placement.stage)
        assert stage.canary is not None
        attempt = run.attempt + 1
        state = run.canary.again(attempt, now) if again else run.canary.next(stage.canary, attempt, now)
        change = ConfigurationChange(
            project=placement.project, service=placement.service, labels={**run.labels, ATTEMPT_LABEL: str(attempt)},
            stage=placement.stage, image=run.image, action=CanaryAction.SET, value=state.weight,
        )
        reply = cause.reply(change, source=self.source, time=now, discriminator=f"step:{state.step}@{attempt}")
        moved = replace(enter(run, Phase.DEPLOYING, now, self.deploy_phase_s), attempt=attempt, verdict=None, test=None,
                        hold=None, canary=replace(state, paused=False))
        return lane.put(moved), [reply.to_json_dict()]

    def _retry(self, lane: Lane, cause: Event, run: Run, now: str) -> tuple[Lane, list[dict[str, Any]]] | None:
        """Re-run the stage's tests and evaluation (``on_inconclusive: retry``): the run goes back to
        ``deployed`` as its next attempt, with the deployment-finished of the candidate sent again.
        None when there is nothing to re-test (no deployment, or a deployment that failed)."""
        stored = run.stored(Transition.DEPLOYED)
        if not stored:
            return None
        from sluice.core.events import DeploymentFinished  # cold start: only a retry reads it

        previous = Event.from_json_dict(stored[0])
        deployed = previous.data
        if not isinstance(deployed, DeploymentFinished) or deployed.result != Verdict.PASS:
            return None
        attempt = run.attempt + 1
        again = replace(deployed, labels=next_attempt(deployed.labels),
                        message=f"{deployed.message}; attempt {attempt}: the evaluation was inconclusive, so it runs again")
        reply = cause.reply(again, source=self.source, time=now, discriminator=f"retry:{attempt}").to_json_dict()
        moved = replace(enter(run, Phase.DEPLOYED, now, HANDOFF_S), attempt=attempt, verdict=None, test=None)
        return lane.put(record(moved, moved.key(Transition.DEPLOYED), [reply])), [reply]

    # --- approval.finished -----------------------------------------------------------------------
    def _approval(self, event: Event, approval: ApprovalFinished) -> list[Event]:
        """Obeyed only when it proves its sender (signed with the project's approver key, fresh);
        otherwise nothing changes and the rejection is answered with the reason."""
        from sluice.core.approval_auth import APPROVER_ATTRIBUTE, check_approval
        from sluice.core.events import ApprovalRejected

        check = check_approval(event, self.approver_keys, parse_time(self.now()))
        if not check.ok:
            rejected = ApprovalRejected(
                project=approval.project, stage=approval.stage, service=approval.service, labels=approval.labels,
                decision=approval.decision.value, approver=event.extensions.get(APPROVER_ATTRIBUTE, "")[:128],
                reason=check.reason,
            )
            return [event.reply(rejected, source=self.source, time=self.now())]
        placement = Placement(approval.project, approval.stage, approval.service)
        lane = self.ledger.lane(placement)
        run = lane.run(event.shkeptncontext)
        steer = approval.decision in (Decision.PAUSE, Decision.RESUME, Decision.ABORT)
        if steer and run is not None and run.canary is not None and (
                run.phase is not Phase.HELD or approval.decision is Decision.ABORT):
            return self._steer(event, approval, placement, check.approver)
        if (approval.decision is Decision.RESUME and run is not None and run.canary is not None
                and run.phase is Phase.HELD and _steering_mark(event) <= run.canary.steered):
            log.info("resume %s for %s in %s changes nothing: a newer pause or resume stands", event.id,
                     event.shkeptncontext, placement)
            return []
        if steer and (run is None or run.canary is None):
            log.info("%s for %s in %s changes nothing: no canary of that delivery runs there", approval.decision,
                     event.shkeptncontext, placement)
            return []
        if run is None or run.phase is not Phase.HELD:
            ended = run.hold.decision.value if run is not None and run.hold and run.hold.decision else ""
            log.info(
                "approval %s for %s in %s changes nothing: %s", event.id, event.shkeptncontext, placement,
                f"the promotion was already {ended}" if ended else "no promotion of that delivery waits for approval there",
            )
            return [] if run is None else run_events(run, Transition.APPROVED)
        if approval.decision is Decision.PAUSE:
            return []  # held already
        approve = approval.decision in (Decision.APPROVE, Decision.RESUME)  # abort = decline
        who = check.approver
        shipyard = self.records.project(approval.project).shipyard
        decision = HoldDecision.APPROVED if approve else HoldDecision.DECLINED
        reason = f"{decision.value} by {who}" + (f": {approval.message}" if approval.message else "")
        return self._decide_hold(event, shipyard, placement, decision, who, reason, approve)

    def _steer(self, event: Event, approval: ApprovalFinished, placement: Placement, who: str) -> list[Event]:
        """Pause (hold at the next judged step), resume (go on) or abort (weight 0, rolled back) a
        running canary; one typed transition each (``core.ledger.steering_key``). Pause and resume:
        the newest by signed time stands (an older one, or a repeat, changes nothing). Abort: at
        once, except while the backend sets a step's weight (deploying) — then it is recorded and
        the deploy function discards when the setting ends (``DeployService._record_deployed``)."""
        now = self.now()
        shipyard = self.records.project(placement.project).shipyard
        step = {Decision.PAUSE: Transition.PAUSED, Decision.RESUME: Transition.RESUMED,
                Decision.ABORT: Transition.ABORTED}[approval.decision]
        note = f" ({approval.message})" if approval.message else ""
        mark = _steering_mark(event)
        current = self.ledger.lane(placement).run(event.shkeptncontext)
        if step is not Transition.ABORTED and current is not None and current.steered() >= STEERING_LIMIT:
            log.warning("%s %s for %s in %s refused: %d pauses and resumes are remembered for this run already",
                        approval.decision, event.id, event.shkeptncontext, placement, STEERING_LIMIT)
            return []  # every remembered steering event is a key on the run: the lane stays bounded

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            assert run.canary is not None
            if step is Transition.ABORTED:
                from sluice.core.canary import ABORTED_PREFIX

                where = f"canary step {run.canary.step + 1} ({run.canary.weight} %)"
                stopped = replace(run, canary=replace(run.canary, stopped=f"{ABORTED_PREFIX}{who} at {where}{note}"))
                if run.phase is Phase.DEPLOYING:  # the backend is setting the weight: discard when it is done
                    return lane.put(stopped), []
                return self._act(lane.put(stopped), event, shipyard, placement, stopped, False, now, approver=who)
            if mark <= run.canary.steered:
                return lane, []  # an older decision than the one that stands (reordered): changes nothing
            steered = replace(run.canary, paused=step is Transition.PAUSED, steered=mark)
            return lane.put(replace(run, canary=steered)), []

        key = steering_key(step, event.id)
        advanced = self.ledger.advance(placement, event.shkeptncontext, step, effect, key=key)
        if not advanced.applied and not advanced.replies:
            log.info("%s %s for %s in %s changes nothing: a repeat, or the canary is past steering (promoting, "
                     "discarding or done)",
                     approval.decision, event.id, event.shkeptncontext, placement)
        return advanced.events()

    def _decide_hold(
        self, cause: Event, shipyard: Shipyard, placement: Placement, decision: HoldDecision, who: str, reason: str,
        promote: bool,
    ) -> list[Event]:
        now = self.now()

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            assert run.hold is not None  # set with the held phase
            decided = replace(run, hold=replace(run.hold, decision=decision, by=who, decided_at=now, reason=reason))
            return self._act(lane.put(decided), cause, shipyard, placement, decided, promote, now, approver=who)

        return self.ledger.advance(placement, cause.shkeptncontext, Transition.APPROVED, effect).events()

    # --- carrying out ----------------------------------------------------------------------------
    def _act(
        self, lane: Lane, cause: Event, shipyard: Shipyard, placement: Placement, run: Run, promote: bool, now: str,
        approver: str = "",
    ) -> tuple[Lane, list[dict[str, Any]]]:
        """``run`` moves to promoting (with the next stage's set) or discarding; the events that say
        so (naming the ``approver`` when a person decided)."""
        base: dict[str, Any] = {"project": placement.project, "service": placement.service, "labels": dict(run.labels)}
        decided: dict[str, Any] = {"approver": approver} if approver else {}
        if (state := run.canary) is not None:
            policy = shipyard.stage(placement.stage).canary
            if promote and policy is not None and not policy.last(state.step):
                return self._next_step(lane, cause, placement, run, now)  # an approved step goes on, not to promotion
            if promote:
                run = replace(run, canary=replace(state, weight=100))
            elif not state.stopped:
                steps = len(policy.steps) if policy is not None else state.step + 1
                run = replace(run, canary=replace(
                    state, stopped=f"stopped at canary step {state.step + 1} of {steps} ({state.weight} %)"))
        if not promote:
            discard = ConfigurationChange(**base, **decided, stage=placement.stage, image=run.image, action=CanaryAction.DISCARD, value=0)
            reply = cause.reply(discard, source=self.source, time=now, discriminator="discard")
            return lane.put(enter(run, Phase.DISCARDING, now, self.deploy_phase_s)), [reply.to_json_dict()]
        replies = [
            cause.reply(
                ConfigurationChange(**base, **decided, stage=placement.stage, image=run.image, action=CanaryAction.PROMOTE, value=0),
                source=self.source, time=now, discriminator="promote",
            ).to_json_dict()
        ]
        following: Stage | None = shipyard.next_stage(placement.stage)
        if following is not None:
            replies.append(
                cause.reply(
                    ConfigurationChange(**base, stage=following.name, image=run.image, action=CanaryAction.SET, value=100),
                    source=self.source, time=now, discriminator=f"set:{following.name}",
                ).to_json_dict()
            )
        return lane.put(enter(run, Phase.PROMOTING, now, self.deploy_phase_s)), replies

    def _done(self, cause: Event, placement: Placement, run: Run, outcome: Outcome, result: Verdict, message: str) -> dict[str, Any]:
        from sluice.core.events import Done  # cold start: only a gate without a deployment ends here

        done = Done(
            project=placement.project, stage=placement.stage, service=placement.service, labels=dict(run.labels),
            outcome=outcome, result=result,
            image=run.image, message=message,
        )
        return cause.reply(done, source=self.source, time=self.now()).to_json_dict()

    # --- tick ------------------------------------------------------------------------------------
    def _expire(self) -> list[Event]:
        """Expire held promotions (``approval_strategy.timeout``; ``on_timeout`` decides) and decide
        runs whose evaluation-done never reached the gatekeeper."""
        from sluice.core.events import Ping  # cold start: only a tick needs it

        now = self.now()
        replies: list[Event] = []
        for found in (*self.ledger.busy(), *self.ledger.gates()):
            lane = found.lane
            if lane.finished and not lane.gates and lane.active is None and lane.finished[-1].context in found.name:
                self.ledger.close_gate(found.placement, lane.finished[-1].context)  # ended, but its record stayed
                continue
            for run in (*((lane.active,) if lane.active else ()), *lane.gates):
                if run.phase not in (Phase.EVALUATED, Phase.HELD) or not expired(run, now):
                    continue
                cause = Event(
                    type=Ping.TYPE, data=Ping(), source=self.source,
                    id=f"{found.placement}/{run.context}/{run.phase.value}/timeout", time=now, shkeptncontext=run.context,
                )
                try:
                    if run.phase is Phase.EVALUATED:
                        replies.extend(self._evaluated(cause, found.placement))
                        continue
                    assert run.hold is not None
                    shipyard = self.records.project(found.placement.project).shipyard
                    approve = run.hold.on_timeout is OnTimeout.APPROVE
                    reason = f"approval expired at {run.deadline} (no decision in time; on_timeout: {run.hold.on_timeout.value})"
                    replies.extend(
                        self._decide_hold(cause, shipyard, found.placement, HoldDecision.EXPIRED, "", reason, approve)
                    )
                except (SluiceError, KeyError, ValueError) as err:
                    log.error("tick: could not end the %s run of %s in %s: %s", run.phase.value, run.context,
                              found.placement, err)
        return replies


def run_events(run: Run, step: Transition) -> list[Event]:
    return [Event.from_json_dict(e) for e in run.stored(step) or []]


def _steering_mark(event: Event) -> str:
    """The order of steering events: their (signed) time, then their id."""
    return f"{event.time}|{event.id}"
