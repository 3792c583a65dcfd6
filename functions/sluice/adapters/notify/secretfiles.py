"""Secrets as files in a directory: ``<dir>/<name>`` — the local state dir's ``secrets/`` (0600
files), or a Kubernetes Secret mounted as a volume (one file per key)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sluice.core.validation import dns_label_problem
from sluice.errors import ConfigurationError


class SecretFiles:
    def __init__(self, directory: str | Path, require_private: bool = True) -> None:
        self.directory = Path(directory)
        self.require_private = require_private

    def _path(self, name: str) -> Path:
        problem = dns_label_problem("secret name", name)
        if problem:
            raise ConfigurationError(problem)
        return self.directory / name

    def secret(self, name: str) -> str | None:
        path = self._path(name)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        if self.require_private and stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            raise ConfigurationError(f"secret {name!r}: {path} is readable by others (chmod 600 it)")
        # Kubernetes mounts each key as a symlink into a ..data directory: follow it.
        return path.read_text(encoding="utf-8").strip("\r\n")

    def put(self, name: str, value: str) -> Path:
        """Write ``value`` as a 0600 file (created private: never readable by others, even briefly)."""
        path = self._path(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value)
        os.replace(tmp, path)
        return path
