"""Validators for the values that cross Sluice's edges (pure, standard library only).

Each returns a problem sentence (what, expected, found) or ``None`` when the value is valid,
so a caller can collect every problem of one input and report them together.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
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


_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: The longest suffix a backend adds to a service name for one of its objects (``-primary``).
_SLOT_SUFFIXES = ("-primary", "-canary")
#: Knative names each revision ``<service>-00001`` and each tagged route ``<tag>-<service>``.
_REVISION_SUFFIX = "-00001"
_TAG_PREFIXES = ("primary-", "canary-")


def cluster_name_problems(project: str, stages: Iterable[str] = (), services: Iterable[str] = ()) -> list[str]:
    """Problems with the Kubernetes objects a cluster would get for these names, each naming its limit.

    Each part may be a valid DNS-1123 label while an object made from it is not: the namespace
    ``<project>-<stage>`` is a DNS-1123 label (at most 63); Services ``<svc>``, ``<svc>-primary``,
    ``<svc>-canary`` are DNS-1035 labels (a letter first, at most 63: Kubernetes before 1.34 and
    Knative's route names require it); Knative's revision ``<svc>-00001`` and tag host label
    ``canary-<svc>`` are at most 63 too.
    """
    problems = []
    for stage in stages:
        namespace = f"{project}-{stage}"
        if len(namespace) > 63:
            problems.append(
                f"namespace {namespace!r} (<project>-<stage>) has {len(namespace)} characters: a namespace name "
                "is a DNS-1123 label of at most 63 characters; shorten the project or stage name"
            )
    for service in services:
        if not _DNS_1035.fullmatch(service):
            problems.append(
                f"service {service!r}: its Kubernetes Service names must be DNS-1035 labels (start with a letter, "
                "then lower-case letters, digits or '-')"
            )
        longest = max(
            [f"{service}{s}" for s in _SLOT_SUFFIXES]
            + [f"{service}{_REVISION_SUFFIX}"]
            + [f"{t}{service}" for t in _TAG_PREFIXES],
            key=len,
        )
        if len(longest) > 63:
            problems.append(
                f"service {service!r}: the derived name {longest!r} has {len(longest)} characters, past the limit of "
                f"63 for a DNS label (Services <svc>-primary/-canary, Knative tag hosts primary-/canary-<svc>); "
                f"use at most {63 - max(len(x) for x in (*_SLOT_SUFFIXES, *_TAG_PREFIXES))} characters"
            )
    return problems
