"""The function adapter over functions-framework's http signature, in binary and structured mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from functions_framework import create_app

from sluice.core.events import EventType

ROOT = Path(__file__).resolve().parents[3]
SOURCE = str(ROOT / "functions" / "main.py")

CHANGE = {"project": "nosuch", "service": "carts", "valuesCanary": {"image": "docker.io/keptnexamples/carts:0.10.1"}}
PING = {"message": "tick"}


@pytest.fixture
def client(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLUICE_BROKER_URL", "http://127.0.0.1:9/unused")
    from sluice.functions import runtime

    runtime._RUNTIMES.clear()
    app = create_app("evaluate", SOURCE, "http")
    yield app.test_client()
    runtime._RUNTIMES.clear()


def binary_headers(**overrides: str) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-type": EventType.PING.value, "ce-source": "test", "ce-id": "1",
               "Content-Type": "application/json"}
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v}


def test_binary_mode_without_work_answers_202(client) -> None:  # type: ignore[no-untyped-def]
    """A valid binary-mode event with nothing to reply is answered 202 with an empty body."""
    response = client.post("/", data=json.dumps(PING), headers=binary_headers())
    assert response.status_code == 202 and response.data == b""


def test_structured_mode_is_accepted(client) -> None:  # type: ignore[no-untyped-def]
    """The same event in structured mode is accepted the same way."""
    body = {"specversion": "1.0", "type": EventType.PING.value, "source": "test", "id": "2", "data": PING}
    response = client.post("/", data=json.dumps(body), headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 202


@pytest.mark.parametrize("attribute", ["ce-specversion", "ce-type", "ce-source", "ce-id"])
def test_missing_attribute_is_400(client, attribute: str) -> None:  # type: ignore[no-untyped-def]
    """Each missing required attribute is answered 400 (never retried by the broker) with a reason."""
    response = client.post("/", data=json.dumps(PING), headers=binary_headers(**{attribute: ""}))
    assert response.status_code == 400
    assert response.data


def test_bad_payload_is_400_naming_the_field(client) -> None:  # type: ignore[no-untyped-def]
    """A payload that fails validation is answered 400 naming the field and the expectation."""
    headers = binary_headers(**{"ce-type": EventType.TESTS_FINISHED.value})
    response = client.post("/", data=json.dumps({"project": "sockshop"}), headers=headers)
    assert response.status_code == 400
    assert b"data.stage: required" in response.data and b"data.start" in response.data


def test_unknown_project_is_a_final_error_not_a_retry(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """deploy for a project that does not exist answers 422 (final): retrying cannot help."""
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    from sluice.functions import runtime

    runtime._RUNTIMES.clear()
    app = create_app("deploy", SOURCE, "http").test_client()
    headers = binary_headers(**{"ce-type": EventType.CONFIGURATION_CHANGE.value})
    response = app.post("/", data=json.dumps(CHANGE), headers=headers)
    runtime._RUNTIMES.clear()
    assert response.status_code == 422 and b"project 'nosuch' does not exist" in response.data


def test_reply_is_a_binary_cloudevent(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A handler's reply comes back as a binary-mode CloudEvent with the cause as triggeredid (the
    delivery is waiting for its tests in the ledger)."""
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    from sluice.adapters.state.local import LocalStore
    from sluice.core.ledger import Phase, Run
    from sluice.core.validation import context_id
    from sluice.functions import runtime
    from sluice.ports.backend import Placement
    from sluice.services.ledger import Ledger
    from sluice.services.records import Records

    run = Run(context_id("c1"), "carts:1", Phase.DEPLOYED, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z")
    Ledger(Records(LocalStore(tmp_path))).change(Placement("sockshop", "dev", "carts"), lambda lane: (type(lane)(active=run), None))
    runtime._RUNTIMES.clear()
    app = create_app("test", SOURCE, "http").test_client()
    deployed = {"project": "sockshop", "stage": "dev", "service": "carts", "result": "fail", "message": "boom"}
    headers = binary_headers(**{"ce-type": EventType.DEPLOYMENT_FINISHED.value, "ce-id": "cause-1",
                                "ce-shkeptncontext": "c1"})
    response = app.post("/", data=json.dumps(deployed), headers=headers)
    runtime._RUNTIMES.clear()
    assert response.status_code == 200
    assert response.headers["ce-type"] == EventType.TESTS_FINISHED.value
    assert response.headers["ce-triggeredid"] == "cause-1"
    body = json.loads(response.data)
    assert body["result"] == "fail" and "boom" in body["message"]


def test_get_reports_readiness(client) -> None:  # type: ignore[no-untyped-def]
    """GET / answers 200 so a supervisor can tell the function is up."""
    assert client.get("/").status_code == 200


def test_dead_letter_sink_keeps_what_the_broker_gave_up_on(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The eventlog's /dead-letter path keeps an event with Knative's error attributes, even an invalid one."""
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    from sluice.adapters.state.local import LocalStore
    from sluice.functions import runtime
    from sluice.services.records import Records

    runtime._RUNTIMES.clear()
    app = create_app("eventlog", SOURCE, "http").test_client()
    headers = binary_headers(**{"ce-type": "com.example.unknown", "ce-id": "dl-1", "ce-knativeerrorcode": "400",
                                "ce-knativeerrordest": "http://sluice-deploy.sluice.svc"})
    first = app.post("/dead-letter", data=json.dumps({"x": 1}), headers=headers)
    again = app.post("/dead-letter", data=json.dumps({"x": 1}), headers=headers)
    runtime._RUNTIMES.clear()
    assert first.status_code == again.status_code == 202
    letters = Records(LocalStore(tmp_path)).dead_letters()
    assert len(letters) == 1
    assert letters[0]["status"] == "400" and letters[0]["event"]["type"] == "com.example.unknown"
