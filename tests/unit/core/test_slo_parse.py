"""Parsing Keptn's slo.yaml (spec 0.1.x): defaults, quirks and every kind of invalid file."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.core.slo import (
    CompareWith,
    IncludeResultWithScore,
    Operator,
    parse_aggregate_function,
    parse_criterion,
    parse_slo,
)
from sluice.errors import ValidationError
from sluice.services.documents import load_slo, load_values

TUTORIAL = """
spec_version: "0.1.1"
comparison:
  compare_with: "single_result"
  include_result_with_score: "pass"
  aggregate_function: "avg"
  number_of_comparison_results: 1
objectives:
  - sli: "response_time_p95"
    key_sli: false
    pass:
      - criteria:
          - "<=+10%"
          - "<600"
    warning:
      - criteria:
          - "<=800"
total_score:
  pass: "90%"
  warning: "75%"
"""


def minimal(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "objectives": [{"sli": "rt", "pass": [{"criteria": ["<600"]}]}],
        "total_score": {"pass": "90%"},
    }
    doc.update(overrides)
    return doc


def problems_of(doc: object) -> tuple[str, ...]:
    with pytest.raises(ValidationError) as info:
        parse_slo(doc, "slo.yaml")
    assert info.value.subject == "slo.yaml"
    return info.value.problems


def test_tutorial_slo_parses_with_its_comparison_and_thresholds() -> None:
    """The tutorial's SLO yields one objective with pass AND-criteria, a warning and 90/75 %."""
    slo = load_slo(TUTORIAL, "slo.yaml")
    assert slo.spec_version == "0.1.1"
    assert slo.comparison.compare_with is CompareWith.SINGLE_RESULT
    assert slo.comparison.include_result_with_score is IncludeResultWithScore.PASS
    assert slo.comparison.count == 1
    (obj,) = slo.objectives
    assert obj.sli == "response_time_p95"
    assert [c.text for c in obj.pass_[0].criteria] == ["<=+10%", "<600"]
    assert [c.text for c in obj.warning[0].criteria] == ["<=800"]
    assert slo.total_score.pass_ == 90 and slo.total_score.warning == 75


@pytest.mark.parametrize(
    ("text", "op", "amount", "relative", "percent", "increase"),
    [
        ("<600", Operator.LT, 600, False, False, True),
        ("<=800", Operator.LE, 800, False, False, True),
        ("=0", Operator.EQ, 0, False, False, True),
        (">=99.5", Operator.GE, 99.5, False, False, True),
        (">1", Operator.GT, 1, False, False, True),
        ("<=+10%", Operator.LE, 10, True, True, True),
        (">-8%", Operator.GT, 8, True, True, False),
        ("<+50", Operator.LT, 50, True, False, True),
        ("<-5", Operator.LT, 5, True, False, False),
        ("<10%", Operator.LT, 10, True, True, True),
        ("< = + 10 %", Operator.LE, 10, True, True, True),
    ],
)
def test_criterion_strings_parse_like_lighthouse(
    text: str, op: Operator, amount: float, relative: bool, percent: bool, increase: bool
) -> None:
    """Operators, signs and % are read as lighthouse reads them (a bare % is an increase)."""
    c = parse_criterion(text)
    assert (c.operator, c.amount, c.relative, c.percent, c.increase) == (op, amount, relative, percent, increase)


@pytest.mark.parametrize(("text", "baseline", "expected"), [
    ("<600", None, 600.0),
    ("<600", 100.0, 600.0),
    ("<=+10%", None, None),
    ("<=+10%", 350.0, 385.0),
    (">-8%", 100.0, 92.0),
    ("<+50", 100.0, 150.0),
    ("<-50", 100.0, 50.0),
])
def test_criterion_threshold_is_absolute_or_relative_to_the_baseline(
    text: str, baseline: float | None, expected: float | None
) -> None:
    """A bare number is absolute; a signed or % criterion resolves against the comparison value."""
    got = parse_criterion(text).threshold(baseline)
    assert got is None if expected is None else got == pytest.approx(expected)


@pytest.mark.parametrize("text", ["600", "<", "<600ms", "=<5", "==5", "~5", "<>5", "<+", "< abc", ""])
def test_invalid_criteria_are_rejected_with_the_expected_form(text: str) -> None:
    """Criteria lighthouse would silently count as violated are refused, saying what is expected."""
    with pytest.raises(ValueError, match="expected an operator"):
        parse_criterion(text)


