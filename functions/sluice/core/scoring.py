"""The quality-gate evaluator: score SLI values against an SLO, as Keptn's lighthouse does.

Pure: it takes the SLO, the measurements (including "could not measure") and the previous
evaluations, and returns a frozen :class:`EvaluationResult` that explains itself — per
indicator the value, every target as applied (criterion and the threshold it resolved to),
the comparison value and which previous evaluations it came from, and the score arithmetic.

Rules (lighthouse's, see ``docs/slo-format.md``):

- an objective scores its weight when one of its ``pass`` sets holds (all criteria of a set
  must hold), else half its weight when one of its ``warning`` sets holds, else 0;
- an objective without ``pass`` is informational (status ``info``, not scored);
- total score = 100 × (sum of scores) / (sum of weights of scored objectives); no scored
  objective → pass with 100; ``pass`` if score ≥ total_score.pass, ``warning`` if ≥
  total_score.warning, else ``fail``; a failing key SLI fails the whole evaluation;
- a relative criterion compares with the aggregate of the SLI's successfully measured values in
  the newest admitted previous evaluations, and holds when there is nothing to compare with;
- an SLI that could not be measured scores 0 and is listed with status ``error`` (lighthouse
  said ``fail``, or dropped it from the list when no value arrived at all);
- failed tests force ``fail`` whatever the score.

Beyond lighthouse, never changing its verdict or score:

- an evaluation is **inconclusive** when the gate could not judge (:mod:`sluice.core.inconclusive`):
  a scored or key SLI that could not be measured, fewer samples than ``DataRules.min_samples``
  behind an indicator whose provider counts them, or (when asked) a relative criterion without
  a baseline; ``inconclusive_reasons`` says which and why;
- an objective may opt into a noise-aware comparison (``NoiseRule``): a relative criterion the
  point comparison violates still holds when the difference is within the noise floor, or not
  significant under a Mann–Whitney test of the latency samples; ``IndicatorResult.noise`` shows
  the test, the effect size and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.inconclusive import DataRules
from sluice.core.samples import Alternative, Distribution, RankTest, distribution_from_dict, mann_whitney
from sluice.core.slo import (
    ComparisonMethod,
    CriteriaSet,
    Criterion,
    NoiseRule,
    Objective,
    Operator,
    Slo,
    TotalScore,
)
from sluice.core.validation import Problems, Reader
from sluice.core.verdict import Verdict
from sluice.errors import ValidationError

__all__ = [
    "ComparisonInfo",
    "EvaluationResult",
    "InconclusiveKind",
    "InconclusiveReason",
    "IndicatorComparison",
    "IndicatorResult",
    "IndicatorStatus",
    "Measurement",
    "NoiseCheck",
    "Subject",
    "Target",
    "TargetKind",
    "Verdict",
    "evaluate",
    "select_baseline",
]

NO_VALUE_MESSAGE = "no value received from SLI provider"


class IndicatorStatus(FastStrEnum):
    """One indicator's outcome. ``error`` = could not measure, never confused with ``fail``."""

    PASS = "pass"
    WARNING = "warning"
    FAIL = "fail"
    INFO = "info"
    ERROR = "error"


class TargetKind(FastStrEnum):
    """Whether a target came from the objective's ``pass`` or its ``warning`` criteria."""

    PASS = "pass"
    WARNING = "warning"


@frozen(slots=True)
class Measurement:
    """One SLI value as measured. ``success=False``: could not measure (``value`` is ignored).

    ``samples``: how many requests stand behind the value, when the provider counts them (the
    builtin provider does); ``distribution``: the latency samples behind it, when the provider
    has them (the builtin provider, for its latency indicators).
    """

    name: str
    value: float | None
    success: bool = True
    message: str = ""
    samples: int | None = None
    distribution: Distribution | None = None

    @classmethod
    def from_indicator_value(cls, raw: Mapping[str, object]) -> Measurement:
        """One entry of a ``get-sli.done`` event's ``indicatorValues`` (``SliValue.to_dict()``).

        Malformed optional parts (``samples``, ``distribution``) are dropped, never guessed.
        """
        value = raw.get("value")
        samples = raw.get("samples")
        distribution, _ = distribution_from_dict(raw.get("distribution")) if raw.get("distribution") is not None else (None, "")
        return cls(
            name=str(raw.get("metric", "")),
            value=float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None,
            success=bool(raw.get("success", True)),
            message=str(raw.get("message", "") or ""),
            samples=samples if isinstance(samples, int) and not isinstance(samples, bool) and samples >= 0 else None,
            distribution=distribution,
        )


