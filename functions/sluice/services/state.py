"""Read-modify-write on the state store, with compare-and-swap and a bounded retry."""

from __future__ import annotations

from collections.abc import Callable

from sluice.errors import ConflictError, RetryableError
from sluice.ports.state import Record, StateStore


def cas_update(
    store: StateStore, name: str, mutate: Callable[[Record | None], Record | None], attempts: int = 8
) -> Record | None:
    """Apply ``mutate`` to the current record and write the result with compare-and-swap.

    ``mutate`` gets the record (or ``None``) and returns the record to write (keeping the
    ``resource_version`` it was given) or ``None`` to write nothing. It may run several times:
    it must be a pure function of its argument. After ``attempts`` conflicts, RetryableError.
    """
    last: ConflictError | None = None
    for _ in range(attempts):
        current = store.get(name)
        desired = mutate(current)
        if desired is None:
            return current
        try:
            return store.put(desired)
        except ConflictError as err:
            last = err
    raise RetryableError(f"record {name!r} kept changing: gave up after {attempts} conflicting writes") from last
