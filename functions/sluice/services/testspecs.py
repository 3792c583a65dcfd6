"""The YAML edge of test specs: ``tests.yaml`` text → ``TestSpec``."""

from __future__ import annotations

from sluice.core.testspec import TestSpec, parse_test_spec
from sluice.errors import ValidationError
from sluice.services.yamldoc import load_document

__all__ = ["load_test_spec"]


def load_test_spec(text: str, source: str = "tests.yaml") -> TestSpec:
    """Parse ``tests.yaml`` text; ``ValidationError`` (subject ``source``) lists every problem.

    An empty file is an error (say nothing and get the default by not adding the file at all).
    """
    doc = load_document(text, source)
    if doc is None:
        raise ValidationError(
            source, ["the file is empty: expected a mapping with health, functional and/or performance"]
        )
    return parse_test_spec(doc, source)
