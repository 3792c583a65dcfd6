"""Authenticated approvals: the gate obeys an ``approval.finished`` only when it proves its sender."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.flow import by_type
from tests.support.security_world import KEY, held_world, keys
from tests.support.sockshop import CARTS

from sluice.adapters.secrets.memory import MemorySecrets
from sluice.core.approval_auth import (
    APPROVER_ATTRIBUTE,
    SIGNATURE_ATTRIBUTE,
    check_approval,
    sign,
)
from sluice.core.events import ApprovalFinished, Decision, Event, EventType
from sluice.ports.backend import Placement
from sluice.services.approvals import ensure_key, key_lookup, key_name, sign_approval
from sluice.services.records import Records

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def approval(decision: str = "approve", *, id: str = "a-1", time: str = "2026-01-01T12:00:00Z",
             context: str = "ctx-1", stage: str = "production") -> Event:
    payload = ApprovalFinished(project="sockshop", stage=stage, service="carts", decision=Decision(decision))
    return Event.new(payload, source="sluice/cli", id=id, time=time, context=context)


def test_a_signed_approval_names_its_approver() -> None:
    """Signed with the project's key, fresh: the check names who approved."""
    check = check_approval(sign(approval(), KEY, "alice"), keys, NOW)
    assert check.ok and check.approver == "alice" and not check.reason


def test_the_signature_survives_the_wire() -> None:
    """The extensions go out as CloudEvent attributes and come back from them."""
    signed = sign(approval(), KEY, "alice")
    again = Event.from_json_dict(signed.to_json_dict())
    assert again.extensions[SIGNATURE_ATTRIBUTE] == signed.extensions[SIGNATURE_ATTRIBUTE]
    assert check_approval(again, keys, NOW).approver == "alice"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (approval(), "unsigned approval"),
        (sign(approval(), b"another key of 32 bytes.........", "alice"), "bad signature"),
        (sign(approval(time="2026-01-01T11:50:00Z"), KEY, "alice"), "stale approval"),
        (sign(approval(time="2026-01-01T12:10:00Z"), KEY, "alice"), "from the future"),
    ],
    ids=["unsigned", "other-key", "stale", "future"],
)
def test_unproven_approvals_are_rejected_with_the_reason(event: Event, reason: str) -> None:
    """Unsigned, signed with another key, stale or from the future: rejected, saying why."""
    check = check_approval(event, keys, NOW)
    assert not check.ok and reason in check.reason


def test_a_project_without_a_key_accepts_no_approval() -> None:
    """No key for the project: nothing can prove an approval of it."""
    check = check_approval(sign(approval(), KEY, "alice"), lambda project: None, NOW)
    assert not check.ok and "no approver key" in check.reason


_CHANGES = {
    "id": lambda e: dataclasses.replace(e, id="a-2"),
    "context": lambda e: dataclasses.replace(e, shkeptncontext=str(uuid.uuid4())),
    "time": lambda e: dataclasses.replace(e, time="2026-01-01T12:00:01Z"),
    "decision": lambda e: dataclasses.replace(e, data=dataclasses.replace(e.data, decision=Decision.DECLINE)),
    "stage": lambda e: dataclasses.replace(e, data=dataclasses.replace(e.data, stage="staging")),
    "service": lambda e: dataclasses.replace(e, data=dataclasses.replace(e.data, service="orders")),
    "project": lambda e: dataclasses.replace(e, data=dataclasses.replace(e.data, project="other")),
    "approver": lambda e: dataclasses.replace(e, extensions={**e.extensions, APPROVER_ATTRIBUTE: "mallory"}),
}


@given(st.sampled_from(sorted(_CHANGES)), st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s))
def test_changing_any_signed_value_breaks_the_signature(what: str, context: str) -> None:
    """Every value the approval acts on is covered: change one and the signature no longer holds."""
    signed = sign(approval(context=context), KEY, "alice")
    changed = _CHANGES[what](signed)
    check = check_approval(changed, lambda project: KEY, NOW)
    assert not check.ok


