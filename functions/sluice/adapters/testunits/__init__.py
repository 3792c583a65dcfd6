"""Where a test unit runs: ``local`` (a detached worker process) or ``kubernetes`` (a Job).

A launcher takes a ``deployment-finished`` event (structured JSON) and starts
``python -m sluice.functions.testworker`` for it without waiting for the tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sluice.errors import ConfigurationError

Launcher = Callable[[dict[str, Any]], None]

LAUNCHERS: dict[str, str] = {
    "local": "sluice.adapters.testunits.local:LocalProcessLauncher",
    "kubernetes": "sluice.adapters.testunits.kubernetes_job:JobLauncher",
}


def create_launcher(name: str, **config: Any) -> Launcher:
    target = LAUNCHERS.get(name)
    if target is None:
        raise ConfigurationError(f"unknown test-unit launcher {name!r}: expected one of {', '.join(sorted(LAUNCHERS))}")
    module, _, attribute = target.partition(":")
    launcher: Launcher = getattr(importlib.import_module(module), attribute)(**config)
    return launcher
