"""The stage's rules as tables and properties: shipyard order and lookups (core/shipyard.py), the
canary's steps (core/canary.py) and the on_inconclusive retry budget (core/inconclusive.py)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sluice.core.canary import CanaryPolicy, CanaryState, CanaryStep, parse_canary
from sluice.core.inconclusive import (
    ATTEMPT_LABEL,
    InconclusiveAction,
    attempt_of,
    inconclusive_action,
    next_attempt,
    parse_on_inconclusive,
)
from sluice.core.ledger import _plain
from sluice.core.shipyard import parse_shipyard
from sluice.core.strategies import DeploymentStrategy
from sluice.errors import ValidationError

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True), min_size=1, max_size=8, unique=True)


# --- shipyard ---------------------------------------------------------------------------------------

@given(names=NAMES)
def test_stages_follow_the_order_of_the_shipyard(names: list[str]) -> None:
    """The first entry is the first stage; each stage's next one is the next entry; the last has none."""
    shipyard = parse_shipyard({"stages": [{"name": n} for n in names]})
    assert shipyard.first.name == names[0]
    walked, stage = [], shipyard.first
    while stage is not None:
        walked.append(stage.name)
        stage = shipyard.next_stage(stage.name)
    assert walked == names


@given(names=NAMES, other=st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True))
def test_an_unknown_stage_is_refused_naming_the_stages(names: list[str], other: str) -> None:
    """Asking for a stage the shipyard does not have raises, naming every valid stage; nothing is made up."""
    shipyard = parse_shipyard({"stages": [{"name": n} for n in names]})
    if other in names:
        assert shipyard.stage(other).name == other
        return
    for lookup in (shipyard.stage, shipyard.next_stage):
        with pytest.raises(ValidationError) as caught:
            lookup(other)
        assert all(n in str(caught.value) for n in names) and repr(other) in str(caught.value)


SHIPYARD_PROBLEMS = [
    ({"stages": []}, "stages: expected a non-empty list"),
    ({"stages": [{"name": "Dev"}]}, "stages[0].name"),
    ({"stages": [{"name": "dev"}, {"name": "dev"}]}, "the name appears twice"),
    ({"stages": [{"name": "dev", "deployment_strategy": "rolling"}]}, "deployment_strategy: expected one of direct"),
    ({"stages": [{"name": "dev", "test_strategy": "smoke"}]}, "test_strategy: expected one of functional"),
    ({"stages": [{"name": "dev", "approval_strategy": {"pass": "maybe"}}]}, "approval_strategy.pass"),
    ({"stages": [{"name": "dev", "approval_strategy": {"timeout": "0s"}}]}, "approval_strategy.timeout"),
    ({"stages": [{"name": "dev", "approval_strategy": {"on_timeout": "x"}}]}, "approval_strategy.on_timeout"),
    ({"stages": [{"name": "dev", "canary": {"steps": [10]}}]}, "only a stage with deployment_strategy: canary"),
    ({"stages": [{"name": "dev", "colour": "blue"}]}, "colour: unknown field"),
    ({"stages": [{"name": "dev", "on_inconclusive": "shrug"}]}, "on_inconclusive.action"),
]


@pytest.mark.parametrize(("doc", "problem"), SHIPYARD_PROBLEMS, ids=[p for _, p in SHIPYARD_PROBLEMS])
def test_a_bad_shipyard_names_the_field_at_fault(doc: object, problem: str) -> None:
    """Each kind of mistake is refused with a message naming the field."""
    with pytest.raises(ValidationError) as caught:
        parse_shipyard(doc)
    assert problem in str(caught.value)


def test_a_stage_round_trips_through_its_dict() -> None:
    """A stage written with ``to_dict`` parses back to the same stage (every strategy)."""
    doc = {"stages": [
        {"name": "dev", "deployment_strategy": "direct", "test_strategy": "functional"},
        {"name": "staging", "deployment_strategy": DeploymentStrategy.BLUE_GREEN.value, "test_strategy": "performance",
         "approval_strategy": {"pass": "manual", "warning": "manual", "timeout": "2h", "on_timeout": "approve"},
         "on_inconclusive": {"action": "retry", "max_retries": 2, "min_samples": 5, "no_baseline": "inconclusive"}},
        {"name": "production", "deployment_strategy": "canary",
         "canary": {"steps": [5, 50], "step_duration": "30s", "max_failed_steps": 1}},
    ]}
    shipyard = parse_shipyard(doc)
    assert parse_shipyard({"stages": [s.to_dict() for s in shipyard.stages]}) == shipyard


# --- canary ---------------------------------------------------------------------------------------

STEPS = st.lists(st.integers(1, 99), min_size=1, max_size=20, unique=True).map(sorted)


@given(steps=STEPS, failed=st.integers(0, 10))
def test_a_canary_walks_its_steps_then_promotes_at_100(steps: list[int], failed: int) -> None:
    """From step 0, ``next`` visits every declared weight in order, then 100; ``last`` is true only at the end."""
    problems: list[str] = []
    policy = parse_canary({"steps": steps, "max_failed_steps": failed}, "canary", problems)
    assert not problems and policy.steps == tuple(steps)
    state, seen, attempt = CanaryState(step=0, weight=policy.weight(0), first_attempt=1), [], 1
    while not policy.last(state.step):
        seen.append(state.weight)
        attempt += 1
        state = state.next(policy, attempt, f"t{attempt}")
        assert state.first_attempt == attempt and state.attempt_in_step(attempt) == 1
    seen.append(state.weight)
    assert seen == steps
    assert policy.weight(state.step + 1) == 100 and policy.weight(-1) == 100


