"""The local deployment backend through real processes and the weighted router."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sluice.adapters.backends import BACKENDS, create_backend
from sluice.adapters.backends.local import (
    LocalBackend,
    SlotRecord,
    normalize_image,
    parse_image_map,
)
from sluice.adapters.backends.noop import NoopBackend
from sluice.embedded.host import pid_alive
from sluice.errors import ConfigurationError, PermanentError, ValidationError
from sluice.ports.backend import Placement, Slot

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sockshop"
CARTS = "docker.io/keptnexamples/carts"
V1, V2, V3 = f"{CARTS}:0.10.1", f"{CARTS}:0.10.2", f"{CARTS}:0.10.3"
NEVER_READY = "example.org/never-ready:1"
CRASHES = "example.org/crashes:1"
PORT_RACE = "example.org/port-race:1"
STAGING = Placement("sockshop", "staging", "carts")
DEV = Placement("sockshop", "dev", "carts")


@pytest.fixture
def image_map(tmp_path: Path) -> Path:
    """The example image map plus two broken images, written with absolute paths."""
    data = yaml.safe_load((EXAMPLE / "images.yaml").read_text())
    for entry in data["images"].values():
        entry["command"] = [arg.replace("{dir}", str(EXAMPLE)) for arg in entry["command"]]
    data["images"][NEVER_READY] = {
        "command": ["{python}", "-c", "import sys, time; print('listening on', sys.argv[1]); time.sleep(60)", "{port}"]
    }
    data["images"][CRASHES] = {
        "command": ["{python}", "-c", "import sys; sys.stderr.write('boom: no config\\n'); sys.exit(3)", "{port}"]
    }
    data["images"][PORT_RACE] = {  # loses the port race once, then serves as 0.10.1
        "command": [
            "{python}", "-c",
            "import os, sys; port, marker, app = sys.argv[1:]\n"
            "if not os.path.exists(marker):\n"
            "    open(marker, 'w').close(); print('OSError: [Errno 98] Address already in use'); sys.exit(1)\n"
            "os.execv(sys.executable, [sys.executable, app, '--port', port, '--app-version', '0.10.1'])",
            "{port}", str(tmp_path / "lost-once"), str(EXAMPLE / "carts" / "app.py"),
        ]
    }  # fmt: skip
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _pids(runtime: Path) -> list[int]:
    pids = [json.loads(p.read_text())["pid"] for p in (runtime / "slots").glob("*.json")] if (runtime / "slots").is_dir() else []
    router = runtime / "router.json"
    if router.exists():
        pids.append(json.loads(router.read_text())["pid"])
    return pids


@pytest.fixture
def backend(tmp_path: Path, image_map: Path) -> Iterator[LocalBackend]:
    """A local backend whose processes are always stopped at the end, even when a test fails."""
    runtime = tmp_path / "runtime"
    started: set[int] = set()
    b = LocalBackend(image_map, runtime, drain_timeout_s=15, stop_timeout_s=3)
    original = b._start

    def tracking_start(*args: Any, **kwargs: Any) -> SlotRecord:
        record = original(*args, **kwargs)
        started.add(record.pid)
        return record

    b._start = tracking_start  # type: ignore[method-assign]
    try:
        yield b
    finally:
        started.update(_pids(runtime))
        b.stop_all()
        for pid in started:  # belt and braces: nothing may outlive the test
            if pid_alive(pid, None):
                os.killpg(pid, signal.SIGKILL)


def version(url: str) -> str:
    response = httpx.get(url + "/version", timeout=10)
    response.raise_for_status()
    return str(response.json()["version"])


@pytest.mark.slow
def test_blue_green_walk_set_discard_set_promote(backend: LocalBackend) -> None:
    """0.10.1 primary → 0.10.2 canary at 100 % → discarded → 0.10.3 canary → promoted, on one stable stage URL."""
    backend.deploy(STAGING, Slot.PRIMARY, V1, 10)
    stage = backend.route(STAGING, 0)
    assert version(stage) == "0.10.1"

    canary = backend.deploy(STAGING, Slot.CANARY, V2, 10)
    assert version(canary) == "0.10.2"
    assert backend.route(STAGING, 100) == stage
    assert version(stage) == "0.10.2"

    backend.route(STAGING, 0)  # discard
    backend.scale_to_zero(STAGING, Slot.CANARY)
    assert version(stage) == "0.10.1"
    assert [s.slot for s in backend.status()] == [Slot.PRIMARY]

    backend.deploy(STAGING, Slot.CANARY, V3, 10)
    backend.route(STAGING, 100)
    assert version(stage) == "0.10.3"

    backend.deploy(STAGING, Slot.PRIMARY, V3, 10)  # promote
    backend.route(STAGING, 0)
    backend.scale_to_zero(STAGING, Slot.CANARY)
    assert version(stage) == "0.10.3"
    assert [(s.slot, s.image, s.state) for s in backend.status()] == [(Slot.PRIMARY, V3, "running")]
    assert backend.stage_url(STAGING) == stage


@pytest.mark.slow
def test_direct_stage_replaces_its_process_and_keeps_its_url(backend: LocalBackend) -> None:
    """A direct stage's new image replaces the old process; the stage URL stays and the old process stops."""
    backend.deploy(DEV, Slot.DIRECT, V1, 10)
    old_pid = backend._read_record(DEV, Slot.DIRECT).pid  # type: ignore[union-attr]
    stage = backend.route(DEV, 100)  # the weight is ignored for a direct stage
    assert version(stage) == "0.10.1"
    backend.deploy(DEV, Slot.DIRECT, V3, 10)
    assert version(stage) == "0.10.3"
    assert not pid_alive(old_pid, None)


