"""The state store port: ConfigMap-shaped records with compare-and-swap writes.

One contract, several stores (local files, Kubernetes ConfigMaps, in-memory for tests);
``tests/contract/test_state_store.py`` runs the same suite against each of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Protocol

from sluice.core.frozen import frozen

#: A ConfigMap holds at most 1 MiB (keys + values); a record that would pass it is refused.
MAX_RECORD_BYTES = 1024 * 1024


@frozen
class Record:
    """One ConfigMap-shaped record.

    ``resource_version`` is ``None`` for a record not yet stored; after any successful
    ``put`` the store returns the record with its new version (an opaque string).
    """

    name: str
    data: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    resource_version: str | None = None

    def size(self) -> int:
        """Bytes the record counts against the 1 MiB limit (data keys and values, UTF-8)."""
        return sum(len(k.encode()) + len(v.encode()) for k, v in self.data.items())


class StateStore(Protocol):
    """ConfigMap-shaped records in one namespace.

    Names are DNS-1123 subdomains (``[a-z0-9.-]``, at most 253 characters). Every method may
    raise ``RetryableError`` when the store cannot be reached; none raises vendor exceptions.
    """

    def get(self, name: str) -> Record | None:
        """The record named ``name``, or ``None`` when it does not exist. Read-only."""
        ...

    def put(self, record: Record) -> Record:
        """Write ``record`` if it is unchanged since it was read (compare-and-swap).

        ``record.resource_version is None`` means "create": raises ``ConflictError`` when a
        record of that name exists. Otherwise the stored version must equal
        ``record.resource_version`` or ``ConflictError`` is raised (re-read and retry).
        Raises ``TooLargeError`` (nothing written) when the record passes ``MAX_RECORD_BYTES``.
        Returns the stored record with its new ``resource_version``.
        """
        ...

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        """All records whose labels include every ``labels`` pair, sorted by name."""
        ...

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        """Delete ``name``; with a version, only if unchanged (else ``ConflictError``).

        Idempotent: returns ``False`` when there was nothing to delete.
        """
        ...
