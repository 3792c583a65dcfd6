"""Inconclusive evaluations: the marker and its reasons never change Keptn's verdict or score;
the stage's ``on_inconclusive`` policy; the comparison history leaves out what could not be judged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.inconclusive import (
    DataRules,
    InconclusiveAction,
    InconclusivePolicy,
    comparison_history,
    inconclusive_action,
    parse_on_inconclusive,
)
from sluice.core.scoring import (
    EvaluationResult,
    InconclusiveKind,
    Measurement,
    Subject,
    Verdict,
    evaluate,
)
from sluice.core.slo import Slo, parse_slo

TUTORIAL: dict[str, Any] = {
    "comparison": {"compare_with": "single_result", "include_result_with_score": "pass", "aggregate_function": "avg"},
    "objectives": [
        {"sli": "response_time_p95", "pass": [{"criteria": ["<=+10%", "<600"]}], "warning": [{"criteria": ["<=800"]}]},
        {"sli": "error_rate"},
    ],
    "total_score": {"pass": "90%", "warning": "75%"},
}


def tutorial() -> Slo:
    return parse_slo(TUTORIAL, "slo.yaml")


def test_unmeasured_scored_sli_is_inconclusive_with_the_reason() -> None:
    """A scored SLI the provider could not measure marks the evaluation inconclusive, naming it and why;
    the verdict and score are lighthouse's (fail, 0)."""
    r = evaluate(tutorial(), [Measurement("response_time_p95", None, False, "prometheus: no data")])
    assert (r.result, r.score) == (Verdict.FAIL, 0)
    assert r.inconclusive
    (reason,) = r.inconclusive_reasons
    assert reason.sli == "response_time_p95" and reason.kind is InconclusiveKind.NOT_MEASURED
    assert "prometheus: no data" in reason.message


def test_missing_value_nan_and_informational_objectives() -> None:
    """No value at all or NaN is not measured; an informational objective (not scored, not key) never counts."""
    assert evaluate(tutorial(), []).inconclusive
    nan = evaluate(tutorial(), [Measurement("response_time_p95", float("nan")), Measurement("error_rate", 0.0)])
    assert [x.kind for x in nan.inconclusive_reasons] == [InconclusiveKind.NOT_MEASURED]
    only_info_missing = evaluate(tutorial(), [Measurement("response_time_p95", 300, samples=500)])
    assert not only_info_missing.inconclusive


def test_unmeasured_key_sli_without_pass_criteria_counts() -> None:
    """A key SLI counts even when it has no pass criteria."""
    slo = parse_slo({"objectives": [{"sli": "k", "key_sli": True}], "total_score": {"pass": "90%"}}, "s")
    assert evaluate(slo, [Measurement("k", None, False, "timeout")]).inconclusive


def test_too_few_samples_is_inconclusive_and_the_minimum_is_per_stage() -> None:
    """Fewer requests than the stage's minimum behind an indicator: inconclusive (default minimum 100)."""
    few = [Measurement("response_time_p95", 300, samples=12)]
    r = evaluate(tutorial(), few)
    assert r.result is Verdict.PASS and r.inconclusive
    assert r.inconclusive_reasons[0].kind is InconclusiveKind.TOO_FEW_SAMPLES
    assert "only 12 request(s)" in r.inconclusive_reasons[0].message and "100" in r.inconclusive_reasons[0].message
    assert not evaluate(tutorial(), few, rules=DataRules(min_samples=10)).inconclusive
    assert not evaluate(tutorial(), few, rules=DataRules(min_samples=0)).inconclusive
    assert not evaluate(tutorial(), [Measurement("response_time_p95", 300)]).inconclusive  # no count: no rule


def test_no_baseline_passes_by_default_and_is_inconclusive_when_asked() -> None:
    """A relative criterion with no baseline holds (Keptn), and is inconclusive only when the stage asks."""
    values = [Measurement("response_time_p95", 300, samples=500)]
    keptn = evaluate(tutorial(), values)
    asked = evaluate(tutorial(), values, rules=DataRules(no_baseline_inconclusive=True))
    assert (keptn.result, keptn.score, keptn.inconclusive) == (Verdict.PASS, 100, False)
    assert (asked.result, asked.score) == (Verdict.PASS, 100)
    assert [x.kind for x in asked.inconclusive_reasons] == [InconclusiveKind.NO_BASELINE]
    prev = evaluate(tutorial(), values, subject=Subject(id="p"))
    assert not evaluate(tutorial(), values, [prev], rules=DataRules(no_baseline_inconclusive=True)).inconclusive


def test_marker_round_trips_and_old_records_read_as_conclusive() -> None:
    """to_dict → JSON → from_dict keeps the reasons, samples and all; a record without the keys is conclusive."""
    r = evaluate(tutorial(), [Measurement("response_time_p95", 300, samples=3), Measurement("error_rate", None, False, "x")], rules=DataRules(no_baseline_inconclusive=True),
        subject=Subject(id="e"))
    doc = json.loads(json.dumps(r.to_dict()))
    assert doc["inconclusive"] is True and len(doc["inconclusive_reasons"]) == 2
    assert EvaluationResult.from_dict(doc) == r
    del doc["inconclusive"], doc["inconclusive_reasons"]
    assert not EvaluationResult.from_dict(doc).inconclusive


