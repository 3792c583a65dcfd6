"""The ``kubernetes`` deployment backend: Deployments and Services in ``<project>-<stage>``.

For service ``<svc>`` of a stage (namespace ``<project>-<stage>``):

============  =========================  ===========================================
slot          Deployment                 Service (port 80 → the container's 8080)
============  =========================  ===========================================
primary       ``<svc>-primary``          ``<svc>-primary``
canary        ``<svc>-canary``           ``<svc>-canary``
direct        ``<svc>``                  ``<svc>``
(the stage)                              ``<svc>``: the stage's stable address
============  =========================  ===========================================

Pods carry ``app: <svc>`` and ``sluice.dev/slot: <slot>``; each slot's Service selects its own.
Traffic of a blue/green stage (``route``):

- with Istio (API group ``networking.istio.io`` served, or ``istio=True``): VirtualService
  ``<svc>`` for hosts ``<svc>`` and ``<svc>.<ns>.svc.cluster.local`` splits by weight between the
  ``<svc>-primary`` and ``<svc>-canary`` Services; the ``<svc>`` Service selects the primary
  (for clients outside the mesh);
- without Istio: the ``<svc>`` Service's selector points at one slot (blue/green switch):
  the canary when its weight is 50 or more, else the primary.

``deploy`` creates or patches the slot's Deployment (rolling update, ``maxUnavailable: 0``, so
replacing the image never drops a request) and waits, polling, until the rollout is complete
(``observedGeneration``, ``updatedReplicas``, ``availableReplicas``) or has failed: Deployment
condition ``Progressing=False`` (``ProgressDeadlineExceeded``) or ``ReplicaFailure``, or a pod
of the new image waiting with ``ErrImagePull``, ``ImagePullBackOff``, ``CrashLoopBackOff`` and
the like — each a ``PermanentError`` naming the reason and the message.

Verbs used (``knative/rbac.yaml``, ClusterRole ``sluice-deployer``): deployments get, create,
patch; services get, create, patch; pods list; virtualservices get, create, patch.
The ``kubernetes`` package is imported when a backend is built, not with this module.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sluice.adapters._kube import (
    MERGE_PATCH,
    Deadline,
    Kube,
    Obj,
    check_image,
    check_placement,
    check_weight,
    condition,
    placement_labels,
    with_conflict_retry,
)
from sluice.errors import NotFoundError, PermanentError
from sluice.ports.backend import Placement, Slot

SLOT_LABEL = "sluice.dev/slot"
IMAGE_ANNOTATION = "sluice.dev/image"
ISTIO_GROUP = "networking.istio.io"
#: Waiting reasons of a pod's container that will not resolve by waiting.
FAILED_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


class KubernetesBackend:
    """A ``DeploymentBackend`` over Deployments, Services and (when present) Istio.

    ``api``: a ``kubernetes.client.ApiClient`` (or ``Configuration``) built by the composition
    root. ``istio``: ``None`` detects the ``networking.istio.io`` API group on first use.
    """

    def __init__(
        self,
        api: Any,
        *,
        istio: bool | None = None,
        container_port: int = 8080,
        service_port: int = 80,
        replicas: int = 1,
        cluster_domain: str = "svc.cluster.local",
        poll_s: float = 1.0,
        request_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._kube = Kube(api, request_timeout)
        self._istio = istio
        self._istio_version = "v1beta1"
        self.container_port = container_port
        self.service_port = service_port
        self.replicas = replicas
        self.cluster_domain = cluster_domain
        self.poll_s = poll_s
        self._sleep = sleep

    # --- the port ------------------------------------------------------------------------------

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        """Run ``image`` in ``slot`` (Deployment + Service) and wait for the rollout."""
        slot = Slot(slot)
        check_placement(placement)
        where = f"{placement.service} ({slot.value}) in {placement.namespace}"
        check_image(image, where)
        name = self.deployment_name(placement.service, slot)
        deadline = Deadline(timeout_s, self.poll_s, self._sleep)
        self._ensure_deployment(placement, slot, name, image, timeout_s)
        service = name if slot is not Slot.DIRECT else placement.service
        self._ensure_service(placement.namespace, service, self._selector(placement.service, slot), placement)
        self._wait_rollout(placement.namespace, name, image, deadline, where)
        return self._url(placement.namespace, service)

    def route(self, placement: Placement, canary_weight: int) -> str:
        """Split the stage's traffic: VirtualService weights with Istio, else switch ``<svc>``."""
        weight = check_weight(canary_weight)
        check_placement(placement)
        ns, svc = placement.namespace, placement.service
        apps = self._kube.apps
        primary = self._kube.get(f"read Deployment {ns}/{svc}-primary", apps.read_namespaced_deployment, f"{svc}-primary", ns)
        if primary is None:
            direct = self._kube.get(f"read Deployment {ns}/{svc}", apps.read_namespaced_deployment, svc, ns)
            if direct is None and weight == 0:
                return self._url(ns, svc)  # nothing runs (a discard after a failed first deployment): nothing to route
            if direct is None:
                raise NotFoundError(
                    f"route {svc} in {ns}: expected Deployment {svc}-primary (blue/green) or {svc} (direct), "
                    "found neither: deploy before routing"
                )
            self._ensure_service(ns, svc, self._selector(svc, Slot.DIRECT), placement)
            return self._url(ns, svc)
        if weight > 0:
            canary = self._kube.get(f"read Deployment {ns}/{svc}-canary", apps.read_namespaced_deployment, f"{svc}-canary", ns)
            if canary is None or _replicas(canary) == 0:
                raise PermanentError(
                    f"route {weight} % of {svc} in {ns} to the canary: expected a running Deployment {svc}-canary, "
                    f"found {'none' if canary is None else 'it scaled to zero'}"
                )
        if self._uses_istio():
            self._ensure_service(ns, svc, self._selector(svc, Slot.PRIMARY), placement)
            self._ensure_virtual_service(placement, weight)
        else:
            slot = Slot.CANARY if weight >= 50 else Slot.PRIMARY
            self._ensure_service(ns, svc, self._selector(svc, slot), placement)
        return self._url(ns, svc)

    def weighted_split(self) -> bool:
        """True when route() can split traffic by weight (Istio is served): a canary stage needs it."""
        return self._uses_istio()

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        """Scale the slot's Deployment to 0 replicas; refuses while it still gets traffic."""
        slot = Slot(slot)
        check_placement(placement)
        ns, name = placement.namespace, self.deployment_name(placement.service, slot)
        apps = self._kube.apps

        def step() -> None:
            current = self._kube.get(f"read Deployment {ns}/{name}", apps.read_namespaced_deployment, name, ns)
            if current is None or _replicas(current) == 0:
                return
            if slot is Slot.CANARY:
                self._refuse_if_routed(placement)
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"replicas": 0}}
            self._kube.call(
                f"scale Deployment {ns}/{name} to zero", apps.patch_namespaced_deployment, name, ns, patch,
                _content_type=MERGE_PATCH,
            )

        with_conflict_retry(step, sleep=self._sleep)

    # --- names and URLs ------------------------------------------------------------------------

    @staticmethod
    def deployment_name(service: str, slot: Slot) -> str:
        """``<svc>-primary``, ``<svc>-canary``, or ``<svc>`` for a direct stage."""
        return service if Slot(slot) is Slot.DIRECT else f"{service}-{Slot(slot).value}"

    def _url(self, namespace: str, service: str) -> str:
        port = "" if self.service_port == 80 else f":{self.service_port}"
        return f"http://{service}.{namespace}.{self.cluster_domain}{port}"

    @staticmethod
    def _selector(service: str, slot: Slot) -> dict[str, str]:
        return {"app": service, SLOT_LABEL: Slot(slot).value}

    @staticmethod
    def _labels(placement: Placement, slot: Slot | None = None) -> dict[str, str]:
        labels = {"app": placement.service, **placement_labels(placement)}
        if slot is not None:
            labels[SLOT_LABEL] = slot.value
        return labels

    # --- Deployments ---------------------------------------------------------------------------

    def _template(self, placement: Placement, slot: Slot, image: str) -> Obj:
        return {
            "metadata": {
                "labels": self._labels(placement, slot),
                # the annotations an annotation-driven Prometheus scrape config looks for
                "annotations": {
                    IMAGE_ANNOTATION: image,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(self.container_port),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "containers": [
                    {
                        "name": placement.service,
                        "image": image,
                        "ports": [{"name": "http", "containerPort": self.container_port}],
                        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2},
                    }
                ]
            },
        }

    def _ensure_deployment(self, placement: Placement, slot: Slot, name: str, image: str, timeout_s: float) -> None:
        ns, apps = placement.namespace, self._kube.apps
        template = self._template(placement, slot, image)

        def step() -> None:
            current = self._kube.get(f"read Deployment {ns}/{name}", apps.read_namespaced_deployment, name, ns)
            if current is None:
                body = {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns, "labels": self._labels(placement, slot)},
                    "spec": {
                        "replicas": self.replicas,
                        "selector": {"matchLabels": self._selector(placement.service, slot)},
                        # two thirds of our wait: the controller's own verdict
                        # (ProgressDeadlineExceeded) arrives before our timeout and names the reason
                        "progressDeadlineSeconds": max(10, math.ceil(timeout_s * 2 / 3)),
                        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                        "template": template,
                    },
                }
                # 409 AlreadyExists (created meanwhile by a duplicate delivery): the retry patches it
                self._kube.call(f"create Deployment {ns}/{name}", apps.create_namespaced_deployment, ns, body)
                return
            if _image(current) == image and _replicas(current) == self.replicas:
                return
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": {"replicas": self.replicas, "template": template},
            }
            self._kube.call(
                f"update Deployment {ns}/{name} to {image}", apps.patch_namespaced_deployment, name, ns, patch,
                _content_type=MERGE_PATCH,
            )

        with_conflict_retry(step, sleep=self._sleep)

    def _wait_rollout(self, ns: str, name: str, image: str, deadline: Deadline, where: str) -> None:
        apps = self._kube.apps
        last = "no status yet"
        while True:
            current = self._kube.get(f"read Deployment {ns}/{name}", apps.read_namespaced_deployment, name, ns)
            if current is None:
                raise PermanentError(f"{where}: Deployment {ns}/{name} disappeared while rolling out {image}")
            progress, last = _rollout(current)
            if progress == "done":
                return
            if progress == "failed":
                raise PermanentError(f"{where}: {image} failed to roll out: {last}")
            pod_failure = self._pod_failure(ns, current, image)
            if pod_failure:
                raise PermanentError(f"{where}: {image} failed to roll out: {pod_failure}")
            if deadline.passed:
                raise PermanentError(f"{where}: {image} not ready within {deadline.timeout_s:g} s ({last})")
            deadline.pause()

    def _pod_failure(self, ns: str, deployment: Obj, image: str) -> str | None:
        """The first container of a pod running ``image`` that waits for a reason that will not
        pass (image pull error, crash loop), as ``Reason: message``; else ``None``."""
        match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        pods = self._kube.call(
            f"list pods of {ns}/{deployment['metadata']['name']}", self._kube.core.list_namespaced_pod, ns,
            label_selector=selector,
        )
        for pod in pods.get("items") or []:
            containers = {c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
            if image not in containers.values():
                continue  # a pod of the previous image
            status = pod.get("status") or {}
            for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
                waiting = (cs.get("state") or {}).get("waiting") or {}
                reason = waiting.get("reason")
                if reason in FAILED_WAITING:
                    restarts = cs.get("restartCount", 0)
                    extra = f" after {restarts} restarts" if restarts else ""
                    text = waiting.get("message") or ""
                    return f"{reason}{extra} in pod {pod['metadata']['name']}" + (f": {text}" if text else "")
        return None

    # --- Services and traffic ------------------------------------------------------------------

    def _ensure_service(self, ns: str, name: str, selector: dict[str, str], placement: Placement) -> None:
        core = self._kube.core
        ports = [{"name": "http", "port": self.service_port, "targetPort": "http", "protocol": "TCP"}]

        def step() -> None:
            current = self._kube.get(f"read Service {ns}/{name}", core.read_namespaced_service, name, ns)
            if current is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": ns, "labels": self._labels(placement)},
                    "spec": {"selector": selector, "ports": ports},
                }
                self._kube.call(f"create Service {ns}/{name}", core.create_namespaced_service, ns, body)
                return
            spec = current.get("spec") or {}
            if spec.get("selector") == selector and _ports(spec) == _ports({"ports": ports}):
                return
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": {"selector": {**{k: None for k in spec.get("selector") or {}}, **selector}, "ports": ports},
            }
            self._kube.call(
                f"point Service {ns}/{name} at {selector.get(SLOT_LABEL)}", core.patch_namespaced_service, name, ns,
                patch, _content_type=MERGE_PATCH,
            )

        with_conflict_retry(step, sleep=self._sleep)

    def _uses_istio(self) -> bool:
        if self._istio is None:
            version = self._kube.api_group_version(ISTIO_GROUP)
            self._istio = version is not None
            if version:
                self._istio_version = version
        return self._istio

    def _virtual_service_spec(self, ns: str, svc: str, weight: int) -> Obj:
        return {
            "hosts": [svc, f"{svc}.{ns}.{self.cluster_domain}"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": f"{svc}-primary", "port": {"number": self.service_port}}, "weight": 100 - weight},
                        {"destination": {"host": f"{svc}-canary", "port": {"number": self.service_port}}, "weight": weight},
                    ]
                }
            ],
        }

    def _ensure_virtual_service(self, placement: Placement, weight: int) -> None:
        ns, svc = placement.namespace, placement.service
        custom, version = self._kube.custom, self._istio_version
        spec = self._virtual_service_spec(ns, svc, weight)
        args = (ISTIO_GROUP, version, ns, "virtualservices")

        def step() -> None:
            current = self._kube.get(f"read VirtualService {ns}/{svc}", custom.get_namespaced_custom_object, *args, svc)
            if current is None:
                body = {
                    "apiVersion": f"{ISTIO_GROUP}/{version}",
                    "kind": "VirtualService",
                    "metadata": {"name": svc, "namespace": ns, "labels": self._labels(placement)},
                    "spec": spec,
                }
                self._kube.call(f"create VirtualService {ns}/{svc}", custom.create_namespaced_custom_object, *args, body)
                return
            if current.get("spec") == spec:
                return
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": spec}
            self._kube.call(
                f"set VirtualService {ns}/{svc} weights to {100 - weight}/{weight}",
                custom.patch_namespaced_custom_object, *args, svc, patch, _content_type=MERGE_PATCH,
            )

        with_conflict_retry(step, sleep=self._sleep)

    def _refuse_if_routed(self, placement: Placement) -> None:
        """``PermanentError`` when the canary still receives traffic (route to 0 first)."""
        ns, svc = placement.namespace, placement.service
        found = ""
        if self._uses_istio():
            vs = self._kube.get(
                f"read VirtualService {ns}/{svc}", self._kube.custom.get_namespaced_custom_object,
                ISTIO_GROUP, self._istio_version, ns, "virtualservices", svc,
            )
            for http in ((vs or {}).get("spec") or {}).get("http") or []:
                for dest in http.get("route") or []:
                    if (dest.get("destination") or {}).get("host") == f"{svc}-canary" and dest.get("weight", 0):
                        found = f"VirtualService {svc} sends it {dest['weight']} %"
        else:
            stage = self._kube.get(f"read Service {ns}/{svc}", self._kube.core.read_namespaced_service, svc, ns)
            if ((stage or {}).get("spec") or {}).get("selector", {}).get(SLOT_LABEL) == Slot.CANARY.value:
                found = f"Service {svc} selects it"
        if found:
            raise PermanentError(f"scale the canary of {svc} in {ns} to zero: it still receives traffic ({found}); route 0 % to it first")


