"""Container registry clients behind ``sluice.ports.registry.DigestResolver``, one module each.

- ``ecr``: ``EcrDigestResolver(client=None, endpoint_url=None)`` — boto3 ``describe_images``.

``create_resolver(name, **config)`` builds one by name; unknown names are refused, naming the valid ones.
"""

from __future__ import annotations

import importlib
from typing import Any

from sluice.errors import ConfigurationError
from sluice.ports.registry import DigestResolver

RESOLVERS: dict[str, str] = {
    "ecr": "sluice.adapters.registry.ecr:EcrDigestResolver",
}


def create_resolver(name: str, **config: Any) -> DigestResolver:
    """The digest resolver ``name`` (imported only when asked for)."""
    target = RESOLVERS.get(name)
    if target is None:
        raise ConfigurationError(f"unknown registry {name!r}: expected one of {', '.join(sorted(RESOLVERS))}")
    module_name, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    try:
        resolver: DigestResolver = factory(**config)
    except TypeError as err:
        raise ConfigurationError(f"registry {name!r}: invalid configuration {sorted(config)}: {err}") from err
    return resolver


__all__ = ["RESOLVERS", "create_resolver"]
