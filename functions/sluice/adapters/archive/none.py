"""No archive: what leaves the bounded store is dropped (the explicit, documented choice)."""

from __future__ import annotations

from collections.abc import Sequence

from sluice.errors import NotFoundError


class NoArchive:
    """``Archive`` that keeps nothing: ``put`` succeeds and forgets, ``list`` is empty."""

    def put(self, key: str, document: str) -> None:
        """Accept and drop ``document``."""

    def list(self, prefix: str) -> Sequence[str]:
        """Always empty."""
        return []

    def get(self, key: str) -> str:
        """Always ``NotFoundError``: nothing is kept."""
        raise NotFoundError(f"archive 'none' keeps nothing: no document {key!r} (configure an s3 archive to keep them)")
