"""``sluice get event`` and ``sluice get evaluations``: read the event log and the history.

The read-model is imported when a command runs (the CLI imports every command module to build
its parser).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sluice.cli import common
from sluice.core.validation import context_id, instant_key, whole_number_problem
from sluice.errors import ConfigurationError, NotFoundError
from sluice.services.records import HISTORY_LIMIT
from sluice.services.verdicts import reasons, verdict_label


def register(subparsers: Any) -> None:
    get = subparsers.add_parser("get", help="show events, evaluations, …")
    get_sub = get.add_subparsers(dest="what", metavar="WHAT", required=True)
    event = get_sub.add_parser("event", help="the events of a delivery (or the newest ones)")
    event.add_argument("--context", help="a delivery (shkeptncontext)")
    event.add_argument("--type", help="only events of this type (e.g. sh.keptn.events.evaluation-done)")
    event.add_argument("--project", default="")
    event.add_argument("--limit", type=int, default=50)
    event.add_argument("--deliveries", type=int, default=10, metavar="N",
                       help="look through the newest N deliveries (default 10; without --context)")
    common.add_state_args(event)
    common.add_output_arg(event)
    event.set_defaults(func=get_event)

    evals = get_sub.add_parser("evaluations", help="the evaluation history of a service in a stage")
    evals.add_argument("--project", required=True)
    evals.add_argument("--stage", required=True)
    evals.add_argument("--service", required=True)
    evals.add_argument("--limit", type=whole_number(1, HISTORY_LIMIT), default=10, metavar="N",
                       help=f"the newest N evaluations (default 10, 1 to {HISTORY_LIMIT}), as the web API's ?limit=")
    evals.add_argument("--offset", type=whole_number(0, 100_000), default=0, metavar="N",
                       help="after skipping the newest N (default 0), as the web API's ?offset=")
    evals.add_argument("--all", action="store_true", help="include archived evaluations (needs an archive)")
    common.add_state_args(evals)
    common.add_output_arg(evals)
    evals.set_defaults(func=get_evaluations)


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (argparse names the option at fault)."""
    def parse(text: str) -> int:
        problem = whole_number_problem(text, low, high)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return int(text)
    return parse


def get_event(args: argparse.Namespace) -> int:
    records = common.records(args)
    if args.context:
        events = records.events(context_id(args.context))
        if not events:
            raise NotFoundError(f"no events for delivery {args.context}")
    else:  # the newest deliveries first, until the page is full: at most --deliveries logs are read
        events = []
        for context in reversed(records.contexts(args.project, limit=max(args.deliveries, 1))):
            events.extend(e for e in records.events(context) if not args.type or e.get("type") == args.type)
            if len(events) >= args.limit:
                break
        events.sort(key=lambda e: instant_key(e.get("time")))
        events = events[-args.limit :]
    if args.type and args.context:
        events = [e for e in events if e.get("type") == args.type]
    if args.output == "json":
        common.print_json(events)
        return 0
    from sluice.services.readmodel import describe

    for e in events:
        print(f"{e.get('time', '')[:23]:23}  {e.get('source', ''):18}  {describe(e)}")
    return 0


def get_evaluations(args: argparse.Namespace) -> int:
    from sluice.services import readmodel

    records = common.records(args)
    if args.all:  # the stored history and the archive behind it, paged together
        if records.archive is None:
            raise ConfigurationError("--all reads the archive, but none is configured (set SLUICE_ARCHIVE=s3 and SLUICE_ARCHIVE_BUCKET)")
        history = readmodel.evaluations(records, args.project, args.stage, args.service)
        history = history + list(reversed(records.archived_evaluations(args.project, args.stage, args.service)))
        history = history[args.offset:args.offset + args.limit]
    else:  # the history's head and only the chunks shown
        history = readmodel.evaluation_page(records, args.project, args.stage, args.service, args.limit, args.offset)[0]
    if args.output == "json":
        common.print_json(history)
        return 0
    if not history:
        print(f"no evaluations of {args.service} in {args.project}/{args.stage}")
    for e in history:
        print(f"{str(e.get('time', ''))[:19]:19}  {e.get('image', '')}  {verdict_label(e)}  score {e.get('score', 0):.2f}")
        for reason in reasons(e):
            print(f"    inconclusive: {reason}")
        for ind in e.get("indicators", []):
            criteria = " ".join(f"{t['criteria']}{' ✗' if t.get('violated') else ''}" for t in ind.get("targets", []))
            value = ind.get("value")
            shown = f"{value:.1f}" if isinstance(value, int | float) else "n/a"
            print(f"    {ind.get('name', ''):22} {shown:>9}  {ind.get('status', ''):7} {criteria}  {ind.get('message', '')}".rstrip())
    return 0
