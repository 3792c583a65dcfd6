"""In-memory secret store, for tests."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sluice.adapters.state._rules import check_name


class MemorySecrets:
    """Secrets in a dict (one process)."""

    def __init__(self) -> None:
        self._secrets: dict[str, dict[str, str]] = {}

    def get(self, name: str) -> Mapping[str, str] | None:
        check_name(name)
        found = self._secrets.get(name)
        return MappingProxyType(dict(found)) if found is not None else None

    def put(self, name: str, values: Mapping[str, str]) -> None:
        check_name(name)
        self._secrets[name] = dict(values)

    def delete(self, name: str) -> bool:
        check_name(name)
        return self._secrets.pop(name, None) is not None
