"""A bare echo: decode nothing, reply the request's CloudEvent as it came, typed as an echo."""

from __future__ import annotations

from typing import Any


def main(request: Any) -> Any:
    headers = {
        k.lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"
    }
    headers["ce-type"] = "sluice.bench.echoed"
    headers["ce-id"] = f"echo-{headers.get('ce-id', '')}"
    return request.get_data(), 200, headers
