"""The gate's decision and the stage's serving state (core/gate.py, core/deployment.py) as tables,
and Hypothesis properties over any sequence of set / promote / discard: a promotion serves the
candidate, a roll-back serves what ran before, the backend steps agree with the recorded state."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core import deployment as dep
from sluice.core import plans
from sluice.core.deployment import Serving
from sluice.core.gate import GateDecision, decide
from sluice.core.plans import Action, Step
from sluice.core.shipyard import Stage, parse_shipyard
from sluice.core.strategies import DeploymentStrategy
from sluice.core.verdict import Verdict

T = "2026-01-01T00:00:00.000Z"


def stage(**approval: str) -> Stage:
    doc = {"stages": [{"name": "staging", "deployment_strategy": "blue_green_service",
                       **({"approval_strategy": approval} if approval else {})}]}
    return parse_shipyard(doc).first


# --- gate.decide: every result × every approval setting --------------------------------------------

GATE_TABLE = [
    # pass approval, warning approval, result → decision
    ("automatic", "automatic", Verdict.PASS, GateDecision.PROMOTE),
    ("automatic", "automatic", Verdict.WARNING, GateDecision.PROMOTE),
    ("automatic", "automatic", Verdict.FAIL, GateDecision.DISCARD),
    ("manual", "automatic", Verdict.PASS, GateDecision.HOLD),
    ("manual", "automatic", Verdict.WARNING, GateDecision.PROMOTE),
    ("manual", "automatic", Verdict.FAIL, GateDecision.DISCARD),
    ("automatic", "manual", Verdict.PASS, GateDecision.PROMOTE),
    ("automatic", "manual", Verdict.WARNING, GateDecision.HOLD),
    ("automatic", "manual", Verdict.FAIL, GateDecision.DISCARD),
    ("manual", "manual", Verdict.PASS, GateDecision.HOLD),
    ("manual", "manual", Verdict.WARNING, GateDecision.HOLD),
    ("manual", "manual", Verdict.FAIL, GateDecision.DISCARD),
]


@pytest.mark.parametrize(("on_pass", "on_warning", "result", "expected"), GATE_TABLE)
def test_the_gate_decides_by_result_and_approval_strategy(
    on_pass: str, on_warning: str, result: Verdict, expected: GateDecision
) -> None:
    """pass/warning promote unless a person is asked for that result; fail always discards."""
    assert decide(result, stage(**{"pass": on_pass, "warning": on_warning})) is expected


@given(st.text(max_size=12).filter(lambda s: s not in {r.value for r in Verdict if r is not Verdict.FAIL}))
def test_anything_but_pass_or_warning_discards(result: str) -> None:
    """An unknown result never promotes or holds: it discards, even on a stage that asks a person."""
    assert decide(result, stage(**{"pass": "manual", "warning": "manual"})) is GateDecision.DISCARD


# --- deployment plans: a table per strategy and state --------------------------------------------

BG = DeploymentStrategy.BLUE_GREEN
CANARY = DeploymentStrategy.CANARY
DIRECT = DeploymentStrategy.DIRECT
OLD, NEW, GOOD = "carts:1", "carts:2", "carts:0"


def serving(strategy: DeploymentStrategy, primary: str = "", candidate: str = "", last_good: str = "") -> Serving:
    return Serving(strategy=strategy, primary_image=primary, candidate_image=candidate, last_good_image=last_good)


PLAN_TABLE = [
    # (name, plan, expected actions)
    ("direct set", plans.plan_set(serving(DIRECT, OLD), NEW, 30),
     [Action(Step.DEPLOY_DIRECT, NEW), Action(Step.ROUTE, weight=100)]),
    ("blue/green set on an empty stage", plans.plan_set(serving(BG), NEW, 100),
     [Action(Step.DEPLOY_PRIMARY, NEW), Action(Step.DEPLOY_CANARY, NEW), Action(Step.ROUTE, weight=100)]),
    ("blue/green set beside a primary", plans.plan_set(serving(BG, OLD), NEW, 100),
     [Action(Step.DEPLOY_CANARY, NEW), Action(Step.ROUTE, weight=100)]),
    ("canary set at a step's weight", plans.plan_set(serving(CANARY, OLD), NEW, 10),
     [Action(Step.DEPLOY_CANARY, NEW), Action(Step.ROUTE, weight=10)]),
    ("direct promote", plans.plan_promote(serving(DIRECT, NEW, NEW)), []),
    ("blue/green promote", plans.plan_promote(serving(BG, OLD, NEW)),
     [Action(Step.DEPLOY_PRIMARY, NEW), Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]),
    ("canary promote takes all traffic first", plans.plan_promote(serving(CANARY, OLD, NEW)),
     [Action(Step.ROUTE, weight=100), Action(Step.DEPLOY_PRIMARY, NEW), Action(Step.ROUTE, weight=0),
      Action(Step.SCALE_CANARY_TO_ZERO)]),
    ("blue/green promote without a candidate", plans.plan_promote(serving(BG, OLD)),
     [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]),
    ("blue/green discard", plans.plan_discard(serving(BG, OLD, NEW)),
     [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]),
    ("canary discard", plans.plan_discard(serving(CANARY, OLD, NEW)),
     [Action(Step.ROUTE, weight=0), Action(Step.SCALE_CANARY_TO_ZERO)]),
    ("direct discard back to the last good image", plans.plan_discard(serving(DIRECT, NEW, NEW, GOOD)),
     [Action(Step.DEPLOY_DIRECT, GOOD), Action(Step.ROUTE, weight=100)]),
    ("direct discard with nothing to go back to", plans.plan_discard(serving(DIRECT, NEW, NEW)), []),
    ("direct discard when the last good one runs", plans.plan_discard(serving(DIRECT, GOOD, GOOD, GOOD)), []),
]


@pytest.mark.parametrize(("plan", "expected"), [(p, e) for _, p, e in PLAN_TABLE], ids=[n for n, _, _ in PLAN_TABLE])
def test_each_plan_asks_the_backend_for_the_documented_steps(plan: list[Action], expected: list[Action]) -> None:
    """The backend steps of set / promote / discard, per strategy and state."""
    assert plan == expected


@pytest.mark.parametrize(
    ("before", "promoted", "after"),
    [
        (serving(BG, OLD, NEW, OLD), True, (NEW, "", NEW)),
        (serving(BG, OLD, NEW, OLD), False, (OLD, "", OLD)),
        (serving(CANARY, OLD, NEW, OLD), True, (NEW, "", NEW)),
        (serving(DIRECT, NEW, NEW, GOOD), True, (NEW, "", NEW)),
        (serving(DIRECT, NEW, NEW, GOOD), False, (GOOD, "", GOOD)),
        (serving(DIRECT, NEW, NEW), False, (NEW, "", "")),
        (serving(BG, OLD), True, (OLD, "", OLD)),
    ],
)
def test_release_ends_the_candidate(before: Serving, promoted: bool, after: tuple[str, str, str]) -> None:
    """After a delivery: (primary, candidate, last good image); the weight is back to 0."""
    released = dep.release(replace(before, canary_weight=40), T, promoted=promoted)
    assert (released.primary_image, released.candidate_image, released.last_good_image) == after
    assert released.canary_weight == 0 and released.updated == T


# --- properties: any sequence of set / promote / discard ------------------------------------------

IMAGES = st.sampled_from([f"carts:{n}" for n in range(5)])
OPS = st.lists(st.tuples(st.sampled_from(["set", "promote", "discard"]), IMAGES, st.integers(0, 100)), max_size=25)


def apply(state: Serving, actions: list[Action]) -> dict[str, object]:
    """What a backend runs after ``actions``: slot images and the canary weight (a tiny model)."""
    slots: dict[str, object] = {"primary": state.primary_image, "canary": state.candidate_image,
                                "weight": state.canary_weight}
    for action in actions:
        if action.step is Step.DEPLOY_PRIMARY:
            slots["primary"] = action.image
        elif action.step is Step.DEPLOY_CANARY:
            slots["canary"] = action.image
        elif action.step is Step.DEPLOY_DIRECT:
            slots["primary"] = slots["canary"] = action.image
        elif action.step is Step.ROUTE:
            slots["weight"] = action.weight
        elif action.step is Step.SCALE_CANARY_TO_ZERO:
            slots["canary"] = ""
    return slots


@settings(max_examples=200, deadline=None)
@given(strategy=st.sampled_from([DIRECT, BG, CANARY]), ops=OPS)
def test_the_served_image_follows_the_gate(strategy: str, ops: list[tuple[str, str, int]]) -> None:
    """Whatever the sequence: after a promotion the primary and the last good image are the
    candidate; after a discard of a split stage the primary is what it was before the set; no
    candidate or weight survives the end of a delivery; the plans never route outside 0..100."""
    state = Serving(strategy=strategy)
    for op, image, weight in ops:
        before = state
        if op == "set":
            plan = plans.plan_set(state, image, weight)
            state = dep.after_set(state, image, weight, {}, T)
            assert state.candidate_image == image
            assert state.primary_image == (before.primary_image or image if state.split else image)
        elif op == "promote":
            plan = plans.plan_promote(state)
            state = dep.release(state, T, promoted=True)
            expected = before.candidate_image or before.primary_image
            assert state.primary_image == state.last_good_image == expected
            if state.split and before.candidate_image:
                assert apply(before, plan)["primary"] == expected
        else:
            plan = plans.plan_discard(state)
            state = dep.release(state, T, promoted=False)
            if state.split:
                assert state.primary_image == before.primary_image
                assert apply(before, plan)["weight"] == 0 and apply(before, plan)["canary"] == ""
            elif before.last_good_image:
                assert state.primary_image == before.last_good_image
        if op != "set":
            assert state.candidate_image == "" and state.canary_weight == 0
        assert all(0 <= a.weight <= 100 for a in plan)
        assert state.strategy == strategy
