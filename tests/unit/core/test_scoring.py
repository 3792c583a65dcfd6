"""The evaluator gives lighthouse's verdicts and scores, and explains each of them."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.scoring import (
    EvaluationResult,
    IndicatorStatus,
    Measurement,
    Subject,
    TargetKind,
    Verdict,
    evaluate,
    select_baseline,
)
from sluice.core.slo import Slo, parse_aggregate_function, parse_slo
from sluice.errors import ValidationError

TUTORIAL: dict[str, Any] = {
    "spec_version": "0.1.1",
    "comparison": {
        "compare_with": "single_result",
        "include_result_with_score": "pass",
        "aggregate_function": "avg",
        "number_of_comparison_results": 1,
    },
    "objectives": [
        {
            "sli": "response_time_p95",
            "pass": [{"criteria": ["<=+10%", "<600"]}],
            "warning": [{"criteria": ["<=800"]}],
        }
    ],
    "total_score": {"pass": "90%", "warning": "75%"},
}


def slo_of(objectives: list[dict[str, Any]], total: dict[str, Any] | None = None, **extra: Any) -> Slo:
    doc: dict[str, Any] = {"objectives": objectives, "total_score": total or {"pass": "90%", "warning": "75%"}}
    doc.update(extra)
    return parse_slo(doc, "slo.yaml")


def one(criteria: list[str], warning: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"sli": "x", "pass": [{"criteria": criteria}], **extra}
    if warning is not None:
        obj["warning"] = [{"criteria": warning}]
    return obj


def run(slo: Slo, **values: float | None) -> EvaluationResult:
    return evaluate(slo, [Measurement(k, v) for k, v in values.items()])


def past(slo: Slo, ident: str, verdict: Verdict | None = None, **values: float) -> EvaluationResult:
    """A previous evaluation with the given values (its verdict overridden when asked)."""
    r = evaluate(slo, [Measurement(k, v) for k, v in values.items()], subject=Subject(id=ident))
    return r if verdict is None else replace(r, result=verdict)


# ------------------------------------------------------------------ the acceptance


def test_tutorial_slow_build_fails_with_score_zero() -> None:
    """Tutorial SLO, p95 2021 ms after a passing 350 ms: fail with score 0."""
    slo = parse_slo(TUTORIAL, "slo.yaml")
    before = evaluate(slo, [Measurement("response_time_p95", 350)], subject=Subject(id="e1"))
    r = evaluate(slo, [Measurement("response_time_p95", 2021)], [before])
    assert (r.result, r.score) == (Verdict.FAIL, 0)
    assert r.indicators[0].status is IndicatorStatus.FAIL


def test_tutorial_slow_build_fails_without_baseline_too() -> None:
    """Tutorial SLO, first evaluation, p95 2021 ms: fail with score 0."""
    r = run(parse_slo(TUTORIAL, "slo.yaml"), response_time_p95=2021)
    assert (r.result, r.score) == (Verdict.FAIL, 0)


def test_tutorial_fast_build_passes_with_score_100() -> None:
    """Tutorial SLO, p95 350 ms: pass with score 100."""
    r = run(parse_slo(TUTORIAL, "slo.yaml"), response_time_p95=350)
    assert (r.result, r.score) == (Verdict.PASS, 100)


# ------------------------------------------------------------------ criteria


@pytest.mark.parametrize(
    ("criterion", "value", "holds"),
    [
        ("<600", 599, True), ("<600", 600, False),
        ("<=600", 600, True), ("<=600", 601, False),
        ("=0", 0, True), ("=0", 0.1, False),
        (">=99", 99, True), (">=99", 98.9, False),
        (">1", 1.5, True), (">1", 1, False),
    ],
)
def test_absolute_criteria(criterion: str, value: float, holds: bool) -> None:
    """A bare number is an absolute threshold, compared with the given operator."""
    r = run(slo_of([one([criterion])]), x=value)
    assert r.indicators[0].status is (IndicatorStatus.PASS if holds else IndicatorStatus.FAIL)
    assert r.indicators[0].targets[0].target_value == float(criterion.lstrip("<>="))


@pytest.mark.parametrize(
    ("criterion", "baseline", "value", "threshold", "holds"),
    [
        ("<=+10%", 100, 110, 110, True),
        ("<=+10%", 100, 110.5, 110, False),
        (">-8%", 100, 92.5, 92, True),
        (">-8%", 100, 92, 92, False),
        ("<+50", 100, 149, 150, True),
        ("<+50", 100, 150, 150, False),
        ("<-5", 100, 94, 95, True),
        ("<10%", 100, 109, 110, True),
    ],
)
def test_relative_criteria_resolve_against_the_comparison_value(
    criterion: str, baseline: float, value: float, threshold: float, holds: bool
) -> None:
    """A signed or % criterion is relative to the previous value: <=+10% means at most 10 % above."""
    slo = slo_of([one([criterion])])
    r = evaluate(slo, [Measurement("x", value)], [past(slo, "p", x=baseline)])
    ind = r.indicators[0]
    assert ind.targets[0].target_value == pytest.approx(threshold)
    assert ind.status is (IndicatorStatus.PASS if holds else IndicatorStatus.FAIL)
    assert ind.comparison is not None and ind.comparison.value == baseline
    assert ind.comparison.evaluations == ("p",)


def test_relative_criterion_without_baseline_passes_and_says_so() -> None:
    """With nothing to compare with, a relative criterion holds and the indicator says "no baseline yet"."""
    r = run(slo_of([one(["<=+10%"])]), x=10_000)
    ind = r.indicators[0]
    assert ind.status is IndicatorStatus.PASS
    assert ind.targets[0].target_value is None and not ind.targets[0].violated
    assert "no baseline yet" in ind.message
    assert ind.comparison is None


def test_criteria_in_one_list_must_all_hold() -> None:
    """Criteria inside one criteria list are ANDed."""
    slo = slo_of([one([">100", "<200"])])
    assert run(slo, x=150).result is Verdict.PASS
    assert run(slo, x=250).result is Verdict.FAIL
    assert run(slo, x=50).result is Verdict.FAIL


def test_several_criteria_lists_are_alternatives() -> None:
    """Several criteria lists under pass are ORed, and every target is still reported."""
    slo = slo_of([{"sli": "x", "pass": [{"criteria": ["<10"]}, {"criteria": [">100"]}]}])
    assert run(slo, x=5).result is Verdict.PASS
    assert run(slo, x=500).result is Verdict.PASS
    r = run(slo, x=50)
    assert r.result is Verdict.FAIL
    assert [t.violated for t in r.indicators[0].targets] == [True, True]
    assert [t.violated for t in run(slo, x=5).indicators[0].targets] == [False, True]


def test_empty_criteria_list_holds() -> None:
    """Lighthouse quirk: an empty criteria list holds (all of nothing)."""
    slo = slo_of([{"sli": "x", "pass": [{"criteria": []}]}])
    assert run(slo, x=1).indicators[0].status is IndicatorStatus.PASS


# ------------------------------------------------------------------ objective scores


@pytest.mark.parametrize(
    ("value", "status", "score"),
    [(100, IndicatorStatus.PASS, 4.0), (700, IndicatorStatus.WARNING, 2.0), (900, IndicatorStatus.FAIL, 0.0)],
)
def test_objective_scores_weight_half_or_zero(value: float, status: IndicatorStatus, score: float) -> None:
    """Pass scores the weight, warning half of it, fail 0."""
    r = run(slo_of([one(["<600"], ["<=800"], weight=4)]), x=value)
    assert (r.indicators[0].status, r.indicators[0].score) == (status, score)


def test_warning_criteria_are_evaluated_and_reported_even_on_pass() -> None:
    """Warning targets are listed even when the pass criteria hold (kind tells them apart)."""
    r = run(slo_of([one(["<600"], ["<=800"])]), x=100)
    assert [t.kind for t in r.indicators[0].targets] == [TargetKind.PASS, TargetKind.WARNING]


def test_objective_without_pass_is_info_and_not_scored() -> None:
    """An objective without pass is listed with status info and does not count."""
    slo = slo_of([one(["<600"]), {"sli": "throughput", "key_sli": True, "warning": [{"criteria": ["<1"]}]}])
    r = evaluate(slo, [Measurement("x", 1), Measurement("throughput", 50)])
    info = r.indicators[1]
    assert info.status is IndicatorStatus.INFO and info.score == 0 and info.value == 50
    assert (r.achieved, r.maximum, r.score, r.result) == (1, 1, 100, Verdict.PASS)


def test_failing_key_sli_fails_the_evaluation_whatever_the_score() -> None:
    """A failing key SLI fails the evaluation even when the score reaches pass."""
    objs = [one(["<600"], key_sli=True)] + [{"sli": f"o{i}", "pass": [{"criteria": ["<1"]}]} for i in range(20)]
    slo = slo_of(objs)
    values = [Measurement("x", 900)] + [Measurement(f"o{i}", 0) for i in range(20)]
    r = evaluate(slo, values)
    assert r.score == pytest.approx(100 * 20 / 21)
    assert r.result is Verdict.FAIL and r.key_sli_failed
    assert "key SLI 'x'" in r.message


def test_key_sli_in_warning_does_not_fail() -> None:
    """A key SLI in warning is not failing: the total decides."""
    r = run(slo_of([one(["<600"], ["<800"], key_sli=True)], {"pass": 90, "warning": 50}), x=700)
    assert (r.result, r.score, r.key_sli_failed) == (Verdict.WARNING, 50, False)


# ------------------------------------------------------------------ total score


@pytest.mark.parametrize(
    ("values", "score", "verdict"),
    [
        ((1, 1, 1, 1), 100, Verdict.PASS),
        ((1, 1, 1, 700), 87.5, Verdict.WARNING),  # 3.5 / 4
        ((1, 1, 1, 900), 75, Verdict.WARNING),  # boundary: ≥ warning
        ((1, 1, 700, 900), 62.5, Verdict.FAIL),
        ((900, 900, 900, 900), 0, Verdict.FAIL),
    ],
)
def test_total_score_and_thresholds(values: tuple[float, ...], score: float, verdict: Verdict) -> None:
    """Total = 100 × sum of scores / sum of weights; pass ≥ 90, warning ≥ 75, else fail."""
    slo = slo_of([{"sli": f"s{i}", "pass": [{"criteria": ["<600"]}], "warning": [{"criteria": ["<800"]}]} for i in range(4)])
    r = evaluate(slo, [Measurement(f"s{i}", v) for i, v in enumerate(values)])
    assert (r.score, r.result) == (pytest.approx(score), verdict)
    assert r.maximum == 4


def test_score_exactly_at_pass_threshold_passes() -> None:
    """The pass threshold is inclusive (score ≥ pass)."""
    slo = slo_of([one(["<1"]), {"sli": "y", "pass": [{"criteria": ["<1"]}]}], {"pass": 50})
    assert evaluate(slo, [Measurement("x", 0), Measurement("y", 5)]).result is Verdict.PASS


def test_without_warning_threshold_below_pass_fails() -> None:
    """Without total_score.warning, anything below pass fails."""
    r = run(slo_of([one(["<600"], ["<800"])], {"pass": "90%"}), x=700)
    assert (r.score, r.result) == (50, Verdict.FAIL)


def test_no_scored_objective_passes_with_100() -> None:
    """With no scored objective at all the evaluation passes with score 100."""
    for objectives in ([], [{"sli": "info"}]):
        r = evaluate(slo_of(objectives), [Measurement("info", 3)])
        assert (r.result, r.score, r.maximum) == (Verdict.PASS, 100, 0)


def test_weights_shape_the_score() -> None:
    """Weights count in both numerator and denominator."""
    slo = slo_of([one(["<1"], weight=3), {"sli": "y", "pass": [{"criteria": ["<1"]}]}], {"pass": 80, "warning": 70})
    r = evaluate(slo, [Measurement("x", 0), Measurement("y", 9)])
    assert (r.achieved, r.maximum, r.score, r.result) == (3, 4, 75, Verdict.WARNING)
    assert r.arithmetic == "100 × 3 / 4 = 75"


# ------------------------------------------------------------------ could not measure


def test_unmeasured_sli_is_error_scores_zero_and_says_why() -> None:
    """An SLI that could not be measured is listed with status error, score 0 and its message."""
    slo = slo_of([one(["<600"])])
    r = evaluate(slo, [Measurement("x", None, success=False, message="prometheus: no data")])
    ind = r.indicators[0]
    assert (ind.status, ind.score, ind.value, ind.success) == (IndicatorStatus.ERROR, 0, None, False)
    assert ind.message == "could not measure: prometheus: no data"
    assert (r.result, r.score) == (Verdict.FAIL, 0)


def test_missing_sli_is_listed_as_error() -> None:
    """An SLI with no value at all stays visible (lighthouse dropped it), status error, score 0."""
    r = evaluate(slo_of([one(["<600"]), {"sli": "y", "pass": [{"criteria": ["<1"]}]}]), [Measurement("y", 0)])
    assert [i.name for i in r.indicators] == ["x", "y"]
    assert r.indicators[0].status is IndicatorStatus.ERROR
    assert "no value received from SLI provider" in r.indicators[0].message
    assert (r.score, r.result) == (50, Verdict.FAIL)


def test_unmeasured_key_sli_fails_the_evaluation() -> None:
    """A key SLI that could not be measured fails the evaluation."""
    slo = slo_of([one(["<600"], key_sli=True)], {"pass": 0})
    r = evaluate(slo, [Measurement("x", None, False, "timeout")])
    assert r.result is Verdict.FAIL and r.key_sli_failed


def test_unmeasured_previous_values_are_not_compared_with() -> None:
    """Previous values that could not be measured are left out of the comparison value."""
    slo = slo_of([one(["<=+10%"])], comparison={"compare_with": "several_results", "number_of_comparison_results": 3})
    prev = [
        past(slo, "a", x=100),
        evaluate(slo, [Measurement("x", None, False, "down")], subject=Subject(id="b")),
        past(slo, "c", x=200),
    ]
    ind = evaluate(slo, [Measurement("x", 160)], prev).indicators[0]
    assert ind.comparison is not None
    assert ind.comparison.values == (200, 100) and ind.comparison.evaluations == ("c", "a")
    assert ind.comparison.value == 150


# ------------------------------------------------------------------ comparison


def test_baseline_is_the_newest_admitted_previous_evaluations() -> None:
    """Newest previous evaluations whose result include_result_with_score admits, as many as configured."""
    slo = slo_of(
        [one(["<=+10%"])],
        comparison={"compare_with": "several_results", "number_of_comparison_results": 2, "include_result_with_score": "pass"},
    )
    prev = [
        past(slo, "old", Verdict.PASS, x=1),
        past(slo, "p1", Verdict.PASS, x=100),
        past(slo, "w", Verdict.WARNING, x=1000),
        past(slo, "p2", Verdict.PASS, x=200),
        past(slo, "f", Verdict.FAIL, x=5000),
    ]
    r = evaluate(slo, [Measurement("x", 160)], prev)
    assert r.comparison is not None and r.comparison.compared_evaluations == ("p2", "p1")
    assert r.indicators[0].comparison is not None and r.indicators[0].comparison.value == 150


@pytest.mark.parametrize(
    ("include", "expected"),
    [("pass", ("p",)), ("pass_or_warn", ("w", "p")), ("all", ("f", "w", "p"))],
)
def test_include_result_with_score_filters_by_overall_result(include: str, expected: tuple[str, ...]) -> None:
    """pass admits pass; pass_or_warn admits pass and warning; all admits every result."""
    slo = slo_of(
        [one(["<=+10%"])],
        comparison={"compare_with": "several_results", "number_of_comparison_results": 5, "include_result_with_score": include},
    )
    prev = [past(slo, "p", Verdict.PASS, x=1), past(slo, "w", Verdict.WARNING, x=1), past(slo, "f", Verdict.FAIL, x=1)]
    assert tuple(p.id for p in select_baseline(slo, prev)) == expected


def test_single_result_uses_only_the_newest() -> None:
    """single_result compares with one previous evaluation only."""
    slo = slo_of([one(["<=+10%"])], comparison={"compare_with": "single_result"})
    prev = [past(slo, "a", x=100), past(slo, "b", x=300)]
    assert evaluate(slo, [Measurement("x", 320)], prev).indicators[0].comparison.value == 300  # type: ignore[union-attr]


def test_only_the_same_project_stage_and_service_are_compared() -> None:
    """Previous evaluations of another project, stage or service are never the baseline."""
    slo = slo_of([one(["<=+10%"])])
    other = past(slo, "other", x=1)
    other = replace(other, subject=replace(other.subject, stage="dev"))
    mine = past(slo, "mine", x=100)
    mine = replace(mine, subject=replace(mine.subject, stage="staging"))
    r = evaluate(slo, [Measurement("x", 105)], [mine, other], subject=Subject(stage="staging"))
    assert r.comparison is not None and r.comparison.compared_evaluations == ("mine",)


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("avg", [1, 2, 3, 4], 2.5),
        ("p50", [1, 2, 3, 4], 2.5),
        ("p25", [1, 2, 3, 4], 1.25),
        ("p10", [1, 2, 3, 4], 1),  # position below 1 → smallest
        ("p90", [1, 2, 3, 4], 4),  # position past n → largest
        ("p90", list(range(1, 11)), 9.9),
        ("p95", [10, 20], 20),
        ("p50", [7], 7),
        ("p50", [3, 1, 2], 2),
    ],
)
def test_percentiles_interpolate_as_lighthouse(name: str, values: list[float], expected: float) -> None:
    """Percentile position p × (n + 1), clamped to the extremes, interpolated linearly in between."""
    assert parse_aggregate_function(name).apply([float(v) for v in values]) == pytest.approx(expected)


def test_comparison_value_is_shown_even_for_absolute_criteria() -> None:
    """The comparison value is part of the explanation whenever there is a baseline."""
    slo = slo_of([one(["<600"])])
    ind = evaluate(slo, [Measurement("x", 10)], [past(slo, "a", x=20)]).indicators[0]
    assert ind.comparison is not None and ind.comparison.value == 20


# ------------------------------------------------------------------ tests failed, records


def test_failed_tests_force_fail_but_list_the_slis() -> None:
    """A failed test forces fail whatever the score; the SLIs are still evaluated and listed."""
    r = evaluate(parse_slo(TUTORIAL, "s"), [Measurement("response_time_p95", 350)], test_failed=True)
    assert (r.result, r.score, r.test_failed) == (Verdict.FAIL, 100, True)
    assert r.indicators[0].status is IndicatorStatus.PASS
    assert "tests failed" in r.message


def test_result_round_trips_through_json() -> None:
    """to_dict → JSON → from_dict gives the same result."""
    slo = slo_of([one(["<=+10%", "<600"], ["<=800"], key_sli=True, displayName="p95"), {"sli": "info"}])
    prev = [past(slo, "a", x=100, info=1)]
    r = evaluate(slo, [Measurement("x", 700), Measurement("info", None, False, "nope")], prev,
        subject=Subject(id="id-1", project="sockshop", stage="", service="carts", start="2024-01-01T00:00:00Z", labels={"image": "carts:0.10.2"}))
    again = EvaluationResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


def test_json_record_has_the_documented_fields() -> None:
    """The JSON record carries result, score and per indicator name, value, status, score, key_sli, targets, message, comparison."""
    d = run(parse_slo(TUTORIAL, "s"), response_time_p95=350).to_dict()
    assert {"result", "score", "indicators", "total_score", "comparison", "message", "test_failed"} <= set(d)
    ind = d["indicators"][0]  # type: ignore[index]
    assert {"name", "value", "status", "score", "key_sli", "targets", "message", "comparison"} <= set(ind)
    assert set(ind["targets"][0]) >= {"criteria", "targetValue", "violated"}


def test_from_dict_rejects_malformed_records_naming_the_fields() -> None:
    """A malformed stored evaluation is a ValidationError naming the source and field."""
    with pytest.raises(ValidationError) as info:
        EvaluationResult.from_dict({"result": "great", "score": "x", "indicators": [{"status": "meh"}]}, "prev.json")
    text = "; ".join(info.value.problems)
    assert info.value.subject == "prev.json"
    assert "result: expected one of pass, warning, fail" in text
    assert "score: expected a number" in text
    assert "indicators[0].status" in text


def test_keptn_indicator_results_shape() -> None:
    """to_keptn_indicator_results gives lighthouse's indicatorResults (legacy targets: warning then pass)."""
    slo = parse_slo(TUTORIAL, "s")
    r = evaluate(slo, [Measurement("response_time_p95", 700)], [past(slo, "a", response_time_p95=500)])
    (k,) = r.to_keptn_indicator_results()
    assert k["status"] == "warning" and k["score"] == 0.5 and k["keySli"] is False
    assert [t["criteria"] for t in k["targets"]] == ["<=800", "<=+10%", "<600"]  # type: ignore[index, union-attr]
    assert k["value"] == {"metric": "response_time_p95", "value": 700.0, "success": True, "message": "", "comparedValue": 500.0}


