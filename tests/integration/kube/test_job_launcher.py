"""The Job test launcher against a real API server, in a namespace enforcing the `restricted` Pod Security level.

The Job controller (kube-controller-manager) creates the pod; Pod Security admission decides
whether it may. A pod lacking the restricted fields is refused, and the Job never runs.
"""

from __future__ import annotations

import copy
import uuid

from kubernetes import client
from tests.support.kube.cluster import Cluster, wait_until

from sluice.adapters.testunits.kubernetes_job import JobLauncher

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def event() -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "sluice/deploy",
        "type": "sh.keptn.event.deployment.finished",
        "data": {"project": "sockshop", "stage": "staging", "service": "carts"},
    }


def pods_of(cluster: Cluster, ns: str, job: str) -> list[client.V1Pod]:
    return cluster.pods(ns, f"job-name={job}")


def failed_create(cluster: Cluster, ns: str, job: str) -> list[str]:
    events = client.CoreV1Api(cluster.api_client()).list_namespaced_event(ns).items
    return [e.message for e in events if e.involved_object.name == job and e.reason == "FailedCreate"]


def test_the_test_job_runs_under_restricted_pod_security(kube_cluster: Cluster) -> None:
    """The launcher's Job gets its pod past `restricted` Pod Security, with resource requests and its ServiceAccount."""
    ns = kube_cluster.unique_namespace("jobs", RESTRICTED)
    client.CoreV1Api(kube_cluster.api_client()).create_namespaced_service_account(
        ns, {"metadata": {"name": "sluice-testworker"}}
    )
    launch = JobLauncher(kube_cluster.api_client(), ns, "example.test/sluice:0.1.0", limit_s=120)
    sent = event()
    launch(sent)
    launch(sent)  # a duplicate delivery: the same Job, nothing new
    jobs = client.BatchV1Api(kube_cluster.api_client()).list_namespaced_job(ns).items
    assert len(jobs) == 1
    name = jobs[0].metadata.name
    pods = wait_until(lambda: pods_of(kube_cluster, ns, name) or failed_create(kube_cluster, ns, name), 60,
                      f"a pod (or a FailedCreate event) for Job {name}")
    assert isinstance(pods[0], client.V1Pod), f"the Job's pod was refused: {pods}"
    pod = pods[0]
    assert pod.spec.service_account_name == "sluice-testworker"
    assert pod.spec.containers[0].resources.requests == {"cpu": "100m", "memory": "128Mi"}
    assert jobs[0].spec.active_deadline_seconds == 120


def test_a_pod_without_the_restricted_fields_is_refused(kube_cluster: Cluster) -> None:
    """Control: the same Job without the security context gets no pod, only FailedCreate naming PodSecurity."""
    ns = kube_cluster.unique_namespace("jobs", RESTRICTED)
    client.CoreV1Api(kube_cluster.api_client()).create_namespaced_service_account(
        ns, {"metadata": {"name": "sluice-testworker"}}
    )
    job = copy.deepcopy(JobLauncher(kube_cluster.api_client(), ns, "example.test/sluice:0.1.0").job_for(event()))
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["securityContext"] = {"runAsNonRoot": True}
    del pod_spec["containers"][0]["securityContext"]
    client.BatchV1Api(kube_cluster.api_client()).create_namespaced_job(ns, job)
    name = job["metadata"]["name"]
    refusals = wait_until(lambda: failed_create(kube_cluster, ns, name), 60, f"FailedCreate for Job {name}")
    assert "violates PodSecurity" in refusals[0] and "restricted" in refusals[0]
    assert pods_of(kube_cluster, ns, name) == []