class InconclusiveKind(FastStrEnum):
    """Why the gate could not judge one indicator."""

    NOT_MEASURED = "not_measured"
    TOO_FEW_SAMPLES = "too_few_samples"
    NO_BASELINE = "no_baseline"
    #: The measurement as a whole cannot be trusted (e.g. the load generator was starved of CPU
    #: and fell behind its schedule); it concerns every indicator, so its ``sli`` is empty.
    UNRELIABLE_MEASUREMENT = "unreliable_measurement"


@frozen(slots=True)
class InconclusiveReason:
    """One reason an evaluation is inconclusive: which SLI, what kind, in one sentence."""

    sli: str
    kind: InconclusiveKind
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"sli": self.sli, "kind": self.kind.value, "message": self.message}


@frozen(slots=True)
class NoiseCheck:
    """How a noise-aware objective judged one relative criterion that the point comparison violated.

    ``outcome``: ``noise`` (the criterion holds after all), ``significant`` (the violation
    stands) or ``not_applied`` (no samples to test: the point comparison stands). ``difference``
    is value − baseline; ``test`` the Mann–Whitney outcome when one ran.
    """

    criteria: str
    method: str
    outcome: str
    reason: str
    difference: float
    confidence: float | None = None
    noise_floor: float | None = None
    test: RankTest | None = None

    @property
    def forgiven(self) -> bool:
        return self.outcome == "noise"

    def to_dict(self) -> dict[str, object]:
        return {
            "criteria": self.criteria, "method": self.method, "outcome": self.outcome, "reason": self.reason,
            "difference": self.difference, "confidence": self.confidence, "noise_floor": self.noise_floor,
            "test": None if self.test is None else self.test.to_dict(),
        }


@frozen(slots=True)
class Target:
    """One criterion as applied: ``target_value`` is the threshold it resolved to (``None`` for a
    relative criterion that had no comparison value, which then holds)."""

    criteria: str
    target_value: float | None
    violated: bool
    kind: TargetKind = TargetKind.PASS

    def to_dict(self) -> dict[str, object]:
        return {
            "criteria": self.criteria,
            "targetValue": self.target_value,
            "violated": self.violated,
            "kind": self.kind.value,
        }


@frozen(slots=True)
class IndicatorComparison:
    """The comparison value of one SLI: ``value`` = ``aggregate_function`` over ``values``,
    taken (newest first) from the previous evaluations ``evaluations`` (their ids)."""

    value: float
    aggregate_function: str
    values: tuple[float, ...]
    evaluations: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "aggregate_function": self.aggregate_function,
            "values": list(self.values),
            "evaluations": list(self.evaluations),
        }


@frozen(slots=True)
class IndicatorResult:
    """The outcome of one objective."""

    name: str
    value: float | None
    status: IndicatorStatus
    score: float
    weight: float
    key_sli: bool = False
    success: bool = True
    display_name: str = ""
    targets: tuple[Target, ...] = ()
    comparison: IndicatorComparison | None = None
    message: str = ""
    samples: int | None = None
    distribution: Distribution | None = None  # kept only for a mann_whitney objective (a later baseline)
    noise: tuple[NoiseCheck, ...] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "display_name": self.display_name,
            "value": self.value,
            "success": self.success,
            "status": self.status.value,
            "score": self.score,
            "weight": self.weight,
            "key_sli": self.key_sli,
            "targets": [t.to_dict() for t in self.targets],
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "message": self.message,
        }
        if self.samples is not None:
            out["samples"] = self.samples
        if self.distribution is not None:
            out["distribution"] = self.distribution.to_dict()
        if self.noise:
            out["noise"] = [n.to_dict() for n in self.noise]
        return out


@frozen(slots=True)
class ComparisonInfo:
    """How the baseline was chosen, and which previous evaluations (ids, newest first) it is."""

    compare_with: str | None
    number_of_comparison_results: int
    include_result_with_score: str
    aggregate_function: str
    compared_evaluations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "compare_with": self.compare_with,
            "number_of_comparison_results": self.number_of_comparison_results,
            "include_result_with_score": self.include_result_with_score,
            "aggregate_function": self.aggregate_function,
            "compared_evaluations": list(self.compared_evaluations),
        }


@frozen(slots=True)
class Subject:
    """What an evaluation is about: its id, the service in its stage, the time window, the labels."""

    id: str = ""
    project: str = ""
    stage: str = ""
    service: str = ""
    start: str = ""
    end: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@frozen
