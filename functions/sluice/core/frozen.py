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

The compiled ``__init__`` is cached like bytecode: compiling it was two thirds of what
``@frozen`` cost a class (some 0.28 ms of 0.44). Its code is kept, keyed by its source text,
beside the defining module's bytecode (``__pycache__/<module>.<tag>.inits``, marked with the
interpreter's bytecode magic number and the module source's mtime and size, as a ``.pyc`` is), so
a later process of the same code loads it instead of compiling it. Nothing is written where
bytecode is not (``PYTHONDONTWRITEBYTECODE``, a read-only tree): the image writes its caches at
build time, as it compiles its bytecode.

What differs: ``__dataclass_params__`` reports ``frozen=False``, so a ``@frozen`` class and a
``@dataclass(frozen=True)`` one cannot inherit from each other (``dataclasses`` refuses with a
TypeError); ``@frozen`` classes inherit from ``@frozen`` classes. ``InitVar`` and
``field(init=False)`` are refused. ``tests/unit/core/test_frozen.py`` holds ``@frozen`` to
``@dataclass(frozen=True)`` over generated class shapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import marshal
import os
import reprlib
import sys
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from operator import attrgetter
from types import CodeType
from typing import Any, TypeVar, dataclass_transform, overload

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


#: module name → its cache file (None: not cached) and the code it holds, by source text.
_CACHES: dict[str, tuple[str | None, dict[str, CodeType]]] = {}
#: How many ``__init__`` were compiled (not found in a cache) by this process.
compiled = 0


def _code(module: str, source: str) -> CodeType:
    """The compiled ``source`` of an ``__init__`` for a class of ``module``: from the module's
    cache when it holds it, else compiled (and written to the cache, where bytecode is written)."""
    global compiled
    path, codes = _CACHES.get(module) or _load(module)
    code = codes.get(source)
    if code is None:
        code = compile(source, "<@frozen __init__>", "exec")
        codes[source] = code
        compiled += 1
        if path is not None and not sys.dont_write_bytecode:
            _store(module, path, codes)
    return code


def _stamp(module: str) -> tuple[str, bytes] | None:
    """The cache file of ``module`` and what marks it current (as a ``.pyc``: the bytecode magic
    number, the source's mtime and size); None for a module without a source file."""
    origin = getattr(sys.modules.get(module), "__file__", None)
    if not origin or not origin.endswith(".py"):
        return None
    try:
        stat = os.stat(origin)
        path = importlib.util.cache_from_source(origin)
    except (OSError, NotImplementedError, ValueError):
        return None
    return path.removesuffix(".pyc") + ".inits", importlib.util.MAGIC_NUMBER + marshal.dumps((stat.st_mtime_ns, stat.st_size))


def _load(module: str) -> tuple[str | None, dict[str, CodeType]]:
    stamp = _stamp(module)
    codes: dict[str, CodeType] = {}
    if stamp is not None:
        path, mark = stamp
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            if data.startswith(mark):
                loaded = marshal.loads(data[len(mark):])
                if isinstance(loaded, dict):
                    codes = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, CodeType)}
        except (OSError, ValueError, EOFError, TypeError):
            codes = {}  # none yet, unreadable or torn: compiled again and rewritten
    _CACHES[module] = (stamp[0] if stamp else None), codes
    return _CACHES[module]


def _store(module: str, path: str, codes: dict[str, CodeType]) -> None:
    """Write the module's cache whole (to a temporary file renamed over it: a reader sees the old
    file or the new one); a tree where it cannot be written is left as it is."""
    stamp = _stamp(module)
    if stamp is None:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(stamp[1] + marshal.dumps(codes))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


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
