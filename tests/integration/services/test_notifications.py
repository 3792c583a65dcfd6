"""Notifications posted to a real local HTTP receiver, fed by the event log of real deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.insight_world import Receiver, World, make_world

from sluice.adapters.notify.secretfiles import SecretFiles
from sluice.adapters.notify.webhook import HttpWebhookSender
from sluice.core import delivery_metrics as dm
from sluice.core import notification as nt
from sluice.core.events import Event, EventType, Ping
from sluice.services.insight import add_notification, outbox_entries


def tick(world: World) -> None:
    now = dm.iso(world.clock.current)  # a tick does not move the clock
    ping = Event.new(Ping(), source="test/tick", id=f"tick-{now}", time=now)
    world.flow.eventlog.handle(ping)


def configure(world: World, url: str, on: str, **extra: str) -> None:
    config = nt.parse_notification(extra.pop("name", "team"), {"url": url, "on": on, **extra})
    add_notification(world.records, "sockshop", config)


def test_one_message_per_outcome_under_duplicated_events(receiver: Receiver) -> None:
    """Every event of three deliveries delivered again (shuffled, twice): exactly one message per
    delivery × stage × outcome reaches the receiver."""
    world = make_world(sender=HttpWebhookSender)
    configure(world, receiver.url, "promoted,rolled_back,failed,stopped", format="cloudevent")
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        world.deliver(tag)
    dones = [e for e in world.flow.seen if e.type is EventType.DONE]
    replay = list(world.flow.seen) * 2
    random.Random(7).shuffle(replay)
    for e in replay:
        world.flow.eventlog.handle(e)
    tick(world)
    got = Counter((m["body"]["shkeptncontext"], m["body"]["data"]["stage"], m["body"]["data"]["outcome"]) for m in receiver.delivered())
    assert got == Counter((e.shkeptncontext, e.data.stage, e.data.outcome) for e in dones)  # type: ignore[attr-defined]
    assert all(v == 1 for v in got.values()) and len(got) == 8  # 3 stages + 2 (caught in staging) + 3
    sent = receiver.delivered()[0]
    assert sent["headers"]["Content-Type"] == "application/cloudevents+json"
    assert {e["phase"] for e in outbox_entries(world.records, "sockshop")} == {"sent"}


def test_slack_message_names_the_failing_sli_and_links_the_delivery(receiver: Receiver) -> None:
    """The rolled-back build's Slack message: service, image, stage, outcome, failing SLI with
    its value and criterion, and a link to the delivery in the web view."""
    world = make_world(sender=HttpWebhookSender)
    configure(world, receiver.url, "rolled_back", stage="staging")
    world.deliver("0.10.1")
    slow = world.deliver("0.10.2")
    [message] = receiver.delivered()
    text = json.dumps(message["body"])
    assert message["body"]["text"].startswith(":leftwards_arrow_with_hook: carts")
    for needle in ("carts", "docker.io/keptnexamples/carts:0.10.2", "staging", "rolled back", "response_time_p95",
                   "1050", "<600", f"http://127.0.0.1:8080/bridge/delivery/{slow[0].shkeptncontext}"):
        assert needle in text, needle


def test_retries_on_500_with_backoff_then_sends_once(receiver: Receiver) -> None:
    """A receiver answering 500 twice gets the message again after the backoff, on ticks;
    then it is recorded as sent with its attempts."""
    world = make_world(sender=HttpWebhookSender)
    configure(world, receiver.url, "promoted", stage="production")  # the delivery's last event
    receiver.statuses = [500, 500]
    world.deliver("0.10.1")
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "pending" and entry["code"] == 500 and entry["attempts"] == 1
    tick(world)  # before the backoff: nothing is sent
    assert len(receiver.received) == 1
    for _ in range(3):
        world.clock.advance(10)
        tick(world)
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "sent" and entry["code"] == 200 and entry["attempts"] == 3
    assert [r["status"] for r in receiver.received] == [500, 500, 200]
    assert len({r["headers"]["Idempotency-Key"] for r in receiver.received}) == 1


def test_gives_up_at_the_deadline_and_records_it(receiver: Receiver) -> None:
    """A receiver that always answers 503: retried until the deadline, then recorded as failed."""
    world = make_world(sender=HttpWebhookSender)
    configure(world, receiver.url, "promoted", stage="dev")
    receiver.statuses = [503] * 1000
    world.deliver("0.10.1")
    for _ in range(40):
        world.clock.advance(60)
        tick(world)
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "failed" and "gave up at the deadline" in entry["error"] and entry["code"] == 503
    attempts = len(receiver.received)
    world.clock.advance(3600)
    tick(world)
    assert len(receiver.received) == attempts > 3


def test_a_4xx_answer_is_final(receiver: Receiver) -> None:
    """A 404 is not retried: the entry fails at once with the answer code."""
    world = make_world(sender=HttpWebhookSender)
    configure(world, receiver.url, "promoted", stage="dev")
    receiver.statuses = [404]
    world.deliver("0.10.1")
    world.clock.advance(600)
    tick(world)
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "failed" and entry["code"] == 404 and len(receiver.received) == 1


@pytest.mark.parametrize("url", [
    "http://example.com/hook",  # not https, not loopback
    "ftp://127.0.0.1/hook",
    "https://user:pw@hooks.example/x",
])
def test_nothing_is_sent_for_a_rejected_configuration(receiver: Receiver, url: str) -> None:
    """A configuration applied behind the CLI's back (as kubectl would) that is refused sends
    nothing; the refusal is recorded with its reason."""
    world = make_world(sender=HttpWebhookSender)
    name, labels = world.records.scoped("notifications", "sockshop")
    world.records.update_data(name, labels, lambda d, _: d.update({"bad": json.dumps({"url": url, "on": ["promoted"]})}))
    with pytest.raises(ValueError):
        nt.parse_notification("bad", {"url": url, "on": ["promoted"]})
    world.deliver("0.10.1")
    tick(world)
    assert receiver.received == []
    entries = outbox_entries(world.records, "sockshop")
    assert entries and all(e["phase"] == "rejected" and "url" in e["error"] for e in entries)


def test_a_slow_receiver_does_not_hold_the_delivery(receiver: Receiver) -> None:
    """While the receiver does not answer, every stage of the delivery still ends (the send
    gives up after its short timeout and is retried later); then the message arrives."""
    world = make_world(sender=HttpWebhookSender, send_timeout_s=0.3)
    configure(world, receiver.url, "promoted", stage="production", format="cloudevent")
    receiver.gate.clear()  # the receiver hangs
    events = world.deliver("0.10.1")
    assert [e.data.stage for e in events if e.type is EventType.DONE] == ["dev", "staging", "production"]  # type: ignore[attr-defined]
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "pending" and "no answer within" in entry["error"]
    receiver.gate.set()
    world.clock.advance(10)
    tick(world)
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "sent"


def test_signed_with_a_secret_that_is_never_stored(receiver: Receiver, tmp_path: Path) -> None:
    """The body is signed with the secret from the secret store; the secret appears in no
    record, event or entry."""
    secret = "s3cr3t-" + "k" * 30
    store = SecretFiles(tmp_path / "secrets")
    store.put("team-key", secret)
    world = make_world(sender=HttpWebhookSender, secrets=store)
    configure(world, receiver.url, "promoted", stage="dev", secret="team-key")
    world.deliver("0.10.1")
    [message] = receiver.delivered()
    expected = "sha256=" + hmac.new(secret.encode(), message["raw"], hashlib.sha256).hexdigest()
    assert message["headers"]["X-Sluice-Signature-256"] == expected
    everything = json.dumps([dict(r.data) for r in world.records.store.list({})])
    assert secret not in everything


def test_the_eventlog_function_reads_notification_secrets_from_the_secrets_dir(tmp_path: Path) -> None:
    """The eventlog function's secret reader (built on first read) reads the files of
    ``build_notification_secrets``: a stored secret, None for an absent one."""
    from sluice.config import Settings
    from sluice.functions.eventlog import _NotificationSecrets

    SecretFiles(tmp_path / "keys").put("team-key", "k" * 24)
    reader = _NotificationSecrets(Settings(secrets_dir=str(tmp_path / "keys")))
    assert reader.secret("team-key") == "k" * 24
    assert reader.secret("absent") is None


def test_missing_secret_rejects_without_sending(receiver: Receiver, tmp_path: Path) -> None:
    """A notification whose secret is not in the store is rejected, naming the secret (not a value)."""
    world = make_world(sender=HttpWebhookSender, secrets=SecretFiles(tmp_path / "none"))
    configure(world, receiver.url, "promoted", stage="dev", secret="absent")
    world.deliver("0.10.1")
    [entry] = outbox_entries(world.records, "sockshop")
    assert entry["phase"] == "rejected" and "'absent' not found" in entry["error"] and receiver.received == []


def test_a_world_readable_secret_file_is_refused(tmp_path: Path) -> None:
    """Local secrets must be 0600: a file others can read is refused."""
    store = SecretFiles(tmp_path)
    path = store.put("k", "v" * 20)
    assert json.loads(path.read_text()) == {"value": "v" * 20}  # the local secret store's layout
    path.chmod(0o644)
    from sluice.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="readable by others"):
        store.secret("k")


def test_approval_notification_carries_the_approval_event(receiver: Receiver) -> None:
    """``approval`` sends the approval.triggered CloudEvent as is (cloudevent format)."""
    world = make_world(sender=HttpWebhookSender)
    manual = world.records.project("sockshop").shipyard_text + "    approval_strategy: {pass: manual}\n"
    import yaml

    world.records.create_project("sockshop", manual, yaml.safe_load(manual))
    configure(world, receiver.url, "approval", format="cloudevent")
    events = world.deliver("0.10.1")
    triggered = next(e for e in events if e.type is EventType.APPROVAL_TRIGGERED)
    [message] = receiver.delivered()
    assert message["body"] == triggered.to_json_dict()


def test_a_tick_reads_only_records_with_waiting_messages(receiver: Receiver) -> None:
    """The outbox's label says whether messages wait: after they are sent, a tick lists nothing."""
    world = make_world(sender=HttpWebhookSender)
    configure(world, receiver.url, "promoted", stage="production")
    receiver.statuses = [500]
    world.deliver("0.10.1")
    waiting = {"sluice.dev/kind": "insight", "sluice.dev/notifications-waiting": "true"}
    assert [r.name for r in world.records.store.list(waiting)] == ["insight.sockshop.carts"]
    world.clock.advance(10)
    tick(world)
    assert world.records.store.list(waiting) == []
    assert [r["status"] for r in receiver.received] == [500, 200]