class EvaluationResult:
    """A finished evaluation: verdict, score and the whole explanation.

    ``achieved`` / ``maximum`` are the score arithmetic (sum of objective scores / sum of
    weights of scored objectives); ``score`` = 100 × achieved / maximum (100 when maximum is 0).
    """

    result: Verdict
    score: float
    indicators: tuple[IndicatorResult, ...]
    total_score: TotalScore
    achieved: float = 0.0
    maximum: float = 0.0
    comparison: ComparisonInfo | None = None
    key_sli_failed: bool = False
    test_failed: bool = False
    message: str = ""
    subject: Subject = field(default_factory=lambda: Subject())
    inconclusive_reasons: tuple[InconclusiveReason, ...] = ()

    @property
    def id(self) -> str:
        return self.subject.id

    @property
    def project(self) -> str:
        return self.subject.project

    @property
    def stage(self) -> str:
        return self.subject.stage

    @property
    def service(self) -> str:
        return self.subject.service

    @property
    def start(self) -> str:
        return self.subject.start

    @property
    def end(self) -> str:
        return self.subject.end

    @property
    def labels(self) -> Mapping[str, str]:
        return self.subject.labels

    @property
    def inconclusive(self) -> bool:
        """Whether the gate could not judge (the verdict and score are still Keptn's)."""
        return bool(self.inconclusive_reasons)

    @property
    def arithmetic(self) -> str:
        """The score arithmetic as one line, e.g. ``100 × 1.5 / 2 = 75``."""
        if self.maximum == 0:
            return "no scored objective: score 100"
        return f"100 × {_fmt(self.achieved)} / {_fmt(self.maximum)} = {_fmt(self.score)}"

    def indicator(self, name: str) -> IndicatorResult | None:
        """The first indicator result for SLI ``name``, if any."""
        for ind in self.indicators:
            if ind.name == name:
                return ind
        return None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, object]:
        """The JSON record (``sluice evaluate --output json``, history, events)."""
        return {
            "id": self.id,
            "project": self.project,
            "stage": self.stage,
            "service": self.service,
            "start": self.start,
            "end": self.end,
            "labels": dict(self.labels),
            "result": self.result.value,
            "score": self.score,
            "message": self.message,
            "test_failed": self.test_failed,
            "key_sli_failed": self.key_sli_failed,
            "total_score": {"pass": self.total_score.pass_, "warning": self.total_score.warning},
            "score_arithmetic": {"achieved": self.achieved, "maximum": self.maximum, "text": self.arithmetic},
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "indicators": [i.to_dict() for i in self.indicators],
            "inconclusive": self.inconclusive,
            "inconclusive_reasons": [r.to_dict() for r in self.inconclusive_reasons],
        }

    @classmethod
    def from_dict(cls, data: object, source: str = "evaluation") -> EvaluationResult:
        """Rebuild a result from :meth:`to_dict` output; ``ValidationError`` naming ``source``
        and every malformed field otherwise."""
        return _from_dict(data, source)

    def to_keptn_indicator_results(self) -> list[dict[str, object]]:
        """Keptn lighthouse's ``indicatorResults`` shape (``evaluation.finished`` payloads).

        ``targets`` is lighthouse's legacy list (warning targets, when the pass criteria failed,
        then pass targets); ``passTargets``/``warningTargets`` its newer split. An unmeasured SLI
        is reported as lighthouse did: status ``fail`` (``info`` if not scored), value 0,
        ``success: false``. A relative target without baseline has ``targetValue`` 0.
        """
        out: list[dict[str, object]] = []
        for ind in self.indicators:
            passes = [_keptn_target(t) for t in ind.targets if t.kind is TargetKind.PASS]
            warnings = [_keptn_target(t) for t in ind.targets if t.kind is TargetKind.WARNING]
            status = ind.status.value
            if ind.status is IndicatorStatus.ERROR:
                status = "fail" if passes else "info"
            legacy = ([*warnings, *passes]) if ind.status is not IndicatorStatus.PASS else passes
            value: dict[str, object] = {
                "metric": ind.name,
                "value": ind.value if ind.value is not None else 0.0,
                "success": ind.success,
                "message": ind.message if not ind.success else "",
            }
            if ind.comparison is not None:
                value["comparedValue"] = ind.comparison.value
            out.append(
                {
                    "score": ind.score,
                    "status": status,
                    "targets": legacy,
                    "passTargets": passes,
                    "warningTargets": warnings,
                    "value": value,
                    "keySli": ind.key_sli,
                    "displayName": ind.display_name,
                }
            )
        return out


def _keptn_target(t: Target) -> dict[str, object]:
    return {"criteria": t.criteria, "targetValue": t.target_value or 0.0, "violated": t.violated}