# ---------------------------------------------------------------------------- properties

VALUE = st.one_of(st.none(), st.floats(min_value=0, max_value=2000, allow_nan=False))
SAMPLES = st.one_of(st.none(), st.integers(min_value=0, max_value=1000))


@st.composite
def measurements(draw: st.DrawFn) -> list[Measurement]:
    out = []
    for name in ("response_time_p95", "error_rate", "throughput"):
        if draw(st.booleans()):
            value = draw(VALUE)
            ok = value is not None and draw(st.booleans())
            out.append(Measurement(name, value if ok else None, ok, "" if ok else "provider error", draw(SAMPLES)))
    return out


SLO3 = parse_slo(
    {
        "comparison": {"compare_with": "several_results", "number_of_comparison_results": 2},
        "objectives": [
            {"sli": "response_time_p95", "pass": [{"criteria": ["<=+10%", "<600"]}], "warning": [{"criteria": ["<=800"]}]},
            {"sli": "error_rate", "pass": [{"criteria": ["<=0.01"]}], "key_sli": True},
            {"sli": "throughput"},
        ],
        "total_score": {"pass": "90%", "warning": "75%"},
    },
    "slo.yaml",
)


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(measurements(), max_size=3),
    values=measurements(),
    min_samples=st.integers(min_value=0, max_value=500),
    no_baseline=st.booleans(),
)
def test_inconclusive_never_changes_the_verdict_or_the_score(
    history: list[list[Measurement]], values: list[Measurement], min_samples: int, no_baseline: bool
) -> None:
    """Whatever the rules, the verdict, score and every indicator's status are Keptn's (the rules off)."""
    prev = [evaluate(SLO3, h, subject=Subject(id=f"p{i}")) for i, h in enumerate(history)]
    keptn = evaluate(SLO3, values, prev, rules=DataRules(min_samples=0))
    judged = evaluate(SLO3, values, prev, rules=DataRules(min_samples, no_baseline))
    assert (judged.result, judged.score) == (keptn.result, keptn.score)
    assert [(i.status, i.score) for i in judged.indicators] == [(i.status, i.score) for i in keptn.indicators]


@settings(max_examples=200, deadline=None)
@given(
    p95=st.floats(min_value=0, max_value=2000, allow_nan=False),
    err=st.floats(min_value=0, max_value=1, allow_nan=False),
    samples=st.integers(min_value=100, max_value=10**6),
    baseline=st.one_of(st.none(), st.floats(min_value=0, max_value=2000, allow_nan=False)),
)
def test_fully_measured_with_enough_samples_is_never_inconclusive(
    p95: float, err: float, samples: int, baseline: float | None
) -> None:
    """Every scored and key SLI measured, with at least the minimum of samples: conclusive."""
    prev = [] if baseline is None else [evaluate(SLO3, [Measurement("response_time_p95", baseline)],
        subject=Subject(id="b"))]
    r = evaluate(
        SLO3, [Measurement("response_time_p95", p95, samples=samples), Measurement("error_rate", err, samples=samples)],
        prev,
    )
    assert not r.inconclusive


@settings(max_examples=100, deadline=None)
@given(values=measurements())
def test_an_unmeasured_scored_sli_is_always_inconclusive(values: list[Measurement]) -> None:
    """If a scored or key SLI has no successful finite value, the evaluation is inconclusive."""
    r = evaluate(SLO3, values)
    measured = {m.name for m in values if m.success and m.value is not None}
    if not {"response_time_p95", "error_rate"} <= measured:
        assert r.inconclusive


# ---------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("policy", "attempts", "expected"),
    [
        (InconclusivePolicy(), [1, 2, 5], ["fail", "fail", "fail"]),
        (InconclusivePolicy(InconclusiveAction.HOLD), [1, 3], ["hold", "hold"]),
        (InconclusivePolicy(InconclusiveAction.RETRY, max_retries=2), [1, 2, 3, 4], ["retry", "retry", "fail", "fail"]),
        (InconclusivePolicy(InconclusiveAction.RETRY, max_retries=0), [1], ["fail"]),
    ],
)
def test_inconclusive_action(policy: InconclusivePolicy, attempts: list[int], expected: list[str]) -> None:
    """fail and hold as asked; retry while retries remain (attempt 1 is the first run), then fail."""
    assert [inconclusive_action(policy, a).value for a in attempts] == expected


@given(max_retries=st.integers(min_value=0, max_value=10), attempt=st.integers(min_value=1, max_value=50))
def test_retry_is_bounded(max_retries: int, attempt: int) -> None:
    """A retrying stage runs at most 1 + max_retries times: past that, the action is always fail."""
    action = inconclusive_action(InconclusivePolicy(InconclusiveAction.RETRY, max_retries), attempt)
    assert (action is InconclusiveAction.RETRY) == (attempt <= max_retries)


