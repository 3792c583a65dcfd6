"""The local broker end to end: a real broker process, real function processes, test Triggers."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.support.broker import RunningBroker, process_alive, read_jsonl, start_broker, wait_for
from tests.support.broker_fixtures import ksvc_ref, trigger, write_functions, write_knative

from sluice.cli.main import main as sluice
from sluice.embedded.broker.processes import free_port

pytestmark = pytest.mark.slow

HeadersFor = Callable[..., dict[str, str]]
FAST = "delivery:\n  backoffDelay: PT0.01S\n"


def exact_source(source: str) -> str:
    return f"filters:\n  - exact:\n      source: {source}\n"


def triggers(refused_port: int) -> dict[str, str]:
    return {
        "rec": exact_source("test/record") + ksvc_ref("fn-recorder"),
        "ext": "filter:\n  attributes:\n    type: dev.knative.sources.ping\n    myext: hello\n" + ksvc_ref("fn-recorder"),
        "flaky": exact_source("test/flaky")
        + "delivery:\n  retry: 2\n  backoffPolicy: exponential\n  backoffDelay: PT0.01S\n" + ksvc_ref("fn-flaky"),
        "status": exact_source("test/status") + "delivery:\n  retry: 3\n  backoffDelay: PT0.01S\n" + ksvc_ref("fn-status"),
        "status-own": exact_source("test/status-own") + FAST + ksvc_ref("fn-status"),
        "status-inherit": exact_source("test/status-inherit") + ksvc_ref("fn-status"),
        "hang": exact_source("test/hang")
        + "delivery:\n  retry: 1\n  timeout: PT0.3S\n  backoffDelay: PT0.01S\n" + ksvc_ref("fn-hang"),
        "notce": exact_source("test/notce") + "delivery:\n  retry: 3\n  backoffDelay: PT0.01S\n" + ksvc_ref("fn-notce"),
        "ask": exact_source("test/ask") + ksvc_ref("fn-replier"),
        "replies": "filters:\n  - prefix:\n      source: test/replier\n" + ksvc_ref("fn-recorder"),
        "refused": exact_source("test/refused")
        + "delivery:\n  retry: 1\n  backoffDelay: PT0.01S\n"
        + f"subscriber:\n  uri: http://127.0.0.1:{refused_port}/\n",
        "dls": exact_source("test/dls")
        + "delivery:\n  backoffDelay: PT0.01S\n  deadLetterSink:\n    ref:\n      apiVersion: serving.knative.dev/v1\n"
        "      kind: Service\n      name: fn-recorder\n" + ksvc_ref("fn-status"),
        "pings": exact_source("/apis/v1/namespaces/sluice/pingsources/tick") + ksvc_ref("fn-recorder"),
        "combined": "filters:\n  - any:\n      - exact:\n          source: test/any-a\n      - suffix:\n          source: /any-b\n"
        "  - not:\n      exact:\n        subject: skip\n" + ksvc_ref("fn-recorder"),
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    root = tmp_path_factory.mktemp("broker")
    record = root / "record.jsonl"
    source = write_functions(root, record)
    write_knative(root / "knative", ["recorder", "flaky", "status", "hang", "notce", "replier", "bridge", "gate"],
                  pingsource=True)
    (root / "triggers").mkdir()
    for name, spec in triggers(free_port()).items():
        (root / "triggers" / f"{name}.yaml").write_text(trigger(name, spec))
    running = start_broker(root, record, source, tick=0.3)
    pids = [running.process.pid] + [f["pid"] for f in running.state()["functions"].values()]
    yield running
    assert running.stop() == 0, (root / "broker.out").read_text()
    for pid in pids:
        wait_for(lambda p=pid: not process_alive(p), 10, f"process {pid} to end")  # type: ignore[misc]
    assert not (running.state_dir / "broker" / "state.json").exists()


def new_id() -> str:
    return str(uuid.uuid4())


def test_binary_event_is_accepted_and_delivered_as_sent(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A binary-mode event gets 202 and reaches the matching Trigger's subscriber in binary mode, unchanged."""
    eid = new_id()
    response = broker.post(ping_headers(eid, "test/record", shkeptncontext="ctx-1"), '{"message": "hi"}')
    assert response.status_code == 202 and response.content == b""
    got = wait_for(lambda: broker.received(eid, "recorder"), what="the delivery")
    assert got[0]["attrs"]["type"] == "dev.knative.sources.ping"
    assert got[0]["attrs"]["shkeptncontext"] == "ctx-1"
    assert json.loads(got[0]["body"]) == {"message": "hi"}
    assert got[0]["prefer"] == "reply"  # Knative's data plane: the broker takes reply events


