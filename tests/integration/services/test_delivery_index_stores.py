"""The chunked deliveries index on the real stores (issue 17): the local files and the ConfigMap
store (through the fake Kubernetes API) take its chunk names and labels, list only the heads by
kind, and read back what the in-memory store does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.fake_kube import FakeKube

from sluice.adapters.state import create_store
from sluice.ports.state import StateStore
from sluice.services.records import Records

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture(params=["local", "configmap"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "local":
        return create_store("local", directory=tmp_path / ".sluice")
    fake = request.getfixturevalue("fake")
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    fake.add_namespace(namespace)
    return create_store("configmap", api=fake.api_client(), namespace=namespace)


def fill(records: Records) -> None:
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    for n in range(160):
        context = f"00000000-0000-0000-0000-{n:012d}"
        data = {"service": "carts" if n % 4 else "orders", **({"project": "sockshop"} if n % 5 else {})}
        records.append_event(context, {"id": f"e{n}", "source": "test", "type": "t", "shkeptncontext": context,
                                       "time": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "data": data})


def test_the_index_reads_the_same_on_every_store(store: StateStore) -> None:
    records, memory = Records(store), Records(create_store("memory"))
    fill(records)
    fill(memory)
    for project, service, limit, offset in (("sockshop", "", 10, 0), ("sockshop", "orders", 7, 20), ("", "", 30, 5),
                                            ("", "orders", None, 0)):
        assert records.context_page(project, service, limit, offset) == memory.context_page(project, service, limit, offset)
    heads = [r.name for r in store.list({"sluice.dev/kind": "deliveries"})]
    assert heads == ["deliveries", "deliveries.sockshop"]
    chunks = [r.name for r in store.list({"sluice.dev/kind": "deliveries-chunk"})]
    assert "deliveries.sockshop.0" in chunks and all(c.startswith(("deliveries.sockshop.", "deliveries-none.")) for c in chunks)
