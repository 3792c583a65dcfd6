"""The core's one validation reader: typed fields, problems with their paths, every problem at once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.validation import Reader, dns_label_problem, read
from sluice.errors import ValidationError


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Stage:
    name: str
    color: Color
    weight: float
    replicas: int
    enabled: bool
    tags: tuple[str, ...]
    labels: dict[str, str]


def _stage(r: Reader) -> Stage:
    r.expect_mapping()
    r.unknown_keys(("name", "color", "weight", "replicas", "enabled", "tags", "labels"))
    return Stage(
        name=r.string("name", required=True, check=dns_label_problem),
        color=r.enum("color", Color, Color.RED) or Color.RED,
        weight=r.number("weight", 1.0) or 0.0,
        replicas=r.integer("replicas", 1, minimum=0, maximum=10) or 0,
        enabled=r.boolean("enabled", True),
        tags=tuple(r.strings("tags")),
        labels=r.string_map("labels"),
    )


def _spec(r: Reader) -> list[Stage]:
    spec = r.mapping("spec")
    return [_stage(s) for s in spec.items("stages", required=True)]


def test_a_valid_document_reads_typed() -> None:
    """Every field comes back typed; absent optional fields take their defaults."""
    doc = {"spec": {"stages": [{"name": "dev", "color": "blue", "weight": 2, "tags": ["a"], "labels": {"k": "v"}}]}}
    (stage,) = read(doc, "shipyard", _spec)
    assert stage == Stage("dev", Color.BLUE, 2.0, 1, True, ("a",), {"k": "v"})
    assert stage.color is Color.BLUE


def test_every_problem_is_reported_with_its_path() -> None:
    """Problems are collected across the whole document, each led by its field path."""
    doc = {"spec": {"stages": [
        {"name": "dev"},
        {"name": "Bad Name", "color": "green"},
        {"name": "ok", "replicas": 11, "enabled": "yes", "tags": ["x", 3], "surprise": 1},
    ]}}
    with pytest.raises(ValidationError) as err:
        read(doc, "shipyard", _spec)
    problems = err.value.problems
    assert err.value.subject == "shipyard"
    assert any(p.startswith("spec.stages[1].name: ") and "DNS-1123" in p for p in problems)
    assert "spec.stages[1].color: expected one of red, blue, found 'green'" in problems
    assert "spec.stages[2].replicas: expected a whole number from 0 to 10, found 11" in problems
    assert "spec.stages[2].enabled: expected true or false, found 'yes'" in problems
    assert "spec.stages[2].tags[1]: expected a string, found 3" in problems
    assert "spec.stages[2].surprise: unknown field (valid: color, enabled, labels, name, replicas, tags, weight)" in problems
    assert len(problems) == 6


def test_required_and_wrong_shapes() -> None:
    """A missing required list, and a node of the wrong type, are named by path."""
    with pytest.raises(ValidationError) as err:
        read({"spec": {}}, "doc", _spec)
    assert err.value.problems == ("spec.stages: required, missing: expected a list",)
    with pytest.raises(ValidationError) as err:
        read({"spec": []}, "doc", _spec)
    assert err.value.problems[0] == "spec: expected an object, found list"


def test_a_huge_bad_value_is_quoted_short() -> None:
    """A hostile value does not make the problem sentence huge."""
    with pytest.raises(ValidationError) as err:
        read({"spec": {"stages": [{"name": "ok", "weight": "x" * 100_000}]}}, "doc", _spec)
    assert len(err.value.problems[0]) < 200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["spec", "stages", "name", "color", "weight", "replicas", "enabled", "tags", "labels", "x"])
        | st.text(max_size=5),
        children,
        max_size=6,
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_any_json_value_gives_a_typed_result_or_problems_with_paths(doc: object) -> None:
    """Hostile input: any JSON-like value either reads to typed stages or raises ValidationError whose
    problems each name a path — never another exception."""
    try:
        stages = read(doc, "doc", _spec)
    except ValidationError as err:
        assert err.problems
        for problem in err.problems:
            assert problem.startswith("spec"), problem
            assert len(problem) < 400
        return
    for stage in stages:
        assert isinstance(stage.name, str) and not dns_label_problem("name", stage.name)
        assert isinstance(stage.color, Color)
        assert isinstance(stage.weight, float) and isinstance(stage.replicas, int)
        assert isinstance(stage.enabled, bool)
        assert all(isinstance(t, str) for t in stage.tags)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_reading_any_node_with_every_method_never_raises(doc: object) -> None:
    """Each typed read on any node returns its type or the default, recording problems instead of raising."""
    r = Reader(doc, "root")
    assert isinstance(r.string("name"), str)
    assert r.number("weight") is None or isinstance(r.number("weight"), float)
    assert r.integer("replicas") is None or isinstance(r.integer("replicas"), int)
    assert isinstance(r.boolean("enabled"), bool)
    assert r.enum("color", Color) is None or isinstance(r.enum("color", Color), Color)
    assert all(isinstance(s, str) for s in r.strings("tags"))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in r.string_map("labels").items())
    for item in r.items("stages"):
        assert item.path.startswith("root.stages[")
    assert all(p.startswith("root") for p in r.problems.messages)
