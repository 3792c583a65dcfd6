"""A name, time or number with a trailing newline is refused wherever Sluice checks one.

``re.match(r"^...$", text)`` matches before a final ``\\n``: each of these let ``"carts\\n"``-like
input through — into a stored record's name or labels (which the Kubernetes API refuses), a
CloudEvent's time, an SLO's criteria, a broker's retry setting.
"""

from __future__ import annotations

import json

import pytest

from sluice.adapters.state._rules import check_record, label_problems, name_problem
from sluice.core.cloudevent import parse
from sluice.core.slo import parse_aggregate_function, parse_criterion
from sluice.core.validation import dns_label_problem, image_problem
from sluice.core.validation import parse_duration as seconds
from sluice.embedded.broker.delivery import parse_duration
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.state import Record

EVENT = {"specversion": "1.0", "id": "1", "source": "test", "type": "sh.keptn.event.configuration.change",
         "time": "2026-01-01T00:00:00Z", "data": {}}
STRUCTURED = {"content-type": "application/cloudevents+json"}


def test_a_record_name_label_or_data_key_with_a_newline_is_refused() -> None:
    assert name_problem("carts\n") is not None
    assert label_problems({"app\n": "carts"}) and label_problems({"app": "carts\n"})
    assert label_problems({"sluice.sh\n/app": "carts"})
    with pytest.raises(ValidationError, match="data key"):
        check_record(Record("carts", {"key\n": "value"}))
    assert name_problem("carts") is None and label_problems({"sluice.sh/app": "carts"}) == []


def test_a_cloudevent_time_or_attribute_name_with_a_newline_is_refused() -> None:
    for changed in ({"time": "2026-01-01T00:00:00Z\n"}, {"shkeptncontext\n": "x"}, {"time": "٢٠٢٦-01-01T00:00:00Z"}):
        with pytest.raises(ValidationError):
            parse(STRUCTURED, json.dumps({**EVENT, **changed}).encode())
    assert parse(STRUCTURED, json.dumps(EVENT).encode()).attributes["time"] == EVENT["time"]


def test_a_name_criterion_aggregate_or_duration_with_a_newline_is_refused() -> None:
    assert dns_label_problem("service", "carts\n") is not None
    with pytest.raises(ValueError):
        parse_criterion("<600\n")
    with pytest.raises(ValueError):
        parse_aggregate_function("p95\n")
    with pytest.raises(ConfigurationError):
        parse_duration("PT1S\n", "delivery.retry")
    assert parse_criterion("<600") and parse_aggregate_function("p95") and parse_duration("PT1S", "x") == 1.0


def test_another_scripts_digits_or_letters_are_not_ascii_ones() -> None:
    """``\\d`` and ``\\w`` in a ``str`` pattern match '٦' and 'é' too; the grammars they stand for
    (Keptn's criteria, Docker's tags, durations) are ASCII, as Go's regular expressions are."""
    assert image_problem("image", "docker.io/keptnexamples/carts:0.10.é") is not None
    assert image_problem("image", "docker.io/keptnexamples/carts:٣") is not None
    assert image_problem("image", "docker.io/keptnexamples/carts:0.10_3-rc.1") is None
    with pytest.raises(ValueError):
        parse_criterion("<٦٠٠")
    with pytest.raises(ValueError):
        parse_aggregate_function("p٩٥")
    assert seconds("٣s") is None and seconds("3s") == 3.0
    with pytest.raises(ConfigurationError):
        parse_duration("PT٣S", "delivery.retry")
