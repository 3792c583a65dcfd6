"""Secrets as files in a directory, in the layout of the local secret store (``security``
branch: ``<state-dir>/secrets/<name>.json``, a JSON object of strings, 0600) — or, on a cluster,
a Kubernetes Secret mounted as a volume (one plain file per key).

A notification's secret is the value ``value`` of the object (or its only value).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from sluice.core.validation import dns_label_problem
from sluice.errors import ConfigurationError

#: The key a notification secret's value is stored under.
VALUE = "value"


def one_value(name: str, values: object) -> str:
    """The secret's value: ``value``, or the only value of the object."""
    if isinstance(values, dict) and all(isinstance(v, str) for v in values.values()):
        if VALUE in values:
            return str(values[VALUE])
        if len(values) == 1:
            return str(next(iter(values.values())))
    raise ConfigurationError(f"secret {name!r}: expected an object with the key {VALUE!r} (or a single value)")


class SecretFiles:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _check(self, name: str) -> None:
        problem = dns_label_problem("secret name", name)
        if problem:
            raise ConfigurationError(problem)

    def secret(self, name: str) -> str | None:
        self._check(name)
        stored = self.directory / f"{name}.json"
        try:
            info = stored.stat()
        except FileNotFoundError:
            return self._mounted(name)
        if info.st_mode & 0o077:
            raise ConfigurationError(f"secret {name!r}: {stored} is readable by others (chmod 600 it)")
        try:
            values = json.loads(stored.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"cannot read secret {name!r}: {type(err).__name__}") from err
        return one_value(name, values)

    def exists(self, name: str) -> bool:
        """Whether ``name`` is there (without reading it)."""
        self._check(name)
        return (self.directory / f"{name}.json").exists() or (self.directory / name).is_symlink()

    def _mounted(self, name: str) -> str | None:
        """A key of a Kubernetes Secret volume: a symlink into ``..data`` (its mode is the mount's)."""
        path = self.directory / name
        if not path.is_symlink():
            return None
        try:
            return path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as err:
            raise ConfigurationError(f"cannot read secret {name!r}: {type(err).__name__}") from err

    def put(self, name: str, value: str) -> Path:
        """Store ``value`` as ``<name>.json`` (0600, in a 0700 folder; never readable by others, even briefly)."""
        self._check(name)
        path = self.directory / f"{name}.json"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({VALUE: value}, f)
        os.replace(tmp, path)
        return path