def test_structured_event_is_accepted_and_delivered_in_binary_mode(broker: RunningBroker) -> None:
    """A structured-mode event gets 202 and is delivered in binary mode with its attributes and data."""
    eid = new_id()
    doc = {"specversion": "1.0", "type": "dev.knative.sources.ping", "source": "test/record", "id": eid,
           "triggeredid": "cause-1", "datacontenttype": "application/json", "data": {"message": "structured"}}
    response = broker.post({"content-type": "application/cloudevents+json"}, json.dumps(doc))
    assert response.status_code == 202
    got = wait_for(lambda: broker.received(eid, "recorder"), what="the delivery")
    assert got[0]["attrs"]["triggeredid"] == "cause-1"
    assert got[0]["content_type"].startswith("application/json")
    assert json.loads(got[0]["body"]) == {"message": "structured"}


def _binary(eid: str, **over: str) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-source": "test/record",
               "ce-id": eid, "content-type": "application/json"}
    headers.update(over)
    return {k: v for k, v in headers.items() if v}


def _structured(eid: str, **over: Any) -> tuple[dict[str, str], str]:
    doc = {"specversion": "1.0", "type": "dev.knative.sources.ping", "source": "test/record", "id": eid,
           "data": {"message": "x"}}
    doc.update(over)
    return {"content-type": "application/cloudevents+json"}, json.dumps({k: v for k, v in doc.items() if v is not None})


#: Knative's documented ingress answers (specs/eventing/broker.md, data-plane.md): a 2xx for every
#: valid CloudEvent, whatever its type or payload; 400 for what is not a CloudEvent; 404 for an
#: unknown namespace/broker; 405 for any method but POST; plus this broker's size limit (413).
#: Each case: (headers, body, path or None, method, expected status, delivered to the recorder?)
CONFORMANCE: dict[str, Callable[[str], tuple[dict[str, str], str, str | None, str, int, bool]]] = {
    "valid binary 1.0": lambda e: (_binary(e), '{"message": "x"}', None, "POST", 202, True),
    "valid structured 1.0": lambda e: (*_structured(e), None, "POST", 202, True),
    "valid binary 0.3": lambda e: (_binary(e, **{"ce-specversion": "0.3"}), "{}", None, "POST", 202, True),
    "unknown type": lambda e: (_binary(e, **{"ce-type": "com.example.something"}), "{}", None, "POST", 202, True),
    "payload Sluice refuses": lambda e: (
        _binary(e, **{"ce-type": "sh.keptn.events.tests-finished"}), '{"project": "Not A Label"}', None, "POST", 202, True),
    "data not an object": lambda e: (_binary(e), "[1, 2]", None, "POST", 202, True),
    "data not JSON (opaque in binary mode)": lambda e: (_binary(e), '{"message": ', None, "POST", 202, True),
    "no CloudEvent at all": lambda e: ({"content-type": "application/json"}, '{"hello": "world"}', None, "POST", 400, False),
    "missing id": lambda e: (_binary(e, **{"ce-id": ""}), "{}", None, "POST", 400, False),
    "missing source": lambda e: (_binary(e, **{"ce-source": ""}), "{}", None, "POST", 400, False),
    "missing type": lambda e: (_binary(e, **{"ce-type": ""}), "{}", None, "POST", 400, False),
    "unknown specversion": lambda e: (_binary(e, **{"ce-specversion": "2.0"}), "{}", None, "POST", 400, False),
    "malformed time": lambda e: (_binary(e, **{"ce-time": "yesterday"}), "{}", None, "POST", 400, False),
    "structured: missing type": lambda e: (*_structured(e, type=None), None, "POST", 400, False),
    "structured: body not JSON": lambda e: (
        {"content-type": "application/cloudevents+json"}, '{"specversion": "1.0", ', None, "POST", 400, False),
    "structured: body not an object": lambda e: (
        {"content-type": "application/cloudevents+json"}, "[1]", None, "POST", 400, False),
    "unknown broker": lambda e: (_binary(e), "{}", "/sluice/other", "POST", 404, False),
    "unknown namespace": lambda e: (_binary(e), "{}", "/other/default", "POST", 404, False),
    "GET on the ingress": lambda e: ({}, "", "/sluice/default", "GET", 405, False),
    "oversize (1 MiB + 1 byte)": lambda e: (_binary(e), " " * (1024 * 1024 + 1), None, "POST", 413, False),
}


