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
- without Istio: the ``<svc>`` Service's selector points at one slot (blue/green switch): the
  canary at weight 100, the primary at weight 0. A partial weight (1–99) is refused with a
  ``PermanentError`` (it needs a weighted router) and changes nothing: a Service cannot split
  traffic by weight, and pointing it at whichever slot "mostly" should get the traffic would
  send 0 % or 100 % while the ledger says 10 %. (``create project`` refuses canary stages here.)

**The user's workload** (``sluice onboard service --chart/--manifests``; the composition root
passes ``workloads``, which reads what onboarding stored for the stage): the slot's Deployment is
derived from the user's Deployment by ``core.workload.derive_deployment`` — the pod template kept
whole (env, probes, resources, volumes, init containers, sidecars), only the name, labels,
selector and the image of the service's container changed (``progressDeadlineSeconds`` and the
rolling-update strategy are set only when the user's Deployment has none) — and each Service
from the user's Service (its ports and type; the slot Services are ``ClusterIP`` without node
ports). The chart's other objects (a database, ConfigMaps, ...) are applied once per stage
before the slot's Deployment, each left alone while its content is unchanged
(``_kube.apply_extras``). A changed workload rolls out again even for the same image (the pods
carry its digest). Without a workload, the generated Deployment below is used.

``deploy`` creates or patches the slot's Deployment (rolling update, ``maxUnavailable: 0``, so
replacing the image never drops a request) and waits, polling, until the rollout is complete
(``observedGeneration``, ``updatedReplicas``, ``availableReplicas``) or has failed: Deployment
condition ``Progressing=False`` (``ProgressDeadlineExceeded``) or ``ReplicaFailure``, or a pod
of the new image waiting with ``ErrImagePull``, ``ImagePullBackOff``, ``CrashLoopBackOff`` and
the like — each a ``PermanentError`` naming the reason and the message.

Verbs used (``knative/rbac.yaml``, ClusterRole ``sluice-deployer``): deployments get, create,
patch; services get, create, patch; pods list; virtualservices get, create, patch; for a user's
extra objects configmaps, persistentvolumeclaims, serviceaccounts and statefulsets get, create,
patch.
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
    apply_extras,
    check_image,
    check_placement,
    check_weight,
    condition,
    placement_labels,
    with_conflict_retry,
)
from sluice.core.workload import (
    UserWorkload,
    Workload,
    derive_deployment,
    derive_service,
    service_container,
    split_workload,
)
from sluice.errors import NotFoundError, PermanentError, ValidationError
from sluice.ports.backend import Placement, Slot, WorkloadSource

