"""Local secret store: ``<directory>/secrets/<name>.json``, each file 0600 in a 0700 folder.

Only the user who runs Sluice can read them (the state dir itself is made 0700 by the local
state store's owner, ``sluice up``). A file is written to a 0600 temp file and renamed over the
old one, so a reader never sees half a secret, and permissions are never wider for an instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from sluice.adapters.state._rules import check_name
from sluice.errors import ConfigurationError, RetryableError

_SUBDIR = "secrets"


class LocalSecrets:
    """Secrets as private files under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str] = ".sluice") -> None:
        self._root = Path(directory) / _SUBDIR

    @property
    def directory(self) -> Path:
        return self._root

    def _path(self, name: str) -> Path:
        check_name(name)
        return self._root / f"{name}.json"

    def get(self, name: str) -> Mapping[str, str] | None:
        path = self._path(name)
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                os.chmod(path, 0o600)  # written by an older Sluice: close it before reading
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"cannot read secret {name} from {path}: {type(err).__name__}") from err
        if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
            raise ConfigurationError(f"secret file {path}: expected a JSON object of strings")
        return MappingProxyType(doc)

    def put(self, name: str, values: Mapping[str, str]) -> None:
        path = self._path(name)
        try:
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._root, 0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(dict(values), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise RetryableError(f"cannot write secret {name} under {self._root}: {err.strerror}") from err

    def delete(self, name: str) -> bool:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
