"""Kubernetes ConfigMap state store: one ConfigMap per record, in one namespace.

Every ConfigMap it writes carries ``app.kubernetes.io/managed-by: sluice`` besides the record's
own labels; ``list`` sees only those. The label is not part of the returned ``Record``.
Compare-and-swap is the API server's own: ``metadata.resourceVersion`` in an update (a JSON patch
that sets data and labels and keeps annotations others added) and in the delete preconditions.

Errors: 409 → ``ConflictError``; 404 → ``None``/``False``; 422 "Too long" or 413 →
``TooLargeError``; other 422/400 → ``ValidationError``; 401/403 → ``ConfigurationError`` (RBAC);
5xx, 429 and connection failures → ``RetryableError``. No kubernetes exception crosses the port.

The ``kubernetes`` package is imported when a store is built, not when this module is imported,
so functions that never use ConfigMaps do not pay for it at cold start. The composition root
loads the configuration (in-cluster or kubeconfig) and injects it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sluice.adapters._kubeclient import message_of, record_error, status_of
from sluice.adapters.state._rules import check_labels, check_name, check_record
from sluice.errors import ConfigurationError, ConflictError, SluiceError, TooLargeError, ValidationError
from sluice.ports.state import Record

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "sluice"
JSON_PATCH = "application/json-patch+json"
_PAGE = 250


class ConfigMapStore:
    """Records as ConfigMaps in ``namespace``, through the official ``kubernetes`` client.

    ``api`` is a ``kubernetes.client.ApiClient`` or a ``kubernetes.client.Configuration``.
    ``request_timeout`` (seconds) bounds every call.
    """

    def __init__(self, api: Any, namespace: str, *, request_timeout: float = 10.0) -> None:
        from sluice.adapters._kubeclient import core_api

        self._client, self._errors, self._api = core_api(api, "ConfigMapStore")
        check_name(namespace)
        self._namespace = namespace
        self._timeout = request_timeout

    @property
    def namespace(self) -> str:
        """The namespace holding the ConfigMaps."""
        return self._namespace

    def get(self, name: str) -> Record | None:
        """The record named ``name``, or ``None``."""
        check_name(name)
        try:
            cm = self._api.read_namespaced_config_map(name, self._namespace, _request_timeout=self._timeout)
        except self._errors as err:
            if status_of(err) == 404:
                return None
            raise self._error(err, f"read ConfigMap {self._namespace}/{name}") from err
        return _record(cm)

    def put(self, record: Record) -> Record:
        """Compare-and-swap write (see ``StateStore.put``); refuses > 1 MiB before sending."""
        check_record(record)
        labels = {**record.labels, MANAGED_BY: MANAGER}
        body = self._client.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=self._client.V1ObjectMeta(
                name=record.name,
                namespace=self._namespace,
                labels=labels,
                resource_version=record.resource_version,
            ),
            data=dict(record.data),
        )
        try:
            if record.resource_version is None:
                cm = self._api.create_namespaced_config_map(self._namespace, body, _request_timeout=self._timeout)
            else:
                # A JSON patch, not a PUT: it sets data and labels whole, keeps what others put on
                # the ConfigMap (annotations, owner references), and the resourceVersion it sets is
                # the API server's precondition (409 when the record changed meanwhile).
                patch: list[dict[str, Any]] = [
                    {"op": "add", "path": "/metadata/resourceVersion", "value": record.resource_version},
                    {"op": "add", "path": "/metadata/labels", "value": labels},
                    {"op": "add", "path": "/data", "value": dict(record.data)},
                ]
                cm = self._api.patch_namespaced_config_map(
                    record.name, self._namespace, patch, _content_type=JSON_PATCH, _request_timeout=self._timeout
                )
        except self._errors as err:
            code = status_of(err)
            if code == 409:
                raise ConflictError(record.name, record.resource_version, self._found(record.name)) from err
            if code == 404 and record.resource_version is not None:
                raise ConflictError(record.name, record.resource_version, None) from err
            if code == 404:
                raise ConfigurationError(
                    f"cannot create ConfigMap {self._namespace}/{record.name}: the API answered 404 "
                    f"({message_of(err)}); does namespace {self._namespace!r} exist?"
                ) from err
            raise self._error(err, f"write ConfigMap {self._namespace}/{record.name}") from err
        return _record(cm)

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        """Sluice's records whose labels include every pair of ``labels``, sorted by name."""
        check_labels(labels, "label selector")
        selector = ",".join(f"{k}={v}" for k, v in {**labels, MANAGED_BY: MANAGER}.items())
        records: list[Record] = []
        token: str | None = None
        try:
            while True:
                page = self._api.list_namespaced_config_map(
                    self._namespace,
                    label_selector=selector,
                    limit=_PAGE,
                    _continue=token,
                    _request_timeout=self._timeout,
                )
                records.extend(_record(cm) for cm in page.items or [])
                token = page.metadata._continue if page.metadata else None
                if not token:
                    break
        except self._errors as err:
            raise self._error(err, f"list ConfigMaps in {self._namespace} with labels {selector!r}") from err
        return sorted(records, key=lambda r: r.name)

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        """Delete ``name`` (only if unchanged when a version is given); ``False`` if absent."""
        check_name(name)
        options = None
        if resource_version is not None:
            options = self._client.V1DeleteOptions(
                preconditions=self._client.V1Preconditions(resource_version=resource_version)
            )
        try:
            self._api.delete_namespaced_config_map(
                name, self._namespace, body=options, _request_timeout=self._timeout
            )
        except self._errors as err:
            code = status_of(err)
            if code == 404:
                return False
            if code == 409:
                raise ConflictError(name, resource_version, self._found(name)) from err
            raise self._error(err, f"delete ConfigMap {self._namespace}/{name}") from err
        return True

    # -- internals -----------------------------------------------------------------------------

    def _found(self, name: str) -> str | None:
        """The stored version after a conflict (best effort, for the error message)."""
        try:
            current = self.get(name)
        except SluiceError:
            return "unknown"
        return current.resource_version if current else None

    def _error(self, err: Exception, action: str) -> SluiceError:
        code = status_of(err)
        message = message_of(err)
        if code == 413 or (code == 422 and "too long" in message.lower()):
            return TooLargeError(f"cannot {action}: the Kubernetes API refused the size: {message}")
        if code in (400, 422):
            return ValidationError(f"ConfigMap in {self._namespace}", [f"cannot {action}: {message}"])
        return record_error(err, action, "check the service account's RBAC for ConfigMaps in this namespace")


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for the composition root to inject.

    Inside a pod (and no ``kubeconfig`` given) it uses the service account (in-cluster
    configuration); otherwise the kubeconfig file (``kubeconfig``, else ``$KUBECONFIG`` or
    ``~/.kube/config`` as the kubernetes client resolves it) and its ``context``. Raises
    ``ConfigurationError`` when neither is available.
    """
    from kubernetes import client, config

    if kubeconfig is None:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except (config.ConfigException, OSError, TypeError) as err:
        raise ConfigurationError(
            "cannot reach Kubernetes for the ConfigMap state store: not running in a pod and no usable "
            f"kubeconfig ({kubeconfig or 'KUBECONFIG or ~/.kube/config'}, context {context or 'current'}): {err}"
        ) from err


def _record(cm: Any) -> Record:
    meta = cm.metadata
    labels = dict(meta.labels or {})
    if labels.get(MANAGED_BY) == MANAGER:
        del labels[MANAGED_BY]
    return Record(
        name=meta.name,
        data=MappingProxyType(dict(cm.data or {})),
        labels=MappingProxyType(labels),
        resource_version=meta.resource_version,
    )
