"""Archives, one module per backend, all behind ``sluice.ports.archive.Archive``.

``create_archive(kind, **config)`` builds one by name:

- ``none``: ``NoArchive()`` — nothing is kept: documents that leave the store are dropped.
- ``s3``: ``S3Archive(bucket=..., prefix="", endpoint_url=None, region_name=None, client=None)``
  (boto3; credentials from boto3's own chain).

Modules are imported only when asked for, so a function without an archive never imports boto3.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sluice.adapters.catalogue import build
from sluice.ports.archive import Archive

#: kind → "module:Class"
ARCHIVES: Mapping[str, str] = MappingProxyType({
    "none": "sluice.adapters.archive.none:NoArchive",
    "s3": "sluice.adapters.archive.s3:S3Archive",
})


def create_archive(kind: str, **config: Any) -> Archive:
    """The archive ``kind`` built from ``config`` (``ConfigurationError`` if unknown or misconfigured)."""
    archive: Archive = build("archive", ARCHIVES, kind, config)
    return archive


__all__ = ["ARCHIVES", "create_archive"]
