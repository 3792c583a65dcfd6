"""A state store that counts what reads hand out: the tests of issue 17 assert that a page, a
status or an evaluation reads a bounded number of records and bytes, whatever the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sluice.adapters.state.memory import MemoryStore
from sluice.ports.state import Record


class CountingStore(MemoryStore):
    """Counts the records and the bytes (of their data) that reads hand out, and keeps the names read
    (asked for by name, or listed)."""

    def __init__(self) -> None:
        super().__init__()
        self.records_read = self.bytes_read = 0
        self.names_read: list[str] = []

    def _count(self, records: Sequence[Record]) -> None:
        self.records_read += len(records)
        self.bytes_read += sum(len(k) + len(v) for r in records for k, v in r.data.items())

    def get(self, name: str) -> Record | None:
        self.names_read.append(name)  # asked for, found or not
        found = super().get(name)
        self._count([found] if found is not None else [])
        return found

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        found = super().list(labels)
        self.names_read += [r.name for r in found]
        self._count(found)
        return found

    def read_of(self, prefix: str) -> int:
        """How many of the records read (since the last ``reset``) are named ``prefix``…"""
        return sum(1 for name in self.names_read if name.startswith(prefix))

    def reset(self) -> None:
        self.records_read = self.bytes_read = 0
        self.names_read = []
