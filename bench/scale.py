"""Reads at 10, 1,000 and 10,000 deliveries of history: each read's time and what it read,
on the local store and on the ConfigMap store (through the fake Kubernetes API).

    .venv/bin/python bench/scale.py [--template STATE_DIR] [--sizes 10 1000 10000] [--up]
                                    [--stores local configmap]

History is cloned from real records: the template is the state of a finished ``sluice demo``
(run here into a temporary directory unless ``--template`` names one; about a minute). A history
of N deliveries is what the store holds after N deliveries like the demo's, cloned round-robin
from the demo's under new context ids, with the product's own bounds applied:

- ``context.*`` (event logs) of the newest ``DELIVERIES_LIMIT`` deliveries (older logs are
  retired to the archive, as ``Records._index_delivery`` does), and ``deliveries.<p>`` indexing them;
- each lane (``stage.*``) with the finished runs of the newest deliveries that reached its stage,
  bounded by ``Lane.bounded`` (count and bytes), written through ``Ledger.change`` (its sealed
  chunks too);
- each evaluation history with the newest ``HISTORY_LIMIT`` evaluations (appended through
  ``Records``: its head and sealed chunks), each measurement record
  with the newest ``MEASUREMENTS_LIMIT``;
- project, resources and the insight record as the demo left them (the insight record's own bound,
  90 days and 600 KiB, is not filled here).

Every read goes through the real code (the bridge's pages, ``sluice status``, ``sluice get
event``, each function's tick) over a store that counts what it read: ``gets`` by name and
``listed`` records returned by lists. On the ConfigMap store the fake API server also counts
requests (``L`` lists, ``G`` gets) and the bytes it answered. Aim (issue 17): every read within
1.5× from 10 to 10,000 deliveries, printed beside the 10-delivery figure of the same run.

Timing on a shared machine: each read runs once unmeasured (steady state), once to count what it
reads, then in five batches of reads in a row (a batch lasts about 20 ms, at most 200 reads: a
sub-millisecond read timed alone measured mostly the caches the collection before it left cold);
``--repeat`` rounds go over every size in turn. The figure is the least CPU time per read of this
process (the reader, and on ConfigMaps the fake API server's threads too), which the machine's
load hardly moves; the least wall time is printed beside it in brackets. On ConfigMaps the
``reader`` column is the ratio of the reader's own CPU: what the fake API server does (it filters a
label-selected list over every ConfigMap of the namespace, as a real one does in its own process)
is left out.

``--up`` also times ``sluice up`` (to ready) on each local state after the reads, then ``sluice down``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
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
from sluice.ports.state import Record, StateStore

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "sluice.dev/context"
KIND = "sluice.dev/kind"
PROJECT = "sluice.dev/project"
NAMESPACE = "sluice"

#: name, CPU seconds (this process: the reader and the fake API), what was read, wall seconds, CPU seconds of the
#: reader's thread alone (on ConfigMaps: without the fake API server's work, which a real API server does elsewhere)
Row = tuple[str, float, str, float, float]


class CountingStore:
    """A StateStore that counts the records it hands out."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.gets = self.listed = self.lists = 0

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


# --- building a history ------------------------------------------------------------------------

def _replace(doc: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(doc).replace(old, new))


