"""Event times (RFC 3339 texts, ``Z`` for UTC) compared and moved (pure, standard library only).

Shared by the ledger (``sluice.core.ledger`` re-exports them) and by the records' delivery index,
which needs only these and so does not load the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def before(a: str, b: str) -> bool:
    return parse_time(a) < parse_time(b)


def after(now: str, seconds: float) -> str:
    """``now`` plus ``seconds``, in the same RFC 3339 form."""
    moved = parse_time(now) + timedelta(seconds=seconds)
    return moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")
