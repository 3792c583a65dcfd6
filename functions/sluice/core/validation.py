"""Validators for the values that cross Sluice's edges (pure, standard library only).

Each returns a problem sentence (what, expected, found) or ``None`` when the value is valid,
so a caller can collect every problem of one input and report them together.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# The OCI / Docker reference grammar (distribution/reference), without normalisation.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)

#: Namespace for mapping a non-UUID ``shkeptncontext`` to a UUID deterministically.
CONTEXT_NAMESPACE = uuid.UUID("6f1d2b4e-7a0c-5c8e-9b3d-2e4f6a8c0d1e")


def dns_label_problem(field: str, value: object) -> str | None:
    """Problem with a Kubernetes DNS-1123 label (project, stage, service names)."""
    if not isinstance(value, str) or not value:
        return f"{field}: expected a DNS-1123 label (lower-case letters, digits, '-'), found {value!r}"
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        return (
            f"{field}: {value!r} is not a DNS-1123 label "
            "(at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit)"
        )
    return None


def image_problem(field: str, value: object) -> str | None:
    """Problem with an OCI image reference such as ``docker.io/keptnexamples/carts:0.10.2``."""
    if not isinstance(value, str) or not value:
        return f"{field}: expected an image reference like 'docker.io/org/name:tag', found {value!r}"
    if len(value) > 255 or not _REFERENCE.fullmatch(value):
        return f"{field}: {value!r} is not a valid OCI image reference (expected [registry/]name[:tag][@digest])"
    return None


def split_image(reference: str) -> tuple[str, str]:
    """Split ``registry/name:tag@digest`` into (name, tag); tag is ``''`` when absent."""
    match = _REFERENCE.fullmatch(reference)
    if not match:
        return reference, ""
    return match.group("name"), match.group("tag") or ""


def join_image(name: str, tag: str) -> str:
    """``name:tag`` — the inverse of ``split_image`` (a reference that already has the tag, or a
    digest, is returned as it is)."""
    if not tag or name.endswith(f":{tag}") or "@" in name:
        return name
    return f"{name}:{tag}"


def rfc3339_problem(field: str, value: object) -> str | None:
    """Problem with an RFC 3339 timestamp (a zone offset or ``Z`` is required)."""
    if not isinstance(value, str):
        return f"{field}: expected an RFC 3339 time like '2026-01-31T12:00:00Z', found {value!r}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"{field}: {value!r} is not an RFC 3339 time (expected e.g. '2026-01-31T12:00:00Z')"
    if parsed.tzinfo is None:
        return f"{field}: {value!r} has no time zone (expected 'Z' or an offset like '+01:00')"
    return None


def parse_rfc3339(value: str) -> datetime:
    """Parse a timestamp already checked by ``rfc3339_problem``."""
    return datetime.fromisoformat(value)


def context_id(value: str) -> str:
    """A delivery context as a UUID: a UUID stays as it is (lower-cased), anything else maps
    deterministically to a name-based UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.uuid5(CONTEXT_NAMESPACE, value))
