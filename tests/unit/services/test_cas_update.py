"""cas_update: read-modify-write with compare-and-swap, retried on conflicts."""

from __future__ import annotations

import pytest

from sluice.adapters.state.memory import MemoryStore
from sluice.errors import ConflictError, RetryableError
from sluice.ports.state import Record
from sluice.services.state import cas_update


class RacingStore(MemoryStore):
    """A store where another writer changes the record just before each of our first ``races`` puts."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races
        self.puts = 0

    def put(self, record: Record) -> Record:
        self.puts += 1
        if self.races > 0:
            self.races -= 1
            current = super().get(record.name)
            super().put(
                Record(record.name, data={"other": str(self.races)}, resource_version=current.resource_version if current else None)
            )
        return super().put(record)


def add_key(current: Record | None) -> Record:
    data = dict(current.data) if current else {}
    data["mine"] = "1"
    return Record("any-name", data=data)


def test_creates_when_absent() -> None:
    """With no record, the mutated record is created under the given name."""
    store = MemoryStore()
    stored = cas_update(store, "rec", add_key)
    assert stored is not None and stored.name == "rec" and dict(stored.data) == {"mine": "1"}


def test_retries_conflicts_and_keeps_the_other_writers_change() -> None:
    """After losing races, the update is re-applied to the fresh record, so no write is lost."""
    store = RacingStore(races=3)
    MemoryStore.put(store, Record("rec", data={"start": "1"}))
    stored = cas_update(store, "rec", add_key, sleep=lambda _: None)
    assert stored is not None and dict(stored.data) == {"other": "0", "mine": "1"}


def test_gives_up_after_attempts_with_retryable_error() -> None:
    """Conflicts on every attempt end in a RetryableError (not a ConflictError) after `attempts` puts."""
    store = RacingStore(races=100)
    pauses: list[float] = []
    with pytest.raises(RetryableError, match="3 compare-and-swap conflicts") as raised:
        cas_update(store, "rec", add_key, attempts=3, sleep=pauses.append)
    assert not isinstance(raised.value, ConflictError)
    assert isinstance(raised.value.__cause__, ConflictError)
    assert store.puts == 3 and len(pauses) == 2


def test_none_from_mutate_writes_nothing() -> None:
    """When mutate answers None the store is untouched and the current record is returned."""
    store = MemoryStore()
    stored = store.put(Record("rec", data={"a": "1"}))
    assert cas_update(store, "rec", lambda current: None) == stored
    assert cas_update(store, "absent", lambda current: None) is None
    assert store.get("absent") is None


def test_unchanged_record_is_not_rewritten() -> None:
    """Returning the same data and labels writes nothing, so the version stays (duplicate deliveries change nothing)."""
    store = MemoryStore()
    stored = store.put(Record("rec", data={"a": "1"}, labels={"l": "v"}))
    again = cas_update(store, "rec", lambda current: Record("rec", data={"a": "1"}, labels={"l": "v"}))
    assert again is not None and again.resource_version == stored.resource_version


def test_attempts_must_be_positive() -> None:
    """attempts below 1 is a programming error."""
    with pytest.raises(ValueError):
        cas_update(MemoryStore(), "rec", add_key, attempts=0)
