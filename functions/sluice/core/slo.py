"""The SLO model: Keptn's quality-gate file format (``slo.yaml``, spec 0.1.x), parsed and checked.

``parse_slo`` takes a document that was already loaded (YAML/JSON → plain mappings and lists;
the core never imports a YAML library) and returns a frozen :class:`Slo`, or raises
``ValidationError`` listing *every* problem, each naming the file, the objective and the field
and saying what was expected.

Keptn's lighthouse defaults apply where keys are missing, quirks included:

- no ``comparison`` block at all → ``single_result``, ``include_result_with_score: all``,
  one result, ``avg``;
- a ``comparison`` block without ``compare_with`` compares with the **3** newest results
  (lighthouse's fallback; the written spec says ``single_result``);
- ``number_of_comparison_results`` missing or 0 → 3 (only read with ``several_results``);
  ``single_result`` always means one result, whatever the number says;
- ``weight`` missing **or 0** → 1 (lighthouse treats 0 as "not set");
- an objective without ``pass`` criteria is informational: never scored, never fails;
- ``total_score.warning`` missing → there is no warning band (below pass is fail).

Where lighthouse silently did something surprising we refuse the file instead (no silent
fallbacks): unknown keys, unknown ``compare_with`` / ``include_result_with_score`` values,
aggregate functions other than ``avg`` and ``pNN`` (lighthouse used 0 as the comparison value),
and criteria it could not parse (lighthouse counted them as always violated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import field

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.validation import Problems, Reader
from sluice.core.verdict import Verdict
from sluice.errors import ValidationError

__all__ = [
    "AggregateFunction",
    "CompareWith",
    "Comparison",
    "ComparisonMethod",
    "CriteriaSet",
    "Criterion",
    "IncludeResultWithScore",
    "NoiseRule",
    "Objective",
    "Operator",
    "Slo",
    "TotalScore",
    "parse_criterion",
    "parse_slo",
]


class Operator(FastStrEnum):
    """A criterion's comparison operator."""

    LT = "<"
    LE = "<="
    EQ = "="
    GE = ">="
    GT = ">"


class CompareWith(FastStrEnum):
    """How many previous evaluations a relative criterion compares with."""

    SINGLE_RESULT = "single_result"
    SEVERAL_RESULTS = "several_results"


class IncludeResultWithScore(FastStrEnum):
    """Which previous evaluations (by their overall result) may serve as the baseline."""

    PASS = "pass"
    PASS_OR_WARN = "pass_or_warn"
    ALL = "all"

    def admits(self, result: Verdict) -> bool:
        """Whether a previous evaluation whose overall result is ``result`` may be compared with."""
        if self is IncludeResultWithScore.ALL:
            return True
        if self is IncludeResultWithScore.PASS:
            return result is Verdict.PASS
        return result in (Verdict.PASS, Verdict.WARNING)


_CRITERION = re.compile(r"(?a)^(<=|>=|<|>|=)([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(%?)$")
#: Compiled on first use (``re`` keeps it): most SLOs aggregate with ``avg`` (cold start).
_PERCENTILE = r"(?a)^p(\d+(?:\.\d+)?)$"
_LIGHTHOUSE_DEFAULT_COUNT = 3
#: Bounds no real SLO reaches; past them a file (e.g. YAML aliases repeating one objective
#: thousands of times) is refused before it costs anything to score.
MAX_OBJECTIVES = 1000
MAX_CRITERIA = 100  # criteria sets per pass/warning, and criteria per set


@frozen(slots=True)
class Criterion:
    """One criterion such as ``<600`` (absolute) or ``<=+10%`` (relative to the comparison value).

    ``relative`` is true when the number has a sign or a ``%`` suffix; ``increase`` is false only
    for a ``-`` sign (a bare ``%`` counts as an increase, as in lighthouse).
    """

    text: str
    operator: Operator
    amount: float
    relative: bool = False
    percent: bool = False
    increase: bool = True

    def threshold(self, baseline: float | None) -> float | None:
        """The value this criterion compares with: its number, or one derived from ``baseline``.

        ``None`` for a relative criterion without a baseline (lighthouse lets it pass).
        """
        if not self.relative:
            return self.amount
        if baseline is None:
            return None
        if self.percent:
            factor = 100.0 + self.amount if self.increase else 100.0 - self.amount
            return baseline * factor / 100.0
        return baseline + self.amount if self.increase else baseline - self.amount

    def holds(self, value: float, threshold: float) -> bool:
        """Whether ``value`` satisfies this criterion against ``threshold``."""
        op = self.operator
        if op is Operator.LT:
            return value < threshold
        if op is Operator.LE:
            return value <= threshold
        if op is Operator.GT:
            return value > threshold
        if op is Operator.GE:
            return value >= threshold
        return value == threshold


