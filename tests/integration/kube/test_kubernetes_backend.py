"""The kubernetes backend against a real API server and controller manager (the test plays the kubelet).

Real Deployments roll out through real ReplicaSets; a pod counts as ready only when the test marks
it so. Blue/green deploy, promote and discard; Istio weights in a real VirtualService (our
minimal CRD); the switch of the ``<svc>`` Service without Istio; a real
``ProgressDeadlineExceeded`` when pods stay Pending; Pod Security refusing the pods; names the
server would refuse stopped before any call.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client
from tests.support.kube.cluster import Cluster, Kubelet

from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.errors import PermanentError, ValidationError
from sluice.ports.backend import Placement, Slot

OLD, NEW, NEWER = "example.test/carts:0.10.1", "example.test/carts:0.10.2", "example.test/carts:0.10.3"
BASELINE = {"pod-security.kubernetes.io/enforce": "baseline"}


def stage(cluster: Cluster, labels: dict[str, str] | None = BASELINE) -> Placement:
    project = f"p{uuid.uuid4().hex[:6]}"
    placement = Placement(project, "staging", "carts")
    cluster.create_namespace(placement.namespace, labels)
    return placement


def backend(cluster: Cluster, **kwargs: Any) -> KubernetesBackend:
    kwargs.setdefault("poll_s", 0.2)
    return KubernetesBackend(cluster.api_client(), **kwargs)


def deployment(cluster: Cluster, ns: str, name: str) -> Any:
    return client.AppsV1Api(cluster.api_client()).read_namespaced_deployment(name, ns)


def image_of(dep: Any) -> str:
    return str(dep.spec.template.spec.containers[0].image)


def virtual_service(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    api = client.CustomObjectsApi(cluster.api_client())
    return dict(api.get_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices", name))


def weights(vs: dict[str, Any]) -> dict[str, int]:
    return {r["destination"]["host"]: r["weight"] for r in vs["spec"]["http"][0]["route"]}


def test_blue_green_deploy_promote_and_discard_with_istio(kube_cluster: Cluster) -> None:
    """Primary, canary, 50/50 weights, promote (primary runs the candidate, canary at zero), then a discard."""
    placement = stage(kube_cluster)
    ns = placement.namespace
    be = backend(kube_cluster)
    with Kubelet(kube_cluster, ns):
        url = be.deploy(placement, Slot.PRIMARY, OLD, 120)
        assert url == f"http://carts-primary.{ns}.svc.cluster.local"
        be.route(placement, 0)
        canary_url = be.deploy(placement, Slot.CANARY, NEW, 120)
        assert canary_url == f"http://carts-canary.{ns}.svc.cluster.local"
        be.route(placement, 50)
        assert weights(virtual_service(kube_cluster, ns, "carts")) == {"carts-primary": 50, "carts-canary": 50}
        # promote
        be.deploy(placement, Slot.PRIMARY, NEW, 120)
        be.route(placement, 0)
        be.scale_to_zero(placement, Slot.CANARY)
        primary = deployment(kube_cluster, ns, "carts-primary")
        assert image_of(primary) == NEW and primary.status.available_replicas == 1
        assert primary.status.updated_replicas == 1 and (primary.status.replicas or 0) == 1
        assert deployment(kube_cluster, ns, "carts-canary").spec.replicas == 0
        assert weights(virtual_service(kube_cluster, ns, "carts")) == {"carts-primary": 100, "carts-canary": 0}
        sets = client.AppsV1Api(kube_cluster.api_client()).list_namespaced_replica_set(
            ns, label_selector="sluice.dev/slot=primary"
        ).items
        assert sorted((image_of(rs), rs.spec.replicas) for rs in sets) == [(OLD, 0), (NEW, 1)]
        # discard a later candidate: the primary keeps NEW
        be.deploy(placement, Slot.CANARY, NEWER, 120)
        be.route(placement, 0)
        be.scale_to_zero(placement, Slot.CANARY)
    assert image_of(deployment(kube_cluster, ns, "carts-primary")) == NEW
    assert deployment(kube_cluster, ns, "carts-canary").spec.replicas == 0
    services = client.CoreV1Api(kube_cluster.api_client()).list_namespaced_service(ns).items
    assert sorted(s.metadata.name for s in services) == ["carts", "carts-canary", "carts-primary"]


def test_without_istio_the_stage_service_switches_slots(kube_cluster: Cluster) -> None:
    """Without Istio, route(100) points the stage's Service at the canary and route(0) back at the primary."""
    placement = stage(kube_cluster)
    ns = placement.namespace
    be = backend(kube_cluster, istio=False)
    core = client.CoreV1Api(kube_cluster.api_client())
    with Kubelet(kube_cluster, ns):
        be.deploy(placement, Slot.PRIMARY, OLD, 120)
        be.route(placement, 0)
        be.deploy(placement, Slot.CANARY, NEW, 120)
        be.route(placement, 100)
        assert core.read_namespaced_service("carts", ns).spec.selector == {"app": "carts", "sluice.dev/slot": "canary"}
        with pytest.raises(PermanentError, match="still receives traffic"):
            be.scale_to_zero(placement, Slot.CANARY)
        be.route(placement, 0)
        assert core.read_namespaced_service("carts", ns).spec.selector == {"app": "carts", "sluice.dev/slot": "primary"}
        be.scale_to_zero(placement, Slot.CANARY)


