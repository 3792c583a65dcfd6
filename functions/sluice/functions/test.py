"""test: ``deployment-finished`` → a test unit (a local worker process) → ``tests-finished``.

The function claims the run and acknowledges at once (202); ``sluice.functions.testworker``
runs the tests under a hard time limit and posts ``tests-finished`` to the broker. A tick
(``dev.knative.sources.ping``) fails units that never reported.
"""

from __future__ import annotations

from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.ports.testunit import Launcher
from sluice.services.testflow import TestService


def launcher(runtime: Runtime) -> Launcher:
    """Local worker processes, or a Job per test on a cluster (``sluice.compose.build_launcher``);
    built once per process (the cluster client reads its credentials once)."""
    return runtime.launcher


def service(runtime: Runtime) -> TestService:
    return TestService(
        runtime.records, runtime.now, runtime.source, launcher(runtime), runtime.settings.test_limit_s
    )


def handle(event: Event, runtime: Runtime) -> list[Event]:
    return service(runtime).handle(event)


def main(request: Any) -> Any:
    return serve(request, "test", handle)