@frozen(slots=True)
class CriteriaSet:
    """One ``{criteria: [...]}`` entry: all of its criteria must hold (AND)."""

    criteria: tuple[Criterion, ...]


class ComparisonMethod(FastStrEnum):
    """How an objective's relative criteria compare with the baseline."""

    POINT = "point"  # Keptn's: the value against the threshold derived from the baseline value
    MANN_WHITNEY = "mann_whitney"  # ... and a violation must also be a significant shift of the samples


@frozen(slots=True)
class NoiseRule:
    """An objective's opt-in noise-aware comparison (a Sluice extension; Keptn files have none).

    A relative criterion that the point comparison violates still holds when the difference is
    noise: when ``|value − baseline| ≤ noise_floor`` (in the indicator's unit), or, with
    ``mann_whitney``, unless the candidate's samples are worse than the baseline's both
    significantly (at ``confidence``) and by a real effect (Vargha–Delaney A ≥ ``min_effect``:
    that share of candidate/baseline pairs has the candidate worse). It never turns a held
    criterion into a violated one.
    """

    method: ComparisonMethod = ComparisonMethod.POINT
    confidence: float = 0.95
    noise_floor: float | None = None
    min_effect: float = 0.6

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.method is not ComparisonMethod.POINT:
            out["comparison"] = {"method": self.method.value, "confidence": self.confidence, "min_effect": self.min_effect}
        if self.noise_floor is not None:
            out["noise_floor"] = _num(self.noise_floor)
        return out


@frozen(slots=True)
class Objective:
    """One objective. ``pass_`` sets are alternatives (OR), and so are ``warning`` sets.

    ``noise`` is the objective's opt-in noise-aware comparison (None: Keptn's point comparison).
    """

    sli: str
    pass_: tuple[CriteriaSet, ...] = ()
    warning: tuple[CriteriaSet, ...] = ()
    weight: float = 1.0
    key_sli: bool = False
    display_name: str = ""
    noise: NoiseRule | None = None

    @property
    def informational(self) -> bool:
        """An objective without pass criteria is listed (status ``info``) but never scored."""
        return not self.pass_

    @property
    def has_relative(self) -> bool:
        """Whether any of its criteria needs a comparison value."""
        return any(c.relative for s in (*self.pass_, *self.warning) for c in s.criteria)


@frozen(slots=True)
class AggregateFunction:
    """``avg`` or a percentile ``pNN`` (0 < NN ≤ 100) over the previous values of one SLI."""

    name: str
    percentile: float | None = None  # as a fraction, e.g. 0.95 for p95; None for avg

    def apply(self, values: Sequence[float]) -> float:
        """Aggregate ``values`` (not empty). Percentiles interpolate as lighthouse does.

        Lighthouse's rule: sort; position = p × (n + 1); below 1 → the smallest value; at or
        past n → the largest; otherwise interpolate linearly between the neighbours around
        the position (1-based).
        """
        if self.percentile is None:
            return math.fsum(values) / len(values)
        ordered = sorted(values)
        size = len(ordered)
        pos = self.percentile * (size + 1)
        if pos < 1.0:
            return ordered[0]
        if pos >= size:
            return ordered[-1]
        index = int(pos)
        lower = ordered[index - 1]
        upper = ordered[index]
        return lower + (pos - index) * (upper - lower)


AVG = AggregateFunction("avg")


