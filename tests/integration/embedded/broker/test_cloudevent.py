"""What the broker's ingress takes for a CloudEvent: required attributes only, any type, any payload."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.core.cloudevent import REQUIRED, STRUCTURED, RawEvent, parse
from sluice.errors import ValidationError

BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "com.example.any",
          "content-type": "application/json"}
DOC = {"specversion": "1.0", "id": "1", "source": "s", "type": "com.example.any", "data": {"x": 1}}


@pytest.mark.parametrize("attribute", REQUIRED)
def test_each_missing_required_attribute_is_named_in_binary_mode(attribute: str) -> None:
    """One missing-attribute case per required attribute (without ce-specversion it is not binary mode at all)."""
    headers = {k: v for k, v in BINARY.items() if k != f"ce-{attribute}"}
    with pytest.raises(ValidationError, match=f"ce-{attribute}"):
        parse(headers, b"{}")


@pytest.mark.parametrize("attribute", REQUIRED)
def test_each_missing_required_attribute_is_named_in_structured_mode(attribute: str) -> None:
    """The same in structured mode."""
    doc = {k: v for k, v in DOC.items() if k != attribute}
    with pytest.raises(ValidationError, match=attribute):
        parse({"content-type": STRUCTURED}, json.dumps(doc).encode())


def test_any_type_and_any_payload_pass_and_are_kept_as_sent() -> None:
    """A type Sluice does not know and bytes that are not JSON pass, attributes and data kept as sent."""
    raw = parse({**BINARY, "ce-myext": "v"}, b"\x00not json at all")
    assert raw == RawEvent({"specversion": "1.0", "id": "1", "source": "s", "type": "com.example.any",
                            "datacontenttype": "application/json", "myext": "v"}, b"\x00not json at all")
    structured = parse({"content-type": STRUCTURED}, json.dumps(DOC).encode())
    assert structured.type == "com.example.any" and json.loads(structured.data) == {"x": 1}


_text = st.text(max_size=30)


@given(headers=st.dictionaries(st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time",
                                                "ce-Bad_Name", "content-type", "ce-x"]), _text),
       body=st.binary(max_size=200))
def test_hostile_binary_requests_are_an_event_or_a_validation_error(headers: dict[str, str], body: bytes) -> None:
    """Whatever the headers and body, the answer is a RawEvent with every required attribute, or ValidationError."""
    try:
        raw = parse(headers, body)
    except ValidationError as err:
        assert err.problems
        return
    assert all(raw.attributes.get(a) for a in REQUIRED) and raw.data == body


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=10)


@given(doc=st.dictionaries(st.sampled_from(["specversion", "id", "source", "type", "time", "data", "data_base64",
                                            "datacontenttype", "UPPER", "ext"]), _json), raw_bytes=st.binary(max_size=50),
       use_bytes=st.booleans())
def test_hostile_structured_requests_are_an_event_or_a_validation_error(doc: dict[str, object], raw_bytes: bytes,
                                                                        use_bytes: bool) -> None:
    """Any JSON document or bytes in structured mode: an event with every required attribute, or ValidationError."""
    body = raw_bytes if use_bytes else json.dumps(doc).encode()
    try:
        raw = parse({"content-type": STRUCTURED}, body)
    except ValidationError as err:
        assert err.problems
        return
    assert all(raw.attributes.get(a) for a in REQUIRED)
