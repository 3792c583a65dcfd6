"""Reading and validating the values that cross Sluice's edges (pure, standard library only).

One way to read a JSON-like document: a :class:`Reader` walks it, reads each field typed, and
records every problem under its field path (``stages[2].name``) in one :class:`Problems`, which
raises one ``ValidationError`` carrying them all. The ``*_problem`` validators return a problem
sentence (what, expected, found) or ``None``; a reader takes them as ``check``.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from sluice.core.lexical import is_dns_label
from sluice.errors import ValidationError

# The OCI / Docker reference grammar (distribution/reference), without normalisation.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Docker's [\w][\w.-]{0,127}, \w being ASCII in Go
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
#: Compiled on first use (``re`` keeps it): a function whose events name no image never compiles it.
_REFERENCE = (
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)

#: Namespace for mapping a non-UUID ``shkeptncontext`` to a UUID deterministically.
CONTEXT_NAMESPACE = uuid.UUID("6f1d2b4e-7a0c-5c8e-9b3d-2e4f6a8c0d1e")


def dns_label_problem(field: str, value: object) -> str | None:
    """Problem with a Kubernetes DNS-1123 label (project, stage, service names)."""
    if not isinstance(value, str) or not value:
        return f"{field}: expected a DNS-1123 label (lower-case letters, digits, '-'), found {value!r}"
    if len(value) > 63 or not is_dns_label(value):
        return (
            f"{field}: {value!r} is not a DNS-1123 label "
            "(at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit)"
        )
    return None


def image_problem(field: str, value: object) -> str | None:
    """Problem with an OCI image reference such as ``docker.io/keptnexamples/carts:0.10.2``."""
    if not isinstance(value, str) or not value:
        return f"{field}: expected an image reference like 'docker.io/org/name:tag', found {value!r}"
    if len(value) > 255 or not re.fullmatch(_REFERENCE, value):
        return f"{field}: {value!r} is not a valid OCI image reference (expected [registry/]name[:tag][@digest])"
    return None


def split_image(reference: str) -> tuple[str, str]:
    """Split ``registry/name:tag@digest`` into (name, tag); tag is ``''`` when absent."""
    match = re.fullmatch(_REFERENCE, reference)
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


def instant_key(value: object) -> tuple[int, float, str]:
    """Sort key of an RFC 3339 time as the instant it names (texts of different precisions or
    offsets do not sort as text: ``…:13Z`` is before ``…:13.410Z``); equal instants compare equal
    (a stable sort keeps their order); a time that does not parse sorts after those that do, as text."""
    text = str(value or "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return 1, 0.0, text
    return 0, (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp(), ""


def whole_number_problem(text: str, low: int, high: int) -> str | None:
    """None when ``text`` is a whole number from ``low`` to ``high`` in ASCII digits (not '²',
    which ``str.isdigit`` takes and ``int`` refuses), else what is wrong with it."""
    if text.isascii() and text.isdigit() and low <= int(text) <= high:
        return None
    return f"a whole number from {low} to {high}, found {text[:40]!r}"


def context_id(value: str) -> str:
    """A delivery context as a UUID: a UUID stays as it is (lower-cased), anything else maps
    deterministically to a name-based UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.uuid5(CONTEXT_NAMESPACE, value))


#: Compiled on first use (``re`` keeps it): only onboarding checks cluster names.
_DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
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
        if not re.fullmatch(_DNS_1035, service):
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


# --- the reader: one way to read a JSON-like document ----------------------------------------

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
Check = Callable[[str, object], "str | None"]

#: How much of a bad value a problem quotes (hostile input must not make the message huge).
_SHOWN = 80


def shown(value: object) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 1]}…"


