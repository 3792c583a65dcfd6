"""The archive port: where records that leave the bounded ConfigMap history go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Archive(Protocol):
    """Append-only storage of JSON documents under keys like ``evaluations/<project>/<stage>/<service>/<id>.json``."""

    def put(self, key: str, document: str) -> None:
        """Store ``document`` at ``key``. Idempotent (same key, same document). Raises
        ``RetryableError`` when the archive cannot be reached: then nothing may be deleted."""
        ...

    def list(self, prefix: str) -> Sequence[str]:
        """Keys under ``prefix``, sorted."""
        ...

    def get(self, key: str) -> str:
        """The document at ``key``; ``NotFoundError`` when absent."""
        ...
