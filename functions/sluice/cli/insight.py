"""``sluice get metrics``, ``sluice add notification``, ``sluice get notifications`` and
``sluice set notification-secret``: what deliveries did, and who is told."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sluice.cli import common
from sluice.cli.triggers import _group
from sluice.core.delivery_metrics import duration_text

#: ``sluice.core.notification.TRIGGERS`` / ``FORMATS`` (a test keeps them equal; importing the
#: core here would slow every CLI start a little for commands that do not need it).
TRIGGERS = ("promoted", "rolled_back", "stopped", "declined", "failed", "superseded", "approval")
FORMATS = ("slack", "cloudevent")


def register(subparsers: Any) -> None:
    get = _group(subparsers, "get", "show events, evaluations, …")
    metrics = get.add_parser("metrics", help="delivery metrics: frequency, lead time, time per stage, the gate's catch rate")
    metrics.add_argument("--project", required=True)
    metrics.add_argument("--service", default="", help="one service (default: every service of the project)")
    metrics.add_argument("--since", default="30d", help="the window: 30d, 12h, 2w (whole UTC days; at most 90d)")
    common.add_state_args(metrics)
    common.add_output_arg(metrics)
    metrics.set_defaults(func=get_metrics)

    sent = get.add_parser("notifications", help="notifications: what was sent, when, the answer, what failed")
    sent.add_argument("--project", required=True)
    sent.add_argument("--service", default="")
    sent.add_argument("--limit", type=int, default=50, help="the newest N (default 50; 0 = all)")
    common.add_state_args(sent)
    common.add_output_arg(sent)
    sent.set_defaults(func=get_notifications)

    add = _group(subparsers, "add", "add a notification")
    note = add.add_parser("notification", help="post to a webhook (Slack or CloudEvents) when deliveries end")
    note.add_argument("--project", required=True)
    target = note.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="https URL (http only to 127.0.0.1 / ::1 / localhost)")
    target.add_argument("--url-secret", help="the URL is secret (Slack webhooks): the name of a secret holding it")
    note.add_argument("--on", required=True, help=f"comma-separated: {', '.join(TRIGGERS)}")
    note.add_argument("--format", choices=FORMATS, default="slack")
    note.add_argument("--stage", default="", help="only this stage (default: every stage)")
    note.add_argument("--secret", default="", help="sign each body with this secret (X-Sluice-Signature-256)")
    note.add_argument("--name", default="", help="the notification's name (default: derived from its target)")
    common.add_state_args(note)
    note.set_defaults(func=add_notification)

    secret = _group(subparsers, "set", "set a setting").add_parser(
        "notification-secret", help="store a secret for notifications (read from stdin; a 0600 file)")
    secret.add_argument("name")
    common.add_state_args(secret)
    secret.set_defaults(func=set_notification_secret)


def get_metrics(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from sluice.core.delivery_metrics import parse_window
    from sluice.errors import ValidationError
    from sluice.services.insight import delivery_metrics

    try:
        window = parse_window(args.since)
    except ValueError as err:
        raise ValidationError("--since", [str(err)]) from err
    m = delivery_metrics(common.records(args), args.project, args.service, window, datetime.now(UTC))
    if args.output == "json":
        common.print_json(m)
        return 0
    scope = f"{args.project}/{args.service}" if args.service else f"{args.project} (all services)"
    freq, lead = m["deployment_frequency"], m["lead_time"]
    print(f"Delivery metrics of {scope}, {m['since'][:10]} – {m['until'][:10]}")
    print(f"  deployments to {m['last_stage'] or 'the last stage'}: {freq['deployments']} "
          f"({freq['per_day']:g} a day over {freq['days']} days)")
    print(f"  lead time (first event → promoted in {m['last_stage']}): median {duration_text(lead['median_s'])}, "
          f"p90 {duration_text(lead['p90_s'])} ({lead['count']} deliveries)")
    print(f"  {'stage':14} {'ended':>5} {'caught':>6} {'rate':>6}  {'median':>8} {'p90':>8}  evaluations        reasons")
    for s in m["stages"]:
        rate = f"{100 * s['catch_rate']:.0f} %" if s["catch_rate"] is not None else "–"
        evals = " ".join(f"{k} {v}" for k, v in s["evaluations"].items()) or "–"
        reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s["reasons"].items()) or "–"
        print(f"  {s['stage']:14} {s['ended']:>5} {s['caught']:>6} {rate:>6}  {duration_text(s['duration']['median_s']):>8} "
              f"{duration_text(s['duration']['p90_s']):>8}  {evals:18} {reasons}")
    return 0



def get_notifications(args: argparse.Namespace) -> int:
    from sluice.services.insight import outbox_entries

    records = common.records(args)
    records.project(args.project)  # must exist
    entries = outbox_entries(records, args.project, args.service)
    if args.limit > 0:
        entries = entries[: args.limit]
    if args.output == "json":
        common.print_json(entries)
        return 0
    if not entries:
        print(f"no notifications of project {args.project} yet")
    for e in entries:
        code = e.get("code")
        print(f"{str(e.get('created', ''))[:19]:19}  {e.get('name', ''):16} {e.get('phase', ''):8}  "
              f"{'answer ' + str(code) if code is not None else 'no answer':10}  attempts {e.get('attempts', 0)}  "
              f"{e.get('service', '')} {e.get('stage', '')} {e.get('trigger', '')}  {e.get('context', '')}")
        if e.get("sent"):
            print(f"{'':21}sent {e['sent']}")
        if e.get("error") and e.get("phase") != "sent":
            print(f"{'':21}{e['error']}")
    return 0


def add_notification(args: argparse.Namespace) -> int:
    import hashlib

    from sluice.core.notification import parse_notification
    from sluice.errors import ValidationError
    from sluice.services.insight import add_notification as add

    target = args.url or f"secret:{args.url_secret}"
    name = args.name or "n-" + hashlib.sha256(f"{target}#{args.stage}#{args.format}".encode()).hexdigest()[:8]
    doc: dict[str, Any] = {"on": [x.strip() for x in args.on.split(",") if x.strip()], "format": args.format}
    for key, value in (("url", args.url), ("urlSecret", args.url_secret), ("stage", args.stage), ("secret", args.secret)):
        if value:
            doc[key] = value
    try:
        config = parse_notification(name, doc)
    except ValueError as err:
        raise ValidationError("notification", [str(err)]) from err
    records = common.records(args)
    new = add(records, args.project, config)
    where = f"stage {config.stage}" if config.stage else "every stage"
    shown = config.url.split("?")[0] if config.url else f"the URL in secret {config.url_secret!r}"
    print(f"Notification {config.name} {'added' if new else 'updated'}: {config.format} to {shown} "
          f"on {', '.join(config.on)} in {where} of project {args.project}")
    from sluice.compose import build_notification_secrets

    secrets = build_notification_secrets(common.settings(args))
    for needed in (config.secret, config.url_secret):
        if needed and not secrets.exists(needed):
            print(f"Note: secret {needed!r} is not set yet (messages are refused until it is): "
                  f"sluice set notification-secret {needed} < file", file=sys.stderr)
    return 0


def set_notification_secret(args: argparse.Namespace) -> int:
    from sluice.compose import build_notification_secrets
    from sluice.core.validation import dns_label_problem
    from sluice.errors import ValidationError

    problem = dns_label_problem("name", args.name)
    if problem:
        raise ValidationError("notification-secret", [problem])
    if sys.stdin.isatty():
        print(f"Type the secret {args.name} and press Enter (it is not echoed back):", file=sys.stderr)
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ValidationError("notification-secret", ["the secret is empty (expected it on stdin)"])
    path = build_notification_secrets(common.settings(args)).put(args.name, value)
    print(f"Secret {args.name} stored in {path} (mode 0600)")
    return 0
