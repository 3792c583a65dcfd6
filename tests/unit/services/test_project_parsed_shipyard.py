"""A project's shipyard is stored parsed beside its text (no YAML parser to read it), and the
text stays the truth: a parsed form made from another text, or none at all, is not used."""

from __future__ import annotations

from dataclasses import replace

import yaml

from sluice.adapters.state.memory import MemoryStore
from sluice.core.strategies import DeploymentStrategy
from sluice.services.records import SHIPYARD_PARSED, Records

SHIPYARD = """
stages:
  - name: dev
    deployment_strategy: direct
  - name: staging
    deployment_strategy: blue_green_service
"""


def created() -> tuple[MemoryStore, Records]:
    store = MemoryStore()
    records = Records(store)
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    return store, records


def test_the_parsed_form_is_stored_with_the_text_and_reads_the_same() -> None:
    """The project record holds the text and its parsed form; the project read back is the one created."""
    store, records = created()
    record = store.get("project.sockshop")
    assert record is not None and SHIPYARD_PARSED in record.data
    assert record.data["shipyard.yaml"] == SHIPYARD
    project = records.project("sockshop")
    assert [s.name for s in project.shipyard.stages] == ["dev", "staging"]
    assert project.shipyard.stage("staging").deployment_strategy is DeploymentStrategy.BLUE_GREEN


def test_a_parsed_form_of_another_text_is_ignored() -> None:
    """A writer that knows no parsed form changed the text: the project is read from the text."""
    store, records = created()
    record = store.get("project.sockshop")
    assert record is not None
    changed = SHIPYARD.replace("blue_green_service", "canary")
    store.put(replace(record, data={**record.data, "shipyard.yaml": changed}))
    assert records.project("sockshop").shipyard.stage("staging").deployment_strategy is DeploymentStrategy.CANARY


def test_a_project_stored_without_a_parsed_form_is_read_from_its_text() -> None:
    """Records written before the parsed form existed (or with a corrupt one) still read."""
    store, records = created()
    record = store.get("project.sockshop")
    assert record is not None
    for parsed in (None, "not json", '{"sha256": 1}', "[]"):
        data = {k: v for k, v in record.data.items() if k != SHIPYARD_PARSED}
        if parsed is not None:
            data[SHIPYARD_PARSED] = parsed
        record = store.put(replace(record, data=data))
        assert [s.name for s in records.project("sockshop").shipyard.stages] == ["dev", "staging"]


def test_a_document_json_cannot_hold_keeps_only_its_text() -> None:
    """A YAML value JSON cannot hold (a date) leaves the parsed form out; the text is read instead."""
    store = MemoryStore()
    records = Records(store)
    text = SHIPYARD + "created: 2026-01-01\n"
    records.create_project("sockshop", text, yaml.safe_load(text))
    record = store.get("project.sockshop")
    assert record is not None and SHIPYARD_PARSED not in record.data
    assert [s.name for s in records.project("sockshop").shipyard.stages] == ["dev", "staging"]
