"""The canary strategy (issue 19) through the real services over the noop backend: the steps,
a failing step, a repeated step, duplicates of step events, a late answer after a step's
timeout, a step without tests that waits under traffic, and the shipyard's validation."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.flow import FakeClock, Flow, by_type

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.cli.status import render
from sluice.core.events import ApprovalFinished, ConfigurationChange, Decision, Event, EventType
from sluice.core.shipyard import parse_shipyard
from sluice.core.verdict import Verdict
from sluice.errors import ValidationError
from sluice.ports.backend import Placement, Slot
from sluice.ports.sli import SliQuery, SliValue
from sluice.services.ledger import Ledger
from sluice.services.readmodel import project_status
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

CARTS = "docker.io/keptnexamples/carts"
SLO = "objectives:\n  - sli: response_time_p95\n    pass: [{criteria: ['<600']}]\ntotal_score: {pass: '90%', warning: '75%'}\n"
PROD = Placement("sockshop", "production", "carts")
KEY = b"k" * 32


def shipyard(max_failed: int = 0, tests: str = "functional", on_inconclusive: str = "fail") -> str:
    return f"""
stages:
  - name: production
    deployment_strategy: canary
    test_strategy: {tests}
    on_inconclusive: {on_inconclusive}
    canary: {{steps: [10, 25, 50], step_duration: 2m, max_failed_steps: {max_failed}}}
