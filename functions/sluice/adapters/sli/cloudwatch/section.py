"""The ``cloudwatch`` section of ``sli.yaml``: indicators as CloudWatch metric queries (pure).

::

    spec_version: "1.0"
    cloudwatch:
      region: us-east-1                  # optional; default: the AWS default region
      indicators:
        response_time_p95:
          namespace: Sockshop            # required
          metric: ResponseTime           # required (CloudWatch MetricName)
          dimensions:                    # optional; values may use placeholders
            Service: $SERVICE
            Stage: $STAGE
            Deployment: $DEPLOYMENT
          statistic: p95                 # Average (default) | Sum | Minimum | Maximum | SampleCount | pNN[.N]
          period: 60                     # optional, seconds (1, 5, 10, 30 or a multiple of 60);
                                         # default: the test window rounded up to a multiple of 60
          unit: Milliseconds             # optional CloudWatch unit
          aggregate: average             # optional: how datapoints of the window combine
                                         # (average | sum | min | max | last); default by statistic

Placeholders: ``$PROJECT``, ``$STAGE``, ``$SERVICE``, ``$DEPLOYMENT``, ``$DURATION_SECONDS`` and
``$<key>`` of each SLO filter. Levels (project, stage, service) merge per indicator, the most
specific winning; ``region`` too.

Parsed here, beside the provider (:mod:`sluice.adapters.sli.cloudwatch`), and nowhere else: the
generic part of sli.yaml (:mod:`sluice.core.sli_config`) leaves this section alone. Pure:
standard library and the core only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field

from sluice.core.frozen import frozen
from sluice.core.sli_config import INDICATOR_NAME, LEVELS
from sluice.core.validation import Problems, Reader, shown
from sluice.errors import ValidationError

__all__ = ["AGGREGATES", "STATISTICS", "CloudWatchConfig", "MetricQuery", "combine", "merge_sections", "parse_section", "render"]

STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
AGGREGATES = ("average", "sum", "min", "max", "last")
_PERCENTILE = re.compile(r"^p(?:[0-9]{1,2}(?:\.[0-9]{1,2})?|100)$")
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_KEYS = ("namespace", "metric", "dimensions", "statistic", "period", "unit", "aggregate")
_DEFAULT_AGGREGATE = {"Sum": "sum", "SampleCount": "sum", "Minimum": "min", "Maximum": "max"}


@frozen
class MetricQuery:
    """One indicator as a CloudWatch metric statistic over the test window."""

    namespace: str
    metric: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    statistic: str = "Average"
    period: int = 0  # 0: the window rounded up to a multiple of 60
    unit: str = ""
    aggregate: str = ""  # '' → by statistic (sum for Sum/SampleCount, min, max, else average)

    @property
    def combine(self) -> str:
        return self.aggregate or _DEFAULT_AGGREGATE.get(self.statistic, "average")


@frozen
class CloudWatchConfig:
    region: str = ""
    indicators: Mapping[str, MetricQuery] = field(default_factory=dict)


def _query(node: Reader) -> MetricQuery | None:
    """One indicator's metric query, read under its path (``cloudwatch.indicators.<name>``)."""
    raw = node.value
    if not isinstance(raw, Mapping):
        node.fail(f"expected a mapping with namespace, metric, …, found {type(raw).__name__}")
        return None
    before = len(node.problems.messages)
    node.unknown_keys(_KEYS)
    for key in ("namespace", "metric"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            node.fail(f"required, expected a non-empty string, found {shown(raw.get(key))}", key)
    dims = raw.get("dimensions") or {}
    if not isinstance(dims, Mapping) or any(not isinstance(k, str) or not isinstance(v, str | int) for k, v in dims.items()):
        node.fail(f"expected a mapping of name → value, found {shown(dims)}", "dimensions")
        dims = {}
    if len(dims) > 30:
        node.fail(f"CloudWatch allows at most 30, found {len(dims)}", "dimensions")
    statistic = str(raw.get("statistic") or "Average")
    if statistic not in STATISTICS and not _PERCENTILE.fullmatch(statistic):
        node.fail(f"expected one of {', '.join(STATISTICS)} or a percentile like p95, found {shown(statistic)}",
                  "statistic")
    period = raw.get("period", 0)
    if isinstance(period, bool) or not isinstance(period, int) or period < 0 or (
            period and period not in (1, 5, 10, 30) and period % 60):
        node.fail(f"expected seconds: 1, 5, 10, 30 or a multiple of 60, found {shown(period)}", "period")
    aggregate = str(raw.get("aggregate") or "")
    if aggregate and aggregate not in AGGREGATES:
        node.fail(f"expected one of {', '.join(AGGREGATES)}, found {shown(aggregate)}", "aggregate")
    if len(node.problems.messages) > before:
        return None
    return MetricQuery(str(raw["namespace"]).strip(), str(raw["metric"]).strip(),
                       {str(k): str(v) for k, v in dims.items()}, statistic, int(period),
                       str(raw.get("unit") or ""), aggregate)


def parse_section(doc: object, source: str) -> CloudWatchConfig:
    """The ``cloudwatch`` section of one loaded sli.yaml (absent → empty), read through the core's
    :class:`~sluice.core.validation.Reader`; ValidationError lists every problem under its field path."""
    if doc is None:
        return CloudWatchConfig()
    problems = Problems(source)
    top = Reader(doc, "", problems)
    if not top.is_mapping:
        top.fail(f"expected a mapping, found {type(doc).__name__}")
        problems.raise_if_any()
    section = top.at("cloudwatch")
    if section.value is None:
        return CloudWatchConfig()
    if not isinstance(section.value, Mapping):
        section.fail(f"expected a mapping with region and indicators, found {type(section.value).__name__}")
        problems.raise_if_any()
        return CloudWatchConfig()
    section.unknown_keys(("region", "indicators"))
    region = section.value.get("region") or ""
    if not isinstance(region, str) or (region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", region)):
        section.fail(f"expected an AWS region like 'us-east-1', found {shown(region)}", "region")
        region = ""
    node = section.at("indicators")
    raw = node.value or {}
    indicators: dict[str, MetricQuery] = {}
    if not isinstance(raw, Mapping):
        node.fail(f"expected a mapping of indicator → metric query, found {type(raw).__name__}")
        raw = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not INDICATOR_NAME.fullmatch(name):
            node.fail(f"{shown(name)} is not an indicator name")
            continue
        query = _query(Reader(spec, node.where(name), problems))
        if query is not None:
            indicators[name] = query
    problems.raise_if_any()
    return CloudWatchConfig(region, indicators)


def merge_sections(project_doc: object, stage_doc: object, service_doc: object) -> CloudWatchConfig:
    """The three levels' sections merged per indicator (and region), the most specific winning."""
    region = ""
    indicators: dict[str, MetricQuery] = {}
    for level, doc in zip(LEVELS, (project_doc, stage_doc, service_doc), strict=True):
        config = parse_section(doc, f"sli.yaml ({level} level)")
        region = config.region or region
        indicators.update(config.indicators)
    return CloudWatchConfig(region, indicators)


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with ``$NAME`` placeholders replaced (longest name first); ValidationError
    for a placeholder that has no value. Values are not scanned again."""
    names = sorted(values, key=len, reverse=True)
    out: list[str] = []
    i = 0
    while i < len(template):
        if template[i] == "$":
            name = next((k for k in names if template.startswith(k, i + 1)), None)
            if name is not None:
                out.append(values[name])
                i += 1 + len(name)
                continue
            m = _PLACEHOLDER.match(template, i)
            if m:
                raise ValidationError("dimension value", [f"unknown placeholder ${m.group(1)} "
                                                          f"(known: {', '.join('$' + k for k in sorted(values))})"])
        out.append(template[i])
        i += 1
    return "".join(out)


def combine(values: list[float], how: str) -> float:
    """Datapoints of the window (oldest first) → one value."""
    if how == "sum":
        return sum(values)
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    if how == "last":
        return values[-1]
    return sum(values) / len(values)
