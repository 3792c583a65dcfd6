"""test: ``deployment-finished`` → a test unit (a local worker process) → ``tests-finished``.

The function claims the run and acknowledges at once (202); ``sluice.functions.testworker``
runs the tests under a hard time limit and posts ``tests-finished`` to the broker. A tick
(``dev.knative.sources.ping``) fails units that never reported.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.ports.testunit import Launcher
from sluice.services.testflow import TestService


@functools.cache
def launcher(runtime: Runtime) -> Launcher:
    """Local worker processes, or a Job per test on a cluster (SLUICE_BACKEND kubernetes/knative);
    built once per process (the cluster client reads its credentials once)."""
    from sluice.adapters.testunits import create_launcher

    settings = runtime.settings
    if settings.backend in ("kubernetes", "knative"):
        from sluice.adapters.state.configmap import load_api_client

        return create_launcher(
            "kubernetes", api=load_api_client(), namespace=settings.namespace, image=settings.function_image,
            limit_s=settings.test_limit_s, env={"SLUICE_STATE": settings.state, "SLUICE_NAMESPACE": settings.namespace,
                                               "SLUICE_BACKEND": settings.backend, "K_SINK": settings.sink},
        )
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return create_launcher("local", log_dir=settings.state_path / "logs", environ=environ)


def service(runtime: Runtime) -> TestService:
    return TestService(
        runtime.records, runtime.now, runtime.source, launcher(runtime), runtime.settings.test_limit_s
    )


def handle(event: Event, runtime: Runtime) -> list[Event]:
    return service(runtime).handle(event)


def main(request: Any) -> Any:
    return serve(request, "test", handle)
