"""The ``sluice`` command line: Keptn's command names, so habits carry over.

Each sub-command lives in its own module with ``register(subparsers)``; a module is imported
only when the CLI starts, never by a function. Errors are one clear sentence on stderr and a
non-zero exit code (2 for bad input or usage).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sluice.errors import SluiceError

#: Sub-command modules, each with ``register(subparsers)`` that sets ``func(args) -> int``.
COMMANDS = [
    "sluice.cli.evaluate",
    "sluice.cli.project",
    "sluice.cli.send",
    "sluice.cli.get",
    "sluice.cli.deadletters",  # adds ``get dead-letters``: after sluice.cli.get
    "sluice.cli.up",
    "sluice.cli.status",
    "sluice.cli.test",
    "sluice.cli.demo",
    "sluice.cli.triggers",  # adds ``get triggers`` and ``set intake-secret``: after get and project
    "sluice.cli.insight",  # adds ``get metrics``, ``get notifications``, ``add notification``: after get
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Quality-gated delivery: deploy, test, evaluate SLOs, promote or roll back.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except SluiceError as err:
        print(f"sluice: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sluice get event | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
