"""``sluice send event`` follows the event: handled by which function, or dead-lettered with the reason."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.functions.test_intake_function import FakeBroker

from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main
from sluice.embedded.broker import deadletters
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "sockshop"


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    assert main(["create", "project", "sockshop", "--shipyard", str(EXAMPLE / "shipyard.yaml")]) == 0
    assert main(["onboard", "service", "carts", "--project", "sockshop"]) == 0
    return tmp_path / "state"


def _react(broker: FakeBroker, react: Any) -> threading.Thread:
    """Once the broker has the event, ``react(event)`` plays what the functions would do."""

    def run() -> None:
        for _ in range(200):
            if broker.events:
                react(broker.events[0])
                return
            threading.Event().wait(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def send(broker: FakeBroker, *extra: str) -> int:
    return main(["send", "event", "new-artifact", "--project", "sockshop", "--service", "carts",
                 "--image", "docker.io/keptnexamples/carts", "--tag", "0.10.3", "--broker", broker.url, *extra])


def test_reports_the_function_that_handled_it(state: Path, broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    """A reply in the delivery's event log whose triggeredid is the event's id names the function that handled it."""
    records = Records(LocalStore(directory=str(state)))

    def deploy_replies(event: Any) -> None:
        records.append_event(event.shkeptncontext, event.to_json_dict())
        reply = {"specversion": "1.0", "id": "r-1", "source": "sluice/deploy", "type": "sh.keptn.events.deployment-finished",
                 "triggeredid": event.id, "shkeptncontext": event.shkeptncontext, "data": {"project": "sockshop"}}
        records.append_event(event.shkeptncontext, reply)

    thread = _react(broker, deploy_replies)
    assert send(broker, "--wait", "10") == 0
    thread.join(timeout=5)
    out = capsys.readouterr().out
    assert "accepted" in out and "Handled by deploy: it replied sh.keptn.events.deployment-finished (id r-1)" in out


def test_reports_a_dead_letter_with_its_reason(state: Path, broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    """A dead letter of the event (local broker's log) is reported with its trigger, status and reason; JSON too."""

    def refused(event: Any) -> None:
        deadletters.append(deadletters.path_for(state), {
            "trigger": "configuration-change", "status": 422, "reason": "422 project gone (final status, not retried)",
            "event": event.to_json_dict()})

    thread = _react(broker, refused)
    assert send(broker, "--wait", "10", "--output", "json") == 0
    thread.join(timeout=5)
    doc = json.loads(capsys.readouterr().out)
    assert doc["accepted"] is True and doc["handled_by"] == []
    assert doc["dead_lettered"] == [{"trigger": "configuration-change", "status": 422,
                                     "reason": "422 project gone (final status, not retried)"}]


def test_no_answer_within_the_wait_is_said_and_no_wait_skips(state: Path, broker: FakeBroker,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing within --wait: it says so; --no-wait reports only the acceptance."""
    assert send(broker, "--wait", "0.5") == 0
    assert "No function has answered within 0.5 s" in capsys.readouterr().out
    assert send(broker, "--no-wait") == 0
    out = capsys.readouterr().out
    assert "accepted" in out and "No function" not in out and "Handled" not in out
