"""Enums inside, the same JSON outside: records and events written before the enums load, decode
to enum members, and encode back byte for byte.

``data/records_before_enums.json`` was written by the code of commit 3061baa (strings
everywhere): a ledger lane with every enum-bearing field, one event of every type, and an
evaluation record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluice.core.canary import CanaryStep
from sluice.core.deployment import Serving
from sluice.core.events import PAYLOADS, CanaryAction, Decision, Event, EventType, Outcome
from sluice.core.ledger import Lane
from sluice.core.scoring import EvaluationResult
from sluice.core.strategies import DeploymentStrategy, TestStrategy
from sluice.core.verdict import Verdict
from sluice.ports.backend import Slot

BEFORE: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "records_before_enums.json").read_text())


def test_an_old_lane_loads_as_enums_and_stores_the_same_json() -> None:
    """Serving, verdicts, holds, canary steps and pending evaluations decode to enums; the record
    written back is the one read."""
    lane = Lane.from_dict(BEFORE["lane"])
    assert isinstance(lane.serving, Serving) and lane.serving.strategy is DeploymentStrategy.CANARY
    active = lane.active
    assert active is not None and active.verdict is not None and active.hold is not None and active.canary is not None
    assert active.verdict.result is Verdict.WARNING
    assert active.hold.result is Verdict.WARNING
    step: CanaryStep = active.canary.history[0]
    assert step.result is Verdict.PASS
    assert active.evaluation is not None
    assert active.evaluation.teststrategy is TestStrategy.PERFORMANCE
    assert active.evaluation.deploymentstrategy is DeploymentStrategy.BLUE_GREEN
    assert lane.finished[0].outcome is Outcome.PROMOTED and active.outcome is None
    gate = lane.gates[0]
    assert gate.evaluation is not None and gate.evaluation.deploymentstrategy is None
    assert gate.evaluation.teststrategy is TestStrategy.NONE
    # written back: every field read is kept as it was; fields added since (the canary's
    # ``steered``) appear with their defaults only
    assert _without_new_defaults(lane.to_dict(), BEFORE["lane"]) == BEFORE["lane"]
    assert json.dumps(_without_new_defaults(lane.to_dict(), BEFORE["lane"]), sort_keys=True) == json.dumps(
        BEFORE["lane"], sort_keys=True)
    assert lane.to_dict()["active"]["canary"].get("steered", "") == ""


def _without_new_defaults(written: Any, read: Any) -> Any:
    """``written`` without the keys ``read`` lacks whose value is a default (empty/zero/false)."""
    if isinstance(written, dict) and isinstance(read, dict):
        return {k: _without_new_defaults(v, read[k]) for k, v in written.items() if k in read or v not in ("", 0, False, None, [], {})}
    if isinstance(written, list) and isinstance(read, list) and len(written) == len(read):
        return [_without_new_defaults(w, r) for w, r in zip(written, read, strict=True)]
    return written


@pytest.mark.parametrize("doc", BEFORE["events"], ids=lambda d: d["type"].rsplit(".", 1)[-1] + "-" + d["id"])
def test_an_old_event_decodes_to_enums_and_encodes_the_same_json(doc: dict[str, Any]) -> None:
    """Every event type: decoded once at the edge, encoded back to the JSON it came from."""
    event = Event.from_json_dict(doc)
    assert isinstance(event.data, PAYLOADS[EventType(doc["type"])])
    for name in ("result", "outcome", "decision", "action", "teststrategy", "deploymentstrategy", "deployment"):
        value = getattr(event.data, name, None)
        if value not in (None, "") and not (name == "decision" and event.type is EventType.APPROVAL_REJECTED):
            assert isinstance(value, Verdict | Outcome | Decision | CanaryAction | TestStrategy | DeploymentStrategy | Slot), name
    assert json.dumps(event.to_json_dict(), sort_keys=True) == json.dumps(doc, sort_keys=True)


def test_the_enum_fields_of_the_old_events() -> None:
    """The values that were strings before are members now, and compare with nothing stringly."""
    by_type = {}
    for doc in BEFORE["events"]:
        by_type.setdefault(doc["type"], []).append(Event.from_json_dict(doc).data)
    change = by_type[EventType.CONFIGURATION_CHANGE.value][0]
    assert change.action is CanaryAction.SET  # type: ignore[attr-defined]
    deployed = by_type[EventType.DEPLOYMENT_FINISHED.value]
    assert deployed[0].result is Verdict.FAIL and deployed[0].deploymentstrategy is DeploymentStrategy.BLUE_GREEN  # type: ignore[attr-defined]
    assert deployed[1].teststrategy is TestStrategy.NONE  # type: ignore[attr-defined]
    sli = by_type[EventType.GET_SLI.value]
    assert sli[0].deployment is Slot.CANARY and sli[1].deployment is Slot.DIRECT  # type: ignore[attr-defined]
    assert sli[1].deploymentstrategy is None  # type: ignore[attr-defined]
    assert by_type[EventType.APPROVAL_FINISHED.value][0].decision is Decision.PAUSE  # type: ignore[attr-defined]
    assert by_type[EventType.DONE.value][0].outcome is Outcome.ROLLED_BACK  # type: ignore[attr-defined]


def test_an_old_evaluation_record_loads_and_writes_the_same_json() -> None:
    """The evaluation history (ConfigMaps, files) keeps its format; its verdict is the one enum."""
    result = EvaluationResult.from_dict(BEFORE["evaluation"])
    assert result.result is Verdict.FAIL  # 700 ms: warning criteria only, half the weight, score 50
    assert result.to_dict() == BEFORE["evaluation"]


def test_one_verdict_enum() -> None:
    """The evaluation's verdict and the events' result are the same enum; Slot is the core's."""
    from sluice.core import deployment, scoring

    assert scoring.Verdict is Verdict
    assert Slot is deployment.Slot
