"""Exact checks of the short names and stamps every function reads, written without ``re``.

Each check accepts exactly the strings its pattern (in the comment above it) matches *whole*, in
ASCII: no trailing newline (``re.match`` with ``$`` let ``"carts\\n"`` through) and no other
script's digits (``\\d`` in a ``str`` pattern also matches ``'٣'``). They replace patterns every
function compiled at import (a few hundred microseconds of a cold start, each);
``tests/unit/core/test_lexical.py`` holds each one to ``re.fullmatch`` of its pattern with
``re.ASCII`` over generated strings.
"""

from __future__ import annotations

__all__ = ["is_data_key", "is_dns_label", "is_dns_subdomain", "is_extension_name", "is_label_name", "is_rfc3339"]

_LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM = _LOWER_ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _only(text: str, allowed: str) -> bool:
    """``text`` is made of ``allowed`` characters only (``str.strip`` drops exactly those)."""
    return not text.strip(allowed)


# [a-z0-9]{1,20}
def is_extension_name(text: str) -> bool:
    """A CloudEvents attribute name: 1-20 lower-case ASCII letters or digits."""
    return 0 < len(text) <= 20 and _only(text, _LOWER_ALNUM)


# [a-z0-9]([-a-z0-9]*[a-z0-9])?
def is_dns_label(text: str) -> bool:
    """A DNS-1123 label's characters (lower-case letters, digits and '-', a letter or digit at
    each end); its length (at most 63) is the caller's to check."""
    return (bool(text) and _only(text, _LOWER_ALNUM + "-")
            and text[0] != "-" and text[-1] != "-")


# [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*
def is_dns_subdomain(text: str) -> bool:
    """DNS-1123 labels joined by '.' (the length limit is the caller's)."""
    return all(is_dns_label(part) for part in text.split("."))


# ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
def is_label_name(text: str) -> bool:
    """A Kubernetes label name or value: letters, digits, '-', '_' and '.', a letter or digit at
    each end (the length limit is the caller's)."""
    return (bool(text) and _only(text, _ALNUM + "-_.")
            and text[0] not in "-_." and text[-1] not in "-_.")


# [-._a-zA-Z0-9]+
def is_data_key(text: str) -> bool:
    """A ConfigMap data key's characters: letters, digits, '-', '_' and '.'."""
    return bool(text) and _only(text, _ALNUM + "-_.")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


# \d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})
def is_rfc3339(text: str) -> bool:
    """The shape of an RFC 3339 timestamp with a zone (``Z`` or ``±hh:mm``) and optional fraction
    (its field values are not checked here: ``2026-13-40T…`` has the shape)."""
    if len(text) < 20 or not text.isascii():
        return False
    if not (_digits(text[0:4]) and text[4] == "-" and _digits(text[5:7]) and text[7] == "-"
            and _digits(text[8:10]) and text[10] in "Tt" and _digits(text[11:13]) and text[13] == ":"
            and _digits(text[14:16]) and text[16] == ":" and _digits(text[17:19])):
        return False
    zone = text[19:]
    if zone[0] == ".":  # a fraction: one digit at least
        rest = zone[1:].lstrip("0123456789")
        if len(rest) == len(zone) - 1:
            return False
        zone = rest
    if zone in ("Z", "z"):
        return True
    return (len(zone) == 6 and zone[0] in "+-" and _digits(zone[1:3]) and zone[3] == ":"
            and _digits(zone[4:6]))
