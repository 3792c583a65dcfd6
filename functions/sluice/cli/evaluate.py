"""``sluice evaluate``: a quality gate usable from any pipeline, and what-if replay of an SLO.

    sluice evaluate --slo SLO.yaml --sli VALUES [--previous EVAL.json ...]
                    [--test-result pass|fail] [--output text|json]
                    [--strict-data] [--min-samples N] [--no-baseline pass|inconclusive]
    sluice evaluate --replay --project P --stage S --service X --slo NEW.yaml [--last N] [--output json]

Exit code: 0 pass, 3 warning, 1 fail, 2 bad input or usage, 4 inconclusive with
``--strict-data`` (the gate could not judge). Replay exits 0 (2 on bad input). Errors are one
sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sluice.core.inconclusive import DEFAULT_MIN_SAMPLES, DataRules
from sluice.core.scoring import EvaluationResult, IndicatorResult, IndicatorStatus, Subject, Verdict, evaluate
from sluice.errors import SluiceError, ValidationError
from sluice.services.documents import load_evaluation, load_slo, load_values

if TYPE_CHECKING:
    from sluice.core.replay import ReplayReport

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_WARNING = 3
EXIT_INCONCLUSIVE = 4

EXIT_CODES = {Verdict.PASS: EXIT_PASS, Verdict.WARNING: EXIT_WARNING, Verdict.FAIL: EXIT_FAIL}


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command to an argparse sub-parsers object (sets ``func``)."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score SLI values against an SLO (Keptn quality-gate format)",
        description=(
            "Score SLI values against an SLO file (Keptn's slo.yaml, spec 0.1.x) as Keptn's "
            "lighthouse does. Exit code: 0 pass, 3 warning, 1 fail, 2 bad input or usage, "
            "4 inconclusive with --strict-data. With --replay: re-score a service's stored "
            "evaluations under a new SLO and show which builds it would have let through."
        ),
    )
    parser.add_argument("--slo", required=True, metavar="SLO.yaml", help="the SLO file")
    parser.add_argument(
        "--sli",
        metavar="VALUES",
        help="JSON or YAML mapping SLI name -> number, or -> {value, success, message, samples} (not with --replay)",
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
    parser.add_argument(
        "--strict-data", action="store_true",
        help="exit 4 when the evaluation is inconclusive (an SLI not measured, too few samples, ...)",
    )
    parser.add_argument(
        "--min-samples", type=int, default=DEFAULT_MIN_SAMPLES, metavar="N",
        help=f"fewer requests than N behind a value (its 'samples') make it inconclusive (default {DEFAULT_MIN_SAMPLES}; 0: off)",
    )
    parser.add_argument(
        "--no-baseline", choices=("pass", "inconclusive"), default="pass",
        help="a relative criterion with nothing to compare with: passes (Keptn, default) or is inconclusive",
    )
    replay = parser.add_argument_group("what-if replay (reads the stored history; writes nothing)")
    replay.add_argument("--replay", action="store_true", help="re-score the stored evaluations under --slo")
    replay.add_argument("--project", help="the project (with --replay)")
    replay.add_argument("--stage", help="the stage (with --replay)")
    replay.add_argument("--service", help="the service (with --replay)")
    replay.add_argument("--last", type=int, metavar="N", help="show only the newest N builds (all are replayed)")
    replay.add_argument("--state-dir", help="local state directory (default .sluice, or SLUICE_STATE_DIR)")
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
    usage = _usage_problem(args)
    if usage:
        err.write(f"sluice evaluate: {usage}\n")
        return EXIT_USAGE
    if args.replay:
        return run_replay(args, out, err)
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
        subject=Subject(id=args.id or str(uuid.uuid4())),
        rules=DataRules(args.min_samples, args.no_baseline == "inconclusive"),
    )
    if args.output == "json":
        json.dump(result.to_dict(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        render_text(result, out)
    if args.strict_data and result.inconclusive:
        return EXIT_INCONCLUSIVE
    return EXIT_CODES[result.result]


def _usage_problem(args: argparse.Namespace) -> str:
    if args.min_samples < 0:
        return f"--min-samples: expected a whole number >= 0, found {args.min_samples}"
    if args.replay:
        missing = [f"--{n}" for n in ("project", "stage", "service") if not getattr(args, n)]
        if missing:
            return f"--replay needs {', '.join(missing)}"
        if args.sli or args.previous:
            return "--replay reads the stored evaluations: --sli and --previous do not apply"
        if args.last is not None and args.last < 1:
            return f"--last: expected a whole number >= 1, found {args.last}"
        return ""
    if not args.sli:
        return "--sli is required (the measured values), unless --replay"
    if args.last is not None or args.project or args.stage or args.service:
        return "--project/--stage/--service/--last go with --replay"
    return ""


def run_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``--replay``: re-score the stored history of a service in a stage under ``--slo``."""
    from sluice.cli import common
    from sluice.services.replay import replay_history

    try:
        slo = load_slo(_read(args.slo, "SLO file"), args.slo)
        report, skipped = replay_history(common.records(args), args.project, args.stage, args.service, slo, args.last)
    except ValidationError as exc:
        err.write(f"sluice evaluate: {exc.subject}: {'; '.join(exc.problems)}\n")
        return EXIT_USAGE
    except SluiceError as exc:
        err.write(f"sluice evaluate: {exc}\n")
        return EXIT_USAGE
    for note in skipped:
        err.write(f"sluice evaluate: {note}\n")
    if args.output == "json":
        json.dump(report.to_dict(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        render_replay(report, args, out)
    return EXIT_PASS


def _with_id(prev: EvaluationResult, path: str) -> EvaluationResult:
    from dataclasses import replace

    return replace(prev, subject=replace(prev.subject, id=path))


_STATUS_STYLE = {
    IndicatorStatus.PASS: "green",
    IndicatorStatus.WARNING: "yellow",
    IndicatorStatus.FAIL: "red",
    IndicatorStatus.ERROR: "magenta",
    IndicatorStatus.INFO: "cyan",
}
_VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.WARNING: "bold yellow", Verdict.FAIL: "bold red"}
_INCONCLUSIVE_STYLE = "bold magenta"


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
    if result.inconclusive:
        console.print(
            f"[{_INCONCLUSIVE_STYLE}]INCONCLUSIVE[/]: the gate could not judge "
            f"(the verdict above is Keptn's; --strict-data exits 4):"
        )
        for reason in result.inconclusive_reasons:
            console.print(f"  - {reason.message}", markup=False)
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
            "\n".join([ind.message, *(f"{n.method}: {n.reason}" for n in ind.noise)]).strip()
            + ("" if ind.samples is None else f"\n({ind.samples} samples)"),
        )
    console.print(table)