def test_missing_comparison_uses_lighthouse_defaults() -> None:
    """No comparison block: single_result, include all, one result, avg."""
    c = parse_slo(minimal(), "slo.yaml").comparison
    assert c.compare_with is CompareWith.SINGLE_RESULT
    assert c.include_result_with_score is IncludeResultWithScore.ALL
    assert c.count == 1
    assert c.aggregate_function.name == "avg"


def test_comparison_without_compare_with_uses_three_results() -> None:
    """Lighthouse quirk: a comparison block without compare_with compares with 3 results."""
    c = parse_slo(minimal(comparison={"include_result_with_score": "pass"}), "s").comparison
    assert c.compare_with is None
    assert c.count == 3


def test_several_results_without_number_uses_three() -> None:
    """Lighthouse quirk: several_results without number_of_comparison_results (or 0) means 3."""
    for comparison in ({"compare_with": "several_results"}, {"compare_with": "several_results", "number_of_comparison_results": 0}):
        assert parse_slo(minimal(comparison=comparison), "s").comparison.count == 3
    five = {"compare_with": "several_results", "number_of_comparison_results": 5}
    assert parse_slo(minimal(comparison=five), "s").comparison.count == 5


def test_single_result_ignores_the_number_of_results() -> None:
    """single_result always compares with one result, whatever number_of_comparison_results says."""
    comparison = {"compare_with": "single_result", "number_of_comparison_results": 4}
    assert parse_slo(minimal(comparison=comparison), "s").comparison.count == 1


def test_weight_missing_or_zero_defaults_to_one() -> None:
    """Lighthouse quirk: weight 0 means "not set" and becomes 1."""
    doc = minimal(objectives=[
        {"sli": "a", "pass": [{"criteria": ["<1"]}]},
        {"sli": "b", "weight": 0, "pass": [{"criteria": ["<1"]}]},
        {"sli": "c", "weight": 3, "pass": [{"criteria": ["<1"]}]},
    ])
    assert [o.weight for o in parse_slo(doc, "s").objectives] == [1, 1, 3]


def test_objective_without_pass_is_informational() -> None:
    """An objective without pass criteria is informational."""
    doc = minimal(objectives=[{"sli": "throughput"}])
    assert parse_slo(doc, "s").objectives[0].informational


@pytest.mark.parametrize(("raw", "expected"), [("90%", 90.0), (90, 90.0), ("90", 90.0), (87.5, 87.5), ("87.5 %", 87.5)])
def test_total_score_accepts_percent_strings_and_numbers(raw: object, expected: float) -> None:
    """total_score may be written "90%" or 90."""
    assert parse_slo(minimal(total_score={"pass": raw}), "s").total_score.pass_ == expected


def test_warning_threshold_is_optional() -> None:
    """Without total_score.warning there is no warning band."""
    assert parse_slo(minimal(), "s").total_score.warning is None


@pytest.mark.parametrize(("name", "fraction"), [("avg", None), ("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99.9", 0.999)])
def test_aggregate_functions_avg_and_percentiles(name: str, fraction: float | None) -> None:
    """avg and any pNN are valid aggregate functions."""
    got = parse_aggregate_function(name).percentile
    assert got is None if fraction is None else got == pytest.approx(fraction)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (minimal(objectives=[{"sli": "rt", "weight": -1, "pass": [{"criteria": ["<1"]}]}]), "objective 'rt' (objectives[0]) weight: expected a number of at least 0"),
        (minimal(objectives=[{"sli": "rt", "pass": [{"criteria": ["~600"]}]}]), "objective 'rt' (objectives[0]) pass[0].criteria[0]: criterion '~600' is not valid"),
        (minimal(objectives=[{"sli": "rt", "warning": [{"criteria": ["<600ms"]}]}]), "objective 'rt' (objectives[0]) warning[0].criteria[0]"),
        (minimal(total_score={"warning": "75%"}), "total_score.pass: missing"),
        ({"objectives": []}, "total_score: missing"),
        (minimal(total_score={"pass": "ninety"}), "total_score.pass: expected a percentage"),
        (minimal(comparison={"compare_with": "last_result"}), "comparison.compare_with: expected single_result or several_results"),
        (minimal(comparison={"include_result_with_score": "good"}), "comparison.include_result_with_score: expected pass, pass_or_warn or all"),
        (minimal(comparison={"aggregate_function": "median"}), "comparison.aggregate_function: expected 'avg' or a percentile"),
        (minimal(comparison={"number_of_comparison_results": "three"}), "comparison.number_of_comparison_results"),
        (minimal(objectives=[{"pass": [{"criteria": ["<1"]}]}]), "objectives[0].sli: expected the name of an SLI"),
        (minimal(objectives=[{"sli": "rt", "key_sli": "yes"}]), "objective 'rt' (objectives[0]) key_sli: expected true or false"),
        (minimal(objectives=[{"sli": "rt", "pass": {"criteria": ["<1"]}}]), "objective 'rt' (objectives[0]) pass: expected a list"),
        (minimal(objectives=[{"sli": "rt", "pass": [["<1"]]}]), "pass[0]: expected a mapping with a 'criteria' list"),
        (minimal(objectives=[{"sli": "rt", "key-sli": True}]), "objective 'rt' (objectives[0]).key-sli: unknown field (valid: comparison, displayName, key_sli"),
        (minimal(objectives="rt"), "objectives: expected a list"),
        ({"total_score": {"pass": 90}}, "objectives: missing"),
        (minimal(totalscore=1), "totalscore: unknown field (valid: comparison, filter, objectives, spec_version, total_score)"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)
