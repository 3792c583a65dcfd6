"""The test plays Knative Serving's controller over the real Serving CRDs (no Knative is installed).

``ServingController`` reconciles the Knative Services of one namespace in a background thread,
in the steps the real reconcilers take, each step one write the client can observe:

1. a template change (new ``generation``): the Service controller has seen it but the
   Configuration has not made the revision yet — ``observedGeneration = generation``,
   ``ConfigurationsReady=Unknown`` reason ``OutOfDate``, while ``latestCreatedRevisionName``
   still names the previous revision (the intermediate state Knative really shows);
2. the revision ``<svc>-0000<n>`` is created (labels ``serving.knative.dev/service`` and
   ``configurationGeneration``) and named in ``latestCreatedRevisionName``;
3. the revision becomes ``Ready`` (or ``Ready=False`` when ``fails(image, attempt)`` says so);
4. the route: ``status.traffic`` resolves ``spec.traffic`` (tags get URLs), ``RoutesReady``.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from tests.support.kube.cluster import Cluster

GROUP, VERSION = "serving.knative.dev", "v1"
DOMAIN = "example.test"


def _cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    out = {"type": kind, "status": status, "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


class ServingController:
    """Reconciles Knative Services in ``namespace`` until stopped (a context manager)."""

    def __init__(
        self, cluster: Cluster, namespace: str, fails: Callable[[str, int], bool] | None = None, step_s: float = 0.3
    ) -> None:
        self.api = client.CustomObjectsApi(cluster.api_client())
        self.ns = namespace
        self.fails = fails or (lambda image, attempt: False)
        self.step_s = step_s
        self.seen_out_of_date: list[int] = []  # generations shown in the OutOfDate state
        self.attempts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serving-{namespace}", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> ServingController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self.errors, f"the test's Serving controller failed: {self.errors[0]!r}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for svc in self.api.list_namespaced_custom_object(GROUP, VERSION, self.ns, "services")["items"]:
                    self._reconcile(svc)
            except client.ApiException as err:
                if err.status != 409:  # lost a race with the backend: next round
                    self.errors.append(err)
                    return
            except BaseException as err:
                self.errors.append(err)
                return
            self._stop.wait(self.step_s)

    # --- one step per round, like the real reconcilers ----------------------------------------

    def _status(self, svc: dict[str, Any], status: dict[str, Any]) -> None:
        name = svc["metadata"]["name"]
        body = {"metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]}, "status": status}
        self.api.patch_namespaced_custom_object_status(GROUP, VERSION, self.ns, "services", name, body)

    def _revisions(self, name: str) -> list[dict[str, Any]]:
        items = self.api.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "revisions", label_selector=f"serving.knative.dev/service={name}"
        )["items"]
        return sorted(items, key=lambda r: int(r["metadata"]["labels"]["serving.knative.dev/configurationGeneration"]))

    def _reconcile(self, svc: dict[str, Any]) -> None:
        name, generation = svc["metadata"]["name"], svc["metadata"]["generation"]
        status = copy.deepcopy(svc.get("status") or {})
        template = svc["spec"]["template"]
        revisions = self._revisions(name)
        latest = revisions[-1] if revisions else None
        if latest is None or latest["metadata"]["annotations"].get("test/template") != _key(template):
            if status.get("observedGeneration") != generation:  # step 1: OutOfDate
                status["observedGeneration"] = generation
                status["conditions"] = [
                    _cond("ConfigurationsReady", "Unknown", "OutOfDate",
                          "The Configuration is still working to reflect the latest desired specification."),
                    _cond("Ready", "Unknown", "OutOfDate"),
                    _cond("RoutesReady", "Unknown", "OutOfDate"),
                ]
                self.seen_out_of_date.append(generation)
                self._status(svc, status)
                return
            number = len(revisions) + 1  # step 2: the Configuration makes the revision
            revision_name = (template.get("metadata") or {}).get("name") or f"{name}-{number:05d}"
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Revision",
                "metadata": {
                    "name": revision_name,
                    "namespace": self.ns,
                    "labels": {"serving.knative.dev/service": name, "serving.knative.dev/configurationGeneration": str(number)},
                    # as Knative: the revision carries the template's annotations
                    "annotations": {**((template.get("metadata") or {}).get("annotations") or {}), "test/template": _key(template)},
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            self.api.create_namespaced_custom_object(GROUP, VERSION, self.ns, "revisions", body)
            status["latestCreatedRevisionName"] = revision_name
            self._status(svc, status)
            return
        ready = {c["type"]: c for c in (latest.get("status") or {}).get("conditions") or []}.get("Ready")
        revision_name = latest["metadata"]["name"]
        if ready is None:  # step 3: the revision starts (or fails)
            image = latest["spec"]["containers"][0]["image"]
            attempt = self.attempts[image] = self.attempts.get(image, 0) + 1
            condition = (
                _cond("Ready", "False", "ContainerMissing", f"Unable to fetch image {image!r}")
                if self.fails(image, attempt)
                else _cond("Ready", "True")
            )
            self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.ns, "revisions", revision_name, {"status": {"conditions": [condition], "observedGeneration": 1}}
            )
            return
        wanted = self._route(svc, status, revision_name if ready["status"] == "True" else status.get("latestReadyRevisionName"))
        if wanted != status:
            self._status(svc, wanted)

    def _route(self, svc: dict[str, Any], status: dict[str, Any], latest_ready: str | None) -> dict[str, Any]:
        """Step 4: the route resolves spec.traffic; every condition as the final state shows it."""
        name, ns = svc["metadata"]["name"], self.ns
        out = copy.deepcopy(status)
        out["observedGeneration"] = svc["metadata"]["generation"]
        if latest_ready:
            out["latestReadyRevisionName"] = latest_ready
        traffic = []
        for entry in svc["spec"].get("traffic") or [{"latestRevision": True, "percent": 100}]:
            resolved = {k: v for k, v in entry.items() if k != "latestRevision"}
            if entry.get("latestRevision"):
                resolved["revisionName"] = latest_ready
                resolved["latestRevision"] = True
            else:
                resolved["latestRevision"] = False
            if entry.get("tag"):
                resolved["url"] = f"http://{entry['tag']}-{name}.{ns}.{DOMAIN}"
            traffic.append(resolved)
        out["traffic"] = traffic
        out["url"] = f"http://{name}.{ns}.{DOMAIN}"
        out["address"] = {"url": f"http://{name}.{ns}.svc.cluster.local"}
        revision_failed = latest_ready != out.get("latestCreatedRevisionName")
        out["conditions"] = [
            _cond("ConfigurationsReady", "False" if revision_failed else "True", "RevisionFailed" if revision_failed else ""),
            _cond("RoutesReady", "True"),
            _cond("Ready", "False" if revision_failed else "True"),
        ]
        # keep lastTransitionTime stable when nothing else changed, so the loop settles
        if [(c["type"], c["status"]) for c in status.get("conditions") or []] == [(c["type"], c["status"]) for c in out["conditions"]]:
            out["conditions"] = status["conditions"]
        return out


def _key(template: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]
