"""The runtime directory's JSON files, shared by the local backend and its router process:
read tolerantly (a missing or half-written file is empty), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: Written by the router: its pid and control URL.
ROUTER_INFO = "router.json"
#: Written by the router: each stage's port, upstreams and weight.
ROUTER_STAGES = "router-stages.json"


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
