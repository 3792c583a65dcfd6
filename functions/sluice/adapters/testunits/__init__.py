"""Where a test unit runs: ``local`` (a detached worker process) or ``kubernetes`` (a Job).

A launcher takes a ``deployment-finished`` event (structured JSON) and starts
``python -m sluice.functions.testworker`` for it without waiting for the tests.
"""

from __future__ import annotations

from typing import Any

from sluice.adapters.catalogue import build
from sluice.ports.testunit import Launcher

LAUNCHERS: dict[str, str] = {
    "local": "sluice.adapters.testunits.local:LocalProcessLauncher",
    "kubernetes": "sluice.adapters.testunits.kubernetes_job:JobLauncher",
}


def create_launcher(name: str, **config: Any) -> Launcher:
    launcher: Launcher = build("test-unit launcher", LAUNCHERS, name, config)
    return launcher