def _fmt(x: float) -> str:
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.6g}"


# ---------------------------------------------------------------------------- evaluation


def select_baseline(
    slo: Slo,
    previous: Sequence[EvaluationResult],
    project: str = "",
    stage: str = "",
    service: str = "",
) -> list[EvaluationResult]:
    """The previous evaluations to compare with, newest first.

    ``previous`` is oldest first. Only evaluations of the same project/stage/service count; of
    those, the newest whose overall result ``include_result_with_score`` admits, up to the
    number ``compare_with`` / ``number_of_comparison_results`` give.
    """
    comparison = slo.comparison
    wanted = comparison.count
    include = comparison.include_result_with_score
    chosen: list[EvaluationResult] = []
    if wanted <= 0:
        return chosen
    for prev in reversed(previous):
        if prev.project != project or prev.stage != stage or prev.service != service:
            continue
        if not include.admits(prev.result):
            continue
        chosen.append(prev)
        if len(chosen) >= wanted:
            break
    return chosen


def _baseline_index(baseline: Iterable[EvaluationResult]) -> dict[str, tuple[list[float], list[str]]]:
    index: dict[str, tuple[list[float], list[str]]] = {}
    for prev in baseline:
        for ind in prev.indicators:
            if not ind.success or ind.value is None:
                continue
            entry = index.get(ind.name)
            if entry is None:
                entry = ([], [])
                index[ind.name] = entry
            entry[0].append(ind.value)
            if not entry[1] or entry[1][-1] != prev.id:
                entry[1].append(prev.id)
    return index


def _baseline_distributions(baseline: Iterable[EvaluationResult]) -> dict[str, list[Distribution]]:
    out: dict[str, list[Distribution]] = {}
    for prev in baseline:
        for ind in prev.indicators:
            if ind.success and ind.distribution is not None:
                out.setdefault(ind.name, []).append(ind.distribution)
    return out


def evaluate(
    slo: Slo,
    values: Sequence[Measurement],
    previous: Sequence[EvaluationResult] = (),
    test_failed: bool = False,
    *,
    subject: Subject | None = None,
    rules: DataRules | None = None,
    unreliable: Sequence[str] = (),
) -> EvaluationResult:
    """Score ``values`` against ``slo``.

    ``previous``: earlier results, oldest first (any project/stage/service; only those matching
    ``subject``'s are compared with). The first measurement of each name counts; names
    without objective are ignored. Never raises for bad measurements: an unmeasured SLI is an
    ``error`` indicator scoring 0. ``rules`` decide when the result is marked inconclusive
    (default :class:`DataRules`); they never change the verdict or the score. ``unreliable``:
    why the measurement as a whole cannot be trusted (from the tests), each an
    ``unreliable_measurement`` reason, listed first.
    """
    subject = subject or Subject()
    baseline = _Baseline.of(slo, previous, subject)
    tally = _score_objectives(slo, _first_per_name(values), baseline, rules or DataRules())
    score, verdict, message = _overall(tally, slo.total_score, test_failed)
    return EvaluationResult(
        result=verdict,
        score=score,
        indicators=tuple(tally.indicators),
        total_score=slo.total_score,
        achieved=tally.achieved,
        maximum=tally.maximum,
        comparison=_comparison_info(slo, baseline.chosen),
        key_sli_failed=bool(tally.failed_keys),
        test_failed=test_failed,
        message=message,
        subject=replace(subject, labels=dict(subject.labels)),
        inconclusive_reasons=(*(InconclusiveReason("", InconclusiveKind.UNRELIABLE_MEASUREMENT, m) for m in unreliable),
                              *tally.reasons),
    )


def _first_per_name(values: Iterable[Measurement]) -> dict[str, Measurement]:
    measured: dict[str, Measurement] = {}
    for m in values:
        measured.setdefault(m.name, m)
    return measured


@frozen
class _Baseline:
    """The previous evaluations compared with, their values per SLI and (when an objective tests
    samples) their latency distributions per SLI."""

    chosen: list[EvaluationResult]
    values: dict[str, tuple[list[float], list[str]]]
    samples: dict[str, list[Distribution]]

    @classmethod
    def of(cls, slo: Slo, previous: Sequence[EvaluationResult], subject: Subject) -> _Baseline:
        chosen = select_baseline(slo, previous, subject.project, subject.stage, subject.service) if previous else []
        wants_samples = any(o.noise is not None and o.noise.method is ComparisonMethod.MANN_WHITNEY for o in slo.objectives)
        return cls(
            chosen,
            _baseline_index(chosen) if chosen else {},
            _baseline_distributions(chosen) if chosen and wants_samples else {},
        )