@given(repeats=st.integers(0, 10), retries=st.integers(0, 5))
def test_a_repeated_step_counts_its_failures_and_attempts(repeats: int, retries: int) -> None:
    """``again`` stays on the step, counts one failure each time and starts the step's attempts anew."""
    policy = CanaryPolicy((10, 50))
    state, attempt = CanaryState(step=0, weight=10, first_attempt=1), 1
    for _ in range(repeats):
        attempt += 1 + retries
        state = state.again(attempt, "t")
    assert (state.step, state.weight, state.failed) == (0, policy.weight(0), repeats)
    assert state.attempt_in_step(attempt + retries) == retries + 1


CANARY_PROBLEMS = [
    ("nope", "expected a mapping"),
    ({"steps": []}, "steps: expected a list"),
    ({"steps": [10, 10]}, "not strictly increasing"),
    ({"steps": [0, 50]}, "not a whole number 1..99"),
    ({"steps": [50, 100]}, "not a whole number 1..99"),
    ({"steps": [True]}, "not a whole number 1..99"),
    ({"steps": list(range(1, 23))}, "steps: expected a list"),
    ({"step_duration": "25h"}, "step_duration"),
    ({"max_failed_steps": 11}, "max_failed_steps"),
    ({"speed": 1}, "unknown keys speed"),
]


@pytest.mark.parametrize(("raw", "problem"), CANARY_PROBLEMS, ids=[p for _, p in CANARY_PROBLEMS])
def test_bad_canary_steps_name_the_field_and_keep_the_defaults(raw: object, problem: str) -> None:
    problems: list[str] = []
    policy = parse_canary(raw, "stage 'p'.canary", problems)
    assert any(problem in p and "stage 'p'.canary" in p for p in problems), problems
    assert policy.steps == CanaryPolicy().steps or "steps" not in str(raw)


@given(steps=STEPS, step=st.integers(0, 19), failed=st.integers(0, 10), paused=st.booleans())
def test_a_canary_state_round_trips(steps: list[int], step: int, failed: int, paused: bool) -> None:
    """A canary run's state survives its stored form (as the ledger writes it)."""
    policy = CanaryPolicy(tuple(steps))
    state = CanaryState(step=step, weight=policy.weight(step), first_attempt=2, started="t", failed=failed, paused=paused)
    state = state.judged(CanaryStep(step, policy.weight(step), 2, "t", "u", "pass", 99.5, "e1", "ok"))
    assert CanaryState.from_dict(_plain(state)) == state


# --- on_inconclusive ---------------------------------------------------------------------------------

INCONCLUSIVE_TABLE = [
    # action, max_retries, attempt → what happens
    ("fail", 1, 1, InconclusiveAction.FAIL),
    ("fail", 1, 5, InconclusiveAction.FAIL),
    ("hold", 1, 1, InconclusiveAction.HOLD),
    ("hold", 3, 9, InconclusiveAction.HOLD),
    ("retry", 1, 1, InconclusiveAction.RETRY),
    ("retry", 1, 2, InconclusiveAction.FAIL),
    ("retry", 0, 1, InconclusiveAction.FAIL),
    ("retry", 2, 2, InconclusiveAction.RETRY),
    ("retry", 2, 3, InconclusiveAction.FAIL),
]


@pytest.mark.parametrize(("action", "max_retries", "attempt", "expected"), INCONCLUSIVE_TABLE)
def test_what_an_inconclusive_evaluation_does(action: str, max_retries: int, attempt: int,
                                              expected: InconclusiveAction) -> None:
    problems: list[str] = []
    policy = parse_on_inconclusive({"action": action, "max_retries": max_retries}, "x", problems)
    assert not problems
    assert inconclusive_action(policy, attempt) is expected


@settings(max_examples=100)
@given(max_retries=st.integers(0, 10))
def test_retries_are_bounded_by_max_retries(max_retries: int) -> None:
    """Retrying from attempt 1 on while told to: exactly ``max_retries`` retries, then fail — never more."""
    policy = parse_on_inconclusive({"action": "retry", "max_retries": max_retries}, "x", [])
    labels: dict[str, str] = {}
    retries = 0
    while inconclusive_action(policy, attempt_of(labels)) is InconclusiveAction.RETRY:
        labels = next_attempt(labels)
        retries += 1
        assert retries <= 10
    assert retries == max_retries and attempt_of(labels) == max_retries + 1


@example({}, "²")  # a non-ASCII digit: str.isdigit() says yes, int() raises
@example({}, "٣")
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4), st.text(max_size=6))
def test_an_attempt_label_is_read_safely(labels: dict[str, str], raw: str) -> None:
    """Any label value reads as an attempt ≥ 1 (garbage as 1); ``next_attempt`` adds exactly one
    and keeps the other labels."""
    labelled = {**labels, ATTEMPT_LABEL: raw}
    attempt = attempt_of(labelled)
    assert attempt >= 1
    assert attempt == (int(raw) if raw.isascii() and raw.isdigit() and int(raw) >= 1 else 1)
    raised = next_attempt(labelled)
    assert attempt_of(raised) == attempt + 1
    assert {k: v for k, v in raised.items() if k != ATTEMPT_LABEL} == {k: v for k, v in labelled.items() if k != ATTEMPT_LABEL}
