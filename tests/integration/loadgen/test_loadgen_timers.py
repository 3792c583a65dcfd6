"""The load generator's memory does not grow with a run's length (a real local target)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.httptarget import TargetServer

from sluice.loadgen import LoadProfile, LoadRequest, Mode, engine, run_load_sync


@pytest.mark.parametrize("mode", [Mode.CONSTANT_ARRIVAL_RATE, Mode.VIRTUAL_USERS])
def test_a_run_keeps_only_its_pending_timers(monkeypatch: pytest.MonkeyPatch, mode: Mode) -> None:
    """Sweeps (every 10 ms), schedule ticks and think times each arm a timer; a run holds only
    those not yet fired, so what it keeps stays a handful however long it runs."""
    runs: list[Any] = []

    class Recorded(engine._Run):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(engine, "_Run", Recorded)
    kept: list[int] = []
    profile = LoadProfile((LoadRequest("/"),), duration_s=1.2, mode=mode, rate=40, vus=2, think_time_s=0.02)
    with TargetServer() as target:
        report = run_load_sync(target.url, profile, on_progress=lambda *_: kept.append(len(runs[0].timers)))
    assert report.requests > 0
    assert len(kept) >= 2
    # Pending at any moment: the sweep, the progress report, the hard stop, the end of sending,
    # and the next tick or one think time per user.
    assert max(kept) <= 8, kept
