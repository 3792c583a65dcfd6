"""``sluice add-trigger`` / ``remove-trigger`` / ``get triggers`` / ``set intake-secret``:
which registry pushes start deliveries, and the secrets intake checks them with."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sluice.cli import common

#: ``sluice.core.intake.SOURCES`` (a test keeps them equal; importing it would slow every CLI start).
SOURCES = ("dockerhub", "harbor", "github", "ecr", "cloudevents")


def _group(subparsers: Any, name: str, help_text: str) -> Any:
    """The sub-command group ``name`` (``get``, ``set``): reuse the one another module
    registered, or create it."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
        return parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest="what", metavar="WHAT", required=True)


def register(subparsers: Any) -> None:
    add = subparsers.add_parser("add-trigger", help="let pushes of an image repository start deliveries of a service")
    add.add_argument("--project", required=True)
    add.add_argument("--service", required=True)
    add.add_argument("--repository", required=True,
                     help="image repository, e.g. docker.io/keptnexamples/carts (Docker Hub names may be short)")
    add.add_argument("--tag-pattern", default=None,
                     help=r"regular expression a tag must match (default: semantic versions, ^v?\d+\.\d+\.\d+$)")
    add.add_argument("--source", choices=SOURCES, default="", help="only pushes announced by this registry (default: any)")
    add.add_argument("--pin-digest", action="store_true",
                     help="deploy repo:tag@sha256:… (exactly what was pushed) when the registry names the digest")
    common.add_state_args(add)
    add.set_defaults(func=add_trigger)

    remove = subparsers.add_parser("remove-trigger", help="stop pushes of a repository from starting deliveries")
    remove.add_argument("--project", required=True)
    remove.add_argument("--service", required=True)
    remove.add_argument("--repository", required=True)
    common.add_state_args(remove)
    remove.set_defaults(func=remove_trigger)

    get = _group(subparsers, "get", "show events, evaluations, …").add_parser(
        "triggers", help="the registry push triggers and which sources have a secret")
    common.add_state_args(get)
    common.add_output_arg(get)
    get.set_defaults(func=get_triggers)

    secret = _group(subparsers, "set", "set a setting").add_parser(
        "intake-secret", help="the shared secret (GitHub: webhook secret) of a registry source, read from stdin")
    secret.add_argument("--source", required=True, choices=SOURCES)
    common.add_state_args(secret)
    secret.set_defaults(func=set_intake_secret)


def add_trigger(args: argparse.Namespace) -> int:
    from sluice.core.intake import Trigger
    from sluice.services import intake
    from sluice.services.records import Records

    trigger = Trigger.create(args.project, args.service, args.repository, args.tag_pattern, args.source, args.pin_digest)
    store = common.store(args)
    Records(store).require_service(args.project, args.service)
    new = intake.add_trigger(store, trigger)
    verb = "added" if new else "updated"
    source = f" from {trigger.source}" if trigger.source else ""
    print(f"Trigger {verb}: pushes of {trigger.repository}{source} with tags matching {trigger.tag_pattern} "
          f"start a delivery of {trigger.service} in project {trigger.project}")
    configured = intake.configured_sources(common.secrets(args))
    missing = [s for s in ([trigger.source] if trigger.source else SOURCES[:4]) if s not in configured]
    if missing:
        print(f"Note: no intake secret set for {', '.join(missing)} (calls from there are refused): "
              f"sluice set intake-secret --source {missing[0]} < secret-file", file=sys.stderr)
    return 0


def remove_trigger(args: argparse.Namespace) -> int:
    from sluice.errors import NotFoundError
    from sluice.services import intake

    if not intake.remove_trigger(common.store(args), args.repository, args.project, args.service):
        raise NotFoundError(f"no trigger of {args.repository} for {args.project}/{args.service}")
    print(f"Trigger removed: {args.repository} → {args.project}/{args.service}")
    return 0


def get_triggers(args: argparse.Namespace) -> int:
    from sluice.services import intake

    store = common.store(args)
    triggers = intake.list_triggers(store)
    secrets = common.secrets(args)
    intake.migrate_secrets(store, secrets)
    sources = intake.configured_sources(secrets)
    if args.output == "json":
        common.print_json({"triggers": [t.to_dict() for t in triggers], "sourcesWithSecret": sources})
        return 0
    if not triggers:
        print("No triggers. Add one: sluice add-trigger --project P --service S --repository REPO")
    for t in triggers:
        print(f"{t.repository:55}  {t.project}/{t.service:20}  tags {t.tag_pattern}"
              + (f"  from {t.source}" if t.source else "") + ("  (pin digest)" if t.pin_digest else ""))
    print(f"Secrets set for: {', '.join(sources) or 'no source'}")
    return 0


def set_intake_secret(args: argparse.Namespace) -> int:
    from sluice.services import intake

    if sys.stdin.isatty():
        print(f"Type the {args.source} secret and press Enter (it is not echoed back):", file=sys.stderr)
    secret = sys.stdin.readline().rstrip("\r\n")
    secrets = common.secrets(args)
    intake.migrate_secrets(common.store(args), secrets)
    intake.set_secret(secrets, args.source, secret)
    print(f"Intake secret for {args.source} set")
    return 0
