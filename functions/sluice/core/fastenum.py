"""``FastStrEnum``: a ``StrEnum`` that is cheaper to create.

A function's cold start creates the 15-20 enumerations its first event reads (event types,
phases, transitions, verdicts…). ``EnumType`` builds each member through ``_EnumDict`` and a
``__set_name__`` with checks for every corner of the enum protocol: some 60 µs for an
enumeration of three members, 100-150 µs for twelve — more than a ``@frozen`` class. The
standard library makes its own import-time enumerations (``re.RegexFlag``, ``http.HTTPStatus``,
…) with ``enum._simple_enum``, which builds the same class without those checks; a class that
derives from ``FastStrEnum`` is built that way, in half the time::

    class Verdict(FastStrEnum):
        PASS = "pass"
        FAIL = "fail"

What it makes is a plain ``StrEnum`` subclass (``FastStrEnum`` is not among its bases, so
``isinstance(member, FastStrEnum)`` is false: test for ``StrEnum``), with the same members,
values, order, lookup, ``repr``/``str``/``format``, pickling, methods and docstring as the same
body under ``StrEnum`` — ``tests/unit/core/test_fastenum.py`` holds every ``FastStrEnum`` of the
code base to that. Type checkers see an ordinary enumeration. What ``_simple_enum`` leaves out
are the checks of a malformed body (a member named ``mro``, a value of the wrong type…): a body
that only lists string members, as every one here does, never needed them. Where
``enum._simple_enum`` is missing (a later Python may drop it), the class is made by ``EnumType``
as any ``StrEnum``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from enum import EnumType, StrEnum
from typing import Any

__all__ = ["FastStrEnum"]

_simple: Callable[..., Callable[[type], type]] | None = getattr(enum, "_simple_enum", None)


class _FastType(EnumType):
    """Builds a direct subclass of ``FastStrEnum`` with ``enum._simple_enum``."""

    @classmethod
    def __prepare__(metacls, cls: str, bases: tuple[type, ...], **kwds: Any) -> Any:  # type: ignore[override]
        if _fast(bases, kwds):
            return _Body()  # the members are made at once below, not one by one as they are set
        return super().__prepare__(cls, bases, **kwds)

    def __new__(metacls, cls: str, bases: tuple[type, ...], classdict: Any, **kwds: Any) -> Any:
        if _fast(bases, kwds):
            made = _simple(StrEnum)(type(cls, (), classdict))  # type: ignore[misc]
            if "__doc__" not in classdict:
                made.__doc__ = None  # as EnumType leaves an undocumented one (_simple_enum writes one)
        else:
            made = super().__new__(metacls, cls, bases, classdict, **kwds)
        if _BASE is not None:
            MADE.append(made)
        return made


class _Body(dict[str, Any]):
    """A class body that refuses a name given twice, as ``EnumType``'s does (a method may be
    redefined; a member may not, nor may a name become one)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and not (key.startswith("__") and key.endswith("__")) and (
                not _descriptor(value) or not _descriptor(self[key])):
            raise TypeError(f"{key!r} already defined as {self[key]!r}")
        super().__setitem__(key, value)


def _descriptor(value: Any) -> bool:
    return hasattr(value, "__get__") or hasattr(value, "__set__") or hasattr(value, "__delete__")


def _fast(bases: tuple[type, ...], kwds: dict[str, Any]) -> bool:
    """A body declared directly on ``FastStrEnum`` (the fast path exists and nothing else is asked)."""
    return _simple is not None and _BASE is not None and bases == (_BASE,) and not kwds


_BASE: type | None = None
#: Every enumeration made from a ``FastStrEnum`` body, fast or not (for the tests that compare them).
MADE: list[type[StrEnum]] = []


class FastStrEnum(StrEnum, metaclass=_FastType):
    """Derive from this instead of ``StrEnum`` (same meaning, made in half the time)."""


_BASE = FastStrEnum