@dataclass
class _Tally:
    """The objectives scored so far: their results, the score arithmetic, the failed key SLIs."""

    indicators: list[IndicatorResult] = field(default_factory=list)
    reasons: list[InconclusiveReason] = field(default_factory=list)
    achieved: float = 0.0
    maximum: float = 0.0
    failed_keys: list[str] = field(default_factory=list)


def _score_objectives(slo: Slo, measured: Mapping[str, Measurement], baseline: _Baseline, rules: DataRules) -> _Tally:
    aggregate = slo.comparison.aggregate_function
    tally = _Tally()
    for obj in slo.objectives:
        ind = _evaluate_objective(
            obj, measured.get(obj.sli), baseline.values, aggregate.name, aggregate.apply, baseline.samples.get(obj.sli, ())
        )
        tally.indicators.append(ind)
        tally.reasons.extend(_inconclusive(obj, ind, rules))
        if obj.pass_:
            tally.maximum += obj.weight
            tally.achieved += ind.score
            if obj.key_sli and ind.status in (IndicatorStatus.FAIL, IndicatorStatus.ERROR):
                tally.failed_keys.append(obj.sli)
    return tally


def _overall(tally: _Tally, total: TotalScore, test_failed: bool) -> tuple[float, Verdict, str]:
    """The score, the verdict and why: from the arithmetic, the key SLIs, and the tests."""
    if tally.maximum == 0:
        score, verdict, message = 100.0, Verdict.PASS, "no scored objective: pass with score 100"
    else:
        score = 100.0 * (tally.achieved / tally.maximum)
        verdict, message = _verdict(score, total, tally.failed_keys)
    if test_failed:
        message = f"the tests failed: result forced to fail (the SLIs alone gave {verdict.value}, score {_fmt(score)})"
        verdict = Verdict.FAIL
    return score, verdict, message


def _comparison_info(slo: Slo, chosen: Sequence[EvaluationResult]) -> ComparisonInfo:
    comparison = slo.comparison
    return ComparisonInfo(
        compare_with=None if comparison.compare_with is None else comparison.compare_with.value,
        number_of_comparison_results=comparison.count,
        include_result_with_score=comparison.include_result_with_score.value,
        aggregate_function=comparison.aggregate_function.name,
        compared_evaluations=tuple(p.id for p in chosen),
    )


def _inconclusive(obj: Objective, ind: IndicatorResult, rules: DataRules) -> list[InconclusiveReason]:
    """Why this objective leaves the gate unable to judge (scored or key objectives only)."""
    if not obj.pass_ and not obj.key_sli:
        return []
    if not ind.success:
        return [InconclusiveReason(obj.sli, InconclusiveKind.NOT_MEASURED, f"{obj.sli}: {ind.message}")]
    out: list[InconclusiveReason] = []
    if ind.samples is not None and ind.samples < rules.min_samples:
        out.append(
            InconclusiveReason(
                obj.sli, InconclusiveKind.TOO_FEW_SAMPLES,
                f"{obj.sli}: only {ind.samples} request(s) measured, fewer than the {rules.min_samples} this stage needs",
            )
        )
    if rules.no_baseline_inconclusive and obj.has_relative and ind.comparison is None:
        out.append(
            InconclusiveReason(
                obj.sli, InconclusiveKind.NO_BASELINE,
                f"{obj.sli}: no previous evaluation to compare its relative criteria with",
            )
        )
    return out


def _verdict(score: float, total: TotalScore, failed_keys: list[str]) -> tuple[Verdict, str]:
    if failed_keys:
        names = ", ".join(repr(n) for n in failed_keys)
        return Verdict.FAIL, f"key SLI {names} failed: the evaluation fails whatever the score ({_fmt(score)})"
    if score >= total.pass_:
        return Verdict.PASS, f"score {_fmt(score)} ≥ pass {_fmt(total.pass_)}%"
    if total.warning is None:
        return Verdict.FAIL, f"score {_fmt(score)} < pass {_fmt(total.pass_)}% (no warning threshold)"
    if score >= total.warning:
        return (
            Verdict.WARNING,
            f"score {_fmt(score)} < pass {_fmt(total.pass_)}% but ≥ warning {_fmt(total.warning)}%",
        )
    return Verdict.FAIL, f"score {_fmt(score)} < warning {_fmt(total.warning)}%"


Forgive = Callable[[Criterion, float, float], "NoiseCheck | None"]


