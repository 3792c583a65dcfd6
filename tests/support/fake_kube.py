"""A fake Kubernetes API server at the HTTP level, for tests of everything that talks to a cluster.

It is a real HTTP server on ``127.0.0.1`` (a free port, a daemon thread) that the official
``kubernetes`` client, ``kubectl``-shaped HTTP calls or ``httpx`` reach through a normal
``Configuration(host=fake.url)``. It keeps generic objects in memory and applies the API
server's rules that clients depend on. It is not a cluster: nothing runs, nothing is scheduled;
tests drive status with hooks.

Quick start::

    from tests.support.fake_kube import FakeKube, deployment_rollout

    with FakeKube() as fake:
        api = kubernetes.client.CoreV1Api(fake.api_client())
        api.create_namespaced_config_map("sluice", {"metadata": {"name": "a"}, "data": {"k": "v"}})
        fake.on_read("deployments.apps", deployment_rollout(ready_after_reads=2))
        fake.fail_next(1, 500)                  # the next request gets 500 InternalError
        assert fake.get_object("configmaps", "sluice", "a")["data"] == {"k": "v"}

Resources (``resource`` strings are ``plural`` for the core group, else ``plural.group``):

=====================================  ===================================================
``configmaps``, ``secrets``            core/v1; 422 when the data's values pass 1 MiB (as the real API,
                                       which does not count the keys)
``services``, ``pods``, ``events``     core/v1 (a Service gets a ``spec.clusterIP``)
``namespaces``                         core/v1, cluster-scoped: objects are created only in
                                       namespaces that exist (404 otherwise, as the real API);
                                       ``DEFAULT_NAMESPACES`` exist, ``fake.add_namespace`` adds one
``deployments.apps``,                  apps/v1
``replicasets.apps``
``services.serving.knative.dev``,      serving.knative.dev/v1 (custom resources)
``revisions…``, ``routes…``,
``configurations…``
``brokers.eventing.knative.dev``,      eventing.knative.dev/v1 (custom resources)
``triggers.eventing.knative.dev``
``virtualservices.networking.istio.io``  networking.istio.io/v1beta1 (also v1, v1alpha3)
``destinationrules.networking.istio.io``
=====================================  ===================================================

More with ``fake.register(ResourceType(...))``. Discovery (``/version``, ``/api``, ``/api/v1``,
``/apis``, ``/apis/<group>[/<version>]``) is served, so ``kubernetes.dynamic`` works too.

HTTP behaviour (what the real API server does, in short):

- ``GET`` one object or a list: ``labelSelector`` (``=``, ``==``, ``!=``, ``in``, ``notin``,
  ``key``, ``!key``), ``fieldSelector`` on ``metadata.name``/``metadata.namespace``, ``limit``
  and ``continue``; lists across namespaces at ``/api/v1/<plural>``. ``watch`` is not served
  (400): poll.
- ``POST`` creates: 409 ``AlreadyExists``; ``generateName``; 400 when the body's namespace or kind
  disagrees with the URL; 404 when the namespace does not exist; 422 for a name the real server
  refuses (Services and namespaces: DNS-1123 labels, others: subdomains) and for
  invalid label keys or values (also on updates); a set ``resourceVersion`` is refused (500, as the real storage does);
  ``status`` is dropped for kinds with a status subresource; ``dryRun=All`` stores nothing.
- ``PUT`` replaces: 404 when absent; 409 ``Conflict`` when ``metadata.resourceVersion`` is stale;
  without a version, built-in kinds update unconditionally and custom resources answer 422 (as
  the real API). Writes to the main resource keep the stored ``status``; ``/status`` writes
  change only ``status``. ``metadata.generation`` moves when anything but metadata/status changes.
- ``PATCH``: ``application/merge-patch+json`` and ``application/strategic-merge-patch+json``
  (both applied as an RFC 7386 merge patch: lists are replaced, not merged by key; strategic
  merge on a custom resource is 415, as the real API) and
  ``application/json-patch+json`` (RFC 6902). A ``resourceVersion`` in the patch is a
  precondition (409 when stale). Server-side apply is not served (415).
- ``DELETE``: 404 when absent; ``preconditions.resourceVersion``/``uid`` in the DeleteOptions
  body (409 when stale); deletion is immediate (no finalizers, no garbage collection). The
  answer is a ``Status`` (``status: Success``), for custom resources too, as the real API.
- Errors carry a Kubernetes ``Status`` body (``kind: Status``, ``reason``, ``message``,
  ``details``, ``code``). A request body over 3 MiB gets 413.
- ``resourceVersion`` is one counter for the whole fake, as in etcd.

Test hooks (all thread-safe; objects given to and returned by hooks are plain dicts):

- ``fake.url``, ``fake.configuration()``, ``fake.api_client()``; ``with FakeKube() as fake`` or
  ``start()``/``stop()``.
- ``fake.get_object(resource, ns, name)``, ``fake.list_objects(resource, ns=None)``,
  ``fake.seed(resource, obj)`` (create or overwrite, no checks), ``fake.set_status(resource, ns,
  name, status)``, ``fake.delete_object(resource, ns, name)``: read and change the store
  directly (each write moves the resourceVersion).
- ``fake.on_read(resource, hook)``: ``hook(obj, reads) -> dict | None`` runs on every ``GET`` of
  one object (not of lists), ``reads`` counting the GETs of that object since its generation
  last changed (1 on the first). Hooks run in the order added; the first that returns a dict
  decides (it is stored, with a new resourceVersion if it differs, and served); ``None`` passes. ``deployment_rollout()``
  and ``deployment_failing()`` are ready-made read hooks.
- ``fake.on_write(resource, hook)``: ``hook(fake, obj) -> dict | None`` runs on every create,
  replace and patch of the main resource, before it is stored (a synchronous "controller" or
  admission webhook); a returned dict is what gets stored; raising ``KubeError`` answers that
  error instead. ``knative_serving()`` is a ready-made write hook for Knative Services.
- ``fake.fail_next(times, status=500, method=None, resource=None, name=None, reason=None,
  message=None)``: the next ``times`` matching requests get that error (e.g. 409, 429, 503).
- ``fake.requests``: every request served, as ``Request(method, path, query, resource,
  namespace, name, subresource, code)``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

__all__ = [
    "DEFAULT_NAMESPACES",
    "DEFAULT_RESOURCES",
    "MAX_CONFIGMAP_BYTES",
    "FakeKube",
    "KubeError",
    "ReadHook",
    "Request",
    "ResourceType",
    "WriteHook",
    "deployment_failing",
    "deployment_rollout",
    "knative_serving",
]

Obj = dict[str, Any]
ReadHook = Callable[[Obj, int], "Obj | None"]
WriteHook = Callable[["FakeKube", Obj], "Obj | None"]

#: The real API server refuses ConfigMaps and Secrets whose data pass 1 MiB.
MAX_CONFIGMAP_BYTES = 1024 * 1024
#: The real API server refuses request bodies over 3 MiB.
MAX_REQUEST_BYTES = 3 * 1024 * 1024

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
#: Namespaces a new fake has, as a cluster with Sluice and its example project installed.
DEFAULT_NAMESPACES = ("default", "kube-system", "sluice", "sockshop-dev", "sockshop-staging", "sockshop-production")


@dataclass(frozen=True)
class ResourceType:
    """One kind the fake serves. ``crd`` kinds follow custom-resource rules (see module doc)."""

    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = True
    crd: bool = False

    @property
    def key(self) -> str:
        """``plural`` for the core group, else ``plural.group`` (what hooks take)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        """``apiVersion`` for ``version`` (default: the first, preferred one)."""
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "configmaps", "ConfigMap", status=False),
    ResourceType("", ("v1",), "secrets", "Secret", status=False),
    ResourceType("", ("v1",), "services", "Service"),
    ResourceType("", ("v1",), "pods", "Pod"),
    ResourceType("", ("v1",), "events", "Event", status=False),
    ResourceType("", ("v1",), "namespaces", "Namespace", namespaced=False),
    ResourceType("apps", ("v1",), "deployments", "Deployment"),
    ResourceType("apps", ("v1",), "replicasets", "ReplicaSet"),
    ResourceType("serving.knative.dev", ("v1",), "services", "Service", crd=True),
    ResourceType("serving.knative.dev", ("v1",), "revisions", "Revision", crd=True),
    ResourceType("serving.knative.dev", ("v1",), "routes", "Route", crd=True),
    ResourceType("serving.knative.dev", ("v1",), "configurations", "Configuration", crd=True),
    ResourceType("eventing.knative.dev", ("v1",), "brokers", "Broker", crd=True),
    ResourceType("eventing.knative.dev", ("v1",), "triggers", "Trigger", crd=True),
    ResourceType("networking.istio.io", ("v1beta1", "v1", "v1alpha3"), "virtualservices", "VirtualService", crd=True),
    ResourceType(
        "networking.istio.io", ("v1beta1", "v1", "v1alpha3"), "destinationrules", "DestinationRule", crd=True
    ),
)


