"""What stands between a browser and the web view's actions.

- **Who is asking** (``Auth.identify``): a bearer token (the secret ``sluice-bridge-token``,
  values ``token`` and ``user``) or, when configured, a trusted identity header set by an auth
  proxy in front of the bridge (oauth2-proxy: ``X-Auth-Request-User`` / ``X-Forwarded-User``).
  The web view signs an approval on the user's behalf only for such a user.
- **Where the request comes from** (``origin_problem``): every POST whose ``Origin`` (or, without
  it, ``Referer``) is another site is refused; so is a POST with neither unless it carries a bearer
  token (a script, not a browser).
- **CSRF** (double-submit token): every page sets a random ``sluice_csrf`` cookie (HttpOnly,
  SameSite=Strict) and every form carries the same value; a POST whose form value does not match
  its cookie is refused. A bearer-token request needs no CSRF token (browsers never add one).
- **Headers on every answer**: a strict Content-Security-Policy (no script at all, no framing,
  forms post only here), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from sluice.core.frozen import frozen

CSRF_COOKIE = "sluice_csrf"
CSRF_FIELD = "csrf"
_CSRF_VALUE = re.compile(r"^[0-9a-f]{32}$")
_FORM_TAG = re.compile(r"(<form\b[^>]*>)", re.IGNORECASE)

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src-elem 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@frozen
class Auth:
    """How the bridge tells who a user is; with neither set, nobody can act through it."""

    #: ``() -> (token, user)`` or None: read when a request presents a bearer token.
    token: Callable[[], tuple[str, str] | None] = lambda: None
    #: A header an auth proxy sets to the signed-in user (trusted only when named here).
    identity_header: str = ""

    def bearer(self, headers: Mapping[str, str]) -> str | None:
        """The user of a valid bearer token in ``headers``, else None."""
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        configured = self.token()
        if not configured or not configured[0]:
            return None
        token, user = configured
        if hmac.compare_digest(presented.strip().encode(), token.encode()):
            return user or "bridge-token"
        return None

    def identify(self, headers: Mapping[str, str]) -> tuple[str | None, str]:
        """(user, '') when the request is authenticated, else (None, why not)."""
        if headers.get("authorization"):
            user = self.bearer(headers)
            return (user, "") if user else (None, "the bearer token is not the bridge's token")
        if self.identity_header:
            from sluice.core.approval_auth import approver_problem  # cold start: only an approval identifies

            user = headers.get(self.identity_header.lower(), "").strip()
            if user and not approver_problem(user):
                return user, ""
            if user:
                return None, f"{self.identity_header}: not a usable user name"
        how = ["a bearer token (Authorization: Bearer …)"]
        if self.identity_header:
            how.append(f"sign-in through the auth proxy ({self.identity_header})")
        return None, ("approvals need an authenticated user: " + " or ".join(how)
                      + "; without one, approve with: sluice send event approval")


def lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def cookies(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out


def csrf_token(headers: Mapping[str, str]) -> tuple[str, bool]:
    """The request's CSRF token and whether it is new (then the answer sets the cookie)."""
    current = cookies(headers).get(CSRF_COOKIE, "")
    if _CSRF_VALUE.fullmatch(current):
        return current, False
    return secrets.token_hex(16), True


def csrf_cookie(token: str) -> str:
    return f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"


def csrf_problem(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    """Why a form POST fails the double-submit check, or None."""
    cookie = cookies(headers).get(CSRF_COOKIE, "")
    presented = form.get(CSRF_FIELD, "")
    if not _CSRF_VALUE.fullmatch(cookie):
        return "no CSRF cookie: reload the page and submit the form again"
    if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), cookie.encode()):
        return "the form's CSRF token does not match: reload the page and submit the form again"
    return None


def origin_problem(headers: Mapping[str, str], *, bearer: bool) -> str | None:
    """Why a POST comes from elsewhere, or None when it comes from this site (or is a script's)."""
    hosts = [headers.get("host", ""), *headers.get("x-forwarded-host", "").split(",")]
    own = {h.strip().lower() for h in hosts if h.strip()}
    claimed = headers.get("origin") or headers.get("referer") or ""
    if not claimed:
        return None if bearer else "a POST needs an Origin header from this site"
    if claimed == "null":
        return "Origin: null (a sandboxed or privacy-redirected page) may not post here"
    try:
        netloc = urlsplit(claimed).netloc.lower()
    except ValueError:
        netloc = ""
    if not netloc or netloc not in own:
        return f"cross-origin POST refused: {claimed[:100]!r} is not this site"
    return None


def with_csrf_fields(html: str, token: str) -> str:
    """Every ``<form>`` of a page, with the CSRF token as a hidden field."""
    hidden = f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">'
    return _FORM_TAG.sub(lambda m: m.group(1) + hidden, html)
