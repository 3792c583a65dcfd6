"""A bare echo: decode nothing, reply the request's CloudEvent as it came (benchmark floor)."""

from __future__ import annotations

from typing import Any


def main(request: Any) -> Any:
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"}
    headers["ce-type"] = "sluice.bench.echoed"
    return request.get_data(), 200, headers
