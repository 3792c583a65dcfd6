"""bridge: the web view and its JSON API (a plain HTTP function, not a CloudEvent consumer).

It signs approvals on behalf of authenticated users only (a bearer token from the secret
``sluice-bridge-token``, or the identity header of an auth proxy when
``SLUICE_BRIDGE_IDENTITY_HEADER`` names one); see docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice.bridge.app import Bridge
from sluice.bridge.guard import Auth
from sluice.errors import ConfigurationError, status_for
from sluice.functions.runtime import Runtime, runtime_for

if TYPE_CHECKING:
    from sluice.core.events import Event

#: The secret holding the bridge's bearer token (values ``token`` and ``user``).
TOKEN_SECRET = "sluice-bridge-token"


def bridge_for(runtime: Runtime, base: str) -> Bridge:
    def token() -> tuple[str, str] | None:
        values = runtime.secrets.get(TOKEN_SECRET)
        return (values.get("token", ""), values.get("user", "")) if values else None

    def sign(event: Event, user: str) -> Event:
        from sluice.services.approvals import sign_approval  # cold start: only an approval is signed

        return sign_approval(event, runtime.secrets, user)

    def publish(event: Event) -> None:
        runtime.publish(event)  # cold start: the publisher (urllib.request) is built by the first approval

    auth = Auth(token=token, identity_header=runtime.settings.bridge_identity_header)
    return Bridge(runtime.records, publish, base=base, auth=auth, sign=sign)


#: Most bytes read of an uploaded file (the what-if replay's SLO); the bridge refuses more.
UPLOAD_LIMIT = 64 * 1024


def main(request: Any) -> Any:
    try:
        runtime = runtime_for("bridge")  # the first request reads the settings
    except ConfigurationError as err:
        return str(err), status_for(err), {"Content-Type": "text/plain; charset=utf-8"}
    prefix = request.headers.get("X-Forwarded-Prefix", "")  # set by the local broker's /bridge proxy
    from werkzeug.exceptions import HTTPException

    form: dict[str, str] = {}
    if request.method == "POST":
        try:
            form = {k: v for k, v in request.form.items() if isinstance(v, str)}
            for name, upload in request.files.items():  # the what-if replay's SLO file, as text
                if upload.filename:
                    form[name] = upload.read(UPLOAD_LIMIT + 1).decode("utf-8", "replace")
        except (HTTPException, ValueError):  # too large or unreadable: answered as missing fields
            form = {}
    body, status, headers = bridge_for(runtime, prefix).handle(
        request.method, request.path, dict(request.args), form, dict(request.headers)
    )
    return body, status, headers