def _apply_sets(
    sets: tuple[CriteriaSet, ...],
    kind: TargetKind,
    value: float | None,
    baseline: float | None,
    targets: list[Target],
    forgive: Forgive | None = None,
) -> tuple[bool, bool]:
    """Evaluate OR-combined criteria sets. Returns (satisfied, a relative criterion held
    only for lack of a baseline). Every target is recorded, even after a set held.

    ``forgive`` (noise-aware objectives only) may let a violated relative criterion hold."""
    satisfied = False
    no_baseline = False
    for cset in sets:
        set_ok = True
        for crit in cset.criteria:
            threshold = crit.threshold(baseline)
            if value is None:
                ok = False
            elif threshold is None:
                ok = True
                no_baseline = True
            else:
                ok = crit.holds(value, threshold)
                if not ok and crit.relative and forgive is not None and baseline is not None:
                    check = forgive(crit, value, baseline)
                    ok = check is not None and check.forgiven
            if not ok:
                set_ok = False
            targets.append(Target(crit.text, threshold, not ok, kind))
        if set_ok:
            satisfied = True
    return satisfied, no_baseline


def _noise_judge(
    rule: NoiseRule, m: Measurement | None, baseline_samples: Sequence[Distribution], checks: list[NoiseCheck]
) -> Forgive:
    """The forgiving rule of a noise-aware objective; every check it makes lands in ``checks``."""
    done: dict[str, NoiseCheck] = {}

    def judge(crit: Criterion, value: float, baseline: float) -> NoiseCheck:
        if crit.text in done:
            return done[crit.text]
        check = _noise_check(rule, crit, value, baseline, m, baseline_samples)
        done[crit.text] = check
        checks.append(check)
        return check

    return judge


def _noise_check(
    rule: NoiseRule, crit: Criterion, value: float, baseline: float, m: Measurement | None,
    baseline_samples: Sequence[Distribution],
) -> NoiseCheck:
    diff = value - baseline
    method = rule.method.value
    if rule.noise_floor is not None and abs(diff) <= rule.noise_floor:
        return NoiseCheck(
            crit.text, method, "noise",
            f"the difference {_signed(diff)} is within the noise floor ±{_fmt(rule.noise_floor)}: {crit.text} holds",
            diff, rule.confidence if rule.method is ComparisonMethod.MANN_WHITNEY else None, rule.noise_floor,
        )
    if rule.method is not ComparisonMethod.MANN_WHITNEY:
        return NoiseCheck(
            crit.text, method, "significant",
            f"the difference {_signed(diff)} exceeds the noise floor ±{_fmt(rule.noise_floor or 0)}: {crit.text} violated",
            diff, None, rule.noise_floor,
        )
    if crit.operator is Operator.EQ:
        return NoiseCheck(crit.text, method, "not_applied", "mann_whitney does not apply to '=': point comparison",
                          diff, rule.confidence, rule.noise_floor)
    candidate = m.distribution if m is not None else None
    if candidate is None or candidate.count == 0 or not baseline_samples:
        missing = "the candidate" if candidate is None or candidate.count == 0 else "the baseline"
        return NoiseCheck(
            crit.text, method, "not_applied",
            f"mann_whitney not applied: no latency samples of {missing} (point comparison: {crit.text} violated)",
            diff, rule.confidence, rule.noise_floor,
        )
    base = Distribution.merge(baseline_samples)
    worse = Alternative.GREATER if crit.operator in (Operator.LT, Operator.LE) else Alternative.LESS
    test = mann_whitney(candidate, base, worse)
    alpha = 1.0 - rule.confidence
    direction = "greater (slower)" if worse is Alternative.GREATER else "smaller"
    about = (
        f"Mann–Whitney U, one-sided (candidate {direction}): n={test.n_candidate} vs {test.n_baseline}, "
        f"p={test.p_value:.3g}, effect A={test.effect:.2f} (share of pairs with the candidate worse; "
        f"needed ≥ {rule.min_effect:g}), shift {_signed(test.shift)}"
    )
    if test.p_value >= alpha:
        why = f"not significant at {rule.confidence:g} (p ≥ {alpha:.3g})"
    elif test.effect < rule.min_effect:
        why = f"significant, but the effect A={test.effect:.2f} is below {rule.min_effect:g}"
    else:
        return NoiseCheck(
            crit.text, method, "significant",
            f"{about}: significant at {rule.confidence:g} with effect A ≥ {rule.min_effect:g}: {crit.text} violated",
            diff, rule.confidence, rule.noise_floor, test,
        )
    return NoiseCheck(
        crit.text, method, "noise",
        f"{about}: {why}; the difference {_signed(diff)} is noise: {crit.text} holds",
        diff, rule.confidence, rule.noise_floor, test,
    )


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "−") + _fmt(abs(x))


