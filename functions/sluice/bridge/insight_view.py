"""The delivery-metrics section of a service's page: numbers and a small server-rendered SVG
chart each (no script, no inline style: SVG presentation attributes only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sluice.bridge.views import e
from sluice.core.delivery_metrics import SECONDS_BUCKETS, duration_text

#: The window of the delivery metrics on a service's page (days).
METRICS_DAYS = 30
W, H = 240, 64
COLORS = {"pass": "#2f855a", "warning": "#dd6b20", "fail": "#c53030", "promoted": "#2f855a", "caught": "#c53030",
          "bar": "#3182ce"}
REASON_COLORS = ["#c53030", "#dd6b20", "#6b46c1", "#d69e2e", "#718096", "#2c5282"]



def _svg(title: str, inner: str, height: int = H) -> str:
    return (f'<svg class="metric-chart" role="img" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{e(title)}</title>{inner}</svg>')


def bars(title: str, values: Sequence[float], labels: Sequence[str], color: str = COLORS["bar"]) -> str:
    """Vertical bars, one per value, scaled to the largest (a zero axis line below)."""
    top = max([*values, 1.0])
    n = max(len(values), 1)
    step = W / n
    parts = [f'<line x1="0" y1="{H - 1}" x2="{W}" y2="{H - 1}" stroke="#a0aec0" stroke-width="1"/>']
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = 0 if value <= 0 else max(2.0, (H - 4) * value / top)
        parts.append(f'<rect class="bar" x="{i * step + 1:.1f}" y="{H - 1 - h:.1f}" width="{max(step - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="{color}" data-value="{value:g}"><title>{e(label)}: {value:g}</title></rect>')
    return _svg(title, "".join(parts))


def stacked(title: str, parts_: Sequence[tuple[str, float, str]]) -> str:
    """One horizontal bar split by share (label, count, color)."""
    total = sum(v for _, v, _ in parts_)
    if total <= 0:
        return _svg(title, f'<rect x="0" y="8" width="{W}" height="16" fill="#edf2f7"/>', 32)
    x, out = 0.0, []
    for label, value, color in parts_:
        if value <= 0:
            continue
        w = W * value / total
        out.append(f'<rect class="bar" x="{x:.1f}" y="8" width="{w:.1f}" height="16" fill="{color}" data-value="{value:g}">'
                   f'<title>{e(label)}: {value:g}</title></rect>')
        x += w
    return _svg(title, "".join(out), 32)


def _card(title: str, number: str, detail: str, chart: str, key: str) -> str:
    return (f'<figure class="metric" data-metric="{e(key)}"><figcaption>{e(title)}</figcaption>'
            f'<p class="metric-number">{number}</p><p class="muted">{detail}</p>{chart}</figure>')


def metrics_section(m: Mapping[str, Any], since: str) -> str:
    """The section for ``sluice get metrics``'s document ``m``."""
    freq, lead = m["deployment_frequency"], m["lead_time"]
    daily = m.get("daily", [])
    cards = [
        _card(
            f"Deployments to {m.get('last_stage') or 'the last stage'}", e(freq["deployments"]),
            f"{e(freq['per_day'])} a day over {e(freq['days'])} days",
            bars("deployments per day", [float(d["promoted"]) for d in daily], [str(d["day"]) for d in daily],
                 COLORS["promoted"]), "deployment-frequency"),
        _card(
            "Lead time", f"median {e(duration_text(lead['median_s']))}",
            f"p90 {e(duration_text(lead['p90_s']))} · {e(lead['count'])} deliveries, first event → promoted in {e(m.get('last_stage'))}",
            bars("lead times by bucket", [float(c) for c in lead.get("buckets", [])],
                 [f"≤ {duration_text(b)}" for b in SECONDS_BUCKETS] + ["longer"]), "lead-time"),
    ]
    stages = [s for s in m["stages"] if s["ended"] or sum(s["evaluations"].values())]
    cards.append(_card(
        "Time per stage (median)", " · ".join(f"{e(s['stage'])} {e(duration_text(s['duration']['median_s']))}" for s in stages) or "–",
        "p90: " + (" · ".join(f"{e(s['stage'])} {e(duration_text(s['duration']['p90_s']))}" for s in stages) or "–"),
        bars("median time per stage", [float(s["duration"]["median_s"] or 0) for s in stages], [s["stage"] for s in stages]),
        "stage-time"))
    for s in stages:
        reasons = list(s["reasons"].items())
        rate = f"{100 * s['catch_rate']:.0f} %" if s["catch_rate"] is not None else "–"
        detail = ", ".join(f"{e(k.replace('_', ' '))} {e(v)}" for k, v in reasons) or "nothing caught"
        chart = stacked(f"{s['stage']}: outcomes", [("promoted", float(s["outcomes"].get("promoted", 0)), COLORS["promoted"])]
                        + [(k, float(v), REASON_COLORS[i % len(REASON_COLORS)]) for i, (k, v) in enumerate(reasons)])
        cards.append(_card(f"Gate catch rate in {s['stage']}", e(rate), f"{e(s['caught'])} of {e(s['ended'])} · {detail}",
                           chart, f"catch-rate-{s['stage']}"))
        verdicts = s["evaluations"]
        if verdicts:
            cards.append(_card(
                f"Evaluations in {s['stage']}", " · ".join(f"{e(k)} {e(v)}" for k, v in verdicts.items()),
                f"mean score {e(s['mean_score'])}" if s["mean_score"] is not None else "",
                stacked(f"{s['stage']}: evaluations by result",
                        [(k, float(verdicts.get(k, 0)), COLORS[k]) for k in ("pass", "warning", "fail") if k in verdicts]),
                f"evaluations-{s['stage']}"))
    return (f'<section class="metrics" id="metrics"><h2>Delivery metrics <small class="muted">last {e(since)}</small></h2>'
            f'<div class="metric-grid">{"".join(cards)}</div></section>')
