"""The kubernetes and knative backends on the user's own workload (a chart rendered by the real
helm, tests/fixtures/charts), against the fake Kubernetes API: the derived Deployments and the
Knative revision template keep the user's pod template whole, the chart's other objects are
applied once per stage, a redelivered deploy writes nothing, a changed workload rolls out again."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_kube import FakeKube, ResourceType, deployment_rollout, knative_serving

from sluice.adapters.backends.knative import KnativeBackend
from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.core.workload import UserWorkload
from sluice.errors import PermanentError
from sluice.ports.backend import Placement, Slot
from sluice.services.workloads import find_helm, prepare, render_chart

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # any test folder depth
CHARTS = ROOT / "tests" / "fixtures" / "charts"
STAGING = Placement("sockshop", "staging", "carts")
NS = STAGING.namespace
OLD, NEW = "docker.io/keptnexamples/carts:0.10.1", "docker.io/keptnexamples/carts:0.10.2"
KSVC = "services.serving.knative.dev"
EXTRA_TYPES = (
    ResourceType("", ("v1",), "persistentvolumeclaims", "PersistentVolumeClaim"),
    ResourceType("", ("v1",), "serviceaccounts", "ServiceAccount", status=False),
    ResourceType("apps", ("v1",), "statefulsets", "StatefulSet"),
)


def rendered(chart: str, platform: str, placement: Placement = STAGING) -> UserWorkload:
    """The chart as ``sluice onboard --chart`` stores it for the placement's stage (real helm)."""
    objects = render_chart(find_helm(), CHARTS / chart, placement.service, placement.namespace)
    return prepare(objects, service=placement.service, namespace=placement.namespace, platform=platform,
                   source=f"--chart {chart}")


def user_object(workload: UserWorkload, kind: str, name: str) -> dict[str, Any]:
    return next(copy.deepcopy(dict(o)) for o in workload.objects if o["kind"] == kind and o["metadata"]["name"] == name)


def writes(fake: FakeKube) -> list[tuple[str, str | None, str | None]]:
    return [(r.method, r.resource, r.name) for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        for rtype in EXTRA_TYPES:
            server.register(rtype)
        server.add_namespace(NS)
        server.on_read("deployments.apps", deployment_rollout(ready_after_reads=2))
        server.on_write(KSVC, knative_serving())
        yield server


def test_kubernetes_derives_primary_and_canary_keeping_the_pod_template(fake: FakeKube) -> None:
    """Each slot's Deployment is the chart's with only the image of the carts container, the
    names, labels and selector changed; its Services keep the chart's port; the database, the
    ConfigMap, the PVC and the ServiceAccount are applied in the stage's namespace."""
    workload = rendered("carts-full", "kubernetes")
    be = KubernetesBackend(fake.api_client(), poll_s=0.01, istio=False, workloads=lambda p: workload)
    assert be.deploy(STAGING, Slot.PRIMARY, OLD, 5) == f"http://carts-primary.{NS}.svc.cluster.local:8080"
    assert be.route(STAGING, 0) == f"http://carts.{NS}.svc.cluster.local:8080"
    assert be.deploy(STAGING, Slot.CANARY, NEW, 5) == f"http://carts-canary.{NS}.svc.cluster.local:8080"
    user = user_object(workload, "Deployment", "carts")
    for slot, image in ((Slot.PRIMARY, OLD), (Slot.CANARY, NEW)):
        dep = fake.get_object("deployments.apps", NS, f"carts-{slot.value}")
        assert dep is not None
        expected = copy.deepcopy(user["spec"]["template"]["spec"])
        expected["containers"][0]["image"] = image
        pod = dep["spec"]["template"]
        assert pod["spec"] == expected  # env, probes, resources, volumes, the sidecar: all there
        assert pod["spec"]["containers"][1]["image"] == "docker.io/library/busybox:1.36"
        assert pod["metadata"]["labels"]["tier"] == "web" and pod["metadata"]["labels"]["sluice.dev/slot"] == slot.value
        assert pod["metadata"]["annotations"]["example.test/owner"] == "shop"
        assert dep["spec"]["selector"] == {"matchLabels": {"app": "carts", "sluice.dev/slot": slot.value}}
        assert dep["spec"]["replicas"] == 2 and dep["metadata"]["labels"]["team"] == "shop"
        svc = fake.get_object("services", NS, f"carts-{slot.value}")
        assert svc is not None and svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "web"}]
    stage = fake.get_object("services", NS, "carts")
    assert stage is not None and stage["spec"]["selector"] == {"app": "carts", "sluice.dev/slot": "primary"}
    for resource, name in (("configmaps", "carts-config"), ("serviceaccounts", "carts"), ("persistentvolumeclaims", "carts-db-data"),
                           ("statefulsets.apps", "carts-db"), ("services", "carts-db")):
        obj = fake.get_object(resource, NS, name)
        assert obj is not None, f"{resource} {name} was not applied"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice"
    config = fake.get_object("configmaps", NS, "carts-config")
    assert config is not None and f"carts-db.{NS}.svc" in config["data"]["application.properties"]