class KubeError(Exception):
    """An error answer with a Kubernetes ``Status`` body; write hooks may raise it."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details or {}

    def status(self) -> Obj:
        """The ``Status`` body the real API server would send."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


@dataclass(frozen=True)
class Request:
    """One request the fake served (for assertions)."""

    method: str
    path: str
    query: dict[str, str]
    resource: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    code: int


@dataclass
class _Fault:
    times: int
    code: int
    method: str | None
    resource: str | None
    name: str | None
    reason: str | None
    message: str | None

    def matches(self, method: str, resource: str | None, name: str | None) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method.upper() == method)
            and (self.resource is None or self.resource == resource)
            and (self.name is None or self.name == name)
        )


@dataclass
class _Target:
    rtype: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class _State:
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    reads: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    version: int = 0


class FakeKube:
    """The fake API server. Start it with ``with FakeKube() as fake`` or ``start()``/``stop()``."""

    def __init__(
        self, resources: tuple[ResourceType, ...] = DEFAULT_RESOURCES, namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    ) -> None:
        self._lock = threading.RLock()
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._by_key: dict[str, ResourceType] = {}
        for rtype in resources:
            self.register(rtype)
        self._state = _State()
        self._read_hooks: dict[str, list[ReadHook]] = {}
        self._write_hooks: dict[str, list[WriteHook]] = {}
        self._faults: list[_Fault] = []
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for namespace in namespaces:
            self.add_namespace(namespace)

    def add_namespace(self, name: str) -> None:
        """Create namespace ``name`` (objects can only be created in namespaces that exist)."""
        with self._lock:
            if self._key(self._rtype("namespaces"), None, name) not in self._state.objects:
                self._store(self._rtype("namespaces"), {"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}}, None)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeKube:
        """Listen on 127.0.0.1 (a free port) in a daemon thread."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("FakeKube is not started: use `with FakeKube() as fake` or fake.start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def configuration(self) -> Configuration:
        """A ``kubernetes.client.Configuration`` pointing at the fake (no retries by urllib3)."""
        from kubernetes.client import Configuration

        config = Configuration(host=self.url)
        config.retries = 0
        return config

    def api_client(self) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` over ``configuration()``."""
        from kubernetes.client import ApiClient

        return ApiClient(self.configuration())

    # -- registration and hooks ----------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        """Serve one more kind (every version in ``rtype.versions``)."""
        with self._lock:
            for version in rtype.versions:
                self._types[(rtype.api_version(version), rtype.plural)] = rtype
            self._by_key[rtype.key] = rtype

    def on_read(self, resource: str, hook: ReadHook) -> None:
        """Run ``hook(obj, reads)`` on every GET of one object of ``resource``."""
        with self._lock:
            self._read_hooks.setdefault(self._rtype(resource).key, []).append(hook)

    def on_write(self, resource: str, hook: WriteHook) -> None:
        """Run ``hook(fake, obj)`` on every create/replace/patch of ``resource`` before storing."""
        with self._lock:
            self._write_hooks.setdefault(self._rtype(resource).key, []).append(hook)

    def fail_next(
        self,
        times: int = 1,
        status: int = 500,
        *,
        method: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and a Status body)."""
        if resource is not None:
            resource = self._rtype(resource).key
        with self._lock:
            self._faults.append(_Fault(times, status, method, resource, name, reason, message))

    # -- direct access for tests ---------------------------------------------------------------

    def get_object(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        """A copy of the stored object, or ``None``."""
        rtype = self._rtype(resource)
        with self._lock:
            obj = self._state.objects.get((rtype.key, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """Copies of the stored objects of ``resource`` (in ``namespace``, or all), by name."""
        rtype = self._rtype(resource)
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (key, ns, _), obj in sorted(self._state.objects.items())
                if key == rtype.key and (namespace is None or ns == namespace)
            ]

    def seed(self, resource: str, obj: Obj) -> Obj:
        """Store ``obj`` as it is (create or overwrite, no checks); returns the stored copy."""
        rtype = self._rtype(resource)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if "name" not in meta:
            raise ValueError("seed: obj needs metadata.name")
        if rtype.namespaced:
            meta.setdefault("namespace", "default")
        with self._lock:
            current = self._state.objects.get(self._key(rtype, meta.get("namespace"), meta["name"]))
            return self._store(rtype, obj, current)

    def set_status(self, resource: str, namespace: str | None, name: str, status: Obj) -> Obj:
        """Replace the ``status`` of a stored object; ``LookupError`` when it does not exist."""
        rtype = self._rtype(resource)
        with self._lock:
            current = self._state.objects.get(self._key(rtype, namespace, name))
            if current is None:
                raise LookupError(f"{rtype.key} {namespace}/{name} does not exist in the fake")
            obj = copy.deepcopy(current)
            obj["status"] = copy.deepcopy(status)
            return self._store(rtype, obj, current)

    def delete_object(self, resource: str, namespace: str | None, name: str) -> bool:
        """Remove a stored object; ``False`` when there was none."""
        rtype = self._rtype(resource)
        with self._lock:
            return self._state.objects.pop(self._key(rtype, namespace, name), None) is not None

    # -- the API -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Obj]:
        """Serve one request; returns (status code, JSON body). Used by the HTTP handler."""
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        target: _Target | None = None
        try:
            with self._lock:
                try:
                    discovery = self._discovery(split.path)
                    if discovery is not None:
                        code, answer = 200, discovery
                    else:
                        target = self._target(split.path)
                        self._maybe_fail(method, target)
                        code, answer = self._dispatch(method, target, query, headers, body)
                except KubeError as err:
                    code, answer = err.code, err.status()
                rtype = target.rtype.key if target else None
                self.requests.append(
                    Request(
                        method,
                        split.path,
                        query,
                        rtype,
                        target.namespace if target else None,
                        target.name if target else None,
                        target.subresource if target else None,
                        code,
                    )
                )
        except Exception as err:  # a bug in a hook or in the fake: answer 500 and say so
            code, answer = 500, KubeError(500, f"FakeKube internal error: {type(err).__name__}: {err}").status()
        return code, answer

    # -- internals: routing --------------------------------------------------------------------

    def _rtype(self, resource: str) -> ResourceType:
        rtype = self._by_key.get(resource)
        if rtype is None:
            raise KeyError(f"FakeKube serves no resource {resource!r}; known: {', '.join(sorted(self._by_key))}")
        return rtype

    @staticmethod
    def _key(rtype: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (rtype.key, (namespace or "") if rtype.namespaced else "", name)

    def _discovery(self, path: str) -> Obj | None:
        parts = [p for p in path.split("/") if p]
        if parts == ["version"]:
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fakekube", "platform": "linux/amd64"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["api", "v1"]:
            return self._resource_list("v1")
        groups: dict[str, list[str]] = {}
        for gv, _plural in self._types:
            group, _, version = gv.rpartition("/")
            if group and version not in groups.setdefault(group, []):
                groups[group].append(version)

        def group_doc(name: str) -> Obj:
            versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in groups[name]]
            return {"name": name, "versions": versions, "preferredVersion": versions[0]}

        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_doc(g) for g in sorted(groups)]}
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []):
            return self._resource_list(f"{parts[1]}/{parts[2]}")
        return None

    def _resource_list(self, group_version: str) -> Obj:
        verbs = ["create", "delete", "get", "list", "patch", "update"]
        resources = []
        for (gv, plural), rtype in sorted(self._types.items()):
            if gv != group_version:
                continue
            resources.append(
                {"name": plural, "singularName": rtype.kind.lower(), "namespaced": rtype.namespaced,
                 "kind": rtype.kind, "verbs": verbs}
            )
            if rtype.status:
                resources.append(
                    {"name": f"{plural}/status", "singularName": "", "namespaced": rtype.namespaced,
                     "kind": rtype.kind, "verbs": ["get", "patch", "update"]}
                )
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    def _target(self, path: str) -> _Target:
        parts = [p for p in path.split("/") if p]
        not_found = KubeError(404, f"the server could not find the requested resource ({path})")
        if parts[:1] == ["api"] and len(parts) >= 2:
            group_version, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise not_found
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise not_found
        rtype = self._types.get((group_version, rest[0]))
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise not_found
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and (sub != "status" or not rtype.status):
            raise not_found
        if rtype.namespaced and namespace is None and name is not None:
            raise not_found
        return _Target(rtype, group_version.rpartition("/")[2], namespace, name, sub)

    def _maybe_fail(self, method: str, target: _Target) -> None:
        for fault in self._faults:
            if fault.matches(method, target.rtype.key, target.name):
                fault.times -= 1
                message = fault.message or f"injected failure {fault.code} for {method} {target.rtype.key}"
                raise KubeError(fault.code, message, fault.reason)

    def _dispatch(self, method: str, t: _Target, query: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Obj]:
        if len(body) > MAX_REQUEST_BYTES:
            raise KubeError(413, f"Request entity too large: limit is {MAX_REQUEST_BYTES}")
        if method == "GET" and t.name is None:
            if query.get("watch") in ("1", "true"):
                raise KubeError(400, "FakeKube does not serve watch requests; poll with get or list")
            return 200, self._list(t, query)
        if method == "GET":
            return 200, self._get(t)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if method == "POST" and t.name is None:
            return 201, self._create(t, _body_object(body, content_type), dry_run=query.get("dryRun") == "All")
        if method == "PUT" and t.name is not None:
            return 200, self._replace(t, _body_object(body, content_type), dry_run=query.get("dryRun") == "All")
        if method == "PATCH" and t.name is not None:
            return 200, self._patch(t, content_type, body, dry_run=query.get("dryRun") == "All")
        if method == "DELETE" and t.name is not None and t.subresource is None:
            return 200, self._delete(t, _json_object(body) if body.strip() else {})
        raise KubeError(405, f"method {method} is not allowed on this path")

    # -- internals: verbs ----------------------------------------------------------------------

    def _current(self, t: _Target) -> Obj:
        assert t.name is not None
        obj = self._state.objects.get(self._key(t.rtype, t.namespace, t.name))
        if obj is None:
            raise KubeError(
                404,
                f'{t.rtype.key} "{t.name}" not found',
                details={"name": t.name, "group": t.rtype.group, "kind": t.rtype.plural},
            )
        return obj

    def _served(self, t: _Target, obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = t.rtype.api_version(t.version)
        out["kind"] = t.rtype.kind
        return out

    def _get(self, t: _Target) -> Obj:
        obj = self._current(t)
        hooks = self._read_hooks.get(t.rtype.key, [])
        if hooks:
            key = self._key(t.rtype, t.namespace, t.name or "")
            generation = int(obj["metadata"].get("generation", 0))
            last_generation, reads = self._state.reads.get(key, (generation, 0))
            reads = reads + 1 if last_generation == generation else 1
            self._state.reads[key] = (generation, reads)
            for hook in hooks:  # the first hook that answers decides
                result = hook(copy.deepcopy(obj), reads)
                if result is not None:
                    if result != obj:
                        obj = self._store(t.rtype, result, obj)
                    break
        return self._served(t, obj)

    def _list(self, t: _Target, query: dict[str, str]) -> Obj:
        selector = _parse_selector(query.get("labelSelector", ""))
        fields = _parse_fields(query.get("fieldSelector", ""))
        items = []
        for (key, ns, _), obj in sorted(self._state.objects.items()):
            if key != t.rtype.key or (t.namespace is not None and ns != t.namespace):
                continue
            meta = obj["metadata"]
            if not all(test(meta.get("labels") or {}) for test in selector):
                continue
            if any(str(meta.get(f, "")) != value for f, value in fields.items()):
                continue
            items.append(self._served(t, obj))
        meta_out: Obj = {"resourceVersion": str(self._state.version)}
        start = 0
        if query.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(query["continue"].encode()).decode())
            except ValueError as err:
                raise KubeError(400, f"invalid continue token {query['continue']!r}") from err
        limit = int(query.get("limit") or 0)
        if limit > 0:
            if start + limit < len(items):
                meta_out["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
                meta_out["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        else:
            items = items[start:]
        return {"kind": f"{t.rtype.kind}List", "apiVersion": t.rtype.api_version(t.version), "metadata": meta_out, "items": items}

    def _create(self, t: _Target, body: Obj, *, dry_run: bool) -> Obj:
        if t.subresource is not None:
            raise KubeError(405, "create is not allowed on a subresource")
        self._check_kind(t, body)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise KubeError(400, "metadata: expected an object")
        if t.rtype.namespaced:
            if meta.get("namespace") not in (None, "", t.namespace):
                raise KubeError(400, "the namespace of the provided object does not match the namespace sent on the request")
            if t.namespace is None:
                raise KubeError(405, "create needs a namespaced path: /namespaces/<ns>/...")
            meta["namespace"] = t.namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not name:
            raise self._invalid(t, "", "metadata.name", "Required value: name or generateName is required")
        if t.rtype.namespaced and t.namespace is not None and (
            self._key(self._rtype("namespaces"), None, t.namespace) not in self._state.objects
        ):
            raise KubeError(404, f'namespaces "{t.namespace}" not found', details={"name": t.namespace, "kind": "namespaces"})
        self._check_name(t, name)
        self._check_labels(t, name, meta.get("labels"))
        if meta.get("resourceVersion"):
            raise KubeError(500, "resourceVersion should not be set on objects to be created")
        key = self._key(t.rtype, t.namespace, name)
        if key in self._state.objects:
            raise KubeError(
                409,
                f'{t.rtype.key} "{name}" already exists',
                "AlreadyExists",
                {"name": name, "group": t.rtype.group, "kind": t.rtype.plural},
            )
        if t.rtype.status:
            body.pop("status", None)
        if t.rtype.key == "services" and isinstance(body.get("spec"), dict):
            spec = body["spec"]
            if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
                count = len(self._state.objects) + 1
                spec["clusterIP"] = f"10.96.{(count // 250) % 250}.{count % 250 + 1}"
        self._check_size(t, body)
        body = self._run_write_hooks(t, body)
        if dry_run:
            return self._served(t, body)
        return self._served(t, self._store(t.rtype, body, None))

    def _replace(self, t: _Target, body: Obj, *, dry_run: bool) -> Obj:
        current = self._current(t)
        self._check_kind(t, body)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise KubeError(400, "metadata: expected an object")
        if meta.get("name") != t.name:
            raise KubeError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({t.name})")
        if t.rtype.namespaced and meta.get("namespace") not in (None, "", t.namespace):
            raise KubeError(400, "the namespace of the provided object does not match the namespace sent on the request")
        wanted = meta.get("resourceVersion")
        if not wanted and t.rtype.crd:
            raise self._invalid(t, t.name or "", "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise self._conflict(t)
        return self._update(t, current, body, dry_run=dry_run)

    def _patch(self, t: _Target, content_type: str, body: bytes, *, dry_run: bool) -> Obj:
        current = self._current(t)
        if content_type == "application/apply-patch+yaml":
            raise KubeError(415, "FakeKube does not serve server-side apply; use a merge or JSON patch")
        try:
            patch = json.loads(body or b"null")
        except ValueError as err:
            raise KubeError(400, f"the patch is not JSON: {err}") from err
        if content_type == "application/strategic-merge-patch+json" and t.rtype.crd:
            raise KubeError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise KubeError(400, "a merge patch must be a JSON object")
            patched = _merge_patch(copy.deepcopy(current), patch)
        elif content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise KubeError(400, "a JSON patch must be a list of operations")
            patched = _json_patch(copy.deepcopy(current), patch)
        elif content_type == "application/apply-patch+yaml":
            raise KubeError(415, "FakeKube does not serve server-side apply; use a merge or JSON patch")
        else:
            raise KubeError(415, f"the body of the request was in an unknown format: {content_type or '(none)'}")
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise KubeError(422, "the patched object has no metadata")
        if patched["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise self._conflict(t)
        if patched["metadata"].get("name") != t.name:
            raise KubeError(400, "a patch cannot change metadata.name")
        return self._update(t, current, patched, dry_run=dry_run)

    def _update(self, t: _Target, current: Obj, body: Obj, *, dry_run: bool) -> Obj:
        if t.subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(body.get("status", {}))
        else:
            new = copy.deepcopy(body)
            meta = new["metadata"]
            for kept in ("uid", "creationTimestamp", "namespace", "generation"):
                if kept in current["metadata"]:
                    meta[kept] = current["metadata"][kept]
                else:
                    meta.pop(kept, None)
            if t.rtype.status:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            self._check_size(t, new)
            self._check_labels(t, t.name or "", meta.get("labels"))
            new = self._run_write_hooks(t, new, current)
        if dry_run:
            return self._served(t, new)
        return self._served(t, self._store(t.rtype, new, current))

    def _delete(self, t: _Target, options: Obj) -> Obj:
        current = self._current(t)
        pre = options.get("preconditions") or {}
        rv = pre.get("resourceVersion")
        uid = pre.get("uid")
        meta = current["metadata"]
        if (rv and rv != meta["resourceVersion"]) or (uid and uid != meta.get("uid")):
            found = f"ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {meta['resourceVersion']}"
            if uid and uid != meta.get("uid"):
                found = f"UID in precondition: {uid}, UID in object meta: {meta.get('uid')}"
            raise KubeError(
                409,
                f'Operation cannot be fulfilled on {t.rtype.key} "{t.name}": Precondition failed: {found}',
                "Conflict",
                {"name": t.name, "group": t.rtype.group, "kind": t.rtype.plural},
            )
        del self._state.objects[self._key(t.rtype, t.namespace, t.name or "")]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": t.name, "group": t.rtype.group, "kind": t.rtype.plural, "uid": meta.get("uid")},
        }

    # -- internals: helpers --------------------------------------------------------------------

    def _store(self, rtype: ResourceType, obj: Obj, current: Obj | None) -> Obj:
        """Store ``obj`` with a new resourceVersion (and uid, timestamps, generation)."""
        meta = obj.setdefault("metadata", {})
        self._state.version += 1
        meta["resourceVersion"] = str(self._state.version)
        if current is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
        if rtype.status:
            meta["generation"] = _next_generation(obj, current)
        obj["apiVersion"] = rtype.api_version()
        obj["kind"] = rtype.kind
        stored = copy.deepcopy(obj)
        self._state.objects[self._key(rtype, meta.get("namespace"), meta["name"])] = stored
        return copy.deepcopy(stored)

    def _run_write_hooks(self, t: _Target, obj: Obj, current: Obj | None = None) -> Obj:
        hooks = self._write_hooks.get(t.rtype.key, [])
        if not hooks:
            return obj
        # Hooks see the generation the object will have once stored.
        meta = obj["metadata"]
        if t.rtype.status:
            meta["generation"] = _next_generation(obj, current)
        for hook in hooks:
            result = hook(self, copy.deepcopy(obj))
            if result is not None:
                obj = result
        return obj

    def _check_kind(self, t: _Target, body: Obj) -> None:
        kind = body.get("kind")
        if kind not in (None, "", t.rtype.kind):
            raise KubeError(400, f"the kind of the provided object ({kind}) does not match the path ({t.rtype.kind})")

    def _check_size(self, t: _Target, body: Obj) -> None:
        if t.rtype.key not in ("configmaps", "secrets"):
            return
        total = 0
        for section in ("data", "binaryData", "stringData"):
            values = body.get(section) or {}
            if not isinstance(values, dict):
                raise self._invalid(t, body["metadata"].get("name", ""), section, "Invalid value: expected a map")
            for k, v in values.items():
                raw = str(v).encode()
                if section == "binaryData" or (t.rtype.key == "secrets" and section == "data"):
                    try:
                        raw = base64.b64decode(raw, validate=True)
                    except ValueError as err:
                        raise self._invalid(t, body["metadata"].get("name", ""), f"{section}[{k}]", "Invalid value: not base64") from err
                total += len(raw)  # the real server counts the values only, not the keys
        if total > MAX_CONFIGMAP_BYTES:
            raise self._invalid(t, body["metadata"].get("name", ""), "[]", f"Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes")

    def _check_name(self, t: _Target, name: str) -> None:
        """The real server's name rules (1.37): Services and namespaces are DNS-1123 labels (at most
        63; Services were DNS-1035 labels, a letter first, before 1.34), everything else a DNS-1123
        subdomain (at most 253)."""
        if t.rtype.key in ("services", "namespaces"):
            if len(name) > 63 or not _DNS_1123_LABEL.match(name):
                raise self._invalid(t, name, "metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 label must '
                                    "consist of lower case alphanumeric characters or '-' (at most 63 characters)")
        elif len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
            raise self._invalid(t, name, "metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")

    def _check_labels(self, t: _Target, name: str, labels: object) -> None:
        """The real server's label rules: ``[prefix/]name`` keys (name at most 63, prefix a DNS
        subdomain), values empty or at most 63 alphanumerics, '-', '_' or '.'."""
        if labels is None:
            return
        if not isinstance(labels, dict):
            raise KubeError(400, "metadata.labels: expected a map of strings")
        for key, value in labels.items():
            prefix, _, label = str(key).rpartition("/")
            if "/" in prefix or (prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix))) or len(label) > 63 or not _LABEL_NAME.fullmatch(label):
                raise self._invalid(t, name, "metadata.labels", f'Invalid value: "{key}": name part must consist of '
                                    "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")
            if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.fullmatch(value)):
                raise self._invalid(t, name, "metadata.labels", f'Invalid value: "{value}": a valid label must be an empty '
                                    "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                                    "with an alphanumeric character (at most 63 characters)")

    def _invalid(self, t: _Target, name: str, field_path: str, message: str) -> KubeError:
        return KubeError(
            422,
            f'{t.rtype.kind} "{name}" is invalid: {field_path}: {message}',
            "Invalid",
            {
                "name": name,
                "group": t.rtype.group,
                "kind": t.rtype.kind,
                "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field_path}],
            },
        )

    def _conflict(self, t: _Target) -> KubeError:
        return KubeError(
            409,
            f'Operation cannot be fulfilled on {t.rtype.key} "{t.name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            "Conflict",
            {"name": t.name, "group": t.rtype.group, "kind": t.rtype.plural},
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeKube
    timeout = 60

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        code, answer = self.server_fake.handle(self.command, self.path, headers, body)
        payload = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``fake.requests`` instead."""


