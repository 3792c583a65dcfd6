"""What a function process holds: its settings, read once, and the adapters ``sluice.compose``
builds from them, each on first use.

A function process builds one ``Runtime`` on its first request (cold start stays small: the
state store, backend or SLI provider a function never asks for is never imported, hence the
imports inside the properties).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sluice.config import Settings

if TYPE_CHECKING:  # types only: a function that makes no event (a page) never loads the events
    from sluice.core.events import Event
    from sluice.ports.backend import DeploymentBackend
    from sluice.ports.secrets import SecretStore
    from sluice.ports.state import StateStore
    from sluice.ports.testunit import Launcher
    from sluice.services.records import Records

log = logging.getLogger("sluice.functions")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Runtime:
    """What a function needs from the outside world, built from ``Settings``."""

    def __init__(self, settings: Settings, function: str) -> None:
        self.settings = settings
        self.function = function

    @property
    def source(self) -> str:
        """The CloudEvent ``source`` of everything this function emits."""
        return f"sluice/{self.function}"

    def now(self) -> str:
        return now_rfc3339()

    @cached_property
    def store(self) -> StateStore:
        from sluice.compose import build_store

        return build_store(self.settings)

    @cached_property
    def records(self) -> Records:
        """Typed records over the store, with the archive when one is configured."""
        from sluice.compose import build_records

        return build_records(self.settings, self.store)

    @cached_property
    def secrets(self) -> SecretStore:
        """Named secrets (approver keys, webhook secrets, credentials): Secrets or 0600 files."""
        from sluice.compose import build_secrets

        return build_secrets(self.settings)

    @cached_property
    def backend(self) -> DeploymentBackend:
        """The deployment backend; a cluster backend reads the user's workload (onboard --chart) from the records."""
        from sluice.compose import build_backend

        records = self.records
        return build_backend(self.settings, lambda p: records.workload(p.project, p.stage, p.service))

    @cached_property
    def launcher(self) -> Launcher:
        """Where test units run (a Job on a cluster, a local process otherwise)."""
        from sluice.compose import build_launcher

        return build_launcher(self.settings, os.environ)

    @cached_property
    def publish(self) -> Callable[[Event], None]:
        """Post one event to the sink (the broker); raises RetryableError."""
        from sluice.compose import build_publisher

        return build_publisher(self.settings.sink)

    def emit(self, events: Sequence[Event]) -> None:
        """Post events to the sink (the broker) beyond the HTTP reply; raises RetryableError."""
        for event in events:
            self.publish(event)


_RUNTIMES: dict[str, Runtime] = {}


def runtime_for(function: str, environ: Any = None) -> Runtime:
    """The process's runtime for ``function`` (built once; reads the environment once)."""
    if function not in _RUNTIMES:
        _RUNTIMES[function] = Runtime(Settings.from_env(environ if environ is not None else os.environ), function)
    return _RUNTIMES[function]
