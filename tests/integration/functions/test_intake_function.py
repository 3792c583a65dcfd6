"""The intake function end to end: functions-framework app in, configuration.change posted to a broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from tests.support.motoserver import MotoServer, moto_server

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.core.events import Event, EventType
from sluice.core.intake import Trigger
from sluice.services.intake import add_trigger, github_signature, replay_key, set_secret

ROOT = Path(__file__).resolve().parents[3]
SOURCE = str(ROOT / "functions" / "main.py")
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
SECRET = "tutorial-secret-0123456789"
ECR_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sockshop/carts"


class FakeBroker:
    """A broker ingress on 127.0.0.1 that records every CloudEvent posted to it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                broker.events.append(Event.from_json_dict(json.loads(self.rfile.read(length))))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sluice/default"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def client(tmp_path, monkeypatch, broker, moto):  # type: ignore[no-untyped-def]
    """The intake function over a local state dir with the tutorial's triggers and secrets."""
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLUICE_BROKER_URL", broker.url)
    monkeypatch.delenv("K_SINK", raising=False)
    for key, value in {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    store = LocalStore(directory=str(tmp_path))
    for source in ("dockerhub", "harbor", "github", "ecr", "cloudevents"):
        set_secret(LocalSecrets(str(tmp_path)), source, SECRET)
    for repo in ("keptnexamples/carts", "harbor.example.com/sockshop/carts", "ghcr.io/sockshop-dev/carts", ECR_REPO):
        add_trigger(store, Trigger.create("sockshop", "carts", repo))
    from sluice.functions import runtime

    runtime._RUNTIMES.clear()
    yield create_app("intake", SOURCE, "http").test_client()
    runtime._RUNTIMES.clear()


def assert_started(broker: FakeBroker, image: str, triggeredid: str) -> Event:
    [event] = broker.events
    data = event.data.to_dict()
    assert event.type is EventType.CONFIGURATION_CHANGE and event.source == "sluice/intake"
    assert (data["project"], data["stage"], data["service"]) == ("sockshop", "", "carts")
    assert data["valuesCanary"]["image"] == image and data["canary"]["action"] == "set"
    assert event.triggeredid == triggeredid
    return event


def test_dockerhub_push_starts_the_tutorial_delivery(client, broker) -> None:  # type: ignore[no-untyped-def]
    """A Docker Hub push of keptnexamples/carts:0.10.2 posts configuration.change for sockshop/carts to the broker."""
    response = client.post("/dockerhub?token=" + SECRET, data=(FIXTURES / "dockerhub_push.json").read_bytes(),
                           content_type="application/json")
    assert response.status_code == 200, response.data
    event = assert_started(broker, "docker.io/keptnexamples/carts:0.10.2", broker.events[0].triggeredid)
    assert event.triggeredid.startswith("dockerhub-")
    assert response.get_json()["events"][0]["shkeptncontext"] == event.shkeptncontext


def test_harbor_push_starts_the_delivery(client, broker) -> None:  # type: ignore[no-untyped-def]
    """A Harbor PUSH_ARTIFACT with its auth header starts the delivery with the Harbor image and digest label."""
    response = client.post("/harbor", data=(FIXTURES / "harbor_push.json").read_bytes(),
                           headers={"Authorization": SECRET}, content_type="application/json")
    assert response.status_code == 200, response.data
    event = assert_started(broker, "harbor.example.com/sockshop/carts:0.10.2", broker.events[0].triggeredid)
    assert event.data.to_dict()["labels"]["digest"].startswith("sha256:8a9e")


def test_github_push_starts_the_delivery_and_a_replay_does_not(client, broker) -> None:  # type: ignore[no-untyped-def]
    """A signed GitHub package webhook starts the delivery; the same delivery again answers duplicate."""
    data = (FIXTURES / "github_package_published.json").read_bytes()
    headers = {"X-Hub-Signature-256": github_signature(SECRET, data), "X-GitHub-Event": "package",
               "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert client.post("/github", data=data, headers=headers, content_type="application/json").status_code == 200
    again = client.post("/github", data=data, headers=headers, content_type="application/json")
    assert again.status_code == 200 and again.get_json()["message"].startswith("duplicate")
    assert_started(broker, "ghcr.io/sockshop-dev/carts:0.10.2", replay_key("github", data))


def test_a_github_replay_with_a_new_delivery_header_starts_nothing(client, broker) -> None:  # type: ignore[no-untyped-def]
    """X-GitHub-Delivery is not signed: the same signed body under a new delivery id is the same delivery."""
    data = (FIXTURES / "github_package_published.json").read_bytes()
    headers = {"X-Hub-Signature-256": github_signature(SECRET, data), "X-GitHub-Event": "package"}
    first = client.post("/github", data=data, headers={**headers, "X-GitHub-Delivery": "d-1"}, content_type="application/json")
    replay = client.post("/github", data=data, headers={**headers, "X-GitHub-Delivery": "d-2"}, content_type="application/json")
    assert first.status_code == 200 and replay.status_code == 200
    assert replay.get_json()["message"].startswith("duplicate") and len(broker.events) == 1


def test_ecr_push_resolves_the_digest_through_boto3(client, broker, moto) -> None:  # type: ignore[no-untyped-def]
    """An ECR push event (EventBridge API destination) is resolved with describe_images on moto and started."""
    ecr = moto.client("ecr")
    ecr.create_repository(repositoryName="sockshop/carts")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": "sha256:" + "1" * 64}, "layers": []})
    digest = ecr.put_image(repositoryName="sockshop/carts", imageManifest=manifest, imageTag="0.10.2")["image"]["imageId"]["imageDigest"]
    doc = json.loads((FIXTURES / "ecr_image_push.json").read_text())
    doc["detail"]["image-digest"] = digest
    response = client.post("/ecr", data=json.dumps(doc), headers={"X-Sluice-Token": SECRET},
                           content_type="application/json")
    assert response.status_code == 200, response.data
    event = assert_started(broker, f"{ECR_REPO}:0.10.2", replay_key("ecr", json.dumps(doc).encode()))
    assert event.data.to_dict()["labels"]["digest"] == digest


def test_ecr_push_of_an_unknown_image_is_refused(client, broker) -> None:  # type: ignore[no-untyped-def]
    """An ECR event naming an image the registry does not have answers 422 and starts nothing."""
    response = client.post("/ecr", data=(FIXTURES / "ecr_image_push.json").read_bytes(),
                           headers={"X-Sluice-Token": SECRET}, content_type="application/json")
    assert response.status_code == 422 and broker.events == []


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/dockerhub", {}, 401),
    ("/dockerhub?token=wrong-wrong-wrong-wrong", {}, 401),
    ("/github", {"X-GitHub-Event": "package", "X-GitHub-Delivery": "d1"}, 401),
    ("/github", {"X-GitHub-Event": "package", "X-GitHub-Delivery": "d1", "X-Hub-Signature-256": "sha256=00"}, 401),
    ("/nowhere", {}, 404),
])
def test_refused_calls_start_nothing(client, broker, path: str, headers: dict[str, str], status: int) -> None:  # type: ignore[no-untyped-def]
    """Unsigned, wrongly signed and misrouted calls are refused and nothing reaches the broker."""
    response = client.post(path, data=(FIXTURES / "dockerhub_push.json").read_bytes(), headers=headers,
                           content_type="application/json")
    assert response.status_code == status and broker.events == []
    assert SECRET not in response.get_data(as_text=True)


