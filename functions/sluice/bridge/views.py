"""HTML for the web view, rendered on the server from the read-model's dicts.

Everything shown is escaped (image names, messages and SLI names come from outside). No
script is needed to read a page; pages with a delivery in flight refresh themselves. Charts are
server-rendered SVG: one small chart per SLI with its own axis, a point per evaluation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

STATUS_CLASSES = {"pass": "pass", "warning": "warning", "fail": "fail", "error": "error", "info": "info",
                  "inconclusive": "inconclusive",
                  "waiting": "waiting", "running": "running", "queued": "queued", "promoted": "pass",
                  "rolled_back": "fail", "failed": "fail", "declined": "fail", "stopped": "fail", "superseded": "info"}
#: What a stage's part of a delivery ended in, in plain words.
OUTCOMES = {"promoted": "promoted", "rolled_back": "rolled back", "failed": "failed", "declined": "declined",
            "stopped": "stopped", "superseded": "superseded"}
_PALETTE = {"pass": "#2f855a", "warning": "#dd6b20", "fail": "#c53030", "error": "#6b46c1", "info": "#718096"}
#: Most bytes of an SLO pasted or uploaded for a what-if replay.
REPLAY_SLO_LIMIT = 64 * 1024


def inconclusive_chip(ev: Mapping[str, Any] | None) -> str:
    """The "inconclusive" chip (own colour), titled with the reasons; empty when the gate could judge."""
    if not ev or not ev.get("inconclusive"):
        return ""
    reasons = [str(r.get("message", "")) for r in ev.get("inconclusive_reasons") or [] if isinstance(r, Mapping)]
    return chip("inconclusive", "inconclusive", "the gate could not judge: " + "; ".join(reasons))


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def u(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def link(base: str, parts: Sequence[str], text: object, title: str = "", cls: str = "") -> str:
    """A link to the page at ``parts`` under ``base``, its text escaped."""
    attrs = (f' class="{e(cls)}"' if cls else "") + f' href="{e(base + u(*parts))}"' + (f' title="{e(title)}"' if title else "")
    return f"<a{attrs}>{e(text)}</a>"


def status_class(status: object) -> str:
    return STATUS_CLASSES.get(str(status), "unknown")


def chip(status: object, label: object | None = None, title: str = "") -> str:
    text = label if label is not None else status
    return f'<span class="chip {status_class(status)}" data-status="{e(status)}" title="{e(title)}">{e(text)}</span>'


def stage_chips(stages: Iterable[Mapping[str, Any]]) -> str:
    """One chip per stage a delivery reached, titled with its outcome."""
    return "".join(chip(s["status"], s["stage"], s.get("outcome", "")) for s in stages)


def fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def num(value: object) -> str:
    """A measured value with as many decimals as it needs (1,050 · 52.5 · 0.013)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def when(timestamp: object) -> str:
    """``2026-01-01T00:20:32.000Z`` → ``2026-01-01 00:20:32`` (times are UTC)."""
    text = str(timestamp or "")
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def clock(timestamp: object) -> str:
    """The time of day of a timestamp, to the second."""
    text = str(timestamp or "")
    return text[11:19] if len(text) >= 19 else text


def tag_of(image: object) -> str:
    text = str(image or "")
    tail = text.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else tail


