"""Hostile input at every HTTP entry point: every answer is a clear 4xx (never a 5xx or a
traceback), and the stored state is byte-for-byte what it was.

Entry points, all in-process (fast): each function's HTTP adapter (functions-framework's Flask
app for ``functions/main.py``), every intake source, the web view's forms, API and pages, the
broker's ingress (Starlette) and its /bridge proxy, and the local router's control port.
The broker's ingress may accept any valid CloudEvent (Knative answers 202 whatever the data),
so there the rule is: never a 5xx, and 400 for what is not a CloudEvent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.core.events import EventType
from sluice.core.intake import Trigger
from sluice.services.approvals import ensure_key
from sluice.services.intake import add_trigger, set_secret
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SOURCE = str(ROOT / "functions" / "main.py")
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
FUNCTIONS = ("deploy", "test", "evaluate", "sli", "gatekeeper", "eventlog")
INTAKE = ("dockerhub", "harbor", "github", "ecr", "cloudevents")
SECRET = "an-intake-secret-of-the-tests-0123"
IMAGE = "docker.io/keptnexamples/carts:0.10.1"
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["../../etc/passwd", "..%2F..%2Fetc", "a" * 300, "<script>alert(1)</script>", "\x00", "Sock Shop",
                     "\u202eevil", "%00", "con", "-x-", "x" * 64, "UPPER", "a/b", "a.b"]),
    st.text(max_size=80),
)
WRONG_TYPES = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), st.none())
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def deep(depth: int = 10_000) -> bytes:
    return ("[" * depth + "]" * depth).encode()


# --- the system under test -------------------------------------------------------------------------


class Errors(logging.Handler):
    """Keeps every log record that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.tracebacks.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from functions_framework import create_app

    from sluice.functions import runtime

    state = tmp_path_factory.mktemp("hostile") / "state"
    records = Records(LocalStore(state))
    shipyard = (ROOT / "examples" / "sockshop" / "shipyard.yaml").read_text()
    records.create_project("sockshop", shipyard, yaml.safe_load(shipyard))
    records.onboard("sockshop", "carts")
    secrets = LocalSecrets(state)
    ensure_key(secrets, "sockshop")
    for source in INTAKE:
        set_secret(secrets, source, SECRET)
    add_trigger(records.store, Trigger.create("sockshop", "carts", "keptnexamples/carts"))
    errors = Errors()
    logging.getLogger().addHandler(errors)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_STATE_DIR", str(state))
        mp.setenv("SLUICE_STATE", "local")
        mp.setenv("SLUICE_BACKEND", "noop")  # should anything get through, it starts no process
        mp.setenv("SLUICE_BROKER_URL", "http://127.0.0.1:9/unused")  # nothing may be published
        mp.setenv("SLUICE_BRIDGE_IDENTITY_HEADER", "X-Forwarded-User")
        mp.delenv("K_SINK", raising=False)
        runtime._RUNTIMES.clear()
        clients = {t: create_app(t, SOURCE, "http").test_client() for t in (*FUNCTIONS, "intake", "bridge")}
        yield {"state": state, "clients": clients, "errors": errors}
        runtime._RUNTIMES.clear()
    logging.getLogger().removeHandler(errors)


def tree(state: Path) -> dict[str, str]:
    """Every file under the state dir with a digest of its bytes and its mode."""
    out = {}
    for path in sorted(state.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(state))] = hashlib.sha256(path.read_bytes()).hexdigest() + oct(path.stat().st_mode)
    return out


def check_4xx(system: dict[str, Any], status: int, body: str, what: str) -> None:
    assert 400 <= status < 500, f"{what}: answered {status}: {body[:300]}"
    assert "Traceback" not in body and body.strip(), f"{what}: no clear message: {body[:300]}"
    assert system["errors"].tracebacks == [], system["errors"].tracebacks


# --- hostile CloudEvents -------------------------------------------------------------------------


def valid_event() -> dict[str, Any]:
    return {"specversion": "1.0", "type": EventType.CONFIGURATION_CHANGE.value, "source": "test", "id": "e-1",
            "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
            "data": {"project": "sockshop", "service": "carts", "stage": "dev", "valuesCanary": {"image": IMAGE},
                     "canary": {"action": "set", "value": 100}, "labels": {}}}


