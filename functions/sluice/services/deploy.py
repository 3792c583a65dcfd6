"""The deploy service: ``configuration.change`` → backend → ``deployment-finished`` / ``done``.

Claim, act, record. A ``set`` claims the stage's lane for its delivery (or queues it behind
the delivery that holds it) in one write; the backend then deploys (every backend step is
idempotent); the outcome is recorded with the ``deployed`` transition. ``promote`` and
``discard`` are obeyed only for the run the gatekeeper moved to ``promoting`` / ``discarding``;
the ``finished`` transition releases the stage and hands it to the next queued delivery in the
same write. Every error after a claim ends in an event: a failed deployment is reported as
``deployment-finished`` with ``result: fail`` (the gate then rolls it back); a retryable one is
left to the broker's retries and, past the phase's deadline, to the tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sluice.core import deployment as dep
from sluice.core import plans
from sluice.core.events import CanaryAction, ConfigurationChange, DeploymentFinished, Event, Outcome
from sluice.core.frozen import frozen
from sluice.core.inconclusive import ATTEMPT_LABEL
from sluice.core.ledger import (
    HANDOFF_S,
    QUEUE_LIMIT,
    HoldDecision,
    Lane,
    Phase,
    Run,
    Transition,
    enter,
    expired,
)
from sluice.core.shipyard import Stage
from sluice.core.validation import split_image
from sluice.core.verdict import Verdict
from sluice.errors import RetryableError, SluiceError
from sluice.ports.backend import DeploymentBackend, Placement, Slot
from sluice.services.ledger import Ledger
from sluice.services.records import Records

if TYPE_CHECKING:
    from sluice.core.canary import CanaryState

log = logging.getLogger("sluice.deploy")

#: Extra time a phase of the deploy function gets beyond the backend's own timeouts.
GRACE_S = 60.0


@frozen
class _Ending:
    """How a promotion or roll-back ended: the done event's outcome and result, why, and whether
    the candidate became the primary."""

    outcome: Outcome
    result: Verdict
    message: str
    promoted: bool


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
        self.ledger = Ledger(records)
        self.backend = backend
        self.now = now
        self.source = source
        self.timeout_s = timeout_s

    @property
    def phase_s(self) -> float:
        """How long a deploy phase may take: three backend steps and a grace."""
        return 3 * self.timeout_s + GRACE_S

    # --- entry -------------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Event]:
        if not isinstance(event.data, ConfigurationChange):
            from sluice.core.events import Ping  # cold start: only a tick's payload is not a change

            if isinstance(event.data, Ping):
                return self._expire()
        change = event.data
        assert isinstance(change, ConfigurationChange)
        project = self.records.require_service(change.project, change.service)
        stage = project.shipyard.stage(change.stage) if change.stage else project.shipyard.first
        placement = Placement(change.project, stage.name, change.service)
        if change.action is CanaryAction.SET:
            return self._set(event, change, stage, placement)
        return self._finish(event, stage, placement, promote=change.action is CanaryAction.PROMOTE)

    def _run(self, placement: Placement, actions: list[plans.Action]) -> dict[str, str]:
        urls: dict[str, str] = {}
        for action in actions:
            if action.step is plans.Step.DEPLOY_PRIMARY:
                urls["primary"] = self.backend.deploy(placement, Slot.PRIMARY, action.image, self.timeout_s)
            elif action.step is plans.Step.DEPLOY_CANARY:
                urls["canary"] = self.backend.deploy(placement, Slot.CANARY, action.image, self.timeout_s)
            elif action.step is plans.Step.DEPLOY_DIRECT:
                urls["direct"] = self.backend.deploy(placement, Slot.DIRECT, action.image, self.timeout_s)
            elif action.step is plans.Step.ROUTE:
                urls["public"] = self.backend.route(placement, action.weight)
            elif action.step is plans.Step.SCALE_CANARY_TO_ZERO:
                self.backend.scale_to_zero(placement, Slot.CANARY)
        return urls

    # --- set -----------------------------------------------------------------------------------
    def _set(self, event: Event, change: ConfigurationChange, stage: Stage, placement: Placement) -> list[Event]:
        context, now = event.shkeptncontext, self.now()

        def claim(lane: Lane) -> tuple[Lane, tuple[str, Any]]:
            run = lane.run(context)
            if run is not None:
                if run is lane.active and run.phase is Phase.DEPLOYING:
                    # claimed before (a crash, or dequeued), or a canary's next step: deploy
                    return lane, ("go", (lane.serving, run))
                return lane, ("known", run.stored(Transition.DEPLOYED) or [])
            if any(q.context == context for q in lane.queue):
                return lane, ("known", [])
            if lane.stale(context, event.time):
                return lane, ("stale", [])
            if lane.active is not None:
                if len(lane.queue) >= QUEUE_LIMIT:
                    return lane, ("full", [])
                from sluice.core.ledger import Queued  # cold start: only a busy stage queues

                queued = Queued(context, change.image, event.to_json_dict(), now)
                return replace(lane, queue=(*lane.queue, queued)), ("queued", lane.active.context)
            serving = lane.serving if lane.serving.updated else replace(lane.serving, strategy=stage.deployment_strategy)
            run = Run(context, change.image, Phase.DEPLOYING, now, "", event_time=event.time, labels=_own(change.labels),
                      canary=_first_step(stage, now))
            run = enter(run, Phase.DEPLOYING, now, self.phase_s)
            return replace(lane, serving=serving, active=run), ("go", (serving, run))

        kind, detail = self.ledger.change(placement, claim)
        if kind == "known":
            return [Event.from_json_dict(e) for e in detail]
        if kind == "stale":
            log.warning("%s: ignored a stale duplicate of delivery %s (older than every delivery this stage remembers)",
                        placement, context)
            return []
        if kind == "queued":
            log.info("%s: %s waits for stage %s (held by %s)", change.service, change.image, stage.name, detail)
            return []
        if kind == "full":
            from sluice.core.events import Done  # cold start: a set sends it only when the queue is full

            done = Done(
                project=change.project, stage=stage.name, service=change.service, labels=change.labels,
                outcome=Outcome.FAILED, result=Verdict.FAIL, image=change.image,
                message=f"{QUEUE_LIMIT} deliveries already wait for {stage.name}; {change.image} was not queued",
            )
            return [event.reply(done, source=self.source, time=now)]
        serving, run = detail
        if run.canary is not None:  # the ledger says the step's weight and attempt, never the event
            return self._deploy(event, run.image, stage, placement, serving, run.canary.weight, _labels(run))
        return self._deploy(event, change.image, stage, placement, serving, change.value, _labels(run))

    def _deploy(
        self, cause: Event, image: str, stage: Stage, placement: Placement, serving: dep.Serving, value: int,
        labels: Mapping[str, str],
    ) -> list[Event]:
        """Run the backend for a claimed run, then record ``deployed`` (failures included)."""
        repo, tag = split_image(image)
        common: Mapping[str, Any] = {
            "project": placement.project, "stage": stage.name, "service": placement.service, "image": repo, "tag": tag,
            "teststrategy": stage.test_strategy, "deploymentstrategy": stage.deployment_strategy,
            "labels": dict(labels),
        }
        weight = value if stage.split else 100
        urls: dict[str, str] = {}
        try:
            urls = self._run(placement, plans.plan_set(serving, image, weight))
            candidate = urls.get("canary") or urls.get("direct") or ""
            payload = DeploymentFinished(
                **common, deploymentURILocal=candidate, deploymentURIPublic=urls.get("public", ""),
                result=Verdict.PASS,
                message=f"{image} runs in {stage.name}"
                + (f" beside the primary, with {weight} % of the traffic" if stage.split else ""),
            )
        except RetryableError:
            raise  # the broker retries; past the phase's deadline the tick fails it
        except Exception as err:  # permanent, configuration, or a defect: the stage must not stay claimed
            if not _expected(err):
                log.exception("deploying %s to %s failed unexpectedly", image, placement)
            payload = DeploymentFinished(**common, result=Verdict.FAIL, message=f"deployment of {image} failed: {err}")
            urls = {}
        reply = cause.reply(payload, source=self.source, time=self.now())
        return self._record_deployed(placement, cause.shkeptncontext, image, weight, urls, reply)

    def _record_deployed(
        self, placement: Placement, context: str, image: str, weight: int, urls: dict[str, str], reply: Event
    ) -> list[Event]:
        now = self.now()

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            serving = dep.after_set(lane.serving, image, weight, urls, now) if urls else lane.serving
            if run.canary is not None and run.canary.aborted:
                # aborted by a person while the backend set this step's weight: the setting is done,
                # so the weight goes back to 0 now (no tests or evaluation for the step)
                discard = ConfigurationChange(
                    project=placement.project, stage=placement.stage, service=placement.service, labels=dict(run.labels),
                    image=run.image, action=CanaryAction.DISCARD, value=0,
                )
                sent = reply.reply(discard, source=self.source, time=now, discriminator="discard").to_json_dict()
                discarding = enter(run, Phase.DISCARDING, now, self.phase_s)
                return replace(lane, serving=serving).put(discarding), [sent]
            return replace(lane, serving=serving).put(enter(run, Phase.DEPLOYED, now, HANDOFF_S)), [reply.to_json_dict()]

        return self.ledger.advance(placement, context, Transition.DEPLOYED, effect).events()

    # --- promote / discard ---------------------------------------------------------------------
    def _finish(self, event: Event, stage: Stage, placement: Placement, *, promote: bool) -> list[Event]:
        context = event.shkeptncontext
        lane = self.ledger.lane(placement)
        run = self.ledger.lane_run(placement, context, lane)  # an old run's stored outcome, from its sealed chunk
        wanted = Phase.PROMOTING if promote else Phase.DISCARDING
        if run is None or run.stored(Transition.FINISHED) is not None or run.phase is not wanted:
            stored = run.stored(Transition.FINISHED) if run is not None else None
            if stored is None:
                log.info("%s: %s for delivery %s ignored: %s", placement, "promote" if promote else "discard", context,
                         f"its run is {run.phase.value}" if run else "no such delivery in this stage")
            return [Event.from_json_dict(e) for e in stored or []]
        return self._carry_out(event, stage, placement, lane, run, promote=promote)

    def _carry_out(
        self, cause: Event, stage: Stage, placement: Placement, lane: Lane, run: Run, *, promote: bool, final: bool = False
    ) -> list[Event]:
        """Promote or discard ``run``'s candidate, then record ``finished`` (releasing the stage).
        ``final``: the last attempt (from the tick) — a retryable error fails the run too."""
        ending = self._end(stage, placement, lane.serving, run, promote=promote, final=final)
        return self._record_finished(cause, stage, placement, run, ending, final=final)

    def _end(
        self, stage: Stage, placement: Placement, state: dep.Serving, run: Run, *, promote: bool, final: bool
    ) -> _Ending:
        """Run the backend steps of the promotion or the roll-back; a failure is an ending too."""
        what = "promotion" if promote else "roll-back"
        try:
            if promote:
                self._run(placement, plans.plan_promote(state))
                return _Ending(Outcome.PROMOTED, Verdict.PASS, f"{run.image} is now the primary of {stage.name}", True)
            return self._roll_back(stage, placement, state, run)
        except RetryableError:
            if not final:
                raise
            message = f"{what} of {run.image} in {stage.name} did not finish in time"
        except Exception as err:
            if not _expected(err):
                log.exception("finishing %s in %s failed unexpectedly", run.image, placement)
            message = f"{what} of {run.image} in {stage.name} failed: {err}"
        return _Ending(Outcome.FAILED, Verdict.FAIL, message, False)

    def _roll_back(self, stage: Stage, placement: Placement, state: dep.Serving, run: Run) -> _Ending:
        """Discard the candidate; the outcome says whether there was something to roll back to,
        and whether a person declined (or let the hold expire, or aborted the canary)."""
        image = run.image
        actions = plans.plan_discard(state)
        self._run(placement, actions)
        if not actions:
            serving = f"{stage.name} keeps serving {state.primary_image}" if state.primary_image else "nothing to roll back to"
            outcome, message = Outcome.STOPPED, f"delivery of {image} stopped in {stage.name}; {serving}"
        else:
            rolled_to = state.primary_image if stage.split else state.last_good_image
            outcome, message = Outcome.ROLLED_BACK, f"rolled back: {stage.name} serves {rolled_to} again; {image} discarded"
        if run.canary is not None and run.canary.stopped:
            message = f"{message} ({run.canary.stopped})"  # an abort names the person: still a roll-back
        elif run.verdict is not None and run.verdict.unreliable and run.hold is None:
            message = f"{message} (inconclusive: {'; '.join(run.verdict.reasons)})"  # never judged on it
        hold = run.hold
        if hold is not None and hold.decision in (HoldDecision.DECLINED, HoldDecision.EXPIRED):
            outcome = Outcome.DECLINED
            message = f"{hold.reason}; {message}"
        return _Ending(outcome, Verdict.FAIL, message, False)

    def _record_finished(
        self, cause: Event, stage: Stage, placement: Placement, run: Run, ending: _Ending, *, final: bool
    ) -> list[Event]:
        """The ``finished`` transition: the run is done, the stage released, the next queued delivery claimed."""
        from sluice.core.events import Done  # cold start: only a promotion or a roll-back ends a run

        done = cause.reply(
            Done(project=placement.project, stage=stage.name, service=placement.service, labels=dict(run.labels),
                 outcome=ending.outcome, result=ending.result, image=run.image, message=ending.message),
            source=self.source, time=self.now(),
        )
        now = self.now()

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            ended = replace(run, phase=Phase.DONE, since=now, deadline="", outcome=ending.outcome, reason=ending.message)
            lane = replace(lane, serving=dep.release(lane.serving, now, promoted=ending.promoted)).put(ended).retire(ended)
            replies = [done.to_json_dict()]
            if ending.promoted and final:  # the tick completes a promotion whose decision reply may be lost:
                replies.extend(_next_stage_sets(run))  # the next stage's set goes again (a duplicate is harmless)
            lane, claimed = self._claim_queued(lane, stage, now)
            return lane, replies + claimed

        return self.ledger.advance(placement, run.context, Transition.FINISHED, effect).events()

    def _claim_queued(self, lane: Lane, stage: Stage, now: str) -> tuple[Lane, list[dict[str, Any]]]:
        """The stage is free: the first queued delivery claims it (its event goes to the deploy function again)."""
        if not lane.queue:
            return lane, []
        head, rest = lane.queue[0], lane.queue[1:]
        queued = Event.from_json_dict(head.event)
        data = queued.data
        assert isinstance(data, ConfigurationChange)
        claimed = Run(head.context, head.image, Phase.DEPLOYING, now, "", event_time=queued.time,
                      labels=_own(data.labels), canary=_first_step(stage, now))
        return replace(lane, queue=rest, active=enter(claimed, Phase.DEPLOYING, now, self.phase_s)), [head.event]

    # --- tick ----------------------------------------------------------------------------------
    def _expire(self) -> list[Event]:
        """End what waits too long for this function: a deployment that never finished (the
        broker gave up, or the process died), a promotion or roll-back that never happened."""
        now = self.now()
        replies: list[Event] = []
        for found in self.ledger.busy():
            run = found.lane.active
            if run is None or not expired(run, now):
                continue
            try:
                replies.extend(self._expire_run(found.placement, found.lane, run, now))
            except Exception as err:  # one lane's trouble never stops the tick for the others
                log.error("tick: could not end the %s run of %s in %s: %s", run.phase.value, run.context,
                          found.placement, err)
        return replies

    def _expire_run(self, placement: Placement, lane: Lane, run: Run, now: str) -> list[Event]:
        cause = _tick_cause(self.source, run, placement, now)
        stage = self.records.project(placement.project).shipyard.stage(placement.stage)
        if run.phase is Phase.DEPLOYING:
            repo, tag = split_image(run.image)
            payload = DeploymentFinished(
                project=placement.project, stage=stage.name, service=placement.service, image=repo, tag=tag,
                teststrategy=stage.test_strategy, deploymentstrategy=stage.deployment_strategy,
                labels=_labels(run), result=Verdict.FAIL,
                message=f"deployment of {run.image} did not finish within {self.phase_s:g} s",
            )
            reply = cause.reply(payload, source=self.source, time=now)
            return self._record_deployed(placement, run.context, run.image, 0, {}, reply)
        if run.phase in (Phase.PROMOTING, Phase.DISCARDING):
            return self._carry_out(cause, stage, placement, lane, run, promote=run.phase is Phase.PROMOTING, final=True)
        return []


def _next_stage_sets(run: Run) -> list[dict[str, Any]]:
    """The ``set`` events for the next stage among the events the run's decision caused (a
    duplicate of what the gatekeeper sent: the next stage's lane recognises it)."""
    decided = [*(run.stored(Transition.DECIDED) or []), *(run.stored(Transition.APPROVED) or [])]
    return [e for e in decided if e.get("type") == ConfigurationChange.TYPE.value
            and ((e.get("data") or {}).get("canary") or {}).get("action") == CanaryAction.SET.value]