def page(title: str, body: str, base: str, crumbs: Sequence[tuple[str, str]] = (), refresh: int = 0) -> str:
    nav = " / ".join(f'<a href="{e(base + href)}">{e(text)}</a>' if href else e(text) for text, href in crumbs)
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    live = (f'<span class="live" title="a delivery is running: this page reloads every {refresh} s">live · refreshes every {refresh} s</span>'
            if refresh else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)} · Sluice</title>{meta}
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{e(base)}/assets/sluice.css"></head>
<body><header><a class="brand" href="{e(base)}/">Sluice</a><nav>{nav}</nav>{live}</header>
<main>{body}</main><footer>times in UTC</footer></body></html>"""


def _in_project(project: str, *more: tuple[str, str]) -> list[tuple[str, str]]:
    """Breadcrumbs of a page inside ``project``: projects / project / ``more``."""
    return [("projects", "/"), (project, u("project", project)), *more]


def projects_page(base: str, projects: Iterable[str]) -> str:
    items = "".join(f'<li>{link(base, ("project", p), p)}</li>' for p in projects)
    body = f"<h1>Projects</h1><ul class='projects'>{items or '<li>No project yet: <code>sluice create project</code></li>'}</ul>"
    return page("Projects", body, base, [("projects", "")])


# --- project -----------------------------------------------------------------------------------


def _approval_form(base: str, project: str, stage: str, service: str, context: str) -> str:
    hidden = "".join(f'<input type="hidden" name="{k}" value="{e(v)}">'
                     for k, v in (("project", project), ("stage", stage), ("service", service), ("context", context)))
    return (f'<form method="post" action="{e(base)}/approve" class="approval">{hidden}'
            '<button name="decision" value="approve" class="approve">Approve</button>'
            '<button name="decision" value="decline" class="decline">Decline</button></form>')


def _service_card(base: str, project: str, stage: Mapping[str, Any], svc: Mapping[str, Any]) -> str:
    name = svc["name"]
    stage_name = stage["name"]
    primary = (svc.get("primary") or {}).get("image")
    traffic = svc.get("traffic") or {}
    candidate = svc.get("candidate")
    share = int(traffic.get("canary", 0) or 0)
    parts = [f'<div class="service" data-service="{e(name)}" data-stage="{e(stage_name)}">',
             f'<h3>{link(base, ("project", project, "service", name), name, title=f"deliveries of {name}")}</h3>']
    if primary:
        parts.append(f'<div class="version primary"><span class="role">primary</span> <code>{e(primary)}</code></div>')
    else:
        parts.append('<div class="version primary none"><span class="role">primary</span> <em>not deployed yet</em></div>')
    if candidate:
        parts.append(f'<div class="version candidate"><span class="role">candidate</span> <code>{e(candidate["image"])}</code></div>'
                     f'<div class="traffic" title="share of the stage\'s traffic"><span class="bar"><span class="canary" style="width:{share}%">'
                     f'</span></span> traffic: primary <strong>{100 - share} %</strong> · candidate <strong class="share">{share} %</strong></div>')
    waiting = svc.get("waiting_for_approval") or []
    waiting_contexts = {w.get("context") for w in waiting}
    active = svc.get("active_delivery")

    def stream(d: Mapping[str, Any]) -> str:
        return link(base, ("delivery", str(d.get("context", ""))), "event stream")

    if active and active.get("context") not in waiting_contexts:
        parts.append(f'<div class="notice running">delivery running: <code>{e(active.get("image"))}</code>'
                     f' <span class="muted">({e(active.get("phase"))} until {e(clock(active.get("deadline")))})</span>'
                     f' · {stream(active)}</div>')
    for w in waiting:
        parts.append(
            f'<div class="notice waiting">waiting for approval since {e(clock(w.get("since")))}: <code>{e(w.get("image"))}</code>'
            f' {chip(w.get("result"))} · {stream(w)}'
            f' <span class="muted expiry">{e(w.get("on_timeout"))}s at {e(clock(w.get("deadline")))} unless decided</span>'
            f'{_approval_form(base, project, stage_name, name, str(w.get("context", "")))}</div>'
        )
    for q in svc.get("queued") or []:
        parts.append(f'<div class="notice queued">queued since {e(clock(q.get("since")))}: <code>{e(q.get("image"))}</code>'
                     f' waits for the running delivery · {stream(q)}</div>')
    last = svc.get("last_evaluation")
    if last:
        href = base + u("evaluation", project, stage_name, name, str(last["id"]))
        label = f"{last['result']} {fmt(last['score'], 0)}"
        parts.append(f'<div class="last-eval">last evaluation <a href="{e(href)}">{chip(last["result"], label)}</a>'
                     f'{inconclusive_chip(last)}'
                     f' <span class="muted" title="evaluated {e(when(last.get("time")))} UTC">of {e(tag_of(last.get("image")))}</span></div>')
    links = [link(base, ("project", project, "service", name), "deliveries")]
    if last:
        links.append(link(base, ("history", project, stage_name, name), "evaluation history"))
    parts.append(f'<div class="links">{" · ".join(links)}</div></div>')
    return "".join(parts)


def _delivery_rows(base: str, deliveries: Sequence[Mapping[str, Any]], with_service: bool,
                   queued: Mapping[str, str] | None = None) -> str:
    rows = []
    for d in deliveries:
        where = (queued or {}).get(d["context"])
        if where:  # the read-model's chip says "running" for a stage the delivery waits to enter
            d = {**d, "stages": [{**s, "status": "queued"} if s["stage"] == where and s["status"] == "running" else s
                                 for s in d["stages"]], "queued_in": where}
        service = f'<td>{e(d.get("service"))}</td>' if with_service else ""
        rows.append(
            f'<tr class="delivery" data-context="{e(d["context"])}"><td>{link(base, ("delivery", d["context"]), when(d["started"]))}</td>'
            f'{service}<td><code>{e(d["image"])}</code></td><td class="reached">{stage_chips(d["stages"])}</td>'
            f'<td>{e(delivery_state(d))}</td></tr>'
        )
    head = "<tr><th>started</th>" + ("<th>service</th>" if with_service else "") + "<th>image</th><th>stages reached</th><th>state</th></tr>"
    return f"<table class='deliveries'>{head}{''.join(rows)}</table>"


def delivery_state(d: Mapping[str, Any]) -> str:
    """Where a delivery stands, in a few words (``rolled back in staging``, ``running in dev``)."""
    stages = d.get("stages") or []
    if not stages:
        return "started"
    last = stages[-1]
    for s in stages:
        if s.get("outcome") in ("rolled_back", "failed", "declined", "stopped"):
            return f"{OUTCOMES[s['outcome']]} in {s['stage']}"
    if d.get("queued_in"):
        return f"queued for {d['queued_in']}"
    if last.get("status") == "waiting":
        return f"waiting for approval in {last['stage']}"
    if last.get("outcome"):
        return f"{OUTCOMES.get(last['outcome'], last['outcome'])} in {last['stage']}"
    return f"running in {last['stage']}"


def queued_contexts(view: Mapping[str, Any]) -> dict[str, str]:
    """Context → stage of every delivery queued behind another one (from the project's status)."""
    return {str(q.get("context")): stage["name"] for stage in view.get("stages", [])
            for svc in stage["services"] for q in svc.get("queued") or []}


def project_page(base: str, view: Mapping[str, Any], refresh: int, recent: Sequence[Mapping[str, Any]] = ()) -> str:
    project = view["project"]
    columns = []
    for stage in view["stages"]:
        cards = "".join(_service_card(base, project, stage, svc) for svc in stage["services"])
        approval = stage.get("approval_strategy") or {}
        manual = [k for k, v in approval.items() if v == "manual"]
        rule = f' · approval on {" and ".join(manual)}' if manual else ""
        policy = stage.get("on_inconclusive") or {}
        if policy.get("action") not in (None, "fail"):
            retries = f" ×{policy.get('max_retries')}" if policy.get("action") == "retry" else ""
            rule += f" · inconclusive: {policy.get('action')}{retries}"
        columns.append(
            f'<section class="stage" data-stage="{e(stage["name"])}"><h2>{e(stage["name"])}</h2>'
            f'<div class="strategy">{e(str(stage["deployment_strategy"]).replace("_", " "))} · tests: {e(stage["test_strategy"])}{e(rule)}</div>'
            f'{cards}</section>'
        )
    body = f'<h1>Project {e(project)}</h1><div class="stages">{"".join(columns)}</div>'
    if recent:
        body += "<h2>Recent deliveries</h2>" + _delivery_rows(base, recent, with_service=True, queued=queued_contexts(view))
    return page(project, body, base, [("projects", "/"), (project, "")], refresh)


def deliveries_page(base: str, project: str, service: str, deliveries: Sequence[Mapping[str, Any]], refresh: int,
                    queued: Mapping[str, str] | None = None, metrics: str = "", pages: tuple[int, int] = (1, 1)) -> str:
    table = _delivery_rows(base, deliveries, with_service=False, queued=queued) if deliveries else "<p>No delivery yet.</p>"
    number, count = pages
    here = base + u("project", project, "service", service)
    links = [f'<a href="{e(here)}?page={number - 1}">← newer</a>' if number > 1 else "",
             f"page {number} of {count}" if count > 1 else "",
             f'<a href="{e(here)}?page={number + 1}">older →</a>' if number < count else ""]
    pager = f"<p class='pager'>{' · '.join(link for link in links if link)}</p>" if count > 1 else ""
    body = f"<h1>Deliveries of {e(service)} <small class='muted'>newest first</small></h1>{table}{pager}{metrics}"
    return page(f"{service} deliveries", body, base, _in_project(project, (service, "")), refresh)


# --- delivery (event stream) ---------------------------------------------------------------------

_KINDS = {
    "sh.keptn.event.configuration.change": "change",
    "sh.keptn.events.deployment-finished": "deployed",
    "sh.keptn.events.tests-finished": "tests",
    "sh.keptn.event.start-evaluation": "evaluation",
    "sh.keptn.internal.event.get-sli": "SLIs",
    "sh.keptn.internal.event.get-sli.done": "SLIs",
    "sh.keptn.events.evaluation-done": "evaluation",
    "sh.keptn.event.approval.triggered": "approval",
    "sh.keptn.event.approval.finished": "approval",
    "sh.keptn.events.done": "done",
}


def _event_item(base: str, ev: Mapping[str, Any]) -> str:
    data = ev.get("data") or {}
    etype = str(ev.get("type", ""))
    kind = _KINDS.get(etype, "event")
    classes = ["event"]
    if etype == "sh.keptn.events.done":
        kind = OUTCOMES.get(str(data.get("outcome")), kind)
        if data.get("outcome") == "rolled_back":
            classes.append("rollback")
        elif data.get("outcome") in ("failed", "declined", "stopped"):
            classes.append("failed")
        elif data.get("outcome") == "promoted":
            classes.append("promoted")
    elif etype == "sh.keptn.event.configuration.change":
        action = (data.get("canary") or {}).get("action", "set")
        kind = {"promote": "promote", "discard": "roll back"}.get(action, "deploy")
        if action == "discard":
            classes.append("rollback")
    elif data.get("result") == "fail":
        classes.append("failed")
    elif data.get("result") == "warning":
        classes.append("warning")
    if etype == "sh.keptn.event.approval.triggered":
        classes.append("waiting")
    opener = ""
    if etype == "sh.keptn.events.evaluation-done":
        eid = (data.get("evaluationdetails") or {}).get("evaluationId", "")
        if eid:
            where = [str(data.get(k, "")) for k in ("project", "stage", "service")]
            opener = " · " + link(base, ("evaluation", *where, str(eid)), "open the evaluation", cls="open")
    raw = json.dumps({k: v for k, v in ev.items() if k != "summary"}, indent=2, default=str, sort_keys=True)
    return (
        f'<li class="{" ".join(classes)}" data-type="{e(etype)}"><time title="{e(ev.get("time"))}">{e(clock(ev.get("time")))}</time>'
        f'<span class="kind">{e(kind)}</span><span class="summary">{e(ev.get("summary"))}{opener}</span>'
        f'<span class="source">{e(ev.get("source"))}</span>'
        f'<details><summary>raw CloudEvent</summary><pre>{e(raw)}</pre></details></li>'
    )


def _seconds(timestamp: object) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def canary_chart(stage: str, c: Mapping[str, Any]) -> str:
    """The candidate's weight over time in a canary stage: one bar per judged step (its window,
    coloured by its result), the step in progress, and where it ended (100 % promoted, 0 % back)."""
    spans: list[tuple[float, float, int, str, str]] = []
    for h in c.get("history") or []:
        start, end = _seconds(h.get("started")), _seconds(h.get("ended"))
        if start is not None and end is not None:
            spans.append((start, max(end, start + 1), int(h.get("weight", 0)), str(h.get("result", "")),
                          f"step {h.get('step')}: {h.get('weight')} % {h.get('result')} (score {fmt(h.get('score'), 0)})"))
    judged = {(h.get("step"), h.get("started")) for h in c.get("history") or []}
    if c.get("phase") != "done" and (c.get("step"), c.get("started")) not in judged:
        start, now = _seconds(c.get("started")), _seconds(c.get("since"))
        if start is not None:
            spans.append((start, max(now or start, start) + 1, int(c.get("weight", 0)), "running",
                          f"step {c.get('step')}: {c.get('weight')} % (being judged)"))
    if not spans:
        return ""
    t0, t1 = spans[0][0], max(s[1] for s in spans)
    width, height, left, top = 360.0, 110.0, 30.0, 8.0
    span_w = (width - left - 8) / max(t1 - t0, 1.0)
    bars, labels = [], []
    for start, end, weight, result, title in spans:
        x = left + (start - t0) * span_w
        w = max((end - start) * span_w, 2.0)
        h = (height - top - 14) * weight / 100
        y = height - 14 - h
        bars.append(f'<rect class="step {e(status_class(result))}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
                    f'<title>{e(title)}</title></rect>')
        labels.append(f'<text x="{x + w / 2:.1f}" y="{y - 2:.1f}" text-anchor="middle" font-size="9">{weight}%</text>')
    outcome = str(c.get("outcome") or "")
    end_note = {"promoted": "then 100 % and promoted", "rolled_back": "then 0 %: rolled back"}.get(outcome, outcome)
    axis = (f'<line x1="{left}" y1="{height - 14}" x2="{width - 8}" y2="{height - 14}" stroke="currentColor" stroke-width="0.5"/>'
            f'<text x="2" y="{top + 8}" font-size="9">100%</text><text x="2" y="{height - 14}" font-size="9">0%</text>')
    return (f'<figure class="canary-chart" data-stage="{e(stage)}"><figcaption>canary weights in {e(stage)}'
            f'{" · " + e(end_note) if end_note else ""}{" · " + e(c.get("stopped")) if c.get("stopped") else ""}</figcaption>'
            f'<svg viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="candidate weight per canary step in {e(stage)}">'
            f'{axis}{"".join(bars)}{"".join(labels)}</svg></figure>')


def delivery_page(base: str, d: Mapping[str, Any], refresh: int) -> str:
    # One group per stage, in the order the delivery reached them; each group in event order
    # (the gatekeeper's promote of one stage and the deploy in the next interleave in time).
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for ev in d["events"]:
        groups.setdefault(str((ev.get("data") or {}).get("stage") or ""), []).append(ev)
    by_stage = {s["stage"]: s for s in d["stages"]}
    items = []
    for stage, events in groups.items():
        if stage:
            info = by_stage.get(stage, {})
            state = OUTCOMES.get(str(info.get("outcome")), "") or {"waiting": "waiting for approval"}.get(str(info.get("status")), "running")
            items.append(f'<li class="separator" data-stage="{e(stage)}"><span class="stage-name">stage {e(stage)}</span>'
                         f'{chip(info.get("status", "running"))} <span class="muted">{e(state)}</span></li>')
        else:
            items.append('<li class="separator" data-stage=""><span class="stage-name">start</span></li>')
        items.extend(_event_item(base, ev) for ev in events)
    banner = ""
    rolled = [s for s in d["stages"] if s.get("outcome") == "rolled_back"]
    if rolled:
        message = next((str((ev.get("data") or {}).get("message", "")) for ev in d["events"]
                        if ev.get("type") == "sh.keptn.events.done" and (ev.get("data") or {}).get("outcome") == "rolled_back"), "")
        banner = f'<div class="banner rollback"><strong>ROLLED BACK in {e(rolled[0]["stage"])}</strong> {e(message)}</div>'
    charts = "".join(canary_chart(stage, c) for stage, c in (d.get("canary") or {}).items())
    body = (f'<h1>Delivery of <code>{e(d["image"])}</code></h1>{banner}'
            f'<div class="chips">stages reached {stage_chips(d["stages"])} <span class="muted">· {e(delivery_state(d))}</span></div>'
            f'<p class="context muted">started {e(when(d.get("started")))} · shkeptncontext <code>{e(d["context"])}</code></p>'
            f'{charts}<ol class="events">{"".join(items)}</ol>')
    crumbs = _in_project(d["project"], (d["service"], u("project", d["project"], "service", d["service"])),
                         (f"delivery {tag_of(d['image'])}", ""))
    return page(f"delivery {tag_of(d['image'])}", body, base, crumbs, refresh)


# --- evaluation ----------------------------------------------------------------------------------


def _targets(ind: Mapping[str, Any], kind: str) -> str:
    out = []
    for t in ind.get("targets", []):
        if t.get("kind", "pass") != kind:
            continue
        resolved = t.get("targetValue")
        relative = _is_relative(str(t.get("criteria", "")))
        shown = f' <span class="resolved">({e(num(resolved))})</span>' if relative and resolved is not None else ""
        mark = ' <span class="mark">✗ violated</span>' if t.get("violated") else ""
        title = f"resolved to {num(resolved)}" if resolved is not None else "no comparison value: held"
        out.append(f'<span class="target{" violated" if t.get("violated") else ""}" title="{e(title)}">{e(t.get("criteria"))}{shown}{mark}</span>')
    return "<br>".join(out) or '<span class="muted">—</span>'


def _score_bar(score: object, total: Mapping[str, Any], result: object) -> str:
    value = float(score) if isinstance(score, int | float) else 0.0
    marks = "".join(
        f'<span class="mark {k}" style="left:{float(total[k]):.0f}%" title="{k} ≥ {fmt(total[k], 0)}"><span>{k} {fmt(total[k], 0)}</span></span>'
        for k in ("warning", "pass") if isinstance(total.get(k), int | float)
    )
    return f'<div class="scorebar"><span class="fill {status_class(result)}" style="width:{max(0.0, min(100.0, value)):.0f}%"></span>{marks}</div>'


def evaluation_page(base: str, project: str, stage: str, service: str, ev: Mapping[str, Any],
                    history: Sequence[Mapping[str, Any]] = ()) -> str:
    total = ev.get("total_score") or {}
    images = {str(h.get("id")): str(h.get("image", "")) for h in history}

    def evaluation_link(eid: str) -> str:
        return link(base, ("evaluation", project, stage, service, eid), tag_of(images[eid]) if eid in images else eid[:8])

    rows = []
    for ind in ev.get("indicators", []):
        comp = ind.get("comparison")
        if comp:
            sources = ", ".join(evaluation_link(str(x)) for x in comp.get("evaluations", []))
            values = ", ".join(num(v) for v in comp.get("values", []))
            comp_text = (f'<strong>{e(num(comp.get("value")))}</strong> <span class="muted">= {e(comp.get("aggregate_function"))}'
                         f' of {e(values)} from</span> {sources}')
        else:
            comp_text = '<span class="muted">no earlier value</span>'
        name = ind.get("name")
        label = e(ind.get("display_name") or name) + (f' <small class="muted">{e(name)}</small>' if ind.get("display_name") else "")
        key = ' <span class="key" title="key SLI: failing it fails the evaluation">key</span>' if ind.get("key_sli") else ""
        scored = any(t.get("kind", "pass") == "pass" for t in ind.get("targets", []))
        rows.append(
            f'<tr class="indicator" data-sli="{e(name)}" data-status="{e(ind.get("status"))}">'
            f'<td>{label}{key}</td><td class="value">{e(num(ind.get("value")))}</td><td>{chip(ind.get("status"))}</td>'
            f'<td>{_targets(ind, "pass")}</td><td>{_targets(ind, "warning")}</td><td>{comp_text}</td>'
            f'<td class="num">{e(fmt(ind.get("score"), 2)) if scored else "<span class=muted>not scored</span>"}</td>'
            f'<td class="message">{e(ind.get("message"))}{_noise(ind)}</td></tr>'
        )
    comparison = ev.get("comparison") or {}
    compared = [str(x) for x in comparison.get("compared_evaluations", [])]
    if comparison:
        which = (f'the last {e(comparison.get("number_of_comparison_results", 1))} evaluation(s) with result '
                 f'{e(comparison.get("include_result_with_score", "all"))} ({e(comparison.get("compare_with"))}, '
                 f'{e(comparison.get("aggregate_function"))})')
        found = ", ".join(evaluation_link(x) for x in compared) or "none found yet"
        comparison_line = f'<p class="comparison">Compared with {which}: {found}</p>'
    else:
        comparison_line = ""
    notes = "".join(f"<li>{e(n)}</li>" for n in ev.get("notes", []))
    reasons = "".join(f"<li>{e(r.get('message'))}</li>" for r in ev.get("inconclusive_reasons") or [] if isinstance(r, Mapping))
    inconclusive = (f'<div class="notice inconclusive"><strong>INCONCLUSIVE</strong>: the gate could not judge '
                    f'(the verdict is Keptn\'s; the stage\'s on_inconclusive decides what happens)<ul>{reasons}</ul></div>'
                    if ev.get("inconclusive") else "")
    arithmetic = (ev.get("score_arithmetic") or {}).get("text", "")
    body = (
        f'<h1>Evaluation of <code>{e(ev.get("image"))}</code> in {e(stage)}</h1>'
        f'<div class="verdict">{chip(ev.get("result"), str(ev.get("result", "")).upper())}{inconclusive_chip(ev)} '
        f'score <strong class="score">{e(fmt(ev.get("score"), 0))}</strong> of 100 '
        f'<span class="muted">(pass ≥ {e(fmt(total.get("pass"), 0))}, warning ≥ {e(fmt(total.get("warning"), 0))}; {e(arithmetic)})</span></div>'
        f'{_score_bar(ev.get("score"), total, ev.get("result"))}'
        f'<p class="muted">evaluated {e(when(ev.get("time")))} · test window {e(when(ev.get("start")))} → {e(when(ev.get("end")))}'
        f' · SLIs from <strong>{e(ev.get("sli_provider"))}</strong>'
        f' · {link(base, ("delivery", str(ev.get("context", ""))), "delivery")} · {link(base, ("history", project, stage, service), "history")}</p>'
        f'{inconclusive}{comparison_line}<ul class="notes">{notes}</ul>'
        "<table class='indicators'><tr><th>SLI</th><th>value</th><th>status</th><th>pass criteria</th><th>warning criteria</th>"
        "<th>comparison value</th><th>score</th><th>message</th></tr>"
        + "".join(rows) + "</table>"
        f'<details class="slo"><summary>SLO applied</summary><pre>{e(ev.get("slo_file", "")) or "(no SLO: the test result decided)"}</pre></details>'
    )
    crumbs = _in_project(project, (f"{service} in {stage}", u("history", project, stage, service)),
                         (f"evaluation {tag_of(ev.get('image'))}", ""))
    return page("evaluation", body, base, crumbs)


def _noise(ind: Mapping[str, Any]) -> str:
    """The noise-aware comparison of an indicator: the test, its effect size and why it held or not."""
    out = []
    for n in ind.get("noise") or []:
        if not isinstance(n, Mapping):
            continue
        test = n.get("test") if isinstance(n.get("test"), Mapping) else None
        figures = ""
        if test:
            p_value = f"{float(test.get('p_value', 0)):.3g}"
            effect = f"{float(test.get('effect', 0)):.2f}"
            figures = (f' <span class="figures">p = {e(p_value)} · effect A = {e(effect)} · shift {e(num(test.get("shift")))} · '
                       f'n = {e(test.get("n_candidate"))} vs {e(test.get("n_baseline"))}</span>')
        out.append(f'<div class="noise {e(n.get("outcome"))}" data-outcome="{e(n.get("outcome"))}">'
                   f'<strong>{e(n.get("method"))}</strong> on {e(n.get("criteria"))}: {e(n.get("outcome"))}{figures}'
                   f'<br><span class="muted">{e(n.get("reason"))}</span></div>')
    samples = ind.get("samples")
    if isinstance(samples, int):
        out.append(f'<div class="muted samples">{e(samples)} samples</div>')
    return "".join(out)


# --- history -------------------------------------------------------------------------------------


def _nice_top(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value)


def _is_relative(criteria: str) -> bool:
    """``<=+10%`` and ``<+50`` compare with earlier values; ``<600`` is absolute."""
    return "%" in criteria or criteria.lstrip("<>=")[:1] in ("+", "-")


def _sli_chart(name: str, points: Sequence[tuple[int, float, str, str, str]], count: int,
               thresholds: Sequence[tuple[str, float]] = ()) -> str:
    """One SLI over the evaluations: y from 0 to a round maximum, one labelled point per evaluation,
    and the current SLO's absolute thresholds as dashed lines."""
    width, height, left, right, top, bottom = 420, 190, 58, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax = _nice_top(max([v for _, v, *_ in points] + [t for _, t in thresholds]))

    inset = 14  # keep the first and last points off the axes

    def x(i: int) -> float:
        return left + (plot_w / 2 if count == 1 else inset + i * (plot_w - 2 * inset) / (count - 1))

    def y(v: float) -> float:
        return top + plot_h - v / ymax * plot_h

    grid = []
    for tick in (0.0, ymax / 2, ymax):
        grid.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" class="grid"/>'
                    f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">{e(num(tick))}</text>')
    step = max(1, math.ceil(count / 8))
    labels = [f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" class="tick">{e(label)}</text>'
              for i, _v, _s, _h, label in points if i % step == 0 or i == count - 1]
    for label, value in thresholds:
        kind = label.split(" ", 1)[0]
        grid.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" class="threshold {e(kind)}"/>'
                    f'<text x="{width - right}" y="{y(value) - 3:.1f}" text-anchor="end" class="threshold-label {e(kind)}">{e(label)}</text>')
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, *_ in points)
    dots = "".join(
        f'<a href="{e(href)}"><circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="5" fill="{_PALETTE.get(status, "#718096")}">'
        f'<title>{e(label)}: {e(num(v))} ({e(status)})</title></circle></a>'
        for i, v, status, href, label in points
    )
    return (
        f'<figure class="sli-chart" data-sli="{e(name)}"><svg viewBox="0 0 {width} {height}" role="img" aria-label="{e(name)} per evaluation">'
        f'<text x="{left}" y="16" class="title">{e(name)}</text>{"".join(grid)}'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" class="axis"/>'
        f'<polyline points="{line}" class="line"/>{dots}{"".join(labels)}'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" class="caption">evaluation (build), oldest → newest</text>'
        "</svg></figure>"
    )


