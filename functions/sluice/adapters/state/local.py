"""Local file state store: one ConfigMap-shaped JSON file per record.

Layout under the injected directory (``.sluice`` by default at the composition root)::

    <directory>/configmaps/<name>.json   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {...}, "data": {...}}
    <directory>/configmaps/.lock         fcntl lock of every write; holds the last resourceVersion
    <directory>/configmaps/.index/<h>/<name>   label index: an empty file per record and label
                                         pair (``h`` hashes ``key=value``)
    <directory>/configmaps/.index/complete     the index covers every record (holds the boot id)

Writes take the store's lock (a ``threading.Lock`` for the threads of this process, then an
exclusive ``fcntl.flock`` for other processes), compare the stored version, then write a temp file,
``fsync`` it, ``os.replace`` it over the record and ``fsync`` the directory. Readers take no lock:
a rename is atomic, so they see the old record or the new one, never half of one. Versions come
from one counter in the lock file, so a record deleted and created again never reuses a version.

Label-selected lists read only the records the selector can match: the label index is kept in
the same locked write as the record. Entries for a record's new labels are made before the
record is written and entries for labels it lost are removed after, so after a crash at any
point the index holds every true entry (and maybe a stale one, which the check of the record's
own labels filters out). Index entries are not fsynced one by one: the ``complete`` marker
holds the kernel's boot id, and an index from before a reboot (when an unsynced entry may have
been lost) or from before the index existed is rebuilt from a full scan, under the lock, by the
first list or write that finds it so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sluice.adapters.state._rules import check_labels, check_name, check_record, matches, stored
from sluice.errors import ConfigurationError, ConflictError, PermanentError, RetryableError
from sluice.ports.state import Record

_SUBDIR = "configmaps"
_INDEX = ".index"
_COMPLETE = "complete"


def _boot_id() -> str:
    """The kernel's boot id (Linux), or "" where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pair_dir(key: str, value: str) -> str:
    return hashlib.sha1(f"{key}={value}".encode(), usedforsecurity=False).hexdigest()