def _own(labels: Mapping[str, str]) -> dict[str, str]:
    """A new run's labels: the event's, without the attempt label (the ledger's own: a user's
    label claiming an attempt would make the run's tests-finished look like another attempt's)."""
    return {k: v for k, v in labels.items() if k != ATTEMPT_LABEL}


def _labels(run: Run) -> dict[str, str]:
    """The labels of ``run``'s events, with its attempt (a canary step, a retry) past the first."""
    return {**run.labels, ATTEMPT_LABEL: str(run.attempt)} if run.attempt > 1 else dict(run.labels)


def _first_step(stage: Stage, now: str) -> CanaryState | None:
    """A canary stage's run starts at its first step."""
    if stage.canary is None:
        return None
    from sluice.core.canary import CanaryState  # only a canary stage's run loads it

    return CanaryState(step=0, weight=stage.canary.weight(0), first_attempt=1, started=now)


def _tick_cause(source: str, run: Run, placement: Placement, now: str) -> Event:
    from sluice.core.events import Ping  # cold start: only a tick needs it

    """The event a tick acts on behalf of (its id is stable per run and phase, so replies are too)."""
    return Event(
        type=Ping.TYPE, data=Ping(), source=source, id=f"{placement}/{run.context}/{run.phase.value}/timeout",
        time=now, shkeptncontext=run.context,
    )


def _expected(err: Exception) -> bool:
    """Errors Sluice raises on purpose (logged as one line, not with a traceback)."""
    return isinstance(err, SluiceError)
