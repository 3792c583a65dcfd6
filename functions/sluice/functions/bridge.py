"""bridge: the web view and its JSON API (a plain HTTP function, not a CloudEvent consumer)."""

from __future__ import annotations

from typing import Any

from sluice.adapters.publish import post_event
from sluice.bridge.app import Bridge
from sluice.functions.runtime import runtime_for


def main(request: Any) -> Any:
    runtime = runtime_for("bridge")
    prefix = request.headers.get("X-Forwarded-Prefix", "")  # set by the local broker's /bridge proxy
    bridge = Bridge(runtime.records, lambda event: post_event(runtime.settings.sink, event), base=prefix)
    body, status, headers = bridge.handle(
        request.method, request.path, dict(request.args), dict(request.form) if request.method == "POST" else {}
    )
    return body, status, headers
