"""The fake Kubernetes API (tests.support.fake_kube), driven by the official kubernetes client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException
from tests.support.fake_kube import (
    FakeKube,
    KubeError,
    deployment_failing,
    deployment_rollout,
    knative_serving,
)

NS = "sockshop-staging"
KSVC = ("serving.knative.dev", "v1", NS, "services")
VS = ("networking.istio.io", "v1beta1", NS, "virtualservices")


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture
def core(fake: FakeKube) -> client.CoreV1Api:
    return client.CoreV1Api(fake.api_client())


@pytest.fixture
def apps(fake: FakeKube) -> client.AppsV1Api:
    return client.AppsV1Api(fake.api_client())


@pytest.fixture
def custom(fake: FakeKube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(fake.api_client())


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


def deployment(name: str, image: str = "docker.io/keptnexamples/carts:0.10.1", replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def test_configmap_create_get_list_delete(core: client.CoreV1Api) -> None:
    """A ConfigMap can be created, read, listed by label and deleted through the real client."""
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "a", "labels": {"p": "x"}}, "data": {"k": "v"}})
    assert created.metadata.resource_version and created.metadata.uid
    core.create_namespaced_config_map(NS, {"metadata": {"name": "b", "labels": {"p": "y"}}})
    assert core.read_namespaced_config_map("a", NS).data == {"k": "v"}
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector="p=x").items] == ["a"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector="p in (x,y)").items] == ["a", "b"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector="p!=x").items] == ["b"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector="!p").items] == []
    assert [c.metadata.name for c in core.list_namespaced_config_map("elsewhere").items] == []
    core.delete_namespaced_config_map("a", NS)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("a", NS)
    assert err.value.status == 404
    assert status_of(err.value)["reason"] == "NotFound"
    assert status_of(err.value)["kind"] == "Status"


def test_resource_version_increments_and_stale_put_conflicts(core: client.CoreV1Api) -> None:
    """Every write moves resourceVersion; a PUT carrying an old one gets 409 Conflict."""
    first = core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}, "data": {"n": "1"}})
    first.data = {"n": "2"}
    second = core.replace_namespaced_config_map("a", NS, first)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.data = {"n": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("a", NS, first)
    assert err.value.status == 409
    assert "the object has been modified" in status_of(err.value)["message"]
    assert core.read_namespaced_config_map("a", NS).data == {"n": "2"}


def test_create_existing_is_already_exists(core: client.CoreV1Api) -> None:
    """Creating an object that exists gets 409 AlreadyExists."""
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "AlreadyExists"


def test_configmap_over_1_mib_is_invalid(core: client.CoreV1Api, fake: FakeKube) -> None:
    """A ConfigMap whose values pass 1 MiB gets 422 'Too long', like the real API (which does not count the keys)."""
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "big"}, "data": {"k": "x" * (1024 * 1024 + 1)}})
    assert err.value.status == 422
    assert "Too long: must have at most 1048576 bytes" in status_of(err.value)["message"]
    assert fake.get_object("configmaps", NS, "big") is None
    core.create_namespaced_config_map(NS, {"metadata": {"name": "big"}, "data": {"k": "x" * (1024 * 1024)}})


def test_delete_precondition_and_not_found(core: client.CoreV1Api) -> None:
    """DELETE with a stale precondition gets 409 and keeps the object; a missing one gets 404."""
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", NS, {"data": {"x": "1"}})
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=cm.metadata.resource_version))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("a", NS, body=stale)
    assert err.value.status == 409
    assert "Precondition failed" in status_of(err.value)["message"]
    core.delete_namespaced_config_map("a", NS)
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("a", NS)
    assert err.value.status == 404


def test_patch_merges_and_checks_resource_version(core: client.CoreV1Api) -> None:
    """A merge patch adds and removes keys; a stale resourceVersion inside the patch gets 409."""
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}, "data": {"keep": "1", "drop": "2"}})
    patched = core.patch_namespaced_config_map("a", NS, {"data": {"drop": None, "new": "3"}})
    assert patched.data == {"keep": "1", "new": "3"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "a", NS, {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"x": "y"}}
        )
    assert err.value.status == 409


def test_json_patch(fake: FakeKube) -> None:
    """An RFC 6902 JSON patch (add, replace, remove, test) is applied; a failing test op gets 422."""
    fake.seed("configmaps", {"metadata": {"name": "a", "namespace": NS}, "data": {"x": "1", "y": "2"}})
    url = f"{fake.url}/api/v1/namespaces/{NS}/configmaps/a"
    ops = [
        {"op": "test", "path": "/data/x", "value": "1"},
        {"op": "replace", "path": "/data/x", "value": "10"},
        {"op": "remove", "path": "/data/y"},
        {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
    ]
    headers = {"Content-Type": "application/json-patch+json"}
    answer = httpx.patch(url, content=json.dumps(ops), headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"x": "10"}
    assert answer.json()["metadata"]["labels"] == {"a/b": "c"}
    failing = [{"op": "test", "path": "/data/x", "value": "1"}]
    assert httpx.patch(url, content=json.dumps(failing), headers=headers).status_code == 422


def test_server_side_apply_is_refused_clearly(fake: FakeKube) -> None:
    """Server-side apply, which the fake does not implement, gets 415 instead of a wrong answer."""
    fake.seed("configmaps", {"metadata": {"name": "a", "namespace": NS}})
    answer = httpx.patch(
        f"{fake.url}/api/v1/namespaces/{NS}/configmaps/a",
        content="data: {}",
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert answer.status_code == 415
    assert answer.json()["kind"] == "Status"


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api) -> None:
    """limit/continue pages through a list without losing or repeating items."""
    for i in range(5):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{i}"}})
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map(NS, limit=2, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"cm-{i}" for i in range(5)]


def test_deployment_status_is_kept_by_main_writes_and_set_by_status(apps: client.AppsV1Api, fake: FakeKube) -> None:
    """Status sent to the main resource is ignored; the /status subresource and set_status change it; generation follows spec."""
    created = apps.create_namespaced_deployment(NS, deployment("carts-primary"))
    assert created.metadata.generation == 1
    fake.set_status("deployments.apps", NS, "carts-primary", {"readyReplicas": 1, "replicas": 1})
    body = deployment("carts-primary", image="docker.io/keptnexamples/carts:0.10.3")
    body["status"] = {"readyReplicas": 7}
    replaced = apps.replace_namespaced_deployment("carts-primary", NS, body)
    assert replaced.status.ready_replicas == 1
    assert replaced.metadata.generation == 2
    relabelled = apps.patch_namespaced_deployment("carts-primary", NS, {"metadata": {"labels": {"x": "y"}}})
    assert relabelled.metadata.generation == 2
    apps.patch_namespaced_deployment_status("carts-primary", NS, {"status": {"readyReplicas": 0}})
    assert apps.read_namespaced_deployment("carts-primary", NS).status.ready_replicas == 0


def test_deployment_rollout_hook_becomes_ready_after_reads(apps: client.AppsV1Api, fake: FakeKube) -> None:
    """deployment_rollout(3) reports no ready replica on the first two reads and ready from the third."""
    fake.on_read("deployments.apps", deployment_rollout(ready_after_reads=3))
    apps.create_namespaced_deployment(NS, deployment("carts-canary", replicas=2))
    seen = [apps.read_namespaced_deployment("carts-canary", NS).status.ready_replicas or 0 for _ in range(4)]
    assert seen == [0, 0, 2, 2]
    apps.patch_namespaced_deployment(
        "carts-canary", NS, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}}}
    )
    again = apps.read_namespaced_deployment("carts-canary", NS).status
    assert (again.ready_replicas or 0) == 0 and again.observed_generation == 2


def test_deployment_failing_hook_reports_reason(apps: client.AppsV1Api, fake: FakeKube) -> None:
    """deployment_failing reports Progressing=False with its reason for the Deployments it selects."""
    fake.on_read(
        "deployments.apps",
        deployment_failing(reason="ImagePullBackOff", message="image not found", when=lambda d: "canary" in d["metadata"]["name"]),
    )
    fake.on_read("deployments.apps", deployment_rollout())
    apps.create_namespaced_deployment(NS, deployment("carts-canary"))
    apps.create_namespaced_deployment(NS, deployment("carts-primary"))
    conditions = {c.type: c for c in apps.read_namespaced_deployment("carts-canary", NS).status.conditions}
    assert conditions["Progressing"].status == "False"
    assert conditions["Progressing"].reason == "ImagePullBackOff"
    assert conditions["Progressing"].message == "image not found"
    assert apps.read_namespaced_deployment("carts-primary", NS).status.ready_replicas == 1


def test_fail_next_injects_errors(core: client.CoreV1Api, fake: FakeKube) -> None:
    """fail_next answers the next matching requests with the given status, then serves normally."""
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    fake.fail_next(2, 503, method="GET", resource="configmaps")
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.read_namespaced_config_map("a", NS)
        assert err.value.status == 503
    assert core.read_namespaced_config_map("a", NS).metadata.name == "a"
    fake.fail_next(1, 409, reason="Conflict", message="injected conflict")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("a", NS)
    assert status_of(err.value)["message"] == "injected conflict"
    assert [r.code for r in fake.requests[-4:]] == [503, 503, 200, 409]


def test_core_service_gets_a_cluster_ip(core: client.CoreV1Api) -> None:
    """A created Service gets a clusterIP and keeps its selector; selector switches by patch."""
    svc = core.create_namespaced_service(
        NS, {"metadata": {"name": "carts"}, "spec": {"selector": {"app": "carts-primary"}, "ports": [{"port": 80}]}}
    )
    assert svc.spec.cluster_ip
    core.patch_namespaced_service("carts", NS, {"spec": {"selector": {"app": "carts-canary"}}})
    assert core.read_namespaced_service("carts", NS).spec.selector == {"app": "carts-canary"}


def test_secret_size_counts_decoded_data(core: client.CoreV1Api) -> None:
    """Secrets are stored and read back base64-encoded, as the real API does."""
    core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "data": {"token": "c2VjcmV0"}})
    assert core.read_namespaced_secret("s", NS).data == {"token": "c2VjcmV0"}


def test_custom_resources_need_a_version_to_replace(custom: client.CustomObjectsApi) -> None:
    """A VirtualService is served as a custom resource: PUT without resourceVersion gets 422, with it succeeds; delete answers a Status."""
    body = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "carts"},
        "spec": {"hosts": ["carts"], "http": [{"route": [{"destination": {"host": "carts-primary"}, "weight": 100}]}]},
    }
    created = custom.create_namespaced_custom_object(*VS, body)
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(*VS, "carts", body)
    assert err.value.status == 422
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    body["spec"]["http"][0]["route"][0]["weight"] = 0
    replaced = custom.replace_namespaced_custom_object(*VS, "carts", body)
    assert replaced["spec"]["http"][0]["route"][0]["weight"] == 0
    patched = custom.patch_namespaced_custom_object(*VS, "carts", {"spec": {"hosts": ["carts", "carts.local"]}})
    assert patched["spec"]["hosts"] == ["carts", "carts.local"]
    deleted = custom.delete_namespaced_custom_object(*VS, "carts")
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(*VS, "carts")
    assert err.value.status == 404


def test_knative_serving_hook_creates_revisions_and_resolves_traffic(custom: client.CustomObjectsApi, fake: FakeKube) -> None:
    """knative_serving creates a Revision per template change and resolves tagged traffic to revision names and URLs."""
    fake.on_write("services.serving.knative.dev", knative_serving())
    template = {"spec": {"containers": [{"image": "docker.io/keptnexamples/carts:0.10.1"}]}}
    created = custom.create_namespaced_custom_object(
        *KSVC, {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "carts"}, "spec": {"template": template}}
    )
    # first the intermediate state the real reconciler shows, then (next read) the final one
    assert created["status"]["observedGeneration"] == 1 and "latestCreatedRevisionName" not in created["status"]
    assert {c["type"]: (c["status"], c["reason"]) for c in created["status"]["conditions"]}["ConfigurationsReady"] == ("Unknown", "OutOfDate")
    svc = custom.get_namespaced_custom_object(*KSVC, "carts")
    assert svc["status"]["latestReadyRevisionName"] == "carts-00001"
    assert svc["status"]["traffic"] == [{"revisionName": "carts-00001", "percent": 100, "latestRevision": True}]
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"image": "docker.io/keptnexamples/carts:0.10.2"}]}},
            "traffic": [
                {"revisionName": "carts-00001", "percent": 100, "tag": "primary"},
                {"latestRevision": True, "percent": 0, "tag": "canary"},
            ],
        }
    }
    patched = custom.patch_namespaced_custom_object(*KSVC, "carts", patch)
    assert patched["status"]["latestCreatedRevisionName"] == "carts-00001"  # OutOfDate: still the previous one
    status = custom.get_namespaced_custom_object(*KSVC, "carts")["status"]
    assert status["latestCreatedRevisionName"] == "carts-00002"
    assert [(t["revisionName"], t["percent"], t.get("tag")) for t in status["traffic"]] == [
        ("carts-00001", 100, "primary"),
        ("carts-00002", 0, "canary"),
    ]
    assert status["traffic"][1]["url"] == f"http://canary-carts.{NS}.example.com"
    revisions = custom.list_namespaced_custom_object("serving.knative.dev", "v1", NS, "revisions")
    assert [r["metadata"]["name"] for r in revisions["items"]] == ["carts-00001", "carts-00002"]
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(*KSVC, "carts", {"spec": {"traffic": [{"latestRevision": True, "percent": 50}]}})
    assert err.value.status == 422


def test_write_hook_error_is_answered(core: client.CoreV1Api, fake: FakeKube) -> None:
    """A write hook raising KubeError answers that error and stores nothing (an admission webhook)."""

    def deny(_fake: FakeKube, obj: dict[str, Any]) -> None:
        raise KubeError(403, "denied by test")

    fake.on_write("configmaps", deny)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    assert err.value.status == 403
    assert fake.get_object("configmaps", NS, "a") is None


def test_discovery_serves_the_dynamic_client(fake: FakeKube) -> None:
    """The dynamic client discovers and uses Knative and Istio kinds through the fake's discovery documents."""
    dyn = dynamic.DynamicClient(fake.api_client())
    ksvc = dyn.resources.get(api_version="serving.knative.dev/v1", kind="Service")
    ksvc.create(body={"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {}}, namespace=NS)
    assert ksvc.get(name="x", namespace=NS).metadata.name == "x"
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    assert configmaps.get(namespace=NS).items == []


def test_unknown_paths_and_watch_are_refused(fake: FakeKube) -> None:
    """Unknown resources get 404 and watch requests get 400, each with a Status body."""
    missing = httpx.get(f"{fake.url}/apis/example.com/v1/namespaces/{NS}/widgets")
    assert missing.status_code == 404 and missing.json()["kind"] == "Status"
    watch = httpx.get(f"{fake.url}/api/v1/namespaces/{NS}/configmaps?watch=true")
    assert watch.status_code == 400


def test_body_over_3_mib_is_refused(fake: FakeKube) -> None:
    """A request body over 3 MiB gets 413 like the real API server."""
    body = json.dumps({"metadata": {"name": "a"}, "data": {"k": "x" * (3 * 1024 * 1024)}})
    answer = httpx.post(f"{fake.url}/api/v1/namespaces/{NS}/configmaps", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413


def test_knative_revision_not_ready_keeps_the_previous_ready(custom: client.CustomObjectsApi, fake: FakeKube) -> None:
    """A revision the ready() callback rejects leaves latestReadyRevisionName on the previous one and the Service not Ready."""
    fake.on_write("services.serving.knative.dev", knative_serving(ready=lambda rev: "0.10.9" not in json.dumps(rev["spec"])))
    good = {"spec": {"containers": [{"image": "carts:0.10.1"}]}}
    custom.create_namespaced_custom_object(*KSVC, {"metadata": {"name": "carts"}, "spec": {"template": good}})
    bad = {"spec": {"template": {"spec": {"containers": [{"image": "carts:0.10.9"}]}}}}
    custom.patch_namespaced_custom_object(*KSVC, "carts", bad)
    status = custom.get_namespaced_custom_object(*KSVC, "carts")["status"]  # past the OutOfDate state
    assert status["latestCreatedRevisionName"] == "carts-00002"
    assert status["latestReadyRevisionName"] == "carts-00001"
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Ready"] == "False"


def test_generate_name_dry_run_and_cross_namespace_list(core: client.CoreV1Api, fake: FakeKube) -> None:
    """generateName makes a unique name, dryRun=All stores nothing, and /api/v1/configmaps lists every namespace."""
    fake.add_namespace("one")
    fake.add_namespace("two")
    made = core.create_namespaced_config_map("one", {"metadata": {"generateName": "job-"}})
    assert made.metadata.name.startswith("job-") and len(made.metadata.name) > 4
    core.create_namespaced_config_map("two", {"metadata": {"name": "dry"}}, dry_run="All")
    assert fake.get_object("configmaps", "two", "dry") is None
    core.create_namespaced_config_map("two", {"metadata": {"name": "b"}})
    everywhere = core.list_config_map_for_all_namespaces()
    assert sorted((c.metadata.namespace, c.metadata.name) for c in everywhere.items) == [
        ("one", made.metadata.name),
        ("two", "b"),
    ]


def test_namespaces_are_cluster_scoped(core: client.CoreV1Api) -> None:
    """Namespaces are created and read without a namespace in the path."""
    core.create_namespace({"metadata": {"name": "project-x-dev"}})
    assert core.read_namespace("project-x-dev").metadata.name == "project-x-dev"


def test_objects_are_created_only_in_namespaces_that_exist(core: client.CoreV1Api, fake: FakeKube) -> None:
    """As the real API: 404 `namespaces "x" not found` for a create in a missing namespace; get and list answer as usual."""
    with pytest.raises(client.ApiException) as missing:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})
    assert missing.value.status == 404 and 'namespaces \\"nowhere\\" not found' in missing.value.body
    assert core.list_namespaced_config_map("nowhere").items == []
    core.create_namespace({"metadata": {"name": "nowhere"}})
    core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})


