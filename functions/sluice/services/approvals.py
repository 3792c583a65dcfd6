"""Approver keys: where each project's key lives, and signing / checking approvals with it.

The key of project ``p`` is the secret ``sluice-approver-p`` (value ``key``: 64 hex digits).
Whoever can read it can approve ``p``'s held promotions: on a cluster that is the RBAC on the
Secret; locally the user who owns the state dir (a 0600 file).
"""

from __future__ import annotations

import secrets as random
from collections.abc import Callable
from datetime import datetime

from sluice.core.approval_auth import KEY_BYTES, ApprovalCheck, KeyLookup, check_approval, sign
from sluice.core.events import Event
from sluice.errors import ConfigurationError, NotFoundError
from sluice.ports.secrets import SecretStore

_PREFIX = "sluice-approver-"


def key_name(project: str) -> str:
    """The secret holding ``project``'s approver key."""
    return _PREFIX + project


def ensure_key(secrets: SecretStore, project: str, *, rotate: bool = False) -> bool:
    """Create ``project``'s approver key unless it exists (or replace it: ``rotate``); True when written."""
    if not rotate and secrets.get(key_name(project)):
        return False
    secrets.put(key_name(project), {"key": random.token_hex(KEY_BYTES)})
    return True


def key_lookup(secrets: SecretStore) -> KeyLookup:
    """``project -> key bytes`` (None without a key) for ``check_approval``."""

    def lookup(project: str) -> bytes | None:
        values = secrets.get(key_name(project))
        key = values.get("key", "") if values else ""
        return key.encode() if key else None

    return lookup


def sign_approval(event: Event, secrets: SecretStore, approver: str) -> Event:
    """``event`` signed with its project's approver key, on behalf of ``approver``."""
    project = getattr(event.data, "project", "")
    key = key_lookup(secrets)(project)
    if key is None:
        raise NotFoundError(
            f"no approver key for project {project} readable here ({key_name(project)}): "
            f"create one with 'sluice approver-key create --project {project}', or ask for read access to it"
        )
    try:
        return sign(event, key, approver)
    except ValueError as err:
        raise ConfigurationError(str(err)) from err


def checker(secrets: SecretStore, now: Callable[[], datetime]) -> Callable[[Event], ApprovalCheck]:
    """``event -> ApprovalCheck`` over the keys in ``secrets`` and the clock ``now``."""
    lookup = key_lookup(secrets)
    return lambda event: check_approval(event, lookup, now())
