"""deploy: ``configuration.change`` → the stage's backend → ``deployment-finished`` / ``done``."""

from __future__ import annotations

from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.services.deploy import DeployService


def handle(event: Event, runtime: Runtime) -> list[Event]:
    service = DeployService(
        runtime.records, runtime.backend, runtime.now, runtime.source, runtime.settings.deploy_timeout_s
    )
    return service.handle(event)


def main(request: Any) -> Any:
    return serve(request, "deploy", handle)
