"""An SLO resource is stored parsed beside its text (the evaluate function reads it without a YAML
parser), and the text stays the truth: a parsed form made from another text, a corrupt one, none
at all, or a document JSON would change, all read the text."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.state.memory import MemoryStore
from sluice.services.documents import load_slo
from sluice.services.records import PARSED_SUFFIX, Records

SLO = """
spec_version: "1.0"
filter: {handler: ItemsController.addToCart}
comparison: {compare_with: single_result, include_result_with_score: pass, aggregate_function: avg}
objectives:
  - sli: response_time_p95
    pass: [{criteria: ["<=+10%", "<600"]}]
    warning: [{criteria: ["<=800"]}]
  - sli: error_rate
    pass: [{criteria: ["<=1"]}]
total_score: {pass: "90%", warning: "75%"}
"""
KEY = "slo.yaml" + PARSED_SUFFIX
NAME = "resources.sockshop.staging.carts"


def stored(text: str = SLO) -> tuple[MemoryStore, Records]:
    store = MemoryStore()
    records = Records(store)
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", text)
    return store, records


def test_the_parsed_form_is_stored_and_builds_the_same_slo() -> None:
    """The record holds the text and its parsed form; the SLO built from it equals the one parsed from the text."""
    store, records = stored()
    record = store.get(NAME)
    assert record is not None and record.data["slo.yaml"] == SLO and KEY in record.data
    found = records.resource_document("sockshop", "staging", "carts", "slo.yaml")
    assert found is not None and found[0] == SLO and found[1] == yaml.safe_load(SLO)
    assert load_slo(SLO, "slo.yaml", found[1]) == load_slo(SLO, "slo.yaml")
    assert records.resource("sockshop", "staging", "carts", "slo.yaml") == SLO


@pytest.mark.parametrize("parsed", [None, "not json", '{"sha256": 1}', "[]", '{"sha256": "0", "doc": {}}'])
def test_a_missing_stale_or_corrupt_parsed_form_is_not_used(parsed: str | None) -> None:
    """Records written before the parsed form existed, by a writer that changed only the text, or
    corrupt: the document is None and the text is parsed by the reader."""
    store, records = stored()
    record = original = store.get(NAME)
    assert record is not None and original is not None
    data = {k: v for k, v in record.data.items() if k != KEY}
    if parsed is not None:
        data[KEY] = parsed
    record = store.put(replace(record, data=data))
    assert records.resource_document("sockshop", "staging", "carts", "slo.yaml") == (SLO, None)
    changed = SLO.replace('"90%"', '"80%"')
    record = store.put(replace(record, data={**data, "slo.yaml": changed}))  # the same parsed form (if any), a new text
    assert records.resource_document("sockshop", "staging", "carts", "slo.yaml") == (changed, None)
    store.put(replace(record, data={**original.data, "slo.yaml": changed}))  # the old text's valid parsed form
    assert records.resource_document("sockshop", "staging", "carts", "slo.yaml") == (changed, None)


def test_rewriting_the_text_replaces_or_drops_the_parsed_form() -> None:
    """A new text gets its own parsed form; a text that is no mapping (or no YAML) leaves none behind."""
    store, records = stored()
    changed = SLO.replace('"90%"', '"80%"')
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", changed)
    assert records.resource_document("sockshop", "staging", "carts", "slo.yaml") == (changed, yaml.safe_load(changed))
    for bad in ("objectives: [", "- a list\n", "", "created: 2026-01-01\n", "1: int key\n"):
        records.put_resource("sockshop", "staging", "carts", "slo.yaml", bad)
        record = store.get(NAME)
        assert record is not None and record.data["slo.yaml"] == bad and KEY not in record.data, bad


def test_other_resources_are_stored_as_text_only() -> None:
    """Only the SLO is stored parsed."""
    store = MemoryStore()
    Records(store).put_resource("sockshop", "staging", "carts", "sli.yaml", "indicators: {a: b}\n")
    record = store.get(NAME)
    assert record is not None and set(record.data) == {"sli.yaml"}


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8) | st.dates()
DOCS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5) | st.integers() | st.booleans(), inner, max_size=3), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(DOCS)
def test_the_document_read_back_is_the_one_parsed_from_the_text(doc: object) -> None:
    """Whatever YAML the text holds, the document read back is the text's document, or None (then
    the reader parses the text): never a document JSON changed (int keys, dates, NaN)."""
    text = yaml.safe_dump({"doc": doc})
    _, records = stored(text)
    found = records.resource_document("sockshop", "staging", "carts", "slo.yaml")
    assert found is not None and found[0] == text
    assert found[1] is None or found[1] == yaml.safe_load(text)
