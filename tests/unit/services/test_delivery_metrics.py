"""Delivery metrics folded from the events of real (in-process) deliveries."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.insight_world import World, make_world

from sluice.core import delivery_metrics as dm
from sluice.core.events import CanaryAction, Event, EventType, Outcome
from sluice.core.verdict import Verdict
from sluice.services.insight import delivery_metrics, metrics_docs, record_name


def stage(summary: dict, name: str) -> dict:
    return next(s for s in summary["stages"] if s["stage"] == name)


def test_tutorial_story_metrics(world: World) -> None:
    """Two builds reach production, the slow one is caught in staging by its evaluation."""
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        world.deliver(tag)
    m = delivery_metrics(world.records, "sockshop", "carts", timedelta(days=30), world.now())
    assert m["deployment_frequency"]["deployments"] == 2
    assert m["lead_time"]["count"] == 2 and m["lead_time"]["median_s"] is not None
    staging = stage(m, "staging")
    assert staging["outcomes"] == {"promoted": 2, "rolled_back": 1}
    assert staging["reasons"] == {"evaluation_fail": 1}
    assert staging["catch_rate"] == round(1 / 3, 4)
    assert staging["evaluations"] == {"fail": 1, "pass": 2}
    assert stage(m, "dev")["caught"] == 0 and stage(m, "dev")["ended"] == 3
    assert stage(m, "production")["duration"]["count"] == 2
    # the project view sums its services (orders had none)
    assert delivery_metrics(world.records, "sockshop", "", timedelta(days=30), world.now())["stages"] == m["stages"]


def test_catch_reasons(world: World) -> None:
    """A failing test run and an unreachable SLI provider are told apart from a failed evaluation."""
    world.deliver("0.10.1")
    world.deliver("0.0.1-broken")  # its tests fail in dev
    world.flow.drop = lambda e: e.type is EventType.GET_SLI and e.data.stage == "staging"  # type: ignore[attr-defined]
    world.deliver("0.10.3")
    world.clock.advance(121)
    world.flow.tick()
    m = delivery_metrics(world.records, "sockshop", "carts", timedelta(days=30), world.now())
    assert stage(m, "dev")["reasons"] == {"test_fail": 1}
    assert stage(m, "staging")["reasons"] == {"inconclusive": 1}


def test_window_excludes_older_days() -> None:
    """--since counts whole days: a delivery 40 days ago is outside --since 30d."""
    w = make_world()
    w.deliver("0.10.1")
    w.clock.advance(40 * 86400)
    w.deliver("0.10.3")
    assert delivery_metrics(w.records, "sockshop", "carts", timedelta(days=30), w.now())["deployment_frequency"]["deployments"] == 1
    assert delivery_metrics(w.records, "sockshop", "carts", timedelta(days=60), w.now())["deployment_frequency"]["deployments"] == 2


def _story_events() -> list[Event]:
    w = make_world()
    for tag in ("0.10.1", "0.10.2", "0.0.1-broken", "0.10.3"):
        w.deliver(tag)
    return list(w.flow.seen)


STORY = _story_events()


def _fold(events: list[Event]) -> dict:
    w = make_world()
    for e in events:
        w.insight.observe(e)
    doc = w.records.store.get(record_name("sockshop", "carts"))
    assert doc is not None
    return json.loads(doc.data["metrics"])


REFERENCE = _fold(STORY)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(STORY) - 1), st.integers(0, len(STORY))), max_size=60))
def test_redelivered_events_change_nothing(dupes: list[tuple[int, int]]) -> None:
    """At-least-once: any event delivered again, any number of times, later, leaves the metrics
    exactly as one delivery of each left them."""
    stream = [(i, e) for i, e in enumerate(STORY)]
    for which, after in dupes:
        at = next((k for k, (i, _) in enumerate(stream) if i == which), 0)
        stream.insert(max(at + 1, min(after + at + 1, len(stream))), (which, STORY[which]))
    assert _fold([e for _, e in stream]) == REFERENCE


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_reordered_events_count_each_outcome_once(rnd: random.Random) -> None:
    """Unordered delivery: each stage's outcome is counted once whatever the order."""
    events = STORY + STORY[: len(STORY) // 2]
    rnd.shuffle(events)
    totals = _fold(events)["totals"]
    assert {s: c["o"] for s, c in totals.items()} == {s: c["o"] for s, c in REFERENCE["totals"].items()}


def _replayed(events: list[Event], n: int, hours: int) -> list[Event]:
    """``events`` of one delivery as delivery ``n``: another context and image, ``hours`` later."""
    out = []
    for e in events:
        doc = e.to_json_dict()
        t = dm.parse_time(doc["time"]) + timedelta(hours=hours)  # type: ignore[operator]
        doc.update(id=f"{n}-{doc['id']}", time=dm.iso(t), shkeptncontext=f"{n:08d}-0000-4000-8000-{'0' * 12}")
        if doc["data"].get("image"):
            doc["data"]["image"] = f"registry.example/{'x' * 150}:{n}"
        out.append(Event.from_json_dict(doc))
    return out


def test_record_stays_bounded_and_old_duplicates_are_ignored(world: World) -> None:
    """Deliveries far past the table's limit, with long images: the record stays far below
    1 MiB, and replaying the first delivery after it left the table changes nothing."""
    first = world.deliver("0.10.2")
    slim = [e for e in first if e.type in (EventType.CONFIGURATION_CHANGE, EventType.EVALUATION_DONE, EventType.DONE)]
    world.clock.advance((dm.OPEN_LIMIT + 61) * 3600)  # the replays below are in the past, not the future
    for n in range(1, dm.OPEN_LIMIT + 60):
        for e in _replayed(slim, n, n):
            world.insight.observe(e)
    record = world.records.store.get(record_name("sockshop", "carts"))
    assert record is not None and record.size() < 900 * 1024
    doc = json.loads(record.data["metrics"])
    assert len(doc["open"]) == dm.OPEN_LIMIT and first[0].shkeptncontext not in doc["open"]
    assert doc["totals"]["staging"]["o"] == {"rolled_back": dm.OPEN_LIMIT + 60}
    before = record.data["metrics"]
    for e in first:
        world.insight.observe(e)
    assert world.records.store.get(record_name("sockshop", "carts")).data["metrics"] == before  # type: ignore[union-attr]


def test_quantile_interpolates_like_prometheus() -> None:
    """The median of 10 values in the 60–120 s bucket is 90 s (linear inside the bucket)."""
    hist: dict = {}
    for _ in range(10):
        dm._hist_add(hist, dm.SECONDS_BUCKETS, 100.0)
    assert dm.quantile(hist, dm.SECONDS_BUCKETS, 0.5) == 90.0
    assert dm.quantile({}, dm.SECONDS_BUCKETS, 0.5) is None


def test_events_of_unknown_services_create_nothing(world: World) -> None:
    """An event naming a service that is not onboarded creates no record."""
    world.deliver("0.10.1")
    for e in world.flow.seen:
        data = e.data.to_dict()
        data["service"] = "ghost"
        world.insight.observe(Event.from_json_dict({**e.to_json_dict(), "data": data}))
    assert metrics_docs(world.records, "sockshop", "ghost") == []


def _held_delivery() -> tuple[World, Event]:
    """A delivery whose promotion in production waits for a person; its approval.triggered."""
    import yaml

    w = make_world()
    manual = w.records.project("sockshop").shipyard_text + "    approval_strategy: {pass: manual}\n"
    w.records.create_project("sockshop", manual, yaml.safe_load(manual))
    events = w.deliver("0.10.1")
    return w, next(e for e in events if e.type is EventType.APPROVAL_TRIGGERED)


def _after(w: World, cause: Event, payload: object, n: int) -> Event:
    return Event.new(payload, source="test", id=f"after-{n}", time=w.clock(), context=cause.shkeptncontext)  # type: ignore[arg-type]


def test_a_hold_never_let_on_is_caught_as_declined_or_expired() -> None:
    """A promotion held for a person that ends without being promoted (declined, or expired)
    counts as caught by 'approval declined or expired' — whoever sent the decision."""
    from sluice.core.events import Done

    w, held = _held_delivery()
    w.insight.observe(_after(w, held, Done(project="sockshop", stage="production", service="carts",
                                           outcome=Outcome.ROLLED_BACK, result=Verdict.FAIL, message="discarded"), 1))
    m = delivery_metrics(w.records, "sockshop", "carts", timedelta(days=30), w.now())
    assert stage(m, "production")["reasons"] == {"approval_declined_or_expired": 1}
    assert stage(m, "production")["approvals_held"] == 1


def test_a_promotion_that_fails_after_approval_is_a_deploy_error() -> None:
    """Approved (a promote follows the hold), then the promotion fails: a deploy error."""
    from sluice.core.events import ConfigurationChange, Done

    w, held = _held_delivery()
    w.insight.observe(_after(w, held, ConfigurationChange(project="sockshop", stage="production", service="carts",
                                                          image="docker.io/keptnexamples/carts:0.10.1", action=CanaryAction.PROMOTE, value=0), 1))
    w.insight.observe(_after(w, held, Done(project="sockshop", stage="production", service="carts",
                                           outcome=Outcome.FAILED, result=Verdict.FAIL, message="promote failed"), 2))
    m = delivery_metrics(w.records, "sockshop", "carts", timedelta(days=30), w.now())
    assert stage(m, "production")["reasons"] == {"deploy_error": 1}


def test_fit_keeps_a_document_within_its_byte_budget() -> None:
    """Deliveries with large stage entries: ``fit`` drops the least recently active ones
    until the document is within the budget, and the horizon follows."""
    from datetime import UTC, datetime

    doc: dict = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    failing = tuple(dm.Failing("sli-" + "n" * 70, 1.5, "<" + "9" * 110, "fail") for _ in range(5))
    for i in range(dm.OPEN_LIMIT):
        for s in range(dm.STAGES_LIMIT):
            dm.observe(doc, dm.Fact(dm.FactKind.EVALUATED, context=f"c{i:04d}", stage=f"stage-{s}",
                                    time=start + timedelta(minutes=i), result="fail", failing=failing, image="i" * 300))
    assert dm.size_of(doc) > dm.BYTES_BUDGET
    dm.fit(doc)
    assert dm.size_of(doc) <= dm.BYTES_BUDGET and "c0000" not in doc["open"] and f"c{dm.OPEN_LIMIT - 1:04d}" in doc["open"]
    assert doc["horizon"] > dm.iso(start)


def test_an_event_from_the_future_cannot_blind_the_metrics(world: World) -> None:
    """A done stamped in year 9999 counts as arriving now; later deliveries still count."""
    events = world.deliver("0.10.1")
    done = next(e for e in events if e.type is EventType.DONE).to_json_dict()
    done.update(id="future", time="9999-01-01T00:00:00Z", shkeptncontext="f" * 8 + "-0000-4000-8000-" + "0" * 12)
    world.insight.observe(Event.from_json_dict(done))
    doc = json.loads(world.records.store.get(record_name("sockshop", "carts")).data["metrics"])  # type: ignore[union-attr]
    assert max(doc["days"]) < "2027"
    for n in range(dm.OPEN_LIMIT + 5):  # the future delivery leaves the table; the horizon stays in the present
        world.clock.advance(60)
        world.insight.observe(Event.from_json_dict({**done, "id": f"d{n}", "time": world.clock(),
                                                    "shkeptncontext": f"{n:08d}-0000-4000-8000-{'0' * 12}"}))
    before = delivery_metrics(world.records, "sockshop", "carts", timedelta(days=30), world.now())
    world.deliver("0.10.3")
    after = delivery_metrics(world.records, "sockshop", "carts", timedelta(days=30), world.now())
    assert after["deployment_frequency"]["deployments"] == before["deployment_frequency"]["deployments"] + 1
