"""Archives, one module per backend, all behind ``sluice.ports.archive.Archive``.

``create_archive(kind, **config)`` builds one by name:

- ``none``: ``NoArchive()`` — nothing is kept: documents that leave the store are dropped.
- ``s3``: ``S3Archive(bucket=..., prefix="", endpoint_url=None, region_name=None, client=None)``
  (boto3; credentials from boto3's own chain).

Modules are imported only when asked for, so a function without an archive never imports boto3.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sluice.errors import ConfigurationError
from sluice.ports.archive import Archive

#: kind → (module, class)
ARCHIVES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "none": ("sluice.adapters.archive.none", "NoArchive"),
    "s3": ("sluice.adapters.archive.s3", "S3Archive"),
})


def create_archive(kind: str, **config: Any) -> Archive:
    """The archive ``kind`` built from ``config``; ``ConfigurationError`` for an unknown kind
    (naming the valid ones) or settings the archive does not take."""
    try:
        module_name, class_name = ARCHIVES[kind]
    except KeyError:
        raise ConfigurationError(f"unknown archive {kind!r}: expected one of {', '.join(sorted(ARCHIVES))}") from None
    factory = getattr(importlib.import_module(module_name), class_name)
    try:
        archive: Archive = factory(**config)
    except TypeError as err:
        raise ConfigurationError(f"archive {kind!r}: invalid settings {sorted(config)}: {err}") from err
    return archive


__all__ = ["ARCHIVES", "create_archive"]
