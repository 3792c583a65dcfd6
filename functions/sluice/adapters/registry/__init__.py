"""Container registry clients behind ``sluice.ports.registry.DigestResolver``, one module each.

- ``ecr``: ``EcrDigestResolver(client=None, endpoint_url=None)`` — boto3 ``describe_images``.

``create_resolver(name, **config)`` builds one by name; unknown names are refused, naming the valid ones.
"""

from __future__ import annotations

from typing import Any

from sluice.adapters.catalogue import build
from sluice.ports.registry import DigestResolver

RESOLVERS: dict[str, str] = {
    "ecr": "sluice.adapters.registry.ecr:EcrDigestResolver",
}


def create_resolver(name: str, **config: Any) -> DigestResolver:
    """The digest resolver ``name`` (imported only when asked for)."""
    resolver: DigestResolver = build("registry", RESOLVERS, name, config)
    return resolver


__all__ = ["RESOLVERS", "create_resolver"]
