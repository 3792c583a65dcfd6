"""``sluice test`` on a starved load generator: neither pass (exit 0) nor fail (exit 1) — the
measurement could not be trusted, so it exits 4 (as ``sluice evaluate --strict-data`` does for an
inconclusive evaluation) and says why."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.support.httptarget import TargetServer

from sluice.cli.main import main
from sluice.loadgen import LoadProfile, LoadReport
from sluice.loadgen.engine import new_loop, run_load
from sluice.services import testing

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def starved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real engine, its event loop blocked for 0.8 s of the run (this process starved of CPU)."""

    def starved_load(base_url: str, profile: LoadProfile, **_: Any) -> LoadReport:
        async def run() -> LoadReport:
            asyncio.get_running_loop().call_later(0.3, time.sleep, 0.8)
            return await run_load(base_url, replace(profile, workers=1))

        with asyncio.Runner(loop_factory=new_loop) as runner:
            return runner.run(run())

    monkeypatch.setattr(testing, "run_load_sync", starved_load)


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_starved_load_exits_4_and_says_why(target: TargetServer, tmp_path: Path, starved: None, output: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tests.yaml"
    spec.write_text("health: {path: /health}\nperformance: {rate: 40, duration: 2s, requests: [{path: /}]}\n")
    code = main(["test", "--spec", str(spec), "--url", target.url, "--strategy", "performance", "--output", output])
    out = capsys.readouterr().out
    assert code == 4, out
    if output == "json":
        assert "fell behind its schedule" in json.loads(out)["inconclusive"]
    else:
        assert "INCONCLUSIVE" in out and "fell behind its schedule" in out
