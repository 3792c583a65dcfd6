"""HTML for the web view, rendered on the server from the read-model's dicts.

Everything shown is escaped (image names, messages and SLI names come from outside). No
script is needed to read a page; pages with a delivery in flight refresh themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

STATUS_CLASSES = {"pass": "pass", "warning": "warning", "fail": "fail", "error": "error", "info": "info",
                  "waiting": "waiting", "running": "running", "promoted": "pass", "rolled_back": "fail"}


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def u(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def chip(status: object, label: object | None = None, title: str = "") -> str:
    cls = STATUS_CLASSES.get(str(status), "unknown")
    text = label if label is not None else status
    return f'<span class="chip {cls}" data-status="{e(status)}" title="{e(title)}">{e(text)}</span>'


def fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def page(title: str, body: str, base: str, crumbs: Sequence[tuple[str, str]] = (), refresh: int = 0) -> str:
    nav = " / ".join(f'<a href="{e(base + href)}">{e(text)}</a>' if href else e(text) for text, href in crumbs)
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)} · Sluice</title>{meta}
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{e(base)}/static/sluice.css"></head>
<body><header><a class="brand" href="{e(base)}/">Sluice</a><nav>{nav}</nav>
{'<span class="live" title="this page refreshes while a delivery runs">live</span>' if refresh else ''}</header>
<main>{body}</main></body></html>"""


def projects_page(base: str, projects: Iterable[str]) -> str:
    items = "".join(f'<li><a href="{e(base + u("project", p))}">{e(p)}</a></li>' for p in projects)
    body = f"<h1>Projects</h1><ul class='projects'>{items or '<li>No project yet: <code>sluice create project</code></li>'}</ul>"
    return page("Projects", body, base, [("projects", "")])


def _service_card(base: str, project: str, stage: Mapping[str, Any], svc: Mapping[str, Any]) -> str:
    name = svc["name"]
    primary = (svc.get("primary") or {}).get("image") or "—"
    parts = [f'<div class="service" data-service="{e(name)}" data-stage="{e(stage["name"])}">',
             f'<h3><a href="{e(base + u("project", project, "service", name))}">{e(name)}</a></h3>',
             f'<div class="version primary">primary <code>{e(primary)}</code></div>']
    if svc.get("candidate"):
        share = (svc.get("traffic") or {}).get("canary", 0)
        parts.append(f'<div class="version candidate">candidate <code>{e(svc["candidate"]["image"])}</code> · {e(share)} % of traffic</div>')
    traffic = svc.get("traffic") or {}
    if traffic:
        parts.append('<div class="traffic">' + " · ".join(f"{e(k)} {e(v)} %" for k, v in traffic.items()) + "</div>")
    for q in svc.get("queued", []):
        parts.append(f'<div class="notice queued">queued: <code>{e(q["image"])}</code> waits for the stage</div>')
    for w in svc.get("waiting_for_approval", []):
        form = (
            f'<form method="post" action="{e(base)}/approve" class="approval">'
            f'<input type="hidden" name="project" value="{e(project)}"><input type="hidden" name="stage" value="{e(stage["name"])}">'
            f'<input type="hidden" name="service" value="{e(name)}"><input type="hidden" name="context" value="{e(w["context"])}">'
            '<button name="decision" value="approve" class="approve">Approve</button>'
            '<button name="decision" value="decline" class="decline">Decline</button></form>'
        )
        parts.append(f'<div class="notice waiting">waiting for approval: <code>{e(w["image"])}</code> ({e(w["result"])}) {form}</div>')
    last = svc.get("last_evaluation")
    if last:
        href = base + u("evaluation", project, stage["name"], name, str(last["id"]))
        label = f"{last['result']} {fmt(last['score'], 0)}"
        parts.append(f'<div class="last-eval">last evaluation <a href="{e(href)}">{chip(last["result"], label)}</a>'
                     f' <small>{e(last.get("image", ""))}</small></div>')
        parts.append(f'<a class="small" href="{e(base + u("history", project, stage["name"], name))}">history</a>')
    parts.append("</div>")
    return "".join(parts)


def project_page(base: str, view: Mapping[str, Any], refresh: int) -> str:
    project = view["project"]
    columns = []
    for stage in view["stages"]:
        cards = "".join(_service_card(base, project, stage, svc) for svc in stage["services"])
        columns.append(
            f'<section class="stage" data-stage="{e(stage["name"])}"><h2>{e(stage["name"])}</h2>'
            f'<div class="strategy">{e(stage["deployment_strategy"])} · tests: {e(stage["test_strategy"])}</div>{cards}</section>'
        )
    body = f'<h1>Project {e(project)}</h1><div class="stages">{"".join(columns)}</div>'
    return page(project, body, base, [("projects", "/"), (project, "")], refresh)


