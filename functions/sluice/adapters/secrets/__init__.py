"""Secret stores: one module per store, all behind ``sluice.ports.secrets.SecretStore``.

``create_secrets(kind, **config)`` builds one by name:

- ``memory``: ``MemorySecrets()``, for tests.
- ``local``: ``LocalSecrets(directory=".sluice")``: ``<directory>/secrets/<name>.json``, 0600 files
  in a 0700 folder (the embedded default).
- ``kubernetes``: ``KubernetesSecrets(api=<ApiClient or Configuration>, namespace=...)``: one Secret
  per name, labelled ``app.kubernetes.io/managed-by: sluice``.

The composition root (``sluice.compose.build_secrets``) picks the one that matches the state store.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sluice.adapters.catalogue import build

if TYPE_CHECKING:  # cold start: the port is a Protocol, for the type checker only
    from sluice.ports.secrets import SecretStore

SECRET_STORES: Mapping[str, str] = MappingProxyType({
    "kubernetes": "sluice.adapters.secrets.kubernetes:KubernetesSecrets",
    "local": "sluice.adapters.secrets.local:LocalSecrets",
    "memory": "sluice.adapters.secrets.memory:MemorySecrets",
})


def create_secrets(kind: str, **config: Any) -> SecretStore:
    """The secret store ``kind``; ``ConfigurationError`` for an unknown kind (naming the valid ones)."""
    secrets: SecretStore = build("secret store", SECRET_STORES, kind, config)
    return secrets


__all__ = ["SECRET_STORES", "create_secrets"]