def test_keptn_shape_reports_unmeasured_as_lighthouse_did() -> None:
    """In Keptn's shape an unmeasured scored SLI is status fail, value 0, success false."""
    r = evaluate(parse_slo(TUTORIAL, "s"), [Measurement("response_time_p95", None, False, "no data")])
    (k,) = r.to_keptn_indicator_results()
    assert k["status"] == "fail"
    assert k["value"]["success"] is False and k["value"]["value"] == 0.0  # type: ignore[index]


# ------------------------------------------------------------------ properties

ORDER = {Verdict.FAIL: 0, Verdict.WARNING: 1, Verdict.PASS: 2}

upper_criteria = st.one_of(
    st.builds(lambda op, n: f"{op}{n}", st.sampled_from(["<", "<="]), st.integers(0, 1000)),
    st.builds(lambda op, s, n, p: f"{op}{s}{n}{p}", st.sampled_from(["<", "<="]), st.sampled_from(["+", "-"]), st.integers(0, 50), st.sampled_from(["", "%"])),
)
objective_specs = st.lists(
    st.tuples(
        st.lists(upper_criteria, min_size=1, max_size=3),
        st.lists(upper_criteria, min_size=0, max_size=2),
        st.integers(0, 5),
        st.booleans(),
        st.floats(0, 2000, allow_nan=False),
        st.floats(0, 2000, allow_nan=False),
    ),
    min_size=1,
    max_size=6,
)


