"""The front door (``POST /intake/events``): every problem named with 400, nothing published; a valid
Sluice event is published to the broker and answered 202."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from functions_framework import create_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration.functions.test_intake_function import FakeBroker

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.services.intake import set_secret
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SOURCE = str(ROOT / "functions" / "main.py")
CHANGE = "sh.keptn.event.configuration.change"


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def client(tmp_path, monkeypatch, broker):  # type: ignore[no-untyped-def]
    """The intake function over a state dir holding project sockshop (dev, staging, production) with carts."""
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLUICE_BROKER_URL", broker.url)
    monkeypatch.delenv("K_SINK", raising=False)
    records = Records(LocalStore(directory=str(tmp_path)))
    text = (ROOT / "examples" / "sockshop" / "shipyard.yaml").read_text()
    records.create_project("sockshop", text, yaml.safe_load(text))
    records.onboard("sockshop", "carts")
    from sluice.functions import runtime

    runtime._RUNTIMES.clear()
    yield create_app("intake", SOURCE, "http").test_client()
    runtime._RUNTIMES.clear()


def binary(data: dict[str, Any], kind: str = CHANGE, **extra: str) -> dict[str, str]:
    return {"ce-specversion": "1.0", "ce-type": kind, "ce-source": "curl", "ce-id": str(uuid.uuid4()),
            "content-type": "application/json", **extra}


def artifact(**over: Any) -> dict[str, Any]:
    data = {"project": "sockshop", "service": "carts", "valuesCanary": {"image": "docker.io/keptnexamples/carts:0.10.3"}}
    data.update(over)
    return data


def test_a_valid_event_is_published_and_answered_202(client, broker) -> None:  # type: ignore[no-untyped-def]
    """A new artifact for an onboarded service is published to the broker, and the answer names its context."""
    response = client.post("/events", data=json.dumps(artifact()), headers=binary(artifact()))
    assert response.status_code == 202, response.data
    [event] = broker.events
    answer = response.get_json()
    assert event.type.value == CHANGE and answer["id"] == event.id and answer["shkeptncontext"] == event.shkeptncontext


def test_structured_mode_is_accepted(client, broker) -> None:  # type: ignore[no-untyped-def]
    doc = {"specversion": "1.0", "type": "sh.keptn.event.start-evaluation", "source": "curl", "id": "s-1",
           "data": {"project": "sockshop", "stage": "staging", "service": "carts",
                    "start": "2026-11-28T10:00:00Z", "end": "2026-11-28T10:05:00Z"}}
    response = client.post("/events", data=json.dumps(doc), content_type="application/cloudevents+json")
    assert response.status_code == 202, response.data
    assert [e.id for e in broker.events] == ["s-1"]


@pytest.mark.parametrize(
    ("headers", "data", "named"),
    [
        ({"ce-type": "com.example.something"}, artifact(), ["type: unknown event type 'com.example.something'"]),
        ({}, artifact(project="Sock Shop"), ["data.project"]),
        ({}, artifact(project="nowhere"), ["project 'nowhere' does not exist"]),
        ({}, artifact(service="orders"), ["service 'orders' is not onboarded"]),
        ({}, artifact(stage="qa", service="orders"), ["stage 'qa' is not in project 'sockshop'",
                                                      "service 'orders' is not onboarded"]),
        ({}, {"project": "sockshop", "service": "orders"}, ["valuesCanary.image", "service 'orders' is not onboarded"]),
        ({"ce-type": "dev.knative.sources.ping"}, {"message": "tick"}, ["the broker's tick"]),
        ({"ce-id": ""}, artifact(), ["id"]),
    ],
    ids=["unknown type", "bad project name", "unknown project", "unknown service", "unknown stage and service",
         "payload and service", "ping", "missing id"],
)
def test_every_problem_is_named_and_nothing_is_published(client, broker, headers, data, named) -> None:  # type: ignore[no-untyped-def]
    """Each bad event gets 400 with every problem in ``problems``; the broker receives nothing."""
    sent = {k: v for k, v in {**binary(data), **headers}.items() if v}
    response = client.post("/events", data=json.dumps(data), headers=sent)
    assert response.status_code == 400, response.data
    answer = response.get_json()
    text = " ".join(answer["problems"])
    for part in named:
        assert part in text
    assert broker.events == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400), kind=st.sampled_from([CHANGE, "x.y", ""]), structured=st.booleans())
def test_hostile_input_is_a_4xx_and_publishes_nothing(client, broker, body: bytes, kind: str, structured: bool) -> None:  # type: ignore[no-untyped-def]
    """Random bytes in either mode never crash the door, never publish, and get a 4xx naming a problem."""
    headers = {"content-type": "application/cloudevents+json"} if structured else binary({}, kind)
    response = client.post("/events", data=body, headers={k: v for k, v in headers.items() if v})
    assert 400 <= response.status_code < 500
    assert response.get_json()["message"]
    assert broker.events == []


def test_a_configured_token_is_required(client, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With a ``cloudevents`` intake secret set, a request without its token is 401 and nothing is published."""
    set_secret(LocalSecrets(tmp_path), "cloudevents", "front-door-secret-0123456789")
    response = client.post("/events", data=json.dumps(artifact()), headers=binary(artifact()))
    assert response.status_code == 401 and broker.events == []
    ok = client.post("/events", data=json.dumps(artifact()),
                     headers={**binary(artifact()), "X-Sluice-Token": "front-door-secret-0123456789"})
    assert ok.status_code == 202 and len(broker.events) == 1
