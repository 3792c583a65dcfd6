"""The registry port: ask a container registry what a pushed tag is (its digest)."""

from __future__ import annotations

from typing import Protocol


class DigestResolver(Protocol):
    """Resolves a pushed image to its manifest digest (ECR: ``describe_images``)."""

    def resolve(self, repository: str, tag: str, digest: str | None, *, registry_id: str, region: str) -> str:
        """The ``sha256:…`` digest of ``repository:tag`` in the registry ``registry_id`` (ECR: the
        account) in ``region``. With ``digest`` given (the push event's), that image is looked up
        and must still carry ``tag``. Read-only, idempotent.

        Raises ``NotFoundError`` when the repository, tag or digest does not exist (or the digest no
        longer carries the tag), ``RetryableError`` when the registry cannot be reached or refuses
        for a transient reason, ``ConfigurationError`` for missing credentials or permissions.
        """
        ...