def history_page(base: str, project: str, stage: str, service: str, history: Sequence[Mapping[str, Any]], refresh: int,
                 replay: Mapping[str, Any] | None = None, slo_text: str = "", problem: str = "",
                 pages: tuple[int, int] = (1, 1)) -> str:
    """The heatmap and charts of the evaluations given (newest first: a page of them, ``pages``
    = (this page, pages in all) with links to newer and older pages; at most 50), and the
    what-if replay form.

    With ``replay`` (``ReplayReport.to_dict()`` of the whole history under a pasted SLO) the heatmap
    is recoloured with the replayed statuses; a cell whose status changed is marked (◆, class
    ``changed``, its title says what it was).
    """
    recent = list(reversed(history[:50]))  # oldest first, at most 50
    crumbs = _in_project(project, (f"{service} in {stage}", ""))
    if not recent:
        body = f"<h1>{e(service)} in {e(stage)}</h1><p>No evaluation yet.</p>"
        return page("history", body, base, crumbs, refresh)
    names: list[str] = []
    for ev in recent:
        for ind in ev.get("indicators", []):
            if ind.get("name") not in names:
                names.append(ind.get("name"))
    replayed: dict[str, Mapping[str, Any]] = {}
    if replay is not None:
        replayed = {str(b.get("id")): b for b in replay.get("builds", [])}
        for build in replayed.values():
            for ind in (build.get("evaluation") or {}).get("indicators", []):
                if ind.get("name") not in names:
                    names.append(ind.get("name"))  # an objective only the new SLO has

    def address(ev: Mapping[str, Any]) -> tuple[str, ...]:
        return ("evaluation", project, stage, service, str(ev.get("id")))

    def cell(ev: Mapping[str, Any], status: object, text: str, what: str, was: object = None, extra: str = "") -> str:
        title = f"{tag_of(ev.get('image'))} · {what} · {status} · {when(ev.get('time'))}"
        changed = was is not None and was != status
        if changed:
            title += f" · was {was} under the stored SLO"
            text = f"◆ {text}"
        classes = f"cell {status_class(status)}" + (" changed" if changed else "") + extra
        data = f' data-was="{e(was)}"' if changed else ""
        return f'<td class="{classes}" data-status="{e(status)}"{data}>{link(base, address(ev), text, title=title)}</td>'

    def score_cell(ev: Mapping[str, Any]) -> str:
        shown: Mapping[str, Any] = ev
        was = None
        b = replayed.get(str(ev.get("id")))
        if b is not None:
            shown = b.get("evaluation") or {}
            was = ev.get("result")
        text = fmt(shown.get("score"), 0)
        extra = ""
        if shown.get("inconclusive"):
            text += " ?"
            extra = " inconclusive"
        what = f"score {fmt(shown.get('score'), 0)}" + (" · inconclusive" if shown.get("inconclusive") else "")
        return cell(ev, shown.get("result"), text, what, was, extra)

    head = "".join(f'<th title="{e(ev.get("image"))} · {e(when(ev.get("time")))}">{e(tag_of(ev.get("image")))}</th>' for ev in recent)
    rows = [f'<tr class="score-row"><th>score</th>{"".join(score_cell(ev) for ev in recent)}</tr>']
    charts = []
    for name in names:
        cells = []
        points: list[tuple[int, float, str, str, str]] = []
        for x, ev in enumerate(recent):
            stored = next((i for i in ev.get("indicators", []) if i.get("name") == name), None)
            b = replayed.get(str(ev.get("id")))
            shown_ind: Mapping[str, Any] | None = stored
            if b is not None:
                shown_ind = next((i for i in (b.get("evaluation") or {}).get("indicators", []) if i.get("name") == name), None)
            if shown_ind is None:
                cells.append('<td class="cell none" title="not measured"></td>')
                continue
            was = (stored or {}).get("status", "no objective") if b is not None else None
            value = shown_ind.get("value")
            cells.append(cell(ev, shown_ind.get("status"), num(value), f"{name} = {num(value)}", was))
            if isinstance(value, int | float):
                points.append((x, float(value), str(shown_ind.get("status")), base + u(*address(ev)), tag_of(ev.get("image"))))
        rows.append(f'<tr data-sli="{e(name)}"><th>{e(name)}</th>{"".join(cells)}</tr>')
        if points and replay is None:
            newest: Mapping[str, Any] = next((i for ev in reversed(recent) for i in ev.get("indicators", []) if i.get("name") == name), {})
            thresholds = [(f'{t.get("kind", "pass")} {t["criteria"]}', float(t["targetValue"])) for t in newest.get("targets", [])
                          if isinstance(t.get("targetValue"), int | float) and not _is_relative(str(t.get("criteria", "")))]
            charts.append(_sli_chart(name, points, len(recent), thresholds))
    legend = "".join(chip(s) for s in ("pass", "warning", "fail", "error", "info")) + chip("inconclusive", "? inconclusive")
    number, count = pages
    here = base + u("history", project, stage, service)
    links = [f'<a href="{e(here)}?page={number - 1}">← newer</a>' if number > 1 else "",
             f"page {number} of {count}" if count > 1 else "",
             f'<a href="{e(here)}?page={number + 1}">older →</a>' if number < count else ""]
    pager = f"<p class='pager'>{' · '.join(link for link in links if link)}</p>" if count > 1 else ""
    which = "the last" if number == 1 else f"page {number}:"
    heading = (f"{e(service)} in {e(stage)}: {which} {len(recent)} evaluation{'s' if len(recent) != 1 else ''}"
               + (" — what if under the pasted SLO" if replay is not None else ""))
    body = f"<h1>{heading}</h1>"
    if replay is not None:
        body += _replay_summary(replay)
    body += (f"<p class='muted'>oldest left, newest right; click a cell to open its evaluation"
             f"{' · ◆ = changed under the pasted SLO' if replay is not None else ''} · {legend}</p>"
             f"<div class='scroll'><table class='heatmap{' replayed' if replay is not None else ''}'><tr><th></th>{head}</tr>{''.join(rows)}</table></div>"
             f"{pager}")
    if replay is not None:
        body += _replay_table(base, project, stage, service, replay)
    else:
        body += f"<h2>SLI values per evaluation</h2><div class='charts'>{''.join(charts) or '<p>No SLI values yet.</p>'}</div>"
    body += _replay_form(base, project, stage, service, slo_text, problem, replay is not None)
    return page("history", body, base, crumbs, refresh)