# --- reading Deployment status ------------------------------------------------------------------


def _replicas(deployment: Obj) -> int:
    value = (deployment.get("spec") or {}).get("replicas", 1)
    return int(value) if value is not None else 1


def _image(deployment: Obj) -> str | None:
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return containers[0].get("image") if containers else None


def _ports(spec: Obj) -> list[tuple[Any, Any]]:
    return sorted((p.get("port"), p.get("targetPort")) for p in spec.get("ports") or [])


def _rollout(deployment: Obj) -> tuple[str, str]:
    """(``done`` | ``failed`` | ``waiting``, what the status says), as ``kubectl rollout status``."""
    status = deployment.get("status") or {}
    generation = int(deployment["metadata"].get("generation", 0) or 0)
    observed = int(status.get("observedGeneration", 0) or 0)
    wanted = _replicas(deployment)
    updated = int(status.get("updatedReplicas", 0) or 0)
    available = int(status.get("availableReplicas", 0) or 0)
    total = int(status.get("replicas", 0) or 0)
    for kind, bad in (("Progressing", "False"), ("ReplicaFailure", "True")):
        cond = condition(deployment, kind)
        if cond and cond.get("status") == bad and observed >= generation:
            return "failed", f"{kind}={bad}: {cond.get('reason', '')}: {cond.get('message', '')}".rstrip(": ")
    if observed < generation:
        return "waiting", f"the controller has not seen generation {generation} yet (observed {observed})"
    text = f"{updated}/{wanted} updated, {available}/{wanted} available"
    if updated >= wanted and available >= wanted and total <= wanted:
        return "done", text
    if total > updated:
        text += f", {total - updated} old replicas still running"
    return "waiting", text
