"""``@frozen``: a frozen dataclass that is cheap to create.

Every Sluice value type (an event, a ledger entry, a setting, a stored record) is a frozen
dataclass, and a function's cold start creates the 25-40 of them its first event uses. Python
3.11's ``@dataclass(frozen=True)`` writes six methods per class as source text and compiles each
one (``__init__``, ``__setattr__``, ``__delattr__``, ``__eq__``, ``__hash__``, ``__repr__``):
about 0.3 ms a class, the largest single cost of a cold start (a third of what ``deploy`` added
to a bare functions-framework hello). ``@frozen`` compiles one: ``__init__``.

- ``dataclasses.dataclass`` still collects the fields (with ``init``, ``repr``, ``eq`` and
  ``frozen`` off), so ``dataclasses.fields``, ``replace``, ``asdict``, ``astuple`` and
  ``__match_args__`` work as for any dataclass, and mypy checks such a class as a frozen dataclass
  (``typing.dataclass_transform``).
- ``__init__`` is written and compiled here, in one piece, with the same signature, defaults,
  ``default_factory`` and ``kw_only`` handling and ``__post_init__`` call as a frozen
  dataclass's.
- The frozen ``__setattr__``/``__delattr__``, ``__eq__``, ``__hash__`` and ``__repr__`` are the
  same few functions for every class (closures and shared functions, nothing compiled). They
  behave as the dataclass's do: assigning or deleting a field raises ``FrozenInstanceError``;
  equality holds between instances of the same class with equal compared fields; the hash covers
  the fields ``hash``/``compare`` select; the repr shows the ``repr=True`` fields (a secret field
  declared ``field(repr=False)`` stays out of it) and ``...`` for a recursive reference.
- A method the class defines itself is kept, as ``dataclass`` keeps it.

The compiled ``__init__`` can be cached between processes: compiling it was two thirds of what
``@frozen`` cost a class (some 0.28 ms of 0.44). ``use_code_cache`` hands ``@frozen`` a cache
(looked up by module and source text); the functions' entry point installs one that keeps the
code beside each module's bytecode (``sluice.functions.inits``: files are I/O, kept out of the
core). Without one, every ``__init__`` is compiled, as before.

What differs: ``__dataclass_params__`` reports ``frozen=False``, so a ``@frozen`` class and a
``@dataclass(frozen=True)`` one cannot inherit from each other (``dataclasses`` refuses with a
TypeError); ``@frozen`` classes inherit from ``@frozen`` classes. ``InitVar`` and
``field(init=False)`` are refused. ``tests/unit/core/test_frozen.py`` holds ``@frozen`` to
``@dataclass(frozen=True)`` over generated class shapes.
"""

from __future__ import annotations

import dataclasses
import inspect
import reprlib
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from operator import attrgetter
from types import CodeType
from typing import Any, Protocol, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_Key = Callable[[Any], tuple[Any, ...]]

#: ``dataclasses``' marker of an ``InitVar`` pseudo-field (stable since Python 3.7).
_INITVAR = getattr(dataclasses, "_FIELD_INITVAR", None)


class _Factory:
    """The default of a parameter whose field has a ``default_factory``."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...


@overload
def frozen(*, kw_only: bool = False, slots: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen(cls: Any = None, /, *, kw_only: bool = False, slots: bool = False) -> Any:
    """``@dataclass(frozen=True)`` (with ``kw_only``/``slots`` as there), cheaper to create."""

    def wrap(target: Any) -> Any:
        documented = bool(target.__dict__.get("__doc__"))
        if not documented:  # dataclass would read the signature of object.__init__ (with tokenize) for it
            target.__doc__ = "(its signature, below)"
        made = dataclasses.dataclass(init=False, repr=False, eq=False, frozen=False, kw_only=kw_only,
                                     slots=slots)(target)
        made = _finish(made, slots)
        if not documented:  # as dataclass: the class's name and its __init__'s signature
            made.__doc__ = made.__name__ + str(inspect.signature(made)).replace(" -> None", "")
        return made

    return wrap if cls is None else wrap(cls)


def _finish(cls: Any, slots: bool) -> Any:
    fields = dataclasses.fields(cls)
    for pseudo in cls.__dataclass_fields__.values():
        if _INITVAR is not None and getattr(pseudo, "_field_type", None) is _INITVAR:
            raise TypeError(f"@frozen {cls.__qualname__}: InitVar {pseudo.name} is not supported")
    for f in fields:
        if not f.init:
            raise TypeError(f"@frozen {cls.__qualname__}: field {f.name} has init=False, which is not supported")
    # As ``dataclass``: a ``__hash__`` the class declares is kept (``None`` only counts when it is
    # Python's own, from an ``__eq__`` the class defines); else eq + frozen make one.
    declared = cls.__dict__.get("__hash__", MISSING)
    own_hash = not (declared is MISSING or (declared is None and "__eq__" in cls.__dict__))
    _own(cls, "__init__", _init(cls, fields))
    for method in _frozen(cls, frozenset(f.name for f in fields)):
        if method.__name__ in cls.__dict__:
            raise TypeError(f"Cannot overwrite attribute {method.__name__} in class {cls.__name__}")
        _own(cls, method.__name__, method)
    if slots:  # as dataclass(frozen=True, slots=True): pickle and copy restore through object.__setattr__
        _own(cls, "__getstate__", _getstate, shared=True)
        _own(cls, "__setstate__", _setstate, shared=True)
    cls._frozen_shown = tuple(f.name for f in fields if f.repr)
    _own(cls, "__repr__", _repr, shared=True)
    cls._frozen_compared = staticmethod(_key(tuple(f.name for f in fields if f.compare)))
    _own(cls, "__eq__", _eq, shared=True)
    if not own_hash:
        cls._frozen_hashed = staticmethod(_key(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))))
        cls.__hash__ = _hash
    return cls


def _own(cls: Any, name: str, method: Any, shared: bool = False) -> None:
    """Give the class that method unless it defines its own (a class's own is kept, as ``dataclass`` does)."""
    if name in cls.__dict__:
        return
    if not shared:  # made for this class: named after it in tracebacks
        method.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, method)


