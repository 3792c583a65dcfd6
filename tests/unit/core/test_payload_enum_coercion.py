"""A payload built in-process with plain strings holds the same enum members as one decoded from
JSON: the services compare with ``is``, so a string ``"abort"`` that stayed a string would take
the wrong branch (seen in session 3: an abort of a held canary step went down the decline path)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.core.events import PAYLOADS, ApprovalFinished, Decision, Done, Outcome, TestsFinished
from sluice.core.shipyard import DeploymentStrategy, TestStrategy
from sluice.core.validation import ValidationError
from sluice.core.verdict import Verdict

SCOPE: dict[str, Any] = {"project": "sockshop", "stage": "production", "service": "carts"}


@pytest.mark.parametrize("decision", list(Decision))
def test_a_decision_given_as_a_string_is_the_member(decision: Decision) -> None:
    payload = ApprovalFinished(**SCOPE, decision=str(decision.value))  # type: ignore[arg-type]
    assert payload.decision is decision
    assert type(payload.decision) is Decision


def test_every_enum_field_of_every_payload_is_coerced() -> None:
    payload = Done(**SCOPE, outcome="rolled_back", result="fail")  # type: ignore[arg-type]
    assert payload.outcome is Outcome.ROLLED_BACK and payload.result is Verdict.FAIL
    tests = TestsFinished(**SCOPE, start="2026-01-01T00:00:00Z", end="2026-01-01T00:00:01Z",  # type: ignore[arg-type]
                          result="pass", teststrategy="performance", deploymentstrategy="blue_green_service")
    assert tests.result is Verdict.PASS and tests.teststrategy is TestStrategy.PERFORMANCE
    assert tests.deploymentstrategy is DeploymentStrategy.BLUE_GREEN


def test_the_aliases_of_the_wire_apply_in_process_too() -> None:
    tests = TestsFinished(**SCOPE, start="2026-01-01T00:00:00Z", end="2026-01-01T00:00:01Z",  # type: ignore[arg-type]
                          teststrategy="none")
    assert tests.teststrategy is TestStrategy.NONE


@given(st.text(max_size=20).filter(lambda s: s not in {d.value for d in Decision}))
def test_a_string_that_is_no_member_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ApprovalFinished(**SCOPE, decision=text)  # type: ignore[arg-type]
    assert "approval.decision" in str(caught.value)


def test_members_and_round_trips_are_unchanged() -> None:
    for cls in PAYLOADS.values():
        for f in fields(cls):
            assert f.metadata["key"]  # every field is a wire field
    done = Done(**SCOPE, outcome=Outcome.PROMOTED)
    assert Done.from_dict(done.to_dict()) == done
