"""The local file state store: file layout, atomic writes, damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.state.local import LocalStore
from sluice.adapters.state.memory import MemoryStore
from sluice.errors import PermanentError
from sluice.ports.state import Record


def test_records_are_configmap_shaped_json_files(tmp_path: Path) -> None:
    """Each record is one ConfigMap-shaped JSON file under <directory>/configmaps/."""
    store = LocalStore(tmp_path)
    stored = store.put(Record("carts", data={"slo.yaml": "ü"}, labels={"project": "sockshop"}))
    doc = json.loads((tmp_path / "configmaps" / "carts.json").read_text(encoding="utf-8"))
    assert doc == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "carts", "labels": {"project": "sockshop"}, "resourceVersion": stored.resource_version},
        "data": {"slo.yaml": "ü"},
    }


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    """After writes and deletes only record files, the lock file and the label index remain."""
    store = LocalStore(tmp_path)
    first = store.put(Record("a"))
    store.put(Record("a", data={"x": "1"}, resource_version=first.resource_version))
    store.put(Record("b"))
    store.delete("b")
    assert sorted(p.name for p in (tmp_path / "configmaps").iterdir()) == [".index", ".lock", "a.json"]


def test_reads_of_missing_directory_are_empty(tmp_path: Path) -> None:
    """A store whose directory does not exist yet reads as empty and creates nothing."""
    store = LocalStore(tmp_path / "absent")
    assert store.get("x") is None
    assert store.list({}) == []
    assert store.delete("x") is False
    assert not (tmp_path / "absent").exists()


def test_damaged_file_is_a_permanent_error_naming_it(tmp_path: Path) -> None:
    """A record file that is not ConfigMap JSON raises PermanentError naming the file."""
    store = LocalStore(tmp_path)
    store.put(Record("a"))
    path = tmp_path / "configmaps" / "a.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(PermanentError, match=r"a\.json"):
        store.get("a")


def test_versions_continue_after_a_torn_counter(tmp_path: Path) -> None:
    """A damaged version counter continues above every stored version."""
    store = LocalStore(tmp_path)
    stored = store.put(Record("a"))
    (tmp_path / "configmaps" / ".lock").write_text("garbage")
    again = store.put(Record("b"))
    assert int(again.resource_version or 0) > int(stored.resource_version or 0)


def test_two_store_objects_share_one_directory(tmp_path: Path) -> None:
    """Two stores on one directory (as two processes) see each other's writes and conflicts."""
    one, two = LocalStore(tmp_path), LocalStore(tmp_path)
    stored = one.put(Record("a", data={"n": "1"}))
    got = two.get("a")
    assert got is not None and got.resource_version == stored.resource_version
    two.put(Record("a", data={"n": "2"}, resource_version=stored.resource_version))
    assert [r.data["n"] for r in one.list({})] == ["2"]


def test_a_label_selected_list_reads_only_the_records_it_can_match(tmp_path: Path) -> None:
    """A list by label never opens a record without those labels: a damaged record of another
    project does not break the list (a full scan would raise on it)."""
    store = LocalStore(tmp_path)
    store.put(Record("context.a", labels={"kind": "context", "project": "sockshop"}))
    store.put(Record("context.b", labels={"kind": "context", "project": "other"}))
    store.put(Record("project.sockshop", labels={"kind": "project", "project": "sockshop"}))
    (tmp_path / "configmaps" / "context.b.json").write_text("{not json", encoding="utf-8")
    listed = store.list({"kind": "context", "project": "sockshop"})
    assert [r.name for r in listed] == ["context.a"]
    with pytest.raises(PermanentError, match=r"context\.b\.json"):
        store.list({})


def test_a_store_from_before_the_index_is_indexed_by_its_first_list(tmp_path: Path) -> None:
    """Records written before the label index existed (or when it was lost) are all found."""
    store = LocalStore(tmp_path)
    for n in range(5):
        store.put(Record(f"r{n}", labels={"kind": "even" if n % 2 == 0 else "odd"}))
    shutil.rmtree(tmp_path / "configmaps" / ".index")
    assert [r.name for r in LocalStore(tmp_path).list({"kind": "even"})] == ["r0", "r2", "r4"]
    assert (tmp_path / "configmaps" / ".index" / "complete").exists()


def test_a_stale_index_entry_is_filtered_out(tmp_path: Path) -> None:
    """An index entry left by a crash between the index and the record write (the record never
    got the label) does not make the record match."""
    store = LocalStore(tmp_path)
    store.put(Record("a", labels={"kind": "x"}))
    store.put(Record("b", labels={"kind": "y"}))
    for folder in (tmp_path / "configmaps" / ".index").iterdir():
        if folder.is_dir() and (folder / "a").exists():
            (folder.parent / next(f.name for f in folder.parent.iterdir() if f.is_dir() and (f / "b").exists())
             / "a").touch()
    assert [r.name for r in store.list({"kind": "y"})] == ["b"]


_NAMES = st.sampled_from(["a", "b", "c", "d"])
_LABELS = st.dictionaries(st.sampled_from(["kind", "project"]), st.sampled_from(["x", "y", ""]), max_size=2)


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "delete", "drop-index"]), _NAMES, _LABELS), max_size=15),
       selector=_LABELS)
def test_label_lists_agree_with_the_in_memory_store(tmp_path_factory: pytest.TempPathFactory,
                                                     ops: list[tuple[str, str, dict[str, str]]],
                                                     selector: dict[str, str]) -> None:
    """After any sequence of writes, deletes and lost indexes, every label-selected list of the
    local store equals the in-memory store's."""
    directory = tmp_path_factory.mktemp("store")
    local, memory = LocalStore(directory), MemoryStore()
    for op, name, labels in ops:
        if op == "drop-index":
            shutil.rmtree(directory / "configmaps" / ".index", ignore_errors=True)
            continue
        for store in (local, memory):
            current = store.get(name)
            if op == "put":
                store.put(Record(name, labels=labels, resource_version=current.resource_version if current else None))
            else:
                store.delete(name)
    assert [(r.name, dict(r.labels)) for r in local.list(selector)] == \
        [(r.name, dict(r.labels)) for r in memory.list(selector)]
