"""The tutorial with ``sliProvider: prometheus``: the same verdicts as with ``builtin``.

Services run in-process (as in tests/integration/flow/test_flow_real_backend.py), every deployment is a
real carts process of the local backend, every test a real load run, and the staging SLIs come
from a real Prometheus scraping the canary, with examples/sockshop/sli.yaml.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.flow import Flow, by_type
from tests.support.prometheus import require_prometheus

from sluice.adapters.backends.local import LocalBackend
from sluice.adapters.secrets.memory import MemorySecrets
from sluice.adapters.state.local import LocalStore
from sluice.compose import sli_provider
from sluice.config import Settings
from sluice.core.events import ConfigurationChange, DeploymentFinished, Event, EventType, GetSli, GetSliDone
from sluice.embedded.prometheus import ensure_prometheus, stop_prometheus
from sluice.functions.testworker import run_stage_tests
from sluice.ports.sli import SliProvider
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome
from sluice.services.testspecs import load_test_spec

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "examples" / "sockshop"
CARTS = "docker.io/keptnexamples/carts"

pytestmark = [pytest.mark.prometheus, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Records, Flow]]:
    require_prometheus()
    records = Records(LocalStore(tmp_path / "state"))
    shipyard = (EXAMPLE / "shipyard.yaml").read_text()
    records.create_project("sockshop", shipyard, yaml.safe_load(shipyard))
    records.onboard("sockshop", "carts")
    tests_yaml = (EXAMPLE / "carts" / "tests.yaml").read_text()
    for stage in ("dev", "staging"):
        records.put_resource("sockshop", stage, "carts", "tests.yaml", tests_yaml)
    records.put_resource("sockshop", "", "", "sli.yaml", (EXAMPLE / "sli.yaml").read_text())
    records.set_project_setting("sockshop", "sli-provider", "prometheus")
    url = ensure_prometheus(tmp_path / "prom", 0, runtime_dir=tmp_path / "runtime")
    backend = LocalBackend(EXAMPLE / "images.yaml", tmp_path / "runtime")

    def runner(deployed: DeploymentFinished, context: str) -> TestOutcome:
        text = records.resource(deployed.project, deployed.stage, deployed.service, "tests.yaml")
        spec = load_test_spec(text, "tests.yaml") if text else None
        # the test worker's own path: a starved load generator makes the evaluation inconclusive
        return run_stage_tests(deployed, spec, 60.0, duration_s=5.0)

    def providers(name: str, request: GetSli) -> SliProvider:
        assert name == "prometheus", name
        return sli_provider(Settings(prometheus_url=url), records, MemorySecrets, name, request.project, request.stage,
                            request.service)

    flow = Flow(records, backend, runner, providers=providers)  # type: ignore[arg-type]
    try:
        yield records, flow
    finally:
        backend.stop_all()
        stop_prometheus(tmp_path / "prom")


def deliver(flow: Flow, tag: str) -> list[Event]:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time="2026-01-01T00:00:00Z"))


def sli_values(events: list[Event]) -> dict[str, dict[str, Any]]:
    [done] = [e.data for e in by_type(events, EventType.GET_SLI_DONE)]
    assert isinstance(done, GetSliDone) and done.sliProvider == "prometheus" and done.stage == "staging"
    return {v["metric"]: v for v in done.indicatorValues}


def test_tutorial_verdicts_with_prometheus(world: tuple[Records, Flow]) -> None:
    """0.10.2 is rejected in staging and 0.10.3 reaches production, judged on Prometheus' p95,
    which falls on the same side of 600 ms as the load generator's own p95."""
    records, flow = world
    first = deliver(flow, "0.10.1")
    assert [e.data.outcome for e in by_type(first, EventType.DONE)] == ["promoted"] * 3  # type: ignore[attr-defined]
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", (EXAMPLE / "slo.yaml").read_text())

    slow = deliver(flow, "0.10.2")
    done = [(e.data.stage, e.data.outcome) for e in by_type(slow, EventType.DONE)]  # type: ignore[attr-defined]
    values = sli_values(slow)
    print(f"\n0.10.2 in staging: prometheus {values}")
    assert done == [("dev", "promoted"), ("staging", "rolled_back")], values
    assert values["response_time_p95"]["success"] and values["response_time_p95"]["value"] > 600
    builtin = records.measurements("sockshop", "staging", "carts", slow[0].shkeptncontext)
    assert builtin is not None and builtin["response_time_p95"] > 600

    fast = deliver(flow, "0.10.3")
    done = [(e.data.stage, e.data.outcome) for e in by_type(fast, EventType.DONE)]  # type: ignore[attr-defined]
    values = sli_values(fast)
    print(f"0.10.3 in staging: prometheus {values}")
    assert done == [("dev", "promoted"), ("staging", "promoted"), ("production", "promoted")], values
    assert values["response_time_p95"]["success"] and values["response_time_p95"]["value"] < 600
    builtin = records.measurements("sockshop", "staging", "carts", fast[0].shkeptncontext)
    assert builtin is not None and builtin["response_time_p95"] < 600