def build(template: Path, deliveries: int) -> dict[str, dict[str, Any]]:
    """The ConfigMap-shaped documents (by name) the store holds after ``deliveries`` deliveries."""
    from sluice.adapters.state.memory import MemoryStore
    from sluice.core.ledger import FINISHED_LIMIT, Lane
    from sluice.ports.backend import Placement
    from sluice.services.ledger import Ledger
    from sluice.services.records import (
        DELIVERIES_LIMIT,
        HISTORY_LIMIT,
        MEASUREMENTS_LIMIT,
        RECORD_BUDGET,
        Records,
    )

    def placement(doc: dict[str, Any]) -> Placement:
        labels = doc["metadata"]["labels"]
        return Placement(labels[PROJECT], labels["sluice.dev/stage"], labels["sluice.dev/service"])

    docs = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((template / "configmaps").glob("*.json"))}
    logs = {n: d for n, d in docs.items() if d["metadata"].get("labels", {}).get(KIND) == "context"}
    if not logs:
        raise SystemExit(f"template {template} holds no delivery (context.*) records")
    sources = sorted(logs.values(), key=lambda d: json.loads(d["data"]["events"])[0].get("time", ""))
    ids = [d["metadata"]["labels"][CONTEXT] for d in sources]
    clones = [(str(uuid.UUID(int=n + 1)), ids[n % len(ids)]) for n in range(deliveries)]  # (new, template)
    kept = clones[-DELIVERIES_LIMIT:]
    out: dict[str, dict[str, Any]] = {}
    extra: dict[str, dict[str, Any]] = {}  # records the writes put beside the one written (sealed chunks)
    for name, doc in docs.items():
        kind = doc["metadata"].get("labels", {}).get(KIND)
        data = doc["data"]
        if kind == "context" or name == "ledger.busy-labels":
            continue
        if kind == "deliveries":  # indexed through Records (its head and sealed chunks)
            by_id = {d["context"]: d for d in json.loads(data["deliveries"])}
            memory = Records(MemoryStore())
            project = doc["metadata"]["labels"].get(PROJECT, "")
            if project:
                memory.store.put(Record(f"project.{project}", {}, {}))  # the index of a known project
            for new, old in kept:
                if old in by_id:
                    memory._index_delivery(new, project, by_id[old]["service"], by_id[old]["started"])
            written = memory.store.get(name)
            assert written is not None
            data = dict(written.data)
            extra.update(beside(memory, name, doc))
        elif kind == "stage":  # written through the ledger: the form (and labels) the code under test stores
            stored = json.loads(data["lane"])
            runs = {r["context"]: r for r in [*stored.get("finished", []), *json.loads(data.get("finished", "[]"))]}
            reached = [(new, old) for new, old in clones if old in runs][-FINISHED_LIMIT:]
            stored.update(finished=[_replace(runs[old], old, new) for new, old in reached], active=None)
            lane = Lane.from_dict(stored)
            memory = Records(MemoryStore())
            Ledger(memory).change(placement(doc), lambda _lane, lane=lane: (lane, None))
            written = memory.store.get(name)
            assert written is not None
            data = dict(written.data)
            doc = {**doc, "metadata": {**doc["metadata"], "labels": dict(written.labels)}}
            extra.update(beside(memory, name, doc))
        elif kind == "evaluations":  # appended through Records, within its bounds
            history = json.loads(data["history"])
            slos = json.loads(data.get("slos", "{}"))
            by_context = {e["context"]: e for e in history}
            reached = [(new, old) for new, old in clones if old in by_context][-HISTORY_LIMIT:]
            memory = Records(MemoryStore())
            where = placement(doc)
            for new, old in reached:
                entry = _replace(by_context[old], old, new)
                entry["slo_file"] = slos.get(entry.pop("slo_hash", ""), "")
                entry["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{new}/{name}"))
                memory.append_evaluation(where.project, where.stage, where.service, entry)
            written = memory.store.get(name)
            assert written is not None and sum(len(v) for v in written.data.values()) < RECORD_BUDGET, name
            data = dict(written.data)
            extra.update(beside(memory, name, doc))
        elif kind == "measurements":
            by_context = json.loads(data["measurements"])
            reached = [(new, old) for new, old in clones if old in by_context][-MEASUREMENTS_LIMIT:]
            data = {"measurements": json.dumps({new: by_context[old] for new, old in reached})}
        out[name] = {**doc, "data": data}
    out.update(extra)
    source_docs = dict(zip(ids, sources, strict=True))
    for new, old in kept:
        out[f"context.{new}"] = _replace(source_docs[old], old, new)
    for version, doc in enumerate(out.values(), start=1):
        doc["metadata"]["resourceVersion"] = str(version)
    return out