SLOT_LABEL = "sluice.dev/slot"
IMAGE_ANNOTATION = "sluice.dev/image"
WORKLOAD_ANNOTATION = "sluice.dev/workload"
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
    ``workloads``: the user's workload of a placement (``None``: the generated Deployment).
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
        workloads: WorkloadSource | None = None,
    ) -> None:
        self._kube = Kube(api, request_timeout)
        self._workloads = workloads
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
        user = self._user_workload(placement)
        if user is not None:
            apply_extras(self._kube, placement, tuple(dict(o) for o in user[1].extras), user[0].source, self._sleep)
        self._ensure_deployment(placement, slot, name, image, timeout_s, user)
        service = name if slot is not Slot.DIRECT else placement.service
        self._ensure_service(placement.namespace, service, self._selector(placement.service, slot), placement, user)
        self._wait_rollout(placement.namespace, name, image, deadline, where)
        return self._url(placement.namespace, service, user)

    def route(self, placement: Placement, canary_weight: int) -> str:
        """Split the stage's traffic: VirtualService weights with Istio, else switch ``<svc>`` (0 or 100 only)."""
        weight = check_weight(canary_weight)
        check_placement(placement)
        ns, svc = placement.namespace, placement.service
        apps = self._kube.apps
        user = self._user_workload(placement)
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
            self._ensure_service(ns, svc, self._selector(svc, Slot.DIRECT), placement, user)
            return self._url(ns, svc, user)
        if 0 < weight < 100 and not self._uses_istio():
            raise PermanentError(
                f"route {weight} % of {svc} in {ns} to the canary: a partial weight needs a weighted router "
                f"(Istio's {ISTIO_GROUP} API is not served by this cluster); without one the kubernetes backend "
                "switches the stage's Service between the slots, so the weight must be 0 or 100"
            )
        if weight > 0:
            canary = self._kube.get(f"read Deployment {ns}/{svc}-canary", apps.read_namespaced_deployment, f"{svc}-canary", ns)
            if canary is None or _replicas(canary) == 0:
                raise PermanentError(
                    f"route {weight} % of {svc} in {ns} to the canary: expected a running Deployment {svc}-canary, "
                    f"found {'none' if canary is None else 'it scaled to zero'}"
                )
        if self._uses_istio():
            self._ensure_service(ns, svc, self._selector(svc, Slot.PRIMARY), placement, user)
            self._ensure_virtual_service(placement, weight, user)
        else:
            slot = Slot.CANARY if weight == 100 else Slot.PRIMARY
            self._ensure_service(ns, svc, self._selector(svc, slot), placement, user)
        return self._url(ns, svc, user)

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

    def _service_port(self, user: tuple[UserWorkload, Workload] | None) -> int:
        """The port of the stage's address: the user's Service's first port, else ``service_port``."""
        if user is not None and user[1].service is not None:
            ports = (user[1].service.get("spec") or {}).get("ports") or []
            if ports and isinstance(ports[0], dict) and isinstance(ports[0].get("port"), int):
                return int(ports[0]["port"])
        return self.service_port

    def _url(self, namespace: str, service: str, user: tuple[UserWorkload, Workload] | None = None) -> str:
        number = self._service_port(user)
        port = "" if number == 80 else f":{number}"
        return f"http://{service}.{namespace}.{self.cluster_domain}{port}"

    def _user_workload(self, placement: Placement) -> tuple[UserWorkload, Workload] | None:
        """The user's workload of the placement, split (``None`` without one); a stored workload
        that cannot be used any more is a ``PermanentError`` naming where it came from."""
        if self._workloads is None:
            return None
        stored = self._workloads(placement)
        if stored is None:
            return None
        try:
            workload = split_workload(list(stored.objects), placement.service, stored.source)
        except ValidationError as err:
            raise PermanentError(f"{placement}: the workload from {stored.source} cannot be used: {err}") from err
        if workload.service is None:
            raise PermanentError(f"{placement}: the workload from {stored.source} has no Service of {placement.service}")
        return stored, workload

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

    def _desired_deployment(self, placement: Placement, slot: Slot, name: str, image: str, timeout_s: float,
                            user: tuple[UserWorkload, Workload] | None) -> Obj:
        """The slot's Deployment: derived from the user's, else generated."""
        ns = placement.namespace
        # two thirds of our wait: the controller's own verdict
        # (ProgressDeadlineExceeded) arrives before our timeout and names the reason
        deadline_s = max(10, math.ceil(timeout_s * 2 / 3))
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        if user is None:
            return {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": self._labels(placement, slot)},
                "spec": {
                    "replicas": self.replicas,
                    "selector": {"matchLabels": self._selector(placement.service, slot)},
                    "progressDeadlineSeconds": deadline_s,
                    "strategy": strategy,
                    "template": self._template(placement, slot, image),
                },
            }
        stored, workload = user
        try:
            body = derive_deployment(
                workload.deployment, service=placement.service, name=name, image=image,
                labels=self._labels(placement, slot), selector=self._selector(placement.service, slot),
                annotations={IMAGE_ANNOTATION: image, WORKLOAD_ANNOTATION: stored.digest}, source=stored.source,
            )
        except ValidationError as err:
            raise PermanentError(f"{placement}: the workload from {stored.source} cannot be used: {err}") from err
        body["metadata"]["namespace"] = ns
        spec = body["spec"]
        if spec.get("replicas") is None:
            spec["replicas"] = self.replicas
        spec.setdefault("progressDeadlineSeconds", deadline_s)
        spec.setdefault("strategy", strategy)
        return body

    def _ensure_deployment(self, placement: Placement, slot: Slot, name: str, image: str, timeout_s: float,
                           user: tuple[UserWorkload, Workload] | None = None) -> None:
        ns, apps = placement.namespace, self._kube.apps
        body = self._desired_deployment(placement, slot, name, image, timeout_s, user)
        template, replicas = body["spec"]["template"], int(body["spec"]["replicas"])
        wanted_digest = user[0].digest if user is not None else None

        def step() -> None:
            current = self._kube.get(f"read Deployment {ns}/{name}", apps.read_namespaced_deployment, name, ns)
            if current is None:
                # 409 AlreadyExists (created meanwhile by a duplicate delivery): the retry patches it
                self._kube.call(f"create Deployment {ns}/{name}", apps.create_namespaced_deployment, ns, body)
                return
            if (_image(current, placement.service) == image and _replicas(current) == replicas
                    and _pod_annotation(current, WORKLOAD_ANNOTATION) == wanted_digest):
                return
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": {"replicas": replicas, "template": template},
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

    def _desired_service(self, ns: str, name: str, selector: dict[str, str], placement: Placement,
                         user: tuple[UserWorkload, Workload] | None) -> Obj:
        """Service ``name``: from the user's Service (ports and type kept; the slot Services are
        ClusterIP without node ports), else port ``service_port`` → the container's ``http``."""
        if user is None or user[1].service is None:
            ports = [{"name": "http", "port": self.service_port, "targetPort": "http", "protocol": "TCP"}]
            return {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": ns, "labels": self._labels(placement)},
                    "spec": {"selector": selector, "ports": ports}}
        body = derive_service(user[1].service, name=name, labels=self._labels(placement), selector=selector,
                              source=user[0].source)
        body["metadata"]["namespace"] = ns
        if name != placement.service:  # a slot's own Service: cluster-internal
            spec = body["spec"]
            for key in ("type", "externalTrafficPolicy", "loadBalancerIP", "loadBalancerSourceRanges", "externalIPs",
                        "healthCheckNodePort", "loadBalancerClass", "allocateLoadBalancerNodePorts"):
                spec.pop(key, None)
            spec["ports"] = [{k: v for k, v in p.items() if k != "nodePort"} for p in spec.get("ports") or []]
        return body

    def _ensure_service(self, ns: str, name: str, selector: dict[str, str], placement: Placement,
                        user: tuple[UserWorkload, Workload] | None = None) -> None:
        core = self._kube.core
        body = self._desired_service(ns, name, selector, placement, user)
        ports = body["spec"]["ports"]

        def step() -> None:
            current = self._kube.get(f"read Service {ns}/{name}", core.read_namespaced_service, name, ns)
            if current is None:
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

    def _virtual_service_spec(self, ns: str, svc: str, weight: int, port: int) -> Obj:
        return {
            "hosts": [svc, f"{svc}.{ns}.{self.cluster_domain}"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": f"{svc}-primary", "port": {"number": port}}, "weight": 100 - weight},
                        {"destination": {"host": f"{svc}-canary", "port": {"number": port}}, "weight": weight},
                    ]
                }
            ],
        }

    def _ensure_virtual_service(self, placement: Placement, weight: int, user: tuple[UserWorkload, Workload] | None = None) -> None:
        ns, svc = placement.namespace, placement.service
        custom, version = self._kube.custom, self._istio_version
        spec = self._virtual_service_spec(ns, svc, weight, self._service_port(user))
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


def _image(deployment: Obj, service: str) -> str | None:
    """The image of the service's container (named so, else the only one, else the first)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        return None
    index = service_container(containers, service)
    return containers[max(index, 0)].get("image")


def _pod_annotation(deployment: Obj, key: str) -> str | None:
    meta = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (meta.get("annotations") or {}).get(key)


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
