"""A starved load generator through the real services: tests-finished carries why the measurement
cannot be trusted, the evaluation is inconclusive with that reason (verdict and score still
Keptn's), and the stage's on_inconclusive decides — retry re-runs the tests, fail never promotes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import yaml
from tests.support.flow import FakeClock, Flow, by_type

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import ConfigurationChange, Event, EventType, GetSli, TestsFinished
from sluice.core.verdict import Verdict
from sluice.ports.backend import Placement
from sluice.ports.sli import SliQuery, SliValue
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

CARTS = "docker.io/keptnexamples/carts"
SLO = ("objectives:\n  - sli: response_time_p95\n    pass: [{criteria: ['<600']}]\n    warning: [{criteria: ['<=800']}]\n"
       "total_score: {pass: '90%', warning: '50%'}\n")
STARVED = ("the load generator fell behind its schedule on 45 of 200 request(s) (22.5%, more than 1%; "
           "worst stall 1800 ms): the machine running the test was starved of CPU, so the measurement is not reliable")


def shipyard(policy: str, strategy: str = "blue_green_service", canary: str = "") -> str:
    return f"""
stages:
  - name: staging
    deployment_strategy: {strategy}
    test_strategy: performance
    on_inconclusive: {policy}
{canary}
  - name: production
    deployment_strategy: direct