def _evaluate_objective(
    obj: Objective,
    m: Measurement | None,
    index: Mapping[str, tuple[list[float], list[str]]],
    aggregate_name: str,
    aggregate: object,
    baseline_samples: Sequence[Distribution] = (),
) -> IndicatorResult:
    comparison: IndicatorComparison | None = None
    entry = index.get(obj.sli) if index else None
    if entry is not None:
        vals, ids = entry
        comparison = IndicatorComparison(
            value=aggregate(vals),  # type: ignore[operator]
            aggregate_function=aggregate_name,
            values=tuple(vals),
            evaluations=tuple(ids),
        )
    baseline = None if comparison is None else comparison.value

    if m is None:
        value: float | None = None
        success = False
        problem = NO_VALUE_MESSAGE
    elif not m.success or m.value is None or not math.isfinite(m.value):
        value = None
        success = False
        problem = m.message or ("no value" if m.success else "the SLI provider reported a failure")
    else:
        value = float(m.value)
        success = True
        problem = ""

    targets: list[Target] = []
    checks: list[NoiseCheck] = []
    active = obj.noise is not None and (obj.noise.method is ComparisonMethod.MANN_WHITNEY or obj.noise.noise_floor is not None)
    forgive = _noise_judge(obj.noise, m, baseline_samples, checks) if obj.noise is not None and active else None
    weight = obj.weight
    if obj.pass_:
        passed, nb_pass = _apply_sets(obj.pass_, TargetKind.PASS, value, baseline, targets, forgive)
    else:
        passed, nb_pass = True, False
    if obj.warning:
        warned, nb_warn = _apply_sets(obj.warning, TargetKind.WARNING, value, baseline, targets, forgive)
    else:
        warned, nb_warn = False, False

    if not success:
        status = IndicatorStatus.ERROR
        score = 0.0
        message = f"could not measure: {problem}"
    elif not obj.pass_:
        status = IndicatorStatus.INFO
        score = 0.0
        message = "informational: no pass criteria, not scored"
    elif passed:
        status = IndicatorStatus.PASS
        score = weight
        message = "no baseline yet: relative criteria held without a comparison value" if nb_pass else ""
    elif warned:
        status = IndicatorStatus.WARNING
        score = 0.5 * weight
        message = _violations(targets, TargetKind.PASS, value)
        if nb_warn:
            message += "; no baseline yet: relative warning criteria held without a comparison value"
    else:
        status = IndicatorStatus.FAIL
        score = 0.0
        message = _violations(targets, None, value)

    return IndicatorResult(
        name=obj.sli,
        value=value,
        status=status,
        score=score,
        weight=weight,
        key_sli=obj.key_sli,
        success=success,
        display_name=obj.display_name,
        targets=tuple(targets),
        comparison=comparison,
        message=message,
        samples=m.samples if m is not None and success else None,
        distribution=(
            m.distribution
            if m is not None and success and obj.noise is not None and obj.noise.method is ComparisonMethod.MANN_WHITNEY
            else None
        ),
        noise=tuple(checks),
    )


def _violations(targets: list[Target], kind: TargetKind | None, value: float | None) -> str:
    groups: dict[TargetKind, list[str]] = {}
    for t in targets:
        if t.violated and (kind is None or t.kind is kind):
            shown = t.criteria if t.target_value is None else f"{t.criteria} ({_fmt(t.target_value)})"
            groups.setdefault(t.kind, []).append(shown)
    if not groups:
        return ""
    parts = "; ".join(f"{k.value} {', '.join(v)}" for k, v in groups.items())
    return f"value {'?' if value is None else _fmt(value)} violates {parts}"


# ---------------------------------------------------------------------------- from_dict


def _from_dict(data: object, source: str) -> EvaluationResult:
    if not isinstance(data, Mapping):
        raise ValidationError(source, ["expected an evaluation (a JSON object with result, score, indicators)"])
    problems = Problems(source)
    r = Reader(data, "", problems)
    verdict = r.enum("result", Verdict)
    score = r.number("score", required=True)
    result = EvaluationResult(
        result=verdict or Verdict.FAIL,
        score=score or 0.0,
        indicators=tuple(_read_indicator(i) for i in r.items("indicators")),
        total_score=_read_total_score(r.mapping("total_score")),
        achieved=_read_arithmetic(r.mapping("score_arithmetic"), "achieved"),
        maximum=_read_arithmetic(r.mapping("score_arithmetic"), "maximum"),
        comparison=_read_comparison_info(r.mapping("comparison")) if r.has("comparison") else None,
        key_sli_failed=r.boolean("key_sli_failed"),
        test_failed=r.boolean("test_failed"),
        message=r.string("message"),
        subject=_read_subject(r),
        inconclusive_reasons=tuple(_read_reason(i) for i in r.items("inconclusive_reasons")),
    )
    problems.raise_if_any()
    return result


