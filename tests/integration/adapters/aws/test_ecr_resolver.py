"""The ECR digest resolver against moto: describe_images after put_image."""

from __future__ import annotations

import json

import pytest
from tests.support.motoserver import MotoServer

from sluice.adapters.registry import create_resolver
from sluice.adapters.registry.ecr import EcrDigestResolver, repository_name
from sluice.errors import ConfigurationError, NotFoundError, RetryableError

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sockshop/carts"


def push(moto: MotoServer, tag: str, config_digest: str) -> str:
    ecr = moto.client("ecr")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": config_digest}, "layers": []})
    return str(ecr.put_image(repositoryName="sockshop/carts", imageManifest=manifest, imageTag=tag)["image"]["imageId"]["imageDigest"])


@pytest.fixture
def resolver(moto: MotoServer) -> EcrDigestResolver:
    moto.client("ecr").create_repository(repositoryName="sockshop/carts")
    return EcrDigestResolver(client=moto.client("ecr"))


def test_tag_resolves_to_the_pushed_digest(moto: MotoServer, resolver: EcrDigestResolver) -> None:
    """describe_images by tag returns the digest put_image reported."""
    digest = push(moto, "0.10.2", "sha256:" + "1" * 64)
    assert resolver.resolve(REPO, "0.10.2", None, registry_id="123456789012", region="us-east-1") == digest


def test_digest_is_confirmed_when_given(moto: MotoServer, resolver: EcrDigestResolver) -> None:
    """With the event's digest, the same digest comes back when it still carries the tag."""
    digest = push(moto, "0.10.3", "sha256:" + "2" * 64)
    assert resolver.resolve(REPO, "0.10.3", digest, registry_id="123456789012", region="us-east-1") == digest


def test_unknown_tag_and_repository_are_not_found(moto: MotoServer, resolver: EcrDigestResolver) -> None:
    """A tag or repository the registry does not have raises NotFoundError."""
    with pytest.raises(NotFoundError):
        resolver.resolve(REPO, "9.9.9", None, registry_id="123456789012", region="us-east-1")
    with pytest.raises(NotFoundError):
        resolver.resolve(REPO.replace("carts", "orders"), "1.0.0", None, registry_id="123456789012", region="us-east-1")


def test_unreachable_registry_is_retryable() -> None:
    """An endpoint nobody listens on raises RetryableError (intake answers 503, the sender retries)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("ecr", endpoint_url="http://127.0.0.1:9", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(RetryableError):
        EcrDigestResolver(client=client).resolve(REPO, "1.0.0", None, registry_id="123456789012", region="us-east-1")


def test_repository_name_strips_the_registry_host() -> None:
    """The ECR repository name is the path after the registry host."""
    assert repository_name(REPO) == "sockshop/carts"


def test_registry_rejects_unknown_names() -> None:
    """create_resolver names the valid registries for an unknown one."""
    with pytest.raises(ConfigurationError, match="ecr"):
        create_resolver("quay")