def _replay_summary(replay: Mapping[str, Any]) -> str:
    s = replay.get("summary") or {}
    missing = s.get("not_measured_then") or []
    extra = (f' · <span class="missing">not measured then (scored as unmeasured, never guessed): {e(", ".join(missing))}</span>'
             if missing else "")
    return (f'<p class="notice replay-summary">Replayed {e(s.get("builds"))} build(s) under the pasted SLO (nothing is written): '
            f'<strong class="pass-to-fail">{e(s.get("pass_to_fail"))} pass→fail</strong> · '
            f'<strong class="fail-to-pass">{e(s.get("fail_to_pass"))} fail→pass</strong> · '
            f'{e(s.get("unchanged"))} unchanged · {e(s.get("inconclusive"))} inconclusive{extra}</p>')


def _replay_table(base: str, project: str, stage: str, service: str, replay: Mapping[str, Any]) -> str:
    rows = []
    for b in reversed(replay.get("builds", [])):  # newest first, like the other lists
        stored, new = b.get("stored") or {}, b.get("replayed") or {}
        flips = [f'{f.get("sli")}: {f.get("before") or "no objective"} → {f.get("after")}' for f in b.get("flips", [])]
        flips += [f"{n}: not measured then" for n in b.get("not_measured_then", [])]
        before = f"{stored.get('result')} {fmt(stored.get('score'), 0)}"
        after = f"{new.get('result')} {fmt(new.get('score'), 0)}"
        flipped = "<br>".join(e(f) for f in flips) or "—"
        lacking = ' <span class="muted">(lacking data)</span>' if b.get("for_lack_of_data") else ""
        rows.append(
            f'<tr class="replayed-build" data-id="{e(b.get("id"))}" data-transition="{e(b.get("transition"))}">'
            f'<td>{link(base, ("evaluation", project, stage, service, str(b.get("id"))), tag_of(b.get("image")) or b.get("id"))}</td>'
            f'<td>{chip(stored.get("result"), before)}</td>'
            f'<td>{chip(new.get("result"), after)}{inconclusive_chip(new)}</td>'
            f'<td>{e(b.get("transition"))}{lacking}</td><td>{flipped}</td></tr>'
        )
    return ("<h2>Per build</h2><table class='replay'><tr><th>build</th><th>stored</th><th>under the pasted SLO</th>"
            f"<th>change</th><th>objectives that flipped</th></tr>{''.join(rows)}</table>")