def _init(cls: Any, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """The frozen dataclass's ``__init__``, written and compiled in one piece."""
    me = "__dataclass_self__" if "self" in {f.name for f in fields} else "self"
    scope: dict[str, Any] = {"__builtins__": __builtins__, "__set": object.__setattr__, "__factory": _FACTORY}
    positional: list[str] = []
    keywords: list[str] = []
    body: list[str] = []
    defaulted = None
    for f in fields:
        if f.default_factory is not MISSING:
            scope[f"__make_{f.name}"] = f.default_factory
            param = f"{f.name}=__factory"
            body.append(f"  if {f.name} is __factory: {f.name} = __make_{f.name}()")
        elif f.default is not MISSING:
            scope[f"__default_{f.name}"] = f.default
            param = f"{f.name}=__default_{f.name}"
        else:
            param = f.name
            if not f.kw_only and defaulted is not None:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
        if f.kw_only:
            keywords.append(param)
        else:
            positional.append(param)
            if param != f.name:
                defaulted = f.name
        body.append(f"  __set({me}, {f.name!r}, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append(f"  {me}.__post_init__()")
    params = [me, *positional, *(["*", *keywords] if keywords else [])]
    source = f"def __init__({', '.join(params)}):\n" + "\n".join(body or ["  pass"]) + "\n"
    exec(_code(cls.__module__, source), scope)  # the text is made above from the class's field names
    init: Callable[..., None] = scope["__init__"]
    init.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    return init


class CodeCache(Protocol):
    """Where compiled ``__init__`` code is kept between processes, by module and source text
    (``sluice.functions.inits`` keeps it beside the module's bytecode)."""

    def get(self, module: str, source: str) -> CodeType | None: ...

    def put(self, module: str, source: str, code: CodeType) -> None: ...


#: The cache in use (``use_code_cache``); without one, every ``__init__`` is compiled.
_cache: CodeCache | None = None
#: How many ``__init__`` were compiled (not found in a cache) by this process.
compiled = 0


def use_code_cache(cache: CodeCache | None) -> None:
    """Keep compiled ``__init__`` code in ``cache`` from now on (None: compile every time)."""
    global _cache
    _cache = cache


def _code(module: str, source: str) -> CodeType:
    """The compiled ``source`` of an ``__init__`` for a class of ``module``: from the cache when
    it holds it, else compiled (and given to the cache)."""
    global compiled
    code = _cache.get(module, source) if _cache is not None else None
    if code is None:
        code = compile(source, "<@frozen __init__>", "exec")
        compiled += 1
        if _cache is not None:
            _cache.put(module, source, code)
    return code


def _frozen(cls: Any, names: frozenset[str]) -> tuple[Callable[..., None], Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state, strict=False):
        object.__setattr__(self, f.name, value)


def _key(names: tuple[str, ...]) -> _Key:
    """The tuple of those attributes (``attrgetter`` alone returns a bare value for one name)."""
    if len(names) > 1:
        get: _Key = attrgetter(*names)
        return get
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = self._frozen_compared
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self._frozen_hashed(self))


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._frozen_shown)
    return f"{self.__class__.__qualname__}({shown})"
