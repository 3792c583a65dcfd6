"""Amazon ECR: the digest of a pushed tag through boto3 ``describe_images``."""

from __future__ import annotations

import threading
from typing import Any

from sluice.adapters._aws import aws_call
from sluice.errors import NotFoundError


def repository_name(repository: str) -> str:
    """``123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/carts`` → ``team/carts``."""
    host, sep, rest = repository.partition("/")
    return rest if sep and ".amazonaws.com" in host else repository


class EcrDigestResolver:
    """``DigestResolver`` for ECR. One boto3 client per region, created on first use.

    ``client`` (tests) is used for every region; otherwise ``boto3.client("ecr", region_name=…,
    endpoint_url=endpoint_url)`` with boto3's own credential chain (environment, profile,
    IRSA / instance role). ``endpoint_url`` points at a local moto server in tests.
    """

    def __init__(self, client: Any = None, endpoint_url: str | None = None) -> None:
        self._client = client
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _for(self, region: str) -> Any:
        if self._client is not None:
            return self._client
        with self._lock:
            if region not in self._clients:
                import boto3

                self._clients[region] = boto3.client("ecr", region_name=region or None, endpoint_url=self._endpoint_url)
            return self._clients[region]

    def resolve(self, repository: str, tag: str, digest: str | None, *, registry_id: str, region: str) -> str:
        """See ``DigestResolver.resolve``."""
        name = repository_name(repository)
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
        kwargs: dict[str, Any] = {"repositoryName": name, "imageIds": [image_id]}
        if registry_id:
            kwargs["registryId"] = registry_id
        what = f"ECR describe_images {name}:{tag} in {registry_id or 'this account'}/{region or 'default region'}"
        response = aws_call(what, self._for(region).describe_images, **kwargs)
        details = response.get("imageDetails") or []
        if not details:
            raise NotFoundError(f"{what}: no such image")
        found = str(details[0].get("imageDigest", ""))
        if digest and tag not in (details[0].get("imageTags") or []):
            raise NotFoundError(f"{what}: image {digest} no longer carries tag {tag!r} (tags: {details[0].get('imageTags')})")
        return found
