"""evaluate: ``tests-finished`` / ``start-evaluation`` → ``get-sli``; ``get-sli.done`` →
``evaluation-done``; a PingSource tick fails evaluations whose provider did not answer in time."""

from __future__ import annotations

from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.services.evaluate import EvaluateService


def handle(event: Event, runtime: Runtime) -> list[Event]:
    service = EvaluateService(
        runtime.records, runtime.now, runtime.source,
        default_provider=runtime.settings.sli_provider, sli_timeout_s=runtime.settings.sli_timeout_s,
    )
    return service.handle(event)


def main(request: Any) -> Any:
    return serve(request, "evaluate", handle)
