"""An in-process delivery flow: the services wired like the broker wires the functions, with
no HTTP and no processes. Fast tests of the whole story use it with the ``noop`` backend."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.core.approval_auth import KeyLookup
from sluice.core.events import DeploymentFinished, Event, EventType, GetSli
from sluice.ports.backend import DeploymentBackend
from sluice.ports.sli import SliProvider
from sluice.services.deploy import DeployService
from sluice.services.evaluate import EvaluateService
from sluice.services.eventlog import EventLogService
from sluice.services.gatekeeper import GatekeeperService
from sluice.services.records import Records
from sluice.services.sli import SliService
from sluice.services.testflow import Runner, TestService


class FakeClock:
    """A clock that moves forward one second per reading (deterministic times)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> str:
        self.current += timedelta(seconds=1)
        return self.current.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class Flow:
    """Routes events between the services until the flow is quiet (a broker without HTTP)."""

    def __init__(
        self,
        records: Records,
        backend: DeploymentBackend,
        runner: Runner,
        clock: Callable[[], str] | None = None,
        providers: Callable[[str, GetSli], SliProvider] | None = None,
        sli_timeout_s: float = 120.0,
        drop: Callable[[Event], bool] | None = None,
        approver_keys: KeyLookup | None = None,
    ) -> None:
        self.records = records
        self.clock = clock or FakeClock()
        self.runner = runner
        self.units: deque[dict[str, Any]] = deque()
        self.deploy = DeployService(records, backend, self.clock, "sluice/deploy")
        self.test = TestService(records, self.clock, "sluice/test", self.units.append)
        self.evaluate = EvaluateService(records, self.clock, "sluice/evaluate", sli_timeout_s=sli_timeout_s)
        self.sli = SliService(providers or self._builtin, self.clock, "sluice/sli")
        self.gatekeeper = GatekeeperService(records, self.clock, "sluice/gatekeeper", approver_keys=approver_keys)
        self.eventlog = EventLogService(records)
        self.drop = drop or (lambda _: False)
        self.routes: Mapping[EventType, Callable[[Event], list[Event]]] = {
            EventType.CONFIGURATION_CHANGE: self.deploy.handle,
            EventType.DEPLOYMENT_FINISHED: self.test.handle,
            EventType.TESTS_FINISHED: self.evaluate.handle,
            EventType.START_EVALUATION: self.evaluate.handle,
            EventType.GET_SLI: self.sli.handle,
            EventType.GET_SLI_DONE: self.evaluate.handle,
            EventType.EVALUATION_DONE: self.gatekeeper.handle,
            EventType.APPROVAL_FINISHED: self.gatekeeper.handle,
        }
        self.seen: list[Event] = []
        #: When True, test units wait (as if their tests were still running) until it is False.
        self.hold_units = False

    def _builtin(self, name: str, request: GetSli) -> SliProvider:
        from sluice.adapters.secrets.memory import MemorySecrets
        from sluice.compose import sli_provider
        from sluice.config import Settings

        return sli_provider(Settings(), self.records, MemorySecrets, name, request.project, request.stage, request.service)

    def send(self, *events: Event) -> list[Event]:
        """Deliver ``events`` and everything they cause; returns every event in delivery order."""
        queue = deque(events)
        delivered: list[Event] = []
        while queue or (self.units and not self.hold_units):
            if not queue:
                unit = Event.from_json_dict(self.units.popleft())
                assert isinstance(unit.data, DeploymentFinished)
                if (finished := self.test.run_unit(unit, self.runner)) is not None:
                    queue.append(finished)
                continue
            event = queue.popleft()
            if self.drop(event):
                continue
            delivered.append(event)
            self.eventlog.handle(event)
            handler = self.routes.get(event.type)
            if handler is not None:
                queue.extend(handler(event))
        self.seen.extend(delivered)
        return delivered

    def tick(self) -> list[Event]:
        """A PingSource tick: time-driven work of evaluate and test, and what it causes."""
        from sluice.core.events import Ping

        ping = Event.new(Ping(), source="sluice/tick", id=f"tick-{self.clock()}", time=self.clock())
        return self.send(
            *self.deploy.handle(ping), *self.test.handle(ping), *self.evaluate.handle(ping), *self.gatekeeper.handle(ping)
        )


def by_type(events: Sequence[Event], event_type: EventType) -> Iterator[Event]:
    return (e for e in events if e.type is event_type)
