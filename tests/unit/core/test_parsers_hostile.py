"""Hostile input for the parsers that read through the core's reader: any JSON-like value gives
a typed result or a ValidationError whose problems name their fields — never another exception."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.events import PAYLOADS, Event
from sluice.core.scoring import EvaluationResult
from sluice.core.shipyard import Shipyard, parse_shipyard
from sluice.errors import ValidationError

KEYS = st.sampled_from([
    "project", "stage", "service", "labels", "image", "tag", "teststrategy", "deploymentstrategy", "result",
    "canary", "action", "value", "valuesCanary", "approval", "decision", "outcome", "start", "end", "indicators",
    "indicatorValues", "metric", "success", "customFilters", "key", "deployment", "sliProvider", "message",
    "stages", "name", "deployment_strategy", "test_strategy", "approval_strategy", "pass", "warning", "timeout",
    "on_timeout", "on_inconclusive", "score", "status", "targets", "comparison", "noise", "samples", "distribution",
]) | st.text(max_size=6)
LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
    | st.sampled_from(["sockshop", "dev", "carts", "pass", "fail", "set", "promote", "canary", "blue_green_service",
                       "2026-01-01T00:00:00Z", "docker.io/x/carts:1", "approve", "failed", "performance", ""])
    | st.text(max_size=12)
)
JSON = st.recursive(LEAVES, lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS, c, max_size=8), max_leaves=40)
EXAMPLES = json.loads((Path(__file__).parent / "data" / "records_before_enums.json").read_text())


def _mutated(base: dict, extra: dict) -> dict:
    out = dict(base)
    out.update(extra)
    return out


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(PAYLOADS, key=str)), JSON | st.dictionaries(KEYS, JSON, max_size=10))
def test_any_payload_decodes_typed_or_names_its_fields(event_type, data) -> None:  # type: ignore[no-untyped-def]
    """Every payload type, fed anything: a payload that encodes to JSON, or problems that each lead with a field."""
    try:
        payload = PAYLOADS[event_type].from_dict(data)
    except ValidationError as err:
        assert err.problems
        assert all(p.split(":", 1)[0].strip() for p in err.problems)
        return
    assert json.loads(json.dumps(payload.to_dict())) == payload.to_dict()


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(EXAMPLES["events"]), st.dictionaries(KEYS, JSON, max_size=4))
def test_a_real_event_with_hostile_fields_decodes_or_names_them(doc, extra) -> None:  # type: ignore[no-untyped-def]
    """A valid event with some of its data fields replaced by anything."""
    hostile = _mutated(doc, {"data": _mutated(doc["data"], extra)})
    try:
        event = Event.from_json_dict(hostile)
    except ValidationError as err:
        assert err.problems and all(p.startswith("data.") or ":" in p for p in err.problems)
        return
    assert Event.from_json_dict(event.to_json_dict()) == event


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(KEYS, JSON, max_size=6))
def test_an_evaluation_record_with_hostile_fields_loads_or_names_them(extra) -> None:  # type: ignore[no-untyped-def]
    """A stored evaluation with fields replaced by anything: loaded, or every malformed field named."""
    try:
        result = EvaluationResult.from_dict(_mutated(EXAMPLES["evaluation"], extra), "history[0]")
    except ValidationError as err:
        assert err.subject == "history[0]" and err.problems
        return
    assert EvaluationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@settings(max_examples=100, deadline=None)
@given(JSON | st.fixed_dictionaries({"stages": st.lists(st.dictionaries(KEYS, JSON, max_size=6), max_size=4)}))
def test_any_shipyard_parses_or_names_its_fields(doc) -> None:  # type: ignore[no-untyped-def]
    """A shipyard of anything: stages, or problems naming ``stages``, ``stages[i]`` or ``stage '<name>'``."""
    try:
        shipyard = parse_shipyard(doc, "shipyard.yaml")
    except ValidationError as err:
        assert err.subject == "shipyard.yaml" and err.problems
        assert all(p.startswith(("stages", "stage '")) for p in err.problems), err.problems
        return
    assert isinstance(shipyard, Shipyard) and shipyard.stages
    assert parse_shipyard({"stages": [s.to_dict() for s in shipyard.stages]}) == shipyard


REGISTRY_KEYS = st.sampled_from([
    "repository", "repo_name", "push_data", "tag", "pushed_at", "type", "event_data", "occur_at", "resources",
    "repo_full_name", "digest", "resource_url", "action", "package", "package_type", "name", "package_version",
    "container_metadata", "package_url", "namespace", "owner", "login", "detail-type", "source", "id", "detail",
    "action-type", "result", "repository-name", "account", "region", "image-tag", "image-digest", "version",
]) | st.text(max_size=5)
REGISTRY_JSON = st.recursive(
    LEAVES | st.sampled_from(["PUSH_ARTIFACT", "published", "container", "aws.ecr", "ECR Image Action", "PUSH",
                              "SUCCESS", "eu-west-1", "sha256:" + "a" * 64, "ghcr.io/o/n:1"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(REGISTRY_KEYS, c, max_size=8),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["dockerhub", "harbor", "github", "ecr"]), REGISTRY_JSON)
def test_any_registry_notification_parses_or_names_its_fields(registry, doc) -> None:  # type: ignore[no-untyped-def]
    """A registry's webhook body of anything: pushes, an ignored notification, or problems — never another exception."""
    from sluice.core import intake

    parse = {
        "dockerhub": intake.parse_dockerhub, "harbor": intake.parse_harbor, "ecr": intake.parse_ecr,
        "github": lambda d: intake.parse_github(d, "package", "delivery-1"),
    }[registry]
    try:
        parsed = parse(doc)
    except ValidationError as err:
        assert err.problems and all(":" in p for p in err.problems)
        return
    assert isinstance(parsed, intake.Parsed)
    assert all(p.repository and p.tag for p in parsed.pushes)


