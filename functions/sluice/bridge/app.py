"""The web view's routes: HTML pages and a JSON API over the shared read-model.

Framework-free: ``Bridge.handle(method, path, query, form)`` returns ``(body, status, headers)``,
so the ``bridge`` function (functions-framework) and tests call the same code. Actions (approve,
decline) send the same CloudEvent the CLI sends; nothing here writes the store. The what-if replay
(``POST /history/<p>/<stage>/<svc>/replay`` with an SLO in ``slo`` or an uploaded ``slo_file``)
only reads: a POST because an SLO is too big for a URL and does not belong in access logs.
A page or record that does not exist is 404 (a web resource, never behind a broker); every other
error is answered with ``sluice.errors.status_for``'s status, as at every HTTP entry point.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sluice.bridge import guard, views
from sluice.core.validation import whole_number_problem
from sluice.errors import NotFoundError, SluiceError, ValidationError, status_for
from sluice.services import readmodel
from sluice.services.records import HISTORY_HEAD, Records

if TYPE_CHECKING:
    from sluice.core.events import ApprovalFinished, Event

Response = tuple[str | bytes, int, dict[str, str]]
HTML = {"Content-Type": "text/html; charset=utf-8"}
JSON = {"Content-Type": "application/json"}
#: Seconds between refreshes of a page that shows a delivery in flight.
REFRESH_S = 3
#: Deliveries listed under the stages of a project page (all of them: the service's page).
RECENT = 10
#: Evaluations on a page of the history (and the API's default): the newest page is in the
#: history's head record (``Records.evaluation_page``).
HISTORY_PAGE = HISTORY_HEAD
#: Longest path part accepted (names are DNS labels; ids and contexts are UUIDs).
MAX_PART = 253
#: What a base path (``X-Forwarded-Prefix``) may look like: never ``//host`` (an open redirect).
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")


def _within(number: int, total: int, per_page: int, what: str) -> tuple[int, int]:
    """(this page, pages in all); a page past the last one does not exist (404 naming it)."""
    pages = max(1, -(-total // per_page))
    if number > pages:
        raise NotFoundError(f"no page {number}: {total} {what} stored, {pages} page(s) of {per_page}")
    return number, pages


def _number(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as a whole number in [low, high]; ``ValidationError`` (400) names it otherwise."""
    text = query.get(name, "")
    if not text:
        return default
    problem = whole_number_problem(text, low, high)
    if problem:
        raise ValidationError(f"query parameter {name}", [problem])
    return int(text)


def _running(view: Mapping[str, Any]) -> bool:
    return any(
        svc.get("active_delivery") or svc.get("queued") for stage in view.get("stages", []) for svc in stage["services"]
    )


def _in_flight(stages: list[Mapping[str, Any]]) -> bool:
    """Whether a delivery still runs or waits in one of its stages."""
    return any(s["status"] in ("running", "waiting") for s in stages)