def test_names_and_labels_the_real_server_refuses(core: client.CoreV1Api, fake: FakeKube) -> None:
    """A Service name past 63 characters, or a label value with a space, is 422 Invalid."""
    with pytest.raises(client.ApiException) as bad:
        core.create_namespaced_service(NS, {"metadata": {"name": "s" * 64}, "spec": {"ports": [{"port": 80}]}})
    assert bad.value.status == 422 and "RFC 1123 label" in bad.value.body
    with pytest.raises(client.ApiException) as label:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "a", "labels": {"p": "has space"}}})
    assert label.value.status == 422


def test_strategic_merge_on_a_custom_resource_is_415(fake: FakeKube) -> None:
    """A custom resource takes merge and JSON patches only: strategic merge answers 415 UnsupportedMediaType."""
    custom = client.CustomObjectsApi(fake.api_client())
    body = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "carts"}, "spec": {}}
    custom.create_namespaced_custom_object("serving.knative.dev", "v1", NS, "services", body)
    answer = httpx.patch(
        f"{fake.url}/apis/serving.knative.dev/v1/namespaces/{NS}/services/carts",
        content=b'{"metadata": {"labels": {"a": "b"}}}',
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert answer.status_code == 415 and answer.json()["reason"] == "UnsupportedMediaType"
