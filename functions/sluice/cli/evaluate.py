"""``sluice evaluate``: a quality gate usable from any pipeline.

    sluice evaluate --slo SLO.yaml --sli VALUES [--previous EVAL.json ...]
                    [--test-result pass|fail] [--output text|json]

Exit code: 0 pass, 3 warning, 1 fail, 2 bad input or usage. Errors are one sentence on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from sluice.core.scoring import EvaluationResult, IndicatorResult, IndicatorStatus, Verdict, evaluate
from sluice.errors import ValidationError
from sluice.services.documents import load_evaluation, load_slo, load_values

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_WARNING = 3

EXIT_CODES = {Verdict.PASS: EXIT_PASS, Verdict.WARNING: EXIT_WARNING, Verdict.FAIL: EXIT_FAIL}


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command to an argparse sub-parsers object (sets ``func``)."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score SLI values against an SLO (Keptn quality-gate format)",
        description=(
            "Score SLI values against an SLO file (Keptn's slo.yaml, spec 0.1.x) as Keptn's "
            "lighthouse does. Exit code: 0 pass, 3 warning, 1 fail, 2 bad input or usage."
        ),
    )
    parser.add_argument("--slo", required=True, metavar="SLO.yaml", help="the SLO file")
    parser.add_argument(
        "--sli",
        required=True,
        metavar="VALUES",
        help="JSON or YAML mapping SLI name -> number, or -> {value, success, message}",
    )
    parser.add_argument(
        "--previous",
        action="extend",  # '--previous a b' and '--previous a --previous b' both keep every file
        nargs="+",
        default=[],
        metavar="EVAL.json",
        help="earlier outputs of 'sluice evaluate --output json', oldest first (repeatable)",
    )
    parser.add_argument(
        "--test-result",
        choices=("pass", "fail"),
        default="pass",
        help="result of the tests before the evaluation; fail forces the gate to fail",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--id", default="", help="id of this evaluation (default: a new UUID)")
    parser.set_defaults(func=run)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ValidationError(path, [f"cannot read the {what}: no such file"]) from err
    except IsADirectoryError as err:
        raise ValidationError(path, [f"cannot read the {what}: it is a directory"]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ValidationError(path, [f"cannot read the {what}: {err}"]) from err


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the gate for parsed arguments; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        slo = load_slo(_read(args.slo, "SLO file"), args.slo)
        values = load_values(_read(args.sli, "SLI values file"), args.sli)
        previous: list[EvaluationResult] = []
        for path in args.previous:
            prev = load_evaluation(_read(path, "previous evaluation"), path)
            if not prev.id:
                prev = _with_id(prev, path)
            previous.append(prev)
    except ValidationError as exc:
        err.write(f"sluice evaluate: {exc.subject}: {'; '.join(exc.problems)}\n")
        return EXIT_USAGE

    result = evaluate(
        slo,
        values,
        previous,
        test_failed=args.test_result == "fail",
        evaluation_id=args.id or str(uuid.uuid4()),
    )
    if args.output == "json":
        json.dump(result.to_dict(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        render_text(result, out)
    return EXIT_CODES[result.result]


def _with_id(prev: EvaluationResult, path: str) -> EvaluationResult:
    from dataclasses import replace

    return replace(prev, id=path)


_STATUS_STYLE = {
    IndicatorStatus.PASS: "green",
    IndicatorStatus.WARNING: "yellow",
    IndicatorStatus.FAIL: "red",
    IndicatorStatus.ERROR: "magenta",
    IndicatorStatus.INFO: "cyan",
}
_VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.WARNING: "bold yellow", Verdict.FAIL: "bold red"}


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.6g}"


def _targets_text(ind: IndicatorResult) -> str:
    lines = []
    for t in ind.targets:
        mark = "·" if ind.status is IndicatorStatus.ERROR else "✗" if t.violated else "✓"
        threshold = "no baseline" if t.target_value is None else _num(t.target_value)
        lines.append(f"{mark} {t.kind.value} {t.criteria} → {threshold}")
    return "\n".join(lines) or "-"


def render_text(result: EvaluationResult, out: TextIO) -> None:
    """A readable table of the result (rich), written to ``out``."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=max(120, Console(file=out).width), highlight=False, soft_wrap=False)
    verdict = result.result
    warning = "" if result.total_score.warning is None else f", warning {_num(result.total_score.warning)}%"
    console.print(
        f"Quality gate: [{_VERDICT_STYLE[verdict]}]{verdict.value.upper()}[/]  "
        f"score {_num(result.score)} ({result.arithmetic}); thresholds: pass {_num(result.total_score.pass_)}%{warning}"
    )
    if result.message:
        console.print(result.message, markup=False)
    if result.comparison is not None:
        c = result.comparison
        compared = ", ".join(c.compared_evaluations) or "nothing yet"
        console.print(
            f"Compared with: {compared} ({c.compare_with or 'lighthouse default'}, "
            f"{c.number_of_comparison_results} result(s), include {c.include_result_with_score}, "
            f"{c.aggregate_function})",
            markup=False,
        )
    table = Table(show_lines=True)
    table.add_column("SLI", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("status")
    table.add_column("score", justify="right")
    table.add_column("targets: criterion → threshold", no_wrap=True)
    table.add_column("baseline", justify="right")
    table.add_column("message")
    for ind in result.indicators:
        name = ind.name + (" (key)" if ind.key_sli else "")
        if ind.display_name:
            name += f"\n{ind.display_name}"
        style = _STATUS_STYLE[ind.status]
        table.add_row(
            name,
            _num(ind.value),
            f"[{style}]{ind.status.value}[/]",
            f"{_num(ind.score)}/{_num(ind.weight)}" if ind.status is not IndicatorStatus.INFO else "-",
            _targets_text(ind),
            "-" if ind.comparison is None else _num(ind.comparison.value),
            ind.message,
        )
    console.print(table)
