"""The functions read a CloudEvent with the one codec (``sluice.core.cloudevent``): the same event
in binary and in structured mode decodes to the same ``Event``, and nothing is invented."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.cloudevent import RawEvent
from sluice.core.events import EventType
from sluice.functions.http import decode, encode_binary

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(source=TEXT, context=TEXT, extension=st.text(max_size=40))
def test_binary_and_structured_mode_decode_to_the_same_event(source: str, context: str, extension: str) -> None:
    """Attribute values with spaces, '%', quotes or non-ASCII travel percent-encoded in binary-mode
    headers (the HTTP binding; the local and Knative brokers send them so) and are read back as sent."""
    attributes = {"specversion": "1.0", "type": EventType.PING.value, "source": source, "id": "e-1",
                  "time": "2026-01-01T00:00:00Z", "shkeptncontext": context, "sluicenote": extension}
    raw = RawEvent.of(attributes, {"message": "tick"})
    binary = decode(raw.to_binary(), raw.data)
    headers, body = raw.to_structured()
    structured = decode(headers, body)
    assert binary == structured
    assert (binary.source, binary.extensions.get("sluicenote", "")) == (source, extension)
    again = decode(*encode_binary(binary))  # a reply is written as it is read
    assert again == binary and again.extensions == binary.extensions


def test_an_event_without_time_gets_no_invented_time() -> None:
    """A binary-mode event without ``ce-time`` decodes with no time (none is made up on reading)."""
    headers = {"ce-specversion": "1.0", "ce-type": EventType.PING.value, "ce-source": "s", "ce-id": "1",
               "content-type": "application/json"}
    assert decode(headers, b'{"message": "tick"}').time == ""
