"""State stores: one module per store, all behind ``sluice.ports.state.StateStore``.

``create_store(kind, **config)`` builds one by name:

- ``memory``: ``MemoryStore()`` (no config), for tests.
- ``local``: ``LocalStore(directory=".sluice", lock_timeout=10.0)``, JSON files (embedded default).
- ``configmap``: ``ConfigMapStore(api=<ApiClient or Configuration>, namespace=..., request_timeout=10.0)``;
  the composition root builds ``api`` with ``sluice.adapters.state.configmap.load_api_client()``.

Store modules are imported only when asked for, so a function pays only for the store it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sluice.adapters.catalogue import build
from sluice.errors import ConfigurationError
from sluice.ports.state import StateStore

#: kind → "module:Class"; the tree under this package lists the same stores.
STORES: Mapping[str, str] = MappingProxyType({
    "configmap": "sluice.adapters.state.configmap:ConfigMapStore",
    "local": "sluice.adapters.state.local:LocalStore",
    "memory": "sluice.adapters.state.memory:MemoryStore",
})


def create_store(kind: str, **config: Any) -> StateStore:
    """The state store ``kind`` built from ``config``; ``ConfigurationError`` for an unknown
    kind (naming the valid ones) or settings the store does not take."""
    if kind == "configmap" and config.get("api") is None:
        raise ConfigurationError(
            "state store 'configmap' needs api=<kubernetes ApiClient or Configuration>: at the composition "
            "root pass api=sluice.adapters.state.configmap.load_api_client() (in-cluster, else kubeconfig)"
        )
    store: StateStore = build("state store", STORES, kind, config)
    return store


__all__ = ["STORES", "create_store"]
