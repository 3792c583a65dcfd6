"""Calibrate the fake (tests.support.fake_kube) against the real API server: the same request sequences,
the same status codes, reasons and answer shapes. The fast unit tests keep using the fake; this
keeps it honest.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.support.fake_kube import FakeKube
from tests.support.kube.cluster import Cluster, require_knative

MERGE, STRATEGIC, JSON_PATCH = "application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json"


@dataclass
class Step:
    """One request; ``{ns}`` in the path is the scenario's namespace, ``{rv}`` the last resourceVersion seen."""

    what: str
    method: str
    path: str
    body: Any = None
    content_type: str = "application/json"


def cm(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None, rv: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"a": "1"}}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


def ksvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "example.test/a:1"}]}}},
    }


CMS = "/api/v1/namespaces/{ns}/configmaps"
KSVCS = "/apis/serving.knative.dev/v1/namespaces/{ns}/services"
SCENARIOS: dict[str, list[Step]] = {
    "configmap compare-and-swap": [
        Step("create", "POST", CMS, cm("a")),
        Step("create again", "POST", CMS, cm("a")),
        Step("replace at the version read", "PUT", CMS + "/a", "CM_AT_RV"),
        Step("replace at a stale version", "PUT", CMS + "/a", cm("a", rv="1")),
        Step("replace without a version (built-in kind)", "PUT", CMS + "/a", cm("a", data={"b": "2"})),
        Step("merge patch at a stale version", "PATCH", CMS + "/a", {"metadata": {"resourceVersion": "1"}}, MERGE),
        Step("JSON patch setting the version read", "PATCH", CMS + "/a",
             [{"op": "add", "path": "/metadata/resourceVersion", "value": "{rv}"}, {"op": "add", "path": "/data", "value": {"c": "3"}}],
             JSON_PATCH),
        Step("JSON patch setting a stale version", "PATCH", CMS + "/a",
             [{"op": "add", "path": "/metadata/resourceVersion", "value": "1"}], JSON_PATCH),
        Step("delete with a stale precondition", "DELETE", CMS + "/a", {"preconditions": {"resourceVersion": "1"}}),
        Step("delete", "DELETE", CMS + "/a"),
        Step("delete again", "DELETE", CMS + "/a"),
        Step("get the deleted", "GET", CMS + "/a"),
        Step("patch the deleted", "PATCH", CMS + "/a", {"data": {"x": "1"}}, MERGE),
    ],
    "what the server validates": [
        Step("a ConfigMap whose values are exactly 1 MiB (keys are not counted)", "POST", CMS, cm("full", data={"k": "x" * (1024 * 1024)})),
        Step("a ConfigMap whose values pass 1 MiB", "POST", CMS, cm("big", data={"k": "x" * (1024 * 1024 + 1)})),
        Step("a label value with a space", "POST", CMS, cm("bad", labels={"project": "has space"})),
        Step("a label value of 64 characters", "POST", CMS, cm("bad", labels={"project": "x" * 64})),
        Step("a label key with two slashes", "POST", CMS, cm("bad", labels={"a/b/c": "x"})),
        Step("a ConfigMap name with upper case", "POST", CMS, cm("Bad")),
        Step("a Service name starting with a digit (refused before 1.34)", "POST", "/api/v1/namespaces/{ns}/services", service("1carts")),
        Step("a Service name with a dot", "POST", "/api/v1/namespaces/{ns}/services", service("a.b")),
        Step("a Service name of 64 characters", "POST", "/api/v1/namespaces/{ns}/services", service("s" * 64)),
        Step("a Service name of 63 characters", "POST", "/api/v1/namespaces/{ns}/services", service("s" * 63)),
    ],
    "a namespace that does not exist": [
        Step("create in it", "POST", "/api/v1/namespaces/no-such-ns/configmaps", cm("a")),
        Step("get from it", "GET", "/api/v1/namespaces/no-such-ns/configmaps/a"),
        Step("list it", "GET", "/api/v1/namespaces/no-such-ns/configmaps"),
        Step("delete from it", "DELETE", "/api/v1/namespaces/no-such-ns/configmaps/a"),
    ],
    "paging": [
        Step("create 1", "POST", CMS, cm("p1")),
        Step("create 2", "POST", CMS, cm("p2")),
        Step("create 3", "POST", CMS, cm("p3")),
        Step("first page of 2", "GET", CMS + "?limit=2"),
        Step("next page", "GET", CMS + "?limit=2&continue={continue}"),
    ],
    "custom resources": [
        Step("create a Knative Service", "POST", KSVCS, ksvc("carts")),
        Step("strategic merge patch on it", "PATCH", KSVCS + "/carts", {"metadata": {"labels": {"a": "b"}}}, STRATEGIC),
        Step("merge patch on it", "PATCH", KSVCS + "/carts", {"metadata": {"labels": {"a": "b"}}}, MERGE),
        Step("replace it without a version", "PUT", KSVCS + "/carts", ksvc("carts")),
        Step("patch its status", "PATCH", KSVCS + "/carts/status", {"status": {"observedGeneration": 1}}, MERGE),
        Step("delete it", "DELETE", KSVCS + "/carts"),
    ],
}