@pytest.mark.slow
def test_no_request_fails_while_weights_switch_and_slots_are_replaced(backend: LocalBackend) -> None:
    """Four clients looping on the stage URL see zero failures through weight switches, a promote and a discard of a slow canary."""
    backend.deploy(STAGING, Slot.PRIMARY, V1, 10)
    stage = backend.route(STAGING, 0)
    seen: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=15) as http:
            while not stop.is_set():
                try:
                    response = http.get(stage + "/version")
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")
                    else:
                        seen[response.json()["version"]] += 1
                except httpx.HTTPError as err:
                    failures.append(repr(err))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        backend.deploy(STAGING, Slot.CANARY, V3, 10)
        for weight in (50, 100, 0, 100, 25, 100):
            backend.route(STAGING, weight)
            time.sleep(0.1)
        backend.deploy(STAGING, Slot.PRIMARY, V3, 10)  # promote: the primary process is replaced under load
        backend.route(STAGING, 0)
        backend.scale_to_zero(STAGING, Slot.CANARY)
        backend.deploy(STAGING, Slot.CANARY, V2, 10)  # a slow canary with requests in flight ...
        backend.route(STAGING, 100)
        time.sleep(0.5)
        backend.route(STAGING, 0)  # ... discarded while they are still running
        backend.scale_to_zero(STAGING, Slot.CANARY)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == []
    assert seen["0.10.1"] > 0 and seen["0.10.3"] > 0 and seen["0.10.2"] > 0


@pytest.mark.slow
def test_candidate_that_never_becomes_ready_fails_and_is_stopped(backend: LocalBackend) -> None:
    """A process that never answers its health path within the timeout is a PermanentError and is stopped."""
    backend.deploy(STAGING, Slot.PRIMARY, V1, 10)
    stage = backend.route(STAGING, 0)
    with pytest.raises(PermanentError, match=r"not ready within 1 s") as info:
        backend.deploy(STAGING, Slot.CANARY, NEVER_READY, 1)
    assert "listening on" in str(info.value)  # its last output is in the message
    assert backend._read_record(STAGING, Slot.CANARY) is None
    assert [s.slot for s in backend.status()] == [Slot.PRIMARY]
    assert _no_process_running("time.sleep(60)")
    assert version(stage) == "0.10.1"  # the primary is untouched


@pytest.mark.slow
def test_process_that_exits_early_reports_its_output(backend: LocalBackend) -> None:
    """A process that exits before it is ready is a PermanentError with its exit code and last output."""
    with pytest.raises(PermanentError, match=r"exited with code 3") as info:
        backend.deploy(STAGING, Slot.CANARY, CRASHES, 5)
    assert "boom: no config" in str(info.value)
    assert backend.status() == []