def deliveries_page(base: str, project: str, service: str, deliveries: Sequence[Mapping[str, Any]], refresh: int) -> str:
    rows = []
    for d in deliveries:
        chips = "".join(chip(s["status"], s["stage"], s.get("outcome", "")) for s in d["stages"])
        rows.append(
            f'<tr class="delivery"><td><a href="{e(base + u("delivery", d["context"]))}">{e(d["started"][:19])}</a></td>'
            f'<td><code>{e(d["image"])}</code></td><td>{chips}</td></tr>'
        )
    body = (f"<h1>Deliveries of {e(service)}</h1><table class='deliveries'><tr><th>started</th><th>image</th><th>stages</th></tr>"
            + "".join(rows) + "</table>")
    return page(f"{service} deliveries", body, base, [("projects", "/"), (project, u("project", project)), (service, "")], refresh)


def delivery_page(base: str, d: Mapping[str, Any], refresh: int) -> str:
    items = []
    stage = None
    for ev in d["events"]:
        data = ev.get("data") or {}
        if data.get("stage") and data.get("stage") != stage:
            stage = data["stage"]
            items.append(f'<li class="separator">stage {e(stage)}</li>')
        kind = "event"
        if ev.get("type") == "sh.keptn.events.done" and data.get("outcome") == "rolled_back":
            kind = "event rollback"
        elif data.get("result") == "fail":
            kind = "event failed"
        link = ""
        if ev.get("type") == "sh.keptn.events.evaluation-done":
            eid = (data.get("evaluationdetails") or {}).get("evaluationId", "")
            link = f' <a href="{e(base + u("evaluation", data.get("project", ""), data.get("stage", ""), data.get("service", ""), eid))}">evaluation</a>'
        raw = json.dumps(ev, indent=2, default=str)
        items.append(
            f'<li class="{kind}" data-type="{e(ev.get("type"))}"><time>{e(str(ev.get("time", ""))[11:23])}</time> '
            f'<span class="source">{e(ev.get("source"))}</span> <span class="summary">{e(ev.get("summary"))}</span>{link}'
            f'<details><summary>raw CloudEvent</summary><pre>{e(raw)}</pre></details></li>'
        )
    chips = "".join(chip(s["status"], s["stage"]) for s in d["stages"])
    rolled = any(s.get("outcome") == "rolled_back" for s in d["stages"])
    banner = '<div class="banner rollback">ROLLED BACK</div>' if rolled else ""
    body = (f'<h1>Delivery of <code>{e(d["image"])}</code></h1>{banner}<div class="chips">{chips}</div>'
            f'<p class="context">context {e(d["context"])}</p><ol class="events">{"".join(items)}</ol>')
    crumbs = [("projects", "/"), (d["project"], u("project", d["project"])),
              (d["service"], u("project", d["project"], "service", d["service"])), ("delivery", "")]
    return page("delivery", body, base, crumbs, refresh)


def evaluation_page(base: str, project: str, stage: str, service: str, ev: Mapping[str, Any]) -> str:
    total = ev.get("total_score") or {}
    rows = []
    for ind in ev.get("indicators", []):
        targets = " ".join(
            f'<span class="target{" violated" if t.get("violated") else ""}" title="resolved to {e(fmt(t.get("targetValue")))}">'
            f'{e(t.get("criteria"))}{" ✗" if t.get("violated") else ""}</span>'
            for t in ind.get("targets", [])
        )
        comp = ind.get("comparison")
        comp_text = (f'{fmt(comp.get("value"))} ({e(comp.get("aggregate_function"))} of {len(comp.get("evaluations", []))} evaluation(s))'
                     if comp else "—")
        rows.append(
            f'<tr class="indicator" data-sli="{e(ind.get("name"))}" data-status="{e(ind.get("status"))}">'
            f'<td>{e(ind.get("display_name") or ind.get("name"))}{" 🔑" if ind.get("key_sli") else ""}</td>'
            f'<td class="value">{e(fmt(ind.get("value")))}</td><td>{chip(ind.get("status"))}</td><td>{targets}</td>'
            f'<td>{comp_text}</td><td>{e(fmt(ind.get("score"), 2))}</td><td class="message">{e(ind.get("message"))}</td></tr>'
        )
    notes = "".join(f"<li>{e(n)}</li>" for n in ev.get("notes", []))
    arithmetic = (ev.get("score_arithmetic") or {}).get("text", "")
    body = (
        f'<h1>Evaluation of <code>{e(ev.get("image"))}</code> in {e(stage)}</h1>'
        f'<div class="verdict">{chip(ev.get("result"), str(ev.get("result", "")).upper())} '
        f'score <strong class="score">{e(fmt(ev.get("score"), 2))}</strong> '
        f'(pass ≥ {e(fmt(total.get("pass"), 0))}, warning ≥ {e(fmt(total.get("warning"), 0))}) <small>{e(arithmetic)}</small></div>'
        f'<p>window {e(ev.get("start"))} → {e(ev.get("end"))} · provider {e(ev.get("sli_provider"))}'
        f' · <a href="{e(base + u("delivery", str(ev.get("context", ""))))}">delivery</a></p>'
        f'<ul class="notes">{notes}</ul>'
        "<table class='indicators'><tr><th>SLI</th><th>value</th><th>status</th><th>criteria</th><th>compared with</th><th>score</th><th>message</th></tr>"
        + "".join(rows) + "</table>"
        f'<details><summary>SLO applied</summary><pre>{e(ev.get("slo_file", ""))}</pre></details>'
    )
    crumbs = [("projects", "/"), (project, u("project", project)), (service, u("history", project, stage, service)), ("evaluation", "")]
    return page("evaluation", body, base, crumbs)