def test_outbox_stays_within_its_byte_budget() -> None:
    """Hundreds of large waiting messages: the outbox keeps under its budget by dropping
    finished entries first, then giving up the oldest waiting ones (recorded as failed)."""
    from datetime import UTC, datetime, timedelta

    entries: dict = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(400):
        now = start + timedelta(seconds=i)
        key = f"team#{i:04d}#dev#promoted"
        entries[key] = nt.new_entry(name="team", key=key, context=f"{i:04d}", stage="dev", trigger="promoted",
                                    now=now, body={"text": "x" * 4000}, headers={})
        if i % 3 == 0:  # every third one is sent at once
            assert nt.claim(entries[key], now) == "send" and nt.record_answer(entries[key], 1, now, 200, "")
        nt.trim(entries, now)
        size = len(json.dumps(entries, separators=(",", ":")).encode())
        assert size <= nt.OUTBOX_BYTES and len(entries) <= nt.OUTBOX_LIMIT
    newest = entries["team#0398#dev#promoted"]
    assert newest["phase"] == "pending" and "body" in newest
    assert any(e["phase"] == "failed" and "byte budget" in e["error"] for e in entries.values())


_STORY_WORLD = make_world()
for _tag in ("0.10.1", "0.10.2", "0.10.3"):
    _STORY_WORLD.deliver(_tag)
