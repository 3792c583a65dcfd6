"""``sluice get dead-letters``: the events the local broker gave up delivering, and why."""

from __future__ import annotations

import argparse
from typing import Any

from sluice.cli import common
from sluice.core.validation import instant_key


def register(subparsers: Any) -> None:
    get = subparsers.choices.get("get")
    if get is None:  # ``sluice.cli.get`` is not there: make the ``get`` group here
        get = subparsers.add_parser("get", help="show events, evaluations, dead letters, …")
        get.add_subparsers(dest="what", metavar="WHAT", required=True)
    group = next(a for a in get._actions if isinstance(a, argparse._SubParsersAction))
    parser = group.add_parser("dead-letters", help="events the local broker could not deliver")
    parser.add_argument("--trigger", help="only those of this Trigger")
    parser.add_argument("--limit", type=int, default=50, help="the newest N (default 50; 0 = all)")
    common.add_state_args(parser)
    common.add_output_arg(parser)
    parser.set_defaults(func=get_dead_letters)


def get_dead_letters(args: argparse.Namespace) -> int:
    from sluice.embedded.broker import deadletters

    path = deadletters.path_for(common.settings(args).state_dir)
    records = deadletters.read(path) + common.records(args).dead_letters()  # local broker + a cluster's sink
    records.sort(key=lambda r: instant_key(r.get("time")))  # the sink keeps the producer's form of the time
    if args.trigger:
        records = [r for r in records if r.get("trigger") == args.trigger]
    if args.limit > 0:
        records = records[-args.limit :]
    if args.output == "json":
        common.print_json(records)
        return 0
    if not records:
        print(f"no dead letters ({path})")
        return 0
    for r in records:
        event = r.get("event") or {}
        print(f"{str(r.get('time', ''))[:23]:23}  {r.get('trigger', ''):20}  status {r.get('status', 0):<3}  "
              f"attempts {r.get('attempts', 0):<2}  {event.get('type', '')} {event.get('id', '')}")
        print(f"{'':25}{r.get('reason', '')}")
    return 0