def build(specs: list[Any], weight_scale: int = 1) -> tuple[Slo, list[Measurement], list[EvaluationResult]]:
    objectives = []
    for i, (passes, warnings, weight, key, _value, _prev) in enumerate(specs):
        obj: dict[str, Any] = {"sli": f"s{i}", "pass": [{"criteria": passes}], "weight": weight * weight_scale, "key_sli": key}
        if warnings:
            obj["warning"] = [{"criteria": warnings}]
        objectives.append(obj)
    slo = slo_of(objectives, {"pass": 90, "warning": 60})
    values = [Measurement(f"s{i}", spec[4]) for i, spec in enumerate(specs)]
    prev = [evaluate(slo, [Measurement(f"s{i}", spec[5]) for i, spec in enumerate(specs)],
        subject=Subject(id="p"))]
    return slo, values, prev


@settings(max_examples=200, deadline=None)
@given(objective_specs, st.lists(st.floats(0, 500, allow_nan=False), min_size=6, max_size=6))
def test_moving_values_inside_their_thresholds_never_turns_pass_into_fail(specs: list[Any], deltas: list[float]) -> None:
    """Lowering values under upper-bound criteria never makes any verdict worse."""
    slo, values, prev = build(specs)
    before = evaluate(slo, values, prev)
    better = [Measurement(m.name, m.value - deltas[i]) for i, m in enumerate(values)]  # type: ignore[operator]
    after = evaluate(slo, better, prev)
    assert ORDER[after.result] >= ORDER[before.result]
    assert after.score >= before.score
    for a, b in zip(after.indicators, before.indicators, strict=True):
        assert a.score >= b.score