def test_parse_on_inconclusive_short_and_long_form() -> None:
    """The shipyard value: an action name, or a mapping with the retry budget and the data rules."""
    problems: list[str] = []
    assert parse_on_inconclusive(None, "stage 'dev'", problems) == InconclusivePolicy()
    assert parse_on_inconclusive("hold", "stage 'dev'", problems).action is InconclusiveAction.HOLD
    long = parse_on_inconclusive(
        {"action": "retry", "max_retries": 2, "min_samples": 50, "no_baseline": "inconclusive"}, "stage 's'", problems
    )
    assert problems == []
    assert long == InconclusivePolicy(InconclusiveAction.RETRY, 2, DataRules(50, True))
    assert long.to_dict() == {"action": "retry", "max_retries": 2, "min_samples": 50, "no_baseline": "inconclusive"}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("pause", "stage 's'.action: expected one of fail, hold, retry, found 'pause'"),
        (3, "stage 's': expected one of fail, hold, retry"),
        ({"action": "retry", "max_retries": -1}, "stage 's'.max_retries: expected a whole number 0..10"),
        ({"action": "retry", "max_retries": True}, "max_retries"),
        ({"min_samples": "lots"}, "stage 's'.min_samples: expected a whole number at least 0"),
        ({"no_baseline": "fail"}, "stage 's'.no_baseline: expected pass or inconclusive"),
        ({"actoin": "hold"}, "stage 's': unknown keys actoin"),
    ],
)
def test_parse_on_inconclusive_names_every_problem(raw: object, fragment: str) -> None:
    """Bad values are problems naming the stage, the field, what was expected and what was found."""
    problems: list[str] = []
    parse_on_inconclusive(raw, "stage 's'", problems)
    assert any(fragment in p for p in problems), problems


def test_comparison_history_leaves_out_inconclusive_unless_passed() -> None:
    """Inconclusive evaluations are no baseline unless they passed; conclusive ones all stay, in order."""
    slo = tutorial()
    ok = evaluate(slo, [Measurement("response_time_p95", 300, samples=500)], subject=Subject(id="ok"))
    failed = evaluate(slo, [Measurement("response_time_p95", 900, samples=500)], subject=Subject(id="failed"))
    lost = evaluate(slo, [Measurement("response_time_p95", None, False, "timeout")], subject=Subject(id="lost"))
    thin_pass = evaluate(slo, [Measurement("response_time_p95", 300, samples=5)], subject=Subject(id="thin"))
    kept = comparison_history([ok, lost, failed, thin_pass])
    assert [e.id for e in kept] == ["ok", "failed", "thin"]


def test_shipyard_stage_reads_on_inconclusive() -> None:
    """A shipyard stage's on_inconclusive is parsed (default fail); a bad one is reported naming the stage."""
    from sluice.core.shipyard import parse_shipyard
    from sluice.errors import ValidationError

    shipyard = parse_shipyard(
        {"stages": [{"name": "dev"}, {"name": "staging", "on_inconclusive": {"action": "retry", "max_retries": 2}}]}
    )
    assert shipyard.stage("dev").inconclusive == InconclusivePolicy()
    assert shipyard.stage("staging").inconclusive.action is InconclusiveAction.RETRY
    assert shipyard.stage("staging").to_dict()["on_inconclusive"] == {
        "action": "retry", "max_retries": 2, "min_samples": 100, "no_baseline": "pass"}
    with pytest.raises(ValidationError) as info:
        parse_shipyard({"stages": [{"name": "dev", "on_inconclusive": "wait"}]})
    assert "stage 'dev'.on_inconclusive.action: expected one of fail, hold, retry, found 'wait'" in info.value.problems


def test_attempt_label_round_trip_and_garbage() -> None:
    """The attempt number travels in the labels; absent or garbage reads as the first attempt."""
    from sluice.core.inconclusive import ATTEMPT_LABEL, attempt_of, next_attempt

    assert attempt_of({}) == 1 and attempt_of({ATTEMPT_LABEL: "x"}) == 1 and attempt_of({ATTEMPT_LABEL: "0"}) == 1
    labels = next_attempt({"buildId": "7"})
    assert labels == {"buildId": "7", ATTEMPT_LABEL: "2"} and attempt_of(next_attempt(labels)) == 3


def test_inconclusive_in_evaluation_details() -> None:
    """The gatekeeper reads the marker from evaluation-done's evaluationdetails['sluice']."""
    from sluice.core.inconclusive import inconclusive_in

    r = evaluate(tutorial(), [Measurement("response_time_p95", None, False, "timeout")])
    assert inconclusive_in({"sluice": r.to_dict()}) == (True, [r.inconclusive_reasons[0].message])
    assert inconclusive_in({"sluice": evaluate(tutorial(), [Measurement("response_time_p95", 3)]).to_dict()}) == (False, [])
    assert inconclusive_in({}) == (False, []) and inconclusive_in({"sluice": "x"}) == (False, [])