class Bridge:
    def __init__(
        self,
        records: Records,
        publish: Callable[[Event], None],
        base: str = "",
        auth: guard.Auth | None = None,
        sign: Callable[[Event, str], Event] | None = None,
    ) -> None:
        self.records = records
        self.publish = publish
        self.base = base.rstrip("/") if _PREFIX.fullmatch(base.rstrip("/")) else ""
        self.auth = auth or guard.Auth()
        #: Signs an approval for a user with the project's approver key (None: nobody can approve here).
        self.sign = sign

    def handle(
        self, method: str, path: str, query: Mapping[str, str], form: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Answer one request; every answer carries the security headers, every page's forms the
        CSRF token (whose cookie is set when the request had none)."""
        request_headers = guard.lower(headers)
        token, new = guard.csrf_token(request_headers)
        body, status, out = self._route(method, path, query, form, request_headers)
        out = {**out, **guard.SECURITY_HEADERS}
        if isinstance(body, str) and out.get("Content-Type", "").startswith("text/html"):
            body = guard.with_csrf_fields(body, token)
            if new:
                out["Set-Cookie"] = guard.csrf_cookie(token)
        return body, status, out

    def _route(
        self, method: str, path: str, query: Mapping[str, str], form: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        api = bool(parts) and parts[0] == "api"
        try:
            if any(len(p) > MAX_PART or "\x00" in p for p in parts):
                raise ValidationError("path", [f"each part at most {MAX_PART} characters, without NUL"])
            if method == "POST" and parts in (["approve"], ["api", "approve"]):
                return self._approve(form, api, headers)
            if method == "POST" and len(parts) == 5 and parts[0] == "history" and parts[4] == "replay":
                if (problem := guard.origin_problem(headers, bearer=False)) or (problem := guard.csrf_problem(headers, form)):
                    return self._error(False, 403, "Forbidden", problem)
                return self._replay(parts[1], parts[2], parts[3], form)
            if method not in ("GET", "HEAD"):
                return "method not allowed", 405, {"Content-Type": "text/plain"}
            if parts == ["metrics"]:
                return self._prometheus()
            if parts and parts[0] in ("assets", "static"):
                return self._static(parts[1:])
            return self._api(parts[1:], query) if api else self._page(parts, query)
        except NotFoundError as err:
            return self._error(api, 404, "Not found", str(err))
        except ValidationError as err:
            return self._error(api, status_for(err), "Bad request", str(err))
        except SluiceError as err:  # the store's temporary (503) or configuration (422) errors
            return self._error(api, status_for(err), "Unavailable" if status_for(err) >= 500 else "Cannot serve this", str(err))

    def _error(self, api: bool, status: int, title: str, text: str) -> Response:
        if api:
            return json.dumps({"error": text}), status, JSON
        return views.message_page(self.base, title, text, "fail"), status, HTML

    # --- pages -------------------------------------------------------------------------------
    def _page(self, parts: list[str], query: Mapping[str, str]) -> Response:
        b = self.base
        match parts:
            case []:
                return views.projects_page(b, self.records.projects()), 200, HTML
            case ["project", project]:
                view = readmodel.project_status(self.records, project)
                recent = readmodel.deliveries(self.records, project, limit=RECENT)
                return views.project_page(b, view, REFRESH_S if _running(view) else 0, recent), 200, HTML
            case ["project", project, "service", service]:
                self.records.require_service(project, service)
                number = _number(query, "page", 1, 1, 10_000)
                items, total = readmodel.delivery_page(self.records, project, service, RECENT, (number - 1) * RECENT)
                running = number == 1 and bool(items) and _in_flight(items[0]["stages"])
                queued = views.queued_contexts(readmodel.project_status(self.records, project))
                metrics = self._metrics_section(project, service)
                pages = _within(number, total, RECENT, "deliveries")
                return views.deliveries_page(b, project, service, items, REFRESH_S if running else 0, queued, metrics,
                                             pages), 200, HTML
            case ["delivery", context]:
                d = readmodel.delivery(self.records, context)
                if not d["events"]:
                    raise NotFoundError(f"no delivery {context}")
                return views.delivery_page(b, d, REFRESH_S if _in_flight(d["stages"]) else 0), 200, HTML
            case ["evaluation", project, stage, service, evaluation_id]:
                # at most two reads: the history's head and the chunk holding it (their images label the links)
                ev, seen = self.records.evaluation(project, stage, service, evaluation_id)
                if ev is None:
                    raise NotFoundError(f"no evaluation {evaluation_id} of {service} in {project}/{stage}")
                return views.evaluation_page(b, project, stage, service, ev, seen), 200, HTML
            case ["history", project, stage, service]:
                self.records.require_service(project, service)
                number = _number(query, "page", 1, 1, 10_000)
                history, total = readmodel.evaluation_page(self.records, project, stage, service, HISTORY_PAGE,
                                                           (number - 1) * HISTORY_PAGE)
                pages = _within(number, total, HISTORY_PAGE, "evaluations")
                return views.history_page(b, project, stage, service, history, 0, pages=pages), 200, HTML
        raise NotFoundError(f"no page at /{'/'.join(parts)}")

    # --- delivery metrics (sluice.services.insight) -----------------------------------------
    def _metrics_section(self, project: str, service: str) -> str:
        from datetime import timedelta

        from sluice.bridge.insight_view import METRICS_DAYS, metrics_section
        from sluice.services.insight import delivery_metrics

        m = delivery_metrics(self.records, project, service, timedelta(days=METRICS_DAYS), datetime.now(UTC))
        return metrics_section(m, f"{METRICS_DAYS} days")

    def _prometheus(self) -> Response:
        from sluice.bridge.prometheus import CONTENT_TYPE, exposition  # prometheus-client: only when scraped

        return exposition(self.records), 200, {"Content-Type": CONTENT_TYPE}

    # --- JSON API ----------------------------------------------------------------------------
    def _api(self, parts: list[str], query: Mapping[str, str]) -> Response:
        match parts:
            case ["projects"]:
                data: Any = self.records.projects()
            case ["projects", project]:
                data = readmodel.project_status(self.records, project)
            case ["projects", project, "services", service, "deliveries"]:
                data = readmodel.deliveries(self.records, project, service, _number(query, "limit", RECENT, 1, 100),
                                            _number(query, "offset", 0, 0, 100_000))
            case ["deliveries", context]:
                data = readmodel.delivery(self.records, context)
                if not data["events"]:
                    raise NotFoundError(f"no delivery {context}")
            case ["projects", project, "stages", stage, "services", service, "evaluations"]:
                data = readmodel.evaluation_page(self.records, project, stage, service,
                                                 _number(query, "limit", HISTORY_PAGE, 1, 100),
                                                 _number(query, "offset", 0, 0, 100_000))[0]
            case ["projects", project, "stages", stage, "services", service, "evaluations", evaluation_id]:
                data = readmodel.evaluation(self.records, project, stage, service, evaluation_id)
                if data is None:
                    raise NotFoundError(f"no evaluation {evaluation_id}")
            case _:
                raise NotFoundError(f"no API at /api/{'/'.join(parts)}")
        return json.dumps(data, default=str), 200, JSON

    # --- actions -----------------------------------------------------------------------------
    def _approve(self, form: Mapping[str, str], api: bool, headers: Mapping[str, str]) -> Response:
        bearer = self.auth.bearer(headers) is not None
        if problem := guard.origin_problem(headers, bearer=bearer):
            return self._error(api, 403, "Forbidden", problem)
        if not bearer and (problem := guard.csrf_problem(headers, form)):
            return self._error(api, 403, "Forbidden", problem)
        user, why = self.auth.identify(headers)
        if user is None or self.sign is None:
            return self._error(api, 401, "Sign in to approve", why or "this web view cannot sign approvals")
        missing = [k for k in ("project", "stage", "service", "context", "decision") if not form.get(k)]
        if missing:
            raise ValidationError("approval", [f"{', '.join(missing)} required"])
        from sluice.core.events import ApprovalFinished, Event  # cold start: only an approval makes one

        payload = ApprovalFinished.from_dict(
            {"project": form["project"], "stage": form["stage"], "service": form["service"],
             "approval": {"decision": form["decision"]}},
            "approval",
        )
        self._require_waiting(payload, form["context"])
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        event = Event.new(payload, source="sluice/bridge", id=str(uuid.uuid4()), time=now, context=form["context"])
        self.publish(self.sign(event, user))
        if api:
            return json.dumps({"sent": event.id, "shkeptncontext": event.shkeptncontext}), 202, JSON
        location = f"{self.base}/project/{form['project']}"
        return "", 303, {"Location": location}

    def _require_waiting(self, approval: ApprovalFinished, context: str) -> None:
        """NotFoundError unless delivery ``context`` waits for approval of that service in that stage."""
        view = readmodel.project_status(self.records, approval.project)  # NotFoundError: no such project
        stage = next((s for s in view.get("stages", []) if s.get("name") == approval.stage), None)
        if stage is None:
            raise NotFoundError(f"project {approval.project} has no stage {approval.stage}")
        svc = next((s for s in stage["services"] if s.get("name") == approval.service), None)
        if svc is None:
            raise NotFoundError(f"no service {approval.service} in project {approval.project}")
        if not any(w.get("context") == context for w in svc.get("waiting_for_approval") or []):
            raise NotFoundError(
                f"no delivery {context[:80]} waits for approval of {approval.service} in {approval.stage}"
            )

    def _replay(self, project: str, stage: str, service: str, form: Mapping[str, str]) -> Response:
        """The history page recoloured under a pasted or uploaded SLO (nothing is written)."""
        from sluice.services.documents import load_slo  # YAML: only this route pays for it
        from sluice.services.replay import replay_history

        self.records.require_service(project, service)
        history = readmodel.evaluations(self.records, project, stage, service)
        text = form.get("slo_file") or form.get("slo") or ""

        def problem(status: int, message: str) -> Response:
            page = views.history_page(self.base, project, stage, service, history, 0, slo_text=text[: views.REPLAY_SLO_LIMIT],
                                      problem=message)
            return page, status, HTML

        if len(text.encode("utf-8")) > views.REPLAY_SLO_LIMIT:
            return problem(413, f"slo: the SLO is larger than {views.REPLAY_SLO_LIMIT // 1024} KiB")
        if not text.strip():
            return problem(400, "slo: paste an SLO (slo.yaml) or choose a file to replay the history under")
        try:
            slo = load_slo(text, "the pasted SLO")
            report, _skipped = replay_history(self.records, project, stage, service, slo, include_archive=False)
        except ValidationError as err:
            return problem(400, str(err))
        body = views.history_page(self.base, project, stage, service, history, 0, replay=report.to_dict(), slo_text=text)
        return body, 200, HTML

    def _static(self, parts: list[str]) -> Response:
        # Served under /assets/: functions-framework's Flask app claims /static/ for itself (its
        # own, empty static folder answers 404), so a link to /static/ never reaches the bridge.
        if parts != ["sluice.css"]:
            raise NotFoundError("no such asset")
        css = resources.files("sluice.bridge").joinpath("static/sluice.css").read_text(encoding="utf-8")
        return css, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=300"}
