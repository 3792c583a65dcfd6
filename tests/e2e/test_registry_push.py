"""A registry push starts the tutorial delivery in the local system: Docker Hub, Harbor, GitHub, ECR.

`sluice up` runs the broker with the intake function behind /intake/…; each push is posted there
as the registry would, and the delivery must reach the dev stage's deployment of the pushed image.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.motoserver import moto_server

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.core.intake import Trigger
from sluice.services.intake import add_trigger, github_signature, set_secret
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
SECRET = "tutorial-secret-0123456789"
ECR_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sockshop/carts"
REPOSITORIES = ("keptnexamples/carts", "harbor.example.com/sockshop/carts", "ghcr.io/sockshop-dev/carts", ECR_REPO)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def system(tmp_path_factory):  # type: ignore[no-untyped-def]
    state = tmp_path_factory.mktemp("intake") / "state"
    records = Records(LocalStore(state))
    shipyard = (ROOT / "examples" / "sockshop" / "shipyard.yaml").read_text()
    import yaml

    records.create_project("sockshop", shipyard, yaml.safe_load(shipyard))
    records.onboard("sockshop", "carts")
    for source in ("dockerhub", "harbor", "github", "ecr"):
        set_secret(LocalSecrets(state), source, SECRET)
    for repo in REPOSITORIES:
        add_trigger(records.store, Trigger.create("sockshop", "carts", repo))
    port = free_port()
    with moto_server() as moto:
        env = {**os.environ, "AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        up = subprocess.run([sys.executable, "-m", "sluice.cli.main", "up", "--state-dir", str(state), "--port", str(port),
                             "--tick", "0", "--perf-duration", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        try:
            yield f"http://127.0.0.1:{port}/intake", records, moto
        finally:
            subprocess.run([sys.executable, "-m", "sluice.cli.main", "down", "--state-dir", str(state)], cwd=ROOT,
                           capture_output=True, timeout=120)


def wait_for_dev_deployment(records: Records, image: str, timeout_s: float = 60.0) -> dict:  # type: ignore[type-arg]
    """The deployment-finished of ``image`` in dev, once the delivery got there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for context in records.contexts("sockshop", "carts"):
            events = records.events(context)
            if not events or events[0]["data"].get("valuesCanary", {}).get("image") != image:
                continue
            for event in events:
                if event["type"] == "sh.keptn.events.deployment-finished" and event["data"]["stage"] == "dev":
                    return event
        time.sleep(0.3)
    raise AssertionError(f"no deployment of {image} in dev within {timeout_s} s")


def test_dockerhub_push(system) -> None:  # type: ignore[no-untyped-def]
    """A Docker Hub push of keptnexamples/carts:0.10.2 deploys it in dev."""
    intake, records, _ = system
    response = httpx.post(f"{intake}/dockerhub?token={SECRET}", content=(FIXTURES / "dockerhub_push.json").read_bytes(),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200, response.text
    deployed = wait_for_dev_deployment(records, "docker.io/keptnexamples/carts:0.10.2")
    assert deployed["data"]["result"] == "pass"


def test_harbor_push(system) -> None:  # type: ignore[no-untyped-def]
    """A Harbor PUSH_ARTIFACT deploys the Harbor image in dev."""
    intake, records, _ = system
    response = httpx.post(f"{intake}/harbor", content=(FIXTURES / "harbor_push.json").read_bytes(),
                          headers={"Content-Type": "application/json", "Authorization": SECRET}, timeout=30)
    assert response.status_code == 200, response.text
    assert wait_for_dev_deployment(records, "harbor.example.com/sockshop/carts:0.10.2")["data"]["result"] == "pass"


def test_github_push(system) -> None:  # type: ignore[no-untyped-def]
    """A signed GitHub package webhook deploys the ghcr.io image in dev; unsigned, it starts nothing."""
    intake, records, _ = system
    body = (FIXTURES / "github_package_published.json").read_bytes()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "package", "X-GitHub-Delivery": "e2e-1"}
    unsigned = httpx.post(f"{intake}/github", content=body, headers=headers, timeout=30)
    assert unsigned.status_code == 401
    signed = httpx.post(f"{intake}/github", content=body, timeout=30,
                        headers={**headers, "X-Hub-Signature-256": github_signature(SECRET, body)})
    assert signed.status_code == 200, signed.text
    assert wait_for_dev_deployment(records, "ghcr.io/sockshop-dev/carts:0.10.2")["data"]["result"] == "pass"


def test_ecr_push(system) -> None:  # type: ignore[no-untyped-def]
    """An ECR push (EventBridge) is resolved with describe_images and deploys the ECR image in dev."""
    intake, records, moto = system
    ecr = moto.client("ecr")
    ecr.create_repository(repositoryName="sockshop/carts")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": "sha256:" + "1" * 64}, "layers": []})
    digest = ecr.put_image(repositoryName="sockshop/carts", imageManifest=manifest, imageTag="0.10.2")["image"]["imageId"]["imageDigest"]
    doc = json.loads((FIXTURES / "ecr_image_push.json").read_text())
    doc["detail"]["image-digest"] = digest
    response = httpx.post(f"{intake}/ecr", json=doc, headers={"X-Sluice-Token": SECRET}, timeout=30)
    assert response.status_code == 200, response.text
    deployed = wait_for_dev_deployment(records, f"{ECR_REPO}:0.10.2")
    assert deployed["data"]["result"] == "pass"