def _replay_form(base: str, project: str, stage: str, service: str, slo_text: str, problem: str, shown: bool) -> str:
    action = base + u("history", project, stage, service, "replay")
    error = f'<p class="notice fail replay-problem">{e(problem)}</p>' if problem else ""
    back = f' · {link(base, ("history", project, stage, service), "back to the stored verdicts")}' if shown else ""
    return (f'<h2 id="replay">What if: replay this history under another SLO</h2>{error}'
            f'<form method="post" action="{e(action)}#replay" enctype="multipart/form-data" class="replay">'
            f'<p class="muted">Paste an slo.yaml or choose a file (at most {REPLAY_SLO_LIMIT // 1024} KiB). Every stored '
            f'evaluation is scored again, oldest first, with the comparison history rebuilt; nothing is written.{back}</p>'
            f'<textarea name="slo" rows="12" cols="80" spellcheck="false" maxlength="{REPLAY_SLO_LIMIT}">{e(slo_text)}</textarea>'
            f'<p><input type="file" name="slo_file" accept=".yaml,.yml,.json,text/yaml"> '
            f'<button type="submit">Replay</button></p></form>')


def message_page(base: str, title: str, text: str, status_class: str = "info") -> str:
    return page(title, f'<h1>{e(title)}</h1><p class="notice {status_class}">{e(text)}</p>', base, [("projects", "/")])