"""


class Fast:
    """An SLI provider that always measures the same p95 (by default a good one: the SLIs alone pass)."""

    def __init__(self, p95: float = 50.0) -> None:
        self.p95 = p95

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        return [SliValue(i, self.p95) for i in query.indicators]


def world(policy: str, starved_runs: int, p95: float = 50.0, lag_ms: float = 0.0,
          **stage: str) -> tuple[Flow, NoopBackend, list[int]]:
    records = Records(MemoryStore())
    text = shipyard(policy, **stage)
    records.create_project("sockshop", text, yaml.safe_load(text))
    records.onboard("sockshop", "carts")
    records.put_resource("sockshop", "staging", "carts", "slo.yaml", SLO)
    backend = NoopBackend()
    runs: list[int] = []

    def runner(deployed, context):  # type: ignore[no-untyped-def]
        runs.append(1)
        starved = len(runs) <= starved_runs
        return TestOutcome(Verdict.PASS, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
                           "performance test pass, inconclusive: …", inconclusive=STARVED if starved else "",
                           lag_ms=lag_ms if starved else 0.0)

    def providers(name: str, request: GetSli) -> Fast:
        return Fast(p95)

    return Flow(records, backend, runner, FakeClock(), providers=providers), backend, runs


def artifact(flow: Flow, tag: str) -> Event:
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:{tag}")
    return Event.new(change, source="test", id=str(uuid.uuid4()), time=flow.clock())


def outcomes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.data.stage, e.data.outcome) for e in by_type(events, EventType.DONE)]  # type: ignore[attr-defined]


def staging_evaluations(events: list[Event]) -> list[dict[str, object]]:
    return [e.data.evaluationdetails["sluice"] for e in by_type(events, EventType.EVALUATION_DONE)  # type: ignore[attr-defined]
            if e.data.stage == "staging"]  # type: ignore[attr-defined]


def test_tests_finished_carries_the_reason_and_the_evaluation_is_inconclusive() -> None:
    """The reason travels as a Sluice extension of tests-finished (result stays pass) into the
    evaluation's inconclusive reasons, kind unreliable_measurement; the verdict is Keptn's (pass)."""
    flow, _backend, _runs = world("retry", starved_runs=1)
    events = flow.send(artifact(flow, "1.0.0"))
    finished = [e.data for e in by_type(events, EventType.TESTS_FINISHED) if e.data.stage == "staging"]  # type: ignore[attr-defined]
    assert isinstance(finished[0], TestsFinished) and finished[0].result == Verdict.PASS
    assert finished[0].inconclusive == STARVED and finished[0].to_dict()["sluice"] == {"inconclusive": STARVED, "lag_ms": 0.0}
    first = staging_evaluations(events)[0]
    assert first["result"] == "pass" and first["inconclusive"] is True
    assert first["inconclusive_reasons"] == [{"sli": "", "kind": "unreliable_measurement", "message": STARVED}]
    stored = flow.records.evaluations("sockshop", "staging", "carts")
    assert stored[0]["inconclusive_reasons"][0]["message"] == STARVED  # what get evaluation / the web view show


def test_retry_re_runs_the_starved_tests_and_judges_the_reliable_run() -> None:
    """on_inconclusive: retry — the starved run is not judged; the tests run again and the
    reliable second run promotes."""
    flow, backend, runs = world("{action: retry, max_retries: 2}", starved_runs=1)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 2
    assert [e["inconclusive"] for e in staging_evaluations(events)] == [True, False]
    assert outcomes(events) == [("staging", "promoted"), ("production", "promoted")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:1.0.0"


def test_fail_never_promotes_on_a_starved_measurement() -> None:
    """on_inconclusive: fail (the default) — 700 ms measured with a 200 ms stall is a warning (which
    promotes) or a pass: the stage cannot tell, rolls back naming the reason, production never sees it."""
    flow, backend, runs = world("fail", starved_runs=99, p95=700.0, lag_ms=200.0)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 1
    assert outcomes(events) == [("staging", "rolled_back")]
    done = next(by_type(events, EventType.DONE))
    assert "discarded (inconclusive: the load generator fell behind its schedule" in done.data.message  # type: ignore[attr-defined]
    assert backend.serving(Placement("sockshop", "production", "carts")) == ""
    assert staging_evaluations(events)[0]["result"] == "warning"  # Keptn's verdict is unchanged


def test_retry_gives_up_after_max_retries_and_fails() -> None:
    """Starved every time: after max_retries re-runs the stage fails, never promotes."""
    flow, backend, runs = world("{action: retry, max_retries: 2}", starved_runs=99)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 3
    assert outcomes(events) == [("staging", "rolled_back")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == ""


def test_a_starved_canary_step_is_retried_then_walks_on() -> None:
    """A canary step whose load was starved is re-run under retry (its retries count per step);
    the reliable runs walk the steps and promote."""
    canary = "    canary: {steps: [10, 50], step_duration: 1m, max_failed_steps: 0}"
    flow, backend, runs = world("{action: retry, max_retries: 1}", starved_runs=1, strategy="canary", canary=canary)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 3  # step 1 twice (starved, then reliable), step 2 once
    assert outcomes(events) == [("staging", "promoted"), ("production", "promoted")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:1.0.0"


def test_a_starved_canary_step_under_fail_rolls_back_with_the_reason() -> None:
    """Under fail, the starved step fails and the canary rolls back; the reason says why."""
    canary = "    canary: {steps: [10, 50], step_duration: 1m, max_failed_steps: 0}"
    flow, backend, _runs = world("fail", starved_runs=1, strategy="canary", canary=canary)
    events = flow.send(artifact(flow, "1.0.0"))
    assert outcomes(events) == [("staging", "rolled_back")]
    done = next(by_type(events, EventType.DONE))
    assert "canary step 1 of 2 (10 %) failed: inconclusive (the load generator fell behind" in done.data.message  # type: ignore[attr-defined]
    assert backend.serving(Placement("sockshop", "production", "carts")) == ""


def test_the_extension_round_trips_and_old_events_read_as_reliable() -> None:
    """``sluice.inconclusive`` decodes and encodes back; a Keptn/older tests-finished without it
    decodes as reliable and encodes to the same JSON (no ``sluice`` key)."""
    base = {"project": "sockshop", "stage": "staging", "service": "carts", "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-01T00:01:00Z", "result": "pass"}
    old = TestsFinished.from_dict(base)
    assert old.inconclusive == "" and "sluice" not in old.to_dict()
    new = TestsFinished.from_dict({**base, "sluice": {"inconclusive": STARVED}})
    assert new.inconclusive == STARVED and TestsFinished.from_dict(new.to_dict()) == new
    assert new.result == Verdict.PASS  # Keptn's result keeps its two values


def test_a_fail_that_stands_without_the_stall_is_judged_not_retried() -> None:
    """A starved generator only over-states latencies, by at most its worst stall: 0.10.2's p95 of
    1,050 ms lowered by an 81 ms stall still fails '<600' — the build's own fail, judged at once
    (no retry, no 'inconclusive' in the roll-back); the note says why."""
    flow, _backend, runs = world("{action: retry, max_retries: 2}", starved_runs=99, p95=1050.0, lag_ms=81.0)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 1
    (evaluation,) = staging_evaluations(events)
    assert evaluation["result"] == "fail" and evaluation["inconclusive"] is False
    done = next(by_type(events, EventType.DONE))
    assert outcomes(events) == [("staging", "rolled_back")] and "inconclusive" not in done.data.message  # type: ignore[attr-defined]
    message = next(by_type(events, EventType.EVALUATION_DONE)).data.message  # type: ignore[attr-defined]
    assert "the verdict is fail with every latency as measured and lowered by that much: judged" in message


def test_a_verdict_the_stall_could_explain_stays_inconclusive() -> None:
    """650 ms measured with a 358 ms stall: a warning as measured, but the true p95 may be under 600
    (a pass) — inconclusive, retried; the reliable re-run's 650 ms is judged (a warning, which promotes)."""
    flow, _backend, runs = world("{action: retry, max_retries: 1}", starved_runs=1, p95=650.0, lag_ms=358.0)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 2
    assert [(e["result"], e["inconclusive"]) for e in staging_evaluations(events)] == [("warning", True), ("warning", False)]
    assert outcomes(events) == [("staging", "promoted"), ("production", "promoted")]


