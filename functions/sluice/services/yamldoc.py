"""YAML or JSON file text to a document, with errors that name the file, line and column.

Apart from ``sluice.services.documents`` (SLOs, SLI values, evaluations) so that reading a
shipyard, an ``sli.yaml`` or a test spec loads neither the SLO nor the scoring rules.
"""

from __future__ import annotations

import json

import yaml

from sluice.errors import ValidationError

__all__ = ["load_document"]

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
