"""The bridge's ``/metrics`` scraped by a real Prometheus, and a rate queried back.

The bridge runs as it does in production (functions-framework, ``--target bridge``) over a
local state directory that real (in-process) deliveries wrote; Prometheus (Debian's binary,
started by the suite's ``ensure_prometheus``) scrapes it every second.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.insight_world import make_world
from tests.support.prometheus import require_prometheus

from sluice.adapters.state.local import LocalStore
from sluice.embedded.broker.processes import functions_framework
from sluice.embedded.host import free_port
from sluice.embedded.prometheus import (
    ScrapeTarget,
    ensure_prometheus,
    stop_prometheus,
    write_targets,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[4]


def query(url: str, expr: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as r:
        return list(json.load(r)["data"]["result"])


def wait_for(url: str, expr: str, check, what: str, timeout_s: float = 60.0) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    result: list[dict] = []
    while time.monotonic() < deadline:
        result = query(url, expr)
        if result and check(result):
            return result
        time.sleep(0.3)
    pytest.fail(f"{what}: {expr} gave {result} within {timeout_s:g} s")


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    state = tmp_path / "state"
    state.mkdir()
    port = free_port()
    env = {**os.environ, "SLUICE_STATE_DIR": str(state), "SLUICE_STATE": "local"}
    log = (tmp_path / "bridge.log").open("w+")
    proc = subprocess.Popen(
        [functions_framework(), "--source", str(ROOT / "functions" / "main.py"), "--target", "bridge",
         "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"the bridge did not answer: {log.read()[-2000:]}")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}", state
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_prometheus_scrapes_delivery_metrics_and_answers_a_rate(bridge: tuple[str, Path], tmp_path: Path) -> None:
    """Prometheus scrapes sluice_deliveries_total from the bridge; after one more build reaches
    production, the rate of promotions to production is positive."""
    require_prometheus()
    address, state = bridge
    world = make_world(store=LocalStore(state), start=datetime.now(UTC) - timedelta(minutes=30))
    world.deliver("0.10.1")
    world.deliver("0.10.2")
    prom_dir = tmp_path / "prom"
    url = ensure_prometheus(prom_dir, 0, scrape_interval_s=1.0, timeout_s=60.0, watch=False)
    try:
        write_targets(prom_dir, [ScrapeTarget("sluice-bridge", address)])
        promoted = 'sluice_deliveries_total{job="sluice-bridge",stage="production",outcome="promoted"}'
        wait_for(url, promoted, lambda r: float(r[0]["value"][1]) == 1, "the first promotion to production")
        caught = wait_for(url, 'sluice_gate_catches_total{stage="staging"}', lambda r: True, "the catch in staging")
        assert caught[0]["metric"]["reason"] == "evaluation_fail" and float(caught[0]["value"][1]) == 1
        world.deliver("0.10.3")
        wait_for(url, promoted, lambda r: float(r[0]["value"][1]) == 2, "the second promotion")
        rate = wait_for(url, f"rate({promoted}[1m])", lambda r: float(r[0]["value"][1]) > 0, "a rate of promotions")
        assert float(rate[0]["value"][1]) > 0
        lead = wait_for(url, 'histogram_quantile(0.5, sum by (le) (sluice_lead_time_seconds_bucket{job="sluice-bridge"}))',
                        lambda r: True, "the median lead time")
        assert float(lead[0]["value"][1]) > 0
    finally:
        stop_prometheus(prom_dir)