def test_a_pass_on_over_stated_latencies_is_judged_and_is_no_baseline() -> None:
    """50 ms measured with an 81 ms stall: the true p95 is lower still, so the pass is the build's
    own — promoted at once, even under fail; the evaluation records the stall and a later one does not
    compare with its (possibly over-stated) values."""
    flow, backend, runs = world("fail", starved_runs=1, p95=50.0, lag_ms=81.0)
    events = flow.send(artifact(flow, "1.0.0"))
    assert len(runs) == 1 and outcomes(events) == [("staging", "promoted"), ("production", "promoted")]
    assert backend.serving(Placement("sockshop", "production", "carts")) == f"{CARTS}:1.0.0"
    (evaluation,) = staging_evaluations(events)
    assert evaluation["result"] == "pass" and evaluation["inconclusive"] is False
    assert flow.records.evaluations("sockshop", "staging", "carts")[0]["lag_ms"] == 81.0
    later = flow.send(artifact(flow, "1.0.1"))
    (second,) = staging_evaluations(later)
    assert second["comparison"]["compared_evaluations"] == []  # type: ignore[index]


def test_a_starved_pass_without_a_stall_bound_is_no_baseline_either() -> None:
    """An unreliable measurement whose stall is unknown (``lag_ms`` 0: no bound) passed but stayed
    inconclusive; it is retried, and the retry's evaluation does not compare with it — nor does a
    later delivery's (its latencies may be over-stated, which would make a later "<=+10%" lenient)."""
    flow, _backend, _runs = world("retry", starved_runs=1, p95=50.0, lag_ms=0.0)
    events = flow.send(artifact(flow, "1.0.0"))
    first, retried = staging_evaluations(events)
    assert first["inconclusive"] is True and first["result"] == "pass"
    assert retried["comparison"]["compared_evaluations"] == []  # type: ignore[index]
    later = staging_evaluations(flow.send(artifact(flow, "1.0.1")))
    assert later[0]["comparison"]["compared_evaluations"] == [retried["id"]]  # type: ignore[index]