def _read_subject(r: Reader) -> Subject:
    ids = {key: r.string(key) for key in ("id", "project", "stage", "service", "start", "end")}
    return Subject(**ids, labels=r.string_map("labels"))


def _read_total_score(r: Reader) -> TotalScore:
    pass_pct = r.number("pass")
    return TotalScore(pass_=pass_pct if pass_pct is not None else 0.0, warning=r.number("warning"))


def _read_arithmetic(r: Reader, key: str) -> float:
    return r.number(key) or 0.0


def _read_comparison_info(r: Reader) -> ComparisonInfo:
    count = r.raw("number_of_comparison_results")
    compare_with = r.raw("compare_with")
    return ComparisonInfo(
        compare_with=compare_with if isinstance(compare_with, str) else None,
        number_of_comparison_results=count if isinstance(count, int) else 1,
        include_result_with_score=r.string("include_result_with_score", "all"),
        aggregate_function=r.string("aggregate_function", "avg"),
        compared_evaluations=tuple(str(x.value) for x in r.items("compared_evaluations")),
    )


def _read_indicator(r: Reader) -> IndicatorResult:
    r.expect_mapping()
    name = r.string("name", required=True)
    return IndicatorResult(
        name=name,
        value=r.number("value"),
        status=r.enum("status", IndicatorStatus, None) or IndicatorStatus.ERROR,
        score=r.number("score") or 0.0,
        weight=r.number("weight") or 1.0,
        key_sli=r.boolean("key_sli"),
        success=r.boolean("success", True),
        display_name=r.string("display_name"),
        targets=tuple(_read_target(t) for t in r.items("targets")),
        comparison=_read_indicator_comparison(r.mapping("comparison")) if r.has("comparison") else None,
        message=r.string("message"),
        samples=r.integer("samples", minimum=0),
        distribution=_read_distribution(r),
        noise=tuple(_read_noise_check(n) for n in r.items("noise")),
    )


def _read_target(r: Reader) -> Target:
    r.expect_mapping()
    return Target(
        criteria=r.string("criteria"),
        target_value=r.number("targetValue"),
        violated=r.boolean("violated"),
        kind=r.enum("kind", TargetKind, TargetKind.PASS) or TargetKind.PASS,
    )


def _read_indicator_comparison(r: Reader) -> IndicatorComparison:
    return IndicatorComparison(
        value=r.number("value", required=True) or 0.0,
        aggregate_function=r.string("aggregate_function", "avg"),
        values=tuple(float(v.value) for v in r.items("values") if isinstance(v.value, int | float)),
        evaluations=tuple(str(v.value) for v in r.items("evaluations")),
    )


def _read_reason(r: Reader) -> InconclusiveReason:
    r.expect_mapping()
    return InconclusiveReason(
        r.string("sli"),
        r.enum("kind", InconclusiveKind, None) or InconclusiveKind.NOT_MEASURED,
        r.string("message"),
    )


def _read_distribution(r: Reader) -> Distribution | None:
    if not r.has("distribution"):
        return None
    dist, problem = distribution_from_dict(r.raw("distribution"))
    if dist is None:
        r.fail(problem, "distribution")
    return dist


def _read_noise_check(r: Reader) -> NoiseCheck:
    r.expect_mapping()
    return NoiseCheck(
        criteria=r.string("criteria"), method=r.string("method"), outcome=r.string("outcome"),
        reason=r.string("reason"), difference=r.number("difference", required=True) or 0.0,
        confidence=r.number("confidence"), noise_floor=r.number("noise_floor"),
        test=_read_rank_test(r.mapping("test")) if r.has("test") else None,
    )


def _read_rank_test(r: Reader) -> RankTest:
    numbers = {k: r.number(k, required=True) or 0.0 for k in ("u", "z", "p_value", "effect", "shift")}
    return RankTest(
        alternative=r.enum("alternative", Alternative) or Alternative.GREATER,
        n_candidate=int(r.number("n_candidate", required=True) or 0),
        n_baseline=int(r.number("n_baseline", required=True) or 0),
        **numbers,
    )
