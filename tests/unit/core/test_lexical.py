"""The hand-written checks of ``sluice.core.lexical`` accept exactly what their patterns match
whole, in ASCII, over generated strings — and never a trailing newline or another script's digit,
which the patterns they replaced let through with ``re.match`` and ``$``."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sluice.core import lexical

#: Each check and the pattern it stands for (the oracle).
ORACLES: dict[str, tuple[Callable[[str], bool], str]] = {
    "extension name": (lexical.is_extension_name, r"[a-z0-9]{1,20}"),
    "dns label": (lexical.is_dns_label, r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"),
    "dns subdomain": (lexical.is_dns_subdomain, r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"),
    "label name": (lexical.is_label_name, r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"),
    "data key": (lexical.is_data_key, r"[-._a-zA-Z0-9]+"),
    "rfc3339": (lexical.is_rfc3339, r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"),
}

#: Characters that sit on the patterns' edges, and some that must never pass.
EDGY = st.sampled_from([*"aZz09-_.:+TtZ \n\t\r\x00٣²é/", "\u0130", "\u212a"])


def near(pattern: str) -> st.SearchStrategy[str]:
    """Strings the pattern matches, and the same with a character inserted, replaced, dropped or
    appended (most of them just outside its language)."""
    inside = st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True)

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        text = draw(inside)
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "replace", "drop", "append"]))
        char = draw(EDGY)
        if how == "insert":
            return text[:at] + char + text[at:]
        if how == "replace":
            return text[:at] + char + text[at + 1:]
        if how == "drop":
            return text[:at] + text[at + 1:]
        return text + char

    return st.one_of(inside, mutated(), st.text(EDGY, max_size=40))


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_each_check_accepts_exactly_what_its_pattern_matches_whole(name: str) -> None:
    check, pattern = ORACLES[name]
    oracle = re.compile(pattern, re.ASCII)

    @settings(max_examples=300, deadline=None)
    @given(near(pattern))
    @example("")
    def agree(text: str) -> None:
        assert check(text) is (oracle.fullmatch(text) is not None), repr(text)

    agree()


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_a_trailing_newline_or_a_foreign_digit_never_passes(name: str) -> None:
    check = ORACLES[name][0]
    good = {"rfc3339": "2026-01-31T12:00:00.5+01:00"}.get(name, "a1")
    assert check(good)
    assert not check(good + "\n")
    assert not check("٣" + good[1:]) and not check(good[:-1] + "٣")