def test_oversize_body_is_413(client, broker) -> None:  # type: ignore[no-untyped-def]
    """A body over 1 MiB is refused with 413 before it is read whole."""
    response = client.post("/dockerhub?token=" + SECRET, data=b"{" + b" " * (1024 * 1024) + b"}",
                           content_type="application/json")
    assert response.status_code == 413 and broker.events == []


def test_broker_down_is_503_so_the_registry_retries(client, broker) -> None:  # type: ignore[no-untyped-def]
    """When the broker cannot be reached, intake answers 503; the retry then starts the delivery once."""
    broker.close()
    data = (FIXTURES / "dockerhub_push.json").read_bytes()
    assert client.post("/dockerhub?token=" + SECRET, data=data, content_type="application/json").status_code == 503


def test_get_answers_readiness(client) -> None:  # type: ignore[no-untyped-def]
    """GET answers 200 with the function name (readiness probe)."""
    assert client.get("/").get_json() == {"function": "intake", "ready": True}


def test_cloudevents_path_answers_202_empty_as_a_sink_must(client, broker) -> None:  # type: ignore[no-untyped-def]
    """On /cloudevents a started delivery answers 202 with an empty body (a broker counts other 2xx bodies as failures)."""
    doc = json.loads((FIXTURES / "harbor_push_cloudevent.json").read_text())
    response = client.post("/cloudevents", data=json.dumps(doc), headers={"X-Sluice-Token": SECRET},
                           content_type="application/cloudevents+json")
    assert response.status_code == 202 and response.data == b""
    assert_started(broker, "harbor.example.com/sockshop/carts:0.10.2", replay_key("cloudevents", json.dumps(doc).encode()))