class Runner:
    """Sends the steps to one server and records (code, reason, shape) per step."""

    def __init__(self, base: str, http: httpx.Client) -> None:
        self.base = base
        self.http = http

    def run(self, steps: list[Step], ns: str) -> list[tuple[str, int, str, str]]:
        out = []
        rv, token, last = "", "", {}
        for step in steps:
            body = step.body
            if body == "CM_AT_RV":
                body = {**cm("a", data={"b": "1"}), "metadata": {"name": "a", "resourceVersion": rv}}
            text = json.dumps(body).replace("{rv}", rv) if body is not None else None
            path = step.path.replace("{ns}", ns).replace("{continue}", token)
            answer = self.http.request(
                step.method, self.base + path, content=text, headers={"Content-Type": step.content_type} if text else {}
            )
            doc = answer.json() if answer.content else {}
            last = doc
            if isinstance(doc, dict):
                meta = doc.get("metadata") or {}
                rv = meta.get("resourceVersion") or rv
                token = meta.get("continue") or token
            out.append((step.what, answer.status_code, str(doc.get("reason", "")) if doc.get("kind") == "Status" else "", shape(doc)))
        del last
        return out


def shape(doc: Any) -> str:
    """What the client depends on in an answer: its kind, and for lists the item count and whether a continue token came."""
    if not isinstance(doc, dict):
        return type(doc).__name__
    kind = str(doc.get("kind", ""))
    if kind.endswith("List"):
        return f"{kind} of {len(doc.get('items') or [])}{' + continue' if (doc.get('metadata') or {}).get('continue') else ''}"
    if kind == "Status":
        return f"Status {doc.get('code')}"
    return kind


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_fake_answers_as_the_real_server(kube_cluster: Cluster, fake: FakeKube, scenario: str) -> None:
    """Each step of the scenario gets the same status code, Status reason and answer shape from the fake and the real server."""
    if scenario == "custom resources":
        require_knative(kube_cluster)
    ns = kube_cluster.unique_namespace("cal")
    fake.add_namespace(ns)
    headers = {"Authorization": f"Bearer {kube_cluster.admin_token}"}
    tls = ssl.create_default_context(cafile=str(kube_cluster.ca_file))
    with httpx.Client(verify=tls, headers=headers, timeout=30) as real_http, httpx.Client(timeout=30) as fake_http:
        real = Runner(kube_cluster.url, real_http).run(SCENARIOS[scenario], ns)
        faked = Runner(fake.url, fake_http).run(SCENARIOS[scenario], ns)
    differences = [f"{r[0]}: real {r[1:]} / fake {f[1:]}" for r, f in zip(real, faked, strict=True) if r != f]
    assert not differences, "\n".join(differences)