@frozen(slots=True)
class Comparison:
    """The ``comparison`` block, with lighthouse's defaults filled in.

    ``compare_with`` is ``None`` when a comparison block was given without it (lighthouse then
    compares with 3 results). ``count`` is the number of previous evaluations actually used.
    """

    compare_with: CompareWith | None = CompareWith.SINGLE_RESULT
    number_of_comparison_results: int = 1
    include_result_with_score: IncludeResultWithScore = IncludeResultWithScore.ALL
    aggregate_function: AggregateFunction = AVG

    @property
    def count(self) -> int:
        """How many previous evaluations lighthouse would compare with."""
        if self.compare_with is CompareWith.SINGLE_RESULT:
            return 1
        if self.compare_with is CompareWith.SEVERAL_RESULTS:
            return self.number_of_comparison_results
        return _LIGHTHOUSE_DEFAULT_COUNT


@frozen(slots=True)
class TotalScore:
    """The ``total_score`` thresholds in percent; ``warning`` is ``None`` when not given."""

    pass_: float
    warning: float | None = None


@frozen
class Slo:
    """A parsed, valid SLO file."""

    objectives: tuple[Objective, ...]
    total_score: TotalScore
    comparison: Comparison = field(default_factory=Comparison)
    spec_version: str = ""
    filter: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, object]:
        """The SLO as a plain mapping in the file's own vocabulary, with defaults made explicit."""
        comp = self.comparison
        comparison: dict[str, object] = {
            "include_result_with_score": comp.include_result_with_score.value,
            "number_of_comparison_results": comp.count,
            "aggregate_function": comp.aggregate_function.name,
        }
        if comp.compare_with is not None:
            comparison["compare_with"] = comp.compare_with.value
        total: dict[str, object] = {"pass": f"{_num(self.total_score.pass_)}%"}
        if self.total_score.warning is not None:
            total["warning"] = f"{_num(self.total_score.warning)}%"
        objectives: list[dict[str, object]] = []
        for obj in self.objectives:
            entry: dict[str, object] = {"sli": obj.sli}
            if obj.display_name:
                entry["displayName"] = obj.display_name
            entry["weight"] = _num(obj.weight)
            entry["key_sli"] = obj.key_sli
            if obj.pass_:
                entry["pass"] = [{"criteria": [c.text for c in s.criteria]} for s in obj.pass_]
            if obj.warning:
                entry["warning"] = [{"criteria": [c.text for c in s.criteria]} for s in obj.warning]
            if obj.noise is not None:
                entry.update(obj.noise.to_dict())
            objectives.append(entry)
        doc: dict[str, object] = {}
        if self.spec_version:
            doc["spec_version"] = self.spec_version
        if self.filter:
            doc["filter"] = dict(self.filter)
        doc["comparison"] = comparison
        doc["objectives"] = objectives
        doc["total_score"] = total
        return doc


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


# ----------------------------------------------------------------------------- parsing


def parse_criterion(text: str) -> Criterion:
    """Parse one criterion string (spaces are ignored, as in lighthouse).

    Raises ``ValueError`` with what was expected when the string is not a criterion.
    """
    compact = text.replace(" ", "")
    m = _CRITERION.fullmatch(compact)
    if m is None:
        raise ValueError(
            f"criterion {text!r} is not valid: expected an operator (<, <=, =, >=, >) followed by a "
            "number, optionally signed (+/-) and/or ending in % for a relative criterion, e.g. "
            "'<600', '<=+10%', '>-8%'"
        )
    op, sign, number, pct = m.groups()
    amount = float(number)
    if not math.isfinite(amount):
        raise ValueError(f"criterion {text!r} is not valid: its number is not finite")
    return Criterion(
        text=text,
        operator=Operator(op),
        amount=amount,
        relative=bool(sign or pct),
        percent=bool(pct),
        increase=sign != "-",
    )


def parse_aggregate_function(name: str) -> AggregateFunction:
    """``avg`` or ``pNN``; raises ``ValueError`` naming the valid choices."""
    if name == "avg":
        return AVG
    m = re.fullmatch(_PERCENTILE, name)
    if m is not None:
        p = float(m.group(1))
        if 0 < p <= 100:
            return AggregateFunction(name, p / 100.0)
    raise ValueError(f"expected 'avg' or a percentile such as 'p50', 'p90', 'p95' (pNN, 0 < NN <= 100), found {name!r}")


