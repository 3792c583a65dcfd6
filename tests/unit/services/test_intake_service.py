"""The intake service: authentication, replays, limits, unmapped and malformed notifications."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from sluice.adapters.secrets.memory import MemorySecrets
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import Event
from sluice.core.intake import Trigger
from sluice.errors import NotFoundError, RetryableError, ValidationError
from sluice.services.intake import (
    DELIVERIES,
    SECRETS,
    IntakeRequest,
    IntakeService,
    add_trigger,
    configured_sources,
    github_signature,
    list_triggers,
    remove_trigger,
    replay_key,
    set_secret,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"
SECRET = "s3cret-for-tests-0123456789"
NOW = "2024-06-09T08:58:28.000Z"


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class Sent:
    """A fake broker: records what was emitted, or fails while ``down``."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.down = False

    def __call__(self, events: Sequence[Event]) -> None:
        if self.down:
            raise RetryableError("broker down")
        self.events.extend(events)


class FakeResolver:
    def __init__(self, digest: str = "sha256:" + "b" * 64, missing: bool = False) -> None:
        self.digest, self.missing, self.calls = digest, missing, 0

    def resolve(self, repository: str, tag: str, digest: str | None, *, registry_id: str, region: str) -> str:
        self.calls += 1
        if self.missing:
            raise NotFoundError(f"{repository}:{tag} not found")
        return self.digest


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    store = MemoryStore()
    secrets = MemorySecrets()
    for source in ("dockerhub", "harbor", "github", "ecr", "cloudevents"):
        set_secret(secrets, source, SECRET)
    for repo in ("keptnexamples/carts", "harbor.example.com/sockshop/carts", "ghcr.io/sockshop-dev/carts",
                 "123456789012.dkr.ecr.us-east-1.amazonaws.com/sockshop/carts"):
        add_trigger(store, Trigger.create("sockshop", "carts", repo))
    sent = Sent()
    resolver = FakeResolver()
    service = IntakeService(store, sent, lambda: NOW, "sluice/intake", resolver=resolver, secrets=secrets)
    return store, sent, service, resolver


def request(source: str, data: bytes, headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
            ) -> IntakeRequest:
    return IntakeRequest(source, {k.lower(): v for k, v in (headers or {}).items()}, query or {}, data)


def github_headers(data: bytes, secret: str = SECRET, event: str = "package") -> dict[str, str]:
    return {"X-Hub-Signature-256": github_signature(secret, data), "X-GitHub-Event": event,
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}


def test_dockerhub_with_token_query_starts_a_delivery(setup) -> None:  # type: ignore[no-untyped-def]
    """A Docker Hub push with ?token= starts one configuration.change for sockshop/carts."""
    _, sent, service, _ = setup
    response = service.handle(request("dockerhub", body("dockerhub_push.json"), query={"token": SECRET}))
    assert response.status == 200, response.message
    [event] = sent.events
    assert event.data.to_dict()["valuesCanary"]["image"] == "docker.io/keptnexamples/carts:0.10.2"
    assert json.loads(response.to_json())["events"][0]["shkeptncontext"] == event.shkeptncontext


@pytest.mark.parametrize("headers", [{"Authorization": SECRET}, {"Authorization": f"Bearer {SECRET}"},
                                     {"X-Sluice-Token": SECRET}])
def test_harbor_token_in_a_header_is_accepted(setup, headers) -> None:  # type: ignore[no-untyped-def]
    """Harbor's auth header (raw or Bearer) and X-Sluice-Token all authenticate."""
    _, sent, service, _ = setup
    assert service.handle(request("harbor", body("harbor_push.json"), headers)).status == 200
    assert sent.events[0].data.to_dict()["labels"]["digest"].startswith("sha256:8a9e")


@pytest.mark.parametrize(("source", "name"), [("dockerhub", "dockerhub_push.json"), ("harbor", "harbor_push.json"),
                                              ("ecr", "ecr_image_push.json"), ("cloudevents", "harbor_push_cloudevent.json")])
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789", SECRET[:-1]])
def test_missing_or_wrong_token_is_401_and_changes_nothing(setup, source: str, name: str, token) -> None:  # type: ignore[no-untyped-def]
    """Without the token, or with a wrong one, every shared-secret source answers 401 and records nothing."""
    store, sent, service, _ = setup
    query = {"token": token} if token else {}
    response = service.handle(request(source, body(name), query=query))
    assert response.status == 401 and SECRET not in response.message
    assert sent.events == [] and store.get(DELIVERIES) is None