@st.composite
def broken_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid configuration.change with one thing made wrong (each wrong on its own is a 400)."""
    doc = valid_event()
    data = doc["data"]
    how = draw(st.sampled_from(["drop", "attr-type", "type", "specversion", "time", "name", "field-type",
                                "object-as-string", "action", "value", "image", "labels", "extension"]))
    if how == "drop":
        del doc[draw(st.sampled_from(["id", "source", "type", "specversion"]))]
    elif how == "attr-type":
        doc[draw(st.sampled_from(["id", "source", "type", "time", "shkeptncontext", "triggeredid"]))] = draw(
            WRONG_TYPES.filter(lambda v: v is not None))
    elif how == "type":
        doc["type"] = draw(st.text(min_size=1, max_size=60).filter(lambda t: t not in {e.value for e in EventType}))
    elif how == "specversion":
        doc["specversion"] = draw(st.sampled_from(["0.3", "2.0", "1", "1.0.0"]))
    elif how == "time":
        doc["time"] = draw(st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "1700000000", "2026-01-01 00:00"]))
    elif how == "name":
        data[draw(st.sampled_from(["project", "service", "stage"]))] = draw(
            HOSTILE_TEXT.filter(lambda t: not (_DNS.fullmatch(t) and len(t) <= 63)).filter(bool))
    elif how == "field-type":
        data[draw(st.sampled_from(["project", "service", "stage"]))] = draw(
            WRONG_TYPES.filter(lambda v: (v not in (None, "") and not isinstance(v, dict | list)) or bool(v)))
    elif how == "object-as-string":
        data[draw(st.sampled_from(["canary", "valuesCanary"]))] = draw(st.sampled_from(["set", "", "x", "{}"])) or "x"
    elif how == "action":
        data["canary"]["action"] = draw(HOSTILE_TEXT.filter(lambda t: t not in ("set", "promote", "discard")))
    elif how == "value":
        data["canary"]["value"] = draw(st.one_of(st.integers().filter(lambda i: not 0 <= i <= 100),
                                                 st.text(max_size=5), st.floats(allow_nan=False), st.booleans()))
    elif how == "image":
        data["valuesCanary"]["image"] = draw(st.one_of(WRONG_TYPES.filter(lambda v: v not in (None, "")),
                                                       st.sampled_from(["no spaces allowed", "UPPER/Case:1", "a" * 300])))
    elif how == "labels":
        data["labels"] = draw(st.one_of(st.sampled_from(["x", 1, [1]]), st.just({"k": {"nested": 1}}), st.just({"k": 5})))
    else:
        doc["sluiceapproval"] = draw(WRONG_TYPES.filter(lambda v: v is not None))
    return doc


def encode(doc: dict[str, Any], binary: bool) -> tuple[dict[str, str], bytes]:
    """Structured (application/cloudevents+json) or binary (ce-* headers) HTTP form of ``doc``."""
    if not binary:
        return {"Content-Type": "application/cloudevents+json"}, json.dumps(doc).encode()
    headers = {"Content-Type": "application/json"}
    for key, value in doc.items():
        if key in ("data", "datacontenttype"):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        headers[f"ce-{key}"] = re.sub(r"[^\x20-\x7e]", "?", text)[:2000] or "?"
    return headers, json.dumps(doc.get("data")).encode()


def _binary_still_broken(doc: dict[str, Any]) -> bool:
    """In binary mode every attribute is a string: a wrongly typed attribute may become a valid one."""
    return all(isinstance(v, str) for k, v in doc.items() if k != "data")


RAW_BODIES = st.one_of(
    st.just(deep()), st.just(b'{"data":' + deep(5000) + b"}"), st.just(b"\xff\xfe\xfa not utf-8"),
    st.just(b'{"specversion": "1.0", "id": "\xff", "type": "x", "source": "s"}'), st.just(b""), st.just(b"null"),
    st.just(b"[]"), st.just(b"{}"), st.just(b"x" * (2 * 1024 * 1024)), st.binary(max_size=200),
)
CONTENT_TYPES = st.sampled_from(["application/cloudevents+json", "application/json", "text/plain", "",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])

#: Examples per property (``SLUICE_HOSTILE_EXAMPLES=1000`` for a longer run).
FAST = settings(max_examples=int(os.environ.get("SLUICE_HOSTILE_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(doc=broken_events(), binary=st.booleans(), target=st.sampled_from(FUNCTIONS))
def test_every_function_answers_a_broken_event_with_400(system, doc, binary, target) -> None:  # type: ignore[no-untyped-def]
    """A configuration.change with one thing wrong, to any function, in either mode: 400, nothing stored."""
    if binary and not _binary_still_broken(doc):
        binary = False
    before = tree(system["state"])
    headers, body = encode(doc, binary)
    response = system["clients"][target].post("/", data=body, headers=headers)
    check_4xx(system, response.status_code, response.get_data(as_text=True), f"{target} {'binary' if binary else 'structured'}")
    assert response.status_code == 400
    assert tree(system["state"]) == before


@FAST
@given(body=RAW_BODIES, content_type=CONTENT_TYPES, target=st.sampled_from(FUNCTIONS))
def test_every_function_answers_a_body_that_is_no_cloudevent_with_400(system, body, content_type, target) -> None:  # type: ignore[no-untyped-def]
    """Deep, huge, empty, not UTF-8, not JSON, wrong content type: 400 with the reason, nothing stored."""
    before = tree(system["state"])
    response = system["clients"][target].post("/", data=body, headers={"Content-Type": content_type} if content_type else {})
    check_4xx(system, response.status_code, response.get_data(as_text=True), target)
    assert tree(system["state"]) == before


def _kind(value: object) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else type(value).__name__


_OTHER_KIND: dict[str, Any] = {"bool": True, "number": 7, "str": "x", "list": [1], "dict": {"k": 1}}
#: Data paths whose contents are not typed (opaque objects): a change inside them is no error.
_OPAQUE = ("evaluationdetails",)


@st.composite
def mistyped_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid sample event of a type some function consumes, with one value in its data (at any
    depth that is typed) replaced by a value of another JSON kind; and that function's name."""
    from tests.unit.core.test_events import SAMPLES

    from sluice.functions.http import CONSUMES

    function = draw(st.sampled_from(sorted(CONSUMES)))
    event_type = draw(st.sampled_from(sorted(CONSUMES[function], key=lambda t: t.value)))
    data = json.loads(json.dumps(SAMPLES[event_type]))
    paths: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if key in _OPAQUE:
                paths.append([*path, key])
                continue
            paths.append([*path, key])
            walk(value, [*path, key])

    walk(data, [])
    if not paths:
        data = []  # a Ping's data as a list: still not an object
    else:
        path = draw(st.sampled_from(paths))
        node = data
        for part in path[:-1]:
            node = node[part]
        original = node[path[-1]]
        node[path[-1]] = draw(st.sampled_from([v for k, v in _OTHER_KIND.items() if k != _kind(original)]))
    doc = {"specversion": "1.0", "type": event_type.value, "source": "test", "id": "m-1",
           "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json", "data": data}
    return function, doc


