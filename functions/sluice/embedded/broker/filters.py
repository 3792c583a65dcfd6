"""Trigger filters, as Knative Eventing evaluates them (pure: no I/O).

Two forms, read from a Trigger's ``spec``:

- ``filter.attributes``: every listed attribute (extensions included) equals the given value;
  an empty value matches any value, as Knative's ``TriggerAnyFilter`` does.
- ``filters``: a list of expressions that must all be true, each using exactly one of the
  SQL-free dialects ``exact``, ``prefix``, ``suffix`` (every key must match; keys and values
  non-empty), ``all`` and ``any`` (non-empty lists of expressions) and ``not`` (one
  expression). ``cesql`` is refused with a clear error. ``filters`` overrides ``filter``.

``compile_filter(spec)`` validates once and returns a predicate over an event's attributes
(a mapping of attribute name → string value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sluice.errors import ConfigurationError

Attributes = Mapping[str, str]
Predicate = Callable[[Attributes], bool]

DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not")


def _always(_: Attributes) -> bool:
    return True


def compile_filter(spec: Mapping[str, Any], where: str = "trigger") -> Predicate:
    """The predicate of a Trigger ``spec`` (``filters`` wins over ``filter``); no filter matches all."""
    filters = spec.get("filters")
    if filters is not None:
        if not isinstance(filters, list):
            raise ConfigurationError(f"{where}: spec.filters: expected a list, found {type(filters).__name__}")
        if not filters:
            return _always
        return _all([compile_expression(f, f"{where}: spec.filters[{i}]") for i, f in enumerate(filters)])
    legacy = spec.get("filter")
    if legacy is None:
        return _always
    if not isinstance(legacy, Mapping):
        raise ConfigurationError(f"{where}: spec.filter: expected an object, found {type(legacy).__name__}")
    attributes = legacy.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ConfigurationError(
            f"{where}: spec.filter.attributes: expected an object, found {type(attributes).__name__}"
        )
    wanted = {str(k): "" if v is None else str(v) for k, v in attributes.items()}
    return lambda attrs: all(v == "" or attrs.get(k) == v for k, v in wanted.items())


def compile_expression(expr: object, where: str) -> Predicate:
    """One ``filters`` entry: exactly one dialect."""
    if not isinstance(expr, Mapping):
        raise ConfigurationError(f"{where}: expected an object with one dialect, found {type(expr).__name__}")
    if "cesql" in expr:
        raise ConfigurationError(
            f"{where}: the cesql dialect is not supported by the local broker; use one of {', '.join(DIALECTS)}"
        )
    keys = list(expr)
    if len(keys) != 1 or keys[0] not in DIALECTS:
        found = ", ".join(map(str, keys)) or "none"
        raise ConfigurationError(f"{where}: expected exactly one dialect of {', '.join(DIALECTS)}, found {found}")
    dialect = keys[0]
    body = expr[dialect]
    if dialect in ("exact", "prefix", "suffix"):
        return _attribute_dialect(dialect, body, f"{where}.{dialect}")
    if dialect in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise ConfigurationError(f"{where}.{dialect}: expected a non-empty list of filter expressions")
        nested = [compile_expression(e, f"{where}.{dialect}[{i}]") for i, e in enumerate(body)]
        return _all(nested) if dialect == "all" else _any(nested)
    inner = compile_expression(body, f"{where}.not")
    return lambda attrs: not inner(attrs)


def _attribute_dialect(dialect: str, body: object, where: str) -> Predicate:
    if not isinstance(body, Mapping) or not body:
        raise ConfigurationError(f"{where}: expected a non-empty object of attribute: value")
    wanted: dict[str, str] = {}
    for key, value in body.items():
        if not key or value is None or str(value) == "":
            raise ConfigurationError(f"{where}: attribute names and values must not be empty, found {key!r}: {value!r}")
        wanted[str(key)] = str(value)

    def test(value: str | None, expected: str) -> bool:
        if value is None:
            return False
        if dialect == "exact":
            return value == expected
        if dialect == "prefix":
            return value.startswith(expected)
        return value.endswith(expected)

    return lambda attrs: all(test(attrs.get(k), v) for k, v in wanted.items())


def _all(predicates: Sequence[Predicate]) -> Predicate:
    return lambda attrs: all(p(attrs) for p in predicates)


def _any(predicates: Sequence[Predicate]) -> Predicate:
    return lambda attrs: any(p(attrs) for p in predicates)