# -- pure helpers --------------------------------------------------------------------------------


def _body_object(body: bytes, content_type: str) -> Obj:
    """A create/replace body: JSON, or YAML (``application/yaml``) as the real API accepts."""
    if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
        import yaml

        try:
            value = yaml.safe_load(body.decode("utf-8") or "{}")
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise KubeError(400, f"the request body is not YAML: {err}") from err
        if not isinstance(value, dict):
            raise KubeError(400, "the request body must be an object")
        return value
    if content_type not in ("", "application/json"):
        raise KubeError(415, f"the body of the request was in an unknown format: {content_type}")
    return _json_object(body)


def _json_object(body: bytes) -> Obj:
    try:
        value = json.loads(body or b"{}")
    except ValueError as err:
        raise KubeError(400, f"the request body is not JSON: {err}") from err
    if not isinstance(value, dict):
        raise KubeError(400, "the request body must be a JSON object")
    return value


def _next_generation(obj: Obj, current: Obj | None) -> int:
    """``metadata.generation`` of ``obj`` once stored over ``current``: 1 when new, +1 when the spec changed."""
    if current is None:
        return 1
    generation = int(current["metadata"].get("generation", 1))
    return generation + 1 if _spec_of(obj) != _spec_of(current) else generation


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


_SELECTOR_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)|\s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_terms(text: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            yield text[start:i]
            start = i + 1
    yield text[start:]


def _requirement(key: str, op: str, values: set[str]) -> Callable[[dict[str, str]], bool]:
    def test(labels: dict[str, str]) -> bool:
        if op == "!":
            return key not in labels
        if op == "exists":
            return key in labels
        if op in ("=", "in"):
            return labels.get(key) in values
        return labels.get(key) not in values  # "!=" and "notin" also match a missing key

    return test


def _parse_selector(text: str) -> list[Callable[[dict[str, str]], bool]]:
    """Label selector terms as predicates over a label map (400 on a malformed selector)."""
    tests: list[Callable[[dict[str, str]], bool]] = []
    if not text.strip():
        return tests
    for term in _split_terms(text):
        match = _SELECTOR_TERM.match(term)
        if not match or (match["neg"] and (match["op"] or match["setop"])):
            raise KubeError(400, f"unable to parse requirement: {term!r} in labelSelector {text!r}")
        if match["neg"]:
            tests.append(_requirement(match["key"], "!", set()))
        elif match["op"]:
            tests.append(_requirement(match["key"], "!=" if match["op"] == "!=" else "=", {match["value"]}))
        elif match["setop"]:
            values = {v.strip() for v in match["values"].split(",")}
            tests.append(_requirement(match["key"], match["setop"], values))
        else:
            tests.append(_requirement(match["key"], "exists", set()))
    return tests


def _parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if not sep or key not in ("metadata.name", "metadata.namespace"):
            raise KubeError(400, f"FakeKube supports fieldSelector metadata.name= and metadata.namespace= only, found {term!r}")
        fields[key.removeprefix("metadata.")] = value
    return fields


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise KubeError(422, f"JSON patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        try:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise KubeError(422, f"JSON patch path segment {part!r} does not exist") from err
    return doc


def _json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise KubeError(400, f"JSON patch operation {op!r}: expected an object with 'op' and 'path'")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise KubeError(422, f"JSON patch test failed at {op['path']!r}")
            continue
        if kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, source))
            if kind == "move":
                doc = _json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = _json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
            continue
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise KubeError(422, "JSON patch cannot remove the whole document")
        parent, last = _walk(doc, parts[:-1]), parts[-1]
        if kind == "add":
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                parent.insert(index, copy.deepcopy(op.get("value")))
            elif isinstance(parent, dict):
                parent[last] = copy.deepcopy(op.get("value"))
            else:
                raise KubeError(422, f"JSON patch cannot add under {op['path']!r}")
        elif kind in ("remove", "replace"):
            _walk(doc, parts)  # must exist
            if kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            else:
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op.get("value"))
        else:
            raise KubeError(400, f"JSON patch operation {kind!r} is not supported")
    return doc


