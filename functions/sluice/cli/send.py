"""``sluice send event …``: start deliveries, evaluations and approvals by sending CloudEvents.

After the broker accepts the event (202), the command follows it for ``--wait`` seconds
(default ``DEFAULT_WAIT_S``; ``--no-wait`` skips this) and reports what became of it: which
function handled it (a reply event whose ``triggeredid`` is its id, from the delivery's event
log), or on which Trigger it was dead-lettered and why (the local broker's dead-letter log and
the cluster's dead-letter records), or that nothing answered yet.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.cli import common
from sluice.core.events import (
    ApprovalFinished,
    CanaryAction,
    ConfigurationChange,
    Decision,
    Event,
    Payload,
    StartEvaluation,
)
from sluice.core.validation import join_image
from sluice.errors import NotFoundError, ValidationError

SOURCE = "sluice/cli"
#: Seconds ``sluice send event`` follows an event after the broker accepted it.
DEFAULT_WAIT_S = 10.0
_POLL_S = 0.25
#: Once something became of the event, how long to keep looking for the rest (other Triggers).
_SETTLE_S = 1.0


def register(subparsers: Any) -> None:
    send = subparsers.add_parser("send", help="send an event to the broker")
    send_sub = send.add_subparsers(dest="what", metavar="WHAT", required=True)
    event = send_sub.add_parser("event", help="send an event: new-artifact, start-evaluation, approval, canary, or --file")
    event.add_argument("kind", nargs="?", choices=["new-artifact", "start-evaluation", "approval", "canary"])
    event.add_argument("--file", help="a CloudEvent in structured JSON form")
    event.add_argument("--project")
    event.add_argument("--stage", default="")
    event.add_argument("--service")
    event.add_argument("--image")
    event.add_argument("--tag")
    event.add_argument("--start")
    event.add_argument("--end")
    event.add_argument("--timeframe", help="e.g. 5m, 1h: the window ending now")
    event.add_argument("--context", help="the delivery (shkeptncontext) an approval is for")
    decision = event.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_const", const="approve", dest="decision")
    decision.add_argument("--decline", action="store_const", const="decline", dest="decision")
    decision.add_argument("--pause", action="store_const", const="pause", dest="decision",
                          help="canary: hold the delivery at its next judged step (with the stage's approval timeout)")
    decision.add_argument("--resume", action="store_const", const="resume", dest="decision",
                          help="canary: let a paused delivery go on")
    decision.add_argument("--abort", action="store_const", const="abort", dest="decision",
                          help="canary: weight back to 0 now and discard the candidate (a decline)")
    event.add_argument("--approver", help="who approves (default: your user name); signed with the project's approver key")
    wait = event.add_mutually_exclusive_group()
    wait.add_argument("--wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                      help=f"follow the event this long and say what became of it (default {DEFAULT_WAIT_S:g})")
    wait.add_argument("--no-wait", action="store_const", const=0.0, dest="wait", help="do not follow the event")
    common.add_broker_arg(event)
    common.add_state_args(event)
    common.add_output_arg(event)
    event.set_defaults(func=send_event)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n}" for n in names if not getattr(args, n)]
    if missing:
        raise ValidationError(f"send event {args.kind}", [f"{', '.join(missing)} required"])


def _timeframe(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if not match:
        raise ValidationError("--timeframe", [f"expected a number and a unit like 30s, 5m, 2h, 1d, found {text!r}"])
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def build_event(args: argparse.Namespace) -> Event:
    now = _now()
    payload: Payload
    context: str | None = None
    if args.file:
        try:
            doc = json.loads(common.read_file(args.file, "--file"))
        except ValueError as err:
            raise ValidationError("--file", [f"{args.file} is not JSON: {err}"]) from err
        if not isinstance(doc, dict):
            raise ValidationError("--file", [f"{args.file}: expected a CloudEvent (a JSON object), found {type(doc).__name__}"])
        doc.setdefault("specversion", "1.0")
        doc.setdefault("id", str(uuid.uuid4()))
        doc.setdefault("source", SOURCE)
        doc.setdefault("time", _iso(now))
        return Event.from_json_dict(doc)
    if args.kind == "new-artifact":
        _require(args, "project", "service", "image")
        return new_artifact_event(args.project, args.service, args.image, args.tag or "", args.stage)
    if args.kind == "start-evaluation":
        _require(args, "project", "stage", "service")
        if args.timeframe:
            start, end = _iso(now - _timeframe(args.timeframe)), _iso(now)
        elif args.start and args.end:
            start, end = args.start, args.end
        else:
            raise ValidationError("send event start-evaluation", ["give --start and --end, or --timeframe"])
        payload = StartEvaluation(project=args.project, stage=args.stage, service=args.service, start=start, end=end)
    elif args.kind == "approval":
        _require(args, "context", "stage", "decision")
        context = args.context
        project, service = args.project, args.service
        if not (project and service):
            project, service = _find_held(args, args.context, args.stage)
        if args.decision not in ("approve", "decline"):
            raise ValidationError("send event approval", [f"--{args.decision} is for a canary: sluice send event canary"])
        payload = ApprovalFinished(project=project, stage=args.stage, service=service, decision=Decision(args.decision))
    elif args.kind == "canary":
        _require(args, "context", "stage", "decision")
        if args.decision not in ("pause", "resume", "abort"):
            raise ValidationError("send event canary", ["give --pause, --resume or --abort"])
        context = args.context
        project, service = args.project, args.service
        if not (project and service):
            project, service = _find_canary(args, args.context, args.stage)
        payload = ApprovalFinished(project=project, stage=args.stage, service=service, decision=Decision(args.decision))
    else:
        raise ValidationError("send event", ["say what to send: new-artifact, start-evaluation, approval, or --file"])
    return _event(payload, f"send event {args.kind}", context)


def new_artifact_event(project: str, service: str, image: str, tag: str = "", stage: str = "") -> Event:
    """A new delivery of ``image[:tag]`` into ``stage`` (default: the shipyard's first stage)."""
    change = ConfigurationChange(
        project=project, stage=stage, service=service, image=join_image(image, tag), action=CanaryAction.SET, value=100
    )
    return _event(change, "send event new-artifact", None)


def _event(payload: Payload, subject: str, context: str | None) -> Event:
    """Validate ``payload`` the way the functions will, and wrap it in a new event."""
    payload = type(payload).from_dict(payload.to_dict(), subject)
    return Event.new(payload, source=SOURCE, id=str(uuid.uuid4()), time=_iso(_now()), context=context or str(uuid.uuid4()))


def _find_held(args: argparse.Namespace, context: str, stage: str) -> tuple[str, str]:
    from sluice.core.ledger import Phase
    from sluice.services.ledger import Ledger

    for found in Ledger(common.records(args)).lanes(stage=stage):
        run = found.lane.run(context)
        if run is not None and run.phase is Phase.HELD:
            return found.placement.project, found.placement.service
    raise NotFoundError(f"no delivery {context} waits for approval in stage {stage!r}")


def _find_canary(args: argparse.Namespace, context: str, stage: str) -> tuple[str, str]:
    from sluice.core.ledger import Phase
    from sluice.services.ledger import Ledger

    for found in Ledger(common.records(args)).lanes(stage=stage):
        run = found.lane.run(context)
        if run is not None and run.canary is not None and run.phase is not Phase.DONE:
            return found.placement.project, found.placement.service
    raise NotFoundError(f"no canary of delivery {context} runs in stage {stage!r}")


def _require_waiting(args: argparse.Namespace, event: Event) -> None:
    """NotFoundError unless the delivery waits for approval of that service in that stage."""
    from sluice.services import readmodel

    data = event.data
    assert isinstance(data, ApprovalFinished)
    view = readmodel.project_status(common.records(args), data.project)
    waiting = {
        w.get("context")
        for stage in view.get("stages", []) if stage.get("name") == data.stage
        for svc in stage["services"] if svc.get("name") == data.service
        for w in svc.get("waiting_for_approval") or []
    }
    if event.shkeptncontext not in waiting:
        raise NotFoundError(f"no delivery {event.shkeptncontext} waits for approval of {data.service} "
                            f"in {data.project}/{data.stage}")


def _approver(args: argparse.Namespace) -> str:
    import getpass

    if args.approver:
        return str(args.approver)
    try:
        return getpass.getuser()
    except (KeyError, OSError) as err:
        raise ValidationError("send event approval", ["cannot tell who you are: give --approver NAME"]) from err


def send_event(args: argparse.Namespace) -> int:
    from sluice.compose import build_publisher
    from sluice.functions.frontdoor import existence_problems

    event = build_event(args)
    readable = common.settings(args).state != "configmap" or args.state_dir
    if readable:  # what the front door checks
        data = event.data
        if isinstance(data, ConfigurationChange):
            common.records(args).require_service(data.project, data.service)
        problems = existence_problems(data.to_dict(), common.records(args))
        if problems:
            raise ValidationError(f"send event {event.type.value}", problems)
    if event.type.value == "sh.keptn.event.approval.finished":
        from sluice.services.approvals import sign_approval

        if readable and args.kind != "canary":
            _require_waiting(args, event)
        event = sign_approval(event, common.secrets(args), _approver(args))
    url = common.settings(args).broker_url
    build_publisher(url)(event)
    if args.wait < 0:
        raise ValidationError("--wait", [f"expected seconds ≥ 0, found {args.wait:g}"])
    if args.output != "json":
        print(f"Sent {event.type.value} (id {event.id}) to {url}: accepted")
        print(f"Delivery context: {event.shkeptncontext}", flush=True)
    fate = follow(args, event.id, event.shkeptncontext, args.wait) if args.wait > 0 else None
    if args.output == "json":
        doc: dict[str, Any] = {"id": event.id, "type": event.type.value, "shkeptncontext": event.shkeptncontext,
                               "accepted": True}
        if fate is not None:
            doc.update(fate)
        common.print_json(doc)
        return 0
    if fate is not None:
        for handled in fate["handled_by"]:
            print(f"Handled by {handled['function']}: it replied {handled['type']} (id {handled['id']})")
        for dead in fate["dead_lettered"]:
            print(f"Dead-lettered on trigger {dead['trigger'] or '?'} (status {dead['status']}): {dead['reason']}")
        if not fate["handled_by"] and not fate["dead_lettered"]:
            seen = "recorded in the event log, " if fate["recorded"] else ""
            print(f"No function has answered within {args.wait:g} s ({seen}still under way or queued)")
    print(f"Follow it with: sluice get event --context {event.shkeptncontext}")
    return 0


def follow(args: argparse.Namespace, event_id: str, context: str, wait_s: float) -> dict[str, Any]:
    """What became of event ``event_id`` within ``wait_s`` seconds: the functions that replied to
    it, the Triggers that dead-lettered it (with the reason), and whether the event log has it."""
    from sluice.embedded.broker import deadletters

    records = common.records(args)
    local = deadletters.path_for(common.settings(args).state_dir)
    deadline = time.monotonic() + wait_s
    settle: float | None = None
    while True:
        log = records.events(context)
        replies = [e for e in log if e.get("triggeredid") == event_id and e.get("id") != event_id]
        letters = [d for d in deadletters.read(local) + records.dead_letters()
                   if (d.get("event") or {}).get("id") == event_id]
        now = time.monotonic()
        if (replies or letters) and settle is None:
            settle = min(deadline, now + _SETTLE_S)
        if now >= (settle if settle is not None else deadline):
            break
        time.sleep(_POLL_S)
    return {
        "recorded": any(e.get("id") == event_id for e in log),
        "handled_by": [
            {"function": str(e.get("source", "")).removeprefix("sluice/"), "type": e.get("type", ""), "id": e.get("id", "")}
            for e in replies
        ],
        "dead_lettered": [
            {"trigger": d.get("trigger", ""), "status": d.get("status", 0), "reason": d.get("reason", "")} for d in letters
        ],
    }
