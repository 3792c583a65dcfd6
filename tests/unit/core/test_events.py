"""The event contract: typed payloads, validation at the edge, deterministic replies."""

from __future__ import annotations

import uuid

import pytest

from sluice.core.events import PAYLOADS, ConfigurationChange, Done, Event, EventType, Outcome, TestsFinished
from sluice.core.validation import context_id, image_problem, split_image
from sluice.errors import ValidationError

SAMPLES = {
    EventType.CONFIGURATION_CHANGE: {"project": "sockshop", "service": "carts", "stage": "dev",
                                     "valuesCanary": {"image": "docker.io/keptnexamples/carts:0.10.2"},
                                     "canary": {"action": "set", "value": 100}, "labels": {}},
    EventType.DEPLOYMENT_FINISHED: {"project": "sockshop", "stage": "dev", "service": "carts", "image": "x/carts",
                                    "tag": "1", "result": "pass", "deploymentURILocal": "http://a"},
    EventType.TESTS_FINISHED: {"project": "sockshop", "stage": "dev", "service": "carts",
                               "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z", "result": "fail"},
    EventType.START_EVALUATION: {"project": "sockshop", "stage": "dev", "service": "carts",
                                 "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00+01:00"},
    EventType.GET_SLI: {"project": "sockshop", "stage": "dev", "service": "carts", "sliProvider": "builtin",
                        "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z", "indicators": ["a"]},
    EventType.GET_SLI_DONE: {"project": "sockshop", "stage": "dev", "service": "carts",
                             "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z",
                             "indicatorValues": [{"metric": "a", "value": 1.0, "success": True, "message": ""}]},
    EventType.EVALUATION_DONE: {"project": "sockshop", "stage": "dev", "service": "carts", "result": "warning",
                                "evaluationdetails": {"score": 80}},
    EventType.APPROVAL_TRIGGERED: {"project": "sockshop", "stage": "dev", "service": "carts", "image": "x:1"},
    EventType.APPROVAL_FINISHED: {"project": "sockshop", "stage": "dev", "service": "carts",
                                  "approval": {"decision": "decline"}},
    EventType.APPROVAL_REJECTED: {"project": "sockshop", "stage": "dev", "service": "carts",
                                  "approval": {"decision": "approve", "approver": "mallory"}, "reason": "unsigned"},
    EventType.DONE: {"project": "sockshop", "stage": "dev", "service": "carts", "outcome": "rolled_back"},
    EventType.PING: {"message": "tick"},
}


def test_every_event_type_has_a_payload_and_a_sample() -> None:
    """One payload class per event type, and this test covers each of them."""
    assert set(PAYLOADS) == set(EventType) == set(SAMPLES)


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_round_trip(event_type: EventType) -> None:
    """Every type survives to_json_dict → from_json_dict unchanged."""
    payload = PAYLOADS[event_type].from_dict(SAMPLES[event_type])
    event = Event.new(payload, source="test", id="id-1", time="2026-01-01T00:00:00Z", context=str(uuid.uuid4()))
    again = Event.from_json_dict(event.to_json_dict())
    assert again == event
    assert PAYLOADS[event_type].from_dict(payload.to_dict()) == payload


def test_all_problems_of_one_event_are_reported_together() -> None:
    """A bad event's error names each field at fault with what was expected."""
    with pytest.raises(ValidationError) as err:
        Event.from_json_dict({
            "specversion": "1.0", "type": EventType.CONFIGURATION_CHANGE.value, "source": "t", "id": "1",
            "time": "yesterday",
            "data": {"project": "Sock_Shop", "valuesCanary": {"image": "no spaces allowed"}, "canary": {"value": 101}},
        })
    text = str(err.value)
    for fragment in ("time:", "data.project", "data.service: required", "data.valuesCanary.image", "data.canary.value"):
        assert fragment in text


@pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion"])
def test_missing_required_attribute_is_named(attribute: str) -> None:
    """Each required CloudEvent attribute, when missing, is named in the error."""
    doc = {"specversion": "1.0", "type": EventType.PING.value, "source": "t", "id": "1", "data": {}}
    del doc[attribute]
    with pytest.raises(ValidationError, match=attribute):
        Event.from_json_dict(doc)


def test_unknown_type_lists_the_known_ones() -> None:
    """An unknown type is refused with the list of types Sluice knows."""
    with pytest.raises(ValidationError, match=r"sh\.keptn\.events\.evaluation-done"):
        Event.from_json_dict({"specversion": "1.0", "type": "com.example.x", "source": "t", "id": "1"})


def test_replies_are_deterministic_and_carry_the_cause() -> None:
    """Replying twice to the same event gives the same id, the same context and triggeredid = cause."""
    cause = Event.from_json_dict({"specversion": "1.0", "type": EventType.TESTS_FINISHED.value, "source": "t",
                                  "id": "abc", "shkeptncontext": "not-a-uuid", "data": SAMPLES[EventType.TESTS_FINISHED]})
    done = Done(project="sockshop", stage="dev", service="carts", outcome=Outcome.PROMOTED)
    a = cause.reply(done, source="s", time="2026-01-01T00:00:00Z")
    b = cause.reply(done, source="s", time="2026-01-01T00:00:09Z")
    assert a.id == b.id and a.triggeredid == "abc" and a.shkeptncontext == cause.shkeptncontext
    assert cause.shkeptncontext == context_id("not-a-uuid") == str(uuid.UUID(cause.shkeptncontext))


def test_set_needs_an_image_but_promote_does_not() -> None:
    """canary.action set without an image is refused; promote and discard need none."""
    with pytest.raises(ValidationError, match=r"valuesCanary\.image"):
        ConfigurationChange.from_dict({"project": "p", "service": "s"})
    assert ConfigurationChange.from_dict({"project": "p", "service": "s", "canary": {"action": "promote"}}).action == "promote"


@pytest.mark.parametrize(
    "reference, valid",
    [("docker.io/keptnexamples/carts:0.10.2", True), ("carts", True), ("localhost:5000/a/b:v1", True),
     ("ghcr.io/o/n@sha256:" + "a" * 64, True), ("Carts", False), ("a b", False), ("a:", False), ("", False)],
)
def test_image_references(reference: str, valid: bool) -> None:
    """Image references follow the OCI grammar."""
    assert (image_problem("image", reference) is None) is valid


def test_split_image() -> None:
    """A reference splits into repository and tag."""
    assert split_image("docker.io/keptnexamples/carts:0.10.2") == ("docker.io/keptnexamples/carts", "0.10.2")
    assert split_image("localhost:5000/carts") == ("localhost:5000/carts", "")


def test_tests_finished_is_not_collected_by_pytest() -> None:
    """Payload classes named Test* are not mistaken for test classes."""
    assert TestsFinished.__test__ is False  # type: ignore[attr-defined]


def test_join_image_inverts_split() -> None:
    """Joining a split reference gives it back; a tagged or digested name is left as it is."""
    from sluice.core.validation import join_image

    for ref in ("docker.io/keptnexamples/carts:0.10.2", "localhost:5000/carts:v1"):
        assert join_image(*split_image(ref)) == ref
    assert join_image("carts:1", "1") == "carts:1"
    assert join_image("carts@sha256:" + "a" * 64, "1") == "carts@sha256:" + "a" * 64
    assert join_image("carts", "") == "carts"


@pytest.mark.parametrize("value", ["sockshop\n", "carts\n"])
def test_a_trailing_newline_is_not_a_dns_label(value: str) -> None:
    """Names are matched whole: a trailing newline does not slip through a `$` anchor."""
    from sluice.core.validation import dns_label_problem

    assert dns_label_problem("project", value) is not None
    assert image_problem("image", "docker.io/keptnexamples/carts:0.10.2\n") is not None
