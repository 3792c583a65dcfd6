"""Parsing each registry's push notification and mapping it to triggers (pure core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.core.events import EventType
from sluice.core.intake import (
    Push,
    Trigger,
    match,
    new_artifact_event,
    normalize_repository,
    parse_cloudevent,
    parse_dockerhub,
    parse_ecr,
    parse_github,
    parse_harbor,
    plan,
)
from sluice.errors import ValidationError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"


def fixture(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((FIXTURES / name).read_text())


def test_dockerhub_push_is_parsed() -> None:
    """Docker Hub's example payload yields one push of docker.io/<repo_name>:<tag> with no digest."""
    [push] = parse_dockerhub(fixture("dockerhub_push.json")).pushes
    assert (push.repository, push.tag, push.digest) == ("docker.io/keptnexamples/carts", "0.10.2", None)
    assert push.delivery_id.startswith("dockerhub-")


def test_dockerhub_delivery_id_is_stable_and_distinguishes_pushes() -> None:
    """The derived Docker Hub delivery id is the same for the same push and differs for another push."""
    doc = fixture("dockerhub_push.json")
    first = parse_dockerhub(doc).pushes[0].delivery_id
    assert parse_dockerhub(fixture("dockerhub_push.json")).pushes[0].delivery_id == first
    doc["push_data"]["pushed_at"] += 1
    assert parse_dockerhub(doc).pushes[0].delivery_id != first


def test_harbor_default_format_is_parsed_with_host_and_digest() -> None:
    """Harbor's PUSH_ARTIFACT payload yields <host>/<repo_full_name>:<tag> with the manifest digest."""
    [push] = parse_harbor(fixture("harbor_push.json")).pushes
    assert push.image == "harbor.example.com/sockshop/carts:0.10.2"
    assert push.digest == "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"


def test_harbor_cloudevents_format_uses_the_event_id() -> None:
    """Harbor's CloudEvents format is parsed too, and its CloudEvent id is the delivery id."""
    [push] = parse_harbor(fixture("harbor_push_cloudevent.json")).pushes
    assert push.image == "harbor.example.com/sockshop/carts:0.10.2"
    assert push.delivery_id == "harbor-4b2f89a0-7f04-4c5d-9a8a-3c1a6e7f0d21"


def test_harbor_other_event_types_are_ignored_not_errors() -> None:
    """A Harbor PULL_ARTIFACT is not a push: nothing is parsed, and the reason says so."""
    doc = fixture("harbor_push.json")
    doc["type"] = "PULL_ARTIFACT"
    parsed = parse_harbor(doc)
    assert parsed.pushes == () and "PULL_ARTIFACT" in parsed.ignored


@pytest.mark.parametrize(("name", "event", "tag"), [
    ("github_package_published.json", "package", "0.10.2"),
    ("github_registry_package_published.json", "registry_package", "0.10.3"),
])
def test_github_package_webhooks_are_parsed(name: str, event: str, tag: str) -> None:
    """GitHub's package and registry_package webhooks yield ghcr.io/<owner>/<name>:<tag> with the digest."""
    [push] = parse_github(fixture(name), event, "72d3162e-cc78-11e3-81ab-4c9367dc0958").pushes
    assert push.image == f"ghcr.io/sockshop-dev/carts:{tag}"
    assert push.digest and push.digest.startswith("sha256:")
    assert push.delivery_id == "github-72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_github_without_delivery_header_is_malformed() -> None:
    """A GitHub package webhook without X-GitHub-Delivery is refused as malformed."""
    with pytest.raises(ValidationError, match="X-GitHub-Delivery"):
        parse_github(fixture("github_package_published.json"), "package", "")


def test_github_ping_and_non_container_packages_are_ignored() -> None:
    """A ping, another action or an npm package starts nothing and says why."""
    doc = fixture("github_package_published.json")
    assert "ping" in parse_github({"zen": "hi"}, "ping", "d").ignored
    doc["package"]["package_type"] = "npm"
    doc["package"]["ecosystem"] = "npm"
    assert "not a container" in parse_github(doc, "package", "d").ignored
    doc = fixture("github_package_published.json")
    doc["action"] = "updated"
    assert "published" in parse_github(doc, "package", "d").ignored


def test_ecr_push_event_is_parsed_with_registry_host() -> None:
    """The EventBridge ECR Image Action event yields <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>."""
    [push] = parse_ecr(fixture("ecr_image_push.json")).pushes
    assert push.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/sockshop/carts:0.10.2"
    assert (push.registry_id, push.region) == ("123456789012", "us-east-1")
    assert push.delivery_id == "ecr-13cde686-328b-6117-af20-0e5566167482"


def test_ecr_failed_push_is_ignored() -> None:
    """An ECR push with result FAILURE starts nothing."""
    doc = fixture("ecr_image_push.json")
    doc["detail"]["result"] = "FAILURE"
    assert parse_ecr(doc).pushes == ()


def test_cloudevent_wrapping_an_ecr_event_is_parsed() -> None:
    """A CloudEvent whose data is an ECR Image Action (e.g. relayed by a Knative source) is a push."""
    [push] = parse_cloudevent({"type": "com.amazon.ecr.image.action", "id": "x"}, fixture("ecr_image_push.json")).pushes
    assert push.tag == "0.10.2"