def _svg_chart(series: Mapping[str, list[tuple[int, float]]], count: int, width: int = 720, height: int = 220) -> str:
    """A line chart of SLI values over the evaluations (x: evaluation index)."""
    values = [v for points in series.values() for _, v in points]
    if not values or count == 0:
        return "<p>No SLI values yet.</p>"
    top = max(values) * 1.1 or 1.0
    pad = 40
    palette = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#c53030"]
    lines = []
    for i, (name, points) in enumerate(sorted(series.items())):
        coords = " ".join(
            f"{pad + (x / max(count - 1, 1)) * (width - 2 * pad):.1f},{height - pad - (v / top) * (height - 2 * pad):.1f}" for x, v in points
        )
        color = palette[i % len(palette)]
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"><title>{e(name)}</title></polyline>')
        lines.append(f'<text x="{width - pad}" y="{16 + 14 * i}" fill="{color}" text-anchor="end" font-size="12">{e(name)}</text>')
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
            f'<text x="{pad - 4}" y="{pad}" text-anchor="end" font-size="11">{fmt(top, 0)}</text>'
            f'<text x="{pad - 4}" y="{height - pad}" text-anchor="end" font-size="11">0</text>')
    return f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="SLI values over time">{axis}{"".join(lines)}</svg>'


def history_page(base: str, project: str, stage: str, service: str, history: Sequence[Mapping[str, Any]], refresh: int) -> str:
    recent = list(reversed(history[:50]))  # oldest first, at most 50
    names: list[str] = []
    for ev in recent:
        for ind in ev.get("indicators", []):
            if ind.get("name") not in names:
                names.append(ind.get("name"))

    def cell(ev: Mapping[str, Any], status: object, text: str) -> str:
        href = base + u("evaluation", project, stage, service, str(ev.get("id")))
        return f'<td class="cell {STATUS_CLASSES.get(str(status), "unknown")}"><a href="{e(href)}" title="{e(ev.get("image"))}">{e(text)}</a></td>'

    head = "".join(f'<th title="{e(ev.get("time"))}">{e(str(ev.get("image", "")).rsplit(":", 1)[-1])}</th>' for ev in recent)
    score_row = "".join(cell(ev, ev.get("result"), fmt(ev.get("score"), 0)) for ev in recent)
    rows = [f'<tr class="score-row"><th>score</th>{score_row}</tr>']
    series: dict[str, list[tuple[int, float]]] = {}
    for name in names:
        cells = []
        for x, ev in enumerate(recent):
            ind = next((i for i in ev.get("indicators", []) if i.get("name") == name), None)
            if ind is None:
                cells.append('<td class="cell none"></td>')
                continue
            cells.append(cell(ev, ind.get("status"), fmt(ind.get("value"), 0)))
            if isinstance(ind.get("value"), int | float):
                series.setdefault(name, []).append((x, float(ind["value"])))
        rows.append(f'<tr data-sli="{e(name)}"><th>{e(name)}</th>{"".join(cells)}</tr>')
    body = (f"<h1>{e(service)} in {e(stage)}: the last {len(recent)} evaluations</h1>"
            f"<table class='heatmap'><tr><th></th>{head}</tr>{''.join(rows)}</table>"
            f"<h2>SLI values over time</h2>{_svg_chart(series, len(recent))}")
    crumbs = [("projects", "/"), (project, u("project", project)), (f"{service} in {stage}", "")]
    return page("history", body, base, crumbs, refresh)


def message_page(base: str, title: str, text: str, status_class: str = "info") -> str:
    return page(title, f'<h1>{e(title)}</h1><p class="notice {status_class}">{e(text)}</p>', base, [("projects", "/")])
