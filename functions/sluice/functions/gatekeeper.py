"""gatekeeper: ``evaluation-done`` / ``approval.finished`` → promote + next stage, hold, or roll back."""

from __future__ import annotations

from typing import Any

from sluice.core.events import Event
from sluice.functions.http import serve
from sluice.functions.runtime import Runtime
from sluice.services.gatekeeper import GatekeeperService


def handle(event: Event, runtime: Runtime) -> list[Event]:
    def approver_key(project: str) -> bytes | None:
        # cold start: only an approval reads the approver keys (and builds the secret store)
        from sluice.services.approvals import key_lookup

        return key_lookup(runtime.secrets)(project)

    return GatekeeperService(runtime.records, runtime.now, runtime.source, approver_keys=approver_key).handle(event)


def main(request: Any) -> Any:
    return serve(request, "gatekeeper", handle)