def _no_process_running(marker: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text and "pytest" not in text:
            return False
    return True


def test_unknown_image_names_it_and_the_known_ones(backend: LocalBackend, tmp_path: Path) -> None:
    """An image missing from the image map is a PermanentError naming it and the known images; nothing starts."""
    with pytest.raises(PermanentError) as info:
        backend.deploy(STAGING, Slot.CANARY, "docker.io/keptnexamples/carts:9.9.9", 5)
    message = str(info.value)
    assert "carts:9.9.9" in message and V1 in message and V3 in message
    assert not (tmp_path / "runtime" / "router.json").exists()
    assert backend.status() == []


@pytest.mark.slow
def test_repeated_calls_change_nothing(backend: LocalBackend) -> None:
    """Deploying the same image twice keeps the same process and URL; route and scale_to_zero repeat safely."""
    first = backend.deploy(STAGING, Slot.PRIMARY, V1, 10)
    pid = backend._read_record(STAGING, Slot.PRIMARY).pid  # type: ignore[union-attr]
    assert backend.deploy(STAGING, Slot.PRIMARY, "keptnexamples/carts:0.10.1", 10) == first
    assert backend._read_record(STAGING, Slot.PRIMARY).pid == pid  # type: ignore[union-attr]
    assert backend.route(STAGING, 0) == backend.route(STAGING, 0)
    backend.scale_to_zero(STAGING, Slot.CANARY)  # never deployed
    backend.deploy(STAGING, Slot.CANARY, V3, 10)
    backend.scale_to_zero(STAGING, Slot.CANARY)
    backend.scale_to_zero(STAGING, Slot.CANARY)
    assert version(backend.route(STAGING, 0)) == "0.10.1"


def test_route_refuses_canary_traffic_without_a_canary(backend: LocalBackend) -> None:
    """Routing weight to a canary that is not running is a PermanentError; bad weights are invalid."""
    with pytest.raises(PermanentError, match="no canary is running"):
        backend.route(STAGING, 100)
    with pytest.raises(ValidationError):
        backend.route(STAGING, 101)
    with pytest.raises(ValidationError, match="DNS label"):
        backend.route(Placement("sock/shop", "staging", "carts"), 0)


@pytest.mark.slow
def test_stop_all_leaves_no_process_and_reconcile_restarts_what_died(backend: LocalBackend, tmp_path: Path) -> None:
    """reconcile restarts a killed slot and router on the same stage URL; stop_all stops every process."""
    runtime = tmp_path / "runtime"
    backend.deploy(STAGING, Slot.PRIMARY, V1, 10)
    backend.deploy(DEV, Slot.DIRECT, V3, 10)
    stage = backend.route(STAGING, 0)
    killed = backend._read_record(STAGING, Slot.PRIMARY).pid  # type: ignore[union-attr]
    router_pid = json.loads((runtime / "router.json").read_text())["pid"]
    os.killpg(killed, signal.SIGKILL)
    os.killpg(router_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (pid_alive(killed, None) or pid_alive(router_pid, None)) and time.monotonic() < deadline:
        time.sleep(0.05)

    states = {(s.placement.stage, s.state) for s in backend.reconcile(timeout_s=10)}
    assert states == {("staging", "restarted"), ("dev", "running")}
    assert backend.stage_url(STAGING) == stage
    assert version(stage) == "0.10.1"

    pids = _pids(runtime)
    assert len(pids) == 3
    stopped = backend.stop_all()
    assert {s.placement.stage for s in stopped} == {"staging", "dev"}
    assert not any(pid_alive(pid, None) for pid in pids)
    assert {(s.placement.stage, s.state) for s in backend.status()} == {("staging", "stopped"), ("dev", "stopped")}
    assert backend.stage_url(STAGING) == stage  # the port is kept for the next `up`
    backend.stop_all(forget=True)
    assert backend.status() == []


@pytest.mark.slow
def test_slot_urls_stay_the_live_ones_across_a_promotion(backend: LocalBackend) -> None:
    """The URL ``deploy`` returns for a slot keeps serving that slot: after a promotion the primary's
    recorded URL serves the promoted build (defect 10: it pointed at a stopped process)."""
    primary = backend.deploy(STAGING, Slot.PRIMARY, V1, 10)
    canary = backend.deploy(STAGING, Slot.CANARY, V3, 10)
    stage = backend.route(STAGING, 100)
    assert (version(primary), version(canary), version(stage)) == ("0.10.1", "0.10.3", "0.10.3")
    assert backend.deploy(STAGING, Slot.PRIMARY, V3, 10) == primary  # promote: same URL, new process
    backend.route(STAGING, 0)
    backend.scale_to_zero(STAGING, Slot.CANARY)
    assert version(primary) == "0.10.3" and version(stage) == "0.10.3"
    assert httpx.get(canary + "/version", timeout=10).status_code == 503  # scaled to zero, URL kept
    assert backend.deploy(STAGING, Slot.CANARY, V1, 10) == canary
    assert version(canary) == "0.10.1"


@pytest.mark.slow
def test_every_recorded_url_serves_again_after_stop_all_and_reconcile(backend: LocalBackend) -> None:
    """After ``stop_all`` (what ``sluice down`` does) every URL refuses; ``reconcile`` (``sluice up``) brings
    each stage and slot URL back with the version it served."""
    urls = {
        "staging primary": (backend.deploy(STAGING, Slot.PRIMARY, V1, 10), "0.10.1"),
        "staging canary": (backend.deploy(STAGING, Slot.CANARY, V3, 10), "0.10.3"),
        "dev direct": (backend.deploy(DEV, Slot.DIRECT, V3, 10), "0.10.3"),
    }
    urls["staging"] = (backend.route(STAGING, 0), "0.10.1")
    urls["dev"] = (backend.route(DEV, 100), "0.10.3")
    backend.stop_all()
    for url, _ in urls.values():
        with pytest.raises(httpx.HTTPError):
            httpx.get(url + "/version", timeout=2)
    states = sorted(s.state for s in backend.reconcile(timeout_s=20))
    assert states == ["restarted"] * 3
    assert {name: version(url) for name, (url, _) in urls.items()} == {name: v for name, (_, v) in urls.items()}


def test_image_references_are_normalised() -> None:
    """Short Docker Hub references match their full form; registries with a host are kept."""
    assert normalize_image("keptnexamples/carts:0.10.1") == V1
    assert normalize_image("carts:1") == "docker.io/library/carts:1"
    assert normalize_image("ghcr.io/acme/carts") == "ghcr.io/acme/carts:latest"
    assert normalize_image("localhost:5000/carts:2") == "localhost:5000/carts:2"


def test_invalid_image_map_lists_every_problem() -> None:
    """A malformed image map is a ConfigurationError naming each bad entry."""
    data = {"images": {"a:1": {"command": "not a list"}, "b:1": {"command": ["x"]}, "c:1": {"command": ["x", "{port}"], "helth": "/"}}}
    with pytest.raises(ConfigurationError) as info:
        parse_image_map(data, "test map", {"python": sys.executable, "dir": "/"})
    message = str(info.value)
    assert "a:1" in message and "b:1" in message and "helth" in message
    with pytest.raises(ConfigurationError, match="'images'"):
        parse_image_map({"image": {}}, "test map", {})


def test_registry_builds_known_backends_and_rejects_unknown_names(tmp_path: Path) -> None:
    """create_backend knows every backend module and names them all when asked for another."""
    assert {"local", "noop"} <= set(BACKENDS)
    assert isinstance(create_backend("noop"), NoopBackend)
    assert isinstance(create_backend("local", image_map=EXAMPLE / "images.yaml", runtime_dir=tmp_path), LocalBackend)
    with pytest.raises(ConfigurationError, match=r"'istio'.*" + ", ".join(sorted(BACKENDS))):
        create_backend("istio")
    with pytest.raises(ConfigurationError, match="invalid settings"):
        create_backend("noop", colour="blue")


def test_noop_backend_records_calls_and_fails_on_request() -> None:
    """The noop backend answers fake URLs, tracks images and weights, and fails the images it is told to."""
    noop = NoopBackend(fail_images={V2})
    assert noop.deploy(STAGING, Slot.PRIMARY, V1, 1) == "http://carts-primary.sockshop-staging"
    assert noop.route(STAGING, 0) == "http://carts.sockshop-staging"
    with pytest.raises(PermanentError, match=r"0\.10\.2"):
        noop.deploy(STAGING, Slot.CANARY, V2, 1)
    noop.scale_to_zero(STAGING, Slot.CANARY)
    assert [c.method for c in noop.calls] == ["deploy", "route", "deploy", "scale_to_zero"]
    assert noop.images == {(STAGING, Slot.PRIMARY): V1}
    assert noop.weights == {STAGING: 0}


@pytest.mark.slow
def test_a_lost_port_race_is_retried_on_another_port(backend: LocalBackend, tmp_path: Path) -> None:
    """A process that fails with 'Address already in use' is started again on a new port."""
    url = backend.deploy(STAGING, Slot.PRIMARY, PORT_RACE, 10)
    assert (tmp_path / "lost-once").exists()
    assert version(url) == "0.10.1"


@pytest.mark.slow
def test_concurrent_deploys_from_several_processes_share_one_router(tmp_path: Path, image_map: Path) -> None:
    """Backends in parallel (as several function processes would be) start one router and serve both stages."""
    runtime = tmp_path / "runtime"
    backends = [LocalBackend(image_map, runtime, stop_timeout_s=3) for _ in range(2)]
    errors: list[BaseException] = []
    urls: dict[str, str] = {}

    def run(b: LocalBackend, placement: Placement, slot: Slot) -> None:
        try:
            b.deploy(placement, slot, V1, 10)
            urls[placement.stage] = b.route(placement, 0)
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=run, args=(backends[0], STAGING, Slot.PRIMARY)),
        threading.Thread(target=run, args=(backends[1], DEV, Slot.DIRECT)),
    ]
    pids: list[int] = []
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        pids = _pids(runtime)
        assert errors == []
        assert version(urls["staging"]) == version(urls["dev"]) == "0.10.1"
        assert len(_router_pids(runtime)) == 1
    finally:
        backends[0].stop_all()
        for pid in pids + _router_pids(runtime):
            if pid_alive(pid, None):
                os.killpg(pid, signal.SIGKILL)


def _router_pids(runtime: Path) -> list[int]:
    """Router processes serving ``runtime`` (found by their command line)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "sluice.embedded.router" in text and str(runtime.resolve()) in text:
            found.append(int(cmdline.parent.name))
    return found
