"""Authenticated approvals: an ``approval.finished`` proves who sent it (pure, no I/O, no clock).

An approval is signed with the project's approver key (HMAC-SHA256) over every value that
decides what it does — the event's ``id``, ``shkeptncontext``, project, stage, service,
decision, ``time`` and the approver's name — and carries the signature and the name in two
CloudEvent extension attributes, so the payload keeps the seed's shape:

- ``sluiceapproval``: ``v1=<hex HMAC-SHA256>``
- ``sluiceapprover``: who approved (a user name, as the CLI or the web view's login knows it)

Whoever can read the key can approve: on a cluster the key is a Secret per project, so the
RBAC on that Secret is the approver list; locally it is a 0600 file in the state dir.

``check_approval`` is what the gatekeeper asks before it obeys an approval: unsigned, signed
with another key, altered, or older than the freshness window → rejected with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sluice.core.events import Event
from sluice.core.frozen import frozen

if TYPE_CHECKING:  # cold start: the payload class is loaded where an approval is signed or checked
    from sluice.core.events import ApprovalFinished

#: Extension attribute carrying the signature (CloudEvents names: lower-case letters and digits).
SIGNATURE_ATTRIBUTE = "sluiceapproval"
#: Extension attribute carrying who approved.
APPROVER_ATTRIBUTE = "sluiceapprover"
#: How old (or how far in the future, for clock skew) a signed approval may be.
FRESHNESS = timedelta(minutes=5)
#: The approver key's length in bytes (what ``sluice approver-key`` generates).
KEY_BYTES = 32
_VERSION = "v1="
_APPROVER = re.compile(r"^[A-Za-z0-9._@+=:/-]{1,128}$")

#: ``project -> key`` (None when the project has no approver key).
KeyLookup = Callable[[str], "bytes | None"]


@frozen
class ApprovalCheck:
    """The gate's verdict on an approval's proof: ``approver`` when it holds, else ``reason``."""

    approver: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.approver) and not self.reason


def approver_problem(approver: object) -> str | None:
    """Problem with an approver name (shown in events and pages, so kept plain)."""
    if not isinstance(approver, str) or not _APPROVER.fullmatch(approver):
        return (f"approver: expected 1 to 128 letters, digits or ._@+=:/- (a user name), "
                f"found {str(approver)[:40]!r}")
    return None


def signed_text(event_id: str, context: str, approval: ApprovalFinished, time: str, approver: str) -> bytes:
    """The exact bytes the signature covers (one value per line; no value may hold a newline)."""
    values = (event_id, context, approval.project, approval.stage, approval.service, approval.decision, time, approver)
    return "\n".join(("sluice-approval-v1", *values)).encode()


def signature(key: bytes, event_id: str, context: str, approval: ApprovalFinished, time: str, approver: str) -> str:
    digest = hmac.new(key, signed_text(event_id, context, approval, time, approver), hashlib.sha256).hexdigest()
    return _VERSION + digest


def sign(event: Event, key: bytes, approver: str) -> Event:
    """``event`` (an ``approval.finished``) with the signature and approver extensions set."""
    from sluice.core.events import ApprovalFinished  # cold start: the web view's guard only reads names

    if not isinstance(event.data, ApprovalFinished):
        raise TypeError(f"only approval.finished events are signed, not {event.type.value}")
    if problem := approver_problem(approver):
        raise ValueError(problem)
    sig = signature(key, event.id, event.shkeptncontext, event.data, event.time, approver)
    extensions = {**event.extensions, SIGNATURE_ATTRIBUTE: sig, APPROVER_ATTRIBUTE: approver}
    return Event(
        type=event.type, data=event.data, source=event.source, id=event.id, time=event.time,
        shkeptncontext=event.shkeptncontext, triggeredid=event.triggeredid, extensions=extensions,
    )


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def check_approval(event: Event, key_lookup: KeyLookup, now: datetime, freshness: timedelta = FRESHNESS) -> ApprovalCheck:
    """Whether ``event`` proves its sender: who approved, or why the approval is rejected.

    ``now`` is the gate's clock (timezone-aware). Never raises for a hostile event.
    """
    from sluice.core.events import ApprovalFinished  # cold start: the web view's guard only reads names

    approval = event.data
    if not isinstance(approval, ApprovalFinished):
        return ApprovalCheck(reason=f"{event.type.value} is not an approval")
    presented = event.extensions.get(SIGNATURE_ATTRIBUTE, "")
    approver = event.extensions.get(APPROVER_ATTRIBUTE, "")
    if not presented:
        return ApprovalCheck(reason=f"unsigned approval: no {SIGNATURE_ATTRIBUTE} attribute "
                             f"(sign it with the project's approver key: sluice send event approval)")
    if problem := approver_problem(approver):
        return ApprovalCheck(reason=f"{APPROVER_ATTRIBUTE}: {problem}")
    key = key_lookup(approval.project)
    if not key:
        return ApprovalCheck(reason=f"project {approval.project} has no approver key "
                             f"(create one: sluice approver-key create --project {approval.project})")
    expected = signature(key, event.id, event.shkeptncontext, approval, event.time, approver)
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return ApprovalCheck(reason=f"bad signature: {SIGNATURE_ATTRIBUTE} does not match the approval signed "
                             f"with project {approval.project}'s approver key")
    sent = _parse_time(event.time)
    if sent is None:
        return ApprovalCheck(reason="time: a signed approval needs an RFC 3339 time with a zone")
    age = now - sent
    if age > freshness:
        return ApprovalCheck(reason=f"stale approval: signed at {event.time}, "
                             f"more than {int(freshness.total_seconds())} s before {now.isoformat()}")
    if -age > freshness:
        return ApprovalCheck(reason=f"approval from the future: signed at {event.time}, "
                             f"more than {int(freshness.total_seconds())} s after {now.isoformat()}")
    return ApprovalCheck(approver=approver)
