"""A load run whose generator is starved of CPU, deterministically: the real engine against a
real target, its event loop blocked by ``time.sleep`` for part of the run (as when the machine
deschedules the process). Patch it over ``sluice.services.testing.run_load_sync``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sluice.loadgen import LoadProfile, LoadReport
from sluice.loadgen.engine import new_loop, run_load


def starved_load(after_s: float = 0.3, stall_s: float = 0.8) -> Callable[..., LoadReport]:
    """A stand-in for ``run_load_sync`` whose loop stalls ``stall_s`` seconds, ``after_s`` in."""

    def run_sync(base_url: str, profile: LoadProfile, **_: Any) -> LoadReport:
        async def run() -> LoadReport:
            asyncio.get_running_loop().call_later(after_s, time.sleep, stall_s)
            return await run_load(base_url, replace(profile, workers=1))

        with asyncio.Runner(loop_factory=new_loop) as runner:
            return runner.run(run())

    return run_sync
