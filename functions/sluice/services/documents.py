"""The YAML/JSON edge of the quality gate: turn file text into core objects.

Every failure is a ``ValidationError`` whose subject is the file (``source``) and whose problems
name the line (for syntax errors) or the field, and say what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import yaml

from sluice.core.scoring import EvaluationResult, Measurement
from sluice.core.slo import Slo, parse_slo
from sluice.errors import ValidationError

__all__ = ["load_document", "load_evaluation", "load_slo", "load_values", "values_from_document"]


#: PyYAML's safe loader, in C when libyaml is there (a 100-objective SLO parses ~10× faster).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

def load_document(text: str, source: str) -> object:
    """Parse YAML (a superset of JSON) or, for ``*.json`` sources, JSON.

    A syntax error becomes ``ValidationError`` naming the file, line and column.
    """
    if source.lower().endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValidationError(
                source, [f"line {err.lineno}, column {err.colno}: not valid JSON: {err.msg}"]
            ) from err
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        pass
    try:  # the pure-Python parser places errors where a person looks for them (libyaml often at the end)
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        context = getattr(err, "context", None)
        detail = f"{problem} ({context})" if context else str(problem)
        raise ValidationError(source, [f"{where}not valid YAML: {detail}"]) from err


def load_slo(text: str, source: str) -> Slo:
    """Parse an ``slo.yaml`` text; ``ValidationError`` listing every problem otherwise."""
    doc = load_document(text, source)
    if doc is None:
        raise ValidationError(source, ["the file is empty: expected an SLO with objectives and total_score"])
    return parse_slo(doc, source)


def load_values(text: str, source: str) -> list[Measurement]:
    """Parse an SLI-values file: a mapping of SLI name → number, or → ``{value, success, message,
    samples}`` (``samples``: requests behind the value, optional) or for an indicator that could
    not be measured. A list of ``{metric, value, success, message}``
    (Keptn's ``indicatorValues``) is accepted too."""
    return values_from_document(load_document(text, source), source)


_VALUE_KEYS = ("value", "success", "message", "samples")


def values_from_document(doc: object, source: str) -> list[Measurement]:
    """Build measurements from an already loaded SLI-values document (see :func:`load_values`)."""
    problems: list[str] = []
    out: list[Measurement] = []
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            if not isinstance(item, Mapping) or not isinstance(item.get("metric"), str):
                problems.append(f"[{i}]: expected a mapping with metric, value, success and message")
                continue
            rest = {k: v for k, v in item.items() if k != "metric"}
            m = _measurement(item["metric"], rest, problems)
            if m is not None:
                out.append(m)
    elif isinstance(doc, Mapping):
        for name, raw in doc.items():
            m = _measurement(str(name), raw, problems)
            if m is not None:
                out.append(m)
    else:
        problems.append("expected a mapping of SLI name to a number or to {value, success, message}")
    if problems:
        raise ValidationError(source, problems)
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _measurement(name: str, raw: object, problems: list[str]) -> Measurement | None:
    if _is_number(raw):
        plain = float(raw)  # type: ignore[arg-type]
        if not math.isfinite(plain):
            problems.append(f"SLI {name!r}: expected a finite number, found {raw!r}")
            return None
        return Measurement(name, plain)
    if not isinstance(raw, Mapping):
        problems.append(
            f"SLI {name!r}: expected a number or a mapping {{value, success, message}}, found {raw!r}"
        )
        return None
    before = len(problems)
    for key in raw:
        if key not in _VALUE_KEYS:
            problems.append(f"SLI {name!r}: unknown key {key!r}: expected value, success, message, samples")
    success = raw.get("success", True)
    if not isinstance(success, bool):
        problems.append(f"SLI {name!r} success: expected true or false, found {success!r}")
        success = False
    message = raw.get("message", "")
    if message is None:
        message = ""
    if not isinstance(message, str):
        problems.append(f"SLI {name!r} message: expected a string, found {message!r}")
        message = ""
    value = raw.get("value")
    number: float | None = None
    if value is not None:
        if not _is_number(value) or not math.isfinite(float(value)):
            problems.append(f"SLI {name!r} value: expected a finite number, found {value!r}")
        else:
            number = float(value)
    samples = raw.get("samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 0):
        problems.append(f"SLI {name!r} samples: expected a whole number >= 0 (requests behind the value), found {samples!r}")
        samples = None
    if success and number is None and len(problems) == before:
        problems.append(f"SLI {name!r} value: missing: expected a number (or success: false with a message)")
    if len(problems) > before:
        return None
    return Measurement(name, number if success else None, success, message, samples)


def load_evaluation(text: str, source: str) -> EvaluationResult:
    """Parse one stored evaluation (the JSON of ``sluice evaluate --output json``)."""
    doc = load_document(text, source)
    return EvaluationResult.from_dict(doc, source)