def test_pods_that_stay_pending_end_in_progress_deadline_exceeded(kube_cluster: Cluster) -> None:
    """No kubelet starts the pods: the controller sets Progressing=False ProgressDeadlineExceeded and deploy fails with it."""
    placement = stage(kube_cluster)
    be = backend(kube_cluster)
    with pytest.raises(PermanentError, match="ProgressDeadlineExceeded"):
        be.deploy(placement, Slot.DIRECT, OLD, 30)  # progressDeadlineSeconds: 20
    dep = deployment(kube_cluster, placement.namespace, "carts")
    reasons = {c.type: c.reason for c in dep.status.conditions}
    assert reasons["Progressing"] == "ProgressDeadlineExceeded"


def test_pod_security_refusing_the_pods_fails_the_deploy_with_the_reason(kube_cluster: Cluster) -> None:
    """In a namespace enforcing `restricted`, the ReplicaSet cannot create pods: deploy fails naming the PodSecurity violation."""
    placement = stage(kube_cluster, labels={"pod-security.kubernetes.io/enforce": "restricted"})
    be = backend(kube_cluster)
    with pytest.raises(PermanentError, match=r"(?s)ReplicaFailure.*violates PodSecurity"):
        be.deploy(placement, Slot.PRIMARY, OLD, 60)


def test_names_the_server_would_refuse_are_stopped_before_any_call(kube_cluster: Cluster) -> None:
    """A service whose <svc>-primary the API server refuses (422, past 63) is a ValidationError naming the limit; nothing is sent."""
    service, limit = "s" * 56, "63"
    placement = stage(kube_cluster)
    placement = Placement(placement.project, placement.stage, service)
    core = client.CoreV1Api(kube_cluster.api_client())
    with pytest.raises(client.ApiException) as refused:  # what the server would answer
        core.create_namespaced_service(
            placement.namespace,
            {"metadata": {"name": f"{service}-primary"}, "spec": {"ports": [{"port": 80}]}},
        )
    assert refused.value.status == 422
    before = len(kube_cluster.audit("admin", placement.namespace))
    with pytest.raises(ValidationError, match=limit):
        backend(kube_cluster).deploy(placement, Slot.PRIMARY, OLD, 30)
    assert len(kube_cluster.audit("admin", placement.namespace)) == before


def test_a_namespace_name_past_63_is_refused_before_any_call(kube_cluster: Cluster) -> None:
    """Project and stage within 63 each but `<project>-<stage>` past it: ValidationError naming the namespace."""
    placement = Placement("p" * 40, "s" * 30, "carts")
    with pytest.raises(ValidationError, match="namespace"):
        backend(kube_cluster).deploy(placement, Slot.PRIMARY, OLD, 30)


def test_the_longest_names_sluice_accepts_are_accepted_by_the_server(kube_cluster: Cluster) -> None:
    """A 63-character namespace and a 55-character service (<svc>-primary/-canary at 63): every object the backend makes is accepted."""
    service = "s" * 55
    project = f"p{uuid.uuid4().hex[:6]}" + "x" * 48  # + "-staging": 63 characters
    placement = Placement(project, "staging", service)
    assert len(placement.namespace) == 63
    kube_cluster.create_namespace(placement.namespace, BASELINE)
    be = backend(kube_cluster)
    with Kubelet(kube_cluster, placement.namespace):
        be.deploy(placement, Slot.PRIMARY, OLD, 120)
        be.route(placement, 0)
        be.deploy(placement, Slot.CANARY, NEW, 120)
        be.route(placement, 50)
    names = {s.metadata.name for s in client.CoreV1Api(kube_cluster.api_client()).list_namespaced_service(placement.namespace).items}
    assert names == {service, f"{service}-primary", f"{service}-canary"}
    assert weights(virtual_service(kube_cluster, placement.namespace, service)) == {f"{service}-primary": 50, f"{service}-canary": 50}
