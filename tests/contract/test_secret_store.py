"""One contract for every secret store: memory, local files, and Kubernetes Secrets against the fake API."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_kube import FakeKube

from sluice.adapters.secrets import create_secrets
from sluice.errors import ConfigurationError, RetryableError, ValidationError
from sluice.ports.secrets import SecretStore

KINDS = ["memory", "local", "kubernetes"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture(params=KINDS)
def secrets(request: pytest.FixtureRequest, tmp_path: Path) -> SecretStore:
    if request.param == "local":
        return create_secrets("local", directory=tmp_path)
    if request.param == "memory":
        return create_secrets("memory")
    fake = request.getfixturevalue("fake")
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    fake.add_namespace(namespace)  # the fake answers 404 for a missing namespace, as a real server does
    return create_secrets("kubernetes", api=fake.api_client(), namespace=namespace)


def test_put_get_replace_delete(secrets: SecretStore) -> None:
    """A secret is created, read back, replaced as a whole, and deleted (idempotently)."""
    assert secrets.get("sluice-approver-p") is None
    secrets.put("sluice-approver-p", {"key": "k1", "user": "ü-ser"})
    assert dict(secrets.get("sluice-approver-p") or {}) == {"key": "k1", "user": "ü-ser"}
    secrets.put("sluice-approver-p", {"key": "k2"})
    assert dict(secrets.get("sluice-approver-p") or {}) == {"key": "k2"}
    assert secrets.delete("sluice-approver-p") is True
    assert secrets.delete("sluice-approver-p") is False
    assert secrets.get("sluice-approver-p") is None


@pytest.mark.parametrize("name", ["../etc/passwd", "UPPER", "", "a" * 300, "a/b"])
def test_names_are_dns_subdomains(secrets: SecretStore, name: str) -> None:
    """A name that is no DNS-1123 subdomain (path traversal included) is refused before any I/O."""
    with pytest.raises(ValidationError):
        secrets.put(name, {"key": "v"})
    with pytest.raises(ValidationError):
        secrets.get(name)


def test_kubernetes_secrets_are_opaque_base64_secrets(fake: FakeKube) -> None:
    """What lands in the API is a Secret (type Opaque, base64 data, managed-by label), not a ConfigMap."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    fake.add_namespace(namespace)
    create_secrets("kubernetes", api=fake.api_client(), namespace=namespace).put("sluice-intake-github", {"secret": "s3"})
    obj = fake.get_object("secrets", namespace, "sluice-intake-github")
    assert obj is not None and obj["type"] == "Opaque"
    assert base64.b64decode(obj["data"]["secret"]) == b"s3"
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice"
    assert fake.get_object("configmaps", namespace, "sluice-intake-github") is None


@pytest.mark.parametrize(("status", "error"), [(403, ConfigurationError), (503, RetryableError)])
def test_kubernetes_errors_are_ours_and_name_no_value(fake: FakeKube, status: int, error: type[Exception]) -> None:
    """RBAC refusal → ConfigurationError naming the Secret; server trouble → RetryableError."""
    store = create_secrets("kubernetes", api=fake.api_client(), namespace="t-errors")
    fake.fail_next(status=status, resource="secrets")
    with pytest.raises(error, match="sluice-approver-p"):
        store.get("sluice-approver-p")
