"""sli.yaml parsing, the three-level merge, and safe placeholder substitution (pure core)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.core.sli_config import (
    SliConfig,
    duration_placeholder,
    merge_sli_configs,
    parse_sli_config,
    placeholder_values,
    render_query,
)
from sluice.errors import ValidationError


def values(**filters: str) -> dict[str, str]:
    return placeholder_values("sockshop", "staging", "carts", "canary", "600s", filters)


def unquote(literal: str) -> str:
    """PromQL's (Go's) unquoting of a double- or single-quoted string literal, for the escapes we emit."""
    quote, body = literal[0], literal[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        assert c != quote, f"unescaped quote inside {literal!r}"
        out.append(c)
        i += 1
    return "".join(out)


def test_parse_reads_spec_version_and_indicators() -> None:
    """A valid sli.yaml gives its indicators and spec_version, each indicator tagged with its level."""
    config = parse_sli_config({"spec_version": "1.0", "indicators": {"throughput": " sum(x) "}}, "f", "stage")
    assert config == SliConfig({"throughput": "sum(x)"}, {"throughput": "stage"}, "1.0")


def test_parse_empty_document_is_empty_config() -> None:
    """An empty file (None) is an empty configuration, not an error."""
    assert parse_sli_config(None, "f").indicators == {}


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([1, 2], "expected a mapping"),
        ({"indicator": {}}, "indicator: unknown field (valid: indicators, spec_version)"),
        ({"spec_version": "1.0"}, "indicators: missing"),
        ({"indicators": ["a"]}, "expected a mapping of indicator name"),
        ({"indicators": {"a b": "x"}}, "is not an indicator name"),
        ({"indicators": {"a": ""}}, "expected a non-empty query string"),
        ({"indicators": {"a": 5}}, "expected a non-empty query string"),
        ({"spec_version": ["1"], "indicators": {}}, "spec_version: expected a string"),
    ],
)
def test_parse_rejects_malformed_documents(doc: object, problem: str) -> None:
    """Each malformed sli.yaml is a ValidationError naming the file and the problem."""
    with pytest.raises(ValidationError) as err:
        parse_sli_config(doc, "sli.yaml of carts")
    assert err.value.subject == "sli.yaml of carts"
    assert problem in str(err.value)


def test_merge_most_specific_level_wins_per_indicator() -> None:
    """Service overrides stage overrides project, indicator by indicator; the rest is inherited."""
    project = {"indicators": {"a": "project_a", "b": "project_b", "c": "project_c"}}
    stage = {"indicators": {"b": "stage_b", "c": "stage_c"}}
    service = {"spec_version": "1.0", "indicators": {"c": "service_c"}}
    merged = merge_sli_configs(project, stage, service)
    assert dict(merged.indicators) == {"a": "project_a", "b": "stage_b", "c": "service_c"}
    assert dict(merged.sources) == {"a": "project", "b": "stage", "c": "service"}
    assert merged.spec_version == "1.0"


def test_merge_with_missing_levels() -> None:
    """Missing levels (None) are skipped."""
    merged = merge_sli_configs(None, {"indicators": {"a": "q"}}, None)
    assert dict(merged.indicators) == {"a": "q"} and merged.sources["a"] == "stage"


def test_merge_names_the_invalid_level() -> None:
    """An invalid level is reported with its level's name."""
    with pytest.raises(ValidationError, match=r"sli.yaml \(stage level\)"):
        merge_sli_configs({"indicators": {}}, {"indicators": 3}, None)


@given(
    st.dictionaries(st.sampled_from("abcde"), st.sampled_from(["p1", "p2"]), max_size=5),
    st.dictionaries(st.sampled_from("abcde"), st.sampled_from(["s1", "s2"]), max_size=5),
    st.dictionaries(st.sampled_from("abcde"), st.sampled_from(["v1", "v2"]), max_size=5),
)
def test_merge_property_most_specific_defined_level(p: dict[str, str], s: dict[str, str], v: dict[str, str]) -> None:
    """For every indicator the merged query is the one of the most specific level defining it."""
    merged = merge_sli_configs({"indicators": p}, {"indicators": s}, {"indicators": v})
    assert set(merged.indicators) == set(p) | set(s) | set(v)
    for name, query in merged.indicators.items():
        assert query == v.get(name, s.get(name, p.get(name)))


def test_render_substitutes_every_placeholder() -> None:
    """The five reserved placeholders and filter keys are replaced; names match longest first."""
    template = 'sum(rate(x{job="$SERVICE-$PROJECT-$STAGE",d="$DEPLOYMENT",h="$handler",hx="$handler_x"}[$DURATION_SECONDS]))'
    out = render_query(template, values(handler="/carts", handler_x="y"))
    assert out == 'sum(rate(x{job="carts-sockshop-staging",d="canary",h="/carts",hx="y"}[600s]))'


