"""``sluice status --project P``: stages × services, versions, traffic and the last verdicts."""

from __future__ import annotations

import argparse
from typing import Any

from sluice.cli import common
from sluice.services.verdicts import reasons, verdict_label


def register(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="stages × services: versions, traffic, last evaluation")
    status.add_argument("--project", required=True)
    common.add_state_args(status)
    common.add_output_arg(status)
    status.set_defaults(func=show_status)


def canary_line(canary: dict[str, Any]) -> str:
    """``canary step 2 of 3 (25 %) for <image>: 10 % pass 100 → 25 % …`` (the judged steps so far)."""
    walked = " → ".join(f"{h['weight']} % {h['result']} {h['score']:g}" for h in canary["history"]) or "not judged yet"
    total = len(canary["steps"]) or canary["step"]
    where = f"canary step {canary['step']} of {total} ({canary['weight']} %)" if canary["active"] else "last canary"
    end = f"; {canary['outcome'].replace('_', ' ')}" if not canary["active"] and canary["outcome"] else ""
    why = f" ({canary['stopped']})" if canary["stopped"] and not canary["active"] else ""
    return f"{where} for {canary['image']}: {walked}{end}{why}"


def render(view: dict[str, Any]) -> str:
    lines = [f"Project {view['project']}"]
    for stage in view["stages"]:
        lines.append(f"  {stage['name']} ({stage['deployment_strategy']}, tests: {stage['test_strategy']})")
        for svc in stage["services"]:
            primary = (svc["primary"] or {}).get("image", "—")
            lines.append(f"    {svc['name']}: primary {primary}")
            if svc["candidate"]:
                lines.append(f"      candidate {svc['candidate']['image']}")
            if svc["traffic"]:
                lines.append("      traffic " + ", ".join(f"{k} {v} %" for k, v in svc["traffic"].items()))
            active = svc.get("active_delivery")
            if active:
                lines.append(f"      DELIVERING {active['image'] or '(quality gate)'}: {active['phase']} until {active['deadline']} "
                             f"(delivery {active['context']})")
            canary = svc.get("canary")
            if canary:
                lines.append("      " + canary_line(canary))
            for q in svc["queued"]:
                lines.append(f"      QUEUED {q['image']} (delivery {q['context']})")
            for w in svc["waiting_for_approval"]:
                lines.append(f"      WAITING FOR APPROVAL {w['image']} ({w['result']}; delivery {w['context']}); "
                             f"{w['on_timeout']}s at {w['deadline']} unless decided")
            decision = svc.get("last_decision")
            if decision:
                lines.append(f"      last approval decision: {decision['reason'] or decision['decision']} at {decision['at']} "
                             f"(delivery {decision['context']})")
            last = svc["last_evaluation"]
            if last:
                lines.append(f"      last evaluation: {verdict_label(last)} score {last['score']:.2f} for {last['image']}")
                for reason in reasons(last):
                    lines.append(f"        inconclusive: {reason}")
                for ind in last["indicators"]:
                    criteria = " ".join(
                        f"{t['criteria']}{' ✗' if t.get('violated') else ''}" for t in ind.get("targets", [])
                    )
                    value = ind["value"]
                    shown = f"{value:.1f}" if isinstance(value, int | float) else "n/a"
                    lines.append(f"        {ind['name']:22} {shown:>9}  {ind['status']:7} {criteria}")
                for note in last.get("notes", []):
                    lines.append(f"        note: {note}")
    return "\n".join(lines)


def show_status(args: argparse.Namespace) -> int:
    from sluice.services.readmodel import project_status

    view = project_status(common.records(args), args.project)
    if args.output == "json":
        common.print_json(view)
    else:
        print(render(view))
    return 0
