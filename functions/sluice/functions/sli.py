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
    """Build the provider a get-sli event names, with this project's configuration."""
    from sluice.adapters.sli import create_provider

    if name == "builtin":
        return create_provider("builtin", load_measurements=records.measurements)
    if name == "prometheus":
        from sluice.services.prometheus_config import prometheus_provider

        return prometheus_provider(records, request, default_url=runtime.settings.prometheus_url,
                                   secrets=runtime.secrets)
    if name == "cloudwatch":
        from sluice.services.cloudwatch_config import cloudwatch_provider

        return cloudwatch_provider(records, request)
    if name == "dynatrace":
        from sluice.services.dynatrace_config import dynatrace_provider

        return dynatrace_provider(records, request, secrets=runtime.secrets)
    return create_provider(name)  # unknown names: ConfigurationError naming the valid ones


def handle(event: Event, runtime: Runtime) -> list[Event]:
    records = runtime.records
    service = SliService(lambda name, request: provider_for(runtime, records, name, request), runtime.now, runtime.source)
    return service.handle(event)


def main(request: Any) -> Any:
    return serve(request, "sli", handle)
