"""The secrets port: small named secrets (webhook keys, provider credentials, approver keys).

A secret is a name (a DNS-1123 subdomain such as ``sluice-approver-sockshop``) holding a few
string values (``{"key": ...}``, ``{"token": ..., "password": ...}``). On a cluster each is a
Kubernetes Secret, so RBAC decides who reads it (``resourceNames`` in ``knative/rbac.yaml``);
locally each is a 0600 file in a 0700 directory under the state dir.

Values never leave through logs, events, records or pages: callers hold them only as long as
they compare or sign with them. ``sluice.adapters.secrets.create_secrets`` builds one by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class SecretStore(Protocol):
    """Named secrets in one namespace. Every method may raise ``RetryableError`` when the store
    cannot be reached and ``ConfigurationError`` when access is denied; none raises vendor errors."""

    def get(self, name: str) -> Mapping[str, str] | None:
        """The values of secret ``name``, or ``None`` when it does not exist (or is unreadable
        to this process: a consumer without RBAC on it sees a ``ConfigurationError``)."""
        ...

    def put(self, name: str, values: Mapping[str, str]) -> None:
        """Create or replace secret ``name`` with ``values`` (idempotent: the last put wins)."""
        ...

    def delete(self, name: str) -> bool:
        """Delete ``name``; ``False`` when there was nothing to delete (idempotent)."""
        ...
