"""The YAML/JSON edge of the quality gate: turn file text into core objects.

Every failure is a ``ValidationError`` whose subject is the file (``source``) and whose problems
name the line (for syntax errors) or the field, and say what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sluice.core.slo import Slo, parse_slo
from sluice.core.validation import Problems, Reader, shown
from sluice.errors import ValidationError

if TYPE_CHECKING:  # the scoring rules load with the first SLI values or evaluation read, not with an SLO
    from sluice.core.scoring import EvaluationResult, Measurement

__all__ = ["load_evaluation", "load_slo", "load_values", "values_from_document"]


def load_slo(text: str, source: str, parsed: object | None = None) -> Slo:
    """Parse an ``slo.yaml`` text (or build it from ``parsed``, the document stored parsed from
    that very text: then no YAML parser is loaded); ``ValidationError`` listing every problem otherwise."""
    if parsed is not None:
        return parse_slo(parsed, source)
    from sluice.services.yamldoc import load_document  # YAML: only for a text without its parsed form

    doc = load_document(text, source)
    if doc is None:
        raise ValidationError(source, ["the file is empty: expected an SLO with objectives and total_score"])
    return parse_slo(doc, source)


def load_values(text: str, source: str) -> list[Measurement]:
    """Parse an SLI-values file: a mapping of SLI name → number, or → ``{value, success, message,
    samples}`` (``samples``: requests behind the value, optional) or for an indicator that could
    not be measured. A list of ``{metric, value, success, message}``
    (Keptn's ``indicatorValues``) is accepted too."""
    from sluice.services.yamldoc import load_document

    return values_from_document(load_document(text, source), source)


_VALUE_KEYS = ("value", "success", "message", "samples")


def values_from_document(doc: object, source: str) -> list[Measurement]:
    """Build measurements from an already loaded SLI-values document (see :func:`load_values`)."""
    problems = Problems(source)
    out: list[Measurement | None] = []
    if isinstance(doc, list):
        for item in Reader(doc, "", problems).items():
            if not isinstance(item.value, Mapping) or not isinstance(item.value.get("metric"), str):
                item.fail("expected a mapping with metric, value, success and message")
                continue
            rest = {k: v for k, v in item.value.items() if k != "metric"}
            out.append(_measurement(item.value["metric"], rest, problems))
    elif isinstance(doc, Mapping):
        out.extend(_measurement(str(name), raw, problems) for name, raw in doc.items())
    else:
        problems.add("", "expected a mapping of SLI name to a number or to {value, success, message}")
    problems.raise_if_any()
    return [m for m in out if m is not None]


def _measurement(name: str, raw: object, problems: Problems) -> Measurement | None:
    """One SLI's value: a plain number, or ``{value, success, message, samples}``; problems are
    named ``SLI '<name>'`` (``SLI 'rt'.value``)."""
    from sluice.core.scoring import Measurement

    r = Reader(raw, f"SLI {name!r}", problems)
    if not isinstance(raw, Mapping):
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            number = _finite(raw, r)
            return None if number is None else Measurement(name, number)
        r.fail(f"expected a number or a mapping {{value, success, message}}, found {shown(raw)}")
        return None
    before = len(problems.messages)
    r.unknown_keys(_VALUE_KEYS)
    success = r.boolean("success", True)
    message = r.string("message")
    number = r.number("value", finite=True)
    samples = r.integer("samples", minimum=0)
    if success and number is None and len(problems.messages) == before:
        r.fail("missing: expected a number (or success: false with a message)", "value")
    if len(problems.messages) > before:
        return None
    return Measurement(name, number if success else None, success, message, samples)


def _finite(raw: float, r: Reader) -> float | None:
    try:
        number = float(raw)
    except OverflowError:  # an int past a float's range
        number = math.inf
    if not math.isfinite(number):
        r.fail(f"expected a finite number, found {shown(raw)}")
        return None
    return number


def load_evaluation(text: str, source: str) -> EvaluationResult:
    """Parse one stored evaluation (the JSON of ``sluice evaluate --output json``)."""
    from sluice.core.scoring import EvaluationResult
    from sluice.services.yamldoc import load_document

    doc = load_document(text, source)

    return EvaluationResult.from_dict(doc, source)
