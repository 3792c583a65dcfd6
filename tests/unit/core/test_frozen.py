"""``@frozen`` behaves as ``@dataclass(frozen=True)`` over generated class shapes.

Each example builds the same class shape twice, once with each decorator, and holds every
observable behaviour of the two to each other: whether the class can be made at all, the
signature, construction (and its errors), fields, equality, hashing, repr (secret fields kept
out), ``replace``, ``asdict``, copies, ``__match_args__``, the ``__post_init__`` call and the
frozen ``__setattr__``/``__delattr__``. With the functions' cache installed
(``sluice.functions.inits``), the compiled ``__init__`` is kept beside the module's bytecode for a
later process, and only there.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import typing
from dataclasses import MISSING, FrozenInstanceError, InitVar, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core import frozen as frozen_module
from sluice.core.frozen import frozen

# The names the generated annotations use, looked up here (the classes' module) as dataclasses does
ClassVar = typing.ClassVar

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"

NAMES = ["a", "b", "c", "d", "e", "self", "f"]
VALUES = st.one_of(st.integers(-3, 3), st.sampled_from(["", "x", "y"]), st.none(),
                   st.tuples(st.integers(0, 2)), st.lists(st.integers(0, 2), max_size=2))
DEFAULTS = st.one_of(st.integers(-3, 3), st.sampled_from(["", "x"]), st.none(), st.tuples(st.integers(0, 2)))


#: Annotations as a module with postponed annotations holds them: plain ones, and the spellings
#: of ``ClassVar`` dataclasses recognises (or not: ``dataclasses.ClassVar``, nested, a space).
ANNOTATIONS = ["Any", " Any", "typing.Any", "list[ClassVar[int]]", "ClassVar[Any]", "typing.ClassVar[Any]",
               " ClassVar [int]", "ClassVar", "typing . ClassVar[int]", "dataclasses.ClassVar[int]", "os.ClassVar"]


@st.composite
def field_specs(draw: Any, name: str) -> dict[str, Any]:
    # "only": an annotation alone; "plain": a bare class attribute as default; "mutable": a list as
    # one; "bare": field() unannotated
    kind = draw(st.sampled_from(["required", "default", "factory", "plain", "only"] * 4 + ["mutable", "bare"]))
    annotation = draw(st.sampled_from(ANNOTATIONS)) if draw(st.integers(0, 3)) == 0 else "Any"
    spec: dict[str, Any] = {"name": name, "kind": kind, "annotation": annotation,
                            "compare": draw(st.booleans()), "hash": draw(st.sampled_from([None, True, False])),
                            "repr": draw(st.booleans()), "kw_only": draw(st.sampled_from([MISSING, True, False]))}
    if kind in ("default", "plain"):
        spec["default"] = draw(DEFAULTS)
    if kind == "factory":
        spec["factory"] = draw(st.sampled_from([list, dict, tuple, str]))
    return spec


@st.composite
def shapes(draw: Any, base: bool = True) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    return {"fields": [draw(field_specs(n)) for n in names], "kw_only": draw(st.booleans()),
            "slots": draw(st.booleans()), "post_init": draw(st.booleans()),
            "base": draw(st.one_of(st.none(), shapes(base=False))) if base else None}


def build(shape: dict[str, Any], decorate: Any, calls: list[str]) -> type:
    """A fresh class of that shape (named alike for both decorators, so reprs compare), on a base
    of the shape's ``base`` made with the same decorator."""
    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": __name__, "__qualname__": "Shape"}
    for spec in shape["fields"]:
        options: dict[str, Any] = {"compare": spec["compare"], "hash": spec["hash"], "repr": spec["repr"],
                                   "kw_only": spec["kw_only"]}
        if spec["kind"] == "default":
            options["default"] = spec["default"]
        if spec["kind"] == "factory":
            options["default_factory"] = spec["factory"]
        if spec["kind"] != "bare":
            namespace["__annotations__"][spec["name"]] = spec["annotation"]
        if spec["kind"] != "only":
            namespace[spec["name"]] = {"plain": spec.get("default"), "mutable": []}.get(spec["kind"], field(**options))
    if shape["post_init"]:
        namespace["__post_init__"] = lambda self: calls.append(type(self).__module__)
    bases = (build(shape["base"], decorate, calls),) if shape.get("base") else ()
    return decorate(shape)(type("Shape", bases, namespace))


def outcome(make: Any) -> tuple[str, Any]:
    try:
        return "ok", make()
    except Exception as err:  # the kind of error and its message are what is compared
        return type(err).__name__, str(err)


def pair(shape: dict[str, Any]) -> tuple[tuple[str, Any], tuple[str, Any], list[str], list[str]]:
    seen_a: list[str] = []
    seen_b: list[str] = []
    a = outcome(lambda: build(shape, lambda s: dataclass(frozen=True, kw_only=s["kw_only"], slots=s["slots"]), seen_a))
    b = outcome(lambda: build(shape, lambda s: frozen(kw_only=s["kw_only"], slots=s["slots"]), seen_b))
    return a, b, seen_a, seen_b


