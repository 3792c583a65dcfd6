"""Trigger filters: the attributes filter and the SQL-free ``filters`` dialects."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.embedded.broker.filters import compile_filter
from sluice.errors import ConfigurationError

EVENT = {"type": "sh.keptn.events.tests-finished", "source": "sluice/test", "id": "1", "shkeptncontext": "abc"}


def matches(spec: dict[str, Any], attrs: dict[str, str] = EVENT) -> bool:
    return compile_filter(spec)(attrs)


def test_no_filter_matches_everything() -> None:
    """A Trigger without filter or filters receives every event."""
    assert matches({})
    assert matches({"filters": []})


def test_attributes_filter_is_exact_on_every_listed_attribute() -> None:
    """``filter.attributes`` needs every listed attribute (extensions included) to be equal."""
    assert matches({"filter": {"attributes": {"type": EVENT["type"], "shkeptncontext": "abc"}}})
    assert not matches({"filter": {"attributes": {"type": EVENT["type"], "shkeptncontext": "other"}}})
    assert not matches({"filter": {"attributes": {"type": EVENT["type"][:-1]}}})
    assert not matches({"filter": {"attributes": {"myext": "x"}}})


def test_attributes_filter_empty_value_matches_any() -> None:
    """An empty value in ``filter.attributes`` matches any value, as Knative's TriggerAnyFilter."""
    assert matches({"filter": {"attributes": {"type": ""}}})


@pytest.mark.parametrize(
    ("dialect", "value", "expected"),
    [
        ("exact", "sluice/test", True),
        ("exact", "sluice/tes", False),
        ("prefix", "sluice/", True),
        ("prefix", "test", False),
        ("suffix", "/test", True),
        ("suffix", "sluice", False),
    ],
)
def test_attribute_dialects(dialect: str, value: str, expected: bool) -> None:
    """exact, prefix and suffix compare the attribute's string value, case-sensitively."""
    assert matches({"filters": [{dialect: {"source": value}}]}) is expected
    assert matches({"filters": [{dialect: {"source": value.upper()}}]}) is False


def test_attribute_dialect_needs_every_key_and_a_present_attribute() -> None:
    """All keys of one dialect must match; a missing attribute never matches."""
    assert matches({"filters": [{"prefix": {"source": "sluice/", "type": "sh.keptn."}}]})
    assert not matches({"filters": [{"prefix": {"source": "sluice/", "type": "dev."}}]})
    assert not matches({"filters": [{"exact": {"subject": "x"}}]})


def test_all_any_not() -> None:
    """all needs every nested expression, any needs one, not inverts one."""
    yes, no = {"exact": {"id": "1"}}, {"exact": {"id": "2"}}
    assert matches({"filters": [{"all": [yes, yes]}]})
    assert not matches({"filters": [{"all": [yes, no]}]})
    assert matches({"filters": [{"any": [no, yes]}]})
    assert not matches({"filters": [{"any": [no, no]}]})
    assert matches({"filters": [{"not": no}]})
    assert not matches({"filters": [{"not": yes}]})
    assert matches({"filters": [{"not": {"any": [no, {"not": yes}]}}]})


def test_every_filters_entry_must_hold() -> None:
    """The entries of ``filters`` are and-ed."""
    assert matches({"filters": [{"exact": {"id": "1"}}, {"prefix": {"type": "sh."}}]})
    assert not matches({"filters": [{"exact": {"id": "1"}}, {"prefix": {"type": "dev."}}]})


def test_filters_overrides_filter() -> None:
    """When both are given, ``filters`` decides and ``filter`` is ignored."""
    spec = {"filter": {"attributes": {"id": "2"}}, "filters": [{"exact": {"id": "1"}}]}
    assert matches(spec)
    assert not matches({**spec, "filters": [{"exact": {"id": "3"}}], "filter": {"attributes": {"id": "1"}}})


@pytest.mark.parametrize(
    ("filters", "problem"),
    [
        ([{"exact": {"id": "1"}, "prefix": {"id": "1"}}], "exactly one dialect"),
        ([{}], "exactly one dialect"),
        ([{"regex": {"id": "1"}}], "exactly one dialect"),
        ([{"cesql": "id = '1'"}], "cesql"),
        ([{"exact": {}}], "non-empty"),
        ([{"exact": {"id": ""}}], "must not be empty"),
        ([{"all": []}], "non-empty list"),
        ([{"any": {"exact": {"id": "1"}}}], "non-empty list"),
        ([{"not": {"exact": {"id": "1"}, "suffix": {"id": "1"}}}], "exactly one dialect"),
        ({"exact": {"id": "1"}}, "expected a list"),
    ],
)
def test_invalid_filters_are_refused_loudly(filters: Any, problem: str) -> None:
    """A malformed filter is a ConfigurationError naming the problem and where it is."""
    with pytest.raises(ConfigurationError, match=problem) as err:
        compile_filter({"filters": filters}, "triggers/t.yaml: Trigger t")
    assert "triggers/t.yaml" in str(err.value)


attr = st.text(alphabet="abcxyz/.-", min_size=1, max_size=8)


@given(value=attr, cut=st.integers(min_value=1, max_value=8))
def test_prefix_and_suffix_of_the_value_always_match(value: str, cut: int) -> None:
    """Any non-empty prefix (suffix) of an attribute's value matches the prefix (suffix) dialect."""
    attrs = {"source": value}
    assert compile_filter({"filters": [{"prefix": {"source": value[:cut]}}]})(attrs)
    assert compile_filter({"filters": [{"suffix": {"source": value[-cut:]}}]})(attrs)


@given(value=attr, other=attr)
def test_not_inverts_exact(value: str, other: str) -> None:
    """``not`` of an expression is true exactly when the expression is false."""
    attrs = {"source": value}
    inner = {"exact": {"source": other}}
    assert compile_filter({"filters": [{"not": inner}]})(attrs) is not compile_filter({"filters": [inner]})(attrs)