@FAST
@given(case=mistyped_events(), binary=st.booleans())
def test_every_payload_field_is_type_checked_before_anything_starts(system, case, binary) -> None:  # type: ignore[no-untyped-def]
    """Any typed value of any consumed event, of the wrong JSON kind, to its function: 400, nothing stored."""
    function, doc = case
    before = tree(system["state"])
    headers, body = encode(doc, binary)
    response = system["clients"][function].post("/", data=body, headers=headers)
    check_4xx(system, response.status_code, response.get_data(as_text=True), f"{function} {doc['type']}")
    assert response.status_code == 400
    assert tree(system["state"]) == before


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d["data"].update(canary="set"), "canary: expected an object"),
        (lambda d: d.update(id=5), "id: expected a string"),
        (lambda d: d["data"].update(labels={"a": {"b": 1}}), "labels"),
        (lambda d: d["data"].update(project="../../etc"), "project"),
    ],
    ids=["canary-string", "numeric-id", "nested-label", "traversal"],
)
def test_wrongly_typed_payloads_are_refused_before_anything_starts(system, change, says) -> None:  # type: ignore[no-untyped-def]
    """The two that started real deliveries before (``"canary": "set"``, a numeric ``id``) and kin."""
    doc = valid_event()
    change(doc)
    before = tree(system["state"])
    response = system["clients"]["deploy"].post("/", data=json.dumps(doc), headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 400 and says in response.get_data(as_text=True)
    assert tree(system["state"]) == before


# --- intake ----------------------------------------------------------------------------------------


#: The fields each source's parser reads (a wrong type in one of them must not start anything).
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "dockerhub": ("repository", "repository.repo_name", "push_data", "push_data.tag", "push_data.pushed_at"),
    "harbor": ("type", "occur_at", "event_data", "event_data.repository", "event_data.repository.repo_full_name",
               "event_data.resources", "event_data.resources.0", "event_data.resources.0.tag",
               "event_data.resources.0.digest", "event_data.resources.0.resource_url"),
    "github": ("action", "package", "package.name", "package.package_version",
               "package.package_version.container_metadata", "package.package_version.container_metadata.tag.name",
               "package.package_version.container_metadata.tag.digest", "package.package_version.package_url"),
    "ecr": ("detail-type", "source", "id", "account", "region", "detail", "detail.action-type", "detail.result",
            "detail.repository-name", "detail.image-tag", "detail.image-digest"),
    "cloudevents": ("type", "id", "data", "data.repository", "data.repository.repo_full_name", "data.resources",
                    "data.resources.0", "data.resources.0.tag", "data.resources.0.digest", "data.resources.0.resource_url"),
}
FIXTURE = {"dockerhub": "dockerhub_push.json", "harbor": "harbor_push.json", "github": "github_package_published.json",
           "ecr": "ecr_image_push.json", "cloudevents": "harbor_push_cloudevent.json"}
