"""Delivery settings (ISO-8601 durations, backoff, retry rules) and the topology from manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.broker_fixtures import ksvc_ref, trigger, write_knative

from sluice.embedded.broker.delivery import DeliverySpec, is_retryable, parse_duration
from sluice.embedded.broker.manifests import load_topology
from sluice.errors import ConfigurationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT0.2S", 0.2), ("PT30S", 30), ("PT1M30S", 90), ("PT1H", 3600), ("P1D", 86400), ("P1DT1S", 86401),
     ("PT0,5S", 0.5), ("P1W", 604800)],
)
def test_iso8601_durations(text: str, seconds: float) -> None:
    """ISO-8601 durations of weeks, days, hours, minutes and (fractional) seconds are read."""
    assert parse_duration(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "P", "PT", "0.2S", "PT0.2", "P1DT", "1s", 5, None, "PT-1S"])
def test_bad_durations_are_refused(text: object) -> None:
    """Anything else is a ConfigurationError saying what was expected."""
    with pytest.raises(ConfigurationError, match="ISO-8601"):
        parse_duration(text, "spec.delivery.backoffDelay")


def test_backoff_policies() -> None:
    """Before retry n, linear waits delay×n and exponential delay×2ⁿ⁻¹ (the first retry waits the delay)."""
    linear = DeliverySpec.parse({"backoffPolicy": "linear", "backoffDelay": "PT0.5S"}, "d")
    exponential = DeliverySpec.parse({"backoffPolicy": "exponential", "backoffDelay": "PT0.5S"}, "d")
    assert [linear.backoff_s(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    assert [exponential.backoff_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_retry_rules() -> None:
    """5xx, 404, 408, 409 and 429 are retried; 3xx and other 4xx are final."""
    assert all(is_retryable(c) for c in (500, 502, 503, 504, 404, 408, 409, 429))
    assert not any(is_retryable(c) for c in (300, 301, 302, 307, 400, 401, 403, 405, 410, 413, 422))


def test_delivery_defaults_and_validation() -> None:
    """No delivery means no retry and a bounded timeout; bad fields are refused by name."""
    spec = DeliverySpec.parse(None, "d")
    assert spec.retry == 0 and spec.timeout_s > 0
    assert DeliverySpec.parse({"timeout": "PT2S", "retry": 3}, "d").timeout_s == 2
    for bad, field in [({"retry": -1}, "retry"), ({"retry": "3"}, "retry"), ({"backoffPolicy": "random"}, "backoffPolicy"),
                       ({"timeout": "soon"}, "timeout"), ({"format": "xml"}, "format"), ({"deadLetterSink": {}}, "deadLetterSink")]:
        with pytest.raises(ConfigurationError, match=field):
            DeliverySpec.parse(bad, "d")


def test_trigger_delivery_replaces_the_brokers_but_the_dead_letter_sink_falls_back() -> None:
    """A Trigger's delivery replaces the Broker's as a whole; only deadLetterSink is inherited."""
    broker = DeliverySpec.parse({"retry": 5, "backoffDelay": "PT1S", "deadLetterSink": {"uri": "http://127.0.0.1:9/dls"}}, "b")
    own = DeliverySpec.parse({"timeout": "PT3S"}, "t")
    merged = broker.for_trigger(own)
    assert merged.retry == 0 and merged.backoff_delay_s == 0.2 and merged.timeout_s == 3
    assert merged.dead_letter_sink == broker.dead_letter_sink
    assert broker.for_trigger(None) == broker


def write_trigger(directory: Path, name: str, spec: str, **kw: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(trigger(name, spec, **kw))


def test_broker_names_come_from_the_manifest(tmp_path: Path) -> None:
    """The ingress path is the Broker manifest's /<namespace>/<name>."""
    write_knative(tmp_path / "knative", ["deploy"], namespace="team", name="main")
    topology = load_topology(tmp_path / "knative", tmp_path / "triggers")
    assert topology.broker.path == "/team/main"
    assert topology.broker.delivery.retry == 1
    assert topology.services["fn-deploy"].target == "deploy"


def test_without_manifests_the_broker_is_sluice_default(tmp_path: Path) -> None:
    """With no knative/ directory the broker is sluice/default and has no triggers."""
    topology = load_topology(tmp_path / "missing", tmp_path / "missing-too")
    assert topology.broker.path == "/sluice/default"
    assert topology.triggers == () and dict(topology.services) == {}


