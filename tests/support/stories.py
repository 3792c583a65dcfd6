"""The stories the browser tests look at, written into a local state directory in-process.

``sockshop`` is the tutorial with the example's staging SLO in place from the start (so 0.10.2
and 0.10.3 are compared with 0.10.1): 0.10.1 everywhere, 0.10.2 rolled back in staging, 0.10.3
in production. ``approvals`` has a
staging stage whose passing builds wait for a person: 0.10.1 waits for approval there and 0.10.3
is queued behind it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tests.support.flow import FakeClock, Flow
from tests.support.sockshop import CARTS, SHIPYARD

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.core.events import ConfigurationChange, DeploymentFinished, Done, Event, Outcome
from sluice.core.verdict import Verdict
from sluice.services.approvals import ensure_key
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

ROOT = Path(__file__).resolve().parents[2]
SLO = (ROOT / "examples" / "sockshop" / "slo.yaml").read_text()

APPROVAL_SHIPYARD = """
stages:
  - name: dev
    deployment_strategy: direct
    test_strategy: functional
  - name: staging
    deployment_strategy: blue_green_service
    test_strategy: performance
    approval_strategy: {pass: manual, warning: manual}
  - name: production
    deployment_strategy: blue_green_service
"""
#: p95 in ms per tag: 0.10.2 answers a second late; the others vary a little, like real runs.
P95 = {"0.10.1": 48.0, "0.10.2": 1050.0, "0.10.3": 52.0}
#: requests per second the load test reached per tag (the slow build serves fewer).
THROUGHPUT = {"0.10.1": 190.0, "0.10.2": 92.5, "0.10.3": 187.0}


def runner(deployed: DeploymentFinished, context: str) -> TestOutcome:
    """Measurements per tag (see ``P95``), with an error rate that stays at zero."""
    return TestOutcome(
        result=Verdict.PASS, start="2026-01-01T00:00:00Z", end="2026-01-01T00:01:00Z",
        measurements={"response_time_p95": P95.get(deployed.tag, 50.0), "error_rate": 0.0,
                       "throughput": THROUGHPUT.get(deployed.tag, 180.0)},
    )


#: Markup and script in every value an event can carry into a page; none of it may run.
HOSTILE = ("<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
           "<svg onload=\"document.title='pwned'\"></svg>")


@dataclass
class Stories:
    """What the tests need to find in the pages: delivery contexts by project and tag."""

    state_dir: Path
    contexts: dict[tuple[str, str], str] = field(default_factory=dict)


def _deliver(flow: Flow, clock: FakeClock, project: str, tag: str) -> str:
    clock.advance(600)
    change = ConfigurationChange(project=project, service="carts", image=f"{CARTS}:{tag}",
                                 labels={"buildId": f"{tag}<b>"})
    events = flow.send(Event.new(change, source="sluice/cli", id=str(uuid.uuid4()), time=clock()))
    return events[0].shkeptncontext


def write_stories(state_dir: Path) -> Stories:
    """Run both stories into a ``LocalStore`` at ``state_dir`` (the bridge reads it from there)."""
    records = Records(LocalStore(state_dir))
    stories = Stories(state_dir)
    clock = FakeClock()
    flow = Flow(records, NoopBackend(), runner, clock)

    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("sockshop", "carts")
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        stories.contexts[("sockshop", tag)] = _deliver(flow, clock, "sockshop", tag)

    records.create_project("approvals", APPROVAL_SHIPYARD, yaml.safe_load(APPROVAL_SHIPYARD))
    records.onboard("approvals", "carts")
    records.put_resource("approvals", "staging", "carts", "slo.yaml", SLO)
    stories.contexts[("approvals", "0.10.1")] = _deliver(flow, clock, "approvals", "0.10.1")
    stories.contexts[("approvals", "0.10.3")] = _deliver(flow, clock, "approvals", "0.10.3")
    ensure_key(LocalSecrets(state_dir), "approvals")  # what `sluice create project` does

    # events as anyone who can reach the broker can post them: markup in names, messages, tags
    records.create_project("hostile", SHIPYARD, yaml.safe_load(SHIPYARD))
    records.onboard("hostile", "carts")
    hostile_context = str(uuid.uuid4())
    stories.contexts[("hostile", "0.10.9")] = hostile_context
    for i, payload in enumerate((
        ConfigurationChange(project="hostile", service="carts", stage="dev", image=f"{CARTS}:0.10.9",
                            labels={"note": HOSTILE, HOSTILE: "key"}),
        DeploymentFinished(project="hostile", stage="dev", service="carts", image=HOSTILE, tag=HOSTILE,
                           deploymentURILocal=f"javascript:alert(1)//{HOSTILE}", result=Verdict.FAIL, message=HOSTILE),
        Done(project="hostile", stage="dev", service="carts", outcome=Outcome.FAILED, result=Verdict.FAIL, image=HOSTILE,
             message=HOSTILE),
    )):
        flow.eventlog.handle(Event.new(payload, source=HOSTILE, id=f"{HOSTILE}-{i}", time=clock(), context=hostile_context))
    return stories
