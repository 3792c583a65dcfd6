"""The evaluate service (Keptn's lighthouse): tests-finished / start-evaluation → get-sli;
get-sli.done → score against the history → evaluation-done; a PingSource tick fails
evaluations whose SLI provider did not answer in time.

A run's evaluation is two ledger transitions: ``evaluating`` (the SLO it asks with, the
provider, a deadline) and ``evaluated`` (the verdict, stored with the evaluation-done it
caused). The timeout tick and a late get-sli.done race for ``evaluated``: one wins, the other
re-emits the winner's evaluation-done; the history gets the winner's evaluation only, once.
A quality gate without a deployment (start-evaluation) is a run of its own in the lane.
"""

from __future__ import annotations

import base64
import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from sluice.core.events import Event, EventType, GetSli
from sluice.core.inconclusive import attempt_of, comparison_history
from sluice.core.ledger import (
    HANDOFF_S,
    SLO_MAX_BYTES,
    Judgement,
    Lane,
    PendingEvaluation,
    Phase,
    Run,
    Transition,
    enter,
    expired,
)
from sluice.core.slo import Slo, parse_slo
from sluice.core.strategies import SPLIT_STRATEGIES, TestStrategy
from sluice.core.validation import join_image, split_image
from sluice.core.verdict import Verdict
from sluice.errors import SluiceError, ValidationError
from sluice.ports.backend import Placement, Slot
from sluice.services.documents import load_slo
from sluice.services.ledger import Ledger
from sluice.services.records import Records

if TYPE_CHECKING:  # cold start: the payloads load with the event that carries them (events dispatch on
    # their type), and the scoring rules when SLIs are scored, not with a start-evaluation or a tick
    from sluice.core.events import GetSliDone, StartEvaluation, TestsFinished
    from sluice.core.scoring import Measurement

log = logging.getLogger("sluice.evaluate")


@functools.cache
def no_slo() -> Slo:
    """The SLO of a run without one (only the test result decides); built on first use: an
    evaluation with an SLO never needs it."""
    return parse_slo({"objectives": [], "total_score": {"pass": "90%", "warning": "75%"}}, "no slo.yaml")


def _latency(value: Measurement) -> bool:
    """A measured latency (``response_time_*``, the builtin provider's and the usual names)."""
    return value.success and value.value is not None and value.name.startswith("response_time")