def render_replay(report: ReplayReport, args: argparse.Namespace, out: TextIO) -> None:
    """Per build: image, stored and replayed verdict and score, what flipped; then the counts."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=max(160, Console(file=out).width), highlight=False, soft_wrap=False)
    console.print(
        f"Replay of {args.service} in {args.project}/{args.stage} under {args.slo} "
        f"({len(report.builds)} build(s), oldest first; nothing is written)",
        markup=False,
    )
    table = Table(show_lines=False)
    for column in ("time", "image", "stored", "replayed", "change", "objectives that flipped"):
        table.add_column(column, no_wrap=column != "objectives that flipped")
    for b in report.builds:
        stored = f"{b.stored.value} {_num(round(b.stored_score, 2))}" + (" (inconclusive)" if b.stored_inconclusive else "")
        new = b.replayed
        replayed = f"[{_VERDICT_STYLE[new.result]}]{new.result.value}[/] {_num(round(new.score, 2))}"
        if new.inconclusive:
            replayed += f" [{_INCONCLUSIVE_STYLE}](inconclusive)[/]"
        flips = [f"{f.sli}: {f.before.value if f.before else 'no objective'} → {f.after.value}" for f in b.flips]
        flips += [f"{n}: not measured then" for n in b.not_measured_then]
        change = b.transition + (" (lacking data)" if b.for_lack_of_data else "")
        table.add_row(b.time[:19], b.image or b.id, stored, replayed, change, "\n".join(flips) or "-")
    console.print(table)
    summary = report.to_dict()["summary"]
    assert isinstance(summary, dict)
    console.print(
        f"Summary: {summary['builds']} build(s): {summary['unchanged']} unchanged, "
        f"{summary['pass_to_fail']} pass→fail, {summary['fail_to_pass']} fail→pass"
        + "".join(f", {n} {t}" for t, n in summary["transitions"].items() if t not in ("unchanged", "pass→fail", "fail→pass"))
        + f"; {summary['inconclusive']} inconclusive under the new SLO"
        + (f"; {summary['changed_for_lack_of_data']} changed only where data was not measured then"
           if summary["changed_for_lack_of_data"] else ""),
        markup=False,
    )
    if report.missing_data:
        console.print(
            f"Not measured then (scored as unmeasured, never guessed): {', '.join(report.missing_data)}", markup=False
        )
