"""The user's own chart on a real API server: rendered by the real helm (tests/fixtures/charts),
stored as `sluice onboard --chart` stores it, deployed by the kubernetes and knative backends.

The derived `carts-primary` / `carts-canary` keep the chart's pod template (env, probes,
resources, volumes, the sidecar) as the real server stores them (with its defaults added); the
chart's ServiceAccount, ConfigMap, PVC, database StatefulSet and Service exist once in the stage;
a redelivered deploy changes no object's spec; the Knative Service's template is the chart's.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from tests.support.kube.cluster import Cluster, Kubelet, require_knative
from tests.support.kube.serving import GROUP, VERSION, ServingController

from sluice.adapters.backends.knative import KnativeBackend
from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.adapters.state import create_store
from sluice.ports.backend import Placement, Slot
from sluice.services.records import Records
from sluice.services.workloads import find_helm, prepare, render_chart

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # any test folder depth
CHARTS = ROOT / "tests" / "fixtures" / "charts"
OLD, NEW = "example.test/carts:0.10.1", "example.test/carts:0.10.2"
BASELINE = {"pod-security.kubernetes.io/enforce": "baseline"}


def onboard(placement: Placement, chart: str, platform: str) -> Records:
    """What `sluice onboard service carts --chart` stores for the placement's stage (real helm)."""
    records = Records(create_store("memory"))
    objects = render_chart(find_helm(), CHARTS / chart, placement.service, placement.namespace)
    workload = prepare(objects, service=placement.service, namespace=placement.namespace, platform=platform,
                       source=f"--chart {chart}")
    records.put_workload(placement.project, placement.stage, placement.service, workload)
    return records


def contains(stored: Any, given: Any, path: str = "") -> list[str]:
    """Where ``stored`` (as the server keeps it, defaults added) lacks or changed what ``given`` says."""
    if isinstance(given, dict):
        if not isinstance(stored, dict):
            return [f"{path}: expected a mapping, found {stored!r}"]
        return [p for k, v in given.items() for p in contains(stored.get(k), v, f"{path}.{k}")]
    if isinstance(given, list):
        if not isinstance(stored, list) or len(stored) != len(given):
            return [f"{path}: expected {len(given)} items, found {stored!r}"]
        return [p for i, (s, g) in enumerate(zip(stored, given, strict=True)) for p in contains(s, g, f"{path}[{i}]")]
    return [] if stored == given else [f"{path}: expected {given!r}, found {stored!r}"]


def as_dict(obj: Any) -> dict[str, Any]:
    return dict(client.ApiClient().sanitize_for_serialization(obj))