class Problems:
    """Every problem of one input, each a sentence led by its field path (``spec.stages[2].name``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        text = f"{path}: {message}" if path else message
        if text not in self.messages:
            self.messages.append(text)

    def extend(self, messages: Iterable[str]) -> None:
        for message in messages:
            if message not in self.messages:
                self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_if_any(self) -> None:
        """``ValidationError`` naming the input and carrying every problem, when there is one."""
        if self.messages:
            raise ValidationError(self.source, list(self.messages))


class Reader:
    """A cursor on one node of a JSON-like document (dicts, lists, strings, numbers, booleans, null).

    Each read names a key of the node, returns a typed value, and on a wrong value records a
    problem under the key's full path and returns the default — so a parser reads every field and
    reports every problem at once, never only the first. ``null`` counts as absent.
    """

    def __init__(self, value: object, path: str = "", problems: Problems | None = None) -> None:
        self.value = value
        self.path = path
        self.problems = problems if problems is not None else Problems("input")

    # --- navigation --------------------------------------------------------------------------
    def where(self, key: str | int) -> str:
        """The path of ``key`` under this node (``a.b``, ``a[2]``)."""
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, message: str, key: str | int | None = None) -> None:
        """Record a problem of this node (or of its ``key``)."""
        self.problems.add(self.path if key is None else self.where(key), message)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, Mapping)

    def raw(self, key: str) -> object:
        """The raw value under ``key`` (``None`` when absent, or when this node is not a mapping)."""
        return self.value.get(key) if isinstance(self.value, Mapping) else None

    def has(self, key: str) -> bool:
        return self.raw(key) is not None

    def at(self, key: str) -> Reader:
        """The node under ``key``, as a reader (its value is ``None`` when absent)."""
        return Reader(self.raw(key), self.where(key), self.problems)

    def expect_mapping(self, what: str = "an object") -> bool:
        """True when this node is a mapping; a problem otherwise (absent counts as empty, no problem)."""
        if self.value is None or isinstance(self.value, Mapping):
            return True
        self.fail(f"expected {what}, found {type(self.value).__name__}")
        return False

    def mapping(self, key: str, what: str = "an object") -> Reader:
        """The mapping under ``key`` as a reader; a problem (and an empty node) when it is something else."""
        child = self.at(key)
        if not child.expect_mapping(what):
            child.value = None
        return child

    def items(self, key: str | None = None, *, required: bool = False, what: str = "a list") -> list[Reader]:
        """The entries of the list under ``key`` (or of this node), each a reader with its ``[i]`` path."""
        node = self if key is None else self.at(key)
        if node.value is None:
            if required:
                node.fail(f"required, missing: expected {what}")
            return []
        if not isinstance(node.value, list):
            node.fail(f"expected {what}, found {type(node.value).__name__}")
            return []
        return [Reader(v, node.where(i), self.problems) for i, v in enumerate(node.value)]

    def unknown_keys(self, known: Iterable[str]) -> None:
        """A problem for each key of this mapping that is not ``known``, under the key's path."""
        if isinstance(self.value, Mapping):
            valid = sorted(known)
            for key in self.value:
                if key not in valid:
                    self.fail(f"unknown field (valid: {', '.join(valid)})", key if isinstance(key, str) and key else shown(key))

    # --- typed reads of one key ----------------------------------------------------------------
    def _missing(self, key: str, required: bool, what: str) -> None:
        if required:
            self.fail(f"required, missing: expected {what}", key)

    def string(self, key: str, default: str = "", *, required: bool = False, check: Check | None = None) -> str:
        """A string; ``check`` (``validation.*_problem``) adds its own rule."""
        value = self.raw(key)
        if value is None:
            self._missing(key, required, "a string")
            return default
        if not isinstance(value, str):
            self.fail(f"expected a string, found {shown(value)}", key)
            return default
        if check is not None and (problem := check(self.where(key), value)):
            self.problems.add("", problem)
            return default
        return value

    def number(
        self, key: str, default: float | None = None, *, required: bool = False, finite: bool = False
    ) -> float | None:
        """A number (an int or a float, never a boolean), as a float; ``finite``: no NaN or infinity."""
        value = self.raw(key)
        if value is None:
            self._missing(key, required, "a number")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"expected a number, found {shown(value)}", key)
            return default
        try:
            number = float(value)
        except OverflowError:  # an int past a float's range
            number = math.inf
        if finite and not math.isfinite(number):
            self.fail(f"expected a finite number, found {shown(value)}", key)
            return default
        return number

    def integer(
        self, key: str, default: int | None = None, *, required: bool = False,
        minimum: int | None = None, maximum: int | None = None,
    ) -> int | None:
        """A whole number, within ``minimum``..``maximum`` when given."""
        value = self.raw(key)
        if value is None:
            self._missing(key, required, "a whole number")
            return default
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum
        ):
            self.fail(f"expected a whole number{_bounds(minimum, maximum)}, found {shown(value)}", key)
            return default
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(f"expected true or false, found {shown(value)}", key)
            return default
        return value

    def enum(self, key: str, kind: type[E], default: E | None = None, *, aliases: Mapping[str, str] | None = None) -> E | None:
        """A member of ``kind`` by value; absent → ``default`` (a problem when there is none)."""
        value = self.raw(key)
        if value is None:
            if default is None:
                self.fail(f"required, missing: expected one of {_choices(kind)}", key)
            return default
        if isinstance(value, str):
            try:
                return kind((aliases or {}).get(value, value))
            except ValueError:
                pass
        self.fail(f"expected one of {_choices(kind)}, found {shown(value)}", key)
        return default

    def strings(self, key: str) -> list[str]:
        """A list of strings (absent → empty)."""
        out: list[str] = []
        for item in self.items(key, what="a list of strings"):
            if isinstance(item.value, str):
                out.append(item.value)
            else:
                item.fail(f"expected a string, found {shown(item.value)}")
        return out

    def string_map(self, key: str) -> dict[str, str]:
        """An object of strings (absent → empty)."""
        node = self.mapping(key, "an object of strings")
        out: dict[str, str] = {}
        if isinstance(node.value, Mapping):
            for k, v in node.value.items():
                if isinstance(k, str) and isinstance(v, str):
                    out[k] = v
                else:
                    node.fail(f"expected an object of strings, found {shown(k)}: {shown(v)}")
        return out


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    return "" if maximum is None else f" <= {maximum}"


def _choices(kind: type[StrEnum]) -> str:
    return ", ".join(e.value or "none" for e in kind)


def read(value: object, source: str, build: Callable[[Reader], T]) -> T:
    """Run ``build`` on a reader of ``value``; ``ValidationError`` naming ``source`` with every
    problem it found, or its typed result when there was none."""
    problems = Problems(source)
    result = build(Reader(value, "", problems))
    problems.raise_if_any()
    return result


#: Compiled on first use (``re`` keeps it): only a document with a duration in it reads one.
_DURATION = r"(?a)^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$"  # (?a): ASCII digits only
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float | None:
    """Seconds from a number (seconds) or a string like ``500ms``, ``30s``, ``2m``, ``1h``; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = re.match(_DURATION, value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None