class LocalStore:
    """Records as files under ``directory``; safe with several threads and processes writing."""

    def __init__(self, directory: str | os.PathLike[str] = ".sluice", *, lock_timeout: float = 10.0) -> None:
        self._root = Path(directory) / _SUBDIR
        self._lock_timeout = lock_timeout
        self._thread_lock = threading.Lock()

    @property
    def directory(self) -> Path:
        """The folder holding the record files."""
        return self._root

    # -- reads ---------------------------------------------------------------------------------

    def get(self, name: str) -> Record | None:
        """The record named ``name``, or ``None``."""
        check_name(name)
        return self._read(self._path(name))

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        """Records whose labels include every pair of ``labels``, sorted by name.

        With a selector, only the records the label index names for every pair are read."""
        check_labels(labels, "label selector")
        if not labels:
            return self._scan()
        if not self._index_complete():
            if not self._root.exists():
                return []
            with self._locked():
                if not self._index_complete():
                    self._build_index()
        candidates: set[str] | None = None
        for key, value in labels.items():
            try:
                names = set(os.listdir(self._root / _INDEX / _pair_dir(key, value)))
            except FileNotFoundError:
                return []
            except OSError as err:
                raise _os_error(f"read the label index in {self._root}", err) from err
            candidates = names if candidates is None else candidates & names
            if not candidates:
                return []
        found = (self._read(self._path(name)) for name in sorted(candidates or ()))
        return [r for r in found if r is not None and matches(r.labels, labels)]

    def _scan(self) -> Sequence[Record]:
        """Every record, sorted by name (one read of each file)."""
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self._root)
                if entry.name.endswith(".json") and not entry.name.startswith(".")
            )
        except FileNotFoundError:
            return []
        except OSError as err:
            raise _os_error(f"list records in {self._root}", err) from err
        found = (self._read(self._root / n) for n in names)
        return [r for r in found if r is not None]

    # -- writes --------------------------------------------------------------------------------

    def put(self, record: Record) -> Record:
        """Compare-and-swap write (see ``StateStore.put``)."""
        check_record(record)
        path = self._path(record.name)
        with self._locked() as next_version:
            current = self._read(path)
            found = current.resource_version if current else None
            if record.resource_version != found:
                raise ConflictError(record.name, record.resource_version, found)
            kept = stored(record, next_version())
            if not self._index_complete():
                self._build_index()
            before = dict(current.labels) if current else {}
            for key, value in kept.labels.items():
                if before.get(key) != value:
                    self._index_add(key, value, record.name)
            self._write(path, kept)
            for key, value in before.items():
                if kept.labels.get(key) != value:
                    self._index_remove(key, value, record.name)
            return kept

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        """Delete ``name`` (only if unchanged when a version is given); ``False`` if absent."""
        check_name(name)
        path = self._path(name)
        if not path.exists():
            return False
        with self._locked():
            current = self._read(path)
            if current is None:
                return False
            if resource_version is not None and resource_version != current.resource_version:
                raise ConflictError(name, resource_version, current.resource_version)
            try:
                path.unlink()
                self._fsync_dir()
            except FileNotFoundError:
                return False
            except OSError as err:
                raise _os_error(f"delete record file {path}", err) from err
            for key, value in current.labels.items():
                self._index_remove(key, value, name)
            return True

    # -- internals -----------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._root / f"{name}.json"

    def _read(self, path: Path) -> Record | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise _os_error(f"read record file {path}", err) from err
        try:
            doc = json.loads(text)
            meta = doc["metadata"]
            return Record(
                name=str(meta["name"]),
                data=MappingProxyType({str(k): str(v) for k, v in (doc.get("data") or {}).items()}),
                labels=MappingProxyType({str(k): str(v) for k, v in (meta.get("labels") or {}).items()}),
                resource_version=str(meta["resourceVersion"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise PermanentError(
                f"state file {path} is not a ConfigMap-shaped JSON record "
                f"(expected metadata.name, metadata.resourceVersion and data): {err}"
            ) from err

    def _write(self, path: Path, record: Record) -> None:
        doc: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": record.name,
                "labels": dict(record.labels),
                "resourceVersion": record.resource_version,
            },
            "data": dict(record.data),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(doc, handle, ensure_ascii=False, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            self._fsync_dir()
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _os_error(f"write record file {path}", err) from err

    # -- the label index (changed only under the write lock) ----------------------------------

    def _index_complete(self) -> bool:
        try:
            return (self._root / _INDEX / _COMPLETE).read_text() == _boot_id()
        except OSError:
            return False

    def _index_add(self, key: str, value: str, name: str) -> None:
        folder = self._root / _INDEX / _pair_dir(key, value)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).touch()
        except OSError as err:
            raise _os_error(f"update the label index in {self._root}", err) from err

    def _index_remove(self, key: str, value: str, name: str) -> None:
        # A failure leaves a stale entry, which list() filters out: not worth failing the write.
        with contextlib.suppress(OSError):
            (self._root / _INDEX / _pair_dir(key, value) / name).unlink()

    def _build_index(self) -> None:
        """Index every record from a full scan (a store from before the index, or after a reboot)."""
        index = self._root / _INDEX
        try:
            shutil.rmtree(index, ignore_errors=True)
            for record in self._scan():
                for key, value in record.labels.items():
                    self._index_add(key, value, record.name)
            index.mkdir(parents=True, exist_ok=True)
            (index / _COMPLETE).write_text(_boot_id())
        except OSError as err:
            raise _os_error(f"build the label index in {self._root}", err) from err

    def _fsync_dir(self) -> None:
        fd = os.open(self._root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        """Hold the store's write lock; yields ``next_version()`` (bumps the shared counter)."""
        if not self._thread_lock.acquire(timeout=self._lock_timeout):
            raise RetryableError(
                f"state store {self._root}: another thread held the write lock for over {self._lock_timeout} s"
            )
        try:
            try:
                self._private_root()
                fd = os.open(self._root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as err:
                raise _os_error(f"open the lock file in {self._root}", err) from err
            try:
                self._flock(fd)

                def next_version() -> str:
                    version = self._last_version(fd) + 1
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.ftruncate(fd, 0)
                    os.write(fd, str(version).encode())
                    os.fsync(fd)
                    return str(version)

                yield next_version
            finally:
                os.close(fd)  # also releases the flock
        finally:
            self._thread_lock.release()

    def _private_root(self) -> None:
        """The records' folder exists and only its owner may enter it (the state dir too, when
        Sluice creates it); a folder left open by an older Sluice is closed."""
        if not self._root.is_dir():
            self._root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._root.mkdir(mode=0o700, exist_ok=True)
        elif self._root.stat().st_mode & 0o077:
            os.chmod(self._root, 0o700)

    def _flock(self, fd: int) -> None:
        deadline = time.monotonic() + self._lock_timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RetryableError(
                        f"state store {self._root}: another process held the write lock "
                        f"for over {self._lock_timeout} s"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.01)

    def _last_version(self, fd: int) -> int:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 64)
        try:
            return int(raw.decode().strip() or "0")
        except ValueError:
            # A torn counter (a crash mid-write): continue above every stored version.
            versions = [0]
            for entry in os.scandir(self._root):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    record = self._read(Path(entry.path))
                    if record and record.resource_version and record.resource_version.isdigit():
                        versions.append(int(record.resource_version))
            return max(versions)


def _os_error(action: str, err: OSError) -> Exception:
    if isinstance(err, PermissionError):
        return ConfigurationError(f"cannot {action}: permission denied ({err}); check the state directory")
    return RetryableError(f"cannot {action}: {err}")