def test_invalid_files_name_the_field_and_what_was_expected(doc: object, fragment: str) -> None:
    """Each invalid SLO is rejected with a problem naming the objective, field and expectation."""
    problems = problems_of(doc)
    assert any(fragment in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    """All problems of a file are listed together, not just the first."""
    doc = {
        "objectives": [
            {"sli": "a", "weight": -2, "pass": [{"criteria": ["<1"]}]},
            {"sli": "b", "pass": [{"criteria": ["?"]}]},
        ],
        "total_score": {"warning": "x"},
    }
    problems = problems_of(doc)
    assert len(problems) >= 4, problems


def test_bad_yaml_names_the_file_and_line() -> None:
    """A YAML syntax error says which file and which line."""
    text = "objectives:\n  - sli: rt\n    pass: [\n total_score: {pass: 90}\n"
    with pytest.raises(ValidationError) as info:
        load_slo(text, "examples/slo.yaml")
    assert info.value.subject == "examples/slo.yaml"
    assert "line " in info.value.problems[0] and "not valid YAML" in info.value.problems[0]


def test_empty_file_is_rejected() -> None:
    """An empty SLO file is an error, not an SLO that passes everything."""
    with pytest.raises(ValidationError, match="empty"):
        load_slo("", "slo.yaml")


def test_slo_to_dict_makes_defaults_explicit() -> None:
    """to_dict writes back a parseable SLO with the defaults filled in."""
    slo = load_slo(TUTORIAL, "slo.yaml")
    again = parse_slo(slo.to_dict(), "again")
    assert again.objectives == slo.objectives
    assert again.total_score == slo.total_score
    assert again.comparison == slo.comparison


def test_values_file_accepts_numbers_and_unmeasured_entries() -> None:
    """An SLI-values file maps names to numbers, or to {success: false, message} when unmeasured."""
    values = load_values("rt: 350\nerr:\n  success: false\n  message: no data\nthroughput: {value: 12.5}\n", "v.yaml")
    assert [(v.name, v.value, v.success, v.message) for v in values] == [
        ("rt", 350.0, True, ""),
        ("err", None, False, "no data"),
        ("throughput", 12.5, True, ""),
    ]


def test_values_file_accepts_json_and_keptn_lists() -> None:
    """JSON files and Keptn's indicatorValues list both load."""
    assert load_values('{"rt": 1}', "v.json")[0].value == 1.0
    listed = load_values('[{"metric": "rt", "value": 2, "success": true, "message": ""}]', "v.json")
    assert listed[0].name == "rt" and listed[0].value == 2.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rt: fast\n", "SLI 'rt': expected a number"),
        ("rt: {value: 1, succes: true}\n", "SLI 'rt'.succes: unknown field"),
        ("rt: {success: true}\n", "SLI 'rt'.value: missing"),
        ("rt: .nan\n", "expected a finite number"),
        ("- 1\n- 2\n", "expected a mapping with metric"),
        ("42\n", "expected a mapping of SLI name"),
    ],
)
def test_bad_values_files_name_the_sli(text: str, fragment: str) -> None:
    """Invalid SLI values are rejected naming the SLI and what was expected."""
    with pytest.raises(ValidationError) as info:
        load_values(text, "values.yaml")
    assert info.value.subject == "values.yaml"
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_bad_json_names_line_and_column() -> None:
    """A JSON syntax error names the line and column."""
    with pytest.raises(ValidationError, match=r"line 2, column \d+: not valid JSON"):
        load_values('{"rt": 1,\n}', "values.json")
