"""The ConfigMap store against a real kube-apiserver: what the contract suite cannot say for every store.

The real server's own answers — its 422 "Too long" past 1 MiB, its continue tokens, a namespace
that does not exist, annotations someone else put on a record — each mapped to the store's typed
results. (The shared contract runs against this server too: tests/contract, ``configmap-kube``.)
"""

from __future__ import annotations

import pytest
from kubernetes import client
from tests.support.kube.cluster import Cluster

import sluice.adapters.state.configmap as configmap_module
from sluice.adapters.state.configmap import ConfigMapStore
from sluice.errors import ConfigurationError, ConflictError, TooLargeError
from sluice.ports.state import MAX_RECORD_BYTES, Record


@pytest.fixture
def namespace(kube_cluster: Cluster) -> str:
    return kube_cluster.unique_namespace("cm")


def test_the_servers_own_too_long_is_a_too_large_error(
    kube_cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the store's own size check switched off, the server's 422 "Too long" past 1 MiB still becomes TooLargeError."""
    core = client.CoreV1Api(kube_cluster.api_client())
    # the server counts the values only (Sluice's own limit counts keys too: stricter)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "full"}, "data": {"k": "x" * MAX_RECORD_BYTES}})
    over = "x" * (MAX_RECORD_BYTES + 1)
    with pytest.raises(client.ApiException) as raw:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "raw"}, "data": {"k": over}})
    assert raw.value.status == 422
    assert "Too long" in raw.value.body and str(MAX_RECORD_BYTES) in raw.value.body

    monkeypatch.setattr(configmap_module, "check_record", lambda record: None)
    store = ConfigMapStore(kube_cluster.api_client(), namespace)
    with pytest.raises(TooLargeError, match="Too long"):
        store.put(Record("big", data={"k": over}))
    small = store.put(Record("big", data={"k": "small"}))
    with pytest.raises(TooLargeError, match="Too long"):
        store.put(Record("big", data={"k": over}, resource_version=small.resource_version))
    got = store.get("big")
    assert got is not None and dict(got.data) == {"k": "small"}


def test_list_follows_the_servers_continue_tokens(
    kube_cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a page of 3, listing 10 records follows the server's continue tokens and returns each once."""
    monkeypatch.setattr(configmap_module, "_PAGE", 3)
    store = ConfigMapStore(kube_cluster.api_client(), namespace)
    for i in range(10):
        store.put(Record(f"rec-{i:02d}", data={"i": str(i)}, labels={"kind": "page"}))
    store.put(Record("other", labels={"kind": "else"}))
    listed = store.list({"kind": "page"})
    assert [r.name for r in listed] == [f"rec-{i:02d}" for i in range(10)]
    pages = [e for e in kube_cluster.audit("admin", namespace) if e.verb == "list" and e.resource == "configmaps"]
    assert len(pages) >= 4, "expected the list to take four pages of three"


def test_a_missing_namespace(kube_cluster: Cluster) -> None:
    """In a namespace that does not exist: get answers None, list nothing, and put a ConfigurationError naming it."""
    store = ConfigMapStore(kube_cluster.api_client(), "no-such-namespace")
    assert store.get("rec") is None
    assert store.list({}) == []
    with pytest.raises(ConfigurationError, match="no-such-namespace"):
        store.put(Record("rec", data={"a": "1"}))
    with pytest.raises(ConflictError):
        store.put(Record("rec", data={"a": "1"}, resource_version="123"))


def test_an_update_keeps_annotations_others_put_on_the_record(kube_cluster: Cluster, namespace: str) -> None:
    """A compare-and-swap update replaces data and labels whole but keeps annotations another client added."""
    store = ConfigMapStore(kube_cluster.api_client(), namespace)
    first = store.put(Record("rec", data={"a": "1", "b": "2"}, labels={"project": "p"}))
    kube_cluster.kubectl("annotate", "configmap", "rec", "-n", namespace, "owner.example/backup=daily")
    current = store.get("rec")
    assert current is not None and current.resource_version != first.resource_version
    store.put(Record("rec", data={"a": "3"}, labels={"stage": "dev"}, resource_version=current.resource_version))
    cm = client.CoreV1Api(kube_cluster.api_client()).read_namespaced_config_map("rec", namespace)
    assert cm.data == {"a": "3"}
    assert cm.metadata.labels == {"stage": "dev", "app.kubernetes.io/managed-by": "sluice"}
    assert cm.metadata.annotations == {"owner.example/backup": "daily"}
    with pytest.raises(ConflictError):
        store.put(Record("rec", data={"a": "4"}, resource_version=first.resource_version))
