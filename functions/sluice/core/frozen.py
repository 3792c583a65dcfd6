"""``@frozen``: a frozen dataclass that is cheap to create.

Every Sluice value type (an event, a ledger entry, a setting, a stored record) is a frozen
dataclass, and a function's cold start creates the 25-40 of them its first event uses. Python
3.11's ``@dataclass(frozen=True)`` writes six methods per class as source text and compiles each
one (``__init__``, ``__setattr__``, ``__delattr__``, ``__eq__``, ``__hash__``, ``__repr__``):
about 0.3 ms a class, the largest single cost of a cold start (a third of what ``deploy`` added
to a bare functions-framework hello). ``@frozen`` compiles one: ``__init__``.

- The fields are collected as ``dataclass(init=False, repr=False, eq=False)`` collects them —
  the same ``Field`` objects, bases, ``ClassVar`` pseudo-fields, ``__match_args__`` and
  ``__slots__`` — by ``_collect`` (``dataclasses`` itself matched two regular expressions per
  field, a third of what a class cost), so ``dataclasses.fields``, ``replace``, ``asdict``,
  ``astuple`` and ``__match_args__`` work as for any dataclass, and mypy checks such a class as a
  frozen dataclass (``typing.dataclass_transform``). A class ``_collect`` does not cover
  (``InitVar``, ``KW_ONLY``, an annotation that is not a string) is handed to ``dataclasses``.
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

import abc
import dataclasses
import inspect
import reprlib
import sys
import typing
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from operator import attrgetter
from types import CodeType, MemberDescriptorType
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
        made = _finish(_collect(target, kw_only, slots), slots)
        if not documented:  # as dataclass: the class's name and its __init__'s signature
            made.__doc__ = made.__name__ + str(inspect.signature(made)).replace(" -> None", "")
        return made

    return wrap if cls is None else wrap(cls)


#: ``dataclasses``' markers of a field's kind (stable since Python 3.7; without them every class
#: goes to ``dataclasses``), and the parameters a ``@frozen`` class reports, read off a probe
#: class once (``_DataclassParams`` is not public).
_FIELD = getattr(dataclasses, "_FIELD", None)
_CLASSVAR = getattr(dataclasses, "_FIELD_CLASSVAR", None)
#: (The probe has a docstring: without one, dataclass would read a signature with ``tokenize``.)
_PARAMS = dataclasses.dataclass(init=False, repr=False, eq=False)(
    type("_Probe", (), {"__doc__": "probe"})).__dataclass_params__  # type: ignore[attr-defined]


def _collect(cls: Any, kw_only: bool, slots: bool) -> Any:
    """What ``dataclass(init=False, repr=False, eq=False, kw_only=…, slots=…)`` does to ``cls``:
    its ``Field`` objects (with the bases' and the ``ClassVar`` pseudo-fields) in
    ``__dataclass_fields__``, ``__dataclass_params__``, ``__match_args__``, the defaults left on
    the class, and a new class with ``__slots__``. Written out, because ``dataclasses`` matches two
    regular expressions per field to find a ``ClassVar`` in a string annotation (a third of what
    ``@frozen`` cost a class). A class it would treat otherwise — an annotation that is not a
    string (this module's callers all postpone them), or a name in one that is ``InitVar`` or
    ``KW_ONLY`` — is handed to ``dataclasses`` whole."""
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (the class's own, as dataclasses reads them)
    module = sys.modules.get(cls.__module__)
    namespace = module.__dict__ if module is not None else {}
    kinds = [_kind(annotation, namespace) for annotation in annotations.values()]
    if _OTHER in kinds or _CLASSVAR is None or _FIELD is None:
        return dataclasses.dataclass(init=False, repr=False, eq=False, frozen=False, kw_only=kw_only, slots=slots)(cls)
    fields: dict[str, dataclasses.Field[Any]] = {}
    frozen_base = False
    for base in cls.__mro__[-1:0:-1]:
        inherited = getattr(base, "__dataclass_fields__", None)
        if inherited is not None:
            fields.update(inherited)
            frozen_base = frozen_base or base.__dataclass_params__.frozen
    own: list[dataclasses.Field[Any]] = []
    for (name, annotation), classvar in zip(annotations.items(), kinds, strict=True):
        default = getattr(cls, name, MISSING)
        if isinstance(default, dataclasses.Field):
            made = default
        else:
            if isinstance(default, MemberDescriptorType):  # a base's slot: no default
                default = MISSING
            made = dataclasses.field(default=default)  # type: ignore[arg-type]  # MISSING: none, as in dataclasses
        made.name, made.type = name, annotation
        made._field_type = _CLASSVAR if classvar is _CLASS else _FIELD  # type: ignore[attr-defined]
        if classvar is _CLASS:
            if made.default_factory is not MISSING:
                raise TypeError(f"field {name} cannot have a default factory")
            if made.kw_only is not MISSING:
                raise TypeError(f"field {name} is a ClassVar but specifies kw_only")
        else:
            if made.kw_only is MISSING:
                made.kw_only = kw_only
            if made.default.__class__.__hash__ is None:
                raise ValueError(f"mutable default {type(made.default)} for field {name} is not allowed: "
                                 "use default_factory")
        own.append(made)
    cls.__dataclass_params__ = _PARAMS
    for made in own:
        fields[made.name] = made
        if isinstance(cls.__dict__.get(made.name), dataclasses.Field):
            if made.default is MISSING:
                delattr(cls, made.name)
            else:
                setattr(cls, made.name, made.default)
    for name, value in cls.__dict__.items():
        if isinstance(value, dataclasses.Field) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    if frozen_base:
        raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
    cls.__dataclass_fields__ = fields
    if "__match_args__" not in cls.__dict__:
        cls.__match_args__ = tuple(f.name for f in fields.values() if f._field_type is _FIELD and not f.kw_only)  # type: ignore[attr-defined,misc]
    if slots:
        cls = _slotted(cls, tuple(f.name for f in fields.values() if f._field_type is _FIELD))  # type: ignore[attr-defined]
    abc.update_abstractmethods(cls)
    return cls


_PLAIN, _CLASS, _OTHER = "plain", "classvar", "other"


def _kind(annotation: object, namespace: dict[str, Any]) -> str:
    """How ``dataclasses`` reads a field's annotation: a ``ClassVar``, something this module
    leaves to it (not a string; ``InitVar``; ``KW_ONLY``), or a plain field. As there, what counts
    is the text's first name (``[module.]Name``, ``dataclasses._MODULE_IDENTIFIER_RE``) looked up in
    the class's module, the module part (if any) having to be ``typing`` (for ``ClassVar``) or
    ``dataclasses`` (for the others) there."""
    if not isinstance(annotation, str):
        return _OTHER
    module, name = _head(annotation)
    if not name:
        return _PLAIN
    found = namespace.get(name)
    via = namespace.get(module) if module else None
    if (not module or via is typing) and (
            found is typing.ClassVar or (type(found) is _GENERIC and getattr(found, "__origin__", None) is typing.ClassVar)):
        return _CLASS
    if (not module or via is dataclasses) and (
            found is dataclasses.InitVar or type(found) is dataclasses.InitVar or found is dataclasses.KW_ONLY):
        return _OTHER
    return _PLAIN


#: The type of a subscripted ``ClassVar`` (``typing._GenericAlias``).
_GENERIC = type(typing.ClassVar[int])


def _head(text: str) -> tuple[str, str]:
    """(module, name) as ``^(?:\\s*(\\w+)\\s*\\.)?\\s*(\\w+)`` reads them off ``text``: ``("", "")`` when
    it does not match, ``("", name)`` without a module part."""
    first, at = _word(text, _space(text, 0))
    if not first:
        return "", ""
    dot = _space(text, at)
    if dot < len(text) and text[dot] == ".":
        second, _ = _word(text, _space(text, dot + 1))
        if second:
            return first, second
    return "", first


def _space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _word(text: str, at: int) -> tuple[str, int]:
    """The run of word characters (``\\w``: alphanumeric or ``_``) from ``at``, and where it ends."""
    end = at
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[at:end], end


def _slotted(cls: Any, names: tuple[str, ...]) -> Any:
    """``cls`` made again with ``__slots__`` for its fields (those of no base), as ``dataclass(slots=True)``."""
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} already specifies __slots__")
    namespace = dict(cls.__dict__)
    inherited: set[str] = set()
    for base in cls.__mro__[1:-1]:
        declared = base.__dict__.get("__slots__")
        if isinstance(declared, str):
            inherited.add(declared)
        elif declared is not None:
            if hasattr(declared, "__next__"):
                raise TypeError(f"Slots of '{base.__name__}' cannot be determined")
            inherited.update(declared)
    namespace["__slots__"] = tuple(name for name in names if name not in inherited)
    for name in names:
        namespace.pop(name, None)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    qualname = getattr(cls, "__qualname__", None)
    made = type(cls)(cls.__name__, cls.__bases__, namespace)
    if qualname is not None:
        made.__qualname__ = qualname
    return made


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
