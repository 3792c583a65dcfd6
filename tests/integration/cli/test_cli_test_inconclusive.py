"""``sluice test`` on a starved load generator: neither pass (exit 0) nor fail (exit 1) — the
measurement could not be trusted, so it exits 4 (as ``sluice evaluate --strict-data`` does for an
inconclusive evaluation) and says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.httptarget import TargetServer
from tests.support.starve import starved_load

from sluice.cli.main import main
from sluice.services import testing

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def starved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real engine, its event loop blocked for 0.8 s of the run (this process starved of CPU)."""

    monkeypatch.setattr(testing, "run_load_sync", starved_load())


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