@pytest.mark.parametrize("case", list(CONFORMANCE))
def test_ingress_answers_as_knative_documents(broker: RunningBroker, case: str) -> None:
    """One table of requests gets Knative's documented ingress answers; only the 202s are counted and delivered."""
    eid = new_id()
    headers, body, path, method, expected, delivered = CONFORMANCE[case](eid)
    before = broker.health()["metrics"]
    url = f"http://127.0.0.1:{broker.port}{path}" if path else broker.url
    response = httpx.request(method, url, headers=headers, content=body, timeout=10)
    assert response.status_code == expected, response.text
    after = broker.health()["metrics"]
    if expected == 202:
        assert delivered and after["accepted"] == before["accepted"] + 1
        wait_for(lambda: broker.received(eid, "recorder"), what="the delivery")
        return
    assert response.text.strip()
    assert after["accepted"] == before["accepted"]
    if expected in (400, 413):
        assert after["rejected"] == before["rejected"] + 1
    sentinel = new_id()
    assert broker.post(_binary(sentinel), "{}").status_code == 202
    wait_for(lambda: broker.received(sentinel), what="the sentinel event")
    assert broker.received(eid) == [] and not delivered


def test_an_event_no_trigger_matches_is_accepted_and_recorded_as_unmatched(broker: RunningBroker) -> None:
    """A valid event that no Trigger matches gets 202, goes nowhere, and is recorded as unmatched."""
    eid = new_id()
    before = broker.health()["metrics"]["unmatched"]
    assert broker.post(_binary(eid, **{"ce-source": "test/nobody-listens"}), "{}").status_code == 202
    assert broker.health()["metrics"]["unmatched"] == before + 1
    unmatched = read_jsonl(broker.state_dir / "broker" / "unmatched.jsonl")
    assert [r["reason"] for r in unmatched if r["event"]["id"] == eid] == ["matched no trigger"]
    assert broker.received(eid) == [] and broker.dead_letters(eid) == []


def test_not_a_cloudevent_is_400(broker: RunningBroker) -> None:
    """A plain JSON POST without CloudEvent attributes is refused with 400 naming the problem."""
    response = broker.post({"content-type": "application/json"}, '{"hello": "world"}')
    assert response.status_code == 400
    assert "CloudEvent" in response.text or "required" in response.text


