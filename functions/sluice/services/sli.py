"""The sli service: ``get-sli`` → ask the named provider → ``get-sli.done``.

A provider that cannot be built (unknown name, missing configuration) still answers: every
indicator comes back ``success: false`` with the reason, so the evaluation shows "could not
measure" instead of waiting for a timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from sluice.core.events import Event, GetSli, GetSliDone
from sluice.errors import ConfigurationError
from sluice.ports.sli import SliProvider, SliQuery, SliValue

ProviderFactory = Callable[[str, GetSli], SliProvider]


class SliService:
    def __init__(self, providers: ProviderFactory, now: Callable[[], str], source: str) -> None:
        self.providers = providers
        self.now = now
        self.source = source

    def handle(self, event: Event) -> list[Event]:
        request = event.data
        assert isinstance(request, GetSli)
        query = SliQuery(
            project=request.project, stage=request.stage, service=request.service,
            indicators=tuple(request.indicators), start=request.start, end=request.end,
            deployment=request.deployment or "direct",
            filters={str(f.get("key")): str(f.get("value")) for f in request.customFilters if isinstance(f, dict)},
            context=event.shkeptncontext,
        )
        message = ""
        try:
            values = list(self.providers(request.sliProvider, request).fetch(query))
        except ConfigurationError as err:
            message = f"SLI provider {request.sliProvider!r} is not usable: {err}"
            values = [SliValue(name, None, False, message) for name in request.indicators]
        done = GetSliDone(
            project=request.project, stage=request.stage, service=request.service, start=request.start,
            end=request.end, indicatorValues=[v.to_dict() for v in values], sliProvider=request.sliProvider,
            message=message, labels=request.labels,
        )
        return [event.reply(done, source=self.source, time=self.now())]
