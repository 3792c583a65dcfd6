"""The broker's journal: what it accepted, persisted before it answers 202, until every delivery ends.

One append-only file, ``<state-dir>/broker/journal.jsonl``, one JSON object per line:

- ``{"a": seq, "t": [trigger, …], "e": {"attrs": {…}, "data": base64}}`` — an accepted event
  and the Triggers it matched. Written and ``fsync``'d before the producer gets its 202 (writes
  of concurrent requests share one ``fsync``: group commit).
- ``{"d": seq, "t": trigger, "o": outcome}`` — that Trigger's delivery ended (``delivered`` or
  ``dead-lettered``). Not fsync'd: losing one after a crash means one more delivery, which
  at-least-once allows.

``open()`` reads the file (a torn last line — a crash mid-write — is skipped), returns every
event with the Triggers whose delivery has not ended, and rewrites the file with only those
(compaction); the file is compacted again whenever it grows past ``compact_bytes``, so it stays
bounded by what is in flight, never by history.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.core.cloudevent import RawEvent

FILE = Path("broker") / "journal.jsonl"
#: Rewrite the journal (keeping what is open) once it is larger than this.
COMPACT_BYTES = 4 * 1024 * 1024

DELIVERED = "delivered"
DEAD_LETTERED = "dead-lettered"


def path_for(state_dir: str | Path) -> Path:
    return Path(state_dir) / FILE


@dataclass
class Entry:
    """An accepted event whose deliveries to ``open`` Triggers have not ended yet."""

    seq: int
    event: RawEvent
    triggers: tuple[str, ...]
    open: set[str]


def _accept_line(entry: Entry, triggers: tuple[str, ...] | None = None) -> bytes:
    doc = {
        "a": entry.seq,
        "t": list(triggers if triggers is not None else entry.triggers),
        "e": {"attrs": dict(entry.event.attributes), "data": base64.b64encode(entry.event.data).decode()},
    }
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def _done_line(seq: int, trigger: str, outcome: str) -> bytes:
    return (json.dumps({"d": seq, "t": trigger, "o": outcome}, separators=(",", ":")) + "\n").encode()


def read_open(path: Path) -> list[Entry]:
    """The entries of a journal file that still have open deliveries, oldest first."""
    entries: dict[int, Entry] = {}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    for line in raw.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a torn line (crash mid-write): never answered 202, or a lost "done"
        if not isinstance(doc, dict):
            continue
        if "a" in doc:
            entry = _parse_accept(doc)
            if entry is not None:
                entries[entry.seq] = entry
        elif "d" in doc and doc.get("d") in entries:
            entries[doc["d"]].open.discard(str(doc.get("t")))
    return [e for _, e in sorted(entries.items()) if e.open]


def _parse_accept(doc: Mapping[str, Any]) -> Entry | None:
    try:
        seq = int(doc["a"])
        triggers = tuple(str(t) for t in doc["t"])
        attrs = {str(k): str(v) for k, v in doc["e"]["attrs"].items()}
        data = base64.b64decode(doc["e"]["data"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return Entry(seq, RawEvent(attrs, data), triggers, set(triggers))


class Journal:
    """The journal of one broker (one process writes it). ``open()`` before use."""

    def __init__(self, path: Path, compact_bytes: int = COMPACT_BYTES) -> None:
        self.path = path
        self.compact_bytes = compact_bytes
        self._entries: dict[int, Entry] = {}
        self._seq = 0
        self._fd = -1
        self._size = 0
        self._buffer: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> list[Entry]:
        """Read what a previous run left open, compact the file, and open it for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        left = read_open(self.path)
        self._entries = {e.seq: e for e in left}
        self._seq = max(self._entries, default=0)
        self._rewrite()
        return left

    async def aclose(self) -> None:
        """Write what is buffered (waiting for a write in progress), then close."""
        await self.flush()
        self.close()

    def close(self) -> None:
        """Close at once (from outside the event loop; a write in progress must be over)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                if self._buffer:
                    os.write(self._fd, b"".join(self._buffer))
                    self._buffer.clear()
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    @property
    def open_entries(self) -> int:
        """How many accepted events still have a delivery that has not ended."""
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    # --- writes ----------------------------------------------------------------------------

    async def accept(self, event: RawEvent, triggers: tuple[str, ...]) -> int:
        """Persist ``event`` (matched by ``triggers``) durably; its sequence number.

        Raises ``OSError`` when it cannot be written: the event was not accepted."""
        self._seq += 1
        entry = Entry(self._seq, event, triggers, set(triggers))
        self._entries[entry.seq] = entry
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer.append(_accept_line(entry))
        self._waiters.append(waiter)
        self._kick()
        try:
            await waiter
        except OSError:
            self._entries.pop(entry.seq, None)
            raise
        return entry.seq

    def finish(self, seq: int, trigger: str, outcome: str) -> None:
        """The delivery of event ``seq`` to ``trigger`` ended (written with the next flush)."""
        entry = self._entries.get(seq)
        if entry is None or trigger not in entry.open:
            return
        entry.open.discard(trigger)
        if not entry.open:
            del self._entries[seq]
        self._buffer.append(_done_line(seq, trigger, outcome))
        self._kick()

    async def flush(self) -> None:
        """Wait until everything written so far is on disk (the ``done`` marks too)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._buffer:
            data, waiters = b"".join(self._buffer), self._waiters
            self._buffer, self._waiters = [], []
            compact = self._size + len(data) > self.compact_bytes
            snapshot = list(self._entries.values()) if compact else []
            try:
                await asyncio.to_thread(self._write, data, snapshot if compact else None)
            except OSError as err:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(err)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _write(self, data: bytes, compact_with: list[Entry] | None) -> None:
        if compact_with is not None:
            self._rewrite(compact_with)
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self._size += len(data)

    def _rewrite(self, entries: list[Entry] | None = None) -> None:
        """Replace the file by one holding only the open entries (atomic: temp file, fsync, rename)."""
        current = list(self._entries.values()) if entries is None else entries
        lines = [_accept_line(e, tuple(t for t in e.triggers if t in e.open)) for e in current if e.open]
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = sum(len(line) for line in lines)