def test_render_keeps_keptn_style_concatenation() -> None:
    """``$SERVICE_x`` with no ``SERVICE_x`` key is ``$SERVICE`` followed by ``_x`` (as in Keptn)."""
    assert render_query('m{job="$SERVICE_x"}', values()) == 'm{job="carts_x"}'


def test_render_rejects_unknown_placeholders() -> None:
    """An unknown ``$NAME`` is an error listing the known ones, never sent as is."""
    with pytest.raises(ValidationError, match=r"unknown placeholder \$NOPE .*\$SERVICE"):
        render_query('m{a="$NOPE"}', values())


def test_render_leaves_regex_anchors_alone() -> None:
    """A ``$`` that starts no name (a regex anchor) is kept."""
    assert render_query('m{h=~"^/carts$"}', values()) == 'm{h=~"^/carts$"}'


@pytest.mark.parametrize(
    "hostile",
    [
        '"} or vector(1) #',
        '\\"} or vector(1)',
        "x\n} or vector(1)",
        "a\\",
        "' or '",
        "ünïcødé ✓",
        "$SERVICE",
        "`",
    ],
)
def test_render_double_quoted_values_round_trip(hostile: str) -> None:
    """A hostile value inside a double-quoted string stays one literal that unquotes to itself."""
    out = render_query('sum(m{h="$h"}) + 1', values(h=hostile))
    match = re.fullmatch(r'sum\(m\{h=("(?:[^"\\]|\\.)*")\}\) \+ 1', out, re.S)
    assert match is not None, out
    assert unquote(match.group(1)) == hostile


def test_render_single_quoted_values_are_escaped() -> None:
    """Inside single quotes a quote in the value is escaped."""
    out = render_query("m{h='$h'}", values(h="a' or 'b"))
    assert out == "m{h='a\\' or \\'b'}"
    assert unquote(out[4:-1]) == "a' or 'b"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f"), max_size=40))
def test_render_property_value_never_escapes_its_string(value: str) -> None:
    """Any text either stays inside its double-quoted string (unquoting to itself) or is rejected."""
    try:
        out = render_query('m{h="$h"}', values(h=value))
    except ValidationError as err:
        assert "control characters" in str(err)
        return
    assert out.startswith('m{h="') and out.endswith('"}')
    assert unquote(out[4:-1]) == value


@pytest.mark.parametrize(
    ("template", "value", "problem"),
    [
        ("sum by ($h) (m)", "le) (m) or vector(1", "outside a string"),
        ("m[$h]", "5m] or vector(1)[5m", "outside a string"),
        ("m $h vector(1)", "or", "PromQL keyword"),
        ("m{h=`$h`}", "a` or vector(1) #", "backquote"),
        ('m{h="$h"}', "a\x00b", "control characters"),
        ("m # $h", "x\nor vector(1)", "in a comment"),
    ],
)
def test_render_rejects_values_that_could_change_the_shape(template: str, value: str, problem: str) -> None:
    """Outside strings, in raw strings and in comments a value must be harmless, else it is rejected."""
    with pytest.raises(ValidationError, match=re.escape(problem)):
        render_query(template, values(h=value))


def test_render_allows_plain_tokens_outside_strings() -> None:
    """Names, numbers and durations may be used outside strings."""
    out = render_query("sum by ($h) (rate(m[$w])) > $n", values(h="handler", w="5m30s", n="0.5"))
    assert out == "sum by (handler) (rate(m[5m30s])) > 0.5"


def test_render_does_not_substitute_inside_values() -> None:
    """A value containing a placeholder is not expanded again."""
    assert render_query('m{h="$h"}', values(h="$SERVICE")) == 'm{h="$SERVICE"}'


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("Sock Shop", "staging", "carts", "canary", "60s", {}), "project"),
        (("sockshop", 'st"}', "carts", "canary", "60s", {}), "stage"),
        (("sockshop", "staging", "carts", "blue", "60s", {}), "deployment"),
        (("sockshop", "staging", "carts", "canary", "60s", {"SERVICE": "x"}), "reserved"),
        (("sockshop", "staging", "carts", "canary", "60s", {"a-b": "x"}), "filter key"),
    ],
)
def test_placeholder_values_reject_bad_inputs(args: tuple, problem: str) -> None:
    """Names, deployment and filter keys are validated before any query is built."""
    with pytest.raises(ValidationError, match=problem):
        placeholder_values(*args)


@pytest.mark.parametrize(("start", "end", "expected"),
                         [(0, 600, "600s"), (0, 5.2, "5s"), (0, 5.99, "5s"), (0, 0.3, "1s"), (10, 10.0000001, "1s")])
def test_duration_placeholder_rounds_down(start: float, end: float, expected: str) -> None:
    """The window is whole seconds, rounded down (never reaching before the start), at least one."""
    assert duration_placeholder(start, end) == expected


def test_duration_placeholder_rejects_empty_window() -> None:
    """An end at or before the start is an error."""
    with pytest.raises(ValidationError, match="end after start"):
        duration_placeholder(10, 10)
