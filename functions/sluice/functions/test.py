"""test: ``deployment-finished`` → a test unit (a local worker process) → ``tests-finished``.

The function claims the run and acknowledges at once (202); ``sluice.functions.testworker``
runs the tests under a hard time limit and posts ``tests-finished`` to the broker. A tick
(``dev.knative.sources.ping``) fails units that never reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.services.records import Records
from sluice.services.testflow import Launcher, TestService


def local_launcher(runtime: Runtime) -> Launcher:
    """Start ``python -m sluice.functions.testworker`` detached, handing it the event on stdin."""

    def launch(event: dict[str, Any]) -> None:
        logs = runtime.settings.state_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "test-worker.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "sluice.functions.testworker"],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            )
        assert worker.stdin is not None
        worker.stdin.write(json.dumps(event).encode())
        worker.stdin.close()

    return launch


def service(runtime: Runtime) -> TestService:
    return TestService(
        Records(runtime.store), runtime.now, runtime.source, local_launcher(runtime), runtime.settings.test_limit_s
    )


def handle(event: Event, runtime: Runtime) -> list[Event]:
    return service(runtime).handle(event)


def main(request: Any) -> Any:
    return serve(request, "test", handle)
