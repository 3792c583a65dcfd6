"""A sockshop world run through the real services in-process, with insight fed by the event log,
and a real local webhook receiver (shared by the insight, Prometheus and browser tests)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml
from tests.support.flow import FakeClock, Flow

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event
from sluice.core.verdict import Verdict
from sluice.services.eventlog import EventLogService
from sluice.services.insight import InsightService, observer
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

CARTS = "docker.io/keptnexamples/carts"
SHIPYARD = """
stages:
  - name: dev
    deployment_strategy: direct
    test_strategy: functional
  - name: staging
    deployment_strategy: blue_green_service
    test_strategy: performance
  - name: production
    deployment_strategy: blue_green_service
"""
SLO = """
spec_version: '0.1.1'
comparison: {compare_with: single_result, include_result_with_score: pass, aggregate_function: avg}
objectives:
  - sli: response_time_p95
    pass:
      - criteria: ["<600"]
    warning:
      - criteria: ["<=800"]
total_score: {pass: "90%", warning: "75%"}
"""


def fake_runner(deployed: Any, context: str) -> TestOutcome:
    """p95 of 1,050 ms for 0.10.2, 50 ms for the others; 0.0.1-broken fails its tests."""
    return TestOutcome(
        result=Verdict.FAIL if deployed.tag == "0.0.1-broken" else Verdict.PASS,
        start="2026-01-01T00:00:00Z", end="2026-01-01T00:01:00Z",
        measurements={"response_time_p95": 1050.0 if deployed.tag == "0.10.2" else 50.0, "error_rate": 0.0},
    )


@dataclass
class World:
    records: Records
    flow: Flow
    clock: FakeClock
    insight: InsightService
    sent: list[Any] = field(default_factory=list)

    def now(self) -> datetime:
        return self.clock.current

    def artifact(self, tag: str, service: str = "carts") -> Event:
        change = ConfigurationChange(project="sockshop", service=service, image=f"{CARTS}:{tag}")
        return Event.new(change, source="test", id=str(uuid.uuid4()), time=self.clock())

    def deliver(self, tag: str, service: str = "carts") -> list[Event]:
        return self.flow.send(self.artifact(tag, service))


def make_world(
    sender: Callable[[], Any] | None = None, secrets: Any = None, send_timeout_s: float = 2.0, store: Any = None,
    start: datetime | None = None,
) -> World:
    records = Records(store if store is not None else MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    records.onboard("sockshop", "orders")
    records.put_resource("sockshop", "staging", "", "slo.yaml", SLO)
    clock = FakeClock(start or datetime(2026, 1, 1, tzinfo=UTC))
    flow = Flow(records, NoopBackend(), fake_runner, clock)
    insight = InsightService(records, lambda: clock.current, sender=sender, secrets=secrets,
                             bridge_url="http://127.0.0.1:8080/bridge", send_timeout_s=send_timeout_s)
    flow.eventlog = EventLogService(records, observer(insight))
    return World(records, flow, clock, insight)


class Receiver:
    """A real HTTP webhook receiver on 127.0.0.1: answers ``statuses`` in turn (then 200); while
    ``gate`` is not set, every request waits for it (a slow receiver)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.gate.wait(120)  # a hung receiver answers only when let go (or after 2 min)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body),
                                          "raw": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        """Requests answered 2xx."""
        return [r for r in self.received if 200 <= r["status"] < 300]

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
