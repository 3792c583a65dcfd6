"""A ``FastStrEnum`` body makes the enumeration ``StrEnum`` makes of it: for generated bodies and
for every one in the code base, members, order, values, lookups, aliases, text forms, equality
with their strings, pickling and methods agree."""

from __future__ import annotations

import copy
import importlib
import pickle
import pkgutil
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sluice
from sluice.core import fastenum
from sluice.core.fastenum import FastStrEnum

NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True).filter(lambda n: not n.endswith("_"))
VALUES = st.text(st.sampled_from("ab-_.é "), max_size=4)


def observe(kind: type[StrEnum], probes: list[str], pickles: bool = True) -> dict[str, Any]:
    """Everything a caller can see of an enumeration (its type's name aside)."""
    def attempt(call: Any) -> Any:
        try:
            return "ok", call()
        except Exception as err:  # the kind of error and its message are what is compared
            return type(err).__name__, str(err)

    members = list(kind)
    return {
        "members": [(m.name, m.value, repr(m), str(m), f"{m}", format(m, ">5"), hash(m) == hash(m.value),
                     m == m.value, isinstance(m, str) and isinstance(m, kind)) for m in members],
        "map": {name: (m.name, m.value) for name, m in kind.__members__.items()},
        "len": len(kind),
        "by value": [attempt(lambda p=p: kind(p).name) for p in probes],
        "by name": [attempt(lambda p=p: kind[p].value) for p in probes],
        "pickled": [pickle.loads(pickle.dumps(m)) is m and copy.deepcopy(m) is m for m in members] if pickles else [],
        "shout": [attempt(m.shout) if hasattr(m, "shout") else None for m in members],
        "doc": kind.__doc__, "name": kind.__name__, "module": kind.__module__, "qualname": kind.__qualname__,
    }


def shout(self: StrEnum) -> str:
    return self.value.upper()


@settings(max_examples=200, deadline=None)
@given(body=st.lists(st.tuples(NAMES, VALUES), max_size=6), doc=st.one_of(st.none(), st.just("about")),
       method=st.booleans(), probes=st.lists(st.one_of(VALUES, NAMES), max_size=4))
def test_a_fast_body_makes_the_enumeration_strenum_makes(body: list[tuple[str, str]], doc: str | None,
                                                        method: bool, probes: list[str]) -> None:
    """Duplicate values are aliases; a repeated name is refused alike."""
    made: list[Any] = []
    for base in (StrEnum, FastStrEnum):
        namespace = {"__module__": __name__, "__qualname__": "Kind", **({"__doc__": doc} if doc else {}),
                     **({"shout": shout} if method else {})}
        try:
            names = dict(body)
            if len(names) != len(body):
                with pytest.raises(TypeError):
                    exec("class Kind(base):\n" + "".join(f"    {n} = {v!r}\n" for n, v in body), {"base": base})
                made.append("refused")
                continue
            made_kind = type(base)("Kind", (base,), _namespace(base, namespace, body))  # type: ignore[misc]
            made.append(observe(made_kind, [*probes, *(v for _, v in body)]))
        except Exception as err:
            made.append((type(err).__name__, str(err)))
    assert made[0] == made[1]


def _namespace(base: type, namespace: dict[str, Any], body: list[tuple[str, str]]) -> Any:
    """The class namespace the interpreter hands the metaclass for that body."""
    prepared = type(base).__prepare__("Kind", (base,))
    for key, value in {**namespace, **dict(body)}.items():
        prepared[key] = value
    return prepared


def test_every_fast_enumeration_of_the_code_base_is_the_strenum_of_its_members() -> None:
    for module in pkgutil.walk_packages(sluice.__path__, "sluice."):
        if module.name.endswith(".__main__"):
            continue  # an entry point: importing it runs it
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional dependency (an SLI provider's client) is absent here
            continue
    ours = [kind for kind in fastenum.MADE if kind.__module__.startswith("sluice.")]
    assert len(ours) >= 25
    for kind in ours:
        plain = StrEnum(kind.__name__, [(m.name, m.value) for m in kind])  # type: ignore[misc]  # pickles as here
        probes = [m.value for m in kind] + ["", "nope"]
        mine, theirs = observe(kind, probes), observe(plain, probes, pickles=False)
        assert all(mine["pickled"])
        for key in ("doc", "module", "qualname", "pickled"):
            mine.pop(key), theirs.pop(key)
        assert mine == theirs, kind
        assert not issubclass(kind, FastStrEnum)


def test_the_fast_path_is_the_one_taken() -> None:
    class Kind(FastStrEnum):
        ONE = "one"

    assert Kind.__bases__ == (StrEnum,) and fastenum.MADE[-1] is Kind


def test_without_simple_enum_a_body_is_made_as_any_strenum(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python without ``enum._simple_enum`` still gets the enumeration (by ``EnumType``)."""
    monkeypatch.setattr(fastenum, "_simple", None)

    class Kind(FastStrEnum):
        ONE = "one"
        TWO = "two"

    assert issubclass(Kind, FastStrEnum) and list(Kind) == [Kind.ONE, Kind.TWO] and Kind("two") is Kind.TWO
    with pytest.raises(TypeError):
        class Twice(FastStrEnum):
            ONE = "one"
            ONE = "uno"  # type: ignore[misc]  # refused: the point of the test