def test_triggers_resolve_their_subscribers(tmp_path: Path) -> None:
    """A Trigger's ref names a Knative Service of knative/; its filter and delivery are compiled."""
    write_knative(tmp_path / "knative", ["deploy", "eventlog"])
    write_trigger(tmp_path / "triggers", "deploy", "filter:\n  attributes:\n    type: sh.keptn.event.configuration.change\n"
                  "delivery:\n  retry: 4\n" + ksvc_ref("fn-deploy"))
    write_trigger(tmp_path / "triggers", "other-broker", ksvc_ref("fn-deploy"), broker="elsewhere")
    topology = load_topology(tmp_path / "knative", tmp_path / "triggers")
    assert [t.name for t in topology.triggers] == ["deploy"]
    only = topology.triggers[0]
    assert only.subscriber.service == "fn-deploy" and only.delivery.retry == 4
    assert only.matches({"type": "sh.keptn.event.configuration.change"})
    assert not only.matches({"type": "sh.keptn.events.done"})
    assert [s.name for s in topology.subscribed_services()] == ["fn-deploy"]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (ksvc_ref("fn-nope"), "'fn-nope'"),
        ("subscriber:\n  ref:\n    apiVersion: v1\n    kind: Service\n    name: fn-deploy\n", "Knative Service"),
        ("subscriber:\n  uri: not-a-url\n", "absolute"),
        ("subscriber: {}\n", "ref"),
        ("filters:\n  - cesql: \"type = 'x'\"\n" + ksvc_ref("fn-deploy"), "cesql"),
        ("delivery:\n  backoffDelay: 1s\n" + ksvc_ref("fn-deploy"), "ISO-8601"),
    ],
)
def test_bad_triggers_are_refused_with_the_file_and_field(tmp_path: Path, spec: str, problem: str) -> None:
    """An unknown subscriber, a core Service, a bad URI, cesql or a bad duration stops the broker loudly."""
    write_knative(tmp_path / "knative", ["deploy"])
    write_trigger(tmp_path / "triggers", "bad", spec)
    with pytest.raises(ConfigurationError, match=problem) as err:
        load_topology(tmp_path / "knative", tmp_path / "triggers")
    assert "bad.yaml" in str(err.value)


def test_pingsource_into_the_broker_is_read(tmp_path: Path) -> None:
    """A PingSource whose sink is the Broker is emulated; its CloudEvent source is Knative's."""
    write_knative(tmp_path / "knative", [], pingsource=True)
    (ping,) = load_topology(tmp_path / "knative", None).pingsources
    assert ping.source == "/apis/v1/namespaces/sluice/pingsources/tick"
    assert ping.schedule == "* * * * *"


def test_repository_manifests_load_when_present() -> None:
    """The repository's own knative/ and triggers/ (when written) load without error."""
    root = Path(__file__).resolve().parents[4]
    if not any((root / "triggers").glob("*.yaml")):
        pytest.skip("triggers/ has no Trigger manifests yet")
    topology = load_topology(root / "knative", root / "triggers")
    assert topology.triggers


def test_container_concurrency_bounds_deliveries(tmp_path: Path) -> None:
    """A Service's containerConcurrency bounds the deliveries in flight to it, never above the local maximum."""
    from sluice.embedded.broker.app import Broker

    write_knative(tmp_path / "knative", ["deploy", "eventlog"])
    text = (tmp_path / "knative" / "broker.yaml").read_text()
    (tmp_path / "knative" / "broker.yaml").write_text(
        text.replace("      containers:", "      containerConcurrency: 3\n      containers:", 1)
    )
    write_trigger(tmp_path / "triggers", "deploy", ksvc_ref("fn-deploy"))
    write_trigger(tmp_path / "triggers", "eventlog", ksvc_ref("fn-eventlog"))
    topology = load_topology(tmp_path / "knative", tmp_path / "triggers")
    assert topology.services["fn-deploy"].concurrency == 3 and topology.services["fn-eventlog"].concurrency == 0
    urls = {"fn-deploy": "http://127.0.0.1:9/", "fn-eventlog": "http://127.0.0.1:9/"}
    broker = Broker(topology, urls, tmp_path / "dl.jsonl", "http://127.0.0.1:8080/sluice/default", max_concurrency=8)
    limits = {t.name: broker._slots_for(t)._value for t in topology.triggers}
    assert limits == {"deploy": 3, "eventlog": 8}


def test_pingsource_text_data_becomes_a_message(tmp_path: Path) -> None:
    """A PingSource whose data is not a JSON object is emitted as ``{"message": data}``, a valid ping."""
    from sluice.embedded.broker.app import Broker
    from sluice.embedded.broker.manifests import PingSourceSpec

    topology = load_topology(None, None)
    broker = Broker(topology, {}, tmp_path / "dl.jsonl", "http://127.0.0.1:8080/sluice/default")
    raw = broker.ping(PingSourceSpec("tick", "sluice", "* * * * *", "hello", "text/plain", "test"))
    assert raw is not None and json.loads(raw.data) == {"message": "hello"}
    assert raw.attributes["source"] == "/apis/v1/namespaces/sluice/pingsources/tick"
    raw = broker.ping(PingSourceSpec("tick", "sluice", "* * * * *", '{"message": "tick"}', "application/json", "t"))
    assert raw is not None and json.loads(raw.data) == {"message": "tick"}
