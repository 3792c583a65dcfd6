"""``sli.yaml``: indicator name → query, merged across levels, and safe placeholder substitution.

An ``sli.yaml`` resource (Keptn's format) maps indicator names to provider queries (PromQL for
the ``prometheus`` provider)::

    spec_version: "1.0"
    indicators:
      response_time_p95: histogram_quantile(0.95, sum by (le) (rate(...{job="$SERVICE-$PROJECT-$STAGE"}[$DURATION_SECONDS])))

It may exist at the project, stage and service level; :func:`merge_sli_configs` merges the
three per indicator, the most specific level winning. A provider may own a top-level section
named after it (the ``cloudwatch`` provider's, parsed by that provider's module); the caller
names those ``sections`` and this generic part leaves them alone.

Placeholders in a query: ``$PROJECT``, ``$STAGE``, ``$SERVICE``, ``$DEPLOYMENT`` (canary |
primary | direct), ``$DURATION_SECONDS`` (the window in whole seconds rounded down, e.g. ``600s``) and
``$<key>`` for each SLO ``filter`` entry. :func:`render_query` substitutes them so that no value
can change the query's shape: it lexes the query and, per occurrence, escapes the value for the
string it sits in (double-quoted, single-quoted) or rejects it (a backquoted raw string cannot
hold a backquote; outside any string a value must be one token: a name, a number or a
duration, and not a PromQL keyword).

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import field

from sluice.core.frozen import frozen
from sluice.core.validation import Problems, Reader, shown
from sluice.errors import ValidationError

__all__ = [
    "DEPLOYMENTS",
    "INDICATOR_NAME",
    "LEVELS",
    "RESERVED_PLACEHOLDERS",
    "SliConfig",
    "duration_placeholder",
    "merge_sli_configs",
    "merge_sli_documents",
    "merge_sli_files",
    "parse_sli_config",
    "placeholder_values",
    "render_query",
]

#: The levels an sli.yaml can live at, least specific first.
LEVELS = ("project", "stage", "service")
#: Placeholders every query may use; an SLO filter key may not take one of these names.
RESERVED_PLACEHOLDERS = ("PROJECT", "STAGE", "SERVICE", "DEPLOYMENT", "DURATION_SECONDS")
#: The values ``$DEPLOYMENT`` can take.
DEPLOYMENTS = ("canary", "primary", "direct")
#: An indicator name, in any provider's section of sli.yaml.
INDICATOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")

_TOP_KEYS = ("spec_version", "indicators")  # and the providers' own sections, named by the caller
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One PromQL token that cannot change an expression's shape outside a string.
_BARE_TOKEN = re.compile(r"^(?:[A-Za-z_:][A-Za-z0-9_:]*|[0-9]+(?:\.[0-9]+)?|(?:[0-9]+(?:ms|[smhdwy]))+)$")
_KEYWORDS = frozenset({
    "and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "start", "end", "inf", "nan",
})
_CODE, _DQ, _SQ, _BQ, _COMMENT = "code", '"', "'", "`", "comment"
_CONTEXT_NAMES = {_CODE: "outside a string", _DQ: "in a double-quoted string",
                  _SQ: "in a single-quoted string", _BQ: "in a backquoted string", _COMMENT: "in a comment"}


@frozen
class SliConfig:
    """The indicators of one (merged) sli.yaml: name → query, and the level each came from."""

    indicators: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # name → "project" | "stage" | "service"
    spec_version: str = ""

    def query(self, name: str) -> str | None:
        return self.indicators.get(name)


def parse_sli_config(doc: object, source: str, level: str = "", sections: Collection[str] = ()) -> SliConfig:
    """Validate one loaded sli.yaml document (``None``, an empty file, is an empty config).

    Read through the core's :class:`~sluice.core.validation.Reader`: ``ValidationError(source,
    problems)`` lists every problem under its field path: not a mapping, unknown top-level
    keys (``sections``, the providers' own sections, are known and left to their provider),
    ``indicators`` not a mapping, an indicator name that is not a plain name, a query that is
    not a non-empty string.
    """
    if doc is None:
        return SliConfig()
    problems = Problems(source)
    top = Reader(doc, "", problems)
    if not top.is_mapping:
        top.fail(f"expected a mapping with spec_version and indicators, found {type(doc).__name__}")
        problems.raise_if_any()
    top.unknown_keys((*_TOP_KEYS, *sections))
    version = top.value.get("spec_version", "") if isinstance(top.value, Mapping) else ""
    if isinstance(version, bool) or not isinstance(version, str | int | float):
        top.fail(f"expected a string such as '1.0', found {type(version).__name__}", "spec_version")
        version = ""
    node = top.at("indicators")
    indicators: dict[str, str] = {}
    if node.value is None:
        node.fail("missing (expected a mapping of indicator name → query)")
    elif not isinstance(node.value, Mapping):
        node.fail(f"expected a mapping of indicator name → query, found {type(node.value).__name__}")
    else:
        for name, query in node.value.items():
            if not isinstance(name, str) or not INDICATOR_NAME.fullmatch(name):
                node.fail(f"{shown(name)} is not an indicator name (letters, digits, '_', '.', ':', '-')")
            elif not isinstance(query, str) or not query.strip():
                node.fail(f"expected a non-empty query string, found {shown(query)}", name)
            else:
                indicators[name] = query.strip()
    problems.raise_if_any()
    return SliConfig(indicators, dict.fromkeys(indicators, level), str(version))


def merge_sli_configs(
    project_doc: object, stage_doc: object, service_doc: object, sections: Collection[str] = ()
) -> SliConfig:
    """Merge the project, stage and service level sli.yaml documents (each may be ``None``).

    Per indicator the most specific level wins (service over stage over project). Every level
    is validated; the first invalid one raises ``ValidationError`` naming its level.
    """
    return merge_sli_documents([
        (level, f"sli.yaml ({level} level)", doc)
        for level, doc in zip(LEVELS, (project_doc, stage_doc, service_doc), strict=True)
    ], sections)


def merge_sli_documents(documents: Sequence[tuple[str, str, object]], sections: Collection[str] = ()) -> SliConfig:
    """Merge ``(level, source, document)`` triples given weakest first (e.g. the project's
    sli.yaml, the project's prometheus/sli.yaml, the stage's sli.yaml, ...): per indicator the
    last one defining it wins. Each is validated; the first invalid one raises naming its source."""
    indicators: dict[str, str] = {}
    sources: dict[str, str] = {}
    version = ""
    for level, source, doc in documents:
        config = parse_sli_config(doc, source, level, sections)
        indicators.update(config.indicators)
        sources.update(config.sources)
        version = config.spec_version or version
    return SliConfig(indicators, sources, version)


def merge_sli_files(
    levels: Callable[[str], Sequence[object]], uris: Sequence[str], sections: Collection[str] = ()
) -> SliConfig:
    """The indicators of the SLI files ``uris`` (weakest first: ``sli.yaml``, then a provider's
    own file) at the project, stage and service levels, merged per indicator: the most specific
    level wins, and within a level the later file. ``levels(uri)`` gives a file's loaded
    documents per level (``None`` where there is none). ``ValidationError`` names the file and level."""
    loaded = {uri: levels(uri) for uri in uris}
    return merge_sli_documents([
        (level, f"{uri} ({level} level)", loaded[uri][i])
        for i, level in enumerate(LEVELS) for uri in uris if loaded[uri][i] is not None
    ], sections)


def duration_placeholder(start_s: float, end_s: float) -> str:
    """``$DURATION_SECONDS`` for a window: whole seconds rounded down, at least 1 (``"600s"``).

    Down, so that a range ``[$DURATION_SECONDS]`` ending at the window's end never reaches
    before its start, where the build that ran before may have been measured: the candidates
    of one slot are one series to a scraper (same job, same instance), and a predecessor's
    sample in the range makes ``rate`` extrapolate only the buckets in which it had counts — a
    fast build after the 1 s-late one was judged at a p95 of 1,031 ms that way. A window of
    less than a second still gets ``1s``."""
    span = end_s - start_s
    if not math.isfinite(span) or span <= 0:
        raise ValidationError("window", [f"expected end after start, found a span of {span} s"])
    return f"{max(1, math.floor(span + 1e-6))}s"


def placeholder_values(
    project: str, stage: str, service: str, deployment: str, duration: str, filters: Mapping[str, str]
) -> dict[str, str]:
    """The placeholder → value table of one query; ``ValidationError`` for a hostile or malformed
    value: names that are not lowercase DNS labels, an unknown deployment, a filter key that is
    not a plain name or that takes a reserved placeholder's name."""
    problems: list[str] = []
    for what, value in (("project", project), ("stage", stage), ("service", service)):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            problems.append(f"{what}: expected a lowercase name (a-z, 0-9, '-'), found {value!r}")
    if deployment not in DEPLOYMENTS:
        problems.append(f"deployment: expected one of {', '.join(DEPLOYMENTS)}, found {deployment!r}")
    if not re.fullmatch(r"[1-9][0-9]*s", duration):
        problems.append(f"duration: expected whole seconds such as '600s', found {duration!r}")
    values = {"PROJECT": project, "STAGE": stage, "SERVICE": service, "DEPLOYMENT": deployment,
              "DURATION_SECONDS": duration}
    for key, value in filters.items():
        if not isinstance(key, str) or not _FILTER_KEY.fullmatch(key):
            problems.append(f"filter key {key!r}: expected a name of letters, digits and '_' (used as ${key})")
        elif key in RESERVED_PLACEHOLDERS:
            problems.append(f"filter key {key!r}: ${key} is reserved ({', '.join(RESERVED_PLACEHOLDERS)})")
        elif not isinstance(value, str):
            problems.append(f"filter {key}: expected a string value, found {type(value).__name__}")
        else:
            values[key] = value
    if problems:
        raise ValidationError("SLI query placeholders", problems)
    return values


def render_query(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every ``$NAME`` replaced by ``values[NAME]``, safely for its context.

    Names are matched longest first, as plain text (``$SERVICE_x`` with no ``SERVICE_x`` value is
    ``$SERVICE`` then ``_x``), so Keptn's sli.yaml files work unchanged. A ``$`` followed by a name
    that is no placeholder is an error, as is a value that would change the query's shape.
    Values are never themselves scanned for placeholders. ``ValidationError`` lists every problem.
    """
    names = sorted(values, key=len, reverse=True)
    out: list[str] = []
    problems: list[str] = []
    state = _CODE
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "$":
            name = next((k for k in names if template.startswith(k, i + 1)), None)
            if name is not None:
                out.append(_encode(name, values[name], state, problems))
                i += 1 + len(name)
                continue
            ident = _IDENT.match(template, i + 1)
            if ident is not None:
                known = ", ".join(f"${k}" for k in sorted(values))
                problems.append(f"unknown placeholder ${ident.group()} (known: {known})")
        out.append(c)
        i += 1
        if state == _CODE:
            if c in (_DQ, _SQ, _BQ):
                state = c
            elif c == "#":
                state = _COMMENT
        elif state in (_DQ, _SQ):
            if c == "\\" and i < n:
                out.append(template[i])
                i += 1
            elif c == state:
                state = _CODE
        elif state == _BQ:
            if c == _BQ:
                state = _CODE
        elif c == "\n":  # the end of a comment
            state = _CODE
    if problems:
        raise ValidationError("SLI query", list(dict.fromkeys(problems)))
    return "".join(out)


def _encode(name: str, value: str, state: str, problems: list[str]) -> str:
    """``value`` escaped for ``state``, or a problem appended (and an empty string returned)."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    where = _CONTEXT_NAMES[state]
    bad = [ch for ch in value if (ord(ch) < 0x20 and ch not in "\n\r\t") or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF]
    if bad:
        problems.append(f"${name} = {shown!r}: control characters are not allowed in a query value")
        return ""
    if state in (_DQ, _SQ):
        escaped = value.replace("\\", "\\\\").replace(state, "\\" + state)
        return escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if state == _BQ:
        if "`" in value or any(ch in value for ch in "\n\r"):
            problems.append(f"${name} = {shown!r}: a value {where} cannot contain a backquote or a line break")
            return ""
        return value
    if not _BARE_TOKEN.fullmatch(value) or value.lower() in _KEYWORDS:
        problems.append(
            f"${name} = {shown!r}: {where} a value must be one name, number or duration (and not a PromQL "
            "keyword); put the placeholder inside quotes to use any text"
        )
        return ""
    return value