# -- ready-made hooks ----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: bool | None, reason: str, message: str = "") -> Obj:
    return {
        "type": kind,
        "status": "Unknown" if status is None else "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastUpdateTime": _now(),
        "lastTransitionTime": _now(),
    }


def deployment_rollout(ready_after_reads: int = 0) -> ReadHook:
    """Read hook: a Deployment's rollout completes on the ``ready_after_reads``-th GET of its
    current generation (0 or 1: at once); before that it is progressing with no ready replica."""

    def hook(obj: Obj, reads: int) -> Obj:
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        generation = obj["metadata"].get("generation", 1)
        ready = reads >= ready_after_reads
        name = obj["metadata"]["name"]
        status: Obj = {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready else 0,
            "availableReplicas": replicas if ready else 0,
        }
        if ready:
            status["conditions"] = [
                _condition("Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability."),
                _condition("Progressing", True, "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.'),
            ]
        else:
            status["unavailableReplicas"] = replicas
            status["conditions"] = [
                _condition("Available", False, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                _condition("Progressing", True, "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.'),
            ]
        if replicas == 0:
            status = {"observedGeneration": generation, "conditions": status["conditions"][:1]}
        old = obj.get("status") or {}
        if {k: v for k, v in old.items() if k != "conditions"} == {k: v for k, v in status.items() if k != "conditions"} and [
            (c.get("type"), c.get("status")) for c in old.get("conditions", [])
        ] == [(c["type"], c["status"]) for c in status.get("conditions", [])]:
            return obj  # unchanged: no new resourceVersion
        obj["status"] = status
        return obj

    return hook


def deployment_failing(
    after_reads: int = 0,
    reason: str = "ProgressDeadlineExceeded",
    message: str = "",
    when: Callable[[Obj], bool] | None = None,
) -> ReadHook:
    """Read hook: from the ``after_reads``-th GET of its generation, a Deployment (those for which
    ``when(obj)`` is true, default all) reports a failed rollout: ``Progressing=False`` with
    ``reason``/``message`` and ``ReplicaFailure=True``, no ready replica."""

    def hook(obj: Obj, reads: int) -> Obj | None:
        if (when is not None and not when(obj)) or reads < after_reads:
            return None
        name = obj["metadata"]["name"]
        text = message or f'ReplicaSet "{name}" has timed out progressing.'
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        conditions = [
            _condition("Available", False, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
            _condition("Progressing", False, reason, text),
            _condition("ReplicaFailure", True, reason, text),
        ]
        status = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": 0,
            "availableReplicas": 0,
            "unavailableReplicas": replicas,
            "conditions": conditions,
        }
        old = obj.get("status") or {}
        if [(c.get("type"), c.get("status"), c.get("reason")) for c in old.get("conditions", [])] == [
            (c["type"], c["status"], c["reason"]) for c in conditions
        ] and old.get("observedGeneration") == status["observedGeneration"]:
            return obj  # already failing: unchanged, no new resourceVersion
        obj["status"] = status
        return obj

    return hook


def knative_serving(
    domain: str = "example.com", ready: Callable[[Obj], bool] | None = None, out_of_date_reads: int = 1
) -> WriteHook:
    """Write hook for ``services.serving.knative.dev``: a minimal Knative Serving controller.

    On each write of a Knative Service it creates a Revision when ``spec.template`` changed
    (named ``spec.template.metadata.name`` or ``<service>-<00001…>``, labelled
    ``serving.knative.dev/service``), keeps a Configuration and a Route of the same name, and sets
    the Service's status: ``latestCreatedRevisionName``, ``latestReadyRevisionName`` (the newest
    revision for which ``ready(revision)`` is true; default all), ``url``, ``address``,
    ``traffic`` (``latestRevision: true`` resolved to a name; a ``tag`` gets
    ``http://<tag>-<service>.<ns>.<domain>``) and ``Ready``/``ConfigurationsReady``/``RoutesReady``
    conditions. Traffic percents must sum to 100 (else 422, as Knative's webhook answers); a
    traffic entry naming an unknown revision makes the Service not ready (``RevisionMissing``).

    As the real reconciler does, a template change first shows the intermediate state for
    ``out_of_date_reads`` GETs of the Service: ``observedGeneration`` is the new generation, but
    ``ConfigurationsReady`` is ``Unknown`` (reason ``OutOfDate``) and ``latestCreatedRevisionName``
    still names the previous revision (tests/integration/kube checks the backend against the real CRDs so).
    """
    revisions_key = "revisions.serving.knative.dev"
    services_key = "services.serving.knative.dev"
    pending: dict[tuple[str, str], list[Any]] = {}  # (ns, name) -> [final status, reads left]
    settle_registered: list[bool] = []

    def settle(obj: Obj, reads: int) -> Obj | None:
        meta = obj["metadata"]
        entry = pending.get((meta.get("namespace", "default"), meta["name"]))
        if entry is None:
            return None
        entry[1] -= 1
        if entry[1] > 0:
            return None
        del pending[(meta.get("namespace", "default"), meta["name"])]
        return {**obj, "status": entry[0]}

    def hook(fake: FakeKube, svc: Obj) -> Obj:
        if not settle_registered:
            fake.on_read(services_key, settle)
            settle_registered.append(True)
        meta = svc["metadata"]
        name, ns = meta["name"], meta.get("namespace", "default")
        spec = svc.get("spec") or {}
        template = spec.get("template") or {}
        traffic = spec.get("traffic") or [{"latestRevision": True, "percent": 100}]
        total = sum(int(t.get("percent", 0) or 0) for t in traffic)
        if total != 100:
            raise KubeError(
                422,
                f'admission webhook "validation.webhook.serving.knative.dev" denied the request: '
                f"validation failed: Traffic targets sum to {total}, want 100: spec.traffic",
            )
        owned = [
            r for r in fake.list_objects(revisions_key, ns)
            if (r["metadata"].get("labels") or {}).get("serving.knative.dev/service") == name
        ]
        owned.sort(key=lambda r: int(r["metadata"]["labels"].get("serving.knative.dev/configurationGeneration", "0")))
        latest = owned[-1] if owned else None
        previous_status = copy.deepcopy(svc.get("status") or {})
        new_revision = False
        wanted_name = (template.get("metadata") or {}).get("name")
        template_spec = template.get("spec") or {}
        if latest is None or latest.get("spec") != template_spec or (wanted_name and wanted_name != latest["metadata"]["name"]):
            number = len(owned) + 1
            rev_name = wanted_name or f"{name}-{number:05d}"
            if any(r["metadata"]["name"] == rev_name for r in owned):
                raise KubeError(
                    422,
                    f'admission webhook denied the request: revision "{rev_name}" already exists with another template: spec.template.metadata.name',
                )
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels.update(
                {
                    "serving.knative.dev/service": name,
                    "serving.knative.dev/configuration": name,
                    "serving.knative.dev/configurationGeneration": str(number),
                }
            )
            revision = {
                "metadata": {
                    "name": rev_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                },
                "spec": copy.deepcopy(template_spec),
            }
            is_ready = ready(revision) if ready else True
            revision["status"] = {
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "True" if is_ready else "False",
                     "reason": "" if is_ready else "RevisionFailed", "lastTransitionTime": _now()}
                ],
            }
            fake.seed(revisions_key, revision)
            owned.append(fake.get_object(revisions_key, ns, rev_name) or revision)
            new_revision = True
        latest_created = owned[-1]["metadata"]["name"]
        ready_names = [
            r["metadata"]["name"]
            for r in owned
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (r.get("status") or {}).get("conditions", []))
        ]
        latest_ready = ready_names[-1] if ready_names else None
        known = {r["metadata"]["name"] for r in owned}
        resolved, missing = [], []
        for entry in traffic:
            target = latest_ready if entry.get("latestRevision") else entry.get("revisionName")
            if target is None or target not in known:
                missing.append(str(entry.get("revisionName") or "latest"))
            out: Obj = {
                "revisionName": target,
                "percent": int(entry.get("percent", 0) or 0),
                "latestRevision": bool(entry.get("latestRevision", False)),
            }
            if entry.get("tag"):
                out["tag"] = entry["tag"]
                out["url"] = f"http://{entry['tag']}-{name}.{ns}.{domain}"
            resolved.append(out)
        routes_ready = not missing
        config_ready = latest_ready == latest_created
        conditions = [
            _condition("ConfigurationsReady", config_ready, "" if config_ready else "RevisionFailed"),
            _condition("Ready", routes_ready and config_ready, "" if routes_ready else "RevisionMissing",
                       "" if routes_ready else f"Revision(s) {', '.join(missing)} referenced in traffic not found"),
            _condition("RoutesReady", routes_ready, "" if routes_ready else "RevisionMissing"),
        ]
        url = f"http://{name}.{ns}.{domain}"
        svc["status"] = {
            "observedGeneration": meta.get("generation", 1),
            "latestCreatedRevisionName": latest_created,
            "latestReadyRevisionName": latest_ready,
            "url": url,
            "address": {"url": f"http://{name}.{ns}.svc.cluster.local"},
            "traffic": resolved,
            "conditions": conditions,
        }
        fake.seed(
            "configurations.serving.knative.dev",
            {"metadata": {"name": name, "namespace": ns, "labels": {"serving.knative.dev/service": name}},
             "spec": {"template": copy.deepcopy(template)},
             "status": {"latestCreatedRevisionName": latest_created, "latestReadyRevisionName": latest_ready}},
        )
        fake.seed(
            "routes.serving.knative.dev",
            {"metadata": {"name": name, "namespace": ns, "labels": {"serving.knative.dev/service": name}},
             "spec": {"traffic": copy.deepcopy(traffic)},
             "status": {"url": url, "traffic": copy.deepcopy(resolved)}},
        )
        key = (ns, name)
        pending.pop(key, None)
        if new_revision and out_of_date_reads > 0:
            pending[key] = [svc["status"], out_of_date_reads]
            svc["status"] = {
                **previous_status,
                "observedGeneration": meta.get("generation", 1),
                "conditions": [
                    _condition("ConfigurationsReady", None, "OutOfDate",
                               "The Configuration is still working to reflect the latest desired specification."),
                    _condition("Ready", None, "OutOfDate"),
                    _condition("RoutesReady", None, "OutOfDate"),
                ],
            }
        return svc

    return hook