def same(x: Any, y: Any) -> None:
    """Two instances, one of each class, agree on everything observable."""
    assert dataclasses.astuple(x) == dataclasses.astuple(y)
    assert dataclasses.asdict(x) == dataclasses.asdict(y)
    assert repr(x) == repr(y)
    hx, hy = outcome(lambda: hash(x)), outcome(lambda: hash(y))
    assert hx == hy


@settings(max_examples=300, deadline=None)
@given(shape=shapes(), data=st.data())
def test_frozen_behaves_as_a_frozen_dataclass(shape: dict[str, Any], data: st.DataObject) -> None:
    (kind_a, cls_a), (kind_b, cls_b), calls_a, calls_b = pair(shape)
    assert kind_a == kind_b, (cls_a, cls_b)
    if kind_a != "ok":
        assert cls_a == cls_b  # the same error message
        return
    assert str(inspect.signature(cls_a)) == str(inspect.signature(cls_b))
    assert cls_a.__doc__ == cls_b.__doc__
    assert [f.name for f in dataclasses.fields(cls_a)] == [f.name for f in dataclasses.fields(cls_b)]
    assert cls_a.__match_args__ == cls_b.__match_args__
    assert [f.name for f in dataclasses.fields(cls_b) if f.repr] == list(cls_b._frozen_shown)

    params = list(inspect.signature(cls_a).parameters.values())
    instances = []
    for _ in range(2):  # two instances of each, to compare equality across them
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for p in params:
            if p.default is not inspect.Parameter.empty and data.draw(st.booleans()):
                continue  # left to its default
            value = data.draw(VALUES)
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and not kwargs and data.draw(st.booleans()):
                args.append(value)
            else:
                kwargs[p.name] = value
        if data.draw(st.booleans()):
            kwargs[data.draw(st.sampled_from(["zz", *NAMES]))] = 0  # perhaps unknown, perhaps a duplicate
        made_a = outcome(lambda args=args, kwargs=kwargs: cls_a(*args, **kwargs))
        made_b = outcome(lambda args=args, kwargs=kwargs: cls_b(*args, **kwargs))
        assert made_a[0] == made_b[0], (made_a, made_b)
        assert calls_a == [__name__] * len(calls_a) and len(calls_a) == len(calls_b)
        if made_a[0] != "ok":
            assert made_a[1].replace("Shape.__init__()", "__init__()") == made_b[1].replace(
                "Shape.__init__()", "__init__()")
            return
        same(made_a[1], made_b[1])
        instances.append((made_a[1], made_b[1]))

    (a1, b1), (a2, b2) = instances
    assert (a1 == a2) == (b1 == b2)
    assert (a1 != a2) == (b1 != b2)
    assert b1 == b1 and b1 != object() and b1 != a1  # another class is never equal

    # Python 3.11's frozen slots dataclass fails on an attribute that is not a field (its
    # __setattr__ names the class before slots replaced it: a TypeError from super()); @frozen
    # refuses it as any other frozen instance does.
    for name in [*(f.name for f in dataclasses.fields(cls_a)), "zz"]:
        for obj in (a1, b1) if name != "zz" else (b1,):
            with pytest.raises(FrozenInstanceError):
                setattr(obj, name, 1)
            with pytest.raises(FrozenInstanceError):
                delattr(obj, name)

    changes = {p.name: data.draw(VALUES) for p in params if data.draw(st.booleans())}
    assert outcome(lambda: dataclasses.astuple(dataclasses.replace(a1, **changes))) == outcome(
        lambda: dataclasses.astuple(dataclasses.replace(b1, **changes)))
    for made in (copy.copy(b1), copy.deepcopy(b1)):
        assert made == b1 and type(made) is cls_b
        with pytest.raises(FrozenInstanceError):
            made.zz = 1


@frozen
class Credentials:
    user: str
    password: str = field(default="", repr=False)


def test_a_secret_field_stays_out_of_the_repr() -> None:
    shown = repr(Credentials("ops", "hunter2"))
    assert shown == "Credentials(user='ops')" and "hunter2" not in shown


@frozen
class Node:
    name: str
    children: list[Any] = field(default_factory=list, compare=False, hash=False)


def test_a_recursive_repr_shows_an_ellipsis() -> None:
    node = Node("root")
    node.children.append(node)
    assert repr(node) == "Node(name='root', children=[...])"
    assert node == Node("root") and hash(node) == hash(Node("root", [1]))


