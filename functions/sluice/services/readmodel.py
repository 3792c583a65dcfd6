"""The read-model: one view of Sluice's state for the CLI and the web view alike.

Plain dicts (JSON-ready), built from the records; no second source of truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sluice.core.ledger import Lane, Phase, Run
from sluice.ports.backend import Placement
from sluice.services.ledger import Ledger
from sluice.services.records import Records


@cache
def _verbs() -> dict[str, str]:
    """A short verb per event type, for timelines."""
    from sluice.core.events import EventType  # cold start: only a timeline names events

    return {
        EventType.CONFIGURATION_CHANGE.value: "configuration change",
        EventType.DEPLOYMENT_FINISHED.value: "deployed",
        EventType.TESTS_FINISHED.value: "tests finished",
        EventType.START_EVALUATION.value: "evaluation requested",
        EventType.GET_SLI.value: "SLIs requested",
        EventType.GET_SLI_DONE.value: "SLIs fetched",
        EventType.EVALUATION_DONE.value: "evaluated",
        EventType.APPROVAL_TRIGGERED.value: "waiting for approval",
        EventType.APPROVAL_FINISHED.value: "approval",
        EventType.APPROVAL_REJECTED.value: "approval rejected",
        EventType.DONE.value: "done",
    }


def _run_view(run: Run) -> dict[str, Any]:
    return {"context": run.context, "image": run.image, "phase": run.phase.value, "since": run.since,
            "deadline": run.deadline}


def _steps_view(run: Run) -> dict[str, Any]:
    assert run.canary is not None
    state = run.canary
    return {
        "step": state.step + 1, "weight": state.weight, "started": state.started, "phase": run.phase.value,
        "since": run.since, "outcome": run.outcome.value if run.outcome else "", "stopped": state.stopped,
        "history": [{"step": h.step + 1, "weight": h.weight, "started": h.started, "ended": h.ended, "result": h.result,
                     "score": h.score} for h in state.history],
    }


def canary_view(lane: Lane, steps: tuple[int, ...]) -> dict[str, Any] | None:
    """The canary of the delivery holding the stage (else of the last one that had one): its
    step, weight, the judged steps (the weights over time) and why it stopped."""
    run = lane.active if lane.active is not None and lane.active.canary is not None else next(
        (r for r in reversed(lane.finished) if r.canary is not None), None)
    if run is None or run.canary is None:
        return None
    state = run.canary
    return {
        "context": run.context, "image": run.image, "active": run is lane.active, "phase": run.phase.value,
        "step": state.step + 1, "steps": list(steps), "weight": state.weight, "started": state.started,
        "stopped": state.stopped, "outcome": run.outcome.value if run.outcome else "",
        "history": [
            {"step": h.step + 1, "weight": h.weight, "attempt": h.attempt, "started": h.started, "ended": h.ended,
             "result": h.result, "score": h.score, "evaluation_id": h.evaluation_id, "reason": h.reason}
            for h in state.history
        ],
    }


def last_evaluation_summary(evaluation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not evaluation:
        return None
    return {
        "id": evaluation.get("id"),
        "result": evaluation.get("result"),
        "score": evaluation.get("score"),
        "image": evaluation.get("image", ""),
        "context": evaluation.get("context", ""),
        "time": evaluation.get("time", ""),
        "notes": evaluation.get("notes", []),
        "inconclusive": bool(evaluation.get("inconclusive", False)),
        "inconclusive_reasons": evaluation.get("inconclusive_reasons", []),
        "indicators": [
            {
                "name": i.get("name"),
                "value": i.get("value"),
                "status": i.get("status"),
                "score": i.get("score"),
                "targets": i.get("targets", []),
                "message": i.get("message", ""),
            }
            for i in evaluation.get("indicators", [])
        ],
    }


def project_status(records: Records, project: str) -> dict[str, Any]:
    """Stages × services: primary, candidate, traffic, the delivery holding the stage (with its
    phase and deadline), the queue, held approvals and the last evaluation."""
    info = records.project(project)
    ledger = Ledger(records)
    stages = []
    for stage in info.shipyard.stages:
        services = []
        for service in info.services:
            lane: Lane = ledger.head(Placement(project, stage.name, service))  # no finished history parsed
            state = lane.serving
            last = records.last_evaluation(project, stage.name, service)
            active = lane.active
            held = [r for r in (active,) if r is not None and r.phase is Phase.HELD and r.hold is not None]
            weight = state.canary_weight if state.split else 0
            traffic = ({"primary": 100 - weight, "canary": weight} if state.split else {"direct": 100}) if state.updated else {}
            services.append(
                {
                    "name": service,
                    "primary": {"image": state.primary_image, "url": state.primary_url} if state.primary_image else None,
                    "candidate": {"image": state.candidate_image, "url": state.candidate_url}
                    if state.split and state.candidate_image else None,
                    "traffic": traffic,
                    "last_good_image": state.last_good_image,
                    "public_url": state.public_url,
                    "active_delivery": _run_view(active) if active is not None else None,
                    "queued": [{"context": q.context, "image": q.image, "since": q.queued_at} for q in lane.queue],
                    "waiting_for_approval": [
                        {"context": r.context, "image": r.image, "result": r.hold.result, "since": r.hold.held_at,
                         "deadline": r.deadline, "on_timeout": r.hold.on_timeout.value}
                        for r in held if r.hold is not None
                    ],
                    "last_decision": next(
                        ({"context": r.context, "decision": r.hold.decision.value, "by": r.hold.by, "reason": r.hold.reason,
                          "at": r.hold.decided_at}
                         for r in reversed((*lane.finished, *((active,) if active else ())))
                         if r.hold is not None and r.hold.decision is not None),
                        None,
                    ),
                    "last_evaluation": last_evaluation_summary(last),
                    "canary": canary_view(lane, stage.canary.steps if stage.canary is not None else ()),
                }
            )
        stages.append({**stage.to_dict(), "services": services})
    return {"project": project, "stages": stages}


def describe(event: Mapping[str, Any]) -> str:
    """One line saying what an event did, in plain words."""
    from sluice.core.events import EventType  # cold start: only a timeline describes events

    etype = str(event.get("type", ""))
    data = event.get("data") or {}
    stage = data.get("stage", "")
    where = f" in {stage}" if stage else ""
    if etype == EventType.CONFIGURATION_CHANGE.value:
        action = (data.get("canary") or {}).get("action", "set")
        image = (data.get("valuesCanary") or {}).get("image", "")
        by = f" (approved by {data['approver']})" if data.get("approver") else ""
        if action == "promote":
            return f"promote {image}{where}{by}"
        if action == "discard":
            return f"roll back{where}: discard {image}{by}"
        if stage and data.get("labels", {}).get("sluice.sh/attempt") and (data.get("canary") or {}).get("value", 100) < 100:
            return f"canary step{where}: {image} gets {data['canary']['value']} % of the traffic"
        return f"deploy {image}{where or ' (first stage)'}"
    if etype == EventType.DEPLOYMENT_FINISHED.value:
        if data.get("result") == "fail":
            return f"deployment FAILED{where}: {data.get('message', '')}"
        return f"deployed {data.get('image', '')}:{data.get('tag', '')}{where} ({data.get('deploymentstrategy', '')}) at {data.get('deploymentURILocal', '')}"
    if etype == EventType.TESTS_FINISHED.value:
        return f"{data.get('teststrategy') or 'no'} tests {data.get('result', '')}{where}" + (
            f": {data['message']}" if data.get("message") else ""
        )
    if etype == EventType.GET_SLI.value:
        return f"SLIs {', '.join(data.get('indicators', []))} requested from {data.get('sliProvider', '')}{where}"
    if etype == EventType.GET_SLI_DONE.value:
        parts = []
        for v in data.get("indicatorValues", []):
            value = v.get("value")
            parts.append(f"{v.get('metric')}={value:.1f}" if isinstance(value, int | float) else f"{v.get('metric')}=n/a")
        return f"SLIs{where}: " + ", ".join(parts)
    if etype == EventType.EVALUATION_DONE.value:
        details = data.get("evaluationdetails") or {}
        failing = [
            (r.get("value") or {}).get("metric", "")
            for r in details.get("indicatorResults", [])
            if r.get("status") in ("fail", "error")
        ]
        extra = f" (failing: {', '.join(failing)})" if failing else ""
        return f"evaluation {str(data.get('result', '')).upper()}{where}, score {details.get('score', '?')}{extra}"
    if etype == EventType.APPROVAL_TRIGGERED.value:
        return f"waiting for approval{where}: {data.get('image', '')}"
    if etype == EventType.APPROVAL_FINISHED.value:
        who = f" by {event['sluiceapprover']}" if event.get("sluiceapprover") else " (unsigned)"
        return f"approval{where}: {(data.get('approval') or {}).get('decision', '')}{who}"
    if etype == EventType.APPROVAL_REJECTED.value:
        return f"approval REJECTED{where}, nothing changed: {data.get('reason', '')}"
    if etype == EventType.DONE.value:
        return f"{str(data.get('outcome', '')).replace('_', ' ').upper()}{where}: {data.get('message', '')}"
    return _verbs().get(etype, etype)


def delivery(records: Records, context: str) -> dict[str, Any]:
    """One delivery: its events in order with a plain-words line each, and a chip per stage."""
    from sluice.core.events import EventType  # cold start: only a delivery's page reads events

    events = records.events(context)
    first = events[0] if events else {}
    data = first.get("data") or {}
    stages: dict[str, dict[str, Any]] = {}
    for event in events:
        d = event.get("data") or {}
        stage = d.get("stage")
        if not stage:
            continue
        chip = stages.setdefault(stage, {"stage": stage, "status": "running", "outcome": ""})
        if event.get("type") == EventType.EVALUATION_DONE.value:
            chip["status"] = d.get("result", "")
            chip["score"] = (d.get("evaluationdetails") or {}).get("score")
        elif event.get("type") == EventType.DONE.value:
            chip["outcome"] = d.get("outcome", "")
            if d.get("outcome") in ("rolled_back", "failed", "stopped", "declined"):
                chip["status"] = "fail" if chip["status"] in ("running", "pass") else chip["status"]
        elif event.get("type") == EventType.APPROVAL_TRIGGERED.value:
            chip["status"] = "waiting"
    image = (data.get("valuesCanary") or {}).get("image", "")
    canary: dict[str, Any] = {}
    for event in events:  # the canary stages this delivery reached: their steps, from the ledger (one read each)
        d = event.get("data") or {}
        if event.get("type") == EventType.DEPLOYMENT_FINISHED.value and d.get("deploymentstrategy") == "canary":
            stage = str(d.get("stage", ""))
            if stage in canary or not d.get("project") or not d.get("service"):
                continue
            run = Ledger(records).lane_run(Placement(d["project"], stage, d["service"]), context)
            if run is not None and run.canary is not None:
                canary[stage] = _steps_view(run)
    return {
        "canary": canary,
        "context": context,
        "project": data.get("project", ""),
        "service": data.get("service", ""),
        "image": image,
        "started": first.get("time", ""),
        "stages": list(stages.values()),
        "events": [{**e, "summary": describe(e)} for e in events],
    }


def deliveries(records: Records, project: str, service: str = "", limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """The newest ``limit`` deliveries of a project (or one service) after skipping the ``offset``
    newest, newest first, without their event lists: the index's head (and the sealed chunks shown) and ``limit`` logs, whatever the length of history."""
    return delivery_page(records, project, service, limit, offset)[0]


def delivery_page(records: Records, project: str, service: str, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """``deliveries`` and how many deliveries the index holds in all (for page links)."""
    chosen, total = records.context_page(project, service, limit, offset)
    out = []
    for context in chosen:
        d = delivery(records, context)
        d.pop("events")
        out.append(d)
    return sorted(out, key=lambda d: d["started"], reverse=True), total


def evaluations(records: Records, project: str, stage: str, service: str) -> list[dict[str, Any]]:
    """Evaluation history, newest first (full records: indicators, targets, comparison): every
    stored one (at most ``HISTORY_LIMIT``); a page reads fewer (``evaluation_page``)."""
    return list(reversed(records.evaluations(project, stage, service)))


def evaluation_page(records: Records, project: str, stage: str, service: str, limit: int,
                    offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The ``limit`` newest evaluations after the ``offset`` newest, newest first, and how many
    are stored: the history's head and the chunks shown, whatever the length of history."""
    return records.evaluation_page(project, stage, service, limit, offset)


def evaluation(records: Records, project: str, stage: str, service: str, evaluation_id: str) -> dict[str, Any] | None:
    """One evaluation (at most two records read), or None."""
    return records.evaluation(project, stage, service, evaluation_id)[0]