@settings(max_examples=200, deadline=None)
@given(objective_specs, st.integers(1, 1000))
def test_scaling_all_weights_leaves_the_score_unchanged(specs: list[Any], k: int) -> None:
    """Multiplying every weight by the same factor changes neither score nor verdict."""
    slo, values, prev = build([(p, w, max(weight, 1), key, v, pv) for p, w, weight, key, v, pv in specs])
    scaled, _, prev_scaled = build([(p, w, max(weight, 1), key, v, pv) for p, w, weight, key, v, pv in specs], k)
    a = evaluate(slo, values, prev)
    b = evaluate(scaled, values, prev_scaled)
    assert a.score == pytest.approx(b.score, abs=1e-9)
    assert a.result is b.result


@settings(max_examples=200, deadline=None)
@given(objective_specs, st.integers(0, 5), st.sampled_from(["<0", "<=0.5", ">5000", "<-100%"]))
def test_a_failing_key_sli_always_fails(specs: list[Any], which: int, impossible: str) -> None:
    """Whatever the other objectives do, a key SLI whose criteria fail makes the result fail."""
    which %= len(specs)
    _passes, _warnings, weight, _key, _value, prev_value = specs[which]
    specs = list(specs)
    specs[which] = ([impossible], [impossible], weight, True, 1.0, prev_value)
    slo, values, prev = build(specs)
    r = evaluate(slo, values, prev)
    assert r.result is Verdict.FAIL and r.key_sli_failed
