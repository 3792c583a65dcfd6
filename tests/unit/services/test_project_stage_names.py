"""A project's stage names read from its stored parsed shipyard (no stage built, no shipyard rule
loaded) are the names the full read gives, for every shipyard a project can be created with; a
parsed form that is missing or made from another text is not used."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.state.memory import MemoryStore
from sluice.core.shipyard import parse_shipyard
from sluice.errors import NotFoundError, ValidationError
from sluice.ports.state import Record
from sluice.services.records import SHIPYARD_PARSED, Records

#: Mostly valid shipyards (names unique DNS labels, known strategies), with now and then a
#: problem (a bad name, a repeated one, an unknown value or key, a stage that is not a mapping).
VALID_NAMES = ["dev", "staging", "production", "qa", "hardening", "x" * 63, "a-b", "s3"]
NAMES = st.sampled_from(VALID_NAMES) | st.sampled_from(["x" * 64, "Dev", "-a", "", 7, None])
STAGE = st.fixed_dictionaries(
    {"name": st.sampled_from(VALID_NAMES)},
    optional={
        "deployment_strategy": st.sampled_from(["direct", "blue_green_service"] * 4 + ["user_managed"]),
        "test_strategy": st.sampled_from(["functional", "performance", "", "none"] * 2 + ["load"]),
        "approval_strategy": st.fixed_dictionaries({}, optional={
            "pass": st.sampled_from(["automatic", "manual"] * 4 + ["maybe"]),
            "warning": st.sampled_from(["automatic", "manual"]),
            "timeout": st.sampled_from(["30m", "24h", "1h"] * 3 + ["0s"])}),
        "on_inconclusive": st.sampled_from(["fail", "retry", "hold"] * 3 + ["nope"]),
    },
)
CANARY = st.fixed_dictionaries({"name": st.sampled_from(VALID_NAMES), "deployment_strategy": st.just("canary"),
                                "canary": st.sampled_from([{"steps": [{"weight": 10}, {"weight": 50}]}, {"steps": []}])})
ODD = st.fixed_dictionaries({"name": NAMES}, optional={"extra": st.integers()}) | st.none() | st.text(max_size=3)
VALIDISH = st.lists(STAGE, min_size=1, max_size=5, unique_by=lambda s: s["name"])
MIXED = st.builds(
    lambda stages, more, at: {"stages": stages[:at] + more + stages[at:]},
    VALIDISH, st.lists(ODD | CANARY, max_size=1), st.integers(0, 5),
)
SHIPYARDS = st.one_of(st.builds(lambda stages: {"stages": stages}, VALIDISH), MIXED,
                      st.fixed_dictionaries({"stages": st.lists(ODD | STAGE, max_size=4)}))


def _stored(doc: object) -> tuple[MemoryStore, Records] | None:
    """A project created with ``doc`` (as its text too: JSON is YAML); None when it is not a valid shipyard."""
    store = MemoryStore()
    records = Records(store)
    try:
        records.create_project("sockshop", json.dumps(doc), doc)
    except ValidationError:
        return None
    return store, records


@settings(max_examples=300, deadline=None)
@given(SHIPYARDS)
def test_stage_names_are_those_of_the_full_read(doc: dict[str, object]) -> None:
    """Every shipyard a project is created with: the names from the parsed form, from the full
    read, and from a record without its parsed form (the text alone) are the same."""
    created = _stored(doc)
    if created is None:
        with pytest.raises(ValidationError):
            parse_shipyard(doc)
        return
    store, records = created
    full = tuple(stage.name for stage in records.project("sockshop").shipyard.stages)
    assert records.stage_names("sockshop") == full
    record = store.get("project.sockshop")
    assert record is not None and SHIPYARD_PARSED in record.data
    store.put(replace(record, data={k: v for k, v in record.data.items() if k != SHIPYARD_PARSED}))
    assert records.stage_names("sockshop") == full


SHIPYARD = {"stages": [{"name": "dev"}, {"name": "staging", "deployment_strategy": "blue_green_service"}]}


def _sockshop() -> tuple[MemoryStore, Records, Record]:
    """A project made with ``SHIPYARD``: its store, records and project record."""
    created = _stored(SHIPYARD)
    assert created is not None
    store, records = created
    record = store.get("project.sockshop")
    assert record is not None
    return store, records, record


def test_a_parsed_form_of_another_text_is_not_used() -> None:
    """A writer that knows no parsed form changed the text: the names are those of the text."""
    store, records, record = _sockshop()
    changed = json.dumps({"stages": [{"name": "dev"}, {"name": "staging"}, {"name": "production"}]})
    store.put(replace(record, data={**record.data, "shipyard.yaml": changed}))
    assert records.stage_names("sockshop") == ("dev", "staging", "production")


def test_a_corrupt_parsed_form_is_read_from_the_text_and_an_invalid_one_raises() -> None:
    """A parsed form that is not JSON, or a text no longer valid (and no parsed form): as ``project()``."""
    store, records, record = _sockshop()
    record = store.put(replace(record, data={**record.data, SHIPYARD_PARSED: "not json"}))
    assert records.stage_names("sockshop") == ("dev", "staging")
    store.put(replace(record, data={**record.data, "shipyard.yaml": "stages: []"}))
    with pytest.raises(ValidationError):
        records.stage_names("sockshop")


def test_an_unknown_project_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        Records(MemoryStore()).stage_names("nope")
