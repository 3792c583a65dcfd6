"""The local file state store: file layout, atomic writes, damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.adapters.state.local import LocalStore
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
    """After writes and deletes only record files and the lock file remain."""
    store = LocalStore(tmp_path)
    first = store.put(Record("a"))
    store.put(Record("a", data={"x": "1"}, resource_version=first.resource_version))
    store.put(Record("b"))
    store.delete("b")
    assert sorted(p.name for p in (tmp_path / "configmaps").iterdir()) == [".lock", "a.json"]


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
