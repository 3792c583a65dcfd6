"""The evaluate service (Keptn's lighthouse): tests-finished / start-evaluation → get-sli;
get-sli.done → score against the history → evaluation-done; a PingSource tick fails
evaluations whose SLI provider did not answer in time.

Per project/stage/service, the ``pending`` record keeps each delivery's evaluation: waiting
(with its deadline and the SLO text it asked with) or finished (with the reply to repeat for a
duplicate delivery).
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sluice.core.events import (
    EvaluationDone,
    Event,
    GetSli,
    GetSliDone,
    Ping,
    Result,
    StartEvaluation,
    TestsFinished,
)
from sluice.core.scoring import EvaluationResult, Measurement, evaluate
from sluice.core.slo import Slo, parse_slo
from sluice.core.validation import join_image
from sluice.errors import ValidationError
from sluice.services.documents import load_slo
from sluice.services.records import KIND, Records

log = logging.getLogger("sluice.evaluate")

#: Finished entries kept in a pending record (to answer duplicates the same way).
FINISHED_LIMIT = 32
NO_SLO = parse_slo({"objectives": [], "total_score": {"pass": "90%", "warning": "75%"}}, "no slo.yaml")


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
        self.now = now
        self.source = source
        self.default_provider = default_provider
        self.sli_timeout_s = sli_timeout_s

    def handle(self, event: Event) -> list[Event]:
        if isinstance(event.data, TestsFinished | StartEvaluation):
            return self._start(event)
        if isinstance(event.data, GetSliDone):
            return self._score(event, event.data)
        if isinstance(event.data, Ping):
            return self._expire()
        return []

    # --- start -------------------------------------------------------------------------------
    def _start(self, event: Event) -> list[Event]:
        data = event.data
        assert isinstance(data, TestsFinished | StartEvaluation)
        info: dict[str, Any] = {
            "project": data.project, "stage": data.stage, "service": data.service,
            "start": data.start, "end": data.end, "labels": dict(data.labels),
            "image": getattr(data, "image", ""), "tag": getattr(data, "tag", ""),
            "teststrategy": getattr(data, "teststrategy", ""),
            "deploymentstrategy": getattr(data, "deploymentstrategy", ""),
            "test_failed": isinstance(data, TestsFinished) and data.result == Result.FAIL.value,
            "test_message": getattr(data, "message", "") if isinstance(data, TestsFinished) else "",
        }
        name, labels = self.records.scoped("pending", data.project, data.stage, data.service)
        known = self.records.read_json(name, "pending", {}).get(event.shkeptncontext)
        if known is not None and known.get("state") == "finished":
            return [Event.from_json_dict(known["reply"])]
        slo_text = self.records.resource(data.project, data.stage, data.service, "slo.yaml")
        if slo_text is None:
            message = (
                f"no SLO found for {data.service} in {data.stage} (add one with "
                f"'sluice add-resource --resource slo.yaml --resourceUri slo.yaml'): the test result decides"
            )
            return self._finish(event, info, NO_SLO, "", [], message, provider="")
        try:
            slo = load_slo(slo_text, f"slo.yaml of {data.service} in {data.project}/{data.stage}")
        except ValidationError as err:
            return self._finish(event, info, NO_SLO, slo_text, [], f"the SLO is not valid: {err}", provider="", force_fail=True)
        provider = self.records.project_setting(data.project, "sli-provider") or self.default_provider or "builtin"
        deadline = datetime.fromisoformat(self.now()) + timedelta(seconds=self.sli_timeout_s)
        request = GetSli(
            project=data.project, stage=data.stage, service=data.service, sliProvider=provider,
            start=data.start, end=data.end, indicators=list(dict.fromkeys(o.sli for o in slo.objectives)),
            customFilters=[{"key": k, "value": v} for k, v in slo.filter.items()],
            deployment="canary" if info["deploymentstrategy"] == "blue_green_service" else "direct",
            image=info["image"], tag=info["tag"], teststrategy=info["teststrategy"],
            deploymentstrategy=info["deploymentstrategy"], labels=info["labels"],
        )
        reply = event.reply(request, source=self.source, time=self.now())
        waiting = {
            **info, "state": "waiting", "slo": slo_text, "provider": provider,
            "deadline": deadline.isoformat(), "request_id": reply.id,
        }

        def wait(pending: dict[str, Any]) -> dict[str, Any]:
            return pending.setdefault(event.shkeptncontext, waiting)

        entry = self.records.update_json(name, "pending", {}, labels, wait)
        if entry.get("state") == "finished":
            return [Event.from_json_dict(entry["reply"])]
        return [reply]

    # --- score -------------------------------------------------------------------------------
    def _score(self, event: Event, done: GetSliDone) -> list[Event]:
        name, _ = self.records.scoped("pending", done.project, done.stage, done.service)
        entry = self.records.read_json(name, "pending", {}).get(event.shkeptncontext)
        if entry is None:
            log.warning("get-sli.done %s for %s: no evaluation waits for it", event.id, event.shkeptncontext)
            return []
        if entry.get("state") == "finished":
            return [Event.from_json_dict(entry["reply"])]
        slo = load_slo(entry["slo"], "slo.yaml")
        values = [
            Measurement(
                name=str(v.get("metric", "")),
                value=v.get("value") if isinstance(v.get("value"), int | float) else None,
                success=bool(v.get("success", True)),
                message=str(v.get("message", "")),
            )
            for v in done.indicatorValues
            if isinstance(v, Mapping)
        ]
        message = done.message
        return self._finish(event, entry, slo, entry["slo"], values, message, provider=entry.get("provider", ""))

    # --- expire ------------------------------------------------------------------------------
    def _expire(self) -> list[Event]:
        now = datetime.fromisoformat(self.now())
        replies: list[Event] = []
        for record in self.records.store.list({KIND: "pending"}):
            for context, entry in self.records.read_json(record.name, "pending", {}).items():
                if entry.get("state") != "waiting" or datetime.fromisoformat(entry["deadline"]) > now:
                    continue
                slo = load_slo(entry["slo"], "slo.yaml")
                provider = entry.get("provider", "?")
                reason = f"no answer from SLI provider {provider!r} within {self.sli_timeout_s:g} s"
                values = [Measurement(o.sli, None, False, reason) for o in slo.objectives]
                cause = Event(
                    type=Ping.TYPE, data=Ping(), source=self.source, id=f"{entry['request_id']}-timeout",
                    time=self.now(), shkeptncontext=context, triggeredid=entry["request_id"],
                )
                replies.extend(self._finish(cause, entry, slo, entry["slo"], values, reason, provider, force_fail=True))
        return replies

    # --- finish ------------------------------------------------------------------------------
    def _finish(
        self, event: Event, info: Mapping[str, Any], slo: Slo, slo_text: str, values: list[Measurement],
        message: str, provider: str, force_fail: bool = False,
    ) -> list[Event]:
        project, stage, service = info["project"], info["stage"], info["service"]
        evaluation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event.source}#{event.id}#evaluation"))
        previous = []
        for doc in self.records.evaluations(project, stage, service):
            try:
                previous.append(EvaluationResult.from_dict(doc))
            except ValidationError as err:
                log.warning("skipping an unreadable evaluation in the history of %s/%s/%s: %s", project, stage, service, err)
        test_failed = bool(info.get("test_failed")) or force_fail
        result = evaluate(
            slo, values, previous, test_failed, evaluation_id=evaluation_id, project=project, stage=stage,
            service=service, start=info["start"], end=info["end"], labels=info.get("labels") or {},
        )
        notes = [m for m in (message, result.message, info.get("test_message") if info.get("test_failed") else "") if m]
        image = join_image(info.get("image", ""), info.get("tag", ""))
        record = {
            **result.to_dict(), "context": event.shkeptncontext, "image": image, "time": self.now(),
            "sli_provider": provider, "notes": notes, "slo_file": slo_text,
        }
        self.records.append_evaluation(project, stage, service, record)
        details = {
            "timeStart": info["start"], "timeEnd": info["end"], "score": result.score, "result": result.result.value,
            "sloFileContent": base64.b64encode(slo_text.encode()).decode(),
            "indicatorResults": result.to_keptn_indicator_results(), "evaluationId": evaluation_id,
            "sluice": result.to_dict(),
        }
        payload = EvaluationDone(
            project=project, stage=stage, service=service, result=result.result.value, evaluationdetails=details,
            image=info.get("image", ""), tag=info.get("tag", ""), teststrategy=info.get("teststrategy", ""),
            deploymentstrategy=info.get("deploymentstrategy", ""), message="; ".join(notes), labels=info.get("labels") or {},
        )
        reply = event.reply(payload, source=self.source, time=self.now())
        name, labels = self.records.scoped("pending", project, stage, service)
        finished = {"state": "finished", "reply": reply.to_json_dict()}

        def close(pending: dict[str, Any]) -> None:
            pending[event.shkeptncontext] = finished
            done = [k for k, v in pending.items() if v.get("state") == "finished"]
            for old in done[:-FINISHED_LIMIT]:
                del pending[old]

        self.records.update_json(name, "pending", {}, labels, close)
        return [reply]