def test_other_paths_are_404_naming_the_ingress(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A POST to another namespace/broker is 404 and the answer names the broker's URL."""
    response = broker.post(ping_headers(new_id(), "test/record"), "{}", path=f"http://127.0.0.1:{broker.port}/other/default")
    assert response.status_code == 404
    assert broker.url in response.text


def test_filter_on_an_extension_attribute(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """``filter.attributes`` matches extensions: only the Trigger for ``myext: hello`` delivers it."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/ext-only", myext="hello"), "{}").status_code == 202
    wait_for(lambda: broker.received(eid, "recorder"), what="the delivery through the ext trigger")
    other = new_id()
    assert broker.post(ping_headers(other, "test/any-a", subject="skip"), "{}").status_code == 202
    kept = new_id()
    assert broker.post(ping_headers(kept, "x/any-b"), "{}").status_code == 202
    wait_for(lambda: broker.received(kept, "recorder"), what="the delivery through the combined trigger")
    assert len(broker.received(eid)) == 1
    assert broker.received(other) == []


def test_reply_is_published_back_and_routed(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A subscriber's CloudEvent reply goes back into the broker and reaches the Trigger that matches it."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/ask"), '{"message": "ask"}').status_code == 202
    got = wait_for(lambda: broker.received(f"reply-{eid}", "recorder"), what="the routed reply")
    assert got[0]["attrs"]["triggeredid"] == eid
    assert got[0]["attrs"]["source"] == "test/replier"
    assert broker.dead_letters(eid) == []


def test_invalid_reply_is_dead_lettered_not_retried(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A reply that is not a valid event is dead-lettered with the reason, after one attempt."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/ask"), '{"message": "invalid"}').status_code == 202
    dead = wait_for(lambda: broker.dead_letters(eid), what="the dead letter")
    assert dead[0]["trigger"] == "ask" and dead[0]["attempts"] == 1
    assert "specversion" in dead[0]["reason"]
    assert dead[0]["reply"]["headers"]["ce-specversion"] == "9.9"
    assert len(broker.received(eid, "replier")) == 1


def test_retried_until_it_succeeds(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A 503 is retried per the Trigger's delivery; success on a retry leaves no dead letter."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/flaky"), '{"message": "fail:2"}').status_code == 202
    wait_for(lambda: len(broker.received(eid, "flaky")) == 3, what="three attempts")
    assert wait_for(lambda: broker.health()["metrics"]["in_flight"] == 0, what="quiet")
    assert broker.dead_letters(eid) == []


def test_exhausted_retries_are_dead_lettered_and_shown(
    broker: RunningBroker, ping_headers: HeadersFor, capsys: pytest.CaptureFixture[str]
) -> None:
    """After retry+1 failed attempts the event is dead-lettered, and ``sluice get dead-letters`` shows it."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/flaky"), '{"message": "fail:9"}').status_code == 202
    dead = wait_for(lambda: broker.dead_letters(eid), what="the dead letter")[0]
    assert dead["attempts"] == 3 and dead["status"] == 503 and dead["trigger"] == "flaky"
    assert dead["event"]["data"] == {"message": "fail:9"}
    assert len(broker.received(eid, "flaky")) == 3
    capsys.readouterr()
    assert sluice(["get", "dead-letters", "--state-dir", str(broker.state_dir), "--output", "json"]) == 0
    shown = [r for r in json.loads(capsys.readouterr().out) if r["event"]["id"] == eid]
    assert shown and shown[0]["reason"].startswith("503")
    assert sluice(["get", "dead-letters", "--state-dir", str(broker.state_dir), "--trigger", "flaky"]) == 0
    assert eid in capsys.readouterr().out


@pytest.mark.parametrize("code", [301, 302, 400, 403, 410, 422])
def test_3xx_and_other_4xx_are_final(broker: RunningBroker, ping_headers: HeadersFor, code: int) -> None:
    """3xx and 4xx other than 404/408/409/429 are dead-lettered at once, without retry."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/status"), json.dumps({"message": f"status:{code}"})).status_code == 202
    dead = wait_for(lambda: broker.dead_letters(eid), what="the dead letter")[0]
    assert dead["status"] == code and dead["attempts"] == 1
    assert "not retried" in dead["reason"]
    assert len(broker.received(eid, "status")) == 1


@pytest.mark.parametrize("code", [404, 408, 409, 429, 500, 503])
def test_retryable_statuses_are_retried(broker: RunningBroker, ping_headers: HeadersFor, code: int) -> None:
    """5xx, 404, 408, 409 and 429 are retried ``retry`` times before the event is dead-lettered."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/status"), json.dumps({"message": f"status:{code}"})).status_code == 202
    dead = wait_for(lambda: broker.dead_letters(eid), what="the dead letter")[0]
    assert dead["status"] == code and dead["attempts"] == 4
    assert len(broker.received(eid, "status")) == 4


