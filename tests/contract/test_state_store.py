"""One contract for every state store: memory, local files, and ConfigMaps against the fake API and
against a real kube-apiserver (``configmap-kube``, marker ``kube``: tests/support/kube/cluster.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_kube import FakeKube

from sluice.adapters.state import create_store
from sluice.errors import ConflictError, TooLargeError, ValidationError
from sluice.ports.state import MAX_RECORD_BYTES, Record, StateStore
from sluice.services.state import cas_update

KINDS = ["memory", "local", "configmap", pytest.param("configmap-kube", marks=pytest.mark.kube)]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "memory":
        return create_store("memory")
    if request.param == "local":
        return create_store("local", directory=tmp_path / ".sluice")
    if request.param == "configmap-kube":
        cluster = request.getfixturevalue("kube_cluster")
        return create_store("configmap", api=cluster.api_client(), namespace=cluster.unique_namespace("state"))
    fake = request.getfixturevalue("fake")
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    fake.add_namespace(namespace)
    return create_store("configmap", api=fake.api_client(), namespace=namespace)


def increment(current: Record | None) -> Record:
    count = int(current.data["count"]) if current else 0
    return Record(name="counter", data={"count": str(count + 1)}, labels={"kind": "counter"})


def test_create_then_get(store: StateStore) -> None:
    """A created record is returned with a version and read back with the same data and labels."""
    created = store.put(Record("carts-staging", data={"slo.yaml": "x: 1"}, labels={"project": "sockshop"}))
    assert created.resource_version
    got = store.get("carts-staging")
    assert got is not None
    assert dict(got.data) == {"slo.yaml": "x: 1"}
    assert dict(got.labels) == {"project": "sockshop"}
    assert got.resource_version == created.resource_version


def test_get_missing_is_none(store: StateStore) -> None:
    """Reading a record that does not exist answers None."""
    assert store.get("nothing-here") is None


def test_cas_success_moves_the_version(store: StateStore) -> None:
    """A write at the version that was read succeeds and gives a new version."""
    first = store.put(Record("rec", data={"a": "1"}))
    second = store.put(Record("rec", data={"a": "2"}, resource_version=first.resource_version))
    assert second.resource_version != first.resource_version
    got = store.get("rec")
    assert got is not None and dict(got.data) == {"a": "2"}


def test_cas_with_stale_version_conflicts(store: StateStore) -> None:
    """A write at an outdated version raises ConflictError and changes nothing."""
    first = store.put(Record("rec", data={"a": "1"}))
    store.put(Record("rec", data={"a": "2"}, resource_version=first.resource_version))
    with pytest.raises(ConflictError):
        store.put(Record("rec", data={"a": "3"}, resource_version=first.resource_version))
    got = store.get("rec")
    assert got is not None and dict(got.data) == {"a": "2"}


def test_create_of_existing_conflicts(store: StateStore) -> None:
    """Creating (no version) a record that exists raises ConflictError and keeps the old one."""
    store.put(Record("rec", data={"a": "1"}))
    with pytest.raises(ConflictError):
        store.put(Record("rec", data={"a": "2"}))
    got = store.get("rec")
    assert got is not None and dict(got.data) == {"a": "1"}


def test_update_of_deleted_record_conflicts(store: StateStore) -> None:
    """A versioned write to a record deleted meanwhile raises ConflictError and creates nothing."""
    first = store.put(Record("rec", data={"a": "1"}))
    assert store.delete("rec")
    with pytest.raises(ConflictError):
        store.put(Record("rec", data={"a": "2"}, resource_version=first.resource_version))
    assert store.get("rec") is None


def test_recreated_record_gets_a_fresh_version(store: StateStore) -> None:
    """A record deleted and created again never reuses a version, so stale writers still conflict."""
    first = store.put(Record("rec", data={"a": "1"}))
    store.delete("rec")
    again = store.put(Record("rec", data={"a": "2"}))
    assert again.resource_version != first.resource_version


def test_list_by_labels(store: StateStore) -> None:
    """list returns the records carrying every selector label, sorted by name."""
    store.put(Record("b-rec", labels={"project": "sockshop", "stage": "dev"}))
    store.put(Record("a-rec", labels={"project": "sockshop", "stage": "staging"}))
    store.put(Record("c-rec", labels={"project": "other", "stage": "dev"}))
    assert [r.name for r in store.list({"project": "sockshop"})] == ["a-rec", "b-rec"]
    assert [r.name for r in store.list({"project": "sockshop", "stage": "dev"})] == ["b-rec"]
    assert [r.name for r in store.list({})] == ["a-rec", "b-rec", "c-rec"]
    assert store.list({"project": "none"}) == []
    listed = store.list({"stage": "staging"})[0]
    assert dict(listed.labels) == {"project": "sockshop", "stage": "staging"}
    assert listed.resource_version == (store.get("a-rec") or Record("x")).resource_version


def test_delete_is_idempotent(store: StateStore) -> None:
    """Deleting answers True once, then False; a missing record answers False."""
    store.put(Record("rec"))
    assert store.delete("rec") is True
    assert store.delete("rec") is False
    assert store.delete("never-was") is False
    assert store.get("rec") is None


def test_delete_with_stale_version_conflicts(store: StateStore) -> None:
    """A versioned delete of a changed record raises ConflictError and keeps it; the current version deletes."""
    first = store.put(Record("rec", data={"a": "1"}))
    second = store.put(Record("rec", data={"a": "2"}, resource_version=first.resource_version))
    with pytest.raises(ConflictError):
        store.delete("rec", first.resource_version)
    assert store.get("rec") is not None
    assert store.delete("rec", second.resource_version) is True
    assert store.get("rec") is None


def test_record_over_limit_is_refused_and_nothing_written(store: StateStore) -> None:
    """A record passing 1 MiB raises TooLargeError; nothing is created or changed."""
    big = "x" * (MAX_RECORD_BYTES - len("k") + 1)
    with pytest.raises(TooLargeError, match="1048576"):
        store.put(Record("big", data={"k": big}))
    assert store.get("big") is None
    small = store.put(Record("big", data={"k": "small"}))
    with pytest.raises(TooLargeError):
        store.put(Record("big", data={"k": big}, resource_version=small.resource_version))
    got = store.get("big")
    assert got is not None and dict(got.data) == {"k": "small"}
    assert got.resource_version == small.resource_version


def test_record_at_the_limit_is_stored(store: StateStore) -> None:
    """A record of exactly 1 MiB (keys and values) is accepted whole, never truncated."""
    value = "x" * (MAX_RECORD_BYTES - len("kk"))
    record = Record("full", data={"kk": value})
    assert record.size() == MAX_RECORD_BYTES
    store.put(record)
    got = store.get("full")
    assert got is not None and got.data["kk"] == value


def test_non_ascii_record_is_refused_when_its_request_would_pass_3_mib(store: StateStore) -> None:
    """A record under 1 MiB whose escaped JSON passes the API's 3 MiB request limit is refused by every store."""
    value = "é" * ((MAX_RECORD_BYTES - 2) // 2)
    with pytest.raises(TooLargeError, match="escaped JSON"):
        store.put(Record("wide", data={"kk": value}))
    assert store.get("wide") is None
    fits = "é" * 300_000  # 600 kB in UTF-8, 1.8 MB escaped
    store.put(Record("wide", data={"kk": fits}))
    got = store.get("wide")
    assert got is not None and got.data["kk"] == fits


def test_invalid_name_is_refused(store: StateStore) -> None:
    """A name that is not a DNS-1123 subdomain raises ValidationError (and cannot escape a directory)."""
    for name in ["Upper", "../escape", "a/b", "", "-x"]:
        with pytest.raises(ValidationError):
            store.put(Record(name))
        with pytest.raises(ValidationError):
            store.get(name)


def test_invalid_label_is_refused(store: StateStore) -> None:
    """A label value a ConfigMap could not carry raises ValidationError on every store."""
    with pytest.raises(ValidationError):
        store.put(Record("rec", labels={"project": "has space"}))
    assert store.get("rec") is None


def test_stored_record_does_not_alias_the_caller_dict(store: StateStore) -> None:
    """Changing the dict given to put afterwards does not change the stored record."""
    data = {"a": "1"}
    store.put(Record("rec", data=data))
    data["a"] = "changed"
    got = store.get("rec")
    assert got is not None and dict(got.data) == {"a": "1"}


def test_concurrent_increments_from_threads_are_exact(store: StateStore) -> None:
    """Several threads incrementing one counter with cas_update end with the exact count."""
    threads, per_thread = 4, 15
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                cas_update(store, "counter", increment, attempts=200)
        except BaseException as err:  # reported below
            errors.append(err)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors
    got = store.get("counter")
    assert got is not None and got.data["count"] == str(threads * per_thread)


WORKER = textwrap.dedent(
    """
    import sys
    from sluice.adapters.state import create_store
    from sluice.ports.state import Record
    from sluice.services.state import cas_update

    def increment(current):
        count = int(current.data["count"]) if current else 0
        return Record(name="counter", data={"count": str(count + 1)})

    store = create_store("local", directory=sys.argv[1])
    for _ in range(int(sys.argv[2])):
        cas_update(store, "counter", increment, attempts=500)
    """
)


def test_concurrent_increments_from_processes_are_exact(tmp_path: Path) -> None:
    """Several processes incrementing one local-file counter with cas_update end with the exact count."""
    processes, per_process = 4, 25
    directory = tmp_path / ".sluice"
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(directory), str(per_process)], stderr=subprocess.PIPE)
        for _ in range(processes)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    got = create_store("local", directory=directory).get("counter")
    assert got is not None and got.data["count"] == str(processes * per_process)
