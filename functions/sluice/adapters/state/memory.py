"""In-memory state store: the contract without I/O, for fast tests (thread-safe, one process)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from sluice.adapters.state._rules import check_labels, check_name, check_record, matches, stored
from sluice.errors import ConflictError
from sluice.ports.state import Record


class MemoryStore:
    """Records in a dict; versions come from one counter, like Kubernetes' resourceVersion."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._version = 0

    def get(self, name: str) -> Record | None:
        """The record named ``name``, or ``None``."""
        check_name(name)
        with self._lock:
            return self._records.get(name)

    def put(self, record: Record) -> Record:
        """Compare-and-swap write (see ``StateStore.put``)."""
        check_record(record)
        with self._lock:
            current = self._records.get(record.name)
            found = current.resource_version if current else None
            if record.resource_version != found:
                raise ConflictError(record.name, record.resource_version, found)
            self._version += 1
            self._records[record.name] = kept = stored(record, str(self._version))
            return kept

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        """Records whose labels include every pair of ``labels``, sorted by name."""
        check_labels(labels, "label selector")
        with self._lock:
            return [r for _, r in sorted(self._records.items()) if matches(r.labels, labels)]

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        """Delete ``name`` (only if unchanged when a version is given); ``False`` if absent."""
        check_name(name)
        with self._lock:
            current = self._records.get(name)
            if current is None:
                return False
            if resource_version is not None and resource_version != current.resource_version:
                raise ConflictError(name, resource_version, current.resource_version)
            del self._records[name]
            return True