def test_kubernetes_redelivered_deploy_writes_nothing_and_a_changed_chart_rolls_out(fake: FakeKube) -> None:
    """The same deploy again (a redelivery) writes nothing; a changed workload with the same image
    patches the Deployment and the changed ConfigMap only."""
    workload = rendered("carts-full", "kubernetes")
    current = {"w": workload}
    be = KubernetesBackend(fake.api_client(), poll_s=0.01, istio=False, workloads=lambda p: current["w"])
    be.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    be.route(STAGING, 0)
    before = len(writes(fake))
    be.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    be.route(STAGING, 0)
    assert writes(fake)[before:] == []
    objects = [copy.deepcopy(dict(o)) for o in workload.objects]
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "carts":
            obj["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "FEATURE", "value": "on"})
        if obj["kind"] == "ConfigMap":
            obj["data"]["extra"] = "1"
    current["w"] = prepare(objects, service="carts", namespace=NS, platform="kubernetes", source="--chart changed")
    before = len(writes(fake))
    be.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    assert sorted(writes(fake)[before:]) == [("PATCH", "configmaps", "carts-config"), ("PATCH", "deployments.apps", "carts-primary")]
    dep = fake.get_object("deployments.apps", NS, "carts-primary")
    assert dep is not None and {"name": "FEATURE", "value": "on"} in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    config = fake.get_object("configmaps", NS, "carts-config")
    assert config is not None and config["data"]["extra"] == "1"


def test_kubernetes_without_a_workload_keeps_the_generated_deployment(fake: FakeKube) -> None:
    """No stored workload: the generated one-container Deployment and port 80, as before."""
    be = KubernetesBackend(fake.api_client(), poll_s=0.01, istio=False, workloads=lambda p: None)
    assert be.deploy(STAGING, Slot.PRIMARY, OLD, 5) == f"http://carts-primary.{NS}.svc.cluster.local"
    dep = fake.get_object("deployments.apps", NS, "carts-primary")
    assert dep is not None and [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]] == ["carts"]


def test_kubernetes_a_stored_workload_that_cannot_be_used_fails_before_any_write(fake: FakeKube) -> None:
    """A stored workload without the service's Deployment (changed by hand): PermanentError naming
    its source; nothing is created."""
    bad = UserWorkload("--chart broken", ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},), "d")
    be = KubernetesBackend(fake.api_client(), poll_s=0.01, istio=False, workloads=lambda p: bad)
    with pytest.raises(PermanentError, match="--chart broken"):
        be.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    assert writes(fake) == []


def test_knative_revision_template_is_the_users(fake: FakeKube) -> None:
    """The Knative Service's template is the chart's (env, probe, resources, volume, sidecar,
    annotations) with the image replaced; the ConfigMap is applied; a redelivery writes nothing."""
    workload = rendered("carts-knative", "knative")
    be = KnativeBackend(fake.api_client(), poll_s=0.01, workloads=lambda p: workload)
    be.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    be.deploy(STAGING, Slot.CANARY, NEW, 5)
    svc = fake.get_object(KSVC, NS, "carts")
    assert svc is not None and svc["metadata"]["labels"]["team"] == "shop"
    user = user_object(workload, "Service", "carts")["spec"]["template"]
    template = svc["spec"]["template"]
    expected = copy.deepcopy(user["spec"])
    expected["containers"][0]["image"] = NEW
    assert template["spec"] == expected
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "1"
    assert template["metadata"]["annotations"]["sluice.dev/workload"] == workload.digest
    assert fake.get_object("configmaps", NS, "carts-config") is not None
    before = len(writes(fake))
    be.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert writes(fake)[before:] == []