def test_github_good_signature_starts_a_delivery(setup) -> None:  # type: ignore[no-untyped-def]
    """A GitHub package webhook signed with the secret starts a delivery of the ghcr.io image."""
    _, sent, service, _ = setup
    data = body("github_package_published.json")
    assert service.handle(request("github", data, github_headers(data))).status == 200
    assert sent.events[0].data.to_dict()["valuesCanary"]["image"] == "ghcr.io/sockshop-dev/carts:0.10.2"
    assert sent.events[0].triggeredid == replay_key("github", data)


@pytest.mark.parametrize("mangle", ["bad-secret", "tampered-body", "missing", "sha1-only"])
def test_github_bad_or_missing_signature_is_401(setup, mangle: str) -> None:  # type: ignore[no-untyped-def]
    """A wrong secret, a changed body, a missing header or only the old SHA-1 header answer 401."""
    store, sent, service, _ = setup
    data = body("github_package_published.json")
    headers = github_headers(data, secret="another-secret-0123456789")
    if mangle == "tampered-body":
        headers = github_headers(data)
        data = data.replace(b"0.10.2", b"0.10.9")
    elif mangle == "missing":
        del headers["X-Hub-Signature-256"]
    elif mangle == "sha1-only":
        headers["X-Hub-Signature"] = headers.pop("X-Hub-Signature-256").replace("sha256=", "sha1=")
    response = service.handle(request("github", data, headers))
    assert response.status == 401 and sent.events == [] and store.get(DELIVERIES) is None


def test_source_without_configured_secret_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    """A source nobody set a secret for refuses every call (fail closed) and says how to set one."""
    _, sent, _, _ = setup
    service = IntakeService(MemoryStore(), sent, lambda: NOW, "sluice/intake", secrets=MemorySecrets())
    response = service.handle(request("dockerhub", body("dockerhub_push.json"), query={"token": SECRET}))
    assert response.status == 401 and "sluice set intake-secret --source dockerhub" in response.message


def test_replay_starts_nothing_new(setup) -> None:  # type: ignore[no-untyped-def]
    """The same delivery posted again answers 200 'duplicate' and emits nothing more."""
    _, sent, service, _ = setup
    data = body("github_registry_package_published.json")
    headers = github_headers(data, event="registry_package")
    assert service.handle(request("github", data, headers)).status == 200
    again = service.handle(request("github", data, headers))
    assert again.status == 200 and again.message.startswith("duplicate") and len(sent.events) == 1


def test_replay_after_a_failed_emit_sends_the_same_event(setup) -> None:  # type: ignore[no-untyped-def]
    """When the broker was down (503), the registry's retry sends the same event id, once."""
    _, sent, service, _ = setup
    data = body("dockerhub_push.json")
    sent.down = True
    assert service.handle(request("dockerhub", data, query={"token": SECRET})).status == 503
    sent.down = False
    retry = service.handle(request("dockerhub", data, query={"token": SECRET}))
    assert retry.status == 200 and len(sent.events) == 1
    third = service.handle(request("dockerhub", data, query={"token": SECRET}))
    assert third.message.startswith("duplicate") and len(sent.events) == 1
    assert retry.events[0].id == sent.events[0].id


def test_oversize_body_is_413_before_authentication(setup) -> None:  # type: ignore[no-untyped-def]
    """A body over the limit answers 413 and nothing is parsed or recorded."""
    store, sent, service, _ = setup
    response = service.handle(request("dockerhub", b" " * (1024 * 1024 + 1), query={"token": SECRET}))
    assert response.status == 413 and sent.events == [] and store.get(DELIVERIES) is None


def test_unmapped_repository_is_202_naming_it(setup) -> None:  # type: ignore[no-untyped-def]
    """A push of a repository with no trigger answers 202 'no trigger for repository X' and starts nothing."""
    store, sent, service, _ = setup
    doc = json.loads(body("dockerhub_push.json"))
    doc["repository"]["repo_name"] = "someone/else"
    response = service.handle(request("dockerhub", json.dumps(doc).encode(), query={"token": SECRET}))
    assert response.status == 202 and response.message == "no trigger for repository docker.io/someone/else"
    assert sent.events == [] and store.get(DELIVERIES) is None


def test_latest_tag_is_202(setup) -> None:  # type: ignore[no-untyped-def]
    """A push of 'latest' does not match the default semver pattern: 202, nothing started."""
    _, sent, service, _ = setup
    doc = json.loads(body("dockerhub_push.json"))
    doc["push_data"]["tag"] = "latest"
    response = service.handle(request("dockerhub", json.dumps(doc).encode(), query={"token": SECRET}))
    assert response.status == 202 and "does not match" in response.message and sent.events == []


