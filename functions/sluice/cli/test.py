"""``sluice test``: run a test spec against any URL, with a progress bar and a summary table.

    sluice test --spec tests.yaml --url http://127.0.0.1:8080 --strategy performance --duration 10s

Without ``--spec`` the default test spec is used (and the output says so). Exit codes: 0 the
test passed, 1 it failed, 2 bad input (an unreadable or invalid spec, a bad flag), 4 the
measurement cannot be trusted (the load generator fell behind its schedule: run it again on a
less loaded machine).
The progress bar goes to stderr, so ``--output json`` keeps stdout machine-readable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sluice.cli import common
from sluice.errors import ValidationError

DEFAULT_LIMIT_S = 900.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run a tests.yaml (health, functional or performance) against a URL",
        description="Run a test spec against a URL: health check first, then the strategy's tests.",
    )
    parser.add_argument("--spec", help="tests.yaml to run (default: the documented default spec)")
    parser.add_argument("--url", required=True, help="base URL of the service, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--strategy", choices=["functional", "performance"], default="functional",
        help="which tests to run after the health check (default functional)",
    )
    parser.add_argument("--duration", help="override the performance duration, e.g. 10s or 2m")
    parser.add_argument(
        "--limit", default=f"{DEFAULT_LIMIT_S:g}s",
        help=f"hard time limit of the whole test (default {DEFAULT_LIMIT_S:g}s)",
    )
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text", help="output format")
    parser.set_defaults(func=run)


def _seconds(flag: str, value: str) -> float:
    from sluice.core.validation import parse_duration

    seconds = parse_duration(value)
    if seconds is None or seconds <= 0:
        raise ValidationError(flag, [f"expected a duration like 30s, 2m or a number of seconds > 0, found {value!r}"])
    return seconds


def run(args: argparse.Namespace) -> int:
    from sluice.services.testing import run_tests
    from sluice.services.testspecs import load_test_spec

    try:
        spec = None
        plans: dict[str, str] = {}
        if args.spec:
            try:
                with open(args.spec, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as err:
                raise ValidationError(args.spec, [f"cannot read the file: {err.strerror}"]) from err
            spec = load_test_spec(text, args.spec)
            for uri in spec.jmeter.plans(args.strategy) if spec.jmeter else ():  # beside the spec, as stored
                plan = Path(args.spec).parent / uri
                if plan.is_file():
                    plans[uri] = plan.read_text(encoding="utf-8")
        duration = _seconds("--duration", args.duration) if args.duration else None
        limit = _seconds("--limit", args.limit)
        with _Progress(enabled=sys.stderr.isatty() or args.output == "text") as progress:
            report = run_tests(spec, args.strategy, args.url, limit, duration_s=duration, on_progress=progress.update,
                               plans=plans, jmeter=common.settings(args).jmeter)
    except ValidationError as err:
        print(f"sluice test: {err.subject}:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.output == "json":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_summary(report)
    if report.passed and report.inconclusive:
        return 4
    return 0 if report.passed else 1


class _Progress:
    """A rich progress bar on stderr: one task per phase (health, functional, performance)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.start()
        return self

    def update(self, phase: str, done: int, total: int | None) -> None:
        if self._progress is None:
            return
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(phase, total=total)
        self._progress.update(self._tasks[phase], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_summary(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report.passed and report.inconclusive:
        console.print(f"[bold yellow]INCONCLUSIVE[/] {report.message}")
    else:
        colour = "green" if report.passed else "red"
        console.print(f"[bold {colour}]{report.result.upper()}[/] {report.message}")
    console.print(f"window {report.start} → {report.end}")
    if report.outcomes:
        table = Table(title="requests")
        for column in ("request", "status", "ms", "result"):
            table.add_column(column)
        for outcome in report.outcomes:
            table.add_row(
                outcome.name, "-" if outcome.status is None else str(outcome.status),
                "-" if outcome.latency_ms is None else f"{outcome.latency_ms:.1f}",
                "[green]pass[/]" if outcome.passed else f"[red]fail[/] {outcome.message}",
            )
        console.print(table)
    if report.load is not None:
        load = report.load
        table = Table(title="load")
        table.add_column("measure")
        table.add_column("value", justify="right")
        rows = [
            ("mode", str(load["mode"])),
            ("requests", str(load["requests"])),
            ("errors", str(load["errors"])),
            ("throughput (req/s)", f"{load.get('throughput', 0):.1f}"),
            ("error rate", f"{load.get('error_rate', 0):.2%}"),
        ]
        for key in ("response_time_avg", "response_time_p50", "response_time_p90", "response_time_p95", "response_time_p99"):
            value = load.get(key)
            rows.append((key.replace("response_time_", "latency ") + " (ms)", "-" if value is None else f"{value:.1f}"))
        rows.append(("statuses", ", ".join(f"{k}: {v}" for k, v in load["statuses"].items())))
        for name, value in rows:
            table.add_row(name, value)
        console.print(table)