@pytest.mark.parametrize(("parse", "doc", "field"), [
    (parse_dockerhub, {"push_data": {"tag": "1.0.0"}}, "repository.repo_name"),
    (parse_dockerhub, {"repository": {"repo_name": "a/b"}}, "push_data.tag"),
    (parse_harbor, {"type": "PUSH_ARTIFACT", "event_data": {"repository": {"repo_full_name": "a/b"}}}, "resources"),
    (parse_ecr, {"detail-type": "ECR Image Action", "source": "aws.ecr", "id": "1", "detail": {}}, "detail.action-type"),
    (parse_dockerhub, [1, 2], "body"),
])
def test_malformed_payloads_name_the_missing_field(parse, doc, field: str) -> None:  # type: ignore[no-untyped-def]
    """Each malformed payload is refused with a ValidationError naming the missing field."""
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        parse(doc)


def test_bad_digest_is_malformed() -> None:
    """A digest that is not sha256 + 64 hex digits is refused."""
    doc = fixture("harbor_push.json")
    doc["event_data"]["resources"][0]["digest"] = "sha256:xyz"
    with pytest.raises(ValidationError, match="digest"):
        parse_harbor(doc)


def test_a_digest_with_a_trailing_newline_is_malformed() -> None:
    """Once passed (``re.match`` with ``$``): the digest then broke every image reference built from it."""
    doc = fixture("harbor_push.json")
    doc["event_data"]["resources"][0]["digest"] = "sha256:" + "a" * 64 + "\n"
    with pytest.raises(ValidationError, match="digest"):
        parse_harbor(doc)


def test_repository_normalisation_follows_docker() -> None:
    """Short Docker Hub names get docker.io (and library/); names with a registry host stay."""
    assert normalize_repository("keptnexamples/carts") == "docker.io/keptnexamples/carts"
    assert normalize_repository("carts") == "docker.io/library/carts"
    assert normalize_repository("index.docker.io/keptnexamples/carts") == "docker.io/keptnexamples/carts"
    assert normalize_repository("localhost:5000/carts") == "localhost:5000/carts"


PUSH = Push("dockerhub", "docker.io/keptnexamples/carts", "0.10.2", None, "dockerhub-1")


def test_default_tag_pattern_is_semver_only() -> None:
    """Without a tag pattern, 0.10.2 and v1.2.3 start deliveries; latest and 0.10.2-rc1 do not."""
    trigger = Trigger.create("sockshop", "carts", "keptnexamples/carts")
    assert trigger.matches_tag("0.10.2") and trigger.matches_tag("v1.2.3")
    assert not trigger.matches_tag("latest") and not trigger.matches_tag("0.10.2-rc1")


def test_unmapped_repository_says_which() -> None:
    """A push of a repository without trigger starts nothing: 'no trigger for repository X'."""
    result = match([Trigger.create("sockshop", "carts", "other/carts")], PUSH)
    assert result.triggers == () and result.reason == "no trigger for repository docker.io/keptnexamples/carts"


def test_trigger_source_restricts_the_registry() -> None:
    """A trigger limited to harbor does not fire for a Docker Hub push of the same repository."""
    result = match([Trigger.create("sockshop", "carts", "keptnexamples/carts", source="harbor")], PUSH)
    assert result.triggers == () and "harbor" in result.reason


def test_invalid_trigger_lists_every_problem() -> None:
    """A trigger with a bad project, repository and regex is refused naming all three."""
    with pytest.raises(ValidationError) as err:
        Trigger.create("Sock Shop", "carts", "a/b:1.0", "([")
    text = str(err.value)
    assert "project" in text and "repository" in text and "tag-pattern" in text


def test_new_artifact_event_is_a_configuration_change_for_the_first_stage() -> None:
    """The event is a configuration.change with an empty stage, the image, and the registry delivery as triggeredid."""
    trigger = Trigger.create("sockshop", "carts", "keptnexamples/carts")
    event = new_artifact_event(PUSH, trigger, source="sluice/intake", time="2024-06-09T08:58:28Z")
    data = event.data.to_dict()
    assert event.type is EventType.CONFIGURATION_CHANGE and event.triggeredid == "dockerhub-1"
    assert data["stage"] == "" and data["valuesCanary"]["image"] == "docker.io/keptnexamples/carts:0.10.2"
    assert data["canary"]["action"] == "set" and data["labels"]["registry"] == "dockerhub"


def test_pin_digest_puts_the_digest_into_the_image() -> None:
    """With pin_digest, the image reference is repo:tag@sha256:… (exactly what was pushed)."""
    push = Push("harbor", "harbor.example.com/sockshop/carts", "0.10.2", "sha256:" + "a" * 64, "h-1")
    trigger = Trigger.create("sockshop", "carts", "harbor.example.com/sockshop/carts", pin_digest=True)
    event = new_artifact_event(push, trigger, source="s", time="2024-06-09T08:58:28Z")
    assert event.data.to_dict()["valuesCanary"]["image"] == "harbor.example.com/sockshop/carts:0.10.2@sha256:" + "a" * 64


def test_plan_is_deterministic_for_a_replay() -> None:
    """The same notification planned twice gives events with the same ids and contexts."""
    triggers = [Trigger.create("sockshop", "carts", "keptnexamples/carts")]
    parsed = parse_dockerhub(fixture("dockerhub_push.json"))
    a = plan(parsed, triggers, source="s", time="2024-06-09T08:58:28Z")
    b = plan(parse_dockerhub(fixture("dockerhub_push.json")), triggers, source="s", time="2024-06-10T00:00:00Z")
    assert [(e.id, e.shkeptncontext) for e in a.events] == [(e.id, e.shkeptncontext) for e in b.events]


@given(st.from_regex(r"\Av?[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\Z"))
def test_every_semver_tag_matches_the_default_pattern(tag: str) -> None:
    """Property: every MAJOR.MINOR.PATCH tag (optionally v-prefixed) matches the default pattern."""
    assert Trigger.create("p", "s", "a/b").matches_tag(tag)
