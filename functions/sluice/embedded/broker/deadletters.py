"""The dead-letter log: one JSON line per event whose delivery failed for good.

``<state-dir>/broker/dead-letters.jsonl``; each record holds ``time``, ``trigger``,
``subscriber``, ``status`` (the last HTTP status, 0 when there was none), ``reason``,
``attempts`` and the ``event`` in structured form (plus ``reply`` when the subscriber's reply
was the problem). ``sluice get dead-letters`` reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE = Path("broker") / "dead-letters.jsonl"


def path_for(state_dir: str | Path) -> Path:
    return Path(state_dir) / FILE


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record (one ``write`` of one line, so concurrent writers never interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=False, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """Every record, oldest first; a torn last line (a crash mid-write) is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