class EvaluateService:
    def __init__(
        self,
        records: Records,
        now: Callable[[], str],
        source: str,
        default_provider: str = "",
        sli_timeout_s: float = 120.0,
    ) -> None:
        self.records = records
        self.ledger = Ledger(records)
        self.now = now
        self.source = source
        self.default_provider = default_provider
        self.sli_timeout_s = sli_timeout_s

    def handle(self, event: Event) -> list[Event]:
        # by the payload's own type, not isinstance: a cold start loads the payload class of the
        # event it answers, not those of every event evaluate takes (each payload has one TYPE)
        kind = event.data.TYPE
        if kind is EventType.TESTS_FINISHED:
            tests = cast("TestsFinished", event.data)
            return self._start(event, tests, tests)
        if kind is EventType.START_EVALUATION:
            return self._gate(event, cast("StartEvaluation", event.data))
        if kind is EventType.GET_SLI_DONE:
            return self._score(event, cast("GetSliDone", event.data))
        if kind is EventType.PING:
            return self._expire()
        return []

    # --- start -------------------------------------------------------------------------------
    def _gate(self, event: Event, data: StartEvaluation) -> list[Event]:
        """A quality gate on a window without a deployment: a run of its own, then as tests-finished."""
        info = self.records.require_service(data.project, data.service)
        info.shipyard.stage(data.stage)  # must exist: nothing is created for an unknown stage
        placement = Placement(data.project, data.stage, data.service)
        now = self.now()

        run = Run(event.shkeptncontext, "", Phase.TESTED, now, "", event_time=event.time, labels=dict(data.labels))
        self.ledger.open_gate(placement, enter(run, Phase.TESTED, now, HANDOFF_S))
        return self._start(event, data, None)

    def _start(self, event: Event, data: TestsFinished | StartEvaluation, tests: TestsFinished | None) -> list[Event]:
        """Ask for the SLIs of ``data``'s window; ``tests`` is ``data`` when it is a tests-finished."""
        placement = Placement(data.project, data.stage, data.service)
        context = event.shkeptncontext
        run = self.ledger.run(placement, context)
        if run is None:
            log.info("%s for %s: its delivery does not wait in %s", event.type.value, context, placement)
            return []
        for step in (Transition.EVALUATING, Transition.EVALUATED):
            if (stored := run.stored(step)) is not None:
                return [Event.from_json_dict(e) for e in stored]
        if run.phase is not Phase.TESTED or (tests is not None and attempt_of(tests.labels) != run.attempt):
            return []  # not waiting for an evaluation, or tests-finished of an earlier attempt (a gate has one)
        pending = PendingEvaluation(
            start=data.start, end=data.end, slo="", provider="", request_id="", deadline="",
            test_failed=tests is not None and tests.result == Verdict.FAIL,
            test_message=tests.message if tests is not None else "",
            test_inconclusive=tests.inconclusive if tests is not None else "",
            test_lag_ms=tests.lag_ms if tests is not None else 0.0,
            teststrategy=tests.teststrategy if tests is not None else TestStrategy.NONE,
            deploymentstrategy=tests.deploymentstrategy if tests is not None else None,
        )
        found = self.records.resource_document(data.project, data.stage, data.service, "slo.yaml")
        if found is None:
            message = (
                f"no SLO found for {data.service} in {data.stage} (add one with "
                f"'sluice add-resource --resource slo.yaml --resourceUri slo.yaml'): the test result decides"
            )
            return self._finish(event, placement, run, pending, no_slo(), [], message)
        slo_text, slo_doc = found
        try:
            if len(slo_text.encode()) > SLO_MAX_BYTES:
                raise ValidationError("slo.yaml", [f"the file has {len(slo_text.encode())} bytes; at most {SLO_MAX_BYTES}"])
            slo = load_slo(slo_text, f"slo.yaml of {data.service} in {data.project}/{data.stage}", slo_doc)
        except ValidationError as err:
            return self._finish(event, placement, run, pending, no_slo(), [], f"the SLO is not valid: {err}", force_fail=True)
        provider = self.records.project_setting(data.project, "sli-provider") or self.default_provider or "builtin"
        repo, tag = split_image(run.image) if run.image else ("", "")
        request = GetSli(
            project=data.project, stage=data.stage, service=data.service, sliProvider=provider,
            start=data.start, end=data.end, indicators=list(dict.fromkeys(o.sli for o in slo.objectives)),
            customFilters=[{"key": k, "value": v} for k, v in slo.filter.items()],
            deployment=Slot.CANARY if pending.deploymentstrategy in SPLIT_STRATEGIES else Slot.DIRECT,
            image=repo, tag=tag, teststrategy=pending.teststrategy,
            deploymentstrategy=pending.deploymentstrategy, labels=dict(run.labels),
        )
        now = self.now()
        reply = event.reply(request, source=self.source, time=now)
        waiting = replace(pending, slo=slo_text, provider=provider, request_id=reply.id)

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            moved = enter(run, Phase.EVALUATING, now, self.sli_timeout_s)
            return lane.put(replace(moved, evaluation=replace(waiting, deadline=moved.deadline))), [reply.to_json_dict()]

        return self.ledger.advance(placement, context, Transition.EVALUATING, effect).events()

    # --- score -------------------------------------------------------------------------------
    def _score(self, event: Event, done: GetSliDone) -> list[Event]:
        placement = Placement(done.project, done.stage, done.service)
        run = self.ledger.run(placement, event.shkeptncontext)
        if run is None:
            log.warning("get-sli.done %s for %s: no evaluation waits for it", event.id, event.shkeptncontext)
            return []
        if (stored := run.stored(Transition.EVALUATED)) is not None:
            self._remember_evaluation(placement, stored)  # a crash may have come between the two writes
            return [Event.from_json_dict(e) for e in stored]
        if run.phase is not Phase.EVALUATING or run.evaluation is None or event.triggeredid != run.evaluation.request_id:
            return []  # not waiting for SLIs, or the answer to an earlier attempt's request
        from sluice.core.scoring import Measurement

        values = [Measurement.from_indicator_value(v) for v in done.indicatorValues if isinstance(v, Mapping)]
        slo = load_slo(run.evaluation.slo, "slo.yaml")
        return self._finish(event, placement, run, run.evaluation, slo, values, done.message)

    # --- expire ------------------------------------------------------------------------------
    def _expire(self) -> list[Event]:
        """Fail evaluations whose SLI provider did not answer in time, and runs whose evaluation
        never started (tests-finished was lost)."""
        now = self.now()
        replies: list[Event] = []
        for found in (*self.ledger.busy(), *self.ledger.gates()):
            lane = found.lane
            for run in (*((lane.active,) if lane.active else ()), *lane.gates):
                if run.phase not in (Phase.TESTED, Phase.EVALUATING) or not expired(run, now):
                    continue
                try:
                    replies.extend(self._expire_run(found.placement, run))
                except (SluiceError, KeyError, ValueError) as err:
                    log.error("tick: could not end the evaluation of %s in %s: %s", run.context, found.placement, err)
        return replies

    def _expire_run(self, placement: Placement, run: Run) -> list[Event]:
        # cold start: only a tick builds one
        from sluice.core.events import Ping

        cause = Event(
            type=Ping.TYPE, data=Ping(), source=self.source, id=f"{placement}/{run.context}/{run.phase.value}/timeout",
            time=self.now(), shkeptncontext=run.context,
        )
        if run.phase is Phase.EVALUATING and run.evaluation is not None:
            slo = load_slo(run.evaluation.slo, "slo.yaml")
            from sluice.core.scoring import Measurement

            reason = f"no answer from SLI provider {run.evaluation.provider!r} within {self.sli_timeout_s:g} s"
            values = [Measurement(o.sli, None, False, reason) for o in slo.objectives]
            return self._finish(cause, placement, run, run.evaluation, slo, values, reason, force_fail=True)
        now = self.now()
        pending = PendingEvaluation(start=run.since, end=now, slo="", provider="", request_id="", deadline="")
        reason = f"the evaluation never started within {HANDOFF_S:g} s of the tests"
        return self._finish(cause, placement, run, pending, no_slo(), [], reason, force_fail=True)

    # --- finish ------------------------------------------------------------------------------
    def _finish(
        self, event: Event, placement: Placement, run: Run, pending: PendingEvaluation, slo: Slo,
        values: list[Measurement], message: str, force_fail: bool = False,
    ) -> list[Event]:
        # cold start: a start-evaluation with an SLO asks for SLIs and finishes nothing
        from sluice.core.events import EvaluationDone
        from sluice.core.scoring import EvaluationResult, InconclusiveKind, Subject, evaluate, select_baseline

        project, stage, service = placement.project, placement.stage, placement.service
        evaluation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event.source}#{event.id}#evaluation"))
        parsed: dict[int, EvaluationResult | None] = {}  # by id() of the stored entry: each parsed once

        def results(docs: list[dict[str, Any]]) -> list[EvaluationResult]:
            for doc in docs:
                if id(doc) not in parsed:
                    if "lag_ms" in doc:  # measured by a starved load generator (0: stall unknown): latencies may be over-stated
                        parsed[id(doc)] = None
                        continue
                    try:
                        parsed[id(doc)] = EvaluationResult.from_dict(doc)
                    except ValidationError as err:
                        parsed[id(doc)] = None
                        log.warning("skipping an unreadable evaluation in the history of %s: %s", placement, err)
            return [r for doc in docs if (r := parsed[id(doc)]) is not None]

        def enough(docs: list[dict[str, Any]]) -> bool:  # the baseline the SLO compares with is complete
            chosen = select_baseline(slo, comparison_history(results(docs)), project, stage, service)
            return len(chosen) >= slo.comparison.count

        previous = results(self.records.evaluations_back(project, stage, service, enough))
        policy = self.records.project(project).shipyard.stage(stage).inconclusive
        history = comparison_history(previous)
        subject = Subject(evaluation_id, project, stage, service, pending.start, pending.end, dict(run.labels))
        # an SLO judges the measurement: one the tests call unreliable leaves it unable to (without
        # objectives only the test result decides, and a starved generator only adds errors)
        unreliable = (pending.test_inconclusive,) if pending.test_inconclusive and slo.objectives else ()
        failed = pending.test_failed or force_fail
        result = evaluate(slo, values, history, failed, subject=subject, rules=policy.rules, unreliable=unreliable)
        robust = ""
        if unreliable and not failed and pending.test_lag_ms > 0:
            # A starved generator only over-states latencies, by at most its worst stall (docs/tests-format.md):
            # the true values lie between the measured ones and the measured ones lowered by the stall,
            # and a lower latency never worsens a verdict. When both ends give the same verdict, every
            # value between does: the verdict is the build's own, whatever the generator's delay.
            lowered = [replace(v, value=max(0.0, (v.value or 0.0) - pending.test_lag_ms)) if _latency(v) else v for v in values]
            if evaluate(slo, lowered, history, False, subject=subject, rules=policy.rules).result is result.result:
                result = evaluate(slo, values, history, False, subject=subject, rules=policy.rules)
                robust = (f"the load generator fell behind its schedule (worst stall {pending.test_lag_ms:g} ms), but "
                          f"the verdict is {result.result} with every latency as measured and lowered by that "
                          f"much: judged (this evaluation is no baseline for later ones)")
        notes = [m for m in (message, result.message, robust,
                             pending.test_message if pending.test_failed or pending.test_inconclusive else "") if m]
        now = self.now()
        repo, tag = split_image(run.image) if run.image else ("", "")
        details = {
            "timeStart": pending.start, "timeEnd": pending.end, "score": result.score, "result": result.result.value,
            "sloFileContent": base64.b64encode(pending.slo.encode()).decode(),
            "indicatorResults": result.to_keptn_indicator_results(), "evaluationId": evaluation_id,
            "sluice": result.to_dict(),
            "sluiceRecord": {
                "context": event.shkeptncontext, "image": join_image(repo, tag), "time": now,
                "sli_provider": pending.provider, "notes": notes,
                **({"lag_ms": pending.test_lag_ms} if unreliable else {}),
            },
        }
        payload = EvaluationDone(
            project=project, stage=stage, service=service, result=result.result, evaluationdetails=details,
            image=repo, tag=tag, teststrategy=pending.teststrategy, deploymentstrategy=pending.deploymentstrategy,
            message="; ".join(notes), labels=dict(run.labels),
        )
        reply = event.reply(payload, source=self.source, time=now)
        verdict = Judgement(
            result.result, result.score, evaluation_id, result.inconclusive,
            tuple(r.message for r in result.inconclusive_reasons),
            any(r.kind is InconclusiveKind.UNRELIABLE_MEASUREMENT for r in result.inconclusive_reasons),
        )

        def effect(lane: Lane, run: Run) -> tuple[Lane, list[dict[str, Any]]]:
            moved = enter(run, Phase.EVALUATED, now, HANDOFF_S, verdict=verdict, evaluation=None)
            return lane.put(moved), [reply.to_json_dict()]

        advanced = self.ledger.advance(placement, run.context, Transition.EVALUATED, effect)
        self._remember_evaluation(placement, advanced.replies)
        return advanced.events()

    def _remember_evaluation(self, placement: Placement, replies: list[dict[str, Any]]) -> None:
        """Add the evaluation an ``evaluated`` transition stored to the history (once, by id)."""
        for reply in replies:
            details = (reply.get("data") or {}).get("evaluationdetails") or {}
            if "sluice" not in details:
                continue
            slo = base64.b64decode(details.get("sloFileContent") or "").decode()
            entry = {**details["sluice"], **details.get("sluiceRecord", {}), "slo_file": slo}
            self.records.append_evaluation(placement.project, placement.stage, placement.service, entry)