@pytest.mark.parametrize("data", [b"{not json", b"", b"[]", b'{"push_data": {}}'])
def test_malformed_is_400_and_changes_nothing(setup, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """Malformed bodies answer 400 with the reason and record nothing."""
    store, sent, service, _ = setup
    response = service.handle(request("dockerhub", data, query={"token": SECRET}))
    assert response.status == 400 and response.message and sent.events == [] and store.get(DELIVERIES) is None


def test_unknown_path_is_404(setup) -> None:  # type: ignore[no-untyped-def]
    """A path that names no registry answers 404 listing the valid ones."""
    _, _, service, _ = setup
    response = service.handle(request("quay", b"{}"))
    assert response.status == 404 and "/dockerhub" in response.message


def test_ecr_digest_is_resolved_and_recorded(setup) -> None:  # type: ignore[no-untyped-def]
    """An ECR push asks the registry for the digest and records it in the event's labels."""
    _, sent, service, resolver = setup
    assert service.handle(request("ecr", body("ecr_image_push.json"), {"X-Sluice-Token": SECRET})).status == 200
    assert resolver.calls == 1 and sent.events[0].data.to_dict()["labels"]["digest"] == "sha256:" + "b" * 64


def test_ecr_image_not_in_registry_is_422(setup) -> None:  # type: ignore[no-untyped-def]
    """An ECR push whose image the registry does not know answers 422 and starts nothing."""
    store, sent, _, _ = setup
    service = IntakeService(store, sent, lambda: NOW, "sluice/intake", resolver=FakeResolver(missing=True),
                            secrets=setup[2].secrets)
    response = service.handle(request("ecr", body("ecr_image_push.json"), {"X-Sluice-Token": SECRET}))
    assert response.status == 422 and sent.events == []


def test_binary_mode_cloudevent_is_accepted(setup) -> None:  # type: ignore[no-untyped-def]
    """A Harbor push as a binary-mode CloudEvent on /cloudevents starts the delivery."""
    _, sent, service, _ = setup
    doc = json.loads(body("harbor_push_cloudevent.json"))
    headers = {"ce-specversion": "1.0", "ce-type": doc["type"], "ce-id": doc["id"], "ce-source": doc["source"],
               "X-Sluice-Token": SECRET}
    assert service.handle(request("cloudevents", json.dumps(doc["data"]).encode(), headers)).status == 200
    assert sent.events[0].triggeredid == replay_key("cloudevents", json.dumps(doc["data"]).encode())


def test_triggers_are_stored_listed_replaced_and_removed() -> None:
    """add_trigger replaces the trigger of the same repository/project/service; remove_trigger deletes it."""
    store = MemoryStore()
    assert add_trigger(store, Trigger.create("sockshop", "carts", "keptnexamples/carts"))
    assert not add_trigger(store, Trigger.create("sockshop", "carts", "keptnexamples/carts", r"^\d+$"))
    [trigger] = list_triggers(store)
    assert trigger.tag_pattern == r"^\d+$"
    assert remove_trigger(store, "keptnexamples/carts", "sockshop", "carts") and list_triggers(store) == []


def test_secrets_are_validated_and_only_names_are_listed() -> None:
    """A short secret is refused; configured_sources lists source names, never secrets."""
    secrets = MemorySecrets()
    with pytest.raises(ValidationError, match="16 characters"):
        set_secret(secrets, "github", "short")
    set_secret(secrets, "github", SECRET)
    assert configured_sources(secrets) == ["github"]
    assert secrets.get("sluice-intake-github") == {"secret": SECRET}


def test_secrets_stored_the_old_way_move_to_the_secret_store(setup) -> None:  # type: ignore[no-untyped-def]
    """An intake-secrets record (how secrets were stored before) is moved once and deleted."""
    from sluice.ports.state import Record

    store = MemoryStore()
    store.put(Record(SECRETS, {"harbor": SECRET}, {"sluice.dev/kind": "intake"}))
    add_trigger(store, Trigger.create("sockshop", "carts", "harbor.example.com/sockshop/carts"))
    sent, secrets = Sent(), MemorySecrets()
    service = IntakeService(store, sent, lambda: NOW, "sluice/intake", secrets=secrets)
    assert service.handle(request("harbor", body("harbor_push.json"), {"X-Sluice-Token": SECRET})).status == 200
    assert store.get(SECRETS) is None and secrets.get("sluice-intake-harbor") == {"secret": SECRET}
