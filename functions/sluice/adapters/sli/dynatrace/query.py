"""``dynatrace/sli.yaml`` queries: Metrics API v2 selectors with safe placeholders (pure).

A query is written as in Keptn's ``sli-config-dynatrace.yaml``::

    spec_version: "1.0"
    indicators:
      response_time_p95: "MV2;MicroSecond;metricSelector=builtin:service.response.time:merge(\\"dt.entity.service\\"):percentile(95)&entitySelector=type(SERVICE),tag(keptn_project:$PROJECT),tag(keptn_stage:$STAGE),tag(keptn_service:$SERVICE),tag(keptn_deployment:$DEPLOYMENT)"
      throughput: "metricSelector=builtin:service.requestCount.total:merge(\\"dt.entity.service\\"):sum&entitySelector=type(SERVICE),tag(keptn_service:$SERVICE)"

``metricSelector=`` is required, ``entitySelector=`` optional, joined by ``&``; nothing else may
be set (Sluice sets ``from``, ``to`` and ``resolution=Inf``). The optional ``MV2;<unit>;`` prefix
converts the answer as Keptn did: ``MicroSecond`` → milliseconds (÷ 1000), ``Byte`` → KiB (÷ 1024).

Placeholders ``$PROJECT``, ``$STAGE``, ``$SERVICE``, ``$DEPLOYMENT``, ``$DURATION_SECONDS`` and
``$<key>`` of each SLO filter are replaced longest name first; every value is escaped for
Dynatrace's selector syntax (``~`` before ``~ " ( ) , :``), so no value can close a ``tag(...)``
or add a condition. Control characters in a value, or an unknown ``$NAME``, are refused.

Parsed here, beside the provider (:mod:`sluice.adapters.sli.dynatrace`). Pure: standard library and
the core only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sluice.core.frozen import frozen
from sluice.core.validation import Problems, shown
from sluice.errors import ValidationError

__all__ = ["UNITS", "DynatraceQuery", "escape_value", "parse_query", "render_selector"]

#: ``MV2;<unit>;`` prefixes and the divisor that turns the answer into Sluice's unit.
UNITS: Mapping[str, float] = {"MicroSecond": 1000.0, "Byte": 1024.0}
_KEYS = ("metricSelector", "entitySelector")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL = '~"(),:'


@frozen
class DynatraceQuery:
    """One indicator's Metrics API v2 query (placeholders not yet replaced)."""

    metric_selector: str
    entity_selector: str = ""
    divisor: float = 1.0  # from the MV2 unit prefix


def parse_query(text: str, source: str) -> DynatraceQuery:
    """One query string of ``dynatrace/sli.yaml``; ``ValidationError(source, problems)``, every
    problem collected in the core's :class:`~sluice.core.validation.Problems` under the part it is
    about (``MV2 unit``, ``metricSelector``, ...)."""
    problems = Problems(source)
    rest = text.strip()
    divisor = 1.0
    if rest.startswith("MV2;"):
        _, unit, rest = [*rest.split(";", 2), "", ""][:3]
        if unit not in UNITS:
            problems.add("MV2 unit", f"expected one of {', '.join(UNITS)}, found {shown(unit)}")
        else:
            divisor = UNITS[unit]
    parts: dict[str, str] = {}
    if "?scope=" in rest and not rest.startswith(_KEYS):
        problems.add(shown(rest), "Keptn 0.6's Timeseries API v1 form 'metric?scope=…' is not supported; "
                                  "write metricSelector=…&entitySelector=… (docs/dynatrace.md)")
        problems.raise_if_any()
    for piece in rest.split("&"):
        key, eq, value = piece.partition("=")
        key = key.strip()
        if not eq:
            problems.add(shown(piece), "expected key=value (metricSelector=…, entitySelector=…)")
        elif key not in _KEYS:
            problems.add(shown(key), f"expected only {', '.join(_KEYS)} (Sluice sets from, to and resolution)")
        elif key in parts:
            problems.add(key, "given twice")
        elif not value.strip():
            problems.add(key, "empty")
        else:
            parts[key] = value.strip()
    if "metricSelector" not in parts and not problems:
        problems.add("metricSelector", "required, missing: metricSelector=… is missing")
    problems.raise_if_any()
    return DynatraceQuery(parts["metricSelector"], parts.get("entitySelector", ""), divisor)


def escape_value(value: str) -> str:
    """``value`` escaped for a Dynatrace selector (``~`` before each special character)."""
    return "".join(f"~{c}" if c in _SPECIAL else c for c in value)


def render_selector(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``$NAME`` replaced by ``values[NAME]`` escaped (longest names
    first); ``ValidationError`` for an unknown ``$NAME`` or a value with control characters."""
    names = sorted(values, key=len, reverse=True)
    problems: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(template):
        if template[i] == "$":
            name = next((k for k in names if template.startswith(k, i + 1)), None)
            if name is not None:
                value = values[name]
                if any(ord(c) < 32 or ord(c) == 127 for c in value):
                    problems.append(f"${name}: the value holds control characters")
                out.append(escape_value(value))
                i += 1 + len(name)
                continue
            ident = _IDENT.match(template, i + 1)
            if ident is not None:
                problems.append(f"unknown placeholder ${ident.group()} (known: {', '.join(f'${k}' for k in sorted(values))})")
        out.append(template[i])
        i += 1
    if problems:
        raise ValidationError("Dynatrace selector", problems)
    return "".join(out)
