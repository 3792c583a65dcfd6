"""Read-modify-write of one record with compare-and-swap, retried on conflicts.

Every service writes state through ``cas_update``: it reads the record, lets a pure function
compute the new one, and writes it only if nobody wrote in between (else it re-reads and tries
again). Effects and their de-duplication marks go into the same record, in the same write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace

from sluice.errors import ConflictError, RetryableError
from sluice.ports.state import Record, StateStore

Mutate = Callable[[Record | None], Record | None]


def cas_update(
    store: StateStore,
    name: str,
    mutate: Mutate,
    attempts: int = 8,
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_backoff: float = 0.2,
) -> Record | None:
    """Apply ``mutate`` to the record ``name`` and store the result with compare-and-swap.

    ``mutate(current)`` gets the stored record (``None`` when there is none) and returns the
    record to store, or ``None`` to leave the store unchanged. It may run several times (once per
    attempt), so it must not have side effects. The returned record's name and version are set
    here: it is written as ``name``, at the version that was read. When it equals the current
    record (same data and labels) nothing is written.

    Returns the stored record (``current`` when nothing was written, which may be ``None``).
    Raises ``RetryableError`` after ``attempts`` conflicts in a row (each followed by a short
    random pause), and whatever the store raises otherwise (``TooLargeError``, ...).
    """
    if attempts < 1:
        raise ValueError(f"attempts: expected at least 1, found {attempts}")
    last: ConflictError | None = None
    for attempt in range(attempts):
        current = store.get(name)
        wanted = mutate(current)
        if wanted is None:
            return current
        if current is not None and dict(wanted.data) == dict(current.data) and dict(wanted.labels) == dict(
            current.labels
        ):
            return current
        record = replace(wanted, name=name, resource_version=current.resource_version if current else None)
        try:
            return store.put(record)
        except ConflictError as err:
            last = err
            if attempt + 1 < attempts:
                sleep(random.uniform(0, min(max_backoff, 0.005 * 2**attempt)))
    raise RetryableError(
        f"record {name!r}: gave up after {attempts} compare-and-swap conflicts in a row "
        "(too many concurrent writers); retry later"
    ) from last