STORY = list(_STORY_WORLD.flow.seen)
EXPECTED = Counter((e.shkeptncontext, e.data.stage, e.data.outcome) for e in STORY if e.type is EventType.DONE)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, len(STORY) - 1), max_size=40), st.randoms(use_true_random=False))
def test_exactly_one_message_per_outcome_under_any_redelivery(shared_receiver: Receiver, extra: list[int], rnd) -> None:  # type: ignore[no-untyped-def]
    """At-least-once and unordered: the story's events, any of them again, in any order —
    exactly one message per delivery × stage × outcome."""
    shared_receiver.received.clear()
    world = make_world(sender=HttpWebhookSender)
    configure(world, shared_receiver.url, ",".join(nt.TRIGGERS), format="cloudevent")
    stream = STORY + [STORY[i] for i in extra]
    rnd.shuffle(stream)
    for e in stream:
        world.insight.observe(e)
    got = Counter((m["body"]["shkeptncontext"], m["body"]["data"]["stage"], m["body"]["data"]["outcome"])
                  for m in shared_receiver.delivered() if m["body"]["type"] == EventType.DONE.value)
    assert got == EXPECTED


def test_a_mounted_secret_volume_key_is_read(tmp_path: Path) -> None:
    """On a cluster a Secret volume holds each key as a symlink into ..data: it is read as is."""
    data = tmp_path / "..data"
    data.mkdir()
    (data / "hook-key").write_text("mounted-secret-value\n")
    (tmp_path / "hook-key").symlink_to(data / "hook-key")
    store = SecretFiles(tmp_path)
    assert store.secret("hook-key") == "mounted-secret-value" and store.exists("hook-key")
    assert store.secret("absent") is None


def test_secret_values_over_a_named_secret_store() -> None:
    """A store of named secrets (the secrets port's shape) serves notification secrets."""
    from sluice.errors import ConfigurationError
    from sluice.services.insight import SecretValues

    store = {"a": {"value": "x" * 20}, "b": {"key": "y" * 20}, "c": {"k1": "1", "k2": "2"}}
    secrets = SecretValues(store)  # type: ignore[arg-type]
    assert secrets.secret("a") == "x" * 20 and secrets.secret("b") == "y" * 20 and secrets.secret("zz") is None
    with pytest.raises(ConfigurationError, match="'value'"):
        secrets.secret("c")