def test_trigger_delivery_replaces_the_brokers(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A Trigger with its own delivery (no retry) is not retried; one without inherits the Broker's retry 1."""
    own, inherit = new_id(), new_id()
    body = '{"message": "status:503"}'
    assert broker.post(ping_headers(own, "test/status-own"), body).status_code == 202
    assert broker.post(ping_headers(inherit, "test/status-inherit"), body).status_code == 202
    assert wait_for(lambda: broker.dead_letters(own), what="dead letter (own)")[0]["attempts"] == 1
    assert wait_for(lambda: broker.dead_letters(inherit), what="dead letter (inherit)")[0]["attempts"] == 2


@pytest.mark.parametrize(
    ("source", "reason"),
    [("test/hang", "no answer within 0.3 s"), ("test/refused", "Connect")],
    ids=["timeout", "refused-connection"],
)
def test_no_answer_is_retried_then_dead_lettered(
    broker: RunningBroker, ping_headers: HeadersFor, source: str, reason: str
) -> None:
    """A subscriber that does not answer within the delivery timeout, or that nobody listens for, is retried,
    then dead-lettered with status 0 and the reason."""
    eid = new_id()
    assert broker.post(ping_headers(eid, source), "{}").status_code == 202
    dead = wait_for(lambda: broker.dead_letters(eid), what="the dead letter")[0]
    assert dead["attempts"] == 2 and dead["status"] == 0
    assert reason in dead["reason"]


def test_2xx_without_a_cloudevent_is_a_failed_delivery(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A 200 whose body is not a CloudEvent (functions-framework's "OK") is dead-lettered, not retried."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/notce"), "{}").status_code == 202
    dead = wait_for(lambda: broker.dead_letters(eid), what="the dead letter")[0]
    assert dead["status"] == 200 and dead["attempts"] == 1
    assert "not a CloudEvent" in dead["reason"]


def test_dead_letter_sink_receives_the_event(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """A Trigger's deadLetterSink gets the failed event with Knative's error extensions."""
    eid = new_id()
    assert broker.post(ping_headers(eid, "test/dls"), '{"message": "status:500"}').status_code == 202
    got = wait_for(lambda: broker.received(eid, "recorder"), what="the dead-letter sink delivery")[0]
    assert got["attrs"]["knativeerrorcode"] == "500"
    assert base64.b64decode(got["attrs"]["knativeerrordata"]).decode().startswith("500")
    assert wait_for(lambda: broker.dead_letters(eid))[0]["dead_letter_sink"]["status"] == 202


def test_pingsource_is_emulated(broker: RunningBroker) -> None:
    """The PingSource of knative/ emits dev.knative.sources.ping events into the broker every tick."""
    source = "/apis/v1/namespaces/sluice/pingsources/tick"

    def pings() -> list[dict[str, Any]]:
        return [r for r in read_jsonl(broker.record) if r["attrs"].get("source") == source]

    wait_for(lambda: len(pings()) >= 2, what="two pings")
    assert pings()[0]["attrs"]["type"] == "dev.knative.sources.ping"
    assert broker.health()["metrics"]["pings"] >= 2


def test_health_reports_functions_triggers_and_latency(broker: RunningBroker, ping_headers: HeadersFor) -> None:
    """``GET /health`` lists the functions and triggers and counts deliveries with their hop latency."""
    eid = new_id()
    broker.post(ping_headers(eid, "test/record"), "{}")
    wait_for(lambda: broker.received(eid), what="the delivery")
    health = wait_for(lambda: (h := broker.health())["metrics"]["delivered"].get("rec") and h, what="counters")
    assert set(health["functions"]) >= {"fn-recorder", "fn-flaky", "fn-replier"}
    assert "rec" in {t["name"] for t in health["triggers"]}
    assert health["metrics"]["hop_latency"]["rec"]["count"] >= 1


def test_bridge_is_proxied_under_its_prefix(broker: RunningBroker) -> None:
    """``/bridge/…`` reaches the bridge function with the path, the query and X-Forwarded-Prefix."""
    response = httpx.get(f"http://127.0.0.1:{broker.port}/bridge/project/sockshop", params={"stage": "dev"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "path": "/project/sockshop", "query": {"stage": "dev"},
                               "prefix": "/bridge"}
