"""sli: ``get-sli`` → the named provider (builtin, prometheus, dynatrace, cloudwatch) → ``get-sli.done``."""

from __future__ import annotations

from typing import Any

from sluice.core.events import Event, GetSli
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.ports.sli import SliProvider
from sluice.services.records import Records
from sluice.services.sli import SliService


def provider_for(runtime: Runtime, records: Records, name: str, request: GetSli) -> SliProvider:
    """The provider a get-sli event names, with this project's configuration (the table decides)."""
    from sluice.compose import sli_provider

    return sli_provider(runtime.settings, records, lambda: runtime.secrets, name,
                        request.project, request.stage, request.service)


def handle(event: Event, runtime: Runtime) -> list[Event]:
    records = runtime.records
    service = SliService(lambda name, request: provider_for(runtime, records, name, request), runtime.now, runtime.source)
    return service.handle(event)


def main(request: Any) -> Any:
    return serve(request, "sli", handle)
