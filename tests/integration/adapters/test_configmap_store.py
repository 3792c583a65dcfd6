"""The ConfigMap state store against the fake Kubernetes API: labels, error mapping, no vendor errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from kubernetes import client
from tests.support.fake_kube import FakeKube

from sluice.adapters.state.configmap import MANAGED_BY, ConfigMapStore
from sluice.errors import (
    ConfigurationError,
    ConflictError,
    PermanentError,
    RetryableError,
    TooLargeError,
    ValidationError,
)
from sluice.ports.state import MAX_RECORD_BYTES, Record

NS = "sluice"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture
def store(fake: FakeKube) -> ConfigMapStore:
    return ConfigMapStore(fake.api_client(), NS)


def test_configmap_carries_managed_by_label_and_record_does_not(store: ConfigMapStore, fake: FakeKube) -> None:
    """The stored ConfigMap is labelled managed-by sluice; the record read back has only its own labels."""
    store.put(Record("carts", data={"a": "1"}, labels={"project": "sockshop"}))
    cm = fake.get_object("configmaps", NS, "carts")
    assert cm is not None
    assert cm["metadata"]["labels"] == {"project": "sockshop", MANAGED_BY: "sluice"}
    assert cm["data"] == {"a": "1"}
    got = store.get("carts")
    assert got is not None and dict(got.labels) == {"project": "sockshop"}


def test_list_ignores_configmaps_not_managed_by_sluice(store: ConfigMapStore, fake: FakeKube) -> None:
    """ConfigMaps that Sluice did not write (e.g. kube-root-ca.crt) never show up in list."""
    fake.seed("configmaps", {"metadata": {"name": "kube-root-ca.crt", "namespace": NS}, "data": {"ca.crt": "x"}})
    store.put(Record("mine"))
    assert [r.name for r in store.list({})] == ["mine"]


def test_list_pages_through_many_records(store: ConfigMapStore) -> None:
    """list follows continue tokens, so more records than one page are all returned."""
    for i in range(260):
        store.put(Record(f"rec-{i:03d}", labels={"p": "x"}))
    assert len(store.list({"p": "x"})) == 260


def test_too_large_record_sends_no_request(store: ConfigMapStore, fake: FakeKube) -> None:
    """A record over 1 MiB is refused before any request reaches the API."""
    before = len(fake.requests)
    with pytest.raises(TooLargeError):
        store.put(Record("big", data={"k": "x" * MAX_RECORD_BYTES}))
    assert len(fake.requests) == before


@pytest.mark.parametrize(
    ("code", "reason", "message", "error"),
    [
        (500, None, "etcd down", RetryableError),
        (503, None, "overloaded", RetryableError),
        (429, None, "slow down", RetryableError),
        (422, "Invalid", 'ConfigMap "x" is invalid: []: Too long: must have at most 1048576 bytes', TooLargeError),
        (413, None, "Request entity too large: limit is 3145728", TooLargeError),
        (422, "Invalid", 'ConfigMap "x" is invalid: metadata.labels: Invalid value', ValidationError),
        (403, None, 'configmaps is forbidden: User "system:serviceaccount:sluice:default" cannot create', ConfigurationError),
        (405, None, "not allowed", PermanentError),
    ],
)
def test_api_errors_map_to_sluice_errors(
    store: ConfigMapStore, fake: FakeKube, code: int, reason: str | None, message: str, error: type[Exception]
) -> None:
    """Each API failure status becomes the matching Sluice error with the API's message; no kubernetes exception escapes."""
    fake.fail_next(1, code, method="POST", reason=reason, message=message)
    with pytest.raises(error) as raised:
        store.put(Record("x"))
    assert message in str(raised.value)
    assert not isinstance(raised.value, client.ApiException)


def test_conflict_carries_found_version(store: ConfigMapStore) -> None:
    """A stale write's ConflictError names the expected and the stored versions."""
    first = store.put(Record("x", data={"n": "1"}))
    second = store.put(Record("x", data={"n": "2"}, resource_version=first.resource_version))
    with pytest.raises(ConflictError) as raised:
        store.put(Record("x", data={"n": "3"}, resource_version=first.resource_version))
    assert raised.value.expected == first.resource_version
    assert raised.value.found == second.resource_version


def test_get_and_delete_errors_are_retryable(store: ConfigMapStore, fake: FakeKube) -> None:
    """A 500 on read, list or delete is a RetryableError."""
    fake.fail_next(3, 500)
    with pytest.raises(RetryableError):
        store.get("x")
    with pytest.raises(RetryableError):
        store.list({})
    with pytest.raises(RetryableError):
        store.delete("x")


def test_unreachable_api_is_retryable() -> None:
    """A refused connection is a RetryableError saying the API is unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = client.Configuration(host=f"http://127.0.0.1:{port}")
    config.retries = 0
    store = ConfigMapStore(config, NS, request_timeout=2)
    with pytest.raises(RetryableError, match="unreachable"):
        store.get("x")


def test_constructor_refuses_other_objects() -> None:
    """Building the store from something that is not an ApiClient or Configuration is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="ApiClient or Configuration"):
        ConfigMapStore("http://127.0.0.1:1", NS)


def test_create_in_missing_namespace_is_a_configuration_error(store: ConfigMapStore, fake: FakeKube) -> None:
    """A 404 on create (the namespace is missing on a real cluster) is a ConfigurationError naming the namespace."""
    fake.fail_next(1, 404, method="POST", message='namespaces "sluice" not found')
    with pytest.raises(ConfigurationError, match="namespace 'sluice'"):
        store.put(Record("x"))
