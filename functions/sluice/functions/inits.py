"""The functions' cache of compiled ``@frozen`` inits, kept like bytecode.

``@frozen`` (``sluice.core.frozen``) compiles an ``__init__`` per class; this cache keeps each
compiled code object, keyed by its source text, beside the defining module's bytecode
(``__pycache__/<module>.<tag>.inits``), stamped as a ``.pyc`` is: the interpreter's bytecode magic
number, then the module source's mtime and size. A later process of the same code loads it
instead of compiling it. Nothing is written where bytecode is not (``PYTHONDONTWRITEBYTECODE``, a
read-only tree: the image writes its caches at build time, ``sluice.functions.warm``). A stale,
torn or unreadable cache only means compiling again. The cache is trusted as a ``.pyc`` is: it
lives in the same folder, with the same permissions.

``functions/main.py`` installs it (``install()``) before it loads any function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import os
import sys
from types import CodeType

from sluice.core import frozen


class FileCodeCache:
    """``frozen.CodeCache`` in files beside each module's bytecode (see the module's doc)."""

    def __init__(self) -> None:
        #: module name → its cache file and stamp (None: not cached) and the code it holds, by source text
        self._modules: dict[str, tuple[tuple[str, bytes] | None, dict[str, CodeType]]] = {}

    def get(self, module: str, source: str) -> CodeType | None:
        return self._entry(module)[1].get(source)

    def put(self, module: str, source: str, code: CodeType) -> None:
        stamp, codes = self._entry(module)
        codes[source] = code
        if stamp is not None and not sys.dont_write_bytecode:
            _store(stamp, codes)

    def _entry(self, module: str) -> tuple[tuple[str, bytes] | None, dict[str, CodeType]]:
        """The module's stamp and cached code, read from its file on first use."""
        found = self._modules.get(module)
        if found is None:
            stamp = _stamp(module)
            found = self._modules[module] = stamp, (_load(*stamp) if stamp is not None else {})
        return found


def _load(path: str, mark: bytes) -> dict[str, CodeType]:
    """The code a cache file holds, if it is marked current; else none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if data.startswith(mark):
            loaded = marshal.loads(data[len(mark):])
            if isinstance(loaded, dict):
                return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, CodeType)}
    except (OSError, ValueError, EOFError, TypeError):
        pass  # none yet, unreadable or torn: compiled again and rewritten
    return {}


def _store(stamp: tuple[str, bytes], codes: dict[str, CodeType]) -> None:
    """Write a module's cache whole (to a temporary file renamed over it: a reader sees the old
    file or the new one); a tree where it cannot be written is left as it is."""
    path, mark = stamp
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(mark + marshal.dumps(codes))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _stamp(module: str) -> tuple[str, bytes] | None:
    """The cache file of ``module`` and what marks it current (as a ``.pyc``: the bytecode magic
    number, the source's mtime and size); None for a module without a source file."""
    origin = getattr(sys.modules.get(module), "__file__", None)
    if not origin or not origin.endswith(".py"):
        return None
    try:
        stat = os.stat(origin)
        path = importlib.util.cache_from_source(origin)
    except (OSError, NotImplementedError, ValueError):
        return None
    return path.removesuffix(".pyc") + ".inits", importlib.util.MAGIC_NUMBER + marshal.dumps((stat.st_mtime_ns, stat.st_size))


def install() -> None:
    """Cache the compiled ``@frozen`` inits of this process beside its modules' bytecode."""
    frozen.use_code_cache(FileCodeCache())
