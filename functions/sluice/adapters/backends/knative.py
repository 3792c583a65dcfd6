"""The ``knative`` deployment backend: the service under delivery is a Knative Service.

For service ``<svc>`` of a stage, Knative Service ``<svc>`` in ``<project>-<stage>``. Each image
runs as a Revision; ``spec.traffic`` names revisions explicitly (never ``latestRevision``, once
the first revision is ready), so changing the template never moves traffic by itself:

- ``deploy(primary)``: the revision running the image (created by updating the template when
  there is none) gets the ``primary`` tag; its percent stays (``route`` moves it). Promote is
  ``deploy(primary, candidate)`` → ``route(0)`` → ``scale_to_zero(canary)``: 100 % and the
  ``primary`` tag end on the candidate's revision.
- ``deploy(canary)``: the candidate's revision gets the ``canary`` tag with 0 %; the returned
  URL is the tag's cluster-local address ``http://canary-<svc>.<ns>.svc.cluster.local``, which
  the test Jobs inside the cluster can resolve (the external ``…<domain>`` one often is not);
  the primary keeps 100 %.
- ``route(w)``: ``w`` % to the ``canary`` target, the rest to ``primary``.
- ``scale_to_zero(canary)``: drops the ``canary`` target (refused while it has traffic); Knative
  scales a revision without traffic to zero by itself. Discard is ``route(0)`` →
  ``scale_to_zero(canary)``: 100 % back on the previous revision. ``scale_to_zero`` of the
  primary is a no-op: the stage keeps its route and Knative scales it to zero when idle.
- ``deploy(direct)``: one target, 100 % on the image's revision (annotation
  ``sluice.dev/strategy: direct``; ``route`` ignores the weight).

Waits: after a template change, until Knative names a revision created since the write that
runs the image — first the Service shows ``observedGeneration`` = ``generation`` with
``ConfigurationsReady=Unknown`` (``OutOfDate``) and the *previous* ``latestCreatedRevisionName``:
that state is waited out, not taken for someone else's change; then the revision until its
``Ready`` condition is ``True`` (``False`` → ``PermanentError`` with its reason and message, e.g.
an image pull error; no verdict within the timeout → ``PermanentError``). A revision of the
image that failed is not waited on again: the next deploy makes a fresh one (annotation
``sluice.dev/retry``). A fixed revision name in the template is removed with an explicit
``null`` (a merge patch keeps what it does not mention). A traffic change is waited on until
the Service has observed it and ``RoutesReady`` is ``True``. Writes carry the read
``resourceVersion`` (compare-and-swap; a lost race is re-read and retried after a jittered
backoff).

**The user's workload** (``sluice onboard service --chart/--manifests`` holding a Knative
Service; the composition root passes ``workloads``): the revision template is the user's
(``core.workload.derive_knative_template``: env, probes, resources, volumes, sidecars and
annotations kept, the image of the service's container replaced, a fixed revision name dropped),
and the Knative Service carries the user's labels and annotations beside Sluice's. The other
objects of the chart (ConfigMaps, a database) are applied once per stage before the revision
(``_kube.apply_extras``). The revision's template carries the workload's digest
(``sluice.dev/workload``), so a changed workload makes a new revision even for the same image,
and a redelivered deploy finds the revision it made. Without a workload, the template is the
current one with the image replaced (or a bare container on first deploy).

Verbs used (ClusterRole ``sluice-deployer``): services.serving.knative.dev get, create, patch;
revisions.serving.knative.dev get, list; for a user's extra objects configmaps, services,
persistentvolumeclaims, serviceaccounts, deployments and statefulsets get, create, patch.
"""

from __future__ import annotations

import copy
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
    KnativeWorkload,
    UserWorkload,
    derive_knative_template,
    service_container,
    split_knative,
)
from sluice.errors import NotFoundError, PermanentError, ValidationError
from sluice.ports.backend import Placement, Slot, WorkloadSource

