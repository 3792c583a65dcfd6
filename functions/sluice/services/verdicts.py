"""How a stored evaluation's outcome is shown (CLI and web view alike): the verdict, and whether
the gate could not judge (inconclusive) and why. Reads the JSON record; never raises on old ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["INCONCLUSIVE", "is_inconclusive", "reasons", "verdict_label"]

#: The label an inconclusive evaluation carries beside its (Keptn) verdict.
INCONCLUSIVE = "inconclusive"


def is_inconclusive(doc: Mapping[str, Any] | None) -> bool:
    """Whether the stored evaluation says the gate could not judge (older records: no)."""
    return bool(doc and doc.get("inconclusive"))


def reasons(doc: Mapping[str, Any] | None) -> list[str]:
    """The sentences saying why it is inconclusive (empty when it is not)."""
    if not is_inconclusive(doc):
        return []
    assert doc is not None
    out = []
    for r in doc.get("inconclusive_reasons") or []:
        if isinstance(r, Mapping):
            out.append(str(r.get("message") or r.get("sli") or ""))
    return out or ["the gate could not judge"]


def verdict_label(doc: Mapping[str, Any] | None) -> str:
    """``PASS``, ``FAIL``, … and ``FAIL · INCONCLUSIVE`` when the gate could not judge."""
    if not doc:
        return "—"
    label = str(doc.get("result", "")).upper()
    return f"{label} · {INCONCLUSIVE.upper()}" if is_inconclusive(doc) else label
