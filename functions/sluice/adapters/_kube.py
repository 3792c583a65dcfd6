"""Shared by the ``kubernetes`` and ``knative`` backends (and the Job test-unit launcher): plain-dict
calls through the official client, its exceptions turned into Sluice's, and a bounded poll.

Objects go in and come out as JSON dicts (camelCase, as ``kubectl get -o json`` shows them), so
both backends read Deployments, Services and custom resources the same way. Every call has a
request timeout. Error mapping (no ``kubernetes`` or ``urllib3`` exception leaves this module):

- 404 → ``NotFoundError`` (``get`` answers ``None`` instead)
- 409 → ``ConflictError`` (callers re-read and retry)
- 401, 403 → ``ConfigurationError`` (the ServiceAccount lacks a right: see ``knative/rbac.yaml``)
- 400, 422 and other 4xx → ``PermanentError`` (the API server refuses the object)
- 429, 5xx, no answer → ``RetryableError``

Before any call the backends check the names of every object they would make for a placement
(``check_placement``: namespace ``<project>-<stage>``, Services ``<svc>-primary``/``-canary``,
Knative tag hosts), so a name the API server would refuse is a ``ValidationError`` naming the
limit, and nothing is left half made.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sluice.adapters._kubeclient import api_client, client_errors, message_of, status_of
from sluice.core.validation import cluster_name_problems, dns_label_problem, image_problem
from sluice.core.workload import digest
from sluice.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermanentError,
    RetryableError,
    SluiceError,
    ValidationError,
)
from sluice.ports.backend import Placement

Obj = dict[str, Any]
T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
#: Labels every object the backends create carries.
MANAGED_BY = {"app.kubernetes.io/managed-by": "sluice"}
#: Attempts of a read-modify-write that loses compare-and-swap races.
CONFLICT_ATTEMPTS = 4
#: First pause before retrying a lost compare-and-swap (doubles each attempt, jittered).
CONFLICT_BACKOFF_S = 0.05


class Kube:
    """The typed client APIs over one ``ApiClient``; every call returns a JSON dict."""

    def __init__(self, api: Any, request_timeout: float = 10.0) -> None:
        from kubernetes import client

        api = api_client(api, "deployment backend")
        self.api_client = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.apis = client.ApisApi(api)
        self.timeout = request_timeout
        self._errors = client_errors()

    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        """``method(*args, **kwargs)`` as a dict; errors mapped as the module says."""
        if "_content_type" in kwargs and kwargs["_content_type"] is None:
            del kwargs["_content_type"]
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            raw = response.data
        except self._errors as err:
            raise api_error(err, what) from err
        try:
            value = json.loads(raw or b"{}")
        except ValueError as err:
            raise RetryableError(f"{what}: the API server answered something that is not JSON: {raw[:200]!r}") from err
        if not isinstance(value, dict):
            raise RetryableError(f"{what}: expected a JSON object from the API server, found {type(value).__name__}")
        return value

    def rest(self, what: str, method: str, path: str, body: Obj | None = None, content_type: str | None = None) -> Obj:
        """One request to ``path`` (``/api/v1/...``, ``/apis/<group>/<version>/...``) as a dict,
        for kinds the typed APIs are not used for (the user's extra objects)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        api = self.api_client

        def send(*, _preload_content: bool, _request_timeout: float) -> Any:
            request = api.param_serialize(method=method, resource_path=path, header_params=headers, body=body,
                                          auth_settings=["BearerToken"])
            response = api.call_api(*request, _request_timeout=_request_timeout)
            if not 200 <= response.status <= 299:
                response.read()
                from kubernetes.client import ApiException

                raise ApiException.from_response(http_resp=response, body=None, data=None)
            response.read()
            return response

        return self.call(what, send)

    def get(self, what: str, method: Callable[..., Any], *args: Any) -> Obj | None:
        """Like ``call`` for a read, but ``None`` when the object does not exist."""
        try:
            return self.call(what, method, *args)
        except NotFoundError:
            return None

    def api_group_version(self, group: str) -> str | None:
        """The preferred version of API ``group`` (e.g. ``v1beta1``), ``None`` when not served."""
        doc = self.get(f"discover API group {group}", self.apis.get_api_versions)
        for entry in (doc or {}).get("groups") or []:
            if entry.get("name") == group:
                preferred = (entry.get("preferredVersion") or {}).get("version")
                versions = [v.get("version") for v in entry.get("versions") or []]
                return str(preferred or (versions[0] if versions else "")) or None
        return None


def api_error(err: Exception, what: str) -> SluiceError:
    """The Sluice error for a client exception raised while doing ``what``."""
    status = status_of(err)
    if status is None:
        return RetryableError(f"{what}: the Kubernetes API could not be reached: {err}")
    message = message_of(err)
    if status == 404:
        return NotFoundError(f"{what}: not found ({message})")
    if status == 409:
        return ConflictError(what, None, message)
    if status in (401, 403):
        return ConfigurationError(
            f"{what}: the API server refused ({status} {message}); the function's ServiceAccount "
            "needs this right (see knative/rbac.yaml and the RoleBindings of the project's namespaces)"
        )
    if status == 429 or status >= 500:
        return RetryableError(f"{what}: the API server answered {status} ({message})")
    return PermanentError(f"{what}: the API server refused it with {status} ({message})")


def with_conflict_retry(
    step: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run a read-modify-write ``step`` again (it re-reads) while it loses a race (409), with a
    jittered exponential backoff between attempts (50, 100, 200 ms … × 0.5–1.5) so writers racing
    for one object spread out instead of colliding again."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except ConflictError as err:
            if attempt == attempts:
                raise RetryableError(f"{err.name}: still changed underneath after {attempts} attempts ({err.found})") from err
            sleep(CONFLICT_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


class Deadline:
    """A monotonic deadline for a wait, and the sleep between polls."""

    def __init__(self, timeout_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._end = time.monotonic() + max(0.0, timeout_s)
        self._sleep = sleep

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self._end

    def pause(self) -> None:
        """Sleep one poll interval (never past the deadline by more than that)."""
        self._sleep(max(0.0, min(self.poll_s, self._end - time.monotonic())))


def check_placement(placement: Placement) -> Placement:
    """``placement`` if every object made for it gets a name the API server accepts, else
    ``ValidationError`` naming each limit (checked before any call, so nothing half-made stays)."""
    problems = [
        p
        for p in (
            dns_label_problem("project", placement.project),
            dns_label_problem("stage", placement.stage),
            dns_label_problem("service", placement.service),
        )
        if p
    ]
    if not problems:
        problems = cluster_name_problems(placement.project, [placement.stage], [placement.service])
    if problems:
        raise ValidationError(f"{placement.service} in {placement.project}-{placement.stage}", problems)
    return placement


def placement_labels(placement: Placement) -> dict[str, str]:
    """The labels of every object made for ``placement``: its service, Sluice, project and stage."""
    return {
        "app.kubernetes.io/name": placement.service,
        **MANAGED_BY,
        "sluice.dev/project": placement.project,
        "sluice.dev/stage": placement.stage,
    }


#: Where the user's extra objects live: (apiVersion, kind) → the API path prefix and plural.
EXTRA_PATHS: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims"),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("apps/v1", "StatefulSet"): ("/apis/apps/v1", "statefulsets"),
}
APPLIED_ANNOTATION = "sluice.dev/applied"


def apply_extras(kube: Kube, placement: Placement, objects: tuple[Obj, ...] | list[Obj], source: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Create or update the user's other objects (a database, ConfigMaps) in the stage's namespace,
    once per content: each carries the digest of what was applied (annotation
    ``sluice.dev/applied``), and an object whose digest matches is left alone, so a redelivered
    deploy writes nothing. Updates are merge patches carrying the read ``resourceVersion``."""
    ns = placement.namespace
    for obj in objects:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        if key not in EXTRA_PATHS:
            raise PermanentError(f"{source}: {key[1]} ({key[0]}) is not a kind Sluice applies")
        prefix, plural = EXTRA_PATHS[key]
        meta = dict(obj.get("metadata") or {})
        name = str(meta.get("name", ""))
        wanted = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
        stamp = digest({"metadata": meta, **wanted})
        labels = {**(meta.get("labels") or {}), **MANAGED_BY, "sluice.dev/project": placement.project,
                  "sluice.dev/stage": placement.stage}
        annotations = {**(meta.get("annotations") or {}), APPLIED_ANNOTATION: stamp}
        collection = f"{prefix}/namespaces/{ns}/{plural}"
        what = f"{key[1]} {ns}/{name} (from {source})"

        def step(collection: str = collection, name: str = name, what: str = what, wanted: Obj = wanted,
                 labels: dict[str, Any] = labels, annotations: dict[str, Any] = annotations, stamp: str = stamp,
                 key: tuple[str, str] = key) -> None:
            current = _get_rest(kube, f"read {what}", f"{collection}/{name}")
            if current is None:
                body = {"apiVersion": key[0], "kind": key[1],
                        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations}, **wanted}
                kube.rest(f"create {what}", "POST", collection, body)
                return
            if ((current.get("metadata") or {}).get("annotations") or {}).get(APPLIED_ANNOTATION) == stamp:
                return
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"], "labels": labels,
                                  "annotations": annotations}, **wanted}
            kube.rest(f"update {what}", "PATCH", f"{collection}/{name}", patch, MERGE_PATCH)

        with_conflict_retry(step, sleep=sleep)


def _get_rest(kube: Kube, what: str, path: str) -> Obj | None:
    try:
        return kube.rest(what, "GET", path)
    except NotFoundError:
        return None


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of type ``kind``, or ``None``."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def check_image(image: object, where: str) -> str:
    """``image`` if it is an OCI image reference (the rule events are checked with), else ``PermanentError``."""
    if not isinstance(image, str) or image_problem("image", image):
        raise PermanentError(f"{where}: expected an image reference like repo/name:tag, found {image!r}")
    return image


def check_weight(weight: object) -> int:
    """``weight`` if it is a whole number 0–100, else ``ValidationError``."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise ValidationError("canary_weight", [f"expected a whole number from 0 to 100, found {weight!r}"])
    return weight