def test_methods_a_class_defines_are_kept() -> None:
    @frozen
    class Own:
        x: int

        def __eq__(self, other: object) -> bool:
            return True

        def __repr__(self) -> str:
            return "own"

    assert Own(1) == Own(2) and repr(Own(1)) == "own"
    assert hash(Own(1)) == hash((1,))  # as dataclass: an own __eq__ alone still gets the fields' hash

    @frozen
    class OwnHash:
        x: int

        def __hash__(self) -> int:
            return 7

    assert hash(OwnHash(1)) == 7 and OwnHash(1) == OwnHash(1)
    with pytest.raises(TypeError, match="Cannot overwrite attribute __setattr__"):
        @frozen
        class Settable:
            x: int

            def __setattr__(self, name: str, value: Any) -> None:
                pass


def test_initvar_and_init_false_are_refused() -> None:
    with pytest.raises(TypeError, match="InitVar"):
        @frozen
        class WithInitVar:
            x: InitVar[int]

    with pytest.raises(TypeError, match="init=False"):
        @frozen
        class WithoutInit:
            x: int = field(default=0, init=False)


def test_frozen_classes_inherit_their_fields() -> None:
    @frozen
    class Base:
        x: int
        y: str = "y"

    @frozen(kw_only=True)
    class Child(Base):
        z: tuple[int, ...] = ()

    child = Child(1, z=(2,))
    assert dataclasses.astuple(child) == (1, "y", (2,))
    assert child != Base(1) and child == Child(1, "y", z=(2,))
    assert repr(child).endswith(".<locals>.Child(x=1, y='y', z=(2,))")
    assert dataclasses.replace(child, y="w").y == "w"
    with pytest.raises(FrozenInstanceError):
        child.x = 2  # type: ignore[misc]


# --- the compiled __init__ cached beside the module's bytecode -------------------------------

MODULE = '''
from __future__ import annotations
from dataclasses import field
from sluice.core.frozen import frozen

@frozen
class Plain:
    a: int
    b: str = "b"

@frozen(kw_only=True)
class Keywords:
    items: list[int] = field(default_factory=list)
    name: str

@frozen
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")
'''

PROBE = '''
import json, os, sluice.core.frozen as frozen
if os.environ.get("CACHE"):
    from sluice.functions.inits import install
    install()
import shapes
one = shapes.Plain(1)
kw = shapes.Keywords(name="k")
try:
    shapes.Checked(-1)
    refused = False
except ValueError:
    refused = True
print(json.dumps({"compiled": frozen.compiled, "seen": [repr(one), repr(kw), kw.items is not shapes.Keywords(name="k").items,
                  refused, one == shapes.Plain(1, "b")]}))
'''

SEEN = ["Plain(a=1, b='b')", "Keywords(items=[], name='k')", True, True, True]


def _probe(folder: Path, *, write: bool = True, cache: bool = True) -> int:
    """Import the module in a fresh process (with the functions' cache installed, as main.py does,
    unless ``cache`` is false); how many ``__init__`` it compiled (what it built is checked)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(FUNCTIONS)])
    env["CACHE"] = "1" if cache else ""
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    assert answer["seen"] == SEEN
    return int(answer["compiled"])


def test_a_later_process_loads_the_compiled_init_instead_of_compiling_it(tmp_path: Path) -> None:
    module = tmp_path / "shapes.py"
    module.write_text(MODULE)
    cache = tmp_path / "__pycache__" / f"shapes.{sys.implementation.cache_tag}.inits"
    assert _probe(tmp_path, cache=False) == 3 and not cache.exists()  # the core alone caches nothing
    assert _probe(tmp_path, write=False) == 3 and not cache.exists()  # nothing written where bytecode is not
    assert _probe(tmp_path) == 3 and cache.exists()
    assert _probe(tmp_path) == 0  # every __init__ from the cache, each behaving as compiled
    module.write_text(MODULE + "\n# edited\n")  # another source: the cache is stale
    assert _probe(tmp_path) == 3
    assert _probe(tmp_path) == 0
    cache.write_bytes(cache.read_bytes()[:-7])  # torn
    assert _probe(tmp_path) == 3
    cache.write_bytes(b"not a cache")
    assert _probe(tmp_path) == 3
    assert _probe(tmp_path) == 0


def test_an_unwritable_cache_only_means_compiling(tmp_path: Path) -> None:
    (tmp_path / "shapes.py").write_text(MODULE)
    (tmp_path / "__pycache__").write_text("a file where the cache folder would be")
    assert _probe(tmp_path) == 3
    assert _probe(tmp_path) == 3


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from([*"ab_1 .[]\t\n", "é", "٣", "\u00a0", "\x1c"]), max_size=12))
def test_an_annotation_is_read_as_dataclasses_reads_it(text: str) -> None:
    """``[module.]Name`` as ``dataclasses._MODULE_IDENTIFIER_RE`` reads it off an annotation's text."""
    found = re.match(r"^(?:\s*(\w+)\s*\.)?\s*(\w+)", text)
    assert frozen_module._head(text) == ((found.group(1) or "", found.group(2)) if found else ("", ""))