def test_chart_deployed_keeps_the_pod_template_on_a_real_server(kube_cluster: Cluster) -> None:
    """Primary and canary from the chart: the real server stores the chart's pod template (but the
    image), the extras once; a redelivered deploy changes nothing."""
    placement = Placement(f"h{uuid.uuid4().hex[:6]}", "staging", "carts")
    ns = placement.namespace
    kube_cluster.create_namespace(ns, BASELINE)
    records = onboard(placement, "carts-full", "kubernetes")
    workload = records.workload(placement.project, placement.stage, placement.service)
    assert workload is not None
    user = next(o for o in workload.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "carts")
    be = KubernetesBackend(kube_cluster.api_client(), istio=False, poll_s=0.2,
                           workloads=lambda p: records.workload(p.project, p.stage, p.service))
    apps, core = client.AppsV1Api(kube_cluster.api_client()), client.CoreV1Api(kube_cluster.api_client())
    with Kubelet(kube_cluster, ns) as kubelet:
        assert be.deploy(placement, Slot.PRIMARY, OLD, 120) == f"http://carts-primary.{ns}.svc.cluster.local:8080"
        be.route(placement, 0)
        be.deploy(placement, Slot.CANARY, NEW, 120)
        be.route(placement, 100)
        for slot, image in ((Slot.PRIMARY, OLD), (Slot.CANARY, NEW)):
            dep = as_dict(apps.read_namespaced_deployment(f"carts-{slot.value}", ns))
            expected = copy.deepcopy(user["spec"]["template"]["spec"])
            expected["containers"][0]["image"] = image
            assert contains(dep["spec"]["template"]["spec"], expected) == []
            assert dep["spec"]["template"]["spec"]["containers"][1]["name"] == "log-shipper"
            assert dep["spec"]["selector"]["matchLabels"] == {"app": "carts", "sluice.dev/slot": slot.value}
            assert dep["spec"]["replicas"] == 2 and dep["status"]["availableReplicas"] == 2
            pods = core.list_namespaced_pod(ns, label_selector=f"sluice.dev/slot={slot.value}").items
            assert {p.spec.containers[0].image for p in pods} == {image}
            assert all(p.spec.service_account_name == "carts" for p in pods)
        stage = core.read_namespaced_service("carts", ns)
        assert stage.spec.selector == {"app": "carts", "sluice.dev/slot": "canary"}
        assert [(p.port, p.target_port) for p in stage.spec.ports] == [(8080, "web")]
        extras = {
            "ConfigMap carts-config": lambda: core.read_namespaced_config_map("carts-config", ns),
            "ServiceAccount carts": lambda: core.read_namespaced_service_account("carts", ns),
            "PVC carts-db-data": lambda: core.read_namespaced_persistent_volume_claim("carts-db-data", ns),
            "StatefulSet carts-db": lambda: apps.read_namespaced_stateful_set("carts-db", ns),
            "Service carts-db": lambda: core.read_namespaced_service("carts-db", ns),
        }
        for what, read in extras.items():
            assert read().metadata.labels["app.kubernetes.io/managed-by"] == "sluice", what
        versions = {what: read().metadata.resource_version for what, read in extras.items() if not what.startswith("PVC")}
        generations = {n: apps.read_namespaced_deployment(n, ns).metadata.generation for n in ("carts-primary", "carts-canary")}
        # a redelivered deploy of the canary: nothing changes
        be.deploy(placement, Slot.CANARY, NEW, 120)
        assert {n: apps.read_namespaced_deployment(n, ns).metadata.generation for n in generations} == generations
        assert {what: extras[what]().metadata.resource_version for what in versions} == versions
    assert kubelet.errors == []


def test_knative_service_from_the_chart_on_a_real_server(kube_cluster: Cluster) -> None:
    """The Knative Service made from the chart's: its template (env, probe, resources, volume,
    sidecar, annotations) kept through the real CRD schema, the image replaced, the ConfigMap applied."""
    require_knative(kube_cluster)
    placement = Placement(f"k{uuid.uuid4().hex[:6]}", "production", "carts")
    ns = placement.namespace
    kube_cluster.create_namespace(ns, BASELINE)
    records = onboard(placement, "carts-knative", "knative")
    workload = records.workload(placement.project, placement.stage, placement.service)
    assert workload is not None
    user = next(o for o in workload.objects if o["kind"] == "Service")
    be = KnativeBackend(kube_cluster.api_client(), poll_s=0.2,
                        workloads=lambda p: records.workload(p.project, p.stage, p.service))
    with ServingController(kube_cluster, ns):
        be.deploy(placement, Slot.PRIMARY, OLD, 60)
        be.deploy(placement, Slot.CANARY, NEW, 60)
        svc = client.CustomObjectsApi(kube_cluster.api_client()).get_namespaced_custom_object(GROUP, VERSION, ns, "services", "carts")
        expected = copy.deepcopy(user["spec"]["template"])
        expected["spec"]["containers"][0]["image"] = NEW
        assert contains(svc["spec"]["template"], expected) == []
        assert svc["metadata"]["labels"]["team"] == "shop"
        generation = svc["metadata"]["generation"]
        be.deploy(placement, Slot.CANARY, NEW, 60)  # redelivered
        again = client.CustomObjectsApi(kube_cluster.api_client()).get_namespaced_custom_object(GROUP, VERSION, ns, "services", "carts")
        assert again["metadata"]["generation"] == generation
    assert client.CoreV1Api(kube_cluster.api_client()).read_namespaced_config_map("carts-config", ns).data == {"mode": "knative"}