GROUP, VERSION = "serving.knative.dev", "v1"
STRATEGY_ANNOTATION = "sluice.dev/strategy"
IMAGE_ANNOTATION = "sluice.dev/image"
RETRY_ANNOTATION = "sluice.dev/retry"
WORKLOAD_ANNOTATION = "sluice.dev/workload"
SERVICE_LABEL = "serving.knative.dev/service"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
PRIMARY, CANARY = Slot.PRIMARY.value, Slot.CANARY.value


class KnativeBackend:
    """A ``DeploymentBackend`` over one Knative Service per stage, revisions and traffic tags.

    ``api``: a ``kubernetes.client.ApiClient`` (or ``Configuration``) built by the composition
    root. ``route_timeout_s`` bounds ``route`` and ``scale_to_zero`` (they take no timeout).
    ``workloads``: the user's workload of a placement (``None``: Sluice's own template).
    """

    def __init__(
        self,
        api: Any,
        *,
        container_port: int = 8080,
        poll_s: float = 1.0,
        request_timeout: float = 10.0,
        route_timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        workloads: WorkloadSource | None = None,
    ) -> None:
        self._kube = Kube(api, request_timeout)
        self._workloads = workloads
        self.container_port = container_port
        self.poll_s = poll_s
        self.route_timeout_s = route_timeout_s
        self._sleep = sleep

    # --- the port ------------------------------------------------------------------------------

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        """Tag the revision running ``image`` as the slot (creating it) and wait until ready."""
        slot = Slot(slot)
        check_placement(placement)
        where = f"{placement.service} ({slot.value}) in {placement.namespace}"
        check_image(image, where)
        deadline = Deadline(timeout_s, self.poll_s, self._sleep)
        if slot is Slot.CANARY and self._read_service(placement) is None:
            raise PermanentError(
                f"{where}: expected Knative Service {placement.namespace}/{placement.service} with a primary "
                "revision beside which to run the candidate, found none: deploy the primary first"
            )
        user = self._user_workload(placement)
        if user is not None:
            apply_extras(self._kube, placement, tuple(dict(o) for o in user[1].extras), user[0].source, self._sleep)
        revision = self._revision_for(placement, image, deadline, where, direct=slot is Slot.DIRECT, user=user)

        def retarget(traffic: list[Obj], svc: Obj) -> list[Obj]:
            if slot is Slot.DIRECT:
                return [{"revisionName": revision, "percent": 100}]
            primary, canary = _target(traffic, PRIMARY), _target(traffic, CANARY)
            if slot is Slot.PRIMARY:
                entry = {"tag": PRIMARY, "revisionName": revision, "percent": primary["percent"] if primary else 100}
                if primary is None and canary is not None:
                    entry["percent"] = 100 - canary["percent"]
                return [entry] + ([canary] if canary else [])
            if primary is None:
                raise PermanentError(
                    f"{where}: expected a primary revision (tag {PRIMARY}) beside which to run the candidate, "
                    "found none: deploy the primary first"
                )
            percent = canary["percent"] if canary and canary.get("revisionName") == revision else 0
            return [{**primary, "percent": 100 - percent}, {"tag": CANARY, "revisionName": revision, "percent": percent}]

        svc = self._set_traffic(placement, retarget, deadline, where, direct=slot is Slot.DIRECT)
        if slot is Slot.DIRECT:
            return str((svc.get("status") or {}).get("url") or "")
        return _tag_url(svc, slot.value, where)

    def route(self, placement: Placement, canary_weight: int) -> str:
        """Send ``canary_weight`` % to the ``canary`` target, the rest to ``primary``."""
        weight = check_weight(canary_weight)
        check_placement(placement)
        where = f"route {placement.service} in {placement.namespace}"
        if weight == 0 and self._read_service(placement) is None:
            return ""  # nothing runs (a discard after a failed first deployment): nothing to route, no address yet
        deadline = Deadline(self.route_timeout_s, self.poll_s, self._sleep)

        def split(traffic: list[Obj], svc: Obj) -> list[Obj]:
            if _is_direct(svc):
                return traffic
            primary, canary = _target(traffic, PRIMARY), _target(traffic, CANARY)
            if primary is None:
                raise PermanentError(f"{where}: expected a primary revision (tag {PRIMARY}), found none: deploy first")
            if canary is None:
                if weight > 0:
                    raise PermanentError(f"{where}: {weight} % to the canary, but there is no canary revision (tag {CANARY})")
                return [{**primary, "percent": 100}]
            return [{**primary, "percent": 100 - weight}, {**canary, "percent": weight}]

        svc = self._set_traffic(placement, split, deadline, where)
        return str((svc.get("status") or {}).get("url") or "")

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        """Drop the canary's target (Knative scales it down); primary/direct: no-op (see module)."""
        slot = Slot(slot)
        check_placement(placement)
        if slot is not Slot.CANARY:
            return
        where = f"scale the canary of {placement.service} in {placement.namespace} to zero"
        if self._read_service(placement) is None:
            return
        deadline = Deadline(self.route_timeout_s, self.poll_s, self._sleep)

        def drop(traffic: list[Obj], svc: Obj) -> list[Obj]:
            canary = _target(traffic, CANARY)
            if canary is None:
                return traffic
            if canary.get("percent"):
                raise PermanentError(f"{where}: it still receives {canary['percent']} % of the traffic; route 0 % to it first")
            return [t for t in traffic if t.get("tag") != CANARY]

        self._set_traffic(placement, drop, deadline, where)

    # --- revisions -----------------------------------------------------------------------------

    def _read_service(self, placement: Placement) -> Obj | None:
        ns, name = placement.namespace, placement.service
        return self._kube.get(
            f"read Knative Service {ns}/{name}", self._kube.custom.get_namespaced_custom_object,
            GROUP, VERSION, ns, "services", name,
        )

    def _user_workload(self, placement: Placement) -> tuple[UserWorkload, KnativeWorkload] | None:
        """The user's workload of the placement, split (``None`` without one)."""
        if self._workloads is None:
            return None
        stored = self._workloads(placement)
        if stored is None:
            return None
        try:
            return stored, split_knative(list(stored.objects), placement.service, stored.source)
        except ValidationError as err:
            raise PermanentError(f"{placement}: the workload from {stored.source} cannot be used: {err}") from err

    def _revisions(self, placement: Placement) -> list[Obj]:
        ns, name = placement.namespace, placement.service
        listed = self._kube.call(
            f"list revisions of Knative Service {ns}/{name}", self._kube.custom.list_namespaced_custom_object,
            GROUP, VERSION, ns, "revisions", label_selector=f"{SERVICE_LABEL}={name}",
        )
        items = [r for r in listed.get("items") or [] if isinstance(r, dict)]
        return sorted(items, key=lambda r: int((r["metadata"].get("labels") or {}).get(GENERATION_LABEL, "0") or 0))

    def _revision_for(self, placement: Placement, image: str, deadline: Deadline, where: str, *, direct: bool,
                      user: tuple[UserWorkload, KnativeWorkload] | None = None) -> str:
        """The name of a ready revision running ``image`` (of the current workload); creates one
        (template update) if there is none, or if the newest one for ``image`` failed (it is never
        retried for ever)."""
        ns, name = placement.namespace, placement.service
        custom = self._kube.custom
        revisions = self._revisions(placement)
        known = {r["metadata"]["name"] for r in revisions}
        wanted_digest = user[0].digest if user is not None else None
        existing = [r for r in revisions if _revision_image(r, name) == image
                    and _annotation(r, WORKLOAD_ANNOTATION) == wanted_digest]
        if existing and not _failed(existing[-1]):
            return self._wait_revision(ns, existing[-1]["metadata"]["name"], image, deadline, where)
        retry = len(existing)  # earlier revisions of this image failed: a fresh one, not the same again

        def step() -> int:
            svc = self._read_service(placement)
            if svc is None:
                user_meta = (user[1].service.get("metadata") or {}) if user is not None else {}
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Service",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": {**(user_meta.get("labels") or {}), **placement_labels(placement)},
                        "annotations": {**(user_meta.get("annotations") or {}),
                                        STRATEGY_ANNOTATION: "direct" if direct else "blue_green"},
                    },
                    "spec": {
                        "template": self._template(None, image, retry, user, name),
                        "traffic": [{"latestRevision": True, "percent": 100}],
                    },
                }
                created = self._kube.call(
                    f"create Knative Service {ns}/{name}", custom.create_namespaced_custom_object,
                    GROUP, VERSION, ns, "services", body,
                )
                return int(created["metadata"].get("generation", 1) or 1)
            patch = {
                "metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
                "spec": {"template": self._template(svc, image, retry, user, name)},
            }
            written = self._kube.call(
                f"update the template of Knative Service {ns}/{name} to {image}", custom.patch_namespaced_custom_object,
                GROUP, VERSION, ns, "services", name, patch, _content_type=MERGE_PATCH,
            )
            return int(written["metadata"].get("generation", 0) or 0)

        generation = with_conflict_retry(step, sleep=self._sleep)
        # Knative names the new revision in status.latestCreatedRevisionName — but only after the
        # Configuration made it: first the Service shows observedGeneration = generation with
        # ConfigurationsReady=Unknown (OutOfDate) and the PREVIOUS revision's name. Wait that out.
        while True:
            svc = self._read_service(placement)
            if svc is None:
                raise PermanentError(f"{where}: Knative Service {ns}/{name} disappeared while creating a revision")
            status = svc.get("status") or {}
            current = int(svc["metadata"].get("generation", 0) or 0)
            created = status.get("latestCreatedRevisionName")
            if current > generation and _template_image(svc, name) != image:
                raise PermanentError(
                    f"{where}: the template of Knative Service {ns}/{name} was changed to "
                    f"{_template_image(svc, name)!r} by someone else while {image!r} was being rolled out"
                )
            if created and int(status.get("observedGeneration", 0) or 0) >= generation:
                revision = self._kube.get(
                    f"read Revision {ns}/{created}", custom.get_namespaced_custom_object,
                    GROUP, VERSION, ns, "revisions", str(created),
                )
                if revision is not None and created not in known and _revision_image(revision, name) == image:
                    return self._wait_revision(ns, str(created), image, deadline, where)
                configured = condition(svc, "ConfigurationsReady")
                if configured and configured.get("status") == "False":
                    detail = ": ".join(str(x) for x in (configured.get("reason"), configured.get("message")) if x)
                    raise PermanentError(f"{where}: Knative could not create a revision for {image}: {detail}")
            if deadline.passed:
                raise PermanentError(
                    f"{where}: no revision for {image} was created within {deadline.timeout_s:g} s "
                    f"(latest created: {created or 'none'})"
                )
            deadline.pause()

    def _template(self, svc: Obj | None, image: str, retry: int = 0,
                  user: tuple[UserWorkload, KnativeWorkload] | None = None, service: str = "") -> Obj:
        """The user's template (with a workload), else the current one, with ``image`` in the
        service's container (other settings kept).

        A fixed revision name is removed with an explicit ``null`` (a merge patch keeps what it
        does not mention); ``retry`` > 0 marks the template so Knative makes a fresh revision of an
        image whose earlier revision failed.
        """
        current = copy.deepcopy(((svc or {}).get("spec") or {}).get("template") or {})
        if user is not None:
            template = derive_knative_template(user[1].service, service=service, image=image, source=user[0].source)
            if svc is not None and ((current.get("metadata") or {}).get("name")) is not None:
                template["metadata"]["name"] = None
        else:
            template = current
        template.pop("status", None)
        meta = template.setdefault("metadata", {})
        if meta.get("name") is not None:
            meta["name"] = None  # a fixed revision name would clash with the next image
        elif "name" in meta and user is None:
            meta.pop("name", None)
        annotations = meta.get("annotations") or {}
        annotations[IMAGE_ANNOTATION] = image
        if user is not None:
            annotations[WORKLOAD_ANNOTATION] = user[0].digest
        if retry:
            annotations[RETRY_ANNOTATION] = str(retry)
        elif RETRY_ANNOTATION in annotations:
            annotations[RETRY_ANNOTATION] = None
        meta["annotations"] = annotations
        spec = template.setdefault("spec", {})
        if user is not None:
            return template
        containers = spec.get("containers") or [{"ports": [{"containerPort": self.container_port}]}]
        containers[max(service_container(containers, service), 0)]["image"] = image
        spec["containers"] = containers
        return template

    def _wait_revision(self, ns: str, name: str, image: str, deadline: Deadline, where: str) -> str:
        custom = self._kube.custom
        while True:
            revision = self._kube.get(
                f"read Revision {ns}/{name}", custom.get_namespaced_custom_object, GROUP, VERSION, ns, "revisions", name
            )
            if revision is None:
                raise PermanentError(f"{where}: revision {name} of {image} disappeared")
            service = str(((revision.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL, ""))
            if _revision_image(revision, service) != image:
                raise PermanentError(
                    f"{where}: revision {name} runs {_revision_image(revision, service)!r}, expected {image!r} "
                    "(someone else changed the Knative Service's template meanwhile)"
                )
            ready = condition(revision, "Ready")
            if ready and ready.get("status") == "True":
                return name
            if ready and ready.get("status") == "False":
                detail = ": ".join(str(x) for x in (ready.get("reason"), ready.get("message")) if x)
                raise PermanentError(f"{where}: revision {name} of {image} failed: {detail or 'Ready=False'}")
            if deadline.passed:
                state = f"Ready={ready.get('status')} {ready.get('reason', '')}".strip() if ready else "no Ready condition yet"
                raise PermanentError(f"{where}: revision {name} of {image} not ready within {deadline.timeout_s:g} s ({state})")
            deadline.pause()

    # --- traffic -------------------------------------------------------------------------------

    def _set_traffic(
        self,
        placement: Placement,
        change: Callable[[list[Obj], Obj], list[Obj]],
        deadline: Deadline,
        where: str,
        *,
        direct: bool | None = None,
    ) -> Obj:
        """Apply ``change`` to ``spec.traffic`` (compare-and-swap), then wait for RoutesReady."""
        ns, name = placement.namespace, placement.service
        custom = self._kube.custom

        def step() -> Obj:
            svc = self._read_service(placement)
            if svc is None:
                raise NotFoundError(f"{where}: Knative Service {ns}/{name} does not exist: deploy first")
            traffic = _pinned(svc)
            wanted = [_clean(t) for t in change(copy.deepcopy(traffic), svc)]
            patch: Obj = {"metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]}}
            if direct is not None and _is_direct(svc) != direct:
                patch["metadata"]["annotations"] = {STRATEGY_ANNOTATION: "direct" if direct else "blue_green"}
            elif [_clean(t) for t in (svc.get("spec") or {}).get("traffic") or []] == wanted:
                return svc
            patch["spec"] = {"traffic": wanted}
            return self._kube.call(
                f"set the traffic of Knative Service {ns}/{name}", custom.patch_namespaced_custom_object,
                GROUP, VERSION, ns, "services", name, patch, _content_type=MERGE_PATCH,
            )

        written = with_conflict_retry(step, sleep=self._sleep)
        generation = int(written["metadata"].get("generation", 0) or 0)
        while True:
            svc = self._read_service(placement)
            if svc is None:
                raise PermanentError(f"{where}: Knative Service {ns}/{name} disappeared")
            observed = int((svc.get("status") or {}).get("observedGeneration", 0) or 0)
            routes = condition(svc, "RoutesReady")
            if observed >= generation and routes and routes.get("status") == "True":
                return svc
            if observed >= generation and routes and routes.get("status") == "False":
                detail = ": ".join(str(x) for x in (routes.get("reason"), routes.get("message")) if x)
                raise PermanentError(f"{where}: the route did not become ready: {detail or 'RoutesReady=False'}")
            if deadline.passed:
                state = f"RoutesReady={routes.get('status')}" if routes else f"observed generation {observed} of {generation}"
                raise PermanentError(f"{where}: traffic not switched within {deadline.timeout_s:g} s ({state})")
            deadline.pause()


# --- traffic helpers ----------------------------------------------------------------------------


def _is_direct(svc: Obj) -> bool:
    return ((svc.get("metadata") or {}).get("annotations") or {}).get(STRATEGY_ANNOTATION) == "direct"


def _clean(entry: Obj) -> Obj:
    """A traffic target as written in ``spec`` (no ``url``, ``percent`` as an int)."""
    out = {k: entry[k] for k in ("tag", "revisionName", "latestRevision", "configurationName") if entry.get(k) is not None}
    if out.get("latestRevision") is False:
        del out["latestRevision"]
    out["percent"] = int(entry.get("percent", 0) or 0)
    return out


def _pinned(svc: Obj) -> list[Obj]:
    """``spec.traffic`` with ``latestRevision`` targets resolved to the revision names in status."""
    spec_traffic = (svc.get("spec") or {}).get("traffic") or []
    resolved = {(t.get("tag"), bool(t.get("latestRevision"))): t.get("revisionName") for t in (svc.get("status") or {}).get("traffic") or []}
    latest_ready = (svc.get("status") or {}).get("latestReadyRevisionName")
    out = []
    for entry in spec_traffic:
        entry = _clean(entry)
        if entry.pop("latestRevision", False):
            entry["revisionName"] = resolved.get((entry.get("tag"), True)) or latest_ready
        out.append(entry)
    if out and not _is_direct(svc) and not any(t.get("tag") for t in out):  # first deploy: it is the primary
        out[0]["tag"] = PRIMARY
    return out


def _target(traffic: list[Obj], tag: str) -> Obj | None:
    for entry in traffic:
        if entry.get("tag") == tag:
            return entry
    return None


def _tag_url(svc: Obj, tag: str, where: str) -> str:
    """The tag's cluster-local address (``http://<tag>-<svc>.<ns>.svc.cluster.local``), which the test
    Jobs inside the cluster can reach; the external tag URL only when Knative reports no address."""
    status = svc.get("status") or {}
    address = str((status.get("address") or {}).get("url") or "")
    scheme, sep, host = address.partition("://")
    name = (svc.get("metadata") or {}).get("name")
    if sep and host.startswith(f"{name}."):
        return f"{scheme}://{tag}-{host}"
    for entry in status.get("traffic") or []:
        if entry.get("tag") == tag and entry.get("url"):
            return str(entry["url"])
    raise PermanentError(f"{where}: the Knative Service reports no URL for tag {tag!r} in status.traffic")


def _failed(revision: Obj) -> bool:
    ready = condition(revision, "Ready")
    return bool(ready and ready.get("status") == "False")


def _container_image(containers: list[Any], service: str) -> str | None:
    """The image of the service's container (named so, else the only one, else the first)."""
    if not containers:
        return None
    image = containers[max(service_container(containers, service), 0)].get("image")
    return str(image) if image is not None else None


def _template_image(svc: Obj, service: str) -> str | None:
    return _container_image((((svc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [], service)


def _revision_image(revision: Obj, service: str) -> str | None:
    return _container_image((revision.get("spec") or {}).get("containers") or [], service)


def _annotation(obj: Obj, key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None
