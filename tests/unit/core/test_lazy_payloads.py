"""The payload classes are created on first use (``sluice.core.payloads``), yet the event contract
reads as before: every name imports from ``sluice.core.events``, the wire registry maps every type
to its class, and a fresh interpreter that imports the events module has created none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sluice.core.events as events
from sluice.core.events import PAYLOADS, EventType, Payload


def test_registry_maps_every_type_to_the_class_of_that_type() -> None:
    """The registry is complete and each class declares the type it is registered for."""
    assert set(PAYLOADS) == set(EventType) and len(PAYLOADS) == len(EventType)
    for kind, cls in PAYLOADS.items():
        assert issubclass(cls, Payload) and cls.TYPE is kind
        assert getattr(events, cls.__name__) is cls  # the same class by name and by type


def test_names_are_listed_and_unknown_names_still_fail() -> None:
    """``dir()`` lists the payload names; a name that is no payload is an AttributeError."""
    assert {"ConfigurationChange", "Done", "Ping", "GetSliDone"} <= set(dir(events))
    with pytest.raises(AttributeError, match="NoSuchPayload"):
        events.NoSuchPayload  # type: ignore[attr-defined]  # noqa: B018


CHILD = """
import sys
import sluice.core.events as events
before = sorted(m for m in sys.modules if m.startswith("sluice.core.payloads."))
done = events.Event.from_parts(
    {"id": "1", "source": "s", "type": "sh.keptn.events.done", "specversion": "1.0"},
    {"project": "p", "stage": "s", "service": "c", "outcome": "promoted"})
after = sorted(m for m in sys.modules if m.startswith("sluice.core.payloads."))
print(before, after, type(done.data).__name__)
"""


def test_a_fresh_import_creates_only_the_payloads_it_decodes() -> None:
    """Importing the contract creates no payload class; decoding a ``done`` event creates ``Done`` only."""
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["[]", "['sluice.core.payloads.done']", "Done"]
