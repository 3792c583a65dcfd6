"""State store figures: sequential cas_update rate per store, and contended increments.

Run: .venv/bin/python bench/state.py
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the clone: tests.support

from tests.support.fake_kube import FakeKube

from sluice.adapters.state import create_store
from sluice.ports.state import Record, StateStore
from sluice.services.state import cas_update


def increment(current: Record | None) -> Record:
    return Record("counter", data={"n": str(int(current.data["n"]) + 1 if current else 1)})


def sequential(label: str, store: StateStore, n: int) -> None:
    start = time.perf_counter()
    for _ in range(n):
        cas_update(store, "counter", increment)
    elapsed = time.perf_counter() - start
    print(f"{label:16} sequential  {n / elapsed:8.0f} updates/s  {elapsed / n * 1000:6.2f} ms/update")


def contended(label: str, store: StateStore, threads: int, per_thread: int) -> None:
    def work() -> None:
        for _ in range(per_thread):
            cas_update(store, "contended", lambda c: Record("contended", data={"n": str(int(c.data["n"]) + 1 if c else 1)}), attempts=500)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    elapsed = time.perf_counter() - start
    got = store.get("contended")
    total = threads * per_thread
    print(
        f"{label:16} {threads} threads   {total / elapsed:8.0f} updates/s  "
        f"final count {got.data['n'] if got else None} of {total}"
    )


def main() -> None:
    sequential("memory", create_store("memory"), 5000)
    contended("memory", create_store("memory"), 4, 500)
    with tempfile.TemporaryDirectory() as folder:
        store = create_store("local", directory=folder)
        sequential("local", store, 500)
        contended("local", store, 4, 100)
    with FakeKube() as fake:
        store = create_store("configmap", api=fake.api_client(), namespace="bench")
        sequential("configmap+fake", store, 500)
        contended("configmap+fake", store, 4, 100)


if __name__ == "__main__":
    main()