_TOP_KEYS = ("spec_version", "filter", "comparison", "objectives", "total_score")
_COMPARISON_KEYS = ("compare_with", "number_of_comparison_results", "include_result_with_score", "aggregate_function")
_OBJECTIVE_KEYS = ("sli", "displayName", "key_sli", "weight", "pass", "warning", "comparison", "noise_floor")
_NOISE_KEYS = ("method", "confidence", "min_effect")
_TOTAL_KEYS = ("pass", "warning")


def _type_name(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _unknown_keys(doc: Mapping[object, object], allowed: Sequence[str], where: str, problems: Problems) -> None:
    """Each key of ``doc`` not ``allowed``, named by its own path under ``where`` (the core's reader)."""
    Reader(doc, where, problems).unknown_keys(allowed)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_slo(doc: object, source: str) -> Slo:
    """Build an :class:`Slo` from a loaded ``slo.yaml`` document.

    ``source`` names the file in every problem. Raises ``ValidationError(subject=source,
    problems=[...])`` listing every problem found, never just the first.
    """
    problems = Problems(source)
    if not isinstance(doc, Mapping):
        raise ValidationError(source, [f"expected a mapping with objectives and total_score, found {_type_name(doc)}"])
    _unknown_keys(doc, _TOP_KEYS, "", problems)

    spec_version = doc.get("spec_version", "")
    if spec_version is None:
        spec_version = ""
    if not isinstance(spec_version, str) and not _is_number(spec_version):
        problems.add("spec_version", f"expected a version string such as '0.1.1', found {_type_name(spec_version)}")
        spec_version = ""

    filters = _parse_filter(doc.get("filter"), problems)
    comparison = _parse_comparison(doc, problems)
    objectives = _parse_objectives(doc, problems)
    total = _parse_total_score(doc.get("total_score"), "total_score" in doc, problems)

    if problems.messages or total is None:
        raise ValidationError(source, problems.messages)
    return Slo(
        objectives=tuple(objectives),
        total_score=total,
        comparison=comparison,
        spec_version=str(spec_version),
        filter=filters,
        source=source,
    )


def _parse_filter(raw: object, problems: Problems) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add("filter", f"expected a mapping of name to value, found {_type_name(raw)}")
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or isinstance(value, Mapping | list):
            problems.add(f"filter.{key}", f"expected a plain value, found {_type_name(value)}")
            continue
        out[key] = "" if value is None else str(value)
    return out


def _parse_comparison(doc: Mapping[object, object], problems: Problems) -> Comparison:
    if "comparison" not in doc or doc.get("comparison") is None:
        return Comparison()  # lighthouse: single_result, all, 1, avg
    raw = doc["comparison"]
    if not isinstance(raw, Mapping):
        problems.add("comparison", f"expected a mapping, found {_type_name(raw)}")
        return Comparison()
    _unknown_keys(raw, _COMPARISON_KEYS, "comparison", problems)

    compare_with: CompareWith | None = None
    value = raw.get("compare_with")
    if value is not None:
        try:
            compare_with = CompareWith(value)
        except ValueError:
            problems.add(
                "comparison.compare_with",
                f"expected single_result or several_results, found {_type_name(value)}",
            )

    count = _LIGHTHOUSE_DEFAULT_COUNT
    value = raw.get("number_of_comparison_results")
    if value is not None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.add(
                "comparison.number_of_comparison_results",
                f"expected a whole number of at least 1, found {_type_name(value)}",
            )
        elif value > 0:
            count = value

    include = IncludeResultWithScore.ALL
    value = raw.get("include_result_with_score")
    if value is not None and value != "":
        try:
            include = IncludeResultWithScore(value)
        except ValueError:
            problems.add(
                "comparison.include_result_with_score",
                f"expected pass, pass_or_warn or all, found {_type_name(value)}",
            )

    aggregate = AVG
    value = raw.get("aggregate_function")
    if value is not None and value != "":
        if not isinstance(value, str):
            problems.add("comparison.aggregate_function", f"expected 'avg' or 'pNN', found {_type_name(value)}")
        else:
            try:
                aggregate = parse_aggregate_function(value)
            except ValueError as err:
                problems.add("comparison.aggregate_function", str(err))

    return Comparison(
        compare_with=compare_with,
        number_of_comparison_results=count,
        include_result_with_score=include,
        aggregate_function=aggregate,
    )


def _parse_objectives(doc: Mapping[object, object], problems: Problems) -> list[Objective]:
    if "objectives" not in doc:
        problems.add("objectives", "missing: expected a list of objectives (each with at least 'sli')")
        return []
    raw = doc["objectives"]
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        problems.add("objectives", f"expected a list of objectives, found {_type_name(raw)}")
        return []
    if len(raw) > MAX_OBJECTIVES:
        problems.add("objectives", f"expected at most {MAX_OBJECTIVES} objectives, found {len(raw)}")
        return []
    out: list[Objective] = []
    for index, item in enumerate(raw):
        parsed = _parse_objective(index, item, problems)
        if parsed is not None:
            out.append(parsed)
    return out


def _parse_objective(index: int, item: object, problems: Problems) -> Objective | None:
    where = f"objectives[{index}]"
    if not isinstance(item, Mapping):
        problems.add(where, f"expected a mapping with at least 'sli', found {_type_name(item)}")
        return None
    sli = item.get("sli")
    if isinstance(sli, str) and sli.strip():
        where = f"objective {sli!r} (objectives[{index}])"
    else:
        problems.add(f"{where}.sli", f"expected the name of an SLI, found {_type_name(sli)}")
        sli = None
    _unknown_keys(item, _OBJECTIVE_KEYS, where, problems)
    before = len(problems.messages)

    display_name = item.get("displayName", "")
    if display_name is None:
        display_name = ""
    if not isinstance(display_name, str):
        problems.add(f"{where} displayName", f"expected a string, found {_type_name(display_name)}")
        display_name = ""

    weight: float = 1.0
    raw_weight = item.get("weight")
    if raw_weight is not None:
        number = float(raw_weight) if _is_number(raw_weight) else math.nan
        if not math.isfinite(number) or number < 0:
            problems.add(f"{where} weight", f"expected a number of at least 0, found {_type_name(raw_weight)}")
        elif number > 0:
            weight = number
        # 0 → 1, as lighthouse does

    key_sli = item.get("key_sli", False)
    if key_sli is None:
        key_sli = False
    if not isinstance(key_sli, bool):
        problems.add(f"{where} key_sli", f"expected true or false, found {_type_name(key_sli)}")
        key_sli = False

    pass_sets = _parse_criteria_sets(item.get("pass"), f"{where} pass", problems)
    warning_sets = _parse_criteria_sets(item.get("warning"), f"{where} warning", problems)
    noise = _parse_noise(item, where, problems)
    if noise is not None and not any(c.relative for s in (*pass_sets, *warning_sets) for c in s.criteria):
        problems.add(
            where, "comparison/noise_floor apply to relative criteria (such as '<=+10%'), and this objective has none"
        )

    if sli is None or len(problems.messages) > before:
        return None
    return Objective(
        sli=sli.strip(),
        pass_=pass_sets,
        warning=warning_sets,
        weight=weight,
        key_sli=key_sli,
        display_name=display_name,
        noise=noise,
    )


def _parse_noise(item: Mapping[object, object], where: str, problems: Problems) -> NoiseRule | None:
    """The objective's ``comparison: {method, confidence}`` and ``noise_floor``, or None."""
    raw = item.get("comparison")
    floor_raw = item.get("noise_floor")
    if raw is None and floor_raw is None:
        return None
    method = ComparisonMethod.POINT
    confidence = 0.95
    min_effect = 0.6
    if raw is not None:
        if not isinstance(raw, Mapping):
            problems.add(f"{where} comparison", f"expected a mapping with method and confidence, found {_type_name(raw)}")
        else:
            _unknown_keys(raw, _NOISE_KEYS, f"{where} comparison", problems)
            value = raw.get("method", "point")
            try:
                method = ComparisonMethod(value)
            except ValueError:
                valid = ", ".join(m.value for m in ComparisonMethod)
                problems.add(f"{where} comparison.method", f"expected one of {valid}, found {_type_name(value)}")
            value = raw.get("confidence")
            if value is not None:
                if not isinstance(value, int | float) or isinstance(value, bool) or not 0.5 <= float(value) < 1:
                    problems.add(
                        f"{where} comparison.confidence", f"expected a number from 0.5 up to (not including) 1, e.g. 0.95, found {_type_name(value)}"
                    )
                else:
                    confidence = float(value)
            value = raw.get("min_effect")
            if value is not None:
                if not isinstance(value, int | float) or isinstance(value, bool) or not 0.5 <= float(value) < 1:
                    problems.add(
                        f"{where} comparison.min_effect",
                        f"expected a number from 0.5 up to (not including) 1, e.g. 0.6, found {_type_name(value)}",
                    )
                else:
                    min_effect = float(value)
    floor: float | None = None
    if floor_raw is not None:
        number = float(floor_raw) if isinstance(floor_raw, int | float) and not isinstance(floor_raw, bool) else math.nan
        if not math.isfinite(number) or number < 0:
            problems.add(f"{where} noise_floor", f"expected a number of at least 0 (in the indicator's unit), found {_type_name(floor_raw)}")
        else:
            floor = number
    return NoiseRule(method, confidence, floor, min_effect)


def _parse_criteria_sets(raw: object, where: str, problems: Problems) -> tuple[CriteriaSet, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(where, f"expected a list of {{criteria: [...]}} entries, found {_type_name(raw)}")
        return ()
    if len(raw) > MAX_CRITERIA:
        problems.add(where, f"expected at most {MAX_CRITERIA} criteria lists, found {len(raw)}")
        return ()
    sets: list[CriteriaSet] = []
    for i, entry in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(entry, Mapping) or "criteria" not in entry:
            problems.add(here, f"expected a mapping with a 'criteria' list, found {_type_name(entry)}")
            continue
        _unknown_keys(entry, ("criteria",), here, problems)
        crits = entry["criteria"]
        if crits is None:
            crits = []
        if not isinstance(crits, list):
            problems.add(f"{here}.criteria", f"expected a list of criteria strings, found {_type_name(crits)}")
            continue
        if len(crits) > MAX_CRITERIA:
            problems.add(f"{here}.criteria", f"expected at most {MAX_CRITERIA} criteria, found {len(crits)}")
            continue
        parsed: list[Criterion] = []
        for j, text in enumerate(crits):
            if not isinstance(text, str):
                problems.add(
                    f"{here}.criteria[{j}]",
                    f"expected a criterion string such as '<600' or '<=+10%', found {_type_name(text)}",
                )
                continue
            try:
                parsed.append(parse_criterion(text))
            except ValueError as err:
                problems.add(f"{here}.criteria[{j}]", str(err))
        sets.append(CriteriaSet(tuple(parsed)))
    return tuple(sets)


def _parse_total_score(raw: object, present: bool, problems: Problems) -> TotalScore | None:
    if not present or raw is None:
        problems.add("total_score", "missing: expected a mapping with pass (e.g. '90%') and optionally warning")
        return None
    if not isinstance(raw, Mapping):
        problems.add("total_score", f"expected a mapping with pass and warning, found {_type_name(raw)}")
        return None
    _unknown_keys(raw, _TOTAL_KEYS, "total_score", problems)
    if raw.get("pass") is None or raw.get("pass") == "":
        problems.add("total_score.pass", "missing: expected a percentage such as '90%' or 90")
        pass_pct = None
    else:
        pass_pct = _percent(raw.get("pass"), "total_score.pass", problems)
    warning_pct = None
    if raw.get("warning") is not None and raw.get("warning") != "":
        warning_pct = _percent(raw.get("warning"), "total_score.warning", problems)
    if pass_pct is None:
        return None
    return TotalScore(pass_=pass_pct, warning=warning_pct)


def _percent(value: object, where: str, problems: Problems) -> float | None:
    number: float | None = None
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        try:
            number = float(value.strip().removesuffix("%"))
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        problems.add(where, f"expected a percentage such as '90%' or 90, found {_type_name(value)}")
        return None
    return number