NOT_TEXT = st.one_of(st.booleans(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _mutated_webhook(source: str, field: str, value: Any) -> bytes:
    """The source's sample notification with ``field`` set to a value of the wrong type."""
    doc = json.loads((FIXTURES / FIXTURE[source]).read_text())
    node: Any = doc
    parts = [int(p) if p.isdigit() else p for p in field.split(".")]
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return json.dumps(doc).encode()


@st.composite
def webhooks(draw: st.DrawFn) -> tuple[str, bytes]:
    source = draw(st.sampled_from(INTAKE))
    if draw(st.booleans()):
        return source, draw(RAW_BODIES)
    return source, _mutated_webhook(source, draw(st.sampled_from(READ_FIELDS[source])), draw(NOT_TEXT))


@FAST
@given(hook=webhooks())
def test_every_intake_source_refuses_hostile_bodies(system, hook) -> None:  # type: ignore[no-untyped-def]
    """Authenticated but malformed: a 4xx naming the problem, or 202 "nothing to start" for a
    well-formed notification that is no push; never a 5xx, nothing started, nothing stored."""
    from sluice.services.intake import github_signature

    source, body = hook
    headers = {"X-Sluice-Token": SECRET, "Content-Type": "application/json"}
    if source == "github":
        headers = {"X-Hub-Signature-256": github_signature(SECRET, body), "X-GitHub-Event": "package",
                   "X-GitHub-Delivery": "d-1", "Content-Type": "application/json"}
    before = tree(system["state"])
    response = system["clients"]["intake"].post(f"/{source}", data=body, headers=headers)
    text = response.get_data(as_text=True)
    if response.status_code in (200, 202):
        assert "started" not in text, text
    else:
        check_4xx(system, response.status_code, text, f"intake /{source}")
    assert system["errors"].tracebacks == []
    assert tree(system["state"]) == before


# --- the web view --------------------------------------------------------------------------------


PATHS = st.one_of(
    st.sampled_from(["/delivery/%00", "/project/..%2F..%2Fetc", "/project/" + "a" * 5000, "/api/deliveries/%00",
                     "/evaluation/a/b/c/%ff", "/history/../../x/y", "/assets/..%2F..%2Fapp.py", "/project/%E2%80%AE",
                     "/api/projects/sockshop/stages/x/services/y/evaluations", "/project/sockshop/service/nosuch"]),
    st.lists(HOSTILE_TEXT.map(lambda t: t.replace("/", "%2F").replace("?", "%3F").replace("#", "%23")), max_size=6)
    # empty parts dropped: the test client reads a leading "//" as a host name, not as a path
    .map(lambda parts: "/" + "/".join(p for p in parts if p)),
)


@FAST
@given(path=PATHS, api=st.booleans())
def test_the_web_view_answers_any_path_without_a_5xx(system, path, api) -> None:  # type: ignore[no-untyped-def]
    """Traversal, NUL, over-long, unknown: 200 for a real page, else a 4xx naming it; nothing stored."""
    before = tree(system["state"])
    response = system["clients"]["bridge"].get(("/api" if api else "") + path)
    text = response.get_data(as_text=True)
    if response.status_code != 200:
        check_4xx(system, response.status_code, text, f"GET {path}")
    assert tree(system["state"]) == before


FORM_KEYS = st.sampled_from(["project", "stage", "service", "context", "decision", "csrf", "extra"])


@FAST
@given(form=st.dictionaries(FORM_KEYS, HOSTILE_TEXT, max_size=7), signed_in=st.booleans(), api=st.booleans(),
       same_site=st.booleans())
def test_the_web_view_refuses_hostile_approvals(system, form, signed_in, api, same_site) -> None:  # type: ignore[no-untyped-def]
    """Any form, with or without a user, CSRF token or same-site Origin: a 4xx; nothing published
    (the broker is unreachable, so an attempt would show as 503), nothing stored."""
    headers = {"Host": "localhost", "Origin": "http://localhost" if same_site else "http://evil.example",
               "Cookie": "sluice_csrf=" + "0" * 32}
    if signed_in:
        headers["X-Forwarded-User"] = "alice"
    form = {**form, "csrf": "0" * 32} if same_site else form
    before = tree(system["state"])
    response = system["clients"]["bridge"].post("/api/approve" if api else "/approve", data=form, headers=headers)
    check_4xx(system, response.status_code, response.get_data(as_text=True), "POST approve")
    assert tree(system["state"]) == before


def test_the_web_view_refuses_a_json_or_huge_approval(system) -> None:  # type: ignore[no-untyped-def]
    """A JSON body or a 2 MiB form is no approval: 4xx, nothing stored."""
    before = tree(system["state"])
    client = system["clients"]["bridge"]
    for data, content_type in ((deep(), "application/json"), (b"project=" + b"a" * 2 * 1024 * 1024, "application/x-www-form-urlencoded"),
                               (b"\xff\xfe=\xff", "application/x-www-form-urlencoded")):
        response = client.post("/approve", data=data, headers={"Content-Type": content_type, "X-Forwarded-User": "alice"})
        check_4xx(system, response.status_code, response.get_data(as_text=True), content_type)
    assert tree(system["state"]) == before


# --- the broker ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import httpx
    from starlette.testclient import TestClient

    from sluice.embedded.broker.app import Broker, create_app
    from sluice.embedded.broker.manifests import load_topology

    topology = load_topology(ROOT / "knative", ROOT / "triggers")
    urls = {name: "http://127.0.0.1:9" for name in topology.services}
    # nothing behind the broker: every delivery and proxied request is answered here
    transport = httpx.MockTransport(lambda request: httpx.Response(202))
    dead = tmp_path_factory.mktemp("broker") / "dl.jsonl"
    instance = Broker(topology, urls, dead, "http://testserver" + topology.broker.path, transport=transport)
    with TestClient(create_app(instance), raise_server_exceptions=False) as client:
        yield client, topology.broker.path


@FAST
@given(doc=broken_events(), binary=st.booleans())
def test_the_broker_ingress_never_fails_on_a_broken_event(broker, doc, binary) -> None:  # type: ignore[no-untyped-def]
    """A CloudEvent with wrong data: 202 (Knative accepts any valid CloudEvent) or 400, never 5xx."""
    client, path = broker
    headers, body = encode(doc, binary)
    response = client.post(path, content=body, headers=headers)
    assert response.status_code in (202, 400), response.text[:300]
    assert "Traceback" not in response.text


@FAST
@given(body=RAW_BODIES, content_type=CONTENT_TYPES)
def test_the_broker_ingress_answers_400_to_what_is_no_cloudevent(broker, body, content_type) -> None:  # type: ignore[no-untyped-def]
    """Deep (the RecursionError of before), not UTF-8, not JSON: 400 with the reason; past the
    broker's documented size limit (1 MiB): 413."""
    client, path = broker
    response = client.post(path, content=body, headers={"Content-Type": content_type} if content_type else {})
    expected = 413 if len(body) > 1024 * 1024 else 400
    assert response.status_code == expected, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text and response.text.strip()


def test_the_broker_proxy_refuses_a_nul_in_the_path(broker) -> None:  # type: ignore[no-untyped-def]
    """``GET /bridge/delivery/%00`` raised httpx.InvalidURL inside the proxy (a 500); now a 400."""
    client, _ = broker
    response = client.get("/bridge/delivery/%00")
    assert response.status_code == 400 and "not a valid path" in response.text


# --- the local router's control port ---------------------------------------------------------------


def test_the_router_control_port_refuses_deep_json(tmp_path: Path) -> None:
    """10,000-deep JSON to PUT /stages/… was a RecursionError (500); now a 400."""
    from starlette.testclient import TestClient

    from sluice.embedded.router import Router

    router = Router(tmp_path)
    with TestClient(router._control_app(), raise_server_exceptions=False) as client:
        for method, path in (("PUT", "/stages/sockshop/dev/carts"), ("POST", "/stages/sockshop/dev/carts/drain")):
            response = client.request(method, path, content=deep())
            assert response.status_code == 400, (path, response.status_code, response.text[:200])


def test_the_state_dir_and_intake_secrets_are_private(system) -> None:  # type: ignore[no-untyped-def]
    """Secrets are 0600 files in a 0700 folder."""
    folder = LocalSecrets(system["state"]).directory
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())
    assert os.listdir(folder)
