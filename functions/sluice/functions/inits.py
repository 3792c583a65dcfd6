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
        #: module name → its cache file (None: not cached) and the code it holds, by source text
        self._modules: dict[str, tuple[str | None, dict[str, CodeType]]] = {}

    def get(self, module: str, source: str) -> CodeType | None:
        return (self._modules.get(module) or self._load(module))[1].get(source)

    def put(self, module: str, source: str, code: CodeType) -> None:
        path, codes = self._modules.get(module) or self._load(module)
        codes[source] = code
        if path is not None and not sys.dont_write_bytecode:
            self._store(module, path, codes)

    def _load(self, module: str) -> tuple[str | None, dict[str, CodeType]]:
        stamp = _stamp(module)
        codes: dict[str, CodeType] = {}
        if stamp is not None:
            path, mark = stamp
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
                if data.startswith(mark):
                    loaded = marshal.loads(data[len(mark):])
                    if isinstance(loaded, dict):
                        codes = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, CodeType)}
            except (OSError, ValueError, EOFError, TypeError):
                codes = {}  # none yet, unreadable or torn: compiled again and rewritten
        self._modules[module] = (stamp[0] if stamp else None), codes
        return self._modules[module]

    @staticmethod
    def _store(module: str, path: str, codes: dict[str, CodeType]) -> None:
        """Write the module's cache whole (to a temporary file renamed over it: a reader sees the
        old file or the new one); a tree where it cannot be written is left as it is."""
        stamp = _stamp(module)
        if stamp is None:
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(stamp[1] + marshal.dumps(codes))
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
