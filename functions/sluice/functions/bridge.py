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
    body, status, headers = bridge.handle(request.method, request.path, dict(request.args), _form(request))
    return body, status, headers


#: Most bytes read of an uploaded file (the what-if replay's SLO); the bridge refuses more.
UPLOAD_LIMIT = 64 * 1024


def _form(request: Any) -> dict[str, str]:
    """The POSTed fields; an uploaded file becomes a field holding its text (at most one byte past the limit)."""
    if request.method != "POST":
        return {}
    form = dict(request.form)
    for name, upload in request.files.items():
        if upload.filename:
            form[name] = upload.read(UPLOAD_LIMIT + 1).decode("utf-8", "replace")
    return form
