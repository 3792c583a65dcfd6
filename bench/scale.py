"""Reads at 10, 1,000 and 10,000 deliveries of history: each read's time and the records it read.

    .venv/bin/python bench/scale.py [--template STATE_DIR] [--sizes 10 1000 10000]

History is cloned from real records: the template is the state of a finished ``sluice demo``
(run here into a temporary directory unless ``--template`` names one; about a minute). Each
size gets a fresh local state directory with the template's project, stage and service records
and that many delivery event logs (``context.*``), cloned round-robin from the demo's real
ones under new context ids. The files are written directly, as the store writes them, so the
first label-selected list also builds the store's label index (printed as its own row).

``--up`` also times ``sluice up`` (to ready) on each state, after the reads (so with the label
index built, as on any start but the first after an upgrade or a reboot), then ``sluice down``.

Each read goes through the real code (``LocalStore``, ``Records``, ``sluice.services.readmodel``,
the bridge) over a store that counts what it read: ``gets`` records fetched by name and
``listed`` records returned by lists (what was parsed). Aim (issue 17): every read within 1.5×
from 10 to 10,000 deliveries; what still grows with history is what the read model asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sluice.adapters.state.local import LocalStore
from sluice.ports.state import Record

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "sluice.dev/context"
KIND = "sluice.dev/kind"
PROJECT = "sluice.dev/project"


class CountingStore:
    """A StateStore that counts the records it hands out."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.gets = 0
        self.listed = 0
        self.lists = 0

    def get(self, name: str) -> Record | None:
        self.gets += 1
        return self.inner.get(name)

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        found = self.inner.list(labels)
        self.lists += 1
        self.listed += len(found)
        return found

    def put(self, record: Record) -> Record:
        return self.inner.put(record)

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        return self.inner.delete(name, resource_version)

    def reset(self) -> None:
        self.gets = self.listed = self.lists = 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_template(directory: Path) -> Path:
    """Run the demo into ``directory``; its state is the template."""
    cli = Path(sys.executable).with_name("sluice")
    print(f"building the template: sluice demo --state-dir {directory} (real services; about a minute)", flush=True)
    subprocess.run([str(cli), "demo", "--state-dir", str(directory), "--port", str(free_port()), "--perf-duration", "2"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return directory


def build(template: Path, target: Path, deliveries: int) -> None:
    """A state directory with the template's records and ``deliveries`` cloned delivery logs."""
    source = template / "configmaps"
    out = target / "configmaps"
    out.mkdir(parents=True)
    contexts = []
    version = 0
    for path in sorted(source.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        version = max(version, int(doc["metadata"]["resourceVersion"]))
        if doc["metadata"].get("labels", {}).get(KIND) == "context":
            contexts.append((doc["metadata"]["labels"][CONTEXT], path.read_text(encoding="utf-8")))
        else:
            shutil.copy(path, out / path.name)
    if not contexts:
        raise SystemExit(f"template {template} holds no delivery (context.*) records")
    for n in range(deliveries):
        old_id, text = contexts[n % len(contexts)]
        new_id = str(uuid.UUID(int=n + 1))
        version += 1
        doc = json.loads(text.replace(old_id, new_id))
        doc["metadata"]["resourceVersion"] = str(version)
        (out / f"context.{new_id}.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (out / ".lock").write_text(str(version))


def measure(name: str, store: CountingStore, read: Callable[[], Any]) -> tuple[str, float, int, int]:
    store.reset()
    began = time.perf_counter()
    try:
        read()
    except Exception as err:  # the read model is being rewritten: say so, keep measuring the rest
        print(f"   {name}: failed: {type(err).__name__}: {err}")
        return name, float("nan"), store.gets, store.listed
    return name, time.perf_counter() - began, store.gets, store.listed


def reads(store: CountingStore) -> list[tuple[str, float, int, int]]:
    from sluice.bridge.app import Bridge
    from sluice.services import readmodel
    from sluice.services.records import Records

    records = Records(store)
    bridge = Bridge(records, lambda event: None)
    return [
        measure("first list by label (builds the index)", store,
                lambda: store.list({KIND: "project"})),
        measure("list projects (label kind=project)", store, lambda: store.list({KIND: "project"})),
        measure("list one delivery's log by its context label", store,
                lambda: store.list({CONTEXT: str(uuid.UUID(int=1))})),
        measure("list every delivery of sockshop", store, lambda: store.list({KIND: "context", PROJECT: "sockshop"})),
        measure("sluice status (readmodel.project_status)", store,
                lambda: readmodel.project_status(records, "sockshop")),
        measure("sluice get event --project (readmodel.deliveries)", store,
                lambda: readmodel.deliveries(records, "sockshop")),
        measure("web view project page (bridge GET /project/sockshop)", store,
                lambda: bridge.handle("GET", "/project/sockshop", {}, {})),
    ]


def time_up(state: Path) -> tuple[str, float, int, int]:
    """Seconds for ``sluice up`` to report ready on ``state`` (then ``sluice down``)."""
    cli = str(Path(sys.executable).with_name("sluice"))
    began = time.perf_counter()
    up = subprocess.run([cli, "up", "--state-dir", str(state), "--port", str(free_port())], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - began if up.returncode == 0 else float("nan")
    subprocess.run([cli, "down", "--state-dir", str(state)], cwd=ROOT, capture_output=True, timeout=120)
    if up.returncode != 0:
        print(f"   sluice up failed ({up.returncode}): {up.stdout[-300:]} {up.stderr[-300:]}")
    return "sluice up, to ready (index built)", seconds, 0, 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="reads at growing history")
    parser.add_argument("--template", type=Path, default=None, help="state dir of a finished demo")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 1000, 10000])
    parser.add_argument("--up", action="store_true", help="also time 'sluice up' on each state")
    args = parser.parse_args(argv)
    import yaml  # noqa: F401  (imported up front: the first read must not pay for imports)

    import sluice.bridge.app
    import sluice.services.readmodel  # noqa: F401
    with tempfile.TemporaryDirectory() as tmp:
        template = args.template or make_template(Path(tmp) / "template")
        results: dict[int, list[tuple[str, float, int, int]]] = {}
        for size in args.sizes:
            target = Path(tmp) / f"state-{size}"
            began = time.perf_counter()
            build(template, target, size)
            print(f"{size:,} deliveries cloned in {time.perf_counter() - began:.1f} s", flush=True)
            results[size] = reads(CountingStore(LocalStore(target)))
            if args.up:
                os.sync()  # the clone's dirty pages would otherwise be flushed by the first fsync of the start
                results[size].append(time_up(target))
            shutil.rmtree(target)
    sizes = args.sizes
    print(f"\nreads by deliveries of history (ms; records read = gets + listed); load average {os.getloadavg()[0]:.1f}")
    header = "   " + f"{'read':<52}" + "".join(f"{s:>16,}" for s in sizes) + f"{'ratio':>8}"
    print(header)
    for row, name in enumerate(r[0] for r in results[sizes[0]]):
        cells = []
        for size in sizes:
            _, seconds, gets, listed = results[size][row]
            cells.append(f"{seconds * 1000:>8.1f} ({gets + listed:>5})")
        first, last = results[sizes[0]][row][1], results[sizes[-1]][row][1]
        ratio = last / first if first > 0 else float("nan")
        print(f"   {name:<52}" + "".join(f"{c:>16}" for c in cells) + f"{ratio:>7.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
