"""End to end: `sluice demo --canary` through `sluice up` — the real broker, function processes,
local backend and router (issue 19): 0.10.2 stops at the first canary step in production,
0.10.3 walks 10 → 25 → 50 → 100 and becomes the primary."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.adapters.state.local import LocalStore
from sluice.ports.backend import Placement
from sluice.services.ledger import Ledger
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[2]
CARTS = "docker.io/keptnexamples/carts"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_canary_demo(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run = subprocess.run(
        [sys.executable, "-m", "sluice.cli.demo", "--canary", "--state-dir", str(state), "--port", str(free_port()),
         "--perf-duration", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=560,
    )
    assert run.returncode == 0, f"demo failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    records = Records(LocalStore(state))
    lane = Ledger(records).lane(Placement("sockshop", "production", "carts"))
    assert lane.active is None and lane.serving.primary_image == f"{CARTS}:0.10.3"
    walks = {r.image.rsplit(":", 1)[1]: r for r in lane.finished if r.canary is not None}
    slow, fast = walks["0.10.2"], walks["0.10.3"]
    assert slow.outcome == "rolled_back" and slow.canary is not None
    assert [(h.weight, h.result) for h in slow.canary.history] == [(10, "fail")]
    assert "canary step 1 of 3 (10 %) failed" in slow.reason
    assert fast.outcome == "promoted" and fast.canary is not None
    assert [(h.weight, h.result) for h in fast.canary.history] == [(10, "pass"), (25, "pass"), (50, "pass")]
    assert "last canary for docker.io/keptnexamples/carts:0.10.3: 10 % pass" in run.stdout
    # Each step was judged on the candidate's share of the load on production's public address
    # (the router named the slot of every answer): 0.10.2's step left ~90 % of the requests with
    # 0.10.1 throughout, and the candidate's share was big enough to measure (>= 100 answers).
    slow_step = records.measurements("sockshop", "production", "carts", slow.context)
    assert slow_step is not None and slow_step["measured_at"] == "public"
    slots = slow_step["slots"]
    total = slots["primary"]["requests"] + slots["canary"]["requests"] + slow_step["unattributed"]
    assert total == slow_step["requests"] and slots["canary"]["requests"] >= 100
    assert 0.88 <= slots["primary"]["requests"] / total <= 0.92  # 0.10.1 served ~90 %
    assert slots["canary"]["response_time_p95"] >= 1000  # the 1 s late build, measured on its own share
    fast_step = records.measurements("sockshop", "production", "carts", fast.context)  # its last step: 50 %
    assert fast_step is not None and 0.48 <= fast_step["slots"]["canary"]["requests"] / fast_step["requests"] <= 0.52