"""


class Latency:
    """An SLI provider answering p95 latencies in turn (None: cannot measure); then the last one."""

    def __init__(self, values: Sequence[float | None]) -> None:
        self.values = list(values)
        self.calls = 0

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        if value is None:
            return [SliValue(i, None, False, "no data for the window") for i in query.indicators]
        return [SliValue(i, value) for i in query.indicators]


def world(values: Sequence[float | None], **kw: object) -> tuple[Flow, NoopBackend, Latency]:
    records = Records(MemoryStore())
    text = shipyard(**kw)  # type: ignore[arg-type]
    records.create_project("sockshop", text, yaml.safe_load(text))
    records.onboard("sockshop", "carts")
    records.put_resource("sockshop", "production", "carts", "slo.yaml", SLO)
    provider = Latency(values)
    backend = NoopBackend()

    def runner(deployed, context):  # type: ignore[no-untyped-def]
        return TestOutcome(Verdict.PASS, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")

    flow = Flow(records, backend, runner, FakeClock(), providers=lambda name, request: provider,
                approver_keys={"sockshop": KEY}.get)
    return flow, backend, provider


def artifact(flow: Flow, tag: str) -> Event:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return Event.new(change, source="test", id=str(uuid.uuid4()), time=flow.clock())


def routes(backend: NoopBackend) -> list[int]:
    return [c.canary_weight for c in backend.calls if c.method == "route" and c.canary_weight is not None]


def dones(events: Sequence[Event]) -> list[Event]:
    return list(by_type(events, EventType.DONE))


def step_sets(events: Sequence[Event]) -> list[int]:
    return [e.data.value for e in by_type(events, EventType.CONFIGURATION_CHANGE)  # type: ignore[attr-defined]
            if e.data.action == "set"]  # type: ignore[attr-defined]


def test_a_good_build_walks_every_step_then_becomes_primary() -> None:
    flow, backend, provider = world([100.0])
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()
    events = flow.send(artifact(flow, "0.10.3"))
    assert step_sets(events) == [100, 25, 50]  # the artifact's set (its value is not the step's), then each step
    assert routes(backend) == [10, 25, 50, 100, 0]  # steps, all traffic to the candidate, back to the new primary
    (done,) = dones(events)
    assert done.data.outcome == "promoted"  # type: ignore[attr-defined]
    assert backend.images[(PROD, Slot.PRIMARY)] == f"{CARTS}:0.10.3"
    assert len(list(by_type(events, EventType.EVALUATION_DONE))) == 3  # one evaluation per step
    assert provider.calls == 3 + 3  # the first artifact walked its three steps too
    lane = Ledger(flow.records).lane(PROD)
    assert lane.active is None and lane.serving.primary_image == f"{CARTS}:0.10.3"
    history = lane.finished[-1].canary
    assert history is not None and [(h.weight, h.result) for h in history.history] == [(10, "pass"), (25, "pass"), (50, "pass")]
    assert len(flow.records.evaluations("sockshop", "production", "carts")) == 6  # stored and compared like any other


def test_a_failing_step_sends_all_traffic_back_and_says_which_step() -> None:
    flow, backend, _ = world([100.0, 100.0, 100.0, 100.0, 900.0])  # 0.10.1 walks three steps; 0.10.2 fails at 25 %
    flow.send(artifact(flow, "0.10.1"))
    backend.calls.clear()
    events = flow.send(artifact(flow, "0.10.2"))
    (done,) = dones(events)
    assert done.data.outcome == "rolled_back"  # type: ignore[attr-defined]
    assert "canary step 2 of 3 (25 %) failed" in done.data.message  # type: ignore[attr-defined]
    assert "score 0" in done.data.message  # type: ignore[attr-defined]
    assert routes(backend) == [10, 25, 0]
    shown = render(project_status(flow.records, "sockshop"))
    assert f"last canary for {CARTS}:0.10.2: 10 % pass 100 → 25 % fail 0; rolled back (canary step 2 of 3 (25 %) failed" in shown
    assert backend.weights[PROD] == 0 and (PROD, Slot.CANARY) not in backend.images
    assert backend.images[(PROD, Slot.PRIMARY)] == f"{CARTS}:0.10.1"
    assert Ledger(flow.records).lane(PROD).serving.primary_image == f"{CARTS}:0.10.1"


def test_a_failed_step_is_repeated_within_max_failed_steps() -> None:
    flow, backend, _ = world([100.0, 900.0, 100.0], max_failed=1)
    events = flow.send(artifact(flow, "0.10.1"))
    assert routes(backend)[:4] == [10, 25, 25, 50]  # step 2 failed once and ran again
    assert dones(events)[0].data.outcome == "promoted"  # type: ignore[attr-defined]
    history = Ledger(flow.records).lane(PROD).finished[-1].canary
    assert history is not None and [h.result for h in history.history] == ["pass", "fail", "pass", "pass"]


def test_inconclusive_under_fail_rolls_back_and_retry_repeats_the_step() -> None:
    flow, backend, _ = world([100.0, 100.0, 100.0, 100.0, None])
    flow.send(artifact(flow, "0.10.1"))
    (done,) = dones(flow.send(artifact(flow, "0.10.2")))
    assert done.data.outcome == "rolled_back" and "inconclusive" in done.data.message  # type: ignore[attr-defined]

    flow, backend, _ = world([100.0, None, 100.0], on_inconclusive="retry")
    (done,) = dones(flow.send(artifact(flow, "0.10.1")))
    assert done.data.outcome == "promoted"  # type: ignore[attr-defined]
    assert routes(backend)[:3] == [10, 25, 50]  # the retry re-ran step 2's tests; it did not set the weight again


def _doubled(handler: Callable[[Event], list[Event]]) -> Callable[[Event], list[Event]]:
    return lambda event: handler(event) + handler(event)


def test_duplicates_of_every_event_change_nothing() -> None:
    """Every event is delivered twice (at once): the same steps, the same single outcome."""
    flow, backend, _ = world([100.0])
    original = flow.routes
    flow.routes = {t: _doubled(h) for t, h in original.items()}
    events = flow.send(artifact(flow, "0.10.3"))
    assert [d.data.outcome for d in dones(events)] == ["promoted"] * len(dones(events))  # type: ignore[attr-defined]
    assert len({d.id for d in dones(events)}) == 1  # one done, however often it was re-sent
    assert [w for i, w in enumerate(routes(backend)) if i == 0 or routes(backend)[i - 1] != w] == [10, 25, 50, 100, 0]
    history = Ledger(flow.records).lane(PROD).finished[-1].canary
    assert history is not None and [h.weight for h in history.history] == [10, 25, 50]


def test_an_old_step_event_replayed_later_changes_nothing() -> None:
    flow, backend, _ = world([100.0])
    events = flow.send(artifact(flow, "0.10.3"))
    steps = [e for e in by_type(events, EventType.CONFIGURATION_CHANGE)]
    backend.calls.clear()
    again = flow.send(*steps, *by_type(events, EventType.EVALUATION_DONE), *by_type(events, EventType.DEPLOYMENT_FINISHED))
    assert routes(backend) == []
    assert {d.id for d in dones(again)} <= {d.id for d in dones(events)}  # at most the stored done again, same id


def test_a_late_sli_answer_after_the_step_timed_out_is_ignored() -> None:
    flow, backend, _ = world([100.0])
    held: list[Event] = []
    flow.drop = lambda e: e.type is EventType.GET_SLI_DONE and not held and not held.append(e)  # type: ignore[func-returns-value]
    flow.send(artifact(flow, "0.10.3"))
    assert held and routes(backend) == [10]
    flow.clock.advance(121)  # type: ignore[attr-defined]
    events = flow.tick()
    (done,) = dones(events)
    assert done.data.outcome == "rolled_back" and "canary step 1 of 3 (10 %) failed" in done.data.message  # type: ignore[attr-defined]
    flow.drop = lambda e: False
    late = flow.send(*held)
    assert dones(late) == [] and routes(backend) == [10, 0]


def test_a_step_without_tests_waits_its_duration_under_traffic() -> None:
    flow, backend, provider = world([100.0], tests="none")
    flow.send(artifact(flow, "0.10.3"))
    assert routes(backend) == [10] and provider.calls == 0  # waits under real traffic
    view = project_status(flow.records, "sockshop")["stages"][0]["services"][0]
    assert view["traffic"] == {"primary": 90, "canary": 10}
    assert f"canary step 1 of 3 (10 %) for {CARTS}:0.10.3: not judged yet" in render(project_status(flow.records, "sockshop"))
    assert flow.tick() == []  # not yet: the step lasts 2m
    for weight in (25, 50):
        flow.clock.advance(121)  # type: ignore[attr-defined]
        flow.tick()
        assert routes(backend)[-1] == weight
        assert project_status(flow.records, "sockshop")["stages"][0]["services"][0]["canary"]["weight"] == weight
    flow.clock.advance(121)  # type: ignore[attr-defined]
    (done,) = dones(flow.tick())
    assert done.data.outcome == "promoted" and provider.calls == 3  # type: ignore[attr-defined]
    lane = Ledger(flow.records).lane(PROD)
    history = lane.finished[-1].canary
    assert history is not None
    windows = [(h.started, h.ended) for h in history.history]
    assert all(a < b for a, b in windows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dup=st.lists(st.booleans(), min_size=40, max_size=40), fail_at=st.sampled_from([None, 0, 1, 2]))
def test_property_redelivery_never_changes_the_walk(dup: list[bool], fail_at: int | None) -> None:
    """Any event may come twice (at-least-once): the weights walk the same way, one outcome."""
    flow, backend, _ = world([100.0])
    failing = {None: -1, 0: 10, 1: 25, 2: 50}[fail_at]

    class ByWeight:  # a duplicate get-sli asks twice: the answer depends on the step, not on the call
        def fetch(self, query: SliQuery) -> Sequence[SliValue]:
            run = Ledger(flow.records).lane(PROD).active
            weight = run.canary.weight if run is not None and run.canary is not None else 0
            return [SliValue(i, 900.0 if weight == failing else 100.0) for i in query.indicators]

    flow.sli.providers = lambda name, request: ByWeight()  # type: ignore[assignment,method-assign]
    original, count = flow.routes, [0]

    def twice(handler):  # type: ignore[no-untyped-def]
        def handle(event: Event) -> list[Event]:
            count[0] += 1
            return handler(event) + (handler(event) if dup[count[0] % len(dup)] else [])
        return handle

    flow.routes = {t: twice(h) for t, h in original.items()}
    events = flow.send(artifact(flow, "0.10.3"))
    walk = [w for i, w in enumerate(routes(backend)) if i == 0 or routes(backend)[i - 1] != w]
    expected = [10, 25, 50, 100, 0] if fail_at is None else [*[10, 25, 50][:fail_at + 1], 0]
    assert walk == expected
    assert len({d.id for d in dones(events)}) == 1
    lane = Ledger(flow.records).lane(PROD)
    assert lane.active is None and not lane.queue


@pytest.mark.parametrize(
    ("canary", "problem"),
    [
        ("{steps: []}", "steps: expected a list"),
        ("{steps: [10, 10]}", "not strictly increasing"),
        ("{steps: [50, 25]}", "not strictly increasing"),
        ("{steps: [0, 50]}", "0 is not a whole number 1..99"),
        ("{steps: [10, 100]}", "100 is not a whole number 1..99"),
        ("{steps: [10, true]}", "True is not a whole number"),
        ("{steps: 10}", "steps: expected a list"),
        ("{step_duration: 2 minutes}", "step_duration: expected a duration like 30s or 2m"),
        ("{step_duration: 0s}", "step_duration"),
        ("{max_failed_steps: -1}", "max_failed_steps: expected a whole number"),
        ("{steps: [10], speed: fast}", "unknown keys speed"),
        ("[10, 20]", "canary: expected a mapping"),
    ],
)
def test_the_shipyard_names_what_is_wrong_with_the_canary(canary: str, problem: str) -> None:
    doc = yaml.safe_load(f"stages:\n  - name: production\n    deployment_strategy: canary\n    canary: {canary}\n")
    with pytest.raises(ValidationError) as err:
        parse_shipyard(doc)
    assert problem in str(err.value) and "stage 'production'.canary" in str(err.value)


def test_the_shipyard_reads_the_canary_and_refuses_it_elsewhere() -> None:
    stage = parse_shipyard(yaml.safe_load(shipyard())).first
    assert stage.canary is not None and stage.canary.steps == (10, 25, 50) and stage.canary.step_duration_s == 120.0
    doc = yaml.safe_load("stages:\n  - name: dev\n    deployment_strategy: direct\n    canary: {steps: [10]}\n")
    with pytest.raises(ValidationError, match="only a stage with deployment_strategy: canary"):
        parse_shipyard(doc)


@given(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(-5, 120), max_size=25),
                 st.dictionaries(st.text(max_size=8), st.integers(-5, 200) | st.text(max_size=4), max_size=4)))
def test_property_hostile_canary_values_give_a_policy_or_a_clear_problem(raw: object) -> None:
    doc = {"stages": [{"name": "production", "deployment_strategy": "canary", "canary": raw}]}
    try:
        stage = parse_shipyard(doc).first
    except ValidationError as err:
        assert "canary" in str(err)
        return
    assert stage.canary is not None and stage.canary.steps
    assert all(1 <= s <= 99 for s in stage.canary.steps)
    assert list(stage.canary.steps) == sorted(set(stage.canary.steps))


def test_the_delivery_page_charts_the_weights_of_each_step() -> None:
    import xml.etree.ElementTree as ET

    from sluice.bridge.views import delivery_page
    from sluice.services.readmodel import delivery

    flow, _, _ = world([100.0, 100.0, 100.0, 100.0, 900.0])
    flow.send(artifact(flow, "0.10.1"))
    events = flow.send(artifact(flow, "0.10.2"))
    view = delivery(flow.records, events[0].shkeptncontext)
    assert [h["weight"] for h in view["canary"]["production"]["history"]] == [10, 25]
    html = delivery_page("/bridge", view, 0)
    figure = html[html.index('<figure class="canary-chart"'): html.index("</figure>") + len("</figure>")]
    svg = ET.fromstring(figure).find("svg")
    assert svg is not None
    bars = [r for r in svg.iter("rect")]
    assert len(bars) == 2 and float(bars[1].get("height", 0)) > float(bars[0].get("height", 0))
    assert [t.text for t in svg.iter("title")] == ["step 1: 10 % pass (score 100)", "step 2: 25 % fail (score 0)"]
    assert "then 0 %: rolled back" in figure and "canary step 2 of 3 (25 %) failed" in figure


def steer(flow: Flow, context: str, decision: str, n: int = 1) -> list[Event]:
    from sluice.core.approval_auth import sign

    event = Event.new(ApprovalFinished(project="sockshop", stage="production", service="carts", decision=Decision(decision)),
                      source="test", id=f"{decision}-{n}", time=flow.clock(), context=context)
    return flow.send(sign(event, KEY, "alice"))


def test_abort_sends_the_traffic_back_at_once_and_a_repeat_changes_nothing() -> None:
    flow, backend, _ = world([100.0], tests="none")
    context = flow.send(artifact(flow, "0.10.1"))[0].shkeptncontext  # soaks at 10 %
    assert routes(backend) == [10]
    (done,) = dones(steer(flow, context, "abort"))
    assert done.data.outcome == "rolled_back" and "aborted by alice at canary step 1 (10 %)" in done.data.message  # type: ignore[attr-defined]
    assert routes(backend)[-1] == 0
    again = steer(flow, context, "abort", 2)
    assert {d.id for d in dones(again)} <= {done.id} and routes(backend)[-1] == 0
    flow.clock.advance(121)  # type: ignore[attr-defined]
    assert dones(flow.tick()) == []  # the aborted step's wait ends in nothing


def test_pause_holds_at_the_next_step_and_resume_goes_on() -> None:
    flow, backend, _ = world([100.0], tests="none")
    context = flow.send(artifact(flow, "0.10.1"))[0].shkeptncontext
    assert dones(steer(flow, context, "pause")) == []
    run = Ledger(flow.records).lane(PROD).active
    assert run is not None and run.canary is not None and run.canary.paused and run.phase.value == "testing"
    flow.clock.advance(121)  # type: ignore[attr-defined]
    held = flow.tick()
    assert list(by_type(held, EventType.APPROVAL_TRIGGERED)) and routes(backend) == [10]  # judged, then held
    assert Ledger(flow.records).lane(PROD).active.phase.value == "held"  # type: ignore[union-attr]
    steer(flow, context, "resume")
    assert routes(backend) == [10, 25]  # the next step
    flow.clock.advance(121)  # type: ignore[attr-defined]
    flow.tick()
    assert routes(backend) == [10, 25, 50]  # not paused any more


def test_a_weight_change_that_never_happens_fails_the_step_at_its_deadline() -> None:
    """The step's configuration.change is lost: the deploy tick fails the step, which rolls back
    in the same tick (the failure carries the step's attempt, so the evaluation takes it)."""
    flow, backend, _ = world([100.0])
    flow.drop = lambda e: e.type is EventType.CONFIGURATION_CHANGE and getattr(e.data, "value", 100) == 25
    flow.send(artifact(flow, "0.10.3"))
    assert routes(backend) == [10]
    run = Ledger(flow.records).lane(PROD).active
    assert run is not None and run.phase.value == "deploying" and run.deadline
    flow.clock.advance(241)  # type: ignore[attr-defined]
    (done,) = dones(flow.tick())
    assert done.data.outcome == "rolled_back" and "canary step 2 of 3 (25 %) failed" in done.data.message  # type: ignore[attr-defined]
    assert routes(backend)[-1] == 0


def test_manual_approval_holds_the_promotion_not_the_steps() -> None:
    text = shipyard().replace("    on_inconclusive: fail\n", "    on_inconclusive: fail\n    approval_strategy: {pass: manual}\n")
    assert "approval_strategy" in text
    backend = NoopBackend()
    records = Records(MemoryStore())
    records.create_project("sockshop", text, yaml.safe_load(text))
    records.onboard("sockshop", "carts")
    records.put_resource("sockshop", "production", "carts", "slo.yaml", SLO)
    def runner(deployed, context):  # type: ignore[no-untyped-def]
        return TestOutcome(Verdict.PASS, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")

    flow = Flow(records, backend, runner, FakeClock(), providers=lambda name, request: Latency([100.0]),
                approver_keys={"sockshop": KEY}.get)
    events = flow.send(artifact(flow, "0.10.3"))
    assert routes(backend) == [10, 25, 50] and dones(events) == []
    (held,) = by_type(events, EventType.APPROVAL_TRIGGERED)
    assert "promotion waits for approval" in held.data.message  # type: ignore[attr-defined]
    (done,) = dones(steer(flow, events[0].shkeptncontext, "approve"))
    assert done.data.outcome == "promoted" and routes(backend)[-2:] == [100, 0]  # type: ignore[attr-defined]