def beside(memory: Any, name: str, doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The other records a write of ``name`` left in ``memory`` (its sealed chunks, ``<name>.<slot>``), as documents."""
    return {r.name: {**doc, "metadata": {**doc["metadata"], "labels": dict(r.labels)}, "data": dict(r.data)}
            for r in memory.store.list({}) if r.name.startswith(f"{name}.")}


def write_local(docs: Mapping[str, dict[str, Any]], target: Path) -> None:
    """The documents as ``LocalStore`` files (its label index is built by the first list)."""
    out = target / "configmaps"
    out.mkdir(parents=True)
    for name, doc in docs.items():
        (out / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (out / ".lock").write_text(str(len(docs)))


# --- the reads ---------------------------------------------------------------------------------

class Meter:
    """Times one read and says what it read (from the counting store, and the fake API server)."""

    def __init__(self, store: CountingStore, fake: Any = None) -> None:
        self.store, self.fake = store, fake

    def __call__(self, name: str, read: Callable[[], Any], times: int = 5) -> Row:
        """What one read read, then ``times`` batches of the read in a row (each batch long enough,
        about 20 ms, that a sub-millisecond read is not one sample of the caches a collection left
        cold): the least CPU and wall time per read. ``times`` 1: one read, timed alone."""
        gc.collect()  # a collection left over from building the state must not land in a read
        self.store.reset()
        calls = len(self.fake.requests) if self.fake is not None else 0
        if self.fake is not None:
            self.fake.answered_bytes = 0
        try:
            single = self._batch(read, 1)
        except Exception as err:
            print(f"   {name}: failed: {type(err).__name__}: {err}")
            return name, float("nan"), "failed", float("nan"), float("nan")
        what = f"{self.store.gets + self.store.listed}"
        if self.fake is not None:
            served = self.fake.requests[calls:]
            lists = sum(1 for r in served if r.method == "GET" and r.name is None)
            what += f" {lists}L{len(served) - lists}G {self.fake.answered_bytes / 1024:.0f}K"
        if times == 1:
            return name, single[0], what, single[1], single[2]
        size = max(1, min(200, int(0.02 / max(single[1], 1e-5))))
        batches = [self._batch(read, size) for _ in range(times)]
        return name, min(b[0] for b in batches), what, min(b[1] for b in batches), min(b[2] for b in batches)

    @staticmethod
    def _batch(read: Callable[[], Any], size: int) -> tuple[float, float, float]:
        """CPU of the process, wall, and CPU of this thread alone, per read, over ``size`` reads in a row."""
        gc.collect()
        began, cpu, mine = time.perf_counter(), time.process_time(), time.thread_time()
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(size):
                read()
        return ((time.process_time() - cpu) / size, (time.perf_counter() - began) / size,
                (time.thread_time() - mine) / size)


def newest(records: Any, kind: str) -> str:
    return str(records.contexts("sockshop", limit=1)[-1]) if kind == "context" else str(
        records.evaluations("sockshop", "staging", "carts")[-1]["id"])


def tick_runtime(records: Any) -> Any:
    """A function's composition root over the bench's records (nothing else built)."""
    from sluice.adapters.secrets import create_secrets
    from sluice.config import Settings
    from sluice.functions.runtime import Runtime

    runtime = Runtime(Settings(), "bench")
    runtime.__dict__.update(records=records, store=records.store, secrets=create_secrets("memory"), backend=None)
    return runtime


def reads(store: CountingStore, fake: Any = None) -> list[Row]:
    from sluice.bridge.app import Bridge
    from sluice.cli.get import get_event
    from sluice.cli.status import render
    from sluice.core.events import Event, Ping
    from sluice.functions import deploy, evaluate, eventlog, gatekeeper, test
    from sluice.services import readmodel
    from sluice.services.records import Records

    records = Records(store)
    bridge = Bridge(records, lambda event: None)
    meter = Meter(store, fake)
    context, evaluation_id = newest(records, "context"), newest(records, "evaluation")

    def page(path: str) -> Callable[[], Any]:
        def read() -> None:
            body, status, _ = bridge.handle("GET", path, {}, {})
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {str(body)[:200]}")
        return read

    def events(**options: Any) -> Callable[[], Any]:
        args = argparse.Namespace(**{"context": None, "type": None, "project": "", "limit": 50, "deliveries": 10, "output": "json", **options})
        import sluice.cli.common as common

        def read() -> None:
            saved = common.records
            common.records = lambda _args: records  # type: ignore[assignment]
            try:
                get_event(args)
            finally:
                common.records = saved
        return read

    def tick(module: Any) -> Callable[[], Any]:
        runtime = tick_runtime(records)
        ping = Event.new(Ping(), source="bench", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z")
        return lambda: module.handle(ping, runtime)

    first = meter("first list by label (builds the local index once)", lambda: store.list({KIND: "project"}), times=1)
    plan: list[tuple[str, Callable[[], Any]]] = []
    for name, path in (("/", "/"), ("project page", "/project/sockshop"),
                       ("service page (deliveries)", "/project/sockshop/service/carts"),
                       ("delivery page (newest)", f"/delivery/{context}"),
                       ("evaluation page", f"/evaluation/sockshop/staging/carts/{evaluation_id}"),
                       ("history page", "/history/sockshop/staging/carts"),
                       ("/metrics", "/metrics"),
                       ("api project", "/api/projects/sockshop"),
                       ("api deliveries", "/api/projects/sockshop/services/carts/deliveries")):
        plan.append((f"web view {name}", page(path)))
    plan += [
        ("sluice status", lambda: render(readmodel.project_status(records, "sockshop"))),
        ("sluice get event --project", events(project="sockshop")),
        ("sluice get event (all projects)", events()),
        ("sluice get event --context", events(context=context)),
        ("get event --project --type evaluation-done", events(project="sockshop", type="sh.keptn.events.evaluation-done")),
        ("get event --type approval.triggered (rare)", events(type="sh.keptn.events.approval.triggered")),
    ]
    for module in (deploy, test, evaluate, gatekeeper, eventlog):
        plan.append((f"tick: {module.__name__.rsplit('.', 1)[-1]}", tick(module)))
    for _name, read in plan:  # once unmeasured: steady state (a first tick's one-time work is not a tick's cost)
        with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
            read()
    return [first, *(meter(name, read) for name, read in plan)]


def time_up(state: Path) -> Row:
    """Seconds for ``sluice up`` to report ready on ``state`` (then ``sluice down``)."""
    cli = str(Path(sys.executable).with_name("sluice"))
    began = time.perf_counter()
    up = subprocess.run([cli, "up", "--state-dir", str(state), "--port", str(free_port())], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - began if up.returncode == 0 else float("nan")
    subprocess.run([cli, "down", "--state-dir", str(state)], cwd=ROOT, capture_output=True, timeout=120)
    if up.returncode != 0:
        print(f"   sluice up failed ({up.returncode}): {up.stdout[-300:]} {up.stderr[-300:]}")
    return "sluice up, to ready (wall)", seconds, "-", seconds, seconds


def on_local(docs: Mapping[str, dict[str, Any]], target: Path, up: bool) -> list[Row]:
    write_local(docs, target)
    rows = reads(CountingStore(LocalStore(target)))
    if up:
        os.sync()  # the clone's dirty pages would otherwise be flushed by the first fsync of the start
        rows.append(time_up(target))
    shutil.rmtree(target)
    return rows


def on_configmaps(docs: Mapping[str, dict[str, Any]]) -> list[Row]:
    sys.path.insert(0, str(ROOT))  # the clone: tests.support
    from tests.support.fake_kube import FakeKube

    from sluice.adapters.state.configmap import MANAGED_BY, MANAGER, ConfigMapStore

    class CountingFake(FakeKube):
        answered_bytes = 0

        def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
            code, answer = super().handle(method, raw_path, headers, body)
            self.answered_bytes += len(json.dumps(answer))
            return code, answer

    with CountingFake() as fake:
        fake.add_namespace(NAMESPACE)
        for name, doc in docs.items():
            meta = {**doc["metadata"], "name": name, "namespace": NAMESPACE,
                    "labels": {**doc["metadata"].get("labels", {}), MANAGED_BY: MANAGER}}
            meta.pop("resourceVersion", None)
            fake.seed("configmaps", {**doc, "metadata": meta})
        store = CountingStore(ConfigMapStore(fake.api_client(), NAMESPACE))
        return reads(store, fake)[1:]  # no local index to build


def table(title: str, sizes: list[int], results: Mapping[int, list[Row]], reader: bool = False) -> None:
    """One line a read: each size's figures and the ratio of the largest to the smallest; with
    ``reader`` also the ratio of the reader's own CPU (without the fake API server's)."""
    print(f"\n{title}")
    print("   " + f"{'read':<46}" + "".join(f"{s:>32,}" for s in sizes) + f"{'ratio':>8}" + (f"{'reader':>8}" if reader else ""))
    for row, name in enumerate(r[0] for r in results[sizes[0]]):
        cells = [f"{results[s][row][1] * 1000:7.1f} [{results[s][row][3] * 1000:.0f}] ({results[s][row][2]})" for s in sizes]
        line = f"   {name:<46}" + "".join(f"{c:>32}" for c in cells)
        for figure in ((lambda r: r[1]), (lambda r: r[4]))[: 2 if reader else 1]:
            first, last = figure(results[sizes[0]][row]), figure(results[sizes[-1]][row])
            line += f"{last / first if first > 0 else float('nan'):>7.2f}×"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="reads at growing history")
    parser.add_argument("--template", type=Path, default=None, help="state dir of a finished demo")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 1000, 10000])
    parser.add_argument("--stores", nargs="*", default=["local", "configmap"], choices=["local", "configmap"])
    parser.add_argument("--up", action="store_true", help="also time 'sluice up' on each local state")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each read; the fastest is shown")
    args = parser.parse_args(argv)
    import yaml  # noqa: F401  (imported up front: the first read must not pay for imports)

    import sluice.bridge.app
    import sluice.bridge.prometheus
    import sluice.services.readmodel  # noqa: F401
    with tempfile.TemporaryDirectory() as tmp:
        template = args.template or make_template(Path(tmp) / "template")
        built = {}
        for size in args.sizes:
            began = time.perf_counter()
            built[size] = build(template, size)
            print(f"{size:,} deliveries: {len(built[size]):,} records built in {time.perf_counter() - began:.1f} s", flush=True)
        # Rounds over every size in turn (the machine's load falls on all sizes alike); per read the fastest.
        local: dict[int, list[list[Row]]] = {size: [] for size in args.sizes}
        kube: dict[int, list[list[Row]]] = {size: [] for size in args.sizes}
        for n in range(args.repeat):
            for size in args.sizes:
                if "local" in args.stores:
                    local[size].append(on_local(built[size], Path(tmp) / f"state-{size}-{n}", args.up and n == args.repeat - 1))
                if "configmap" in args.stores:
                    kube[size].append(on_configmaps(built[size]))
            print(f"round {n + 1} of {args.repeat} done", flush=True)
    load = os.getloadavg()[0]
    note = ("(CPU ms of this process, the reader and the fake API server, least of 5 reads × the rounds; [wall ms]; "
            "(records read = gets + listed; on ConfigMaps also API lists L, gets G and KiB answered))")
    if "local" in args.stores:
        table(f"local store: ms by deliveries of history {note}; load {load:.1f}", args.sizes,
              {size: best(runs) for size, runs in local.items()})
    if "configmap" in args.stores:
        table(f"ConfigMap store, fake API: ms by deliveries of history {note}; load {load:.1f}; 'reader': the ratio "
              "of the reader's own CPU, without the fake API server's (a real one filters a label-selected list "
              "over every ConfigMap of the namespace in its own process)", args.sizes,
              {size: best(runs) for size, runs in kube.items()}, reader=True)
    return 0


def best(runs: list[list[Row]]) -> list[Row]:
    """Per read, the fastest of the runs (what it read is the same in each)."""
    out = []
    longest = max(runs, key=len)
    runs = [r + longest[len(r):] for r in runs]  # the rows only the last round measured ('sluice up')
    for rows in zip(*runs, strict=True):
        fastest = min(rows, key=lambda r: r[1] if r[1] == r[1] else float("inf"))
        out.append(fastest)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
