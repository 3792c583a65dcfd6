"""The local Prometheus' plumbing without the binary: scrape targets, the relay, a missing binary."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sluice.embedded.prometheus import (
    _relay_handler,
    ensure_prometheus,
    relay_targets,
    sync_targets,
    targets_from_runtime,
    write_targets,
)
from sluice.errors import ConfigurationError


def slot(runtime: Path, project: str, stage: str, service: str, name: str, port: int) -> None:
    folder = runtime / "slots"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"project": project, "stage": stage, "service": service, "slot": name, "port": port, "image": "x"}
    (folder / f"{project}.{stage}.{service}.{name}.json").write_text(json.dumps(record))


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, server.server_port


def test_targets_carry_kubernetes_like_labels(tmp_path: Path) -> None:
    """Each slot becomes a target with job <svc>-<project>-<stage>[-canary] and its placement labels."""
    slot(tmp_path, "sockshop", "staging", "carts", "canary", 4001)
    slot(tmp_path, "sockshop", "staging", "carts", "primary", 4002)
    slot(tmp_path, "sockshop", "dev", "carts", "direct", 4003)
    (tmp_path / "slots" / "broken.json").write_text("{")
    by_job = {t.job: t for t in targets_from_runtime(tmp_path)}
    assert set(by_job) == {"carts-sockshop-staging-canary", "carts-sockshop-staging", "carts-sockshop-dev"}
    canary = by_job["carts-sockshop-staging-canary"]
    assert canary.address == "127.0.0.1:4001"
    assert dict(canary.labels) == {"namespace": "sockshop-staging", "project": "sockshop", "stage": "staging",
                                   "service": "carts", "slot": "canary"}


def test_relay_targets_cover_sibling_slots(tmp_path: Path) -> None:
    """Through the relay, a blue/green placement gets both its slots' targets, at stable paths."""
    targets = relay_targets([("sockshop", "staging", "carts", "canary"), ("sockshop", "dev", "carts", "direct")], "127.0.0.1:7000")
    paths = sorted(t.metrics_path for t in targets)
    assert paths == ["/metrics/sockshop/dev/carts/direct", "/metrics/sockshop/staging/carts/canary",
                     "/metrics/sockshop/staging/carts/primary"]
    group = next(t for t in targets if t.labels["slot"] == "canary").to_file_sd()
    assert group["targets"] == ["127.0.0.1:7000"]
    assert group["labels"]["job"] == "carts-sockshop-staging-canary"
    assert group["labels"]["__metrics_path__"] == "/metrics/sockshop/staging/carts/canary"
    assert group["labels"]["instance"] == "carts-canary.sockshop-staging"


def test_write_targets_is_atomic_and_idempotent(tmp_path: Path) -> None:
    """targets.json is file_sd JSON; writing the same targets again changes nothing."""
    slot(tmp_path / "runtime", "sockshop", "dev", "carts", "direct", 4003)
    written = sync_targets(tmp_path)
    path = tmp_path / "prometheus" / "targets.json"
    assert json.loads(path.read_text())[0]["targets"] == ["127.0.0.1:4003"]
    assert write_targets(tmp_path, written) is False
    assert write_targets(tmp_path, []) is True and json.loads(path.read_text()) == []
    assert not list((tmp_path / "prometheus").glob("*.tmp"))


@pytest.fixture
def exporter() -> Iterator[int]:
    class Metrics(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = b"up_test 1\n" if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server, port = serve(Metrics)
    yield port
    server.shutdown()
    server.server_close()


def test_relay_forwards_to_the_slots_current_port(tmp_path: Path, exporter: int) -> None:
    """The relay answers a slot's path with the metrics of the port its record names; 404 otherwise."""
    slot(tmp_path, "sockshop", "staging", "carts", "canary", exporter)
    server, port = serve(_relay_handler(tmp_path))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/sockshop/staging/carts/canary", timeout=5) as r:
            assert r.read() == b"up_test 1\n"
        for path in ("/metrics/sockshop/staging/carts/primary", "/metrics/../../etc/passwd/x", "/other"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    """Without the binary, ensure_prometheus raises a ConfigurationError naming the package."""
    with pytest.raises(ConfigurationError, match=r"apt-get install -y prometheus.*make system-deps"):
        ensure_prometheus(tmp_path, 0, binary="no-such-prometheus-binary")