SPEC_KEYS = st.sampled_from([
    "health", "functional", "performance", "jmeter", "path", "expected_status", "wait", "timeout", "method", "name",
    "body", "headers", "expected_text", "weight", "mode", "rate", "vus", "think_time", "duration", "requests",
    "max_error_rate", "properties",
]) | st.text(max_size=4)
SPEC_JSON = st.recursive(
    LEAVES | st.sampled_from(["/", "/carts", "GET", "30s", "2m", "10%", "virtual-users", "constant-arrival-rate", 200]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(SPEC_KEYS, c, max_size=8),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(SPEC_JSON)
def test_any_tests_yaml_parses_or_names_its_fields(doc) -> None:  # type: ignore[no-untyped-def]
    """A tests.yaml of anything: a test spec, or problems — never another exception."""
    from sluice.core.testspec import TestSpec, parse_test_spec

    try:
        spec = parse_test_spec(doc, "tests.yaml")
    except ValidationError as err:
        assert err.subject == "tests.yaml" and err.problems
        return
    assert isinstance(spec, TestSpec)


SLI_KEYS = st.sampled_from(["spec_version", "indicators", "cloudwatch", "region", "namespace", "metric", "dimensions",
                            "statistic", "period", "unit", "aggregate", "rt", "a b"]) | st.text(max_size=5)
SLI_JSON = st.recursive(
    LEAVES | st.sampled_from(["1.0", "up", "Average", "p95", "us-east-1", 60, "sum"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(SLI_KEYS, c, max_size=6),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(SLI_JSON | st.dictionaries(SLI_KEYS, SLI_JSON, max_size=4))
def test_any_sli_yaml_parses_or_names_its_fields(doc) -> None:  # type: ignore[no-untyped-def]
    """An sli.yaml of anything: indicators, or problems each led by its field (or the document's own shape)."""
    from sluice.core.sli_config import SliConfig, parse_sli_config

    try:
        config = parse_sli_config(doc, "sli.yaml (stage level)", "stage", ("cloudwatch",))
    except ValidationError as err:
        assert err.subject == "sli.yaml (stage level)" and err.problems
        fields = ("spec_version", "indicators", *(f"{k}: " if isinstance(k, str) and k else repr(k) for k in (doc if isinstance(doc, dict) else ())))
        assert all(p.startswith(("expected a mapping", *fields)) for p in err.problems), err.problems
        return
    assert isinstance(config, SliConfig)
    assert all(isinstance(q, str) and q for q in config.indicators.values())


@settings(max_examples=100, deadline=None)
@given(SLI_JSON | st.fixed_dictionaries({"cloudwatch": SLI_JSON | st.dictionaries(SLI_KEYS, SLI_JSON, max_size=4)}),
       st.dictionaries(SLI_KEYS, SLI_JSON, max_size=3))
def test_any_cloudwatch_section_parses_or_names_its_fields(doc, indicator) -> None:  # type: ignore[no-untyped-def]
    """sli.yaml's cloudwatch section of anything (and one indicator of anything): metric queries, or
    problems each led by ``cloudwatch…`` (or the document's own shape) — never another exception."""
    from sluice.adapters.sli.cloudwatch.section import CloudWatchConfig, parse_section

    docs = [doc, {"cloudwatch": {"indicators": {"rt": indicator}}}]
    for each in docs:
        try:
            config = parse_section(each, "sli.yaml (stage level)")
        except ValidationError as err:
            assert err.subject == "sli.yaml (stage level)" and err.problems
            assert all(p.startswith(("expected a mapping", "cloudwatch")) for p in err.problems), err.problems
            continue
        assert isinstance(config, CloudWatchConfig)
        assert all(q.namespace and q.metric for q in config.indicators.values())


DT_TEXT = st.lists(
    st.sampled_from(["metricSelector=", "entitySelector=", "MV2;", "MicroSecond;", "Byte;", "&", "=", "?scope=", ";",
                     "builtin:service.response.time", "type(SERVICE)", "from=", " "]) | st.text(max_size=8),
    max_size=8,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(DT_TEXT)
def test_any_dynatrace_query_parses_or_names_its_part(text) -> None:  # type: ignore[no-untyped-def]
    """A dynatrace/sli.yaml query of anything: a selector, or problems each led by the part at fault."""
    from sluice.adapters.sli.dynatrace.query import DynatraceQuery, parse_query

    try:
        query = parse_query(text, "dynatrace/sli.yaml indicator rt")
    except ValidationError as err:
        assert err.subject == "dynatrace/sli.yaml indicator rt" and err.problems
        assert all(": " in p and p.split(": ", 1)[0] for p in err.problems), err.problems
        return
    assert isinstance(query, DynatraceQuery) and query.metric_selector and query.divisor > 0


SLO_KEYS = st.sampled_from([
    "spec_version", "filter", "comparison", "objectives", "total_score", "compare_with", "number_of_comparison_results",
    "include_result_with_score", "aggregate_function", "sli", "displayName", "key_sli", "weight", "pass", "warning",
    "noise_floor", "method", "confidence", "min_effect", "criteria",
]) | st.text(max_size=4)
SLO_JSON = st.recursive(
    LEAVES | st.sampled_from(["<600", "<=+10%", ">-8%", "90%", "avg", "p95", "several_results", "mann_whitney", 0.95]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(SLO_KEYS, c, max_size=6),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(SLO_JSON | st.dictionaries(SLO_KEYS, SLO_JSON, max_size=6),
       st.lists(st.dictionaries(SLO_KEYS, SLO_JSON, max_size=6), max_size=3))
def test_any_slo_parses_or_names_its_fields(doc, objectives) -> None:  # type: ignore[no-untyped-def]
    """An slo.yaml of anything (and one with objectives of anything): an Slo, or problems — never another exception."""
    from sluice.core.slo import Slo, parse_slo

    for each in (doc, {"objectives": objectives, "total_score": {"pass": "90%"}}):
        try:
            slo = parse_slo(each, "slo.yaml")
        except ValidationError as err:
            assert err.subject == "slo.yaml" and err.problems
            assert all(": " in p or p.startswith("expected a mapping") for p in err.problems), err.problems
            continue
        assert isinstance(slo, Slo)
        assert parse_slo(slo.to_dict(), "slo.yaml").objectives == slo.objectives