def test_approver_keys_live_in_the_secret_store() -> None:
    """A project's key is created once (rotate replaces it); the CLI signs with what is stored."""
    secrets = MemorySecrets()
    assert ensure_key(secrets, "sockshop") is True
    first = secrets.get(key_name("sockshop"))
    assert ensure_key(secrets, "sockshop") is False and secrets.get(key_name("sockshop")) == first
    signed = sign_approval(approval(), secrets, "bob")
    assert check_approval(signed, key_lookup(secrets), NOW).approver == "bob"
    assert ensure_key(secrets, "sockshop", rotate=True) is True
    assert not check_approval(signed, key_lookup(secrets), NOW).ok  # the old key's signatures stop working


# --- through the gate ------------------------------------------------------------------------

PRODUCTION = Placement("sockshop", "production", "carts")


@pytest.fixture
def held():  # type: ignore[no-untyped-def]
    return held_world()


def _gate_state(records: Records) -> dict[str, object]:
    return {r.name: dict(r.data) for r in records.store.list({}) if r.name.startswith(("gate.", "deploy."))}


def _changes(events: list[Event]) -> list[Event]:
    return list(by_type(events, EventType.CONFIGURATION_CHANGE))


@pytest.mark.parametrize("how", ["unsigned", "other-key", "stale"])
def test_an_unproven_approval_changes_nothing_and_says_why(held, how: str) -> None:  # type: ignore[no-untyped-def]
    """Unsigned, wrongly signed or stale: no promotion, the hold stays, the rejection is an event."""
    records, backend, flow, context = held
    before, serving = _gate_state(records), backend.serving(PRODUCTION)
    time = flow.clock()
    if how == "stale":
        flow.clock.advance(600)
    event = approval(id="a-1", time=time, context=context)
    if how != "unsigned":
        event = sign(event, KEY if how == "stale" else b"x" * 32, "mallory")
    after = flow.send(event)
    assert _changes(after) == []
    rejected = next(by_type(after, EventType.APPROVAL_REJECTED))
    assert rejected.data.approver == ("" if how == "unsigned" else "mallory")  # type: ignore[attr-defined]
    assert {"unsigned": "unsigned", "other-key": "bad signature", "stale": "stale"}[how] in rejected.data.reason  # type: ignore[attr-defined]
    assert _gate_state(records) == before
    assert backend.serving(PRODUCTION) == serving
    # the hold is still there: a proper approval now promotes
    promoted = flow.send(sign(approval(id="a-2", time=flow.clock(), context=context), KEY, "alice"))
    assert [c.data.action for c in _changes(promoted)] == ["promote"]  # type: ignore[attr-defined]


def test_a_signed_approval_promotes_and_the_decision_names_the_approver(held) -> None:  # type: ignore[no-untyped-def]
    """The promote carries who approved; the build reaches production."""
    _records, backend, flow, context = held
    after = flow.send(sign(approval(time=flow.clock(), context=context), KEY, "alice"))
    (promote,) = _changes(after)
    assert promote.data.action == "promote" and promote.data.approver == "alice"  # type: ignore[attr-defined]
    assert backend.serving(PRODUCTION) == f"{CARTS}:0.10.1"


def test_a_re_signed_replay_after_the_decision_changes_nothing(held) -> None:  # type: ignore[no-untyped-def]
    """A decline replayed as a fresh, re-signed approval (new id) after the approval: no effect."""
    records, backend, flow, context = held
    flow.send(sign(approval(time=flow.clock(), context=context), KEY, "alice"))
    before = _gate_state(records)
    replay = flow.send(sign(approval("decline", id="a-replay", time=flow.clock(), context=context), KEY, "alice"))
    assert _changes(replay) == []
    assert backend.serving(PRODUCTION) == f"{CARTS}:0.10.1"
    assert _gate_state(records) == before


def test_the_event_stream_says_who_approved_and_what_was_rejected(held) -> None:  # type: ignore[no-untyped-def]
    """The read-model (CLI and web view) names the approver, and a rejection with its reason."""
    from sluice.services.readmodel import delivery

    records, _backend, flow, context = held
    flow.send(approval(id="a-0", time=flow.clock(), context=context))  # unsigned
    flow.send(sign(approval(time=flow.clock(), context=context), KEY, "alice"))
    lines = [e["summary"] for e in delivery(records, context)["events"]]
    assert any(line.startswith("approval REJECTED in production") and "unsigned" in line for line in lines)
    assert "approval in production: approve by alice" in lines
    assert any(line.startswith("promote") and line.endswith("(approved by alice)") for line in lines)
