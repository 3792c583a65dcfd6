"""The checks every state store applies before it writes, so all stores refuse the same records.

Kubernetes itself enforces these on ConfigMaps; the local and in-memory stores apply them too,
so a record that works on a laptop also works on a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from sluice.core.lexical import is_data_key, is_dns_subdomain, is_label_name
from sluice.errors import TooLargeError, ValidationError
from sluice.ports.state import MAX_RECORD_BYTES, Record

#: The Kubernetes API server refuses request bodies over 3 MiB. The kubernetes client sends JSON
#: with non-ASCII escaped (``é`` → ``\u00e9``, three times its UTF-8 size), so a record under
#: 1 MiB can still make a body over 3 MiB; keep a margin for metadata.
MAX_ENCODED_BYTES = 3 * 1024 * 1024 - 64 * 1024


def name_problem(name: object) -> str | None:
    """Problem with a record name (a DNS-1123 subdomain), or ``None``."""
    if not isinstance(name, str) or not name or len(name) > 253 or not is_dns_subdomain(name):
        return (
            f"name: expected a DNS-1123 subdomain (at most 253 lower-case letters, digits, '-' or '.'), "
            f"found {name!r}"
        )
    return None


def label_problems(labels: Mapping[str, str]) -> list[str]:
    """Problems with label keys (``[prefix/]name``) and values (at most 63 characters)."""
    problems: list[str] = []
    for key, value in labels.items():
        prefix, _, label = key.rpartition("/")
        if (
            not isinstance(key, str)
            or len(label) > 63
            or not is_label_name(label)
            or (prefix and name_problem(prefix) is not None)
        ):
            problems.append(f"label key {key!r}: expected '[dns-subdomain/]name' with a name of at most 63 characters")
        if not isinstance(value, str) or len(value) > 63 or (value and not is_label_name(value)):
            problems.append(
                f"label {key!r}: value {value!r} is not a label value "
                "(at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
            )
    return problems


def check_name(name: str) -> None:
    """Raise ``ValidationError`` when ``name`` cannot name a record."""
    problem = name_problem(name)
    if problem:
        raise ValidationError(f"record {name!r}", [problem])


def check_labels(labels: Mapping[str, str], subject: str) -> None:
    """Raise ``ValidationError`` when a label key or value is invalid."""
    problems = label_problems(labels)
    if problems:
        raise ValidationError(subject, problems)


def check_record(record: Record) -> None:
    """Raise ``ValidationError`` or ``TooLargeError`` (before anything is written)."""
    problems = []
    problem = name_problem(record.name)
    if problem:
        problems.append(problem)
    problems += label_problems(record.labels)
    for key, value in record.data.items():
        if not isinstance(key, str) or len(key) > 253 or not is_data_key(key):
            problems.append(f"data key {key!r}: expected at most 253 letters, digits, '-', '_' or '.'")
        if not isinstance(value, str):
            problems.append(f"data {key!r}: expected a string value, found {type(value).__name__}")
    if problems:
        raise ValidationError(f"record {record.name!r}", problems)
    size = record.size()
    if size > MAX_RECORD_BYTES:
        raise TooLargeError(
            f"record {record.name!r} is {size} bytes: a record holds at most {MAX_RECORD_BYTES} bytes "
            "(data keys and values, UTF-8); nothing was written"
        )
    if size * 6 > MAX_ENCODED_BYTES:  # escaping grows a byte to at most 6: only then measure
        encoded = len(json.dumps(dict(record.data)))
        if encoded > MAX_ENCODED_BYTES:
            raise TooLargeError(
                f"record {record.name!r} is {size} bytes but {encoded} bytes as escaped JSON: a request to the "
                f"Kubernetes API holds at most {MAX_ENCODED_BYTES} bytes of data (mostly non-ASCII or control "
                "characters escape to 6 bytes each); nothing was written"
            )


def matches(record_labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """True when ``record_labels`` include every pair of ``selector``."""
    return all(record_labels.get(key) == value for key, value in selector.items())


def stored(record: Record, version: str) -> Record:
    """``record`` as a store keeps and returns it: read-only data and labels, at ``version``."""
    return replace(
        record,
        data=MappingProxyType(dict(record.data)),
        labels=MappingProxyType(dict(record.labels)),
        resource_version=version,
    )
